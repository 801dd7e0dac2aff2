//! The storage layer: the only place with SQL.
//!
//! Handlers see the [`Storage`] trait, grouped by concern (membership,
//! tokens, alerts, events, idempotency keys, the audit trail, the census);
//! [`SqlStore`] implements it for SQLite (the embedded default) and
//! PostgreSQL (several nodes) alike. Every write that members must see
//! appends its event in the same transaction, and every membership action
//! its audit entry; the writes whose commits streams must hear of return
//! [`Committed`], which only `fanout::Network` unwraps. `relay` carries
//! what one PostgreSQL node tells the others.

pub mod relay;
mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use p4p_protocol::{
    Alert, AlertKind, AlertStatus, AuditEntry, Flag, ModerationQueue, Role, Store, StoreRef,
    StoreStatus, TokenInfo,
};
use time::OffsetDateTime;

use crate::domain::alert::ValidAlert;
use crate::domain::delivery::Event;
use crate::domain::moderation::{Admission, AlertAction};
use crate::domain::place::{Area, Place, RadiusKm};
use crate::domain::secret::SecretHash;
use crate::domain::store::{MembershipAction, MoveDecision, ValidPledge};
use crate::domain::version::IfMatch;

pub use relay::Announcement;
pub use sql::{Dialect, SqlStore};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// The write may or may not have been committed.
    #[error("the write was not confirmed: {0}")]
    NotCommitted(String),
    /// The database could not be reached (no connection, or it broke).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "unsupported database URL scheme `{0}`: use sqlite:PATH or postgres://USER@HOST/DATABASE"
    )]
    UnsupportedUrl(String),
}

pub type DbResult<T> = Result<T, DbError>;

impl DbError {
    /// Whether the database could not be reached, rather than refused the
    /// statement: no connection in time, or a connection that broke. A
    /// request that meets it may succeed once the database is back (503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Sqlx(error) => matches!(
                error,
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}

/// Opens and migrates the database the URL names: `sqlite:PATH` or
/// `postgres://...`.
/// `pool` bounds each of the PostgreSQL reading and writing pools.
pub async fn connect(url: &str, pool: u32) -> DbResult<Arc<dyn Storage>> {
    Ok(Arc::new(SqlStore::connect(url, pool).await?))
}

/// Who did something, for the audit trail: never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn staff(role: Role, token_id: i64, label: &str) -> Actor {
        Actor(format!("{role} #{token_id} ({label})"))
    }

    pub fn store(store_id: i64) -> Actor {
        Actor(format!("store #{store_id}"))
    }

    /// Whoever runs `p4p-server token create` on the server host.
    pub fn server_host() -> Actor {
        Actor("server host".to_owned())
    }
}

/// A valid token, with the store it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    pub token: TokenInfo,
    pub store: Option<Store>,
}

/// What a claim for a pledge's token came to.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    UnknownStore,
    WrongSecret,
    Pending,
    Rejected {
        reason: Option<String>,
    },
    Suspended {
        reason: Option<String>,
    },
    AlreadyClaimed,
    /// The token, stored under the hash passed in, is now the store's.
    Issued,
}

/// The outcome of a change that must start from a given status.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition<T, S> {
    Done(T),
    NotFound,
    /// The object is in another status, named here.
    Conflict(S),
}

/// Whose tokens: a store's, or the association staff's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOwner {
    Store(i64),
    Staff,
}

impl TokenOwner {
    /// The store, or none for staff tokens.
    pub fn store_id(self) -> Option<i64> {
        match self {
            TokenOwner::Store(store_id) => Some(store_id),
            TokenOwner::Staff => None,
        }
    }
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub role: Role,
    pub store_id: Option<i64>,
    pub label: &'a str,
    pub hash: &'a SecretHash,
}

/// What creating a token came to.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenCreation {
    Created(TokenInfo),
    /// The store already holds [`crate::domain::store::MAX_STORE_TOKENS`]
    /// unrevoked tokens.
    TooMany,
}

/// `GET /v1/stores`, checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreQuery {
    pub status: Option<StoreStatus>,
    /// Only the stores with a move waiting for a moderator.
    pub pending_move: bool,
}

/// A change to a store's area of interest (`PATCH /v1/me`): the radius
/// applies at once, a new place waits for a moderator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AreaChange {
    pub radius: Option<RadiusKm>,
    /// The place to ask to move to; the store's current place withdraws a
    /// pending move.
    pub move_to: Option<Place>,
}

/// What deciding a move came to.
#[derive(Debug, Clone, PartialEq)]
pub enum MoveOutcome {
    /// The store as it is now: moved (approved) or where it was (rejected).
    Done(Box<Store>),
    NotFound,
    NoPendingMove,
}

/// A reinstated store, and the tokens reinstatement revoked.
#[derive(Debug, Clone, PartialEq)]
pub struct Reinstated {
    pub store: Store,
    pub revoked_tokens: Vec<i64>,
}

/// Who is looking at alerts: staff see everything, a store sees published
/// alerts and its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Staff,
    Store(i64),
}

/// `GET /v1/alerts`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertQuery {
    pub viewer: Viewer,
    pub near: Option<Area>,
    pub kind: Option<AlertKind>,
    pub status: Option<AlertStatus>,
    pub limit: usize,
    pub before_id: Option<i64>,
    /// Alerts that happened before this (unix seconds) are past retention:
    /// nobody sees them.
    pub not_before: i64,
}

/// One page of alerts, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertList {
    pub alerts: Vec<Alert>,
    pub more: bool,
}

/// What a write committed, with what the network must hear of it: the
/// events it appended (in `seq` order) and the announcements it made.
///
/// The write methods of [`Storage`] whose commits members or streams must
/// hear of return one. Its value is reached only through
/// [`Committed::into_parts`], which `fanout::Network` calls as it publishes
/// the effects: a handler cannot use what a write returned without handing
/// it to the network, so a new one cannot forget the fanout.
#[must_use = "what a write committed reaches the network only through fanout::Network::write"]
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<T> {
    value: T,
    effects: Effects,
}

/// What a commit must tell the network.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Events for the hub, in `seq` order.
    pub events: Vec<Event>,
    /// Changes to streams: closures and re-indexing.
    pub announcements: Vec<Announcement>,
}

impl<T> Committed<T> {
    pub(crate) fn new(value: T, effects: Effects) -> Committed<T> {
        Committed { value, effects }
    }

    /// A commit with nothing to tell.
    pub(crate) fn quiet(value: T) -> Committed<T> {
        Committed::new(value, Effects::default())
    }

    pub(crate) fn with_events(value: T, events: Vec<Event>) -> Committed<T> {
        Committed::new(
            value,
            Effects {
                events,
                announcements: Vec::new(),
            },
        )
    }

    /// The value and its effects: for the network that publishes them.
    pub fn into_parts(self) -> (T, Effects) {
        (self.value, self.effects)
    }
}

/// An edit to apply, checked against the alert as its editor read it.
#[derive(Debug, Clone, Copy)]
pub struct Edit<'a> {
    pub alert: &'a ValidAlert,
    /// The alert as the server read it for this request: if it changed
    /// since, the edit is refused rather than undoing the other change.
    pub seen: &'a Alert,
    /// The versions the client said it edits (`If-Match`).
    pub if_match: Option<&'a IfMatch>,
    /// Its author edited it: the association's verification no longer holds.
    pub by_author: bool,
    /// The edit waits for a moderator again (pre-moderation, probation).
    pub hold: bool,
}

/// What a change to an alert (an edit, a moderation action) came to.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    Done(Box<Alert>),
    NotFound,
    /// The change does not start from the alert's status, named here.
    Conflict(AlertStatus),
    /// The alert changed while the request ran (no `If-Match` given).
    Stale,
    /// The alert's version, named here, is not one `If-Match` named.
    PreconditionFailed(i64),
}

/// An `Idempotency-Key` to keep with what a create writes, in the same
/// transaction (docs/API.md, Safe writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// `store:7` for store tokens, `token:3` for staff.
    pub account: String,
    pub key: String,
    /// SHA-256 of the method, path and body, in hex.
    pub fingerprint: String,
}

/// How long an idempotency key is remembered (docs/API.md: 24 hours).
pub const IDEMPOTENCY_SECONDS: i64 = 24 * 60 * 60;

/// A create remembered under its key: what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub fingerprint: String,
    pub status: u16,
    /// What it created: `alert:42`, `flag:42:7`.
    pub object: String,
    pub created_at: i64,
}

/// What posting a new alert came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Posted {
    Created(Box<Alert>),
    /// Its idempotency key was taken meanwhile (another node, another
    /// request): nothing was written; answer what the key remembers.
    KeyTaken,
}

/// What flagging an alert came to.
#[derive(Debug, Clone, PartialEq)]
pub enum FlagOutcome {
    NotFound,
    /// Only published alerts are flagged; this one is in another status.
    NotFlaggable(AlertStatus),
    AlreadyFlagged,
    /// Flagged; `held` when the flags reached the threshold and the alert
    /// went back to pending.
    Flagged {
        flag: Flag,
        held: bool,
    },
    /// Its idempotency key was taken meanwhile: nothing was written.
    KeyTaken,
}

/// Stores and their membership.
#[async_trait]
pub trait Membership: Send + Sync {
    /// Records a pledge as a pending store; returns its id.
    async fn create_store(
        &self,
        pledge: &ValidPledge,
        claim: &SecretHash,
        now: OffsetDateTime,
    ) -> DbResult<i64>;
    /// Hands the store its first token, once, if it is approved.
    async fn claim_token(
        &self,
        store_id: i64,
        claim: &SecretHash,
        token: &SecretHash,
        now: OffsetDateTime,
    ) -> DbResult<ClaimOutcome>;
    async fn stores(&self, query: StoreQuery) -> DbResult<Vec<Store>>;
    async fn store(&self, id: i64) -> DbResult<Option<Store>>;
    /// Applies a staff action if the store is in a status it starts from.
    /// Reinstatement goes through [`Membership::reinstate_store`], which
    /// also revokes the store's tokens.
    async fn change_membership(
        &self,
        id: i64,
        action: MembershipAction,
        reason: Option<&str>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Transition<Store, StoreStatus>>>;
    /// Reinstates a suspended store: every token it had is revoked (a
    /// stolen one dies with the rest) and `claim` is its new claim secret,
    /// with which it claims a fresh token.
    async fn reinstate_store(
        &self,
        id: i64,
        reason: Option<&str>,
        claim: &SecretHash,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Transition<Reinstated, StoreStatus>>>;
    /// Changes a store's radius at once and records the move it asks for;
    /// `None` if there is no such store.
    async fn change_area(
        &self,
        id: i64,
        change: AreaChange,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Option<Store>>>;
    /// A moderator approves (the store moves) or rejects its pending move.
    async fn decide_move(
        &self,
        id: i64,
        decision: MoveDecision,
        reason: Option<&str>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<MoveOutcome>>;
}

/// Bearer tokens, kept as hashes.
#[async_trait]
pub trait Tokens: Send + Sync {
    /// Creates a token; a store's only while it holds fewer than
    /// [`crate::domain::store::MAX_STORE_TOKENS`] unrevoked ones, counted
    /// in the same transaction.
    async fn create_token(
        &self,
        token: NewToken<'_>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<TokenCreation>;
    /// The unrevoked token with this hash.
    async fn credential(&self, hash: &SecretHash) -> DbResult<Option<Credential>>;
    /// The write that records that the token authenticated a request, when
    /// one is due: at most once a minute per token. It borrows nothing, so
    /// that the caller can run it on its own and not hold the request up
    /// for long (authentication is on every request's path); what to do
    /// with a failure is the caller's: `last_used_at` is for people, not
    /// for access.
    fn token_used(
        &self,
        token: &TokenInfo,
        now: OffsetDateTime,
    ) -> Option<futures_util::future::BoxFuture<'static, DbResult<()>>>;
    async fn tokens(&self, owner: TokenOwner) -> DbResult<Vec<TokenInfo>>;
    /// Whether the token exists and is not revoked.
    async fn token_active(&self, id: i64) -> DbResult<bool>;
    /// Revokes one of the owner's tokens; `None` if it has no such token.
    async fn revoke_token(
        &self,
        owner: TokenOwner,
        id: i64,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Option<TokenInfo>>>;
}

/// Alerts, and the events they make.
#[async_trait]
pub trait Alerts: Send + Sync {
    /// Writes a new alert with its event in the same transaction (`alert`
    /// when published, `pending` when it waits), returned for the fanout.
    async fn post_alert(
        &self,
        author: &StoreRef,
        alert: &ValidAlert,
        admission: &Admission,
        idempotency: Option<IdempotencyKey>,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Posted>>;
    /// The alert, unless it is erased.
    async fn alert(&self, id: i64) -> DbResult<Option<Alert>>;
    async fn alerts(&self, query: &AlertQuery) -> DbResult<AlertList>;
    /// How many of a store's alerts were ever published (probation),
    /// counted up to `at_most`: probation only asks whether a store reached
    /// a small number, and a busy store has thousands.
    async fn published_count(&self, store_id: i64, at_most: i64) -> DbResult<i64>;
    /// Replaces a pending or published alert's content.
    async fn edit_alert(
        &self,
        id: i64,
        edit: Edit<'_>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<AlertChange>>;
    /// Applies a moderation action if the alert is in a status it starts
    /// from and, with `if_match`, at a version it names.
    async fn moderate_alert(
        &self,
        id: i64,
        action: AlertAction,
        reason: Option<&str>,
        if_match: Option<&IfMatch>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<AlertChange>>;
    /// A store flags a published alert; `threshold` different stores' flags
    /// move it back to pending.
    async fn flag_alert(
        &self,
        id: i64,
        store_id: i64,
        reason: &str,
        threshold: u32,
        idempotency: Option<IdempotencyKey>,
        now: OffsetDateTime,
    ) -> DbResult<Committed<FlagOutcome>>;
    /// A store's flag of an alert, if it made one.
    async fn flag(&self, alert_id: i64, store_id: i64) -> DbResult<Option<Flag>>;
    /// Erases an alert at once (an admin's decision): its text, suspects
    /// and vehicles leave the database, event bodies included; members that
    /// saw it get `retract`. `None` if there is no such alert (or it is
    /// erased already).
    async fn erase_alert(
        &self,
        id: i64,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Option<Alert>>>;
    /// Erases up to `limit` alerts that happened before `cutoff` (unix
    /// seconds): retention. Returns the ids erased.
    async fn erase_expired(
        &self,
        cutoff: i64,
        limit: i64,
        now: OffsetDateTime,
    ) -> DbResult<Vec<i64>>;
    /// Pending alerts and alerts with unresolved flags, oldest first; none
    /// that happened before `not_before` (unix seconds: retention).
    async fn moderation_queue(&self, not_before: i64) -> DbResult<ModerationQueue>;
}

/// Idempotency keys: the first success of a create, for 24 hours.
#[async_trait]
pub trait Idempotency: Send + Sync {
    /// What the key remembers for the account, if anything.
    async fn remembered(&self, account: &str, key: &str) -> DbResult<Option<Remembered>>;
    /// Forgets the keys made before `before` (unix seconds).
    async fn forget_keys_before(&self, before: i64) -> DbResult<u64>;
}

/// The append-only record of membership and moderation actions.
#[async_trait]
pub trait AuditTrail: Send + Sync {
    /// Entries before `before_id`, newest first, at most `limit`; and
    /// whether there are more.
    async fn audit(
        &self,
        before_id: Option<i64>,
        limit: usize,
    ) -> DbResult<(Vec<AuditEntry>, bool)>;
}

/// The network's stream, for replay and catch-up.
#[async_trait]
pub trait Events: Send + Sync {
    /// The newest `seq`, 0 when there is none.
    async fn head(&self) -> DbResult<i64>;
    /// Events after `after`, in `seq` order, at most `limit`.
    async fn events_after(&self, after: i64, limit: i64) -> DbResult<Vec<Event>>;
    /// Whether the database answers.
    async fn ping(&self) -> DbResult<()>;
}

/// Everything the server keeps.
pub trait Storage:
    Membership + Tokens + Alerts + Events + AuditTrail + Census + Idempotency
{
}

impl<T: Membership + Tokens + Alerts + Events + AuditTrail + Census + Idempotency> Storage for T {}

/// Unix seconds to a UTC time.
pub(crate) fn from_unix(seconds: i64) -> DbResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| DbError::Corrupt(format!("timestamp {seconds} out of range")))
}

pub(crate) fn parse_text<T: std::str::FromStr<Err = String>>(value: &str) -> DbResult<T> {
    value.parse().map_err(DbError::Corrupt)
}

/// How many alerts of a kind are in a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCount {
    pub kind: String,
    pub status: String,
    pub count: i64,
}

/// Counts for `GET /metrics`.
#[async_trait]
pub trait Census: Send + Sync {
    /// Alerts by kind and status, in one query; pairs without alerts are absent.
    async fn alert_counts(&self) -> DbResult<Vec<AlertCount>>;
}

/// A database URL fit for logs: any password replaced.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            super::redact("postgres://p4p:secret@db:5432/p4p"),
            "postgres://p4p:***@db:5432/p4p"
        );
        assert_eq!(super::redact("sqlite:p4p.db"), "sqlite:p4p.db");
    }
}
