//! p4p-server: the alert network of the Partner for Protection movement.
//!
//! `domain` holds the rules (no I/O), `db` the storage layer (the only SQL),
//! `fanout` the live delivery, `http` the API. `serve` wires them together.

pub mod config;
pub mod db;
pub mod domain;
pub mod erasure;
pub mod fanout;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod shutdown;
pub mod staff_token;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use p4p_protocol::close_code;
use tokio::net::TcpListener;

use config::ServeArgs;
use fanout::{HubSettings, Network};
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
        .with_context(|| format!("cannot open the database at {}", db::redact(database_url)))?;
    let head = storage
        .head()
        .await
        .context("cannot read the stream's head")?;
    let policy = args.policy();
    // On PostgreSQL, the nodes hear each other through the database.
    let other_nodes = (db::Dialect::of_url(database_url) == Some(db::Dialect::Postgres))
        .then(|| database_url.to_owned());
    let hub = HubSettings {
        stream_queue: args.stream_queue,
        policy,
    };
    let network = Network::start(storage.clone(), head, hub, other_nodes);
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
        network: network.clone(),
        stream: StreamSettings {
            ping_interval: Duration::from_secs(args.ping_interval_secs),
        },
        policy,
        limits: Arc::new(Limits::new(&args.limits)),
        edge: Arc::new(Edge::new(&args.limits, public_url)),
        metrics,
        in_progress: Arc::default(),
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
    tracing::info!(%address, public_url = %ctx.edge.public_url.link(""), database = %db::redact(database_url), head, ?policy, connection_cap, connections_per_address, "p4p-server listening");
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

    listener::serve(listener, http::router(ctx), shutdown::signal()).await?;
    tracing::info!("shutting down: closing streams with 1001");
    network
        .close_all(
            close_code::GOING_AWAY,
            "server shutting down",
            SHUTDOWN_GRACE,
        )
        .await;
    Ok(())
}
