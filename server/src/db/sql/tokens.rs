//! Bearer tokens, kept as hashes: creating, authenticating (with the
//! throttled `last_used_at` write), listing and revoking them.

use std::sync::LazyLock;

use async_trait::async_trait;
use p4p_protocol::{Role, TokenInfo};
use sqlx::Row;
use time::OffsetDateTime;

use super::audit::audit;
use super::events::announce_in;
use super::membership::store_locked;
use super::rows::{columns_of, store_from_columns, token_from_row, STORE_COLUMNS, TOKEN_COLUMNS};
use super::{unix, SqlStore};
use crate::db::relay;
use crate::db::{
    Actor, Committed, Credential, DbError, DbResult, Effects, NewToken, TokenCreation, TokenOwner,
    Tokens,
};
use crate::domain::secret::SecretHash;
use crate::domain::store::MAX_STORE_TOKENS;

/// How stale a token's `last_used_at` may be: it is written at most this
/// often per token, so that authentication (every request) rarely writes.
const LAST_USED_EVERY: i64 = 60;

/// When this node last wrote each token's `last_used_at`, so that a burst
/// of requests with a token whose stored value is stale writes it once,
/// not once per request. Other nodes skip the write in SQL.
#[derive(Default)]
pub(super) struct TokenUses(std::sync::Mutex<std::collections::HashMap<i64, i64>>);

/// Forget written times past this many tokens (those older than a minute).
const TOKEN_USES_KEPT: usize = 10_000;

impl TokenUses {
    /// Whether to write `now` for the token; claims the write if so.
    fn claim_write(&self, token_id: i64, now: i64) -> bool {
        let mut written = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if written
            .get(&token_id)
            .is_some_and(|&at| at > now - LAST_USED_EVERY)
        {
            return false;
        }
        if written.len() >= TOKEN_USES_KEPT {
            written.retain(|_, at| *at > now - LAST_USED_EVERY);
        }
        written.insert(token_id, now);
        true
    }
}

#[async_trait]
impl Tokens for SqlStore {
    async fn create_token(
        &self,
        token: NewToken<'_>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<TokenCreation> {
        let mut tx = self.writer.begin().await?;
        if let Some(store_id) = token.store_id {
            // The store's row is locked first, so that two creates for one
            // store (on any node) count one after the other.
            if store_locked(&mut tx, self.dialect, store_id)
                .await?
                .is_none()
            {
                return Err(DbError::Corrupt(format!("no store {store_id} for a token")));
            }
            let held: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM tokens WHERE store_id = $1 AND revoked_at IS NULL",
            )
            .bind(store_id)
            .fetch_one(&mut *tx)
            .await?;
            if held >= MAX_STORE_TOKENS as i64 {
                return Ok(TokenCreation::TooMany);
            }
        }
        let row = sqlx::query(&format!(
            "INSERT INTO tokens (token_hash, role, store_id, label, created_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(token.hash.as_str())
        .bind(token.role.as_str())
        .bind(token.store_id)
        .bind(token.label)
        .bind(unix(now))
        .fetch_one(&mut *tx)
        .await?;
        let info = token_from_row(&row)?;
        audit(
            &mut tx,
            actor,
            "token.create",
            &format!("token:{}", info.id),
            Some(token.label),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(TokenCreation::Created(info))
    }

    async fn credential(&self, hash: &SecretHash) -> DbResult<Option<Credential>> {
        // One statement: every request authenticates.
        static CREDENTIAL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {}, {} FROM tokens t LEFT JOIN stores s ON s.id = t.store_id \
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
                columns_of("t", TOKEN_COLUMNS, false),
                columns_of("s", STORE_COLUMNS, true)
            )
        });
        let row = sqlx::query(&CREDENTIAL)
            .bind(hash.as_str())
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let token = token_from_row(&row)?;
        let store = match row.try_get::<Option<i64>, _>("s_id")? {
            Some(_) => Some(store_from_columns(&row, "s_")?),
            None => None,
        };
        if token.role == Role::Store && store.is_none() {
            return Err(DbError::Corrupt(format!("token {} has no store", token.id)));
        }
        Ok(Some(Credential { token, store }))
    }

    fn token_used(
        &self,
        token: &TokenInfo,
        now: OffsetDateTime,
    ) -> Option<futures_util::future::BoxFuture<'static, DbResult<()>>> {
        let now = unix(now);
        let fresh = token
            .last_used_at
            .is_some_and(|at| unix(at) > now - LAST_USED_EVERY);
        if fresh || !self.token_uses.claim_write(token.id, now) {
            return None;
        }
        let statement = "UPDATE tokens SET last_used_at = $1 WHERE id = $2 \
                         AND (last_used_at IS NULL OR last_used_at <= $3)";
        let (writer, token_id) = (self.writer.clone(), token.id);
        Some(Box::pin(async move {
            sqlx::query(statement)
                .bind(now)
                .bind(token_id)
                .bind(now - LAST_USED_EVERY)
                .execute(&writer)
                .await?;
            Ok(())
        }))
    }

    async fn tokens(&self, owner: TokenOwner) -> DbResult<Vec<TokenInfo>> {
        // The owner is `TokenOwner::store_id`: NULL for staff.
        let query = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE store_id IS NOT DISTINCT FROM $1 ORDER BY id"
        );
        let rows = sqlx::query(&query)
            .bind(owner.store_id())
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn token_active(&self, id: i64) -> DbResult<bool> {
        let active: Option<i64> =
            sqlx::query_scalar("SELECT id FROM tokens WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(active.is_some())
    }

    async fn revoke_token(
        &self,
        owner: TokenOwner,
        id: i64,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Option<TokenInfo>>> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 \
             AND store_id IS NOT DISTINCT FROM $3 RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(unix(now))
        .bind(id)
        .bind(owner.store_id())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Committed::quiet(None));
        };
        audit(
            &mut tx,
            actor,
            "token.revoke",
            &format!("token:{id}"),
            None,
            now,
        )
        .await?;
        let revoked =
            announce_in(&mut tx, self.dialect, relay::Announcement::TokenRevoked(id)).await?;
        tx.commit().await?;
        let effects = Effects {
            announcements: vec![revoked],
            ..Effects::default()
        };
        Ok(Committed::new(Some(token_from_row(&row)?), effects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_uses_writes_last_used_at_once_a_minute() {
        let uses = TokenUses::default();
        assert!(uses.claim_write(7, 1_000));
        assert!(!uses.claim_write(7, 1_000));
        assert!(!uses.claim_write(7, 1_059));
        assert!(uses.claim_write(8, 1_001), "per token");
        assert!(uses.claim_write(7, 1_060), "a minute later");
    }
}
