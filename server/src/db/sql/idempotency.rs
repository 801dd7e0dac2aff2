//! Idempotency keys: kept with what a create writes, in its transaction,
//! and read back when a retry comes.

use async_trait::async_trait;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use super::{unix, SqlStore};
use crate::db::{DbError, DbResult, Idempotency, IdempotencyKey, Remembered, IDEMPOTENCY_SECONDS};

/// Keeps an idempotency key with what a create answers, in its
/// transaction. False when the key is taken (within 24 hours): the caller
/// writes nothing. A key older than that is taken anew.
pub(super) async fn remember(
    tx: &mut AnyConnection,
    key: &IdempotencyKey,
    status: u16,
    object: &str,
    now: OffsetDateTime,
) -> DbResult<bool> {
    let taken = sqlx::query(
        "INSERT INTO idempotency_keys (account, key, fingerprint, status, object, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account, key) DO UPDATE SET \
         fingerprint = excluded.fingerprint, status = excluded.status, object = excluded.object, \
         created_at = excluded.created_at WHERE idempotency_keys.created_at < $7",
    )
    .bind(&key.account)
    .bind(&key.key)
    .bind(&key.fingerprint)
    .bind(i64::from(status))
    .bind(object)
    .bind(unix(now))
    .bind(unix(now) - IDEMPOTENCY_SECONDS)
    .execute(tx)
    .await?;
    Ok(taken.rows_affected() == 1)
}

pub(super) async fn remembered_object(
    tx: &mut AnyConnection,
    key: &IdempotencyKey,
    object: &str,
) -> DbResult<()> {
    sqlx::query("UPDATE idempotency_keys SET object = $1 WHERE account = $2 AND key = $3")
        .bind(object)
        .bind(&key.account)
        .bind(&key.key)
        .execute(tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Idempotency for SqlStore {
    async fn remembered(&self, account: &str, key: &str) -> DbResult<Option<Remembered>> {
        let row = sqlx::query(
            "SELECT fingerprint, status, object, created_at FROM idempotency_keys \
             WHERE account = $1 AND key = $2",
        )
        .bind(account)
        .bind(key)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            let status: i64 = row.try_get("status")?;
            Ok(Remembered {
                fingerprint: row.try_get("fingerprint")?,
                status: u16::try_from(status)
                    .map_err(|_| DbError::Corrupt(format!("idempotency status {status}")))?,
                object: row.try_get("object")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn forget_keys_before(&self, before: i64) -> DbResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}
