//! Alerts: the `Alerts` implementation, whose writes live with their
//! concern (`writer` posts, `moderation` edits, moderates and flags,
//! `erasure` erases, `near` lists), and reading one alert, a store's
//! published count and a flag; the census of `GET /metrics`.

use async_trait::async_trait;
use p4p_protocol::{Alert, Flag, ModerationQueue, StoreRef};
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use super::rows::{alert_from_row, from_unix, ALERT_COLUMNS};
use super::{erasure, moderation, near, writer, Dialect, SqlStore};
use crate::db::{
    Actor, AlertChange, AlertCount, AlertList, AlertQuery, Alerts, Census, Committed, DbError,
    DbResult, Edit, FlagOutcome, IdempotencyKey, Posted,
};
use crate::domain::alert::ValidAlert;
use crate::domain::moderation::{Admission, AlertAction};
use crate::domain::version::IfMatch;

#[async_trait]
impl Alerts for SqlStore {
    async fn post_alert(
        &self,
        author: &StoreRef,
        alert: &ValidAlert,
        admission: &Admission,
        idempotency: Option<IdempotencyKey>,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Posted>> {
        writer::post_alert(self, author, alert, admission, idempotency, now).await
    }

    async fn alert(&self, id: i64) -> DbResult<Option<Alert>> {
        fetch_alert(&mut *self.reader.acquire().await?, id).await
    }

    async fn alerts(&self, query: &AlertQuery) -> DbResult<AlertList> {
        near::alerts(self, query).await
    }

    async fn published_count(&self, store_id: i64, at_most: i64) -> DbResult<i64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM alerts WHERE store_id = $1 AND published_at IS NOT NULL \
             LIMIT $2) AS published")
        .bind(store_id)
        .bind(at_most)
        .fetch_one(&self.reader)
        .await?;
        Ok(count)
    }

    async fn edit_alert(
        &self,
        id: i64,
        edit: Edit<'_>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<AlertChange>> {
        moderation::edit_alert(self, id, edit, actor, now).await
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
        moderation::moderate_alert(self, id, action, reason, if_match, actor, now).await
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
        moderation::flag_alert(self, id, store_id, reason, threshold, idempotency, now).await
    }

    async fn flag(&self, alert_id: i64, store_id: i64) -> DbResult<Option<Flag>> {
        let row = sqlx::query(
            "SELECT reason, created_at FROM flags WHERE alert_id = $1 AND store_id = $2",
        )
        .bind(alert_id)
        .bind(store_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(Flag {
                alert_id,
                store_id,
                reason: row.try_get("reason")?,
                created_at: from_unix(row.try_get("created_at")?)?,
            })
        })
        .transpose()
    }

    async fn erase_alert(
        &self,
        id: i64,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Option<Alert>>> {
        erasure::erase_alert(self, id, reason, actor, now).await
    }

    async fn erase_expired(
        &self,
        cutoff: i64,
        limit: i64,
        now: OffsetDateTime,
    ) -> DbResult<Vec<i64>> {
        erasure::erase_expired(self, cutoff, limit, now).await
    }

    async fn moderation_queue(&self, not_before: i64) -> DbResult<ModerationQueue> {
        moderation::moderation_queue(self, not_before).await
    }
}

/// The alert, unless it is erased.
pub(super) async fn fetch_alert(conn: &mut AnyConnection, id: i64) -> DbResult<Option<Alert>> {
    fetch_alert_then(conn, id, "").await
}

/// The alert, unless it is erased, locked until the writing transaction
/// ends (PostgreSQL).
pub(super) async fn fetch_alert_locked(
    tx: &mut AnyConnection,
    dialect: Dialect,
    id: i64,
) -> DbResult<Option<Alert>> {
    fetch_alert_then(tx, id, &dialect.for_update("a")).await
}

/// The alert as it is after a change the transaction made.
pub(super) async fn alert_after(tx: &mut AnyConnection, id: i64) -> DbResult<Alert> {
    fetch_alert(tx, id)
        .await?
        .ok_or_else(|| DbError::Corrupt(format!("alert {id} vanished")))
}

/// The alert, with `for_update` after the statement.
async fn fetch_alert_then(
    conn: &mut AnyConnection,
    id: i64,
    for_update: &str,
) -> DbResult<Option<Alert>> {
    let row = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts a JOIN stores s ON s.id = a.store_id \
         WHERE a.id = $1 AND a.erased_at IS NULL{for_update}"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(alert_from_row).transpose()
}

/// With `If-Match`, the refusal of a change to `alert` at another version.
pub(super) fn precondition(alert: &Alert, if_match: Option<&IfMatch>) -> Option<AlertChange> {
    match if_match {
        Some(if_match) if !if_match.matches(alert.version) => {
            Some(AlertChange::PreconditionFailed(alert.version))
        }
        _ => None,
    }
}

#[async_trait]
impl Census for SqlStore {
    async fn alert_counts(&self) -> DbResult<Vec<AlertCount>> {
        let rows =
            sqlx::query("SELECT kind, status, COUNT(*) AS n FROM alerts GROUP BY kind, status")
                .fetch_all(&self.reader)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(AlertCount {
                    kind: row.try_get("kind")?,
                    status: row.try_get("status")?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }
}
