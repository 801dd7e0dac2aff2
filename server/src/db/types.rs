//! The values handlers hand the storage layer and get back from it: who
//! acts, what a query asks, what a write came to.

use p4p_protocol::{Alert, AlertKind, AlertStatus, Flag, Role, Store, StoreStatus, TokenInfo};

use crate::domain::alert::ValidAlert;
use crate::domain::place::{Area, Place, RadiusKm};
use crate::domain::secret::SecretHash;
use crate::domain::version::IfMatch;

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

/// How many alerts of a kind are in a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCount {
    pub kind: String,
    pub status: String,
    pub count: i64,
}
