//! Retention erases (API.md): alerts that happened longer ago than the
//! retention period lose their text, suspects and vehicles, stored stream
//! events included, within the hour; expired idempotency keys go too.
//!
//! The HTTP layer already answers 404 for such alerts from the moment they
//! pass the cut-off; this sweep removes what the database still holds.
//! Every node sweeps; on PostgreSQL each takes other rows (SKIP LOCKED).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::db::{Storage, IDEMPOTENCY_SECONDS};
use crate::domain::moderation::Policy;

/// Alerts erased per transaction, so that a first sweep over years of
/// history does not hold the writer for long.
const BATCH: i64 = 200;

/// Sweeps now, then every `every`, until the process ends.
pub async fn sweep_forever(storage: Arc<dyn Storage>, policy: Policy, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = sweep(storage.as_ref(), policy).await {
            tracing::error!(%error, "the retention sweep failed; it runs again later");
            crate::metrics::database_error();
        }
    }
}

/// Erases every alert past retention, a batch at a time, and forgets the
/// idempotency keys older than 24 hours.
pub async fn sweep(storage: &dyn Storage, policy: Policy) -> crate::db::DbResult<usize> {
    let now = OffsetDateTime::now_utc();
    let cutoff = policy.retention_cutoff(now);
    let mut erased = 0;
    loop {
        let ids = storage.erase_expired(cutoff, BATCH, now).await?;
        erased += ids.len();
        if ids.len() < BATCH as usize {
            break;
        }
    }
    if erased > 0 {
        tracing::info!(erased, "alerts past retention erased");
    }
    storage
        .forget_keys_before(now.unix_timestamp() - IDEMPOTENCY_SECONDS)
        .await?;
    Ok(erased)
}
