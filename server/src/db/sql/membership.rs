//! Stores and their membership: pledges, claims, staff decisions, moves.

use async_trait::async_trait;
use p4p_protocol::{Location, Store, StoreStatus};
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use super::audit::audit;
use super::events::announce_in;
use super::rows::{parse_text, store_from_row, STORE_COLUMNS};
use super::{unix, Dialect, SqlStore};
use crate::db::relay;
use crate::db::{
    Actor, AreaChange, ClaimOutcome, Committed, DbResult, Effects, Membership, MoveOutcome,
    Reinstated, StoreQuery, Transition,
};
use crate::domain::place::RadiusKm;
use crate::domain::secret::SecretHash;
use crate::domain::store::{MembershipAction, MoveDecision, ValidPledge};

#[async_trait]
impl Membership for SqlStore {
    async fn create_store(
        &self,
        pledge: &ValidPledge,
        claim: &SecretHash,
        now: OffsetDateTime,
    ) -> DbResult<i64> {
        let mut tx = self.writer.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO stores (name, address, lat, lon, radius_km, contact_name, contact_email, phone, \
             status, claim_secret_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $11) RETURNING id",
        )
        .bind(&pledge.name)
        .bind(&pledge.address)
        .bind(pledge.interest.center.lat())
        .bind(pledge.interest.center.lon())
        .bind(pledge.interest.radius.km())
        .bind(&pledge.contact_name)
        .bind(&pledge.contact_email)
        .bind(&pledge.phone)
        .bind(claim.as_str())
        .bind(unix(now))
        .bind(unix(now))
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            &Actor::store(id),
            "store.pledge",
            &format!("store:{id}"),
            None,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn claim_token(
        &self,
        store_id: i64,
        claim: &SecretHash,
        token: &SecretHash,
        now: OffsetDateTime,
    ) -> DbResult<ClaimOutcome> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT status, status_reason, claim_secret_hash, claimed_at FROM stores WHERE id = $1{}",
            self.dialect.for_update("stores")
        ))
        .bind(store_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(ClaimOutcome::UnknownStore);
        };
        if row.try_get::<&str, _>("claim_secret_hash")? != claim.as_str() {
            return Ok(ClaimOutcome::WrongSecret);
        }
        let status: StoreStatus = parse_text(row.try_get::<&str, _>("status")?)?;
        let claimed = row.try_get::<Option<i64>, _>("claimed_at")?.is_some();
        let outcome = match status {
            StoreStatus::Pending => ClaimOutcome::Pending,
            StoreStatus::Rejected => ClaimOutcome::Rejected {
                reason: row.try_get("status_reason")?,
            },
            StoreStatus::Suspended => ClaimOutcome::Suspended {
                reason: row.try_get("status_reason")?,
            },
            StoreStatus::Approved if claimed => ClaimOutcome::AlreadyClaimed,
            StoreStatus::Approved => ClaimOutcome::Issued,
        };
        if outcome != ClaimOutcome::Issued {
            return Ok(outcome);
        }
        sqlx::query("UPDATE stores SET claimed_at = $1 WHERE id = $2")
            .bind(unix(now))
            .bind(store_id)
            .execute(&mut *tx)
            .await?;
        let token_id: i64 = sqlx::query_scalar(
            "INSERT INTO tokens (token_hash, role, store_id, label, created_at) \
             VALUES ($1, 'store', $2, 'claimed with the pledge', $3) RETURNING id",
        )
        .bind(token.as_str())
        .bind(store_id)
        .bind(unix(now))
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            &Actor::store(store_id),
            "token.create",
            &format!("token:{token_id}"),
            Some("claimed with the pledge"),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(ClaimOutcome::Issued)
    }

    async fn stores(&self, query: StoreQuery) -> DbResult<Vec<Store>> {
        let rows = sqlx::query(&format!(
            "SELECT {STORE_COLUMNS} FROM stores WHERE ($1 IS NULL OR status = $1) \
             AND ($2 = 0 OR move_requested_at IS NOT NULL) ORDER BY id"
        ))
        .bind(query.status.map(StoreStatus::as_str))
        .bind(i64::from(query.pending_move))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(store_from_row).collect()
    }

    async fn store(&self, id: i64) -> DbResult<Option<Store>> {
        let row = sqlx::query(&format!("SELECT {STORE_COLUMNS} FROM stores WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(store_from_row).transpose()
    }

    async fn change_membership(
        &self,
        id: i64,
        action: MembershipAction,
        reason: Option<&str>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Transition<Store, StoreStatus>>> {
        debug_assert_ne!(action, MembershipAction::Reinstate, "use reinstate_store");
        let mut tx = self.writer.begin().await?;
        let outcome =
            transition_store(&mut tx, self.dialect, id, action, reason, actor, now).await?;
        let mut effects = Effects::default();
        if matches!(outcome, Transition::Done(_)) {
            if action == MembershipAction::Suspend {
                effects.announcements.push(
                    announce_in(
                        &mut tx,
                        self.dialect,
                        relay::Announcement::StoreSuspended(id),
                    )
                    .await?,
                );
            }
            tx.commit().await?;
        }
        Ok(Committed::new(outcome, effects))
    }

    async fn reinstate_store(
        &self,
        id: i64,
        reason: Option<&str>,
        claim: &SecretHash,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Transition<Reinstated, StoreStatus>>> {
        let mut tx = self.writer.begin().await?;
        let store = match transition_store(
            &mut tx,
            self.dialect,
            id,
            MembershipAction::Reinstate,
            reason,
            actor,
            now,
        )
        .await?
        {
            Transition::Done(store) => store,
            Transition::NotFound => return Ok(Committed::quiet(Transition::NotFound)),
            Transition::Conflict(status) => {
                return Ok(Committed::quiet(Transition::Conflict(status)))
            }
        };
        // The new claim secret replaces the old one, which no longer works.
        sqlx::query("UPDATE stores SET claim_secret_hash = $1, claimed_at = NULL WHERE id = $2")
            .bind(claim.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let revoked_tokens: Vec<i64> = sqlx::query_scalar("UPDATE tokens SET revoked_at = $1 WHERE store_id = $2 AND revoked_at IS NULL RETURNING id")
        .bind(unix(now))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let mut effects = Effects::default();
        for token_id in &revoked_tokens {
            audit(
                &mut tx,
                actor,
                "token.revoke",
                &format!("token:{token_id}"),
                Some("reinstatement revokes every token of the store"),
                now,
            )
            .await?;
            effects.announcements.push(
                announce_in(
                    &mut tx,
                    self.dialect,
                    relay::Announcement::TokenRevoked(*token_id),
                )
                .await?,
            );
        }
        tx.commit().await?;
        let reinstated = Reinstated {
            store,
            revoked_tokens,
        };
        Ok(Committed::new(Transition::Done(reinstated), effects))
    }

    async fn change_area(
        &self,
        id: i64,
        change: AreaChange,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Option<Store>>> {
        let mut tx = self.writer.begin().await?;
        let Some(store) = store_locked(&mut tx, self.dialect, id).await? else {
            return Ok(Committed::quiet(None));
        };
        let radius = change.radius.map_or(store.radius_km, RadiusKm::km);
        let pending = match change.move_to {
            None => store
                .pending_move
                .map(|pending| (pending.location, unix(pending.requested_at))),
            Some(to) if to.lat() == store.location.lat && to.lon() == store.location.lon => None,
            Some(to) => Some((
                Location {
                    lat: to.lat(),
                    lon: to.lon(),
                },
                unix(now),
            )),
        };
        let row = sqlx::query(&format!(
            "UPDATE stores SET radius_km = $1, pending_lat = $2, pending_lon = $3, move_requested_at = $4, \
             updated_at = $5 WHERE id = $6 RETURNING {STORE_COLUMNS}"
        ))
        .bind(radius)
        .bind(pending.map(|(at, _)| at.lat))
        .bind(pending.map(|(at, _)| at.lon))
        .bind(pending.map(|(_, requested)| requested))
        .bind(unix(now))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let mut effects = Effects::default();
        if change.radius.is_some() {
            effects.announcements.push(
                announce_in(&mut tx, self.dialect, relay::Announcement::StoreMoved(id)).await?,
            );
        }
        tx.commit().await?;
        Ok(Committed::new(Some(store_from_row(&row)?), effects))
    }

    async fn decide_move(
        &self,
        id: i64,
        decision: MoveDecision,
        reason: Option<&str>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<MoveOutcome>> {
        let mut tx = self.writer.begin().await?;
        let Some(store) = store_locked(&mut tx, self.dialect, id).await? else {
            return Ok(Committed::quiet(MoveOutcome::NotFound));
        };
        let Some(pending) = store.pending_move else {
            return Ok(Committed::quiet(MoveOutcome::NoPendingMove));
        };
        let moved_to = match decision {
            MoveDecision::Approve => pending.location,
            MoveDecision::Reject => store.location,
        };
        let row = sqlx::query(&format!(
            "UPDATE stores SET lat = $1, lon = $2, pending_lat = NULL, pending_lon = NULL, \
             move_requested_at = NULL, updated_at = $3 WHERE id = $4 RETURNING {STORE_COLUMNS}"
        ))
        .bind(moved_to.lat)
        .bind(moved_to.lon)
        .bind(unix(now))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let note = decision.audit_note(pending.location, reason);
        audit(
            &mut tx,
            actor,
            "store.move",
            &format!("store:{id}"),
            Some(&note),
            now,
        )
        .await?;
        let mut effects = Effects::default();
        if decision == MoveDecision::Approve {
            effects.announcements.push(
                announce_in(&mut tx, self.dialect, relay::Announcement::StoreMoved(id)).await?,
            );
        }
        tx.commit().await?;
        let store = Box::new(store_from_row(&row)?);
        Ok(Committed::new(MoveOutcome::Done(store), effects))
    }
}

/// A store, read and locked in the writing transaction.
pub(super) async fn store_locked(
    tx: &mut AnyConnection,
    dialect: Dialect,
    id: i64,
) -> DbResult<Option<Store>> {
    let row = sqlx::query(&format!(
        "SELECT {STORE_COLUMNS} FROM stores WHERE id = $1{}",
        dialect.for_update("stores")
    ))
    .bind(id)
    .fetch_optional(tx)
    .await?;
    row.as_ref().map(store_from_row).transpose()
}

/// Moves a store from a status the action starts from to the one it leads
/// to, with its audit entry, inside the caller's transaction.
async fn transition_store(
    tx: &mut AnyConnection,
    dialect: Dialect,
    id: i64,
    action: MembershipAction,
    reason: Option<&str>,
    actor: &Actor,
    now: OffsetDateTime,
) -> DbResult<Transition<Store, StoreStatus>> {
    let (from, to) = action.transition();
    let current: Option<String> = sqlx::query_scalar(&format!(
        "SELECT status FROM stores WHERE id = $1{}",
        dialect.for_update("stores")
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = current else {
        return Ok(Transition::NotFound);
    };
    let current: StoreStatus = parse_text(&current)?;
    if !from.contains(&current) {
        return Ok(Transition::Conflict(current));
    }
    let row = sqlx::query(&format!(
        "UPDATE stores SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4 RETURNING {STORE_COLUMNS}"
    ))
    .bind(to.as_str())
    .bind(reason)
    .bind(unix(now))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    audit(
        tx,
        actor,
        action.audit_name(),
        &format!("store:{id}"),
        reason,
        now,
    )
    .await?;
    Ok(Transition::Done(store_from_row(&row)?))
}
