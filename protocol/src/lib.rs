//! The p4p wire contract (`docs/API.md`, v1) as serde types.
//!
//! These types say what travels on the wire and nothing more: a request type
//! accepts anything well-formed, and the server turns it into checked domain
//! values. Responses and stream frames are what clients read; every client
//! must ignore fields and frame types it does not know, so none of these
//! types deny unknown fields.

mod alert;
mod frame;
mod membership;
mod moderation;
#[cfg(feature = "openapi")]
pub mod openapi;
mod problem;

pub use alert::*;
pub use frame::*;
pub use membership::*;
pub use moderation::*;
pub use problem::*;

use serde::{Deserialize, Serialize};

/// A point on the earth in WGS 84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Location {
    #[cfg_attr(feature = "openapi", schema(minimum = -90.0, maximum = 90.0))]
    pub lat: f64,
    #[cfg_attr(feature = "openapi", schema(minimum = -180.0, maximum = 180.0))]
    pub lon: f64,
}

/// RFC 3339 timestamps in UTC, as the wire carries them.
pub type Timestamp = time::OffsetDateTime;

/// Serde helpers for RFC 3339 timestamps.
pub mod rfc3339 {
    pub use time::serde::rfc3339::*;
}

/// The role a token acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An approved member store.
    Store,
    /// Association staff.
    Moderator,
    /// Staff who can also manage staff tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Store => "store",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    /// Moderators and admins: association staff.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Moderator | Role::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "store" => Ok(Role::Store),
            "moderator" => Ok(Role::Moderator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`, expected store, moderator or admin"
            )),
        }
    }
}
