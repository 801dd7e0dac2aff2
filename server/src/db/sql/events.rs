//! The event log: the events a write appends in its transaction (with
//! their `seq`s from the one counter row), the bodies of their frames, the
//! rewriting of earlier bodies after a change, and the announcements to
//! other nodes; and reading the log back for replay.

use std::sync::Arc;

use async_trait::async_trait;
use p4p_protocol::{Alert, AlertStatus, Flag};
use serde::Serialize;
use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::binds::{Bind, Binds};
use super::rows::event_from_row;
use super::{to_json, unix, Dialect, SqlStore};
use crate::db::relay;
use crate::db::{DbResult, Events};
use crate::domain::delivery::{Event, EventKind};
use crate::domain::moderation::Notice;
use crate::domain::place::Area;
use crate::domain::version::changed_fields;

/// An event to append, before it has its `seq`.
pub(super) struct NewEvent<'a> {
    kind: EventKind,
    alert: &'a Alert,
    previous_reach: Option<Area>,
    /// `update`s: the fields that changed, as a JSON array.
    changed: Option<String>,
    body: String,
}

impl<'a> NewEvent<'a> {
    /// The event a notice appends for a change of an alert from `before`
    /// to `after` (the same alert for a new one): a `retract` or a `flag`
    /// where members saw it before, the others with it as it is now.
    pub(super) fn of(
        notice: Notice<'_>,
        before: &'a Alert,
        after: &'a Alert,
    ) -> DbResult<NewEvent<'a>> {
        Ok(match notice {
            Notice::Alert => NewEvent::plain(EventKind::Alert, after, alert_body(after)?),
            Notice::Pending => NewEvent::plain(EventKind::Pending, after, alert_body(after)?),
            Notice::Update => NewEvent::update(before, after)?,
            Notice::Retract(reason) => {
                NewEvent::plain(EventKind::Retract, before, retract_body(before.id, reason)?)
            }
            Notice::Flag(flag) => NewEvent::plain(EventKind::Flag, before, flag_body(flag)?),
        })
    }

    /// An event whose body is given whole.
    fn plain(kind: EventKind, alert: &'a Alert, body: String) -> NewEvent<'a> {
        NewEvent {
            kind,
            alert,
            previous_reach: None,
            changed: None,
            body,
        }
    }

    /// An `update` of `after`, saying what changed since `before`, and where
    /// it was when the update moved it.
    fn update(before: &Alert, after: &'a Alert) -> DbResult<NewEvent<'a>> {
        let changed = to_json(&changed_fields(before, after))?;
        let previous = Area::of_alert(before);
        Ok(NewEvent {
            kind: EventKind::Update,
            alert: after,
            previous_reach: (previous != Area::of_alert(after)).then_some(previous),
            body: update_body(&changed, after)?,
            changed: Some(changed),
        })
    }
}

/// Appends the events `notices` plan for a change of an alert from
/// `before` to `after`, in the writing transaction.
pub(super) async fn append_notices(
    tx: &mut AnyConnection,
    dialect: Dialect,
    notices: &[Notice<'_>],
    before: &Alert,
    after: &Alert,
    now: OffsetDateTime,
) -> DbResult<Vec<Event>> {
    let events = notices
        .iter()
        .map(|notice| NewEvent::of(*notice, before, after))
        .collect::<DbResult<Vec<_>>>()?;
    append_events(tx, dialect, events, now).await
}

/// Appends events in the writing transaction, in order, with the next
/// seqs: one counter update and one insert for all of them.
pub(super) async fn append_events(
    tx: &mut AnyConnection,
    dialect: Dialect,
    events: Vec<NewEvent<'_>>,
    now: OffsetDateTime,
) -> DbResult<Vec<Event>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let count = events.len() as i64;
    // The counter row serializes every event-writing transaction, on every
    // node: seq order is commit order.
    let last: i64 =
        sqlx::query_scalar("UPDATE event_counter SET seq = seq + $1 WHERE id = 1 RETURNING seq")
            .bind(count)
            .fetch_one(&mut *tx)
            .await?;
    let changed: Vec<Option<String>> = events.iter().map(|new| new.changed.clone()).collect();
    let events: Vec<Event> = events
        .into_iter()
        .zip(last - count + 1..)
        .map(|(new, seq)| Event {
            seq,
            kind: new.kind,
            alert_id: new.alert.id,
            author: new.alert.store.id,
            reach: Area::of_alert(new.alert),
            previous_reach: new.previous_reach,
            occurred_at: unix(new.alert.occurred_at),
            body: Arc::from(new.body),
        })
        .collect();
    let mut binds = Binds::default();
    let rows: Vec<String> = events
        .iter()
        .zip(&changed)
        .map(|(event, changed)| {
            let previous = event.previous_reach;
            let values = [
                binds.push(Bind::Int(event.seq)),
                binds.push(Bind::Text(event.kind.as_str())),
                binds.push(Bind::Int(event.alert_id)),
                binds.push(Bind::Int(event.author)),
                binds.push(Bind::Real(event.reach.center.lat())),
                binds.push(Bind::Real(event.reach.center.lon())),
                binds.push(Bind::Real(event.reach.radius.km())),
                binds.push_maybe_real(previous.map(|r| r.center.lat())),
                binds.push_maybe_real(previous.map(|r| r.center.lon())),
                binds.push_maybe_real(previous.map(|r| r.radius.km())),
                binds.push(Bind::Int(event.occurred_at)),
                binds.push(Bind::MaybeText(changed.as_deref())),
                binds.push(Bind::Text(&event.body)),
                binds.push(Bind::Int(unix(now))),
            ];
            format!("({})", values.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO events (seq, type, alert_id, store_id, lat, lon, radius_km, previous_lat, previous_lon, \
         previous_radius_km, occurred_at, changed, body, created_at) VALUES {}",
        rows.join(", ")
    );
    // Its text varies with the number of rows: not worth a cached statement.
    let insert = binds.query(&sql).persistent(events.len() == 1);
    insert.execute(&mut *tx).await?;
    if dialect == Dialect::Postgres {
        // Delivered at commit: a rolled-back write notifies no one. The
        // newest seq is enough: other nodes read every event up to it.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(relay::EVENTS_CHANNEL)
            .bind(last.to_string())
            .execute(&mut *tx)
            .await?;
    }
    Ok(events)
}

/// Tells every node, at commit (PostgreSQL; one SQLite node has no others),
/// and returns the announcement for this node's own network.
pub(super) async fn announce_in(
    tx: &mut AnyConnection,
    dialect: Dialect,
    announcement: relay::Announcement,
) -> DbResult<relay::Announcement> {
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(relay::CONTROL_CHANNEL)
            .bind(announcement.payload())
            .execute(tx)
            .await?;
    }
    Ok(announcement)
}

/// The fields of `alert`, `update` and `pending` frames after `type`, `seq`
/// and `distance_km`.
fn alert_body(alert: &Alert) -> DbResult<String> {
    #[derive(Serialize)]
    struct Body<'a> {
        alert: &'a Alert,
    }
    to_json(&Body { alert })
}

/// The fields of an `update` frame: what changed (a JSON array), and the
/// alert. [`rewrite_bodies`] builds the same in SQL.
fn update_body(changed: &str, alert: &Alert) -> DbResult<String> {
    Ok(format!(
        "{{\"changed\":{changed},\"alert\":{}}}",
        to_json(alert)?
    ))
}

/// Replay shows the network as it is now (docs/API.md): after a change to
/// `alert`, the stored bodies of its earlier events are rewritten in the
/// same transaction, so that no withdrawn content stays in them. `alert`
/// and `update` events carry its current version while it is published,
/// `pending` events while it waits; otherwise their bodies are emptied
/// (withdrawn), and replay skips them. `retract` and `flag` bodies hold
/// no alert content and stay.
pub(super) async fn rewrite_bodies(tx: &mut AnyConnection, alert: &Alert) -> DbResult<()> {
    let published = alert.status == AlertStatus::Published;
    let pending = alert.status == AlertStatus::Pending;
    sqlx::query(
        "UPDATE events SET body = CASE \
         WHEN type = 'pending' AND $1 THEN '{\"alert\":' || $3 || '}' \
         WHEN type = 'alert' AND $2 THEN '{\"alert\":' || $3 || '}' \
         WHEN type = 'update' AND $2 THEN '{\"changed\":' || COALESCE(changed, '[]') || ',\"alert\":' || $3 || '}' \
         ELSE '' END \
         WHERE alert_id = $4 AND type IN ('alert', 'update', 'pending')",
    )
    .bind(pending)
    .bind(published)
    .bind(to_json(alert)?)
    .bind(alert.id)
    .execute(tx)
    .await?;
    Ok(())
}

/// The fields of a `retract` frame.
pub(super) fn retract_body(alert_id: i64, reason: Option<&str>) -> DbResult<String> {
    #[derive(Serialize)]
    struct Body<'a> {
        alert_id: i64,
        reason: Option<&'a str>,
    }
    to_json(&Body { alert_id, reason })
}

/// The fields of a `flag` frame.
fn flag_body(flag: &Flag) -> DbResult<String> {
    #[derive(Serialize)]
    struct Body<'a> {
        alert_id: i64,
        store_id: i64,
        reason: &'a str,
    }
    to_json(&Body {
        alert_id: flag.alert_id,
        store_id: flag.store_id,
        reason: &flag.reason,
    })
}

#[async_trait]
impl Events for SqlStore {
    async fn head(&self) -> DbResult<i64> {
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&self.reader)
            .await?;
        Ok(head.unwrap_or(0))
    }

    async fn events_after(&self, after: i64, limit: i64) -> DbResult<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT seq, type, alert_id, store_id, lat, lon, radius_km, previous_lat, previous_lon, \
             previous_radius_km, occurred_at, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}
