//! Staff working the moderation queue: approve, reject, verify.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use p4p_protocol::{Alert, ModerationQueue, ReasonRequest};
use time::OffsetDateTime;

use super::extract::{Caller, OptionalJson};
use super::{committed, ApiContext, ApiError};
use crate::db::Transition;
use crate::domain::moderation::AlertAction;
use crate::domain::reason;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/v1/moderation/queue", get(queue))
        .route("/v1/alerts/{id}/approve", post(approve))
        .route("/v1/alerts/{id}/reject", post(reject))
        .route("/v1/alerts/{id}/verify", post(verify))
}

async fn queue(
    State(ctx): State<ApiContext>,
    caller: Caller,
) -> Result<axum::Json<ModerationQueue>, ApiError> {
    caller.require_staff("see the moderation queue")?;
    Ok(axum::Json(ctx.storage.moderation_queue().await?))
}

type Moderated = Result<axum::Json<Alert>, ApiError>;

async fn approve(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Moderated {
    staff_action(ctx, caller, id, body, AlertAction::Approve).await
}

async fn reject(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Moderated {
    staff_action(ctx, caller, id, body, AlertAction::Reject).await
}

async fn verify(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Moderated {
    staff_action(ctx, caller, id, body, AlertAction::Verify).await
}

async fn staff_action(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    OptionalJson(body): OptionalJson<ReasonRequest>,
    action: AlertAction,
) -> Moderated {
    caller.require_staff(&format!("{} alerts", action.verb()))?;
    moderate(&ctx, &caller, id, action, body.reason.as_deref()).await
}

/// Applies a moderation action for a caller already allowed to; publishes
/// what it changed on the stream and records it in the audit trail.
pub(super) async fn moderate(
    ctx: &ApiContext,
    caller: &Caller,
    id: i64,
    action: AlertAction,
    reason_given: Option<&str>,
) -> Moderated {
    let reason = reason(reason_given, action.needs_reason())?;
    let storage = ctx.storage.clone();
    let actor = caller.actor();
    let alert = committed(ctx, async move {
        let outcome = storage
            .moderate_alert(
                id,
                action,
                reason.as_deref(),
                &actor,
                OffsetDateTime::now_utc(),
            )
            .await?;
        match outcome {
            Transition::Done(changed) => Ok(changed),
            Transition::NotFound => Err(ApiError::NotFound(format!("no alert with id {id}"))),
            Transition::Conflict(status) => Err(ApiError::conflict(
                "invalid_transition",
                format!("cannot {} alert {id}: it is {status}", action.verb()),
            )),
        }
    })
    .await?;
    tracing::info!(
        alert_id = id,
        action = action.audit_name(),
        "alert moderated"
    );
    Ok(axum::Json(alert))
}
