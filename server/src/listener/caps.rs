//! The caps on connections open at once: in all, and per client address.
//!
//! A connection beyond either is answered with a problem document (503
//! over the total, 429 over an address's share) instead of running the
//! process out of file descriptors, and closed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{per_subscriber, ConnectionLimits, Counted};

/// A listener that holds at most `cap` connections open at once, and at
/// most `per_address` from one client address, and answers the ones beyond
/// with a problem document (503 over the total, 429 over an address's
/// share). A refused connection is answered once its client has sent its
/// request's head, for at most 2 s.
pub struct CappedListener {
    inner: TcpListener,
    open: Arc<Semaphore>,
    /// Refusals being answered; each holds a descriptor too.
    refusing: Arc<Semaphore>,
    by_address: ByAddress,
    limits: ConnectionLimits,
    /// Whether the last connection was refused (to log once per episode).
    at_cap: bool,
}

/// Connections open by client address.
type ByAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Refusals answered at once; beyond them a connection is closed without
/// an answer. Part of the descriptor reserve of the default cap.
const REFUSING: usize = 32;

/// What a connection beyond the total cap is told, whole.
const OVER_CAP: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the server is at its connection limit; try again shortly","code":"too_many_connections"}"#;

/// What a connection beyond its address's share is told, whole.
const OVER_SHARE: &str = r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"this address already holds as many open connections as it may; close one first","code":"rate_limited"}"#;

impl CappedListener {
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> CappedListener {
        CappedListener {
            inner,
            open: Arc::new(Semaphore::new(limits.cap)),
            refusing: Arc::new(Semaphore::new(REFUSING)),
            by_address: Arc::default(),
            limits,
            at_cap: false,
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// The next connection that may be served; the ones refused meanwhile
    /// are answered (or closed) on the side.
    pub async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let (stream, peer) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before it
                    // was taken: wait a little rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(share) = self.share_of(peer.ip()) else {
                metrics::counter!(crate::metrics::RATE_LIMITED, "limit" => "connections_per_address")
                    .increment(1);
                tracing::debug!(%peer, "refusing a connection: its address holds its share");
                self.refuse(stream, Refusal::OverShare);
                continue;
            };
            match self.open.clone().try_acquire_owned() {
                Ok(permit) => {
                    if std::mem::take(&mut self.at_cap) {
                        tracing::info!("below the connection limit again");
                    }
                    let place = Place {
                        _permit: permit,
                        _share: share,
                    };
                    return (Counted::new(stream, place, self.limits.idle), peer);
                }
                Err(_) => {
                    metrics::counter!(crate::metrics::RATE_LIMITED, "limit" => "connections")
                        .increment(1);
                    if !std::mem::replace(&mut self.at_cap, true) {
                        tracing::warn!("at the connection limit: refusing connections with 503");
                    }
                    tracing::debug!(%peer, "refusing a connection");
                    self.refuse(stream, Refusal::OverCap);
                }
            }
        }
    }

    /// Takes a place in the peer's share, or `None` when it holds its
    /// whole share. Trusted proxies (and every peer, without a cap) take
    /// an empty share.
    fn share_of(&self, peer: IpAddr) -> Option<AddressShare> {
        let peer = peer.to_canonical();
        if self.limits.per_address == 0 || self.limits.exempt.iter().any(|net| net.contains(&peer))
        {
            return Some(AddressShare::default());
        }
        let address = per_subscriber(peer);
        let mut by_address = self.by_address.lock();
        let held = by_address.entry(address).or_insert(0);
        if *held >= self.limits.per_address {
            return None;
        }
        *held += 1;
        Some(AddressShare {
            counted: Some((address, self.by_address.clone())),
        })
    }

    /// Answers a refused connection on the side; beyond the refusals being
    /// answered, it is closed at once: answering must not run out of
    /// descriptors either.
    fn refuse(&self, stream: TcpStream, refusal: Refusal) {
        if let Ok(refusing) = self.refusing.clone().try_acquire_owned() {
            tokio::spawn(async move {
                refuse(stream, refusal).await;
                drop(refusing);
            });
        }
    }
}

/// What an admitted connection holds under the caps until it is dropped:
/// its place in the total, and in its address's share.
#[derive(Debug)]
pub struct Place {
    _permit: OwnedSemaphorePermit,
    _share: AddressShare,
}

#[cfg(test)]
impl Place {
    /// A place under a cap of its own, for tests of a connection.
    pub fn alone() -> Place {
        let permit = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a place");
        Place {
            _permit: permit,
            _share: AddressShare::default(),
        }
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    OverCap,
    OverShare,
}

/// Answers a refused connection once its client has sent the head of its
/// request (an answer before the request confuses HTTP clients), then
/// closes it. A client that sends nothing is dropped after a while.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let mut head = Vec::with_capacity(1024);
    let read_head = async {
        let mut buffer = [0u8; 1024];
        while head.len() < 8 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
        }
        true
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(2), read_head).await,
        Ok(true)
    ) {
        return;
    }
    let (status, body) = match refusal {
        Refusal::OverCap => ("503 Service Unavailable", OVER_CAP),
        Refusal::OverShare => ("429 Too Many Requests", OVER_SHARE),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

/// One place in an address's share, given back when dropped.
#[derive(Debug, Default)]
struct AddressShare {
    counted: Option<(IpAddr, ByAddress)>,
}

impl Drop for AddressShare {
    fn drop(&mut self) {
        let Some((address, by_address)) = self.counted.take() else {
            return;
        };
        let mut by_address = by_address.lock();
        if let Some(held) = by_address.get_mut(&address) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                by_address.remove(&address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener_limits(per_address: usize, exempt: &[&str]) -> ConnectionLimits {
        ConnectionLimits {
            cap: 100,
            per_address,
            exempt: exempt
                .iter()
                .map(|net| net.parse().expect("a network"))
                .collect(),
            idle: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(5),
        }
    }

    async fn capped(limits: ConnectionLimits) -> CappedListener {
        let inner = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        CappedListener::new(inner, limits)
    }

    #[tokio::test]
    async fn an_address_takes_at_most_its_share_and_gets_it_back() {
        let listener = capped(listener_limits(2, &[])).await;
        let host: IpAddr = "192.0.2.1".parse().expect("address");
        let neighbour: IpAddr = "192.0.2.2".parse().expect("address");
        let first = listener.share_of(host).expect("first");
        let _second = listener.share_of(host).expect("second");
        assert!(listener.share_of(host).is_none(), "a third");
        let _other = listener.share_of(neighbour).expect("another address");
        drop(first);
        let _again = listener.share_of(host).expect("a place again");
        // An IPv6 host counts by its /64; IPv4 in IPv6 as IPv4.
        let v6 = |a: &str| a.parse::<IpAddr>().expect("address");
        let _a = listener.share_of(v6("2001:db8:1:2::1")).expect("first");
        let _b = listener.share_of(v6("2001:db8:1:2::ffff")).expect("second");
        assert!(listener.share_of(v6("2001:db8:1:2:abcd::9")).is_none());
        assert!(listener.share_of(v6("::ffff:192.0.2.1")).is_none());
    }

    #[tokio::test]
    async fn trusted_proxies_and_no_cap_take_no_share() {
        let listener = capped(listener_limits(1, &["10.0.0.0/8"])).await;
        let proxy: IpAddr = "10.1.2.3".parse().expect("address");
        let shares: Vec<_> = (0..10).map(|_| listener.share_of(proxy)).collect();
        assert!(shares.iter().all(Option::is_some));
        let unlimited = capped(listener_limits(0, &[])).await;
        let host: IpAddr = "192.0.2.1".parse().expect("address");
        let shares: Vec<_> = (0..10).map(|_| unlimited.share_of(host)).collect();
        assert!(shares.iter().all(Option::is_some));
        assert!(unlimited.by_address.lock().is_empty());
    }
}
