use serde::{Deserialize, Serialize};

use crate::{Location, Role, Timestamp};

/// `POST /v1/pledge`: a store applies for membership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PledgeRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::required_text::<120>))]
    pub store_name: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::required_text::<300>))]
    pub address: String,
    pub location: Location,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::required_text::<120>))]
    pub contact_name: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::email::<254>))]
    pub contact_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<40>))]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.5, maximum = 500.0))]
    pub radius_km: Option<f64>,
    /// Must be `true`: the store accepts the Partner for Protection pledge.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, schema_with = crate::openapi::must_be_true))]
    pub accept_pledge: bool,
}

/// `201` to `POST /v1/pledge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PledgeCreated {
    pub store_id: i64,
    pub status: StoreStatus,
    /// Shown once; the applicant claims its token with it.
    pub claim_secret: String,
}

/// `POST /v1/pledge/{store_id}/claim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimRequest {
    pub claim_secret: String,
}

/// The answer to a claim: `pending` (202) or `approved` with the token (200).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimResponse {
    pub status: StoreStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

wire_enum! {
    /// Where a store stands in the membership process.
    #[strum(parse_err_fn = unknown_status)]
    pub enum StoreStatus {
        Pending,
        Approved,
        Rejected,
        Suspended,
    }
}

fn unknown_status(text: &str) -> String {
    crate::unknown("store status", text, StoreStatus::ALL)
}

/// A member store as staff see it, with its contact details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Store {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub location: Location,
    pub radius_km: f64,
    pub status: StoreStatus,
    pub contact_name: String,
    pub contact_email: String,
    #[serde(default)]
    pub phone: Option<String>,
    /// Why the store was last rejected or suspended.
    #[serde(default)]
    pub status_reason: Option<String>,
    /// The place the store asked to move to, waiting for a moderator;
    /// `null` when none waits.
    #[serde(default)]
    pub pending_move: Option<PendingMove>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// A move a store asked for (`PATCH /v1/me` with a `location`): its place
/// stays where it was until a moderator approves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingMove {
    pub location: Location,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub requested_at: Timestamp,
}

/// `200` to `POST /v1/stores/{id}/reinstate`: the store, and the claim
/// secret staff hand to it (shown this once), with which it claims a fresh
/// token: reinstatement revoked every token it had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReinstatedStore {
    #[serde(flatten)]
    pub store: Store,
    pub claim_secret: String,
}

/// `GET /v1/stores`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreList {
    pub stores: Vec<Store>,
}

/// `{"reason"}` for reject, suspend and the like.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReasonRequest {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<500>))]
    pub reason: Option<String>,
}

/// The caller's own store, as `GET /v1/me` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OwnStore {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub location: Location,
    pub radius_km: f64,
    pub status: StoreStatus,
    /// Why the store was last rejected or suspended, so that it knows.
    #[serde(default)]
    pub status_reason: Option<String>,
    /// The place the store asked to move to; until a moderator approves,
    /// `location` and the store's streams stay where they were.
    #[serde(default)]
    pub pending_move: Option<PendingMove>,
}

/// `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<OwnStore>,
    /// The token this request was made with.
    pub token: TokenInfo,
}

/// `PATCH /v1/me`: a store moves or widens its area of interest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.5, maximum = 500.0))]
    pub radius_km: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// `POST /v1/me/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::required_text::<100>))]
    pub label: String,
    /// Admins only: the new staff token's role, `moderator` (the default:
    /// least privilege) or `admin`. A store's tokens are store tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// `201` to `POST /v1/me/tokens`: the token is shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    pub id: i64,
    pub label: String,
    pub token: String,
}

/// A token as listed: never the secret itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub id: i64,
    pub label: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<Timestamp>,
    /// When the token last authenticated a request, to the minute (it is
    /// recorded at most once a minute); `null` if never. A use the owner
    /// does not recognise is a stolen token.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_used_at: Option<Timestamp>,
}

/// `GET /v1/me/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}
