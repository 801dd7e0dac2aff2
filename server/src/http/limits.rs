//! Defences against floods and abuse: rate limits (429 with `Retry-After`),
//! the hold on addresses that guess tokens, the caps on a token's and a
//! store's live streams, the turns replays take, request timeouts, and
//! the browser origins allowed to open streams. The caps on connections
//! live in `connections`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connections::ClientAddr;
use super::guessing::GuessingHold;
use super::{ApiContext, ApiError};
use crate::config::{LimitArgs, Switch};
use crate::domain::secret::SecretHash;

/// The rate limits, each named as in `p4p_rate_limited_total{limit=...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    AlertsPerStore,
    AlertEditsPerStore,
    PledgesPerAddress,
    FailedAuthsPerAddress,
    StreamConnectsPerToken,
    StreamsPerToken,
    StreamsPerStore,
    TokensPerAccount,
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
            Limit::StreamsPerStore => "streams_per_store",
            Limit::TokensPerAccount => "tokens_per_account",
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
            Limit::StreamsPerStore => {
                "this store's tokens already hold as many open streams as a store may; close one first"
            }
            Limit::TokensPerAccount => "this account has made its allowance of tokens for the hour",
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

/// Who a limit counts against when a token acts: its store, for store
/// tokens (every device of a store shares the store's allowance); the
/// token itself, for staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Account {
    Store(i64),
    Staff { token_id: i64 },
}

impl Account {
    pub fn of(store_id: Option<i64>, token_id: i64) -> Account {
        match store_id {
            Some(id) => Account::Store(id),
            None => Account::Staff { token_id },
        }
    }
}

/// Replays one account runs at once; the others wait their turn.
const REPLAYS_PER_ACCOUNT: usize = 1;
/// The events an account's replays may read, at once and then per second:
/// what a replay costs is the events it reads (most of which a store's
/// place filters out). A member resuming, even from 0 on a large network,
/// starts at once; one replaying over and over is slowed to this pace.
const REPLAY_EVENTS_AT_ONCE: u32 = 20_000;
const REPLAY_EVENTS_PER_SECOND: u32 = 2_000;

/// Every limit the server keeps, shared by all requests.
pub struct Limits {
    alerts: Hourly<i64>,
    alert_edits: Hourly<i64>,
    pledges: Hourly<IpAddr>,
    failed_auths: Hourly<IpAddr>,
    /// Addresses that used up their failed authentications, and the tokens
    /// that still pass their hold.
    guessing: GuessingHold,
    tokens: Hourly<Account>,
    stream_connects: Hourly<i64>,
    streams_per_token: u32,
    streams_per_store: u32,
    /// Open streams by token id, and by store id.
    open_streams: Arc<Mutex<OpenStreams>>,
    /// Replays running at once on this node, in all (as many as it has
    /// cores: a replay is busy work) ...
    replays: Arc<Semaphore>,
    /// ... and per account, ...
    replaying: Mutex<HashMap<Account, Arc<Semaphore>>>,
    /// ... within each account's budget of events read.
    replay_budget: DefaultKeyedRateLimiter<Account>,
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
            guessing: GuessingHold::default(),
            tokens: Hourly::new(Limit::TokensPerAccount, args.tokens_per_store_per_hour, on),
            stream_connects: Hourly::new(
                Limit::StreamConnectsPerToken,
                args.stream_connects_per_token_per_hour,
                on,
            ),
            streams_per_token: args.streams_per_token,
            streams_per_store: args.streams_per_store,
            open_streams: Arc::default(),
            replays: Arc::new(Semaphore::new(replays_at_once())),
            replaying: Mutex::default(),
            replay_budget: RateLimiter::keyed(replay_budget()),
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
    /// guessing, unless `token` has been seen valid from it recently.
    pub fn may_authenticate(
        &self,
        address: Option<IpAddr>,
        token: &SecretHash,
    ) -> Result<(), ApiError> {
        let Some(address) = address else {
            return Ok(());
        };
        match self.guessing.holds(address, token) {
            Some(wait) => Err(refused(Limit::FailedAuthsPerAddress, wait)),
            None => Ok(()),
        }
    }

    /// `token` was found valid from `address`: it will pass a hold there.
    pub fn authenticated(&self, address: Option<IpAddr>, token: &SecretHash) {
        if let (Some(address), true) = (address, self.failed_auths.limiter.is_some()) {
            self.guessing.authenticated(address, token);
        }
    }

    /// After an unknown or revoked token: the 401 to answer, or 429 once
    /// `address` has used up its allowance (and is then held).
    pub fn authentication_failed(
        &self,
        address: Option<IpAddr>,
        token: &SecretHash,
        unauthorized: ApiError,
    ) -> ApiError {
        let Some(address) = address else {
            return unauthorized;
        };
        self.guessing.failed(address, token);
        match self.failed_auths.take(&address) {
            Ok(()) => unauthorized,
            Err(refusal) => {
                if let ApiError::RateLimited { retry_after, .. } = &refusal {
                    self.guessing.hold(address, *retry_after);
                }
                refusal
            }
        }
    }

    /// An account makes a token (`POST /v1/me/tokens`): stores and admins
    /// alike, so that a stolen token cannot mint its way past the
    /// per-token limits.
    pub fn token_requested(&self, account: Account) -> Result<(), ApiError> {
        self.tokens.take(&account)
    }

    /// A token opens a stream: counted against its hourly connections and
    /// its open streams. The stream holds the returned guard while open.
    pub fn stream_opened(
        &self,
        token_id: i64,
        store_id: Option<i64>,
        ping_interval: Duration,
    ) -> Result<StreamGuard, ApiError> {
        let mut open = lock(&self.open_streams);
        // A dead connection is found within two pings.
        if open.by_token.get(&token_id).copied().unwrap_or(0) >= self.streams_per_token {
            return Err(refused(Limit::StreamsPerToken, ping_interval * 2));
        }
        if let Some(store_id) = store_id {
            if open.by_store.get(&store_id).copied().unwrap_or(0) >= self.streams_per_store {
                return Err(refused(Limit::StreamsPerStore, ping_interval * 2));
            }
        }
        // Only a connection that may open takes from the hourly allowance.
        self.stream_connects.take(&token_id)?;
        *open.by_token.entry(token_id).or_insert(0) += 1;
        if let Some(store_id) = store_id {
            *open.by_store.entry(store_id).or_insert(0) += 1;
        }
        Ok(StreamGuard {
            token_id,
            store_id,
            open_streams: self.open_streams.clone(),
        })
    }

    /// Waits for `account`'s turn to replay `events` events: one replay
    /// per account at once, within the account's budget of events read,
    /// and no more on the node than half its cores, so that one member
    /// replaying from 0 on many streams costs the others little. The
    /// replay runs while the turn is held.
    pub async fn replay_turn(&self, account: Account, events: i64) -> ReplayTurn {
        let own = lock(&self.replaying)
            .entry(account)
            .or_insert_with(|| Arc::new(Semaphore::new(REPLAYS_PER_ACCOUNT)))
            .clone();
        // Neither semaphore is ever closed.
        let own = own.acquire_owned().await.ok();
        let cost = u32::try_from(events.max(1))
            .unwrap_or(u32::MAX)
            .min(REPLAY_EVENTS_AT_ONCE);
        let cost = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        // A cost within the burst always fits, after a wait.
        while let Ok(Err(not_until)) = self.replay_budget.check_key_n(&account, cost) {
            tokio::time::sleep(not_until.wait_time_from(DefaultClock::default().now())).await;
        }
        let node = self.replays.clone().acquire_owned().await.ok();
        ReplayTurn {
            _own: own,
            _node: node,
        }
    }

    /// A stream upgrade from a browser page is allowed only from the
    /// configured origins; clients that send no Origin are not browsers.
    /// The server's own origin (its public URL's) may always open streams,
    /// whatever `--allowed-origins` says (API.md, the web app).
    pub fn with_own_origin(mut self, origin: &str) -> Limits {
        self.allowed_origins.push(origin.to_ascii_lowercase());
        self
    }

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
        self.tokens.forget_idle();
        self.guessing.forget_idle();
        // An account's semaphore nobody holds or waits for.
        lock(&self.replaying).retain(|_, turns| Arc::strong_count(turns) > 1);
        self.replay_budget.retain_recent();
        self.replay_budget.shrink_to_fit();
    }
}

/// Replays at once on the node: half its cores (at least one), so that
/// requests always have the other half.
fn replays_at_once() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores / 2).max(1)
}

fn replay_budget() -> Quota {
    const AT_ONCE: NonZeroU32 = NonZeroU32::new(REPLAY_EVENTS_AT_ONCE).expect("not zero");
    const PER_SECOND: NonZeroU32 = NonZeroU32::new(REPLAY_EVENTS_PER_SECOND).expect("not zero");
    Quota::per_second(PER_SECOND).allow_burst(AT_ONCE)
}

/// The streams open on this node, by token and by store.
#[derive(Debug, Default)]
struct OpenStreams {
    by_token: HashMap<i64, u32>,
    by_store: HashMap<i64, u32>,
}

/// Counts one open stream of a token (and of its store) until dropped.
#[derive(Debug)]
pub struct StreamGuard {
    token_id: i64,
    store_id: Option<i64>,
    open_streams: Arc<Mutex<OpenStreams>>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut open = lock(&self.open_streams);
        let open = &mut *open;
        count_down(&mut open.by_token, self.token_id);
        if let Some(store_id) = self.store_id {
            count_down(&mut open.by_store, store_id);
        }
    }
}

fn count_down(counts: &mut HashMap<i64, u32>, key: i64) {
    if let Some(count) = counts.get_mut(&key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(&key);
        }
    }
}

/// A turn to replay, held while the replay runs.
#[derive(Debug)]
pub struct ReplayTurn {
    _own: Option<OwnedSemaphorePermit>,
    _node: Option<OwnedSemaphorePermit>,
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
pub(crate) fn per_subscriber(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::net::SocketAddr;

    use crate::domain::secret::Secret;

    fn limits(args: &[&str]) -> Limits {
        let mut argv = vec!["p4p-server"];
        argv.extend(args);
        let cli = crate::config::Cli::try_parse_from(argv).expect("arguments");
        Limits::new(&cli.serve.limits)
    }

    fn hash(token: &str) -> SecretHash {
        Secret::presented(token).hash()
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
        let guess = hash("p4p_guess");
        for _ in 0..10 {
            limits.alert_posted(1).expect("off");
            limits.pledge_sent(Some(address)).expect("off");
            limits.token_requested(Account::Store(1)).expect("off");
            let failed =
                limits.authentication_failed(Some(address), &guess, ApiError::Unauthorized("x"));
            assert!(matches!(failed, ApiError::Unauthorized(_)));
            limits.may_authenticate(Some(address), &guess).expect("off");
        }
        let ping = Duration::from_secs(30);
        let open = limits
            .stream_opened(1, Some(1), ping)
            .expect("the first stream");
        let refused = limits
            .stream_opened(1, Some(1), ping)
            .expect_err("the cap stays");
        assert_eq!(retry_after(refused), ping * 2);
        drop(open);
        limits.stream_opened(1, Some(1), ping).expect("room again");
    }

    #[test]
    fn a_store_holds_at_most_its_streams_whatever_its_tokens() {
        let limits = limits(&["--streams-per-token", "2", "--streams-per-store", "3"]);
        let ping = Duration::from_secs(30);
        // Store 1's tokens 10, 11 and 12: three streams in all.
        let a = limits.stream_opened(10, Some(1), ping).expect("1");
        let _b = limits.stream_opened(10, Some(1), ping).expect("2");
        let _c = limits.stream_opened(11, Some(1), ping).expect("3");
        let refused = limits.stream_opened(12, Some(1), ping).expect_err("a 4th");
        assert_eq!(retry_after(refused), ping * 2);
        // Another store, and staff, are not affected.
        let _other = limits.stream_opened(20, Some(2), ping).expect("store 2");
        let _staff = limits.stream_opened(30, None, ping).expect("staff");
        let _staff2 = limits.stream_opened(30, None, ping).expect("staff");
        drop(a);
        let _d = limits.stream_opened(12, Some(1), ping).expect("room again");
    }

    #[test]
    fn minting_tokens_takes_from_the_account_s_hourly_allowance() {
        let limits = limits(&["--tokens-per-store-per-hour", "2"]);
        for _ in 0..2 {
            limits.token_requested(Account::Store(1)).expect("within");
        }
        let wait = retry_after(limits.token_requested(Account::Store(1)).expect_err("over"));
        assert!(wait > Duration::from_secs(60), "{wait:?}");
        limits
            .token_requested(Account::Store(2))
            .expect("another store");
        // An admin token is its own account.
        let admin = Account::of(None, 5);
        limits.token_requested(admin).expect("1");
        limits.token_requested(admin).expect("2");
        limits.token_requested(admin).expect_err("3");
        limits
            .token_requested(Account::of(None, 6))
            .expect("another admin");
    }

    #[tokio::test]
    async fn replays_take_turns_per_account() {
        let limits = Arc::new(limits(&[]));
        let first = limits.replay_turn(Account::Store(1), 10).await;
        // The same store waits for its turn (another store may too, for
        // the node's: half its cores).
        let turn = |store| {
            let limits = limits.clone();
            tokio::spawn(async move { limits.replay_turn(Account::Store(store), 10).await })
        };
        let same = turn(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!same.is_finished(), "two turns at once for one store");
        let other = turn(2);
        drop(first);
        for waiting in [other, same] {
            let turn = tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .expect("its turn came")
                .expect("task");
            drop(turn);
        }
        limits.forget_idle();
        assert!(lock(&limits.replaying).is_empty());
    }

    #[tokio::test]
    async fn an_account_replaying_over_and_over_is_slowed_to_its_budget() {
        let limits = limits(&[]);
        let started = tokio::time::Instant::now();
        // A replay from 0 of a large network starts at once...
        drop(limits.replay_turn(Account::Store(1), 5_000_000).await);
        assert!(started.elapsed() < Duration::from_secs(1));
        // ...and the next one waits for the budget to refill, while
        // another account's does not.
        let other = tokio::time::Instant::now();
        drop(limits.replay_turn(Account::Store(2), 1_000).await);
        assert!(other.elapsed() < Duration::from_secs(1));
        let again = tokio::time::Instant::now();
        drop(limits.replay_turn(Account::Store(1), 1_000).await);
        let waited = again.elapsed();
        assert!(waited >= Duration::from_millis(400), "{waited:?}");
    }

    #[test]
    fn an_address_that_guesses_is_held_for_every_token() {
        let limits = limits(&["--failed-auths-per-address-per-hour", "2"]);
        let guesser: IpAddr = "192.0.2.1".parse().expect("address");
        let neighbour: IpAddr = "192.0.2.2".parse().expect("address");
        let good = hash("p4p_good");
        let other_good = hash("p4p_other_good");
        limits.authenticated(Some(guesser), &good);
        limits.authenticated(Some(neighbour), &other_good);
        for n in 0..2 {
            let guess = hash(&format!("p4p_guess{n}"));
            limits
                .may_authenticate(Some(guesser), &guess)
                .expect("not held yet");
            let failed =
                limits.authentication_failed(Some(guesser), &guess, ApiError::Unauthorized("x"));
            assert!(matches!(failed, ApiError::Unauthorized(_)));
        }
        let guess = hash("p4p_guess2");
        let failed =
            limits.authentication_failed(Some(guesser), &guess, ApiError::Unauthorized("x"));
        assert!(retry_after(failed) > Duration::from_secs(60));
        let held = limits
            .may_authenticate(Some(guesser), &hash("p4p_guess3"))
            .expect_err("held");
        assert!(retry_after(held) > Duration::from_secs(60));
        // A token seen valid from this address passes; one seen valid
        // only elsewhere does not.
        limits
            .may_authenticate(Some(guesser), &good)
            .expect("seen valid from here");
        limits
            .may_authenticate(Some(guesser), &other_good)
            .expect_err("held");
        limits
            .may_authenticate(Some(neighbour), &guess)
            .expect("another address");
        limits.forget_idle();
        limits
            .may_authenticate(Some(guesser), &guess)
            .expect_err("still held");
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
