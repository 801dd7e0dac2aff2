//! Staff vetting member stores.

use axum::extract::{Path, State};
use p4p_protocol::{close_code, ReasonRequest, Store, StoreList, StoreStatus};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Caller, OptionalJson, Query};
use super::openapi::RequiredReason;
use super::{ApiContext, ApiError};
use crate::db::Transition;
use crate::domain::reason;
use crate::domain::store::MembershipAction;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(suspend))
        .routes(routes!(reinstate))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only the stores in this status; all when left out.
    status: Option<StoreStatus>,
}

/// List member stores with their contact details (staff).
#[utoipa::path(
    get, path = "/v1/stores", tag = "membership",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stores, by id", body = StoreList),
        (status = 403, description = "Only association staff list stores"),
        (status = 422, description = "`status` is not a store status"),
    )
)]

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

/// Approve a pending store (staff).
#[utoipa::path(
    post, path = "/v1/stores/{id}/approve", tag = "membership",
    params(("id" = i64, Path, description = "The store")),
    request_body(content = Option<ReasonRequest>, description = "An optional reason, for the audit trail"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The store, now approved", body = Store),
        (status = 403, description = "Only association staff approve stores"),
        (status = 404, description = "No store with this id"),
        (status = 409, description = "The store is not pending (`invalid_transition`)"),
    )
)]
async fn approve(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Changed {
    change(ctx, caller, id, body, MembershipAction::Approve).await
}

/// Reject a pending store's application, saying why (staff).
#[utoipa::path(
    post, path = "/v1/stores/{id}/reject", tag = "membership",
    params(("id" = i64, Path, description = "The store")),
    request_body(content = RequiredReason, description = "Why; the store is told"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The store, now rejected", body = Store),
        (status = 403, description = "Only association staff reject stores"),
        (status = 404, description = "No store with this id"),
        (status = 409, description = "The store is not pending (`invalid_transition`)"),
    )
)]
async fn reject(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Changed {
    change(ctx, caller, id, body, MembershipAction::Reject).await
}

/// Suspend an approved store, saying why: its tokens stop working and its
/// streams are closed with 4001 (staff).
#[utoipa::path(
    post, path = "/v1/stores/{id}/suspend", tag = "membership",
    params(("id" = i64, Path, description = "The store")),
    request_body(content = RequiredReason, description = "Why; the store is told"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The store, now suspended", body = Store),
        (status = 403, description = "Only association staff suspend stores"),
        (status = 404, description = "No store with this id"),
        (status = 409, description = "The store is not approved (`invalid_transition`)"),
    )
)]
async fn suspend(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Changed {
    change(ctx, caller, id, body, MembershipAction::Suspend).await
}

/// Reinstate a suspended store (staff).
#[utoipa::path(
    post, path = "/v1/stores/{id}/reinstate", tag = "membership",
    params(("id" = i64, Path, description = "The store")),
    request_body(content = Option<ReasonRequest>, description = "An optional reason, for the audit trail"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The store, approved again", body = Store),
        (status = 403, description = "Only association staff reinstate stores"),
        (status = 404, description = "No store with this id"),
        (status = 409, description = "The store is not suspended (`invalid_transition`)"),
    )
)]
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
