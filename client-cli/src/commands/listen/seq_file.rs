//! The state file of `p4p listen`: the `seq` of the last event fully
//! processed, so that a restarted listener resumes where it stopped.
//!
//! One file per server and token (a store may listen to two servers, or as
//! two tokens), named by a hash so that the token never appears in a path.

use std::io;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::api::ServerUrl;
use crate::atomic_file;
use crate::secret::Token;

#[derive(Debug, thiserror::Error)]
pub enum SeqFileError {
    #[error("cannot read the listen state file {}: {reason}", .path.display())]
    Read { path: PathBuf, reason: io::Error },
    #[error(
        "the listen state file {} holds `{content}`, not a seq: fix or delete it",
        .path.display()
    )]
    NotASeq { path: PathBuf, content: String },
    #[error("cannot write the listen state file {}: {reason}", .path.display())]
    Write { path: PathBuf, reason: io::Error },
}

/// `<state dir>/p4p/listen-<hash>.seq`, where the state dir is
/// `dirs::state_dir()` (`$XDG_STATE_HOME`), else `dirs::data_local_dir()`.
pub fn default_path(server: &ServerUrl, token: &Token) -> Option<PathBuf> {
    let base = dirs::state_dir().or_else(dirs::data_local_dir)?;
    Some(base.join("p4p").join(file_name(server, token)))
}

/// `listen-<16 hex digits>.seq`: stable across runs and versions of the CLI.
pub fn file_name(server: &ServerUrl, token: &Token) -> String {
    let mut hasher = Sha256::new();
    hasher.update(server.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(token.expose().as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("listen-{hex}.seq")
}

/// The file holding the last processed seq.
#[derive(Debug)]
pub struct SeqFile {
    path: PathBuf,
}

impl SeqFile {
    pub fn new(path: PathBuf) -> SeqFile {
        SeqFile { path }
    }

    /// The saved seq; `None` when the listener never ran.
    pub fn load(&self) -> Result<Option<i64>, SeqFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(reason) => {
                return Err(SeqFileError::Read {
                    path: self.path.clone(),
                    reason,
                })
            }
        };
        let content = text.trim();
        if content.is_empty() {
            return Ok(None);
        }
        content
            .parse()
            .map(Some)
            .map_err(|_| SeqFileError::NotASeq {
                path: self.path.clone(),
                content: content.chars().take(40).collect(),
            })
    }

    /// Saves `seq` atomically: a crash leaves the old value or the new one.
    pub fn save(&self, seq: i64) -> Result<(), SeqFileError> {
        atomic_file::write(&self.path, format!("{seq}\n").as_bytes()).map_err(|reason| {
            SeqFileError::Write {
                path: self.path.clone(),
                reason,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn server(url: &str) -> ServerUrl {
        ServerUrl::parse(url).expect("valid URL")
    }

    #[test]
    fn the_file_name_is_stable_and_hides_the_token() {
        let token = Token::new("p4p_secret");
        let name = file_name(&server("http://127.0.0.1:8080"), &token);
        assert_eq!(name, file_name(&server("http://127.0.0.1:8080/"), &token));
        assert!(
            name.starts_with("listen-") && name.ends_with(".seq"),
            "{name}"
        );
        assert_eq!(name.len(), "listen-".len() + 16 + ".seq".len());
        assert!(!name.contains("secret"));
    }

    #[test]
    fn another_server_or_token_gets_another_file() {
        let local = server("http://127.0.0.1:8080");
        let name = file_name(&local, &Token::new("p4p_a"));
        assert_ne!(name, file_name(&local, &Token::new("p4p_b")));
        assert_ne!(
            name,
            file_name(&server("https://p4p.example.org"), &Token::new("p4p_a"))
        );
    }

    #[test]
    fn the_default_path_is_under_p4p() {
        if let Some(path) = default_path(&server("http://127.0.0.1:8080"), &Token::new("p4p_a")) {
            let parent = path.parent().and_then(Path::file_name);
            assert_eq!(parent.and_then(|name| name.to_str()), Some("p4p"));
        }
    }

    #[test]
    fn a_saved_seq_loads_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = SeqFile::new(dir.path().join("state").join("listen.seq"));
        assert_eq!(file.load().expect("missing is fine"), None);
        file.save(1234).expect("save");
        assert_eq!(file.load().expect("load"), Some(1234));
    }

    #[test]
    fn a_file_that_holds_no_seq_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("listen.seq");
        std::fs::write(&path, "twelve").expect("write");
        assert!(matches!(
            SeqFile::new(path).load(),
            Err(SeqFileError::NotASeq { .. })
        ));
    }
}
