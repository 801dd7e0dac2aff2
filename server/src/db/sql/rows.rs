//! Row mapping: the columns each read selects, and how a row becomes a
//! store, a token, an alert, a flag or an event.

use std::sync::Arc;

use p4p_protocol::{Alert, Flag, Location, PendingMove, Store, StoreRef, TokenInfo};
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::db::{DbError, DbResult};
use crate::domain::delivery::{Event, EventKind};
use crate::domain::place::{Area, Place, RadiusKm};

pub(super) const STORE_COLUMNS: &str =
    "id, name, address, lat, lon, radius_km, contact_name, contact_email, \
     phone, status, status_reason, created_at, updated_at, pending_lat, pending_lon, \
     move_requested_at";

pub(super) fn store_from_row(row: &AnyRow) -> DbResult<Store> {
    store_from_columns(row, "")
}

/// `columns` (a list like [`STORE_COLUMNS`]) of the table aliased `table`:
/// `s.id, s.name...`, or with `renamed`, `s.id AS s_id...`, to read a row
/// along with another whose columns have the same names.
pub(super) fn columns_of(table: &str, columns: &str, renamed: bool) -> String {
    columns
        .split(", ")
        .map(|column| match renamed {
            true => format!("{table}.{column} AS {table}_{column}"),
            false => format!("{table}.{column}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A store from columns named `{prefix}id`, `{prefix}name`...
pub(super) fn store_from_columns(row: &AnyRow, prefix: &str) -> DbResult<Store> {
    let column = |name: &str| format!("{prefix}{name}");
    Ok(Store {
        id: row.try_get(column("id").as_str())?,
        name: row.try_get(column("name").as_str())?,
        address: row.try_get(column("address").as_str())?,
        location: Location {
            lat: row.try_get(column("lat").as_str())?,
            lon: row.try_get(column("lon").as_str())?,
        },
        radius_km: row.try_get(column("radius_km").as_str())?,
        status: parse_text(row.try_get::<&str, _>(column("status").as_str())?)?,
        contact_name: row.try_get(column("contact_name").as_str())?,
        contact_email: row.try_get(column("contact_email").as_str())?,
        phone: row.try_get(column("phone").as_str())?,
        status_reason: row.try_get(column("status_reason").as_str())?,
        pending_move: pending_move_from_columns(row, prefix)?,
        created_at: from_unix(row.try_get(column("created_at").as_str())?)?,
        updated_at: from_unix(row.try_get(column("updated_at").as_str())?)?,
    })
}

/// The store's pending move: its three columns are set together or not at all.
fn pending_move_from_columns(row: &AnyRow, prefix: &str) -> DbResult<Option<PendingMove>> {
    let column = |name: &str| format!("{prefix}{name}");
    let lat: Option<f64> = row.try_get(column("pending_lat").as_str())?;
    let lon: Option<f64> = row.try_get(column("pending_lon").as_str())?;
    let at: Option<i64> = row.try_get(column("move_requested_at").as_str())?;
    match (lat, lon, at) {
        (Some(lat), Some(lon), Some(at)) => Ok(Some(PendingMove {
            location: Location { lat, lon },
            requested_at: from_unix(at)?,
        })),
        (None, None, None) => Ok(None),
        _ => Err(DbError::Corrupt(
            "a store's pending move is incomplete".to_owned(),
        )),
    }
}

pub(super) const TOKEN_COLUMNS: &str = "id, label, role, created_at, revoked_at, last_used_at";

pub(super) fn token_from_row(row: &AnyRow) -> DbResult<TokenInfo> {
    Ok(TokenInfo {
        id: row.try_get("id")?,
        label: row.try_get("label")?,
        role: parse_text(row.try_get::<&str, _>("role")?)?,
        created_at: from_unix(row.try_get("created_at")?)?,
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_unix)
            .transpose()?,
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at")?
            .map(from_unix)
            .transpose()?,
    })
}

pub(super) const ALERT_COLUMNS: &str =
    "a.id, a.kind, a.status, a.title, a.description, a.occurred_at, a.lat, a.lon, \
     a.radius_km, a.suspects, a.vehicles, a.verified, a.created_at, a.updated_at, \
     a.status_reason, a.version, a.store_id, s.name AS store_name";

pub(super) fn alert_from_row(row: &AnyRow) -> DbResult<Alert> {
    let json = |column: &str| -> DbResult<String> { Ok(row.try_get::<String, _>(column)?) };
    Ok(Alert {
        id: row.try_get("id")?,
        kind: parse_text(row.try_get::<&str, _>("kind")?)?,
        status: parse_text(row.try_get::<&str, _>("status")?)?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        occurred_at: from_unix(row.try_get("occurred_at")?)?,
        location: Location {
            lat: row.try_get("lat")?,
            lon: row.try_get("lon")?,
        },
        radius_km: row.try_get("radius_km")?,
        suspects: serde_json::from_str(&json("suspects")?)
            .map_err(|e| DbError::Corrupt(format!("suspects: {e}")))?,
        vehicles: serde_json::from_str(&json("vehicles")?)
            .map_err(|e| DbError::Corrupt(format!("vehicles: {e}")))?,
        store: StoreRef {
            id: row.try_get("store_id")?,
            name: row.try_get("store_name")?,
        },
        verified: row.try_get::<i64, _>("verified")? != 0,
        version: row.try_get("version")?,
        status_reason: row.try_get("status_reason")?,
        created_at: from_unix(row.try_get("created_at")?)?,
        updated_at: from_unix(row.try_get("updated_at")?)?,
    })
}

pub(super) fn flag_from_row(row: &AnyRow) -> DbResult<Flag> {
    Ok(Flag {
        alert_id: row.try_get("alert_id")?,
        store_id: row.try_get("store_id")?,
        reason: row.try_get("reason")?,
        created_at: from_unix(row.try_get("created_at")?)?,
    })
}

pub(super) fn event_from_row(row: &AnyRow) -> DbResult<Event> {
    let kind: &str = row.try_get("type")?;
    let previous_reach = match (
        row.try_get::<Option<f64>, _>("previous_lat")?,
        row.try_get::<Option<f64>, _>("previous_lon")?,
        row.try_get::<Option<f64>, _>("previous_radius_km")?,
    ) {
        (Some(lat), Some(lon), Some(radius)) => Some(Area {
            center: Place::from_stored(lat, lon),
            radius: RadiusKm::from_stored(radius),
        }),
        _ => None,
    };
    Ok(Event {
        seq: row.try_get("seq")?,
        kind: EventKind::parse(kind)
            .ok_or_else(|| DbError::Corrupt(format!("event type {kind}")))?,
        alert_id: row.try_get("alert_id")?,
        author: row.try_get("store_id")?,
        reach: Area {
            center: Place::from_stored(row.try_get("lat")?, row.try_get("lon")?),
            radius: RadiusKm::from_stored(row.try_get("radius_km")?),
        },
        previous_reach,
        occurred_at: row.try_get("occurred_at")?,
        body: Arc::from(row.try_get::<&str, _>("body")?),
    })
}

/// Unix seconds to a UTC time.
pub(super) fn from_unix(seconds: i64) -> DbResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| DbError::Corrupt(format!("timestamp {seconds} out of range")))
}

pub(super) fn parse_text<T: std::str::FromStr<Err = String>>(value: &str) -> DbResult<T> {
    value.parse().map_err(DbError::Corrupt)
}
