//! Changes to an alert after it is posted: its author's edits, moderators'
//! actions, member stores' flags, and the moderation queue.

use async_trait::async_trait;
use p4p_protocol::{AlertStatus, Flag, FlaggedAlert, ModerationQueue};
use time::OffsetDateTime;

use super::alerts::{alert_after, fetch_alert_locked, precondition};
use super::audit::audit;
use super::events::{append_notices, rewrite_bodies};
use super::idempotency::remember;
use super::rows::{alert_from_row, flag_from_row, ALERT_COLUMNS};
use super::{to_json, unix, SqlStore};
use crate::db::{
    Actor, AlertChange, Committed, DbResult, Edit, FlagOutcome, IdempotencyKey, Moderation,
};
use crate::domain::moderation::{
    plan_edit, plan_flag, AlertAction, EDITABLE, EDITED_REASON, HELD_REASON,
};
use crate::domain::version::IfMatch;

#[async_trait]
impl Moderation for SqlStore {
    async fn edit_alert(
        &self,
        id: i64,
        edit: Edit<'_>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<AlertChange>> {
        let edited = edit.alert;
        let now = crate::domain::alert::whole_seconds(now);
        let mut tx = self.writer.begin().await?;
        let Some(before) = fetch_alert_locked(&mut tx, self.dialect, id).await? else {
            return Ok(Committed::quiet(AlertChange::NotFound));
        };
        if let Some(refused) = precondition(&before, edit.if_match) {
            return Ok(Committed::quiet(refused));
        }
        if !EDITABLE.contains(&before.status) {
            return Ok(Committed::quiet(AlertChange::Conflict(before.status)));
        }
        // The edit was built on what the handler read: if the alert moved on
        // since, whatever If-Match allowed, applying it would undo that change.
        if before != *edit.seen {
            return Ok(Committed::quiet(match edit.if_match {
                Some(_) => AlertChange::PreconditionFailed(before.version),
                None => AlertChange::Stale,
            }));
        }
        let plan = plan_edit(before.status, edit.hold);
        sqlx::query(
            "UPDATE alerts SET kind = $1, title = $2, description = $3, lat = $4, lon = $5, radius_km = $6, \
             suspects = $7, vehicles = $8, updated_at = $9, version = version + 1, \
             verified = CASE WHEN $10 THEN 0 ELSE verified END, \
             status = CASE WHEN $11 THEN 'pending' ELSE status END, \
             status_reason = CASE WHEN $12 THEN $13 ELSE status_reason END WHERE id = $14",
        )
        .bind(edited.kind.as_str())
        .bind(&edited.title)
        .bind(&edited.description)
        .bind(edited.reach.center.lat())
        .bind(edited.reach.center.lon())
        .bind(edited.reach.radius.km())
        .bind(to_json(&edited.suspects)?)
        .bind(to_json(&edited.vehicles)?)
        .bind(unix(now))
        .bind(edit.by_author)
        .bind(plan.holds)
        .bind(plan.holds)
        .bind(EDITED_REASON)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            actor,
            "alert.edit",
            &format!("alert:{id}"),
            None,
            now,
        )
        .await?;
        let after = alert_after(&mut tx, id).await?;
        rewrite_bodies(&mut tx, &after).await?;
        // Events last: the counter row is taken after the alert's row.
        let events =
            append_notices(&mut tx, self.dialect, &plan.notices, &before, &after, now).await?;
        tx.commit().await?;
        Ok(Committed::with_events(
            AlertChange::Done(Box::new(after)),
            events,
        ))
    }

    async fn moderate_alert(
        &self,
        id: i64,
        action: AlertAction,
        reason: Option<&str>,
        if_match: Option<&IfMatch>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<AlertChange>> {
        let (from, to) = action.transition();
        let now = crate::domain::alert::whole_seconds(now);
        let mut tx = self.writer.begin().await?;
        let Some(before) = fetch_alert_locked(&mut tx, self.dialect, id).await? else {
            return Ok(Committed::quiet(AlertChange::NotFound));
        };
        if let Some(refused) = precondition(&before, if_match) {
            return Ok(Committed::quiet(refused));
        }
        if !from.contains(&before.status) {
            return Ok(Committed::quiet(AlertChange::Conflict(before.status)));
        }
        sqlx::query(
            "UPDATE alerts SET status = $1, status_reason = CASE WHEN $2 THEN $3 ELSE status_reason END, \
             updated_at = $4, version = version + 1, verified = CASE WHEN $5 THEN 1 ELSE verified END, \
             published_at = CASE WHEN $6 = 'published' THEN COALESCE(published_at, $7) ELSE published_at END \
             WHERE id = $8",
        )
        .bind(to.as_str())
        .bind(action != AlertAction::Verify)
        .bind(reason.filter(|_| action.needs_reason()))
        .bind(unix(now))
        .bind(action == AlertAction::Verify)
        .bind(to.as_str())
        .bind(unix(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // A moderator's decision settles the flags raised so far.
        sqlx::query(
            "UPDATE flags SET resolved_at = $1 WHERE alert_id = $2 AND resolved_at IS NULL",
        )
        .bind(unix(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let alert = alert_after(&mut tx, id).await?;
        audit(
            &mut tx,
            actor,
            action.audit_name(),
            &format!("alert:{id}"),
            reason,
            now,
        )
        .await?;
        rewrite_bodies(&mut tx, &alert).await?;
        // Events last: the counter row is taken after the alert's row.
        let notices = action.notices(reason);
        let events = append_notices(&mut tx, self.dialect, &notices, &before, &alert, now).await?;
        tx.commit().await?;
        Ok(Committed::with_events(
            AlertChange::Done(Box::new(alert)),
            events,
        ))
    }

    async fn flag_alert(
        &self,
        id: i64,
        store_id: i64,
        reason: &str,
        threshold: u32,
        idempotency: Option<IdempotencyKey>,
        now: OffsetDateTime,
    ) -> DbResult<Committed<FlagOutcome>> {
        let now = crate::domain::alert::whole_seconds(now);
        let mut tx = self.writer.begin().await?;
        let Some(alert) = fetch_alert_locked(&mut tx, self.dialect, id).await? else {
            return Ok(Committed::quiet(FlagOutcome::NotFound));
        };
        // The key first: a retry racing its first try on another node waits
        // for it here and then answers what it made, not `already_flagged`
        // or, if that flag held the alert, `invalid_transition`.
        if let Some(key) = &idempotency {
            let object = format!("flag:{id}:{store_id}");
            if !remember(&mut tx, key, 201, &object, now).await? {
                return Ok(Committed::quiet(FlagOutcome::KeyTaken));
            }
        }
        if alert.status != AlertStatus::Published {
            return Ok(Committed::quiet(FlagOutcome::NotFlaggable(alert.status)));
        }
        let inserted = sqlx::query(
            "INSERT INTO flags (alert_id, store_id, reason, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (alert_id, store_id) DO NOTHING",
        )
        .bind(id)
        .bind(store_id)
        .bind(reason)
        .bind(unix(now))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(Committed::quiet(FlagOutcome::AlreadyFlagged));
        }
        let flag = Flag {
            alert_id: id,
            store_id,
            reason: reason.to_owned(),
            created_at: now,
        };
        audit(
            &mut tx,
            &Actor::store(store_id),
            "alert.flag",
            &format!("alert:{id}"),
            Some(reason),
            now,
        )
        .await?;
        let flaggers: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM flags WHERE alert_id = $1 AND resolved_at IS NULL",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let plan = plan_flag(&flag, flaggers, threshold);
        let mut waiting = None;
        if plan.holds {
            sqlx::query(
                "UPDATE alerts SET status = 'pending', status_reason = $1, updated_at = $2, \
                 version = version + 1 WHERE id = $3",
            )
            .bind(HELD_REASON)
            .bind(unix(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let actor = Actor(format!("{threshold} flags"));
            let object = format!("alert:{id}");
            audit(
                &mut tx,
                &actor,
                "alert.hold",
                &object,
                Some(HELD_REASON),
                now,
            )
            .await?;
            let held_alert = alert_after(&mut tx, id).await?;
            rewrite_bodies(&mut tx, &held_alert).await?;
            waiting = Some(held_alert);
        }
        // Events last: the counter row that orders the whole network is
        // held as briefly as possible, and always after the alert's row.
        let after = waiting.as_ref().unwrap_or(&alert);
        let events =
            append_notices(&mut tx, self.dialect, &plan.notices, &alert, after, now).await?;
        let held = plan.holds;
        tx.commit().await?;
        Ok(Committed::with_events(
            FlagOutcome::Flagged { flag, held },
            events,
        ))
    }

    async fn flag(&self, alert_id: i64, store_id: i64) -> DbResult<Option<Flag>> {
        let row = sqlx::query(
            "SELECT alert_id, store_id, reason, created_at FROM flags \
             WHERE alert_id = $1 AND store_id = $2",
        )
        .bind(alert_id)
        .bind(store_id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(flag_from_row).transpose()
    }

    async fn moderation_queue(&self, not_before: i64) -> DbResult<ModerationQueue> {
        let pending = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a JOIN stores s ON s.id = a.store_id \
             WHERE a.status = 'pending' AND a.erased_at IS NULL AND a.occurred_at >= $1 AND NOT EXISTS \
             (SELECT 1 FROM flags f WHERE f.alert_id = a.id AND f.resolved_at IS NULL) ORDER BY a.id"
        ))
        .bind(not_before)
        .fetch_all(&self.reader)
        .await?;
        let flagged = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a JOIN stores s ON s.id = a.store_id \
             WHERE a.erased_at IS NULL AND a.occurred_at >= $1 \
             AND EXISTS (SELECT 1 FROM flags f WHERE f.alert_id = a.id AND f.resolved_at IS NULL) \
             ORDER BY (SELECT MIN(created_at) FROM flags f WHERE f.alert_id = a.id AND f.resolved_at IS NULL), a.id"
        ))
        .bind(not_before)
        .fetch_all(&self.reader)
        .await?;
        let mut queue = ModerationQueue {
            pending: pending
                .iter()
                .map(alert_from_row)
                .collect::<DbResult<_>>()?,
            flagged: Vec::with_capacity(flagged.len()),
        };
        for row in &flagged {
            let alert = alert_from_row(row)?;
            let flags = sqlx::query(
                "SELECT alert_id, store_id, reason, created_at FROM flags \
                 WHERE alert_id = $1 AND resolved_at IS NULL \
                 ORDER BY created_at, store_id",
            )
            .bind(alert.id)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(flag_from_row)
            .collect::<DbResult<Vec<Flag>>>()?;
            queue.flagged.push(FlaggedAlert { alert, flags });
        }
        Ok(queue)
    }
}
