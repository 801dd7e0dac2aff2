//! The turns replays take: a replay (a stream resuming from `since`) is
//! busy work, so each account runs one at once, within a budget of events
//! read, and the node no more than half its cores. The others wait their
//! turn; none is refused.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Account;

/// Replays one account runs at once; the others wait their turn.
const REPLAYS_PER_ACCOUNT: usize = 1;
/// The events an account's replays may read, at once and then per second:
/// what a replay costs is the events it reads (most of which a store's
/// place filters out). A member resuming, even from 0 on a large network,
/// starts at once; one replaying over and over is slowed to this pace.
const REPLAY_EVENTS_AT_ONCE: u32 = 20_000;
const REPLAY_EVENTS_PER_SECOND: u32 = 2_000;

/// The replays running and waiting on this node.
pub(super) struct Replays {
    /// Replays running at once on this node, in all (half its cores: a
    /// replay is busy work) ...
    node: Arc<Semaphore>,
    /// ... and per account, ...
    per_account: Mutex<HashMap<Account, Arc<Semaphore>>>,
    /// ... within each account's budget of events read.
    budget: DefaultKeyedRateLimiter<Account>,
}

impl Replays {
    pub(super) fn new() -> Replays {
        Replays {
            node: Arc::new(Semaphore::new(replays_at_once())),
            per_account: Mutex::default(),
            budget: RateLimiter::keyed(replay_budget()),
        }
    }

    /// Waits for `account`'s turn to replay `events` events: one replay
    /// per account at once, within the account's budget of events read,
    /// and no more on the node than half its cores, so that one member
    /// replaying from 0 on many streams costs the others little. The
    /// replay runs while the turn is held.
    pub(super) async fn turn(&self, account: Account, events: i64) -> ReplayTurn {
        let own = self
            .per_account
            .lock()
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
        while let Ok(Err(not_until)) = self.budget.check_key_n(&account, cost) {
            tokio::time::sleep(not_until.wait_time_from(DefaultClock::default().now())).await;
        }
        let node = self.node.clone().acquire_owned().await.ok();
        ReplayTurn {
            _own: own,
            _node: node,
        }
    }

    /// Drops the accounts that neither replay nor wait, and the budgets
    /// that are whole again.
    pub(super) fn forget_idle(&self) {
        // An account's semaphore nobody holds or waits for.
        self.per_account
            .lock()
            .retain(|_, turns| Arc::strong_count(turns) > 1);
        self.budget.retain_recent();
        self.budget.shrink_to_fit();
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

/// A turn to replay, held while the replay runs.
#[derive(Debug)]
pub struct ReplayTurn {
    _own: Option<OwnedSemaphorePermit>,
    _node: Option<OwnedSemaphorePermit>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn replays_take_turns_per_account() {
        let replays = Arc::new(Replays::new());
        let first = replays.turn(Account::Store(1), 10).await;
        // The same store waits for its turn (another store may too, for
        // the node's: half its cores).
        let turn = |store| {
            let replays = replays.clone();
            tokio::spawn(async move { replays.turn(Account::Store(store), 10).await })
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
        replays.forget_idle();
        assert!(replays.per_account.lock().is_empty());
    }

    #[tokio::test]
    async fn an_account_replaying_over_and_over_is_slowed_to_its_budget() {
        let replays = Replays::new();
        let started = tokio::time::Instant::now();
        // A replay from 0 of a large network starts at once...
        drop(replays.turn(Account::Store(1), 5_000_000).await);
        assert!(started.elapsed() < Duration::from_secs(1));
        // ...and the next one waits for the budget to refill, while
        // another account's does not.
        let other = tokio::time::Instant::now();
        drop(replays.turn(Account::Store(2), 1_000).await);
        assert!(other.elapsed() < Duration::from_secs(1));
        let again = tokio::time::Instant::now();
        drop(replays.turn(Account::Store(1), 1_000).await);
        let waited = again.elapsed();
        assert!(waited >= Duration::from_millis(400), "{waited:?}");
    }
}
