//! The network: the one way from a commit to every listener.
//!
//! A write that members or streams must hear of returns a
//! [`Committed`] value from the storage layer: its result with the events
//! it appended and the announcements it made. [`Network::write`] runs the
//! write in its own task (a client that hangs up cannot cancel what was
//! committed) and publishes those effects to this node's hub; on PostgreSQL
//! the same announcements reach the other nodes through `LISTEN`/`NOTIFY`
//! ([`crate::db::relay`]), and [`Network`] applies what they announce the
//! same way. Handlers never touch the hub: they write through the network,
//! and subscribe through it.
//!
//! Whatever else must follow a commit takes the same path: webhooks, for
//! one, will have their outbox row written in the event's transaction (in
//! `db`, beside the event) and their deliverer woken from [`Network::write`].
//!
//! The network also owns what must be serialized with subscriptions (a
//! store's moves, so that the hub always ends up with a store's newest area
//! of interest) and this node's readiness (whether it hears the others).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use p4p_protocol::{close_code, StoreStatus};
use tokio::sync::{mpsc, Mutex, MutexGuard};

use super::hub::{Hub, Registration, Subscription};
use crate::db::relay::{self, Heard};
use crate::db::{Announcement, Committed, DbError, DbResult, Effects, Storage};
use crate::domain::moderation::Policy;
use crate::domain::place::Area;

/// This node's part of the network: its hub, and its link to the others.
pub struct Network {
    storage: Arc<dyn Storage>,
    hub: Arc<Hub>,
    /// Serializes applying store moves with subscriptions.
    store_moves: Mutex<()>,
    /// False while this node cannot hear the others (PostgreSQL LISTEN
    /// lost): `/readyz` says not ready.
    hears_other_nodes: AtomicBool,
}

/// How the hub is sized and what it delivers.
#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    /// Frames a stream's queue holds before the stream is too slow.
    pub stream_queue: usize,
    pub policy: Policy,
}

impl Network {
    /// Starts the hub after `head`, and on PostgreSQL (`other_nodes`, the
    /// database URL to listen on) the follower of the other nodes.
    pub fn start(
        storage: Arc<dyn Storage>,
        head: i64,
        settings: HubSettings,
        other_nodes: Option<String>,
    ) -> Arc<Network> {
        let hub = Hub::start(
            storage.clone(),
            head,
            settings.stream_queue,
            settings.policy,
        );
        let network = Arc::new(Network {
            storage,
            hub,
            store_moves: Mutex::new(()),
            hears_other_nodes: AtomicBool::new(other_nodes.is_none()),
        });
        if let Some(url) = other_nodes {
            tokio::spawn(follow_other_nodes(relay::listen(url), network.clone()));
        }
        network
    }

    /// Runs a write in its own task and publishes what it committed, in
    /// order; answers the write's result.
    pub async fn write<T, W>(self: &Arc<Self>, write: W) -> DbResult<T>
    where
        T: Send + 'static,
        W: Future<Output = DbResult<Committed<T>>> + Send + 'static,
    {
        let network = self.clone();
        tokio::spawn(async move {
            let (value, effects) = write.await?.into_parts();
            network.publish(effects).await;
            Ok(value)
        })
        .await
        .map_err(|e| DbError::NotCommitted(format!("the writing task failed: {e}")))?
    }

    /// Hands this node's commit to the hub, and applies its announcements
    /// here as every other node applies them.
    async fn publish(&self, effects: Effects) {
        for event in effects.events {
            self.hub.committed(event);
        }
        for announcement in effects.announcements {
            self.apply(announcement).await;
        }
    }

    /// Applies an announcement, made here or on another node.
    async fn apply(&self, announcement: Announcement) {
        match announcement {
            Announcement::StoreSuspended(id) => {
                self.hub
                    .close_store(id, close_code::REVOKED, "store suspended")
            }
            Announcement::TokenRevoked(id) => {
                self.hub
                    .close_token(id, close_code::REVOKED, "token revoked")
            }
            Announcement::StoreMoved(id) => {
                let _moves = self.store_moves.lock().await;
                self.refresh_store(id).await;
            }
        }
    }

    /// Joins the hub, holding back store moves until the caller has
    /// checked its credential again (see [`Subscribing`]).
    pub async fn subscribe(&self, subscription: Subscription) -> Subscribing<'_> {
        let moves = self.store_moves.lock().await;
        Subscribing {
            registration: self.hub.subscribe(subscription),
            hub: &self.hub,
            _moves: moves,
        }
    }

    /// Whether this node hears the others (always, on SQLite).
    pub fn is_ready(&self) -> bool {
        self.hears_other_nodes.load(Ordering::Acquire)
    }

    /// How many streams are open on this node.
    pub fn connections(&self) -> usize {
        self.hub.connections()
    }

    /// The newest `seq` this node has dispatched.
    pub fn head(&self) -> i64 {
        self.hub.head()
    }

    /// Closes every stream with `code`, then waits up to `grace` for them
    /// to take their close frames (shutdown).
    pub async fn close_all(&self, code: u16, reason: &'static str, grace: Duration) {
        self.hub.close_all(code, reason);
        if tokio::time::timeout(grace, self.hub.all_closed())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.hub.connections(),
                "streams still open after the shutdown grace"
            );
        }
    }

    /// Closes the streams whose token or store no longer holds, and
    /// re-indexes the stores that moved: after a lost connection to the
    /// other nodes, their announcements may have been missed.
    async fn recheck_streams(&self) {
        let streams = self.hub.open_streams();
        let tokens: BTreeSet<i64> = streams.iter().map(|(token, _)| *token).collect();
        for token in tokens {
            match self.storage.token_active(token).await {
                Ok(true) => {}
                Ok(false) => self
                    .hub
                    .close_token(token, close_code::REVOKED, "token revoked"),
                Err(error) => {
                    tracing::error!(%error, token_id = token, "cannot re-check a token");
                    crate::metrics::database_error();
                }
            }
        }
        let stores: BTreeSet<i64> = streams.iter().filter_map(|(_, store)| *store).collect();
        let _moves = self.store_moves.lock().await;
        for store in stores {
            self.refresh_store(store).await;
        }
    }

    /// Re-reads a listening store: closes its streams if it is no longer
    /// approved, re-indexes it where it now looks otherwise. The caller
    /// holds `store_moves`.
    async fn refresh_store(&self, id: i64) {
        match self.storage.store(id).await {
            Ok(Some(store)) if store.status == StoreStatus::Approved => {
                self.hub.move_store(id, Area::of_store(&store))
            }
            Ok(_) => self
                .hub
                .close_store(id, close_code::REVOKED, "store suspended"),
            Err(error) => {
                tracing::error!(%error, store_id = id, "cannot re-read a store");
                crate::metrics::database_error();
            }
        }
    }
}

/// A subscription that has joined the hub while store moves wait: the
/// subscriber checks its token and store again, and re-indexes itself if
/// its area changed since it authenticated. A suspension, revocation or
/// move committed between authentication and joining is seen by that
/// check, and any later one reaches the registration.
pub struct Subscribing<'a> {
    registration: Registration,
    hub: &'a Hub,
    _moves: MutexGuard<'a, ()>,
}

impl Subscribing<'_> {
    /// The store now looks at `interest`.
    pub fn moved(&self, store_id: i64, interest: Area) {
        self.hub.move_store(store_id, interest);
    }

    /// The registration, letting store moves go on.
    pub fn joined(self) -> Registration {
        self.registration
    }
}

/// Applies what the other nodes committed and announced. After a lost
/// LISTEN connection it re-checks every open stream and catches up on the
/// events committed meanwhile, then says ready again.
async fn follow_other_nodes(mut heard: mpsc::Receiver<Heard>, network: Arc<Network>) {
    while let Some(heard) = heard.recv().await {
        match heard {
            Heard::Committed(seq) => network.hub.committed_elsewhere(seq),
            Heard::Listening => {
                network.recheck_streams().await;
                network.hub.catch_up();
                network.hears_other_nodes.store(true, Ordering::Release);
            }
            Heard::Lost => {
                // The relay met a database error (db counts nothing).
                crate::metrics::database_error();
                network.hears_other_nodes.store(false, Ordering::Release)
            }
            Heard::Announced(announcement) => network.apply(announcement).await,
        }
    }
}
