//! What every command starts from: the config file, the server and token
//! resolved from flags, environment and file (in that order of precedence),
//! and whether to print JSON for scripts instead of text for people: every
//! command prints its answer through [`Context::emit`].

use std::path::PathBuf;

use crate::api::{Api, Reply, ServerUrl};
use crate::config::{Config, DEFAULT_SERVER};
use crate::output;
use crate::secret::Token;

/// The global flags, each with its environment fallback.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Config file to read and write instead of the default
    /// (<config dir>/p4p/config.json).
    #[arg(long, global = true, env = "P4P_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// p4p server URL; overrides the config file [default: http://127.0.0.1:8080].
    #[arg(long, global = true, env = "P4P_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Access token (p4p_...); overrides the config file.
    #[arg(
        long,
        global = true,
        env = "P4P_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Print the server's JSON instead of text (listen: one frame per line).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("no token: run `p4p login --server URL --token TOKEN` or set P4P_TOKEN")]
pub struct NoToken;

/// The resolved settings of one run.
#[derive(Debug)]
pub struct Context {
    pub json: bool,
    pub config: Config,
    pub server: ServerUrl,
    /// From `--token` or `P4P_TOKEN`, else from the config file.
    pub token: Option<Token>,
    /// From `--token` or `P4P_TOKEN` only: what `p4p login` saves.
    pub given_token: Option<Token>,
}

impl Context {
    pub fn resolve(global: GlobalArgs) -> anyhow::Result<Context> {
        let config = Config::load(non_empty(global.config))?;
        let server_text = non_empty(global.server)
            .or_else(|| config.file.server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let server = ServerUrl::parse(&server_text)?;
        let given_token = non_empty(global.token).map(Token::new);
        let token = given_token.clone().or_else(|| config.file.token.clone());
        Ok(Context {
            json: global.json,
            config,
            server,
            token,
            given_token,
        })
    }

    /// The token, or the error that tells how to get one.
    pub fn require_token(&self) -> Result<&Token, NoToken> {
        self.token.as_ref().ok_or(NoToken)
    }

    /// A client that sends the token; fails early when there is none.
    pub fn api(&self) -> anyhow::Result<Api> {
        let token = self.require_token()?.clone();
        Ok(Api::new(self.server.clone(), Some(token))?)
    }

    /// A client without a token, for the pledge endpoints anyone may call.
    pub fn anonymous_api(&self) -> anyhow::Result<Api> {
        Ok(Api::new(self.server.clone(), None)?)
    }

    /// Prints a command's answer: with `--json` the server's JSON as it
    /// came, else what `text` makes of it for people.
    pub fn emit<T>(&self, reply: &Reply<T>, text: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
        self.emit_json(Some(&reply.json), || text(&reply.body))
    }

    /// [`Context::emit`] for an answer that may have no body (a `DELETE`'s
    /// 204): with `--json`, nothing is printed then.
    pub fn emit_json(
        &self,
        json: Option<&serde_json::Value>,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        match (self.json, json) {
            (true, Some(json)) => output::json(json)?,
            (true, None) => {}
            (false, _) => output::line(&text())?,
        }
        Ok(())
    }
}

/// An empty `P4P_TOKEN=` means "not set", as a shell user expects.
fn non_empty<T: AsRef<std::ffi::OsStr>>(value: Option<T>) -> Option<T> {
    value.filter(|value| !value.as_ref().is_empty())
}
