//! One module per subcommand of `p4p`, and `alert_fields`, the flags
//! `post` and `edit` share.

pub mod alert_fields;
pub mod alerts;
pub mod audit;
pub mod edit;
pub mod erase;
pub mod flag;
pub mod listen;
pub mod login;
pub mod moderation;
pub mod pledge;
pub mod post;
pub mod retract;
pub mod show;
pub mod stores;
pub mod tokens;

use p4p_protocol::ReasonRequest;
use serde::de::DeserializeOwned;

use crate::api::paths::Endpoint;
use crate::api::Reply;
use crate::context::Context;

/// Posts a staff or author action with its reason (`{"reason": …}`): an
/// alert's `retract`, `erase`, `approve` …, a store's `suspend` ….
async fn post_reason<T: DeserializeOwned>(
    ctx: &Context,
    endpoint: Endpoint,
    reason: Option<String>,
) -> anyhow::Result<Reply<T>> {
    let reason = ReasonRequest { reason };
    Ok(ctx.api()?.post(&endpoint, &reason).await?)
}
