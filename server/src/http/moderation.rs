//! Staff working the moderation queue: approve, reject, verify.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use p4p_protocol::{Alert, ModerationQueue, ReasonRequest};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::alerts::changeable;
use super::extract::{Caller, OptionalJson};
use super::openapi::RequiredReason;
use super::safe_writes::{if_match, precondition_failed, Versioned};
use super::{ApiContext, ApiError};
use crate::db::AlertChange;
use crate::domain::moderation::AlertAction;
use crate::domain::reason;
use crate::domain::version::IfMatch;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(queue))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(verify))
}

/// What awaits a moderator, oldest first: pending and flagged alerts (staff).
#[utoipa::path(
    get, path = "/v1/moderation/queue", tag = "moderation",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The queue", body = ModerationQueue),
        (status = 403, description = "Only association staff see the queue"),
    )
)]

async fn queue(
    State(ctx): State<ApiContext>,
    caller: Caller,
) -> Result<axum::Json<ModerationQueue>, ApiError> {
    caller.require_staff("see the moderation queue")?;
    let not_before = ctx.policy.retention_cutoff(OffsetDateTime::now_utc());
    Ok(axum::Json(ctx.storage.moderation_queue(not_before).await?))
}

type Moderated = Result<Versioned, ApiError>;

/// Publish a pending alert (staff).
#[utoipa::path(
    post, path = "/v1/alerts/{id}/approve", tag = "moderation",
    params(
        ("id" = i64, Path, description = "The alert"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` the moderator read: act only on that version", pattern = r#"^(\*|(W/)?"[1-9][0-9]{0,17}")$"#),
    ),
    request_body(content = Option<ReasonRequest>, description = "An optional reason, for the audit trail"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert, now published", body = Alert),
        (status = 403, description = "Only association staff approve alerts"),
        (status = 404, description = "No alert with this id"),
        (status = 409, description = "The alert is not pending (`invalid_transition`)"),
        (status = 412, description = "The alert is at another version than `If-Match` named (`precondition_failed`)"),
    )
)]
async fn approve(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    headers: HeaderMap,
    body: OptionalJson<ReasonRequest>,
) -> Moderated {
    staff_action(ctx, caller, id, &headers, body, AlertAction::Approve).await
}

/// Reject a pending alert, saying why (staff).
#[utoipa::path(
    post, path = "/v1/alerts/{id}/reject", tag = "moderation",
    params(
        ("id" = i64, Path, description = "The alert"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` the moderator read: act only on that version", pattern = r#"^(\*|(W/)?"[1-9][0-9]{0,17}")$"#),
    ),
    request_body(content = RequiredReason, description = "Why; its author is told"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert, now rejected", body = Alert),
        (status = 403, description = "Only association staff reject alerts"),
        (status = 404, description = "No alert with this id"),
        (status = 409, description = "The alert is not pending (`invalid_transition`)"),
        (status = 412, description = "The alert is at another version than `If-Match` named (`precondition_failed`)"),
    )
)]
async fn reject(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    headers: HeaderMap,
    body: OptionalJson<ReasonRequest>,
) -> Moderated {
    staff_action(ctx, caller, id, &headers, body, AlertAction::Reject).await
}

/// Mark a published alert as checked by the association (staff).
#[utoipa::path(
    post, path = "/v1/alerts/{id}/verify", tag = "moderation",
    params(
        ("id" = i64, Path, description = "The alert"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` the moderator read: act only on that version", pattern = r#"^(\*|(W/)?"[1-9][0-9]{0,17}")$"#),
    ),
    request_body(content = Option<ReasonRequest>, description = "An optional note, for the audit trail"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert, now `verified`", body = Alert),
        (status = 403, description = "Only association staff verify alerts"),
        (status = 404, description = "No alert with this id"),
        (status = 409, description = "The alert is not published (`invalid_transition`)"),
        (status = 412, description = "The alert is at another version than `If-Match` named (`precondition_failed`)"),
    )
)]
async fn verify(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    headers: HeaderMap,
    body: OptionalJson<ReasonRequest>,
) -> Moderated {
    staff_action(ctx, caller, id, &headers, body, AlertAction::Verify).await
}

async fn staff_action(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: &HeaderMap,
    OptionalJson(body): OptionalJson<ReasonRequest>,
    action: AlertAction,
) -> Moderated {
    let if_match = if_match(headers)?;
    caller.require_staff(&format!("{} alerts", action.verb()))?;
    // Past retention it is 404 to staff too, before the sweep erases it.
    changeable(&ctx, &caller, id, action.verb()).await?;
    moderate(&ctx, &caller, id, action, body.reason.as_deref(), if_match).await
}

/// Applies a moderation action for a caller already allowed to; publishes
/// what it changed on the stream and records it in the audit trail.
pub(super) async fn moderate(
    ctx: &ApiContext,
    caller: &Caller,
    id: i64,
    action: AlertAction,
    reason_given: Option<&str>,
    if_match: Option<IfMatch>,
) -> Moderated {
    let reason = reason(reason_given, action.needs_reason())?;
    let storage = ctx.storage.clone();
    let actor = caller.actor();
    let outcome = ctx
        .network
        .write(async move {
            storage
                .moderate_alert(
                    id,
                    action,
                    reason.as_deref(),
                    if_match.as_ref(),
                    &actor,
                    OffsetDateTime::now_utc(),
                )
                .await
        })
        .await?;
    let alert = outcome_of(id, action.verb(), outcome)?;
    tracing::info!(
        alert_id = id,
        action = action.audit_name(),
        "alert moderated"
    );
    Ok(Versioned(alert))
}

/// The changed alert, or the refusal of the change, for the caller that
/// asked to `verb` alert `id`.
pub(super) fn outcome_of(id: i64, verb: &str, outcome: AlertChange) -> Result<Alert, ApiError> {
    match outcome {
        AlertChange::Done(changed) => Ok(*changed),
        AlertChange::NotFound => Err(ApiError::NotFound(format!("no alert with id {id}"))),
        AlertChange::Conflict(status) => Err(ApiError::conflict(
            "invalid_transition",
            format!("cannot {verb} alert {id}: it is {status}"),
        )),
        AlertChange::Stale => Err(ApiError::conflict(
            "edit_conflict",
            format!("alert {id} changed while you edited it; fetch it again and retry"),
        )),
        AlertChange::PreconditionFailed(version) => Err(precondition_failed(id, version)),
    }
}
