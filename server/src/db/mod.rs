//! The storage layer: the only place with SQL.
//!
//! Handlers see the [`Storage`] trait: one trait per concern (membership,
//! tokens, alerts, their moderation, their erasure, events, idempotency
//! keys, the audit trail, the census), in `storage.rs`, with the values
//! they pass and get back (`types.rs`), [`DbError`] (`error.rs`) and
//! [`Committed`] (`committed.rs`). [`SqlStore`] (`sql/`) implements it for
//! SQLite (the embedded default) and PostgreSQL (several nodes) alike.
//! Every write that members must see appends its event in the same
//! transaction, and every membership action its audit entry; the writes
//! whose commits streams must hear of return [`Committed`], which only
//! `fanout::Network` unwraps. What a change to an alert tells members is
//! decided in `domain::moderation`; this layer writes it. `relay` carries
//! what one PostgreSQL node tells the others.

mod committed;
mod error;
pub mod relay;
mod sql;
mod storage;
mod types;

use std::sync::Arc;

pub use committed::{Committed, Effects};
pub use error::{DbError, DbResult};
pub use relay::Announcement;
pub use sql::{Dialect, SqlStore};
pub use storage::{
    Alerts, AuditTrail, Census, Erasure, Events, Idempotency, Membership, Moderation, Storage,
    Tokens,
};
pub use types::*;

/// Opens and migrates the database the URL names: `sqlite:PATH` or
/// `postgres://...`.
/// `pool` bounds each of the PostgreSQL reading and writing pools.
pub async fn connect(url: &str, pool: u32) -> DbResult<Arc<dyn Storage>> {
    Ok(Arc::new(SqlStore::connect(url, pool).await?))
}

/// A database URL fit for logs: any password replaced.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            super::redact("postgres://p4p:secret@db:5432/p4p"),
            "postgres://p4p:***@db:5432/p4p"
        );
        assert_eq!(super::redact("sqlite:p4p.db"), "sqlite:p4p.db");
    }
}
