//! `p4p listen` for a store that cannot listen yet, or not now: what is
//! true is said once, and the listener waits rather than exits, so that it
//! comes back by itself when the association acts.
//!
//! - A pledge still pending (no token yet): the listener checks the claim
//!   every minute (`--held-retry-secs`); once the store is approved it saves the
//!   token to the config file, as `p4p pledge status` would, and listens.
//! - A pledge rejected: nothing to wait for; it exits with the reason.
//! - A store suspended: its token answers 403 `store_suspended` with the
//!   reason. The listener tries again every minute, reading
//!   the config file again each time, because reinstatement revokes every
//!   token the store had: the store claims a new one with the claim secret
//!   staff hand out (`p4p pledge claim STORE_ID --secret S`), and the
//!   listener picks it up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use p4p_protocol::{ClaimRequest, ClaimResponse, StoreStatus};

use crate::api::{paths, Api, ApiError, ServerUrl};
use crate::config::Config;
use crate::render;
use crate::secret::Token;

/// How to claim a fresh token after reinstatement.
pub const CLAIM_AGAIN: &str = "once staff reinstate the store they hand you a claim secret: \
     run `p4p pledge claim STORE_ID --secret S` and this listener picks up the new token";

/// Where the token comes from, to read it again while the store waits.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// `--token` or `P4P_TOKEN`: it stays what it is.
    Given,
    /// The config file, read again on each retry.
    File(PathBuf),
}

impl TokenSource {
    /// The token the config file holds now, when it is the source.
    pub fn reread(&self) -> anyhow::Result<Option<Token>> {
        match self {
            TokenSource::Given => Ok(None),
            TokenSource::File(path) => Ok(Config::load(Some(path.clone()))?.file.token),
        }
    }
}

/// Says `message` on standard error, unless it was the last thing said.
#[derive(Debug, Default)]
pub struct SaidOnce {
    last: Option<String>,
}

impl SaidOnce {
    pub fn say(&mut self, message: &str) {
        if self.last.as_deref() != Some(message) {
            eprintln!("p4p listen: {}", render::escape(message));
            self.last = Some(message.to_owned());
        }
    }
}

/// Waits until the store's pledge is approved, then claims its token, saves
/// it to the config file at `config_path` and returns it; checks every `retry`. A rejected pledge
/// is an error with the reason. Stops (`None`) when `stop` turns true.
pub async fn wait_for_approval(
    server: &ServerUrl,
    config_path: &Path,
    store_id: i64,
    retry: Duration,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<Token>> {
    let api = Api::new(server.clone(), None)?;
    let mut said = SaidOnce::default();
    loop {
        // The secret is read again each time: `p4p pledge` may have replaced it.
        let config = Config::load(Some(config_path.to_owned()))?;
        if let Some(token) = config.file.token.clone() {
            return Ok(Some(token));
        }
        let Some(secret) = config.file.claim_secret.clone() else {
            return Err(anyhow!(crate::context::NoToken));
        };
        let request = ClaimRequest {
            claim_secret: secret.expose().to_owned(),
        };
        let answer = api
            .post::<_, ClaimResponse>(&paths::claim(store_id), &request)
            .await;
        match answer {
            Ok(reply) => match (reply.body.status, reply.body.token) {
                (StoreStatus::Approved, Some(token)) => {
                    let token = Token::new(token);
                    save_token(config_path, server, &token)?;
                    eprintln!(
                        "p4p listen: store #{store_id} was approved; its token is saved to {}",
                        config_path.display()
                    );
                    return Ok(Some(token));
                }
                _ => said.say(&format!(
                    "store #{store_id} is pending approval by the association; waiting, \
                     checking every {} s",
                    retry.as_secs()
                )),
            },
            Err(ApiError::Problem { problem, .. }) if problem.code == "pledge_rejected" => {
                return Err(anyhow!(
                    "store #{store_id}'s application was rejected: {}",
                    problem.detail
                ));
            }
            Err(ApiError::Problem { problem, .. }) if problem.code == "store_suspended" => {
                said.say(&format!(
                    "store #{store_id} is suspended: {}; {CLAIM_AGAIN}",
                    problem.detail
                ));
            }
            Err(error @ ApiError::Problem { .. }) => return Err(error.into()),
            Err(error) => said.say(&format!("{error}; trying again in {} s", retry.as_secs())),
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = stop.wait_for(|stopped| *stopped) => return Ok(None),
        }
    }
}

/// Saves the claimed token as `p4p pledge status` does: the active token,
/// the claim secret spent.
fn save_token(config_path: &Path, server: &ServerUrl, token: &Token) -> anyhow::Result<()> {
    let mut config = Config::load(Some(config_path.to_owned()))?;
    config.file.token = Some(token.clone());
    config.file.claim_secret = None;
    config.file.server = Some(server.to_string());
    config.save()?;
    Ok(())
}
