//! `p4p-server token create`: the only way to the first staff token, run
//! on the server host against its database.

use anyhow::Context;
use p4p_protocol::Role;
use time::OffsetDateTime;

use crate::db::{self, Actor, NewToken};
use crate::domain;
use crate::domain::secret::Secret;

/// Creates a staff token with `role` and `label`; answers its secret.
pub async fn create(database_url: &str, role: Role, label: &str) -> anyhow::Result<String> {
    if role == Role::Store {
        anyhow::bail!(
            "--role must be admin or moderator: store tokens come from an approved pledge"
        );
    }
    let label = domain::required_line("label", label, 100)?;
    let storage = db::connect(database_url, 1)
        .await
        .with_context(|| format!("cannot open the database at {}", db::redact(database_url)))?;
    let secret = Secret::new_token();
    let token = NewToken {
        role,
        store_id: None,
        label: &label,
        hash: &secret.hash(),
    };
    storage
        .create_token(token, &Actor::server_host(), OffsetDateTime::now_utc())
        .await?;
    Ok(secret.expose().to_owned())
}
