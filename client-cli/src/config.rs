//! The user's p4p config file: which server, which token, and the pledge
//! awaiting approval. One JSON file, `<config dir>/p4p/config.json` unless
//! `--config` / `P4P_CONFIG` names another, readable by its owner only.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file;
use crate::secret::{ClaimSecret, Token};

/// Where the CLI talks to when nothing else says.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// What the file holds; every field may be missing.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Token>,
    /// The store this user applied for with `p4p pledge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<i64>,
    /// Kept until the store's token is claimed with `p4p pledge status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_secret: Option<ClaimSecret>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot find the user's config directory: pass --config PATH or set P4P_CONFIG")]
    NoConfigDir,
    #[error("cannot read the config file {}: {reason}", .path.display())]
    Read { path: PathBuf, reason: io::Error },
    #[error("the config file {} is not valid JSON for p4p: {reason}", .path.display())]
    Parse {
        path: PathBuf,
        reason: serde_json::Error,
    },
    #[error("cannot write the config file {}: {reason}", .path.display())]
    Write { path: PathBuf, reason: io::Error },
}

/// The config file and where it lives.
#[derive(Debug)]
pub struct Config {
    path: Option<PathBuf>,
    pub file: ConfigFile,
}

impl Config {
    /// The default location: `dirs::config_dir()/p4p/config.json`
    /// (`$XDG_CONFIG_HOME/p4p/config.json` on Linux).
    pub fn default_path() -> Option<PathBuf> {
        dirs::config_dir().map(|dir| dir.join("p4p").join("config.json"))
    }

    /// Reads the file at `path` (or the default one); a missing file is empty.
    pub fn load(path: Option<PathBuf>) -> Result<Config, ConfigError> {
        let path = path.or_else(Config::default_path);
        let Some(file_path) = &path else {
            return Ok(Config {
                path,
                file: ConfigFile::default(),
            });
        };
        let text = match std::fs::read_to_string(file_path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
            Err(reason) => {
                return Err(ConfigError::Read {
                    path: file_path.clone(),
                    reason,
                })
            }
        };
        let file = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_json::from_str(&text).map_err(|reason| ConfigError::Parse {
                path: file_path.clone(),
                reason,
            })?
        };
        Ok(Config { path, file })
    }

    /// Where the file is (or would be written).
    pub fn path(&self) -> Result<&Path, ConfigError> {
        self.path.as_deref().ok_or(ConfigError::NoConfigDir)
    }

    /// Writes the file atomically with mode 0600.
    pub fn save(&self) -> Result<&Path, ConfigError> {
        let path = self.path()?;
        let write_error = |reason| ConfigError::Write {
            path: path.to_owned(),
            reason,
        };
        let mut text = serde_json::to_string_pretty(&self.file)
            .map_err(|error| write_error(io::Error::other(error)))?;
        text.push('\n');
        atomic_file::write(path, text.as_bytes()).map_err(write_error)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_an_empty_config_and_saving_creates_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("p4p").join("config.json");
        let mut config = Config::load(Some(path.clone())).expect("load");
        assert!(config.file.token.is_none());

        config.file.server = Some("http://127.0.0.1:9000".to_owned());
        config.file.token = Some(Token::new("p4p_abc"));
        config.save().expect("save");

        let again = Config::load(Some(path)).expect("reload");
        assert_eq!(again.file.server.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            again.file.token.as_ref().map(Token::expose),
            Some("p4p_abc")
        );
        assert!(again.file.claim_secret.is_none());
    }

    #[test]
    fn a_broken_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").expect("write");
        let error = Config::load(Some(path.clone())).expect_err("must fail");
        assert!(error.to_string().contains(&path.display().to_string()));
    }
}
