//! Defences against floods and abuse: rate limits (429 with `Retry-After`),
//! the cap on a token's live streams, request timeouts, the total
//! connection cap (503), and the browser origins allowed to open streams.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiContext, ApiError};
use crate::config::{LimitArgs, Switch};

/// The rate limits, each named as in `p4p_rate_limited_total{limit=...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    AlertsPerStore,
    AlertEditsPerStore,
    PledgesPerAddress,
    FailedAuthsPerAddress,
    StreamConnectsPerToken,
    StreamsPerToken,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::AlertsPerStore => "alerts_per_store",
            Limit::AlertEditsPerStore => "alert_edits_per_store",
            Limit::PledgesPerAddress => "pledges_per_address",
            Limit::FailedAuthsPerAddress => "failed_auths_per_address",
            Limit::StreamConnectsPerToken => "stream_connects_per_token",
            Limit::StreamsPerToken => "streams_per_token",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Limit::AlertsPerStore => "this store has posted its allowance of alerts for the hour",
            Limit::AlertEditsPerStore => {
                "this store has made its allowance of alert edits for the hour"
            }
            Limit::PledgesPerAddress => "too many pledges from this address this hour",
            Limit::FailedAuthsPerAddress => {
                "too many unknown or revoked tokens from this address; wait before trying again"
            }
            Limit::StreamConnectsPerToken => {
                "this token has opened too many streams this hour; reconnect with backoff"
            }
            Limit::StreamsPerToken => {
                "this token already holds as many open streams as it may; close one first"
            }
        }
    }
}

/// A refusal: which limit, and when to try again.
pub fn refused(limit: Limit, retry_after: Duration) -> ApiError {
    metrics::counter!(crate::metrics::RATE_LIMITED, "limit" => limit.name()).increment(1);
    ApiError::RateLimited {
        code: "rate_limited",
        detail: format!("{}; try again in {}", limit.detail(), in_words(retry_after)),
        retry_after,
    }
}

/// A wait in whole seconds, rounded up (never too early), at least 1:
/// what `Retry-After` says.
pub fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// A wait as a person reads it: "40 s", "12 min".
fn in_words(wait: Duration) -> String {
    let seconds = whole_seconds(wait);
    if seconds < 120 {
        format!("{seconds} s")
    } else {
        format!("{} min", seconds.div_ceil(60))
    }
}

/// One hourly allowance per key; none when rate limits are off.
struct Hourly<K: Hash + Eq + Clone> {
    limit: Limit,
    limiter: Option<DefaultKeyedRateLimiter<K>>,
}

impl<K: Hash + Eq + Clone> Hourly<K> {
    fn new(limit: Limit, per_hour: u32, on: bool) -> Hourly<K> {
        let limiter = NonZeroU32::new(per_hour)
            .filter(|_| on)
            .map(|n| RateLimiter::keyed(Quota::per_hour(n)));
        Hourly { limit, limiter }
    }

    /// Takes one from `key`'s allowance, or says when there is one again.
    fn take(&self, key: &K) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            refused(
                self.limit,
                not_until.wait_time_from(DefaultClock::default().now()),
            )
        })
    }

    fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Every limit the server keeps, shared by all requests.
pub struct Limits {
    alerts: Hourly<i64>,
    alert_edits: Hourly<i64>,
    pledges: Hourly<IpAddr>,
    failed_auths: Hourly<IpAddr>,
    /// Addresses that used up their failed authentications, and until when
    /// every token they present is refused without being looked up.
    guessing: Mutex<HashMap<IpAddr, Instant>>,
    stream_connects: Hourly<i64>,
    streams_per_token: u32,
    /// Open streams by token id.
    open_streams: Arc<Mutex<HashMap<i64, u32>>>,
    pub request_timeout: Duration,
    allowed_origins: Vec<String>,
    trusted_proxies: Vec<ipnet::IpNet>,
}

impl Limits {
    pub fn new(args: &LimitArgs) -> Limits {
        let on = args.rate_limits == Switch::On;
        Limits {
            alerts: Hourly::new(Limit::AlertsPerStore, args.alerts_per_store_per_hour, on),
            alert_edits: Hourly::new(
                Limit::AlertEditsPerStore,
                args.alert_edits_per_store_per_hour,
                on,
            ),
            pledges: Hourly::new(
                Limit::PledgesPerAddress,
                args.pledges_per_address_per_hour,
                on,
            ),
            failed_auths: Hourly::new(
                Limit::FailedAuthsPerAddress,
                args.failed_auths_per_address_per_hour,
                on,
            ),
            guessing: Mutex::default(),
            stream_connects: Hourly::new(
                Limit::StreamConnectsPerToken,
                args.stream_connects_per_token_per_hour,
                on,
            ),
            streams_per_token: args.streams_per_token,
            open_streams: Arc::default(),
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            allowed_origins: args
                .allowed_origins
                .iter()
                .map(|origin| origin.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|origin| !origin.is_empty())
                .collect(),
            trusted_proxies: args.trusted_proxies.clone(),
        }
    }

    /// The client a request counts against for the per-address limits:
    /// the connection's peer, or, when the peer is a trusted proxy, the
    /// rightmost address of X-Forwarded-For that is not one. IPv6 clients
    /// count by their /64, which one subscriber usually holds whole.
    pub fn client_of(
        &self,
        headers: &HeaderMap,
        extensions: &axum::http::Extensions,
    ) -> Option<IpAddr> {
        let peer = extensions
            .get::<axum::extract::ConnectInfo<ClientAddr>>()
            .map(|info| info.0 .0.ip())?;
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|net| net.contains(ip));
        let mut client = peer.to_canonical();
        if trusted(&client) {
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .collect::<Vec<_>>();
            for hop in forwarded.iter().rev() {
                let Ok(hop) = hop.trim().parse::<IpAddr>() else {
                    break;
                };
                client = hop.to_canonical();
                if !trusted(&client) {
                    break;
                }
            }
        }
        Some(per_subscriber(client))
    }

    /// A store posts a new alert.
    pub fn alert_posted(&self, store_id: i64) -> Result<(), ApiError> {
        self.alerts.take(&store_id)
    }

    /// A store edits one of its alerts.
    pub fn alert_edited(&self, store_id: i64) -> Result<(), ApiError> {
        self.alert_edits.take(&store_id)
    }

    /// A pledge arrives from `address`.
    pub fn pledge_sent(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        match address {
            Some(address) => self.pledges.take(&address),
            None => Ok(()),
        }
    }

    /// Before a token is looked up: refused while `address` is held for
    /// guessing.
    pub fn may_authenticate(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(address) = address else {
            return Ok(());
        };
        let mut guessing = lock(&self.guessing);
        match guessing.get(&address) {
            Some(until) if *until > Instant::now() => Err(refused(
                Limit::FailedAuthsPerAddress,
                until.saturating_duration_since(Instant::now()),
            )),
            Some(_) => {
                guessing.remove(&address);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// After an unknown or revoked token: the 401 to answer, or 429 once
    /// `address` has used up its allowance (and is then held).
    pub fn authentication_failed(
        &self,
        address: Option<IpAddr>,
        unauthorized: ApiError,
    ) -> ApiError {
        let Some(address) = address else {
            return unauthorized;
        };
        match self.failed_auths.take(&address) {
            Ok(()) => unauthorized,
            Err(refusal) => {
                if let ApiError::RateLimited { retry_after, .. } = &refusal {
                    let mut guessing = lock(&self.guessing);
                    let now = Instant::now();
                    guessing.retain(|_, until| *until > now);
                    guessing.insert(address, now + *retry_after);
                }
                refusal
            }
        }
    }

    /// A token opens a stream: counted against its hourly connections and
    /// its open streams. The stream holds the returned guard while open.
    pub fn stream_opened(
        &self,
        token_id: i64,
        ping_interval: Duration,
    ) -> Result<StreamGuard, ApiError> {
        let mut open = lock(&self.open_streams);
        let count = open.get(&token_id).copied().unwrap_or(0);
        if count >= self.streams_per_token {
            // A dead connection of this token is found within two pings.
            return Err(refused(Limit::StreamsPerToken, ping_interval * 2));
        }
        // Only a connection that may open takes from the hourly allowance.
        self.stream_connects.take(&token_id)?;
        open.insert(token_id, count + 1);
        Ok(StreamGuard {
            token_id,
            open_streams: self.open_streams.clone(),
        })
    }

    /// A stream upgrade from a browser page is allowed only from the
    /// configured origins; clients that send no Origin are not browsers.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
        if self
            .allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "origin_not_allowed",
            format!(
                "streams may not be opened from the web origin {origin:?}; the server's operator can allow it with --allowed-origins"
            ),
        ))
    }

    /// Drops the state of keys that have their whole allowance back.
    pub fn forget_idle(&self) {
        self.alerts.forget_idle();
        self.alert_edits.forget_idle();
        self.pledges.forget_idle();
        self.failed_auths.forget_idle();
        self.stream_connects.forget_idle();
        let now = Instant::now();
        lock(&self.guessing).retain(|_, until| *until > now);
    }
}

/// Counts one open stream of a token until dropped.
#[derive(Debug)]
pub struct StreamGuard {
    token_id: i64,
    open_streams: Arc<Mutex<HashMap<i64, u32>>>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut open = lock(&self.open_streams);
        if let Some(count) = open.get_mut(&self.token_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.token_id);
            }
        }
    }
}

/// A poisoned lock only means another request panicked while holding it;
/// the counts inside are still whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Answers 503 `timeout` for a request that takes longer than the limit.
/// What it was writing goes on (writes run in their own task), so a 503
/// here never means that a write was half done.
pub async fn timeout(State(ctx): State<ApiContext>, request: Request, next: Next) -> Response {
    let limit = ctx.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(seconds = limit.as_secs(), "request timed out");
            axum::response::IntoResponse::into_response(ApiError::TimedOut(limit))
        }
    }
}

/// An IPv6 address as its /64; an IPv4 address as it is.
fn per_subscriber(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
    }
}

/// The peer of a connection, for `ConnectInfo`.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, CappedListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, CappedListener>) -> ClientAddr {
        ClientAddr(*stream.remote_addr())
    }
}

/// A listener that holds at most `cap` connections open at once and
/// answers the ones beyond with a 503 problem document, instead of
/// running the process out of file descriptors. A refused connection is
/// answered once its client has sent its request's head, for at most 2 s.
pub struct CappedListener {
    inner: TcpListener,
    open: Arc<Semaphore>,
    /// Refusals being answered; each holds a descriptor too.
    refusing: Arc<Semaphore>,
    /// Whether the last connection was refused (to log once per episode).
    at_cap: bool,
    idle: Duration,
}

/// Refusals answered at once; beyond them a connection is closed without
/// an answer. Part of the descriptor reserve of [`default_connection_cap`].
const REFUSING: usize = 32;

/// What a refused connection is told, whole.
const REFUSAL_BODY: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the server is at its connection limit; try again shortly","code":"too_many_connections"}"#;

impl CappedListener {
    /// `idle`: how long a connection may send nothing before it is closed
    /// (a stream's client answers every ping, so it must exceed the ping
    /// interval).
    pub fn new(inner: TcpListener, cap: usize, idle: Duration) -> CappedListener {
        CappedListener {
            inner,
            open: Arc::new(Semaphore::new(cap)),
            refusing: Arc::new(Semaphore::new(REFUSING)),
            at_cap: false,
            idle,
        }
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let (stream, address) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before it
                    // was taken: wait a little rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self.open.clone().try_acquire_owned() {
                Ok(permit) => {
                    if std::mem::take(&mut self.at_cap) {
                        tracing::info!("below the connection limit again");
                    }
                    let counted = Counted {
                        stream,
                        _permit: permit,
                        idle: self.idle,
                        last_moved: tokio::time::Instant::now(),
                        silent_until: Box::pin(tokio::time::sleep(self.idle)),
                    };
                    return (counted, address);
                }
                Err(_) => {
                    metrics::counter!(crate::metrics::RATE_LIMITED, "limit" => "connections")
                        .increment(1);
                    if !std::mem::replace(&mut self.at_cap, true) {
                        tracing::warn!("at the connection limit: refusing connections with 503");
                    }
                    tracing::debug!(%address, "refusing a connection");
                    // Beyond the refusals being answered, the connection is
                    // closed at once: answering must not run out of
                    // descriptors either.
                    if let Ok(refusing) = self.refusing.clone().try_acquire_owned() {
                        tokio::spawn(async move {
                            refuse(stream).await;
                            drop(refusing);
                        });
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Answers a connection beyond the cap once its client has sent the head
/// of its request (an answer before the request confuses HTTP clients),
/// then closes it. A client that sends nothing is dropped after a while.
async fn refuse(mut stream: TcpStream) {
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
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

/// A connection that holds its place under the cap until dropped (also
/// after an upgrade to a stream, which keeps the connection). A connection
/// on which nothing moved for the idle time, neither a byte read nor one
/// written, is disconnected: one that never finishes its request, or an
/// idle keep-alive, must not hold a place for ever. Writes count so that a
/// long replay, during which the client has nothing to say, is not cut.
pub struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
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
    use clap::Parser;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(args: &[&str]) -> Limits {
        let mut argv = vec!["p4p-server"];
        argv.extend(args);
        let cli = crate::config::Cli::try_parse_from(argv).expect("arguments");
        Limits::new(&cli.serve.limits)
    }

    fn retry_after(error: ApiError) -> Duration {
        match error {
            ApiError::RateLimited { retry_after, .. } => retry_after,
            other => panic!("not a rate limit: {other:?}"),
        }
    }

    #[test]
    fn an_hourly_allowance_is_taken_whole_then_refills_evenly() {
        let limits = limits(&["--alerts-per-store-per-hour", "4"]);
        for _ in 0..4 {
            limits.alert_posted(7).expect("within the allowance");
        }
        let wait = retry_after(limits.alert_posted(7).expect_err("over"));
        // One alert comes back every 15 minutes.
        assert!(wait <= Duration::from_secs(15 * 60), "{wait:?}");
        assert!(wait > Duration::from_secs(14 * 60), "{wait:?}");
        limits.alert_posted(8).expect("another store");
    }

    #[test]
    fn off_turns_every_rate_limit_off_but_not_the_stream_cap() {
        let limits = limits(&[
            "--rate-limits",
            "off",
            "--alerts-per-store-per-hour",
            "1",
            "--pledges-per-address-per-hour",
            "1",
            "--failed-auths-per-address-per-hour",
            "1",
            "--stream-connects-per-token-per-hour",
            "1",
            "--streams-per-token",
            "1",
        ]);
        let address: IpAddr = "192.0.2.1".parse().expect("address");
        for _ in 0..10 {
            limits.alert_posted(1).expect("off");
            limits.pledge_sent(Some(address)).expect("off");
            let failed = limits.authentication_failed(Some(address), ApiError::Unauthorized("x"));
            assert!(matches!(failed, ApiError::Unauthorized(_)));
            limits.may_authenticate(Some(address)).expect("off");
        }
        let ping = Duration::from_secs(30);
        let open = limits.stream_opened(1, ping).expect("the first stream");
        let refused = limits.stream_opened(1, ping).expect_err("the cap stays");
        assert_eq!(retry_after(refused), ping * 2);
        drop(open);
        limits.stream_opened(1, ping).expect("room again");
    }

    #[test]
    fn an_address_that_guesses_is_held_for_every_token() {
        let limits = limits(&["--failed-auths-per-address-per-hour", "2"]);
        let guesser: IpAddr = "192.0.2.1".parse().expect("address");
        let neighbour: IpAddr = "192.0.2.2".parse().expect("address");
        for _ in 0..2 {
            limits
                .may_authenticate(Some(guesser))
                .expect("not held yet");
            let failed = limits.authentication_failed(Some(guesser), ApiError::Unauthorized("x"));
            assert!(matches!(failed, ApiError::Unauthorized(_)));
        }
        let failed = limits.authentication_failed(Some(guesser), ApiError::Unauthorized("x"));
        assert!(retry_after(failed) > Duration::from_secs(60));
        let held = limits.may_authenticate(Some(guesser)).expect_err("held");
        assert!(retry_after(held) > Duration::from_secs(60));
        limits
            .may_authenticate(Some(neighbour))
            .expect("another address");
        limits.forget_idle();
        limits
            .may_authenticate(Some(guesser))
            .expect_err("still held");
    }

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
            idle,
            last_moved: tokio::time::Instant::now(),
            silent_until: Box::pin(tokio::time::sleep(idle)),
        };
        (counted, client)
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

    #[test]
    fn the_client_is_the_peer_or_what_a_trusted_proxy_forwards() {
        let limits = limits(&["--trusted-proxies", "10.0.0.0/8,192.0.2.7"]);
        let client = |peer: &str, forwarded: &[&str]| {
            let mut extensions = axum::http::Extensions::new();
            let peer: SocketAddr = peer.parse().expect("peer");
            extensions.insert(axum::extract::ConnectInfo(ClientAddr(peer)));
            let mut headers = HeaderMap::new();
            for value in forwarded {
                headers.append("x-forwarded-for", value.parse().expect("header"));
            }
            limits
                .client_of(&headers, &extensions)
                .expect("an address")
                .to_string()
        };
        // Anyone else's X-Forwarded-For is ignored.
        assert_eq!(client("203.0.113.9:5000", &["1.2.3.4"]), "203.0.113.9");
        // From a proxy: the rightmost hop that is not a proxy, so that a
        // client cannot choose its address by sending the header itself.
        assert_eq!(client("10.1.2.3:5000", &["6.6.6.6, 1.2.3.4"]), "1.2.3.4");
        assert_eq!(
            client(
                "10.1.2.3:5000",
                &["6.6.6.6, 1.2.3.4, 192.0.2.7", "10.9.9.9"]
            ),
            "1.2.3.4"
        );
        // Nothing forwarded, or nonsense: the proxy itself, or the last
        // good hop.
        assert_eq!(client("10.1.2.3:5000", &[]), "10.1.2.3");
        assert_eq!(client("10.1.2.3:5000", &["junk, 1.2.3.4"]), "1.2.3.4");
        // IPv6 clients count by their /64; IPv4 in IPv6 as IPv4.
        assert_eq!(
            client("[2001:db8:1:2:aaaa::1]:5000", &[]),
            client("[2001:db8:1:2:bbbb::9]:6000", &[])
        );
        assert_eq!(client("[::ffff:203.0.113.9]:5000", &[]), "203.0.113.9");
    }

    #[test]
    fn origins_match_the_allow_list_exactly() {
        let limits = limits(&[
            "--allowed-origins",
            "https://Console.example.org/, https://b.example",
        ]);
        let with = |origin: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                axum::http::header::ORIGIN,
                origin.parse().expect("header value"),
            );
            limits.origin_allowed(&headers).is_ok()
        };
        assert!(limits.origin_allowed(&HeaderMap::new()).is_ok());
        assert!(with("https://console.example.org"));
        assert!(with("https://b.example"));
        assert!(!with("https://console.example.org.evil.com"));
        assert!(!with("http://console.example.org"));
        assert!(!with("null"));
    }
}
