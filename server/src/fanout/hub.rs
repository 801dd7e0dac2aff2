//! The hub: connected subscribers, and the dispatcher that delivers every
//! committed event to them in `seq` order.
//!
//! Writers hand the hub each event they committed. The dispatcher delivers
//! events strictly in `seq` order: an event ahead of the next expected one
//! means some commit's hand-off has not arrived, so it reads the missing
//! events from the database first. Registration and dispatch exclude each
//! other, so a new subscriber's `head` splits the stream exactly: events up
//! to it come from replay, every later one through its queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, Notify};

use super::frame::{frame_for, Audience};
use super::index::SpatialIndex;
use crate::db::Storage;
use crate::domain::delivery::{Event, EventKind, Listener};
use crate::domain::moderation::Policy;
use crate::domain::place::Area;

/// How many events one catch-up read takes from the database.
const CATCH_UP_BATCH: i64 = 1_000;

/// A frame waiting in a connection's queue, with its `seq`.
pub type Queued = (i64, Utf8Bytes);

/// Closes one connection, once, with a WebSocket close code.
#[derive(Default)]
pub struct Closer {
    reason: OnceLock<(u16, &'static str)>,
    notify: Notify,
}

impl Closer {
    pub fn close(&self, code: u16, reason: &'static str) {
        if self.reason.set((code, reason)).is_ok() {
            self.notify.notify_one();
        }
    }

    /// Whether the connection is to be closed.
    pub fn is_closing(&self) -> bool {
        self.reason.get().is_some()
    }

    /// Waits until the connection is to be closed; the code and reason.
    pub async fn closed(&self) -> (u16, &'static str) {
        loop {
            if let Some(reason) = self.reason.get() {
                return *reason;
            }
            self.notify.notified().await;
        }
    }
}

/// Who is subscribing.
#[derive(Debug, Clone, Copy)]
pub struct Subscription {
    pub token_id: i64,
    pub audience: Audience,
}

struct Connection {
    token_id: i64,
    store_id: Option<i64>,
    queue: mpsc::Sender<Queued>,
    closer: Arc<Closer>,
}

/// A listening store: where it looks, and its open connections.
struct ListeningStore {
    listener: Listener,
    connections: Vec<u64>,
}

#[derive(Default)]
struct Subscribers {
    connections: HashMap<u64, Connection>,
    stores: HashMap<i64, ListeningStore>,
    index: SpatialIndex,
    staff: Vec<u64>,
}

/// A live subscription. Dropping it unsubscribes.
pub struct Registration {
    pub id: u64,
    /// The newest `seq` delivered before this subscription began: every
    /// later event arrives through `queue`.
    pub head: i64,
    pub queue: mpsc::Receiver<Queued>,
    pub closer: Arc<Closer>,
    hub: Weak<Hub>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unsubscribe(self.id);
        }
    }
}

pub struct Hub {
    subscribers: RwLock<Subscribers>,
    /// The newest `seq` dispatched.
    head: AtomicI64,
    next_id: AtomicU64,
    queue_capacity: usize,
    /// Stores get nothing about alerts past its retention.
    policy: Policy,
    committed: mpsc::UnboundedSender<Dispatch>,
    /// Frames not queued because a queue was full.
    dropped: metrics::Counter,
    /// Woken when the last connection leaves.
    emptied: Notify,
}

/// What the dispatcher hears of.
enum Dispatch {
    /// An event this node committed.
    Here(Event),
    /// Another node committed up to this seq.
    Elsewhere(i64),
    /// Whatever was committed meanwhile (after a lost connection).
    Anything,
}

impl Hub {
    /// Starts the hub and its dispatcher, resuming after `head`.
    pub fn start(
        storage: Arc<dyn Storage>,
        head: i64,
        queue_capacity: usize,
        policy: Policy,
    ) -> Arc<Hub> {
        let (committed, events) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub {
            subscribers: RwLock::default(),
            head: AtomicI64::new(head),
            next_id: AtomicU64::new(1),
            queue_capacity,
            policy,
            committed,
            dropped: metrics::counter!(crate::metrics::FRAMES_DROPPED),
            emptied: Notify::new(),
        });
        tokio::spawn(dispatcher(Arc::downgrade(&hub), storage, events));
        hub
    }

    /// Hands over an event its writer has committed.
    pub fn committed(&self, event: Event) {
        // The dispatcher ends only with the hub, so the send cannot fail
        // while anyone still holds the hub.
        let _ = self.committed.send(Dispatch::Here(event));
    }

    /// Another node committed events up to `seq`: read and deliver them.
    pub fn committed_elsewhere(&self, seq: i64) {
        let _ = self.committed.send(Dispatch::Elsewhere(seq));
    }

    /// Reads and delivers whatever was committed and not yet delivered, as
    /// after a lost connection to the other nodes.
    pub fn catch_up(&self) {
        let _ = self.committed.send(Dispatch::Anything);
    }

    /// The newest `seq` dispatched.
    pub fn head(&self) -> i64 {
        self.head.load(Ordering::Acquire)
    }

    pub fn subscribe(self: &Arc<Self>, subscription: Subscription) -> Registration {
        let (queue, receiver) = mpsc::channel(self.queue_capacity);
        let closer = Arc::new(Closer::default());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut subscribers = self.write();
        let store_id = match subscription.audience {
            Audience::Staff => {
                subscribers.staff.push(id);
                None
            }
            Audience::Store(listener) => {
                subscribers.add_to_store(id, listener);
                Some(listener.store_id)
            }
        };
        subscribers.connections.insert(
            id,
            Connection {
                token_id: subscription.token_id,
                store_id,
                queue,
                closer: closer.clone(),
            },
        );
        // Read under the write lock: no dispatch is under way.
        let head = self.head();
        Registration {
            id,
            head,
            queue: receiver,
            closer,
            hub: Arc::downgrade(self),
        }
    }

    fn unsubscribe(&self, id: u64) {
        let mut subscribers = self.write();
        let Some(connection) = subscribers.connections.remove(&id) else {
            return;
        };
        match connection.store_id {
            None => subscribers.staff.retain(|staff| *staff != id),
            Some(store_id) => subscribers.remove_from_store(id, store_id),
        }
        if subscribers.connections.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// Returns once no stream is open.
    pub async fn all_closed(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            // Registered before the count is read: a last close between
            // the two still wakes it.
            emptied.as_mut().enable();
            if self.connections() == 0 {
                return;
            }
            emptied.await;
        }
    }

    /// Closes every stream of a store (suspension).
    pub fn close_store(&self, store_id: i64, code: u16, reason: &'static str) {
        self.close_where(|c| c.store_id == Some(store_id), code, reason);
    }

    /// Closes every stream opened with a token (revocation).
    pub fn close_token(&self, token_id: i64, code: u16, reason: &'static str) {
        self.close_where(|c| c.token_id == token_id, code, reason);
    }

    /// Closes every stream (shutdown).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        self.close_where(|_| true, code, reason);
    }

    fn close_where(&self, matches: impl Fn(&Connection) -> bool, code: u16, reason: &'static str) {
        for connection in self.read().connections.values().filter(|c| matches(c)) {
            connection.closer.close(code, reason);
        }
    }

    /// A store moved or changed its area of interest: re-index it.
    pub fn move_store(&self, store_id: i64, interest: Area) {
        let mut subscribers = self.write();
        let Subscribers { stores, index, .. } = &mut *subscribers;
        if let Some(store) = stores.get_mut(&store_id) {
            index.remove(store_id, store.listener.interest);
            store.listener.interest = interest;
            index.insert(store_id, interest);
        }
    }

    /// The token and store of every open stream.
    pub fn open_streams(&self) -> Vec<(i64, Option<i64>)> {
        self.read()
            .connections
            .values()
            .map(|c| (c.token_id, c.store_id))
            .collect()
    }

    /// How many streams are open.
    pub fn connections(&self) -> usize {
        self.read().connections.len()
    }

    /// Delivers one event to every subscriber that should get it.
    fn dispatch(&self, event: &Event) {
        let subscribers = self.read();
        let not_before = self
            .policy
            .retention_cutoff(time::OffsetDateTime::now_utc());
        if !matches!(event.kind, EventKind::Pending | EventKind::Flag) {
            for store_id in subscribers.candidates(event) {
                let Some(store) = subscribers.stores.get(&store_id) else {
                    continue;
                };
                if let Some(frame) = frame_for(event, &Audience::Store(store.listener), not_before)
                {
                    subscribers.push(
                        &store.connections,
                        event.seq,
                        Utf8Bytes::from(frame),
                        &self.dropped,
                    );
                }
            }
        }
        if !subscribers.staff.is_empty() {
            if let Some(frame) = frame_for(event, &Audience::Staff, not_before) {
                subscribers.push(
                    &subscribers.staff,
                    event.seq,
                    Utf8Bytes::from(frame),
                    &self.dropped,
                );
            }
        }
        self.head.store(event.seq, Ordering::Release);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Subscribers> {
        self.subscribers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Subscribers> {
        self.subscribers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Subscribers {
    /// The listening stores that may receive the event: near its reach,
    /// near where an update moved it from, and its author.
    fn candidates(&self, event: &Event) -> Vec<i64> {
        let mut candidates = self.index.candidates(event.reach);
        if let Some(before) = event.previous_reach {
            candidates.extend(self.index.candidates(before));
        }
        if self.stores.contains_key(&event.author) {
            candidates.push(event.author);
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
    }

    fn add_to_store(&mut self, id: u64, listener: Listener) {
        match self.stores.get_mut(&listener.store_id) {
            Some(store) => store.connections.push(id),
            None => {
                self.index.insert(listener.store_id, listener.interest);
                self.stores.insert(
                    listener.store_id,
                    ListeningStore {
                        listener,
                        connections: vec![id],
                    },
                );
            }
        }
    }

    fn remove_from_store(&mut self, id: u64, store_id: i64) {
        let Some(store) = self.stores.get_mut(&store_id) else {
            return;
        };
        store.connections.retain(|c| *c != id);
        if store.connections.is_empty() {
            let interest = store.listener.interest;
            self.stores.remove(&store_id);
            self.index.remove(store_id, interest);
        }
    }

    /// Queues a frame for connections; one whose queue is full is too slow
    /// and is closed (it resumes with `since` and loses nothing). Counts
    /// each frame not queued in `dropped`.
    fn push(&self, ids: &[u64], seq: i64, frame: Utf8Bytes, dropped: &metrics::Counter) {
        for id in ids {
            let Some(connection) = self.connections.get(id) else {
                continue;
            };
            if let Err(mpsc::error::TrySendError::Full(_)) =
                connection.queue.try_send((seq, frame.clone()))
            {
                dropped.increment(1);
                connection.closer.close(
                    p4p_protocol::close_code::TOO_SLOW,
                    "too slow: reconnect with since",
                );
            }
        }
    }
}

/// Delivers committed events in `seq` order, reading from the database any
/// that were committed but not handed over (yet).
async fn dispatcher(
    hub: Weak<Hub>,
    storage: Arc<dyn Storage>,
    mut events: mpsc::UnboundedReceiver<Dispatch>,
) {
    while let Some(committed) = events.recv().await {
        let Some(hub) = hub.upgrade() else {
            return;
        };
        let until = match committed {
            Dispatch::Here(event) if event.seq == hub.head() + 1 => {
                hub.dispatch(&event);
                continue;
            }
            Dispatch::Here(event) => event.seq,
            Dispatch::Elsewhere(seq) => seq,
            Dispatch::Anything => newest(storage.as_ref()).await,
        };
        if until > hub.head() {
            catch_up(&hub, storage.as_ref(), until).await;
        }
    }
}

/// The newest committed seq, retrying until the database answers.
async fn newest(storage: &dyn Storage) -> i64 {
    loop {
        match storage.head().await {
            Ok(head) => return head,
            Err(error) => {
                tracing::error!(%error, "cannot read the stream's head to catch up; retrying");
                crate::metrics::database_error();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Dispatches every event after the hub's head up to `until` from the
/// database, retrying until the database answers: `until` was committed,
/// so the events before it are there to be read.
async fn catch_up(hub: &Hub, storage: &dyn Storage, until: i64) {
    while hub.head() < until {
        match storage.events_after(hub.head(), CATCH_UP_BATCH).await {
            Ok(events) if events.is_empty() && newest(storage).await <= hub.head() => {
                // Nothing committed past our head: a notification named a
                // seq this database does not have (a stray NOTIFY).
                tracing::warn!(until, head = hub.head(), "nothing to catch up on; ignoring");
                return;
            }
            Ok(events) if events.is_empty() => {
                tracing::error!(
                    head = hub.head(),
                    until,
                    "committed events not readable yet; retrying"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(events) => events.iter().for_each(|event| hub.dispatch(event)),
            Err(error) => {
                tracing::error!(%error, head = hub.head(), "cannot read events to catch up; retrying");
                crate::metrics::database_error();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
