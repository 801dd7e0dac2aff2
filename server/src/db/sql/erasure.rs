//! Erasure: an alert's content leaving the database, event bodies and
//! flag reasons included, at an admin's decision or past retention.

use async_trait::async_trait;
use p4p_protocol::Alert;
use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::alerts::fetch_alert_locked;
use super::audit::audit;
use super::events::{append_notices, retract_body};
use super::{unix, Dialect, SqlStore};
use crate::db::{Actor, Committed, DbResult, Erasure};
use crate::domain::moderation::{erasure_notices, ERASED_REASON, EXPIRED_REASON};

/// Erases an alert's content in the writing transaction: its text,
/// suspects and vehicles, every stored event body about it but its
/// `retract`s, whose reasons (free text that may quote it) become
/// `reason`, and the reasons of its flags. The row stays, for statistics;
/// the audit trail stays as it is.
async fn erase_in(
    tx: &mut AnyConnection,
    id: i64,
    reason: &str,
    now: OffsetDateTime,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE alerts SET title = '', description = NULL, suspects = '[]', vehicles = '[]', \
         status_reason = NULL, erased_at = $1, updated_at = $2, version = version + 1 WHERE id = $3",
    )
    .bind(unix(now))
    .bind(unix(now))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE events SET body = CASE WHEN type = 'retract' THEN $1 ELSE '' END WHERE alert_id = $2")
    .bind(retract_body(id, Some(reason))?)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE flags SET reason = '' WHERE alert_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Erasure for SqlStore {
    async fn erase_alert(
        &self,
        id: i64,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Option<Alert>>> {
        let now = crate::domain::alert::whole_seconds(now);
        let mut tx = self.writer.begin().await?;
        let Some(alert) = fetch_alert_locked(&mut tx, self.dialect, id).await? else {
            return Ok(Committed::quiet(None));
        };
        erase_in(&mut tx, id, ERASED_REASON, now).await?;
        audit(
            &mut tx,
            actor,
            "alert.erase",
            &format!("alert:{id}"),
            Some(reason),
            now,
        )
        .await?;
        let notices = erasure_notices(alert.status);
        let events = append_notices(&mut tx, self.dialect, &notices, &alert, &alert, now).await?;
        tx.commit().await?;
        self.checkpoint_erasure().await;
        Ok(Committed::with_events(Some(alert), events))
    }

    async fn erase_expired(
        &self,
        cutoff: i64,
        limit: i64,
        now: OffsetDateTime,
    ) -> DbResult<Vec<i64>> {
        let now = crate::domain::alert::whole_seconds(now);
        let mut tx = self.writer.begin().await?;
        // Nodes sweeping at once on PostgreSQL each take other alerts.
        let skip_locked = self.dialect.skip_locked();
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM alerts WHERE occurred_at < $1 AND erased_at IS NULL ORDER BY id LIMIT $2{skip_locked}"
        ))
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let actor = Actor("retention".to_owned());
        for id in &ids {
            erase_in(&mut tx, *id, EXPIRED_REASON, now).await?;
            audit(
                &mut tx,
                &actor,
                "alert.erase",
                &format!("alert:{id}"),
                Some("happened longer ago than the retention period"),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        if !ids.is_empty() {
            self.checkpoint_erasure().await;
        }
        Ok(ids)
    }
}

impl SqlStore {
    /// After an erasure on SQLite: copies the WAL into the database file
    /// and empties it, so that the erased pages' old images leave the WAL
    /// too (`secure_delete` has zeroed them in the file). Best effort: a
    /// reader in the middle of a read leaves part for the next checkpoint.
    pub(super) async fn checkpoint_erasure(&self) {
        if self.dialect != Dialect::Sqlite {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::warn!(%error, "cannot checkpoint the WAL after an erasure");
        }
    }
}
