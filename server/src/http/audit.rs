//! The audit trail, for staff: every membership and moderation action.

use axum::extract::State;
use p4p_protocol::AuditPage;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Caller, Query};
use super::{ApiContext, ApiError};
use crate::domain::Invalid;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// At most this many entries (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// Only entries older than this one: `next_before_id` of the page before.
    before_id: Option<i64>,
}

/// The audit trail, newest first (staff).
#[utoipa::path(
    get, path = "/v1/audit", tag = "moderation",
    params(AuditParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of the trail", body = AuditPage),
        (status = 403, description = "Only association staff read the audit trail"),
        (status = 422, description = "A query parameter is not a number, or `limit` is out of 1 to 500"),
    )
)]

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
