//! The audit trail: the entry every membership and moderation action
//! writes in its transaction, and the trail staff read.

use async_trait::async_trait;
use p4p_protocol::AuditEntry;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use super::rows::from_unix;
use super::{unix, SqlStore};
use crate::db::{Actor, AuditTrail, DbResult};

pub(super) async fn audit(
    tx: &mut AnyConnection,
    actor: &Actor,
    action: &str,
    object: &str,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO audit (at, actor, action, object, reason) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(unix(now))
    .bind(&actor.0)
    .bind(action)
    .bind(object)
    .bind(reason)
    .execute(tx)
    .await?;
    Ok(())
}

#[async_trait]
impl AuditTrail for SqlStore {
    async fn audit(
        &self,
        before_id: Option<i64>,
        limit: usize,
    ) -> DbResult<(Vec<AuditEntry>, bool)> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, object, reason FROM audit WHERE ($1 IS NULL OR id < $1) \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id)
        .bind(limit as i64 + 1)
        .fetch_all(&self.reader)
        .await?;
        let mut entries = rows
            .iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: from_unix(row.try_get("at")?)?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    object: row.try_get("object")?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect::<DbResult<Vec<AuditEntry>>>()?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok((entries, more))
    }
}
