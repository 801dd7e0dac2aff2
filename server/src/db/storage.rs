//! The storage traits handlers see, one per concern, and [`Storage`],
//! all of them.

use async_trait::async_trait;
use p4p_protocol::{
    Alert, AuditEntry, Flag, ModerationQueue, Store, StoreRef, StoreStatus, TokenInfo,
};
use time::OffsetDateTime;

use super::{
    Actor, AlertChange, AlertCount, AlertList, AlertQuery, AreaChange, ClaimOutcome, Committed,
    Credential, DbResult, Edit, FlagOutcome, IdempotencyKey, MoveOutcome, NewToken, Posted,
    Reinstated, Remembered, StoreQuery, TokenCreation, TokenOwner, Transition,
};
use crate::domain::alert::ValidAlert;
use crate::domain::delivery::Event;
use crate::domain::moderation::{Admission, AlertAction};
use crate::domain::secret::SecretHash;
use crate::domain::store::{MembershipAction, MoveDecision, ValidPledge};
use crate::domain::version::IfMatch;

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

/// Alerts: posting and reading them.
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
}

/// Changes to alerts after they are posted: edits, moderators' actions,
/// flags, and the moderation queue.
#[async_trait]
pub trait Moderation: Send + Sync {
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
    /// Pending alerts and alerts with unresolved flags, oldest first; none
    /// that happened before `not_before` (unix seconds: retention).
    async fn moderation_queue(&self, not_before: i64) -> DbResult<ModerationQueue>;
}

/// Erasing alerts: an admin's decision, and retention.
#[async_trait]
pub trait Erasure: Send + Sync {
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
    Membership + Tokens + Alerts + Moderation + Erasure + Events + AuditTrail + Census + Idempotency
{
}

impl<
        T: Membership
            + Tokens
            + Alerts
            + Moderation
            + Erasure
            + Events
            + AuditTrail
            + Census
            + Idempotency,
    > Storage for T
{
}

/// Counts for `GET /metrics`.
#[async_trait]
pub trait Census: Send + Sync {
    /// Alerts by kind and status, in one query; pairs without alerts are absent.
    async fn alert_counts(&self) -> DbResult<Vec<AlertCount>>;
}
