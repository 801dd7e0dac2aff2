//! Connections, before any request: the cap on connections open at once
//! (503 beyond it), the cap per client address (so that one host cannot
//! take the whole cap), the few seconds a client has to send each
//! request's head, the cut of a connection on which nothing moves, and the
//! loop that serves HTTP/1.1, and the upgrades to streams, on each.
//!
//! A slow client (slowloris: one header byte every few seconds) costs a
//! place only until its head is due; a host that opens many costs only its
//! own share of the places.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use super::limits::per_subscriber;

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

/// A listener that holds at most `cap` connections open at once, and at
/// most `per_address` from one client address, and answers the ones beyond
/// with a problem document (503 over the total, 429 over an address's
/// share), instead of running the process out of file descriptors. A
/// refused connection is answered once its client has sent its request's
/// head, for at most 2 s.
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
/// an answer. Part of the descriptor reserve of [`default_connection_cap`].
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
                    let counted = Counted {
                        stream,
                        _permit: permit,
                        _share: share,
                        idle: self.limits.idle,
                        last_moved: tokio::time::Instant::now(),
                        silent_until: Box::pin(tokio::time::sleep(self.limits.idle)),
                    };
                    return (counted, peer);
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
        let mut by_address = lock(&self.by_address);
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
pub struct AddressShare {
    counted: Option<(IpAddr, ByAddress)>,
}

impl Drop for AddressShare {
    fn drop(&mut self) {
        let Some((address, by_address)) = self.counted.take() else {
            return;
        };
        let mut by_address = lock(&by_address);
        if let Some(held) = by_address.get_mut(&address) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                by_address.remove(&address);
            }
        }
    }
}

/// A poisoned lock only means another connection panicked while holding
/// it; the counts inside are still whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    let header_read_timeout = listener.limits.header_read_timeout;
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

/// A connection that holds its place under the caps until dropped (also
/// after an upgrade to a stream, which keeps the connection). A connection
/// on which nothing moved for the idle time, neither a byte read nor one
/// written, is disconnected: an idle stream must not hold a place for
/// ever. Writes count so that a long replay, during which the client has
/// nothing to say, is not cut.
pub struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    _share: AddressShare,
    idle: Duration,
    /// When a byte last moved (writes only note it: they are the hot path).
    last_moved: tokio::time::Instant,
    silent_until: Pin<Box<tokio::time::Sleep>>,
}

impl Counted {
    fn moved(&mut self) {
        self.last_moved = tokio::time::Instant::now();
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            match Pin::new(&mut this.stream).poll_read(cx, buf) {
                Poll::Ready(result) => {
                    this.moved();
                    return Poll::Ready(result);
                }
                Poll::Pending => {}
            }
            if this.silent_until.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The timer went off: only idle if nothing moved since it was set.
            let deadline = this.last_moved + this.idle;
            if deadline <= tokio::time::Instant::now() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "nothing moved on the connection for too long",
                )));
            }
            this.silent_until.as_mut().reset(deadline);
        }
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The connection cap when none is set: the open-file limit (raised to
/// its hard limit first) less a reserve for the database, logs and
/// migrations.
pub fn default_connection_cap(database_pool: u32) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connection under the cap, accepted from a real loopback client.
    async fn counted(idle: Duration) -> (Counted, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let client = TcpStream::connect(address).await.expect("connect");
        let (stream, _) = listener.accept().await.expect("accept");
        let permit = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a place");
        let counted = Counted {
            stream,
            _permit: permit,
            _share: AddressShare::default(),
            idle,
            last_moved: tokio::time::Instant::now(),
            silent_until: Box::pin(tokio::time::sleep(idle)),
        };
        (counted, client)
    }

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
        assert!(lock(&unlimited.by_address).is_empty());
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_when_nothing_moves_either_way() {
        let idle = Duration::from_millis(300);
        // The client says nothing while the server keeps writing (a long
        // replay): for four idle times, the read stays open.
        let (mut server_side, _client) = counted(idle).await;
        let mut buffer = [0u8; 16];
        let started = tokio::time::Instant::now();
        let mut read_at = None;
        let mut writes = 0;
        while started.elapsed() < idle * 4 {
            tokio::select! {
                read = server_side.read(&mut buffer) => {
                    read_at = Some((started.elapsed(), read.map_err(|e| e.kind())));
                    break;
                }
                () = tokio::time::sleep(idle / 6) => {
                    server_side.write_all(b"frame").await.expect("write");
                    writes += 1;
                }
            }
        }
        assert!(
            read_at.is_none(),
            "cut while writing: {read_at:?} after {writes} writes"
        );
        // Once nothing moves, the idle time later the read fails.
        let read = tokio::time::timeout(idle * 4, server_side.read(&mut buffer))
            .await
            .expect("the idle connection was not cut");
        assert_eq!(
            read.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::TimedOut)
        );
        // A client that speaks keeps it open, of course.
        let (mut server_side, mut client2) = counted(idle).await;
        for _ in 0..8 {
            tokio::time::sleep(idle / 3).await;
            client2.write_all(b"pong").await.expect("write");
            let n = server_side.read(&mut buffer).await.expect("read");
            assert!(n > 0);
        }
    }
}
