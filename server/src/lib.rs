//! p4p-server: the alert network of the Partner for Protection movement.
//!
//! `domain` holds the rules (no I/O), `db` the storage layer (the only SQL),
//! `fanout` the live delivery, `http` the API. `serve` wires them together.

pub mod config;
pub mod db;
pub mod domain;
pub mod fanout;
pub mod http;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use p4p_protocol::{close_code, Role};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use config::ServeArgs;
use db::{Actor, NewToken, Storage};
use domain::secret::Secret;
use fanout::Hub;
use http::{ApiContext, StreamSettings};

/// How long shutdown waits for open streams to take their close frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves the API until SIGINT or SIGTERM.
pub async fn serve(database_url: &str, args: &ServeArgs) -> anyhow::Result<()> {
    let storage = db::connect(database_url)
        .await
        .with_context(|| format!("cannot open the database at {}", redact(database_url)))?;
    let head = storage
        .head()
        .await
        .context("cannot read the stream's head")?;
    let policy = args.policy();
    let hub = Hub::start(storage.clone(), head, args.stream_queue, policy);
    let ctx = ApiContext {
        storage,
        hub: hub.clone(),
        stream: StreamSettings {
            ping_interval: Duration::from_secs(args.ping_interval_secs),
        },
        store_moves: Arc::default(),
        policy,
    };
    let listener = TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, database = %redact(database_url), head, ?policy, "p4p-server listening");
    // Tests and scripts read the address from this line.
    println!("p4p-server listening on http://{address}");

    axum::serve(listener, http::router(ctx))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("shutting down: closing streams with 1001");
    hub.close_all(close_code::GOING_AWAY, "server shutting down");
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while hub.connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// `p4p-server token create`: the only way to the first staff token.
pub async fn create_staff_token(
    database_url: &str,
    role: Role,
    label: &str,
) -> anyhow::Result<String> {
    if role == Role::Store {
        anyhow::bail!(
            "--role must be admin or moderator: store tokens come from an approved pledge"
        );
    }
    let label = domain::required_text("label", label, 100)?;
    let storage: Arc<dyn Storage> = db::connect(database_url)
        .await
        .with_context(|| format!("cannot open the database at {}", redact(database_url)))?;
    let secret = Secret::new_token();
    let token = NewToken {
        role,
        store_id: None,
        label: &label,
        hash: &secret.hash(),
    };
    storage
        .create_token(token, &Actor::server_host(), OffsetDateTime::now_utc())
        .await?;
    Ok(secret.expose().to_owned())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// A database URL fit for logs: any password replaced.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            super::redact("postgres://p4p:secret@db:5432/p4p"),
            "postgres://p4p:***@db:5432/p4p"
        );
        assert_eq!(super::redact("sqlite:p4p.db"), "sqlite:p4p.db");
    }
}
