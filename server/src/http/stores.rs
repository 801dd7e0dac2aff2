//! Staff vetting member stores.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use p4p_protocol::{close_code, ReasonRequest, Store, StoreList, StoreStatus};
use serde::Deserialize;
use time::OffsetDateTime;

use super::extract::{Caller, OptionalJson, Query};
use super::{ApiContext, ApiError};
use crate::db::Transition;
use crate::domain::reason;
use crate::domain::store::MembershipAction;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/v1/stores", get(list))
        .route("/v1/stores/{id}/approve", post(approve))
        .route("/v1/stores/{id}/reject", post(reject))
        .route("/v1/stores/{id}/suspend", post(suspend))
        .route("/v1/stores/{id}/reinstate", post(reinstate))
}

#[derive(Deserialize)]
struct ListParams {
    status: Option<StoreStatus>,
}

async fn list(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<StoreList>, ApiError> {
    caller.require_staff("list stores")?;
    let stores = ctx.storage.stores(params.status).await?;
    Ok(axum::Json(StoreList { stores }))
}

type Changed = Result<axum::Json<Store>, ApiError>;

async fn approve(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Changed {
    change(ctx, caller, id, body, MembershipAction::Approve).await
}

async fn reject(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Changed {
    change(ctx, caller, id, body, MembershipAction::Reject).await
}

async fn suspend(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Changed {
    change(ctx, caller, id, body, MembershipAction::Suspend).await
}

async fn reinstate(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Changed {
    change(ctx, caller, id, body, MembershipAction::Reinstate).await
}

async fn change(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    OptionalJson(body): OptionalJson<ReasonRequest>,
    action: MembershipAction,
) -> Changed {
    caller.require_staff(&format!("{} stores", action.verb()))?;
    let reason = reason(body.reason.as_deref(), action.needs_reason())?;
    let outcome = ctx
        .storage
        .change_membership(
            id,
            action,
            reason.as_deref(),
            &caller.actor(),
            OffsetDateTime::now_utc(),
        )
        .await?;
    match outcome {
        Transition::Done(store) => {
            if action == MembershipAction::Suspend {
                ctx.hub
                    .close_store(id, close_code::REVOKED, "store suspended");
            }
            tracing::info!(
                store_id = id,
                action = action.audit_name(),
                "membership changed"
            );
            Ok(axum::Json(store))
        }
        Transition::NotFound => Err(ApiError::NotFound(format!("no store with id {id}"))),
        Transition::Conflict(current) => Err(ApiError::conflict(
            "invalid_transition",
            format!("cannot {} store {id}: it is {current}", action.verb()),
        )),
    }
}
