use serde::{Deserialize, Serialize};

use crate::{Alert, Location, Role};

/// One text message on `GET /v1/stream`.
///
/// Clients must ignore frame types they do not know; `Unknown` catches them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// First frame of every connection.
    Hello(Hello),
    /// An alert became published.
    Alert(AlertFrame),
    /// A published alert changed.
    Update(AlertFrame),
    /// A published alert was withdrawn; clients drop it.
    Retract {
        seq: i64,
        alert_id: i64,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Staff only: an alert awaits moderation.
    Pending { seq: i64, alert: Box<Alert> },
    /// Staff only: a store flagged an alert.
    Flag {
        seq: i64,
        alert_id: i64,
        store_id: i64,
        #[serde(default)]
        reason: Option<String>,
    },
    /// A frame type this client does not know.
    #[serde(other)]
    Unknown,
}

impl Frame {
    /// The event position, for every frame that carries one.
    pub fn seq(&self) -> Option<i64> {
        match self {
            Frame::Alert(frame) | Frame::Update(frame) => Some(frame.seq),
            Frame::Retract { seq, .. } | Frame::Pending { seq, .. } | Frame::Flag { seq, .. } => {
                Some(*seq)
            }
            Frame::Hello(_) | Frame::Unknown => None,
        }
    }
}

/// The `hello` frame: who the stream is for, and where the network stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The newest `seq` at connection time.
    pub head: i64,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius_km: Option<f64>,
}

/// `alert` and `update` frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertFrame {
    pub seq: i64,
    /// From the receiving store to the alert; absent on staff streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// `update` frames: the names of the alert's fields that changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    pub alert: Box<Alert>,
}

/// WebSocket close codes the stream uses.
pub mod close_code {
    /// The server is shutting down; reconnect with `since`.
    pub const GOING_AWAY: u16 = 1001;
    /// The client sent more messages than a stream takes (it only needs
    /// to answer pings).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// The client sent a message larger than 4 KiB.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server could not check the stream's credential (its database
    /// did not answer); reconnect later with `since`.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The token was revoked or the store suspended; do not reconnect.
    pub const REVOKED: u16 = 4001;
    /// The client read too slowly; reconnect with `since`, nothing is lost.
    pub const TOO_SLOW: u16 = 4008;
}
