//! Alerts: posting them (through the group-commit `writer`), listing them
//! (the statement lives in `near`), reading one and a store's published
//! count; reading an alert inside a writing transaction, for the other
//! files; and the census of `GET /metrics`.

use async_trait::async_trait;
use p4p_protocol::{Alert, StoreRef};
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::rows::{alert_from_row, ALERT_COLUMNS};
use super::writer::QueuedPost;
use super::{near, Dialect, SqlStore};
use crate::db::{
    AlertChange, AlertCount, AlertList, AlertQuery, Alerts, Census, Committed, DbError, DbResult,
    IdempotencyKey, Posted,
};
use crate::domain::alert::ValidAlert;
use crate::domain::moderation::Admission;
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
        // Queued for the group-commit writer, which answers after the commit.
        let (done, committed) = oneshot::channel();
        let post = QueuedPost {
            author: author.clone(),
            alert: alert.clone(),
            status: admission.status,
            status_reason: admission.reason.clone(),
            now: crate::domain::alert::whole_seconds(now),
            idempotency,
            done,
        };
        let stopped = || DbError::NotCommitted("the writer of new alerts stopped".to_owned());
        self.posts.send(post).await.map_err(|_| stopped())?;
        committed.await.map_err(|_| stopped())?
    }

    async fn alert(&self, id: i64) -> DbResult<Option<Alert>> {
        fetch_alert(&mut *self.reader.acquire().await?, id).await
    }

    async fn alerts(&self, query: &AlertQuery) -> DbResult<AlertList> {
        near::alerts(self, query).await
    }

    async fn published_count(&self, store_id: i64, at_most: i64) -> DbResult<i64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM alerts WHERE store_id = $1 AND published_at IS NOT NULL \
             LIMIT $2) AS published",
        )
        .bind(store_id)
        .bind(at_most)
        .fetch_one(&self.reader)
        .await?;
        Ok(count)
    }
}

/// The alert, unless it is erased.
async fn fetch_alert(conn: &mut AnyConnection, id: i64) -> DbResult<Option<Alert>> {
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
