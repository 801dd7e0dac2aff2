//! The network listener and its defences, before any request is read.
//!
//! It owns the TCP side of the public API: the cap on connections open at
//! once (503 beyond it) and the cap per client address, so that one host
//! cannot take them all (429 beyond its share; `caps`); the cut of a
//! connection on which nothing moves either way (`connection`); and the
//! loop that serves HTTP/1.1 on each admitted connection, with the few
//! seconds a client has to send each request's head, the upgrades to
//! streams, and the drain at shutdown ([`serve`]).
//!
//! A slow client (slowloris: one header byte every few seconds) costs a
//! place only until its head is due; a host that opens many costs only its
//! own share of the places. What happens to a request once read (rate
//! limits, timeouts, the client behind a proxy) is the `http` layer's.

mod caps;
mod connection;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

pub use caps::CappedListener;
pub use connection::Counted;

use crate::config::ServeArgs;

/// The peer of a connection, for `ConnectInfo`.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// How connections are bounded.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once, in all.
    pub cap: usize,
    /// Connections open at once from one client address (an IPv6 client
    /// by its /64); 0: no cap but the total.
    pub per_address: usize,
    /// Peers exempt from the per-address cap: the trusted proxies, whose
    /// one address carries many clients.
    pub exempt: Vec<ipnet::IpNet>,
    /// How long a connection may move no byte either way before it is cut
    /// (a stream's client answers every ping, so it must exceed the ping
    /// interval).
    pub idle: Duration,
    /// How long a client has to send a request's whole head, from the
    /// moment the server waits for it (also between keep-alive requests).
    pub header_read_timeout: Duration,
}

impl ConnectionLimits {
    /// The caps on connections, from the command line.
    pub fn from_args(args: &ServeArgs) -> ConnectionLimits {
        let limits = &args.limits;
        ConnectionLimits {
            cap: match limits.max_connections {
                0 => default_connection_cap(args.database_pool),
                cap => cap as usize,
            },
            per_address: limits.connections_per_address as usize,
            exempt: limits.trusted_proxies.clone(),
            // Streams hear from their clients at least once per ping interval.
            idle: Duration::from_secs(args.ping_interval_secs * 2 + limits.request_timeout_secs),
            header_read_timeout: Duration::from_secs(limits.header_read_timeout_secs),
        }
    }
}

/// The connection cap when none is set: the open-file limit (raised to
/// its hard limit first) less a reserve for the database, logs and
/// migrations.
fn default_connection_cap(database_pool: u32) -> usize {
    const RESERVE: u64 = 128;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit.min(Semaphore::MAX_PERMITS as u64),
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-file limit; assuming 1024");
            1024
        }
    };
    let reserve = RESERVE + 2 * u64::from(database_pool);
    usize::try_from(limit.saturating_sub(reserve).max(16)).unwrap_or(usize::MAX)
}

/// An IPv6 address as its /64, which one subscriber usually holds whole;
/// an IPv4 address as it is. What the per-address caps and limits count.
pub fn per_subscriber(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
    }
}

/// Serves `app` on every connection `listener` admits until `shutdown`
/// completes; then stops accepting, lets each connection finish the
/// request it is serving (idle ones close at once), and returns when they
/// have. Streams already upgraded are not waited for: the caller closes
/// them (1001).
pub async fn serve(
    mut listener: CappedListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let header_read_timeout = listener.limits().header_read_timeout;
    // Every connection task holds a receiver: the sender's `closed()`
    // says when the last is done.
    let (draining, drained) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = app
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo(ClientAddr(peer)));
                request
            });
        let mut drain = drained.clone();
        tokio::spawn(async move {
            let mut shutting_down = false;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let connection = http
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
                .with_upgrades();
            let mut connection = pin!(connection);
            loop {
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(error) = served {
                            tracing::debug!(%peer, %error, "connection ended");
                        }
                        break;
                    }
                    _ = drain.wait_for(|draining| *draining), if !shutting_down => {
                        connection.as_mut().graceful_shutdown();
                        shutting_down = true;
                    }
                }
            }
        });
    }
    drop(drained);
    // Dropping the listener stops new connections at once.
    drop(listener);
    let _ = draining.send(true);
    draining.closed().await;
    Ok(())
}
