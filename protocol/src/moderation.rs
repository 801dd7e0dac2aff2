use serde::{Deserialize, Serialize};

use crate::{Alert, AlertKind, Location, Suspect, Timestamp, Vehicle};

/// `PATCH /v1/alerts/{id}`: every field optional; what is given replaces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AlertKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// An empty string clears the description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius_km: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspects: Option<Vec<Suspect>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicles: Option<Vec<Vehicle>>,
}

/// One store's report that an alert is wrong or abusive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    pub alert_id: i64,
    pub store_id: i64,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}

/// An alert with the flags stores raised on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlaggedAlert {
    pub alert: Alert,
    pub flags: Vec<Flag>,
}

/// `GET /v1/moderation/queue`: what awaits a moderator, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModerationQueue {
    pub pending: Vec<Alert>,
    pub flagged: Vec<FlaggedAlert>,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    /// Who: `admin #1 (Alice)`, `store #7`, `server host`. Never a token.
    pub actor: String,
    /// What: `store.approve`, `alert.retract`, `token.create`, ...
    pub action: String,
    /// On what: `store:7`, `alert:42`, `token:3`.
    pub object: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `GET /v1/audit`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before_id` for the next page; `null` on the last one.
    pub next_before_id: Option<i64>,
}
