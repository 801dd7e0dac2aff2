//! p4p-server: the alert network of the Partner for Protection movement.
//!
//! `domain` holds the rules (no I/O), `db` the storage layer (the only SQL),
//! `fanout` the live delivery, `http` the API, `listener` the connections
//! it is served on, `metrics` the series it counts. `serve` wires them
//! together.

pub mod config;
pub mod db;
pub mod domain;
pub mod erasure;
pub mod fanout;
pub mod http;
pub mod listener;
pub mod metrics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use p4p_protocol::{close_code, Role};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use config::ServeArgs;
use db::relay::{Announcement, Heard};
use db::{Actor, NewToken, Storage};
use domain::place::Area;
use domain::secret::Secret;
use fanout::Hub;
use http::limits::Limits;
use http::{ApiContext, Edge, StreamSettings};
use listener::{CappedListener, ConnectionLimits};

/// How long shutdown waits for open streams to take their close frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves the API until SIGINT or SIGTERM.
pub async fn serve(database_url: &str, args: &ServeArgs) -> anyhow::Result<()> {
    // Before anything counts: counters taken earlier would count nowhere.
    let metrics = crate::metrics::install().context("cannot install the metrics recorder")?;
    let storage = db::connect(database_url, args.database_pool)
        .await
        .with_context(|| format!("cannot open the database at {}", redact(database_url)))?;
    let head = storage
        .head()
        .await
        .context("cannot read the stream's head")?;
    let policy = args.policy();
    let hub = Hub::start(storage.clone(), head, args.stream_queue, policy);
    let store_moves: Arc<tokio::sync::Mutex<()>> = Arc::default();
    let hears_other_nodes = Arc::new(AtomicBool::new(true));
    if db::Dialect::of_url(database_url) == Some(db::Dialect::Postgres) {
        hears_other_nodes.store(false, Ordering::Release);
        let heard = db::relay::listen(database_url.to_owned());
        tokio::spawn(follow_other_nodes(
            heard,
            hub.clone(),
            storage.clone(),
            store_moves.clone(),
            hears_other_nodes.clone(),
        ));
    }
    let listener = TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| config::PublicUrl::of_bind(address));
    let ctx = ApiContext {
        storage,
        hub: hub.clone(),
        stream: StreamSettings {
            ping_interval: Duration::from_secs(args.ping_interval_secs),
        },
        store_moves,
        policy,
        hears_other_nodes,
        limits: Arc::new(Limits::new(&args.limits)),
        edge: Arc::new(Edge::new(&args.limits, &public_url)),
        metrics,
        in_progress: Arc::default(),
        public_url,
    };
    if args.limits.rate_limits == config::Switch::Off {
        tracing::warn!(
            "rate limits are OFF (--rate-limits off or P4P_RATE_LIMITS=off): alerts, pledges, \
             failed authentications and stream connections are not limited; use this only for \
             benchmarks and trusted test rigs"
        );
    }
    tokio::spawn(Limits::forget_idle_forever(ctx.limits.clone()));
    tokio::spawn(erasure::sweep_forever(
        ctx.storage.clone(),
        policy,
        Duration::from_secs(args.erase_interval_secs),
    ));
    let limits = ConnectionLimits::from_args(args);
    let connection_cap = limits.cap;
    let connections_per_address = limits.per_address;
    let listener = CappedListener::new(listener, limits);
    let operators = match &args.metrics_bind {
        Some(bind) => Some(
            TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen for metrics on {bind}"))?,
        ),
        None => None,
    };
    tracing::info!(%address, public_url = %ctx.public_url.link(""), database = %redact(database_url), head, ?policy, connection_cap, connections_per_address, "p4p-server listening");
    // Tests and scripts read the address from this line.
    println!("p4p-server listening on http://{address}");
    if let Some(operators) = operators {
        let metrics_address = operators.local_addr()?;
        tracing::info!(%metrics_address, "serving metrics to operators");
        // ...and the metrics address from this one, the second.
        println!("p4p-server metrics on http://{metrics_address}/metrics");
        let app = http::operator_router(ctx.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(operators, app).await {
                tracing::error!(%error, "the metrics listener failed");
            }
        });
    }

    crate::listener::serve(listener, http::router(ctx), shutdown_signal()).await?;
    tracing::info!("shutting down: closing streams with 1001");
    hub.close_all(close_code::GOING_AWAY, "server shutting down");
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while hub.connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Applies what the other nodes committed and announced to this node's
/// hub. After a lost LISTEN connection it re-checks every open stream (a
/// suspension, revocation or move may have been missed) and catches up on
/// the events committed meanwhile, then says ready again.
async fn follow_other_nodes(
    mut heard: tokio::sync::mpsc::Receiver<Heard>,
    hub: Arc<Hub>,
    storage: Arc<dyn Storage>,
    store_moves: Arc<tokio::sync::Mutex<()>>,
    ready: Arc<AtomicBool>,
) {
    while let Some(heard) = heard.recv().await {
        match heard {
            Heard::Committed(seq) => hub.committed_elsewhere(seq),
            Heard::Listening => {
                recheck_streams(&hub, storage.as_ref(), &store_moves).await;
                hub.catch_up();
                ready.store(true, Ordering::Release);
            }
            Heard::Lost => {
                // The relay met a database error (db counts nothing).
                crate::metrics::database_error();
                ready.store(false, Ordering::Release)
            }
            Heard::Announced(Announcement::StoreSuspended(id)) => {
                hub.close_store(id, close_code::REVOKED, "store suspended")
            }
            Heard::Announced(Announcement::TokenRevoked(id)) => {
                hub.close_token(id, close_code::REVOKED, "token revoked")
            }
            Heard::Announced(Announcement::StoreMoved(id)) => {
                let _moves = store_moves.lock().await;
                refresh_store(&hub, storage.as_ref(), id).await;
            }
        }
    }
}

/// Closes the streams whose token or store no longer holds, and re-indexes
/// the stores that moved.
async fn recheck_streams(hub: &Hub, storage: &dyn Storage, store_moves: &tokio::sync::Mutex<()>) {
    let streams = hub.open_streams();
    let tokens: std::collections::BTreeSet<i64> = streams.iter().map(|(token, _)| *token).collect();
    for token in tokens {
        match storage.token_active(token).await {
            Ok(true) => {}
            Ok(false) => hub.close_token(token, close_code::REVOKED, "token revoked"),
            Err(error) => {
                tracing::error!(%error, token_id = token, "cannot re-check a token");
                crate::metrics::database_error();
            }
        }
    }
    let stores: std::collections::BTreeSet<i64> =
        streams.iter().filter_map(|(_, store)| *store).collect();
    let _moves = store_moves.lock().await;
    for store in stores {
        refresh_store(hub, storage, store).await;
    }
}

/// Re-reads a listening store: closes its streams if it is no longer
/// approved, re-indexes it where it now looks otherwise.
async fn refresh_store(hub: &Hub, storage: &dyn Storage, id: i64) {
    match storage.store(id).await {
        Ok(Some(store)) if store.status == p4p_protocol::StoreStatus::Approved => {
            hub.move_store(id, Area::of_store(&store))
        }
        Ok(_) => hub.close_store(id, close_code::REVOKED, "store suspended"),
        Err(error) => {
            tracing::error!(%error, store_id = id, "cannot re-read a store");
            crate::metrics::database_error();
        }
    }
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
    let label = domain::required_line("label", label, 100)?;
    let storage: Arc<dyn Storage> = db::connect(database_url, 1)
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
