//! Rate limits: what a client may do, and how often (429 with
//! `Retry-After`, each refusal counted in `p4p_rate_limited_total` by
//! limit).
//!
//! [`Limits`] holds them all, shared by every request: the hourly
//! allowances (alerts and alert edits per store, pledges and failed
//! authentications per client address, tokens per account, stream
//! connections per token), the hold on an address that guesses tokens
//! (`guessing`), the caps on a token's and a store's open streams
//! (`streams`), and the turns replays take (`replays`). Which address a
//! request counts against is `client_addr`'s to say; the caps on
//! connections are the listener's.

mod guessing;
mod replays;
mod streams;

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub use replays::ReplayTurn;
pub use streams::StreamGuard;

use super::ApiError;
use crate::config::{LimitArgs, Switch};
use crate::domain::secret::SecretHash;
use guessing::GuessingHold;
use replays::Replays;
use streams::StreamCaps;

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
    /// Open streams, by token and by store.
    streams: StreamCaps,
    replays: Replays,
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
            streams: StreamCaps::new(args.streams_per_token, args.streams_per_store),
            replays: Replays::new(),
        }
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
    /// its open streams (and its store's). The stream holds the returned
    /// guard while open.
    pub fn stream_opened(
        &self,
        token_id: i64,
        store_id: Option<i64>,
        ping_interval: Duration,
    ) -> Result<StreamGuard, ApiError> {
        // Only a connection that may open takes from the hourly allowance.
        self.streams.open(token_id, store_id, ping_interval, || {
            self.stream_connects.take(&token_id)
        })
    }

    /// Waits for `account`'s turn to replay `events` events (`replays`).
    pub async fn replay_turn(&self, account: Account, events: i64) -> ReplayTurn {
        self.replays.turn(account, events).await
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
        self.replays.forget_idle();
    }

    /// Forgets idle keys every minute, until the process ends, so that the
    /// limits' memory follows the active clients, not all ever seen.
    pub async fn forget_idle_forever(limits: Arc<Limits>) {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            limits.forget_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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

    pub(super) fn retry_after(error: ApiError) -> Duration {
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
}
