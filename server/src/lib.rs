//! p4p-server: the alert network of the Partner for Protection movement.
//!
//! The composition root. `domain` holds the rules (no I/O); `db` the
//! storage layer (the only SQL); `fanout` the live delivery (the network:
//! every commit to every listener, here and on the other nodes); `http`
//! the API; `listener` the connections and their caps; `metrics` the
//! series (a leaf). [`serve`] wires them together, in that order.

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

use std::time::Duration;

use anyhow::Context;
use p4p_protocol::close_code;
use tokio::net::TcpListener;

use config::ServeArgs;
use fanout::{HubSettings, Network};
use http::ApiContext;
use listener::{CappedListener, ConnectionLimits};

/// How long shutdown waits for open streams to take their close frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves the API until SIGINT or SIGTERM.
pub async fn serve(database_url: &str, args: &ServeArgs) -> anyhow::Result<()> {
    // Before anything counts: counters taken earlier would count nowhere.
    let metrics = metrics::install().context("cannot install the metrics recorder")?;
    let storage = db::connect(database_url, args.database_pool)
        .await
        .with_context(|| format!("cannot open the database at {}", db::redact(database_url)))?;
    let head = storage
        .head()
        .await
        .context("cannot read the stream's head")?;
    let policy = args.policy();
    let hub = HubSettings {
        stream_queue: args.stream_queue,
        policy,
    };
    let network = Network::start(storage.clone(), head, hub, db::relay::url_of(database_url));

    let bound = TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = bound.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| config::PublicUrl::of_bind(address));
    let ctx = ApiContext::new(storage, network.clone(), args, public_url, metrics);
    tokio::spawn(http::limits::Limits::forget_idle_forever(
        ctx.limits.clone(),
    ));
    tokio::spawn(erasure::sweep_forever(
        ctx.storage.clone(),
        policy,
        Duration::from_secs(args.erase_interval_secs),
    ));
    let limits = ConnectionLimits::from_args(args);
    tracing::info!(%address, public_url = %ctx.edge.public_url.link(""), database = %db::redact(database_url), head, ?policy, connection_cap = limits.cap, connections_per_address = limits.per_address, "p4p-server listening");
    // Tests and scripts read the address from this line...
    println!("p4p-server listening on http://{address}");
    if let Some(bind) = &args.metrics_bind {
        // ...and the metrics address from the second.
        http::serve_operators(bind, ctx.clone()).await?;
    }

    let connections = CappedListener::new(bound, limits);
    listener::serve(connections, http::router(ctx), shutdown::signal()).await?;
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
