//! The audit trail, for staff: every membership and moderation action.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use p4p_protocol::AuditPage;
use serde::Deserialize;

use super::extract::{Caller, Query};
use super::{ApiContext, ApiError};
use crate::domain::Invalid;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/v1/audit", get(list))
}

#[derive(Deserialize)]
struct AuditParams {
    limit: Option<usize>,
    before_id: Option<i64>,
}

async fn list(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<AuditParams>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    caller.require_staff("read the audit trail")?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Invalid::new("limit", format!("must be between 1 and {MAX_PAGE}")).into());
    }
    let (entries, more) = ctx.storage.audit(params.before_id, limit).await?;
    let next_before_id = if more {
        entries.last().map(|entry| entry.id)
    } else {
        None
    };
    Ok(axum::Json(AuditPage {
        entries,
        next_before_id,
    }))
}
