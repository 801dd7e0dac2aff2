//! Staff vetting member stores: their membership, their tokens (a stolen
//! one is found by its `last_used_at` and revoked here) and their moves.

use axum::extract::{Path, State};
use p4p_protocol::{
    ReasonRequest, ReinstatedStore, Store, StoreList, StoreStatus, TokenInfo, TokenList,
};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Caller, OptionalJson, Query};
use super::openapi::RequiredReason;
use super::{ApiContext, ApiError};
use crate::db::{MoveOutcome, StoreQuery, TokenOwner, Transition};

use crate::domain::reason;
use crate::domain::secret::Secret;
use crate::domain::store::{MembershipAction, MoveDecision};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(suspend))
        .routes(routes!(reinstate))
        .routes(routes!(approve_move))
        .routes(routes!(reject_move))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only the stores in this status; all when left out.
    status: Option<StoreStatus>,
    /// `true`: only the stores with a move waiting for a moderator.
    pending_move: Option<bool>,
}

/// List member stores with their contact details (staff).
#[utoipa::path(
    get, path = "/v1/stores", tag = "membership",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stores, by id, each with its `pending_move`", body = StoreList),
        (status = 403, description = "Only association staff list stores"),
        (status = 422, description = "`status` is not a store status, or `pending_move` not true or false"),
    )
)]
async fn list(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<StoreList>, ApiError> {
    caller.require_staff("list stores")?;
    let query = StoreQuery {
        status: params.status,
        pending_move: params.pending_move.unwrap_or(false),
    };
    let stores = ctx.storage.stores(query).await?;
    Ok(axum::Json(StoreList { stores }))
}

fn no_store(id: i64) -> ApiError {
    ApiError::NotFound(format!("no store with id {id}"))
}

/// One store, with its contact details and pending move (staff).
#[utoipa::path(
    get, path = "/v1/stores/{id}", tag = "membership",
    params(("id" = i64, Path, description = "The store")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The store", body = Store),
        (status = 403, description = "Only association staff see stores"),
        (status = 404, description = "No store with this id"),
    )
)]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<axum::Json<Store>, ApiError> {
    caller.require_staff("see stores")?;
    let store = ctx.storage.store(id).await?.ok_or_else(|| no_store(id))?;
    Ok(axum::Json(store))
}

/// A store's tokens, revoked ones included, never their secrets, each with
/// when it was last used (staff).
#[utoipa::path(
    get, path = "/v1/stores/{id}/tokens", tag = "membership",
    params(("id" = i64, Path, description = "The store")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The store's tokens, by id", body = TokenList),
        (status = 403, description = "Only association staff see a store's tokens (a store lists its own with GET /v1/me/tokens)"),
        (status = 404, description = "No store with this id"),
    )
)]
async fn tokens(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<axum::Json<TokenList>, ApiError> {
    caller.require_staff("see a store's tokens")?;
    ctx.storage.store(id).await?.ok_or_else(|| no_store(id))?;
    let tokens = ctx.storage.tokens(TokenOwner::Store(id)).await?;
    Ok(axum::Json(TokenList { tokens }))
}

/// Revoke one of a store's tokens at once; streams using it are closed
/// with 4001 on every node (staff).
#[utoipa::path(
    delete, path = "/v1/stores/{id}/tokens/{token_id}", tag = "membership",
    params(
        ("id" = i64, Path, description = "The store"),
        ("token_id" = i64, Path, description = "One of its tokens"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token, now revoked (revoking it again answers the same)", body = TokenInfo),
        (status = 403, description = "Only association staff revoke a store's tokens"),
        (status = 404, description = "No token with this id among the store's"),
    )
)]
async fn revoke_token(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path((id, token_id)): Path<(i64, i64)>,
) -> Result<axum::Json<TokenInfo>, ApiError> {
    caller.require_staff("revoke a store's tokens")?;
    let storage = ctx.storage.clone();
    let actor = caller.actor();
    let revoked = ctx
        .network
        .write(async move {
            storage
                .revoke_token(
                    TokenOwner::Store(id),
                    token_id,
                    &actor,
                    OffsetDateTime::now_utc(),
                )
                .await
        })
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("no token with id {token_id} among store {id}'s"))
        })?;
    tracing::info!(store_id = id, token_id, "store token revoked by staff");
    Ok(axum::Json(revoked))
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

/// Reinstate a suspended store (staff): every token it had is revoked (a
/// stolen one with the rest) and the answer carries a fresh `claim_secret`
/// for staff to hand to the store, which claims a new token with it.
#[utoipa::path(
    post, path = "/v1/stores/{id}/reinstate", tag = "membership",
    params(("id" = i64, Path, description = "The store")),
    request_body(content = Option<ReasonRequest>, description = "An optional reason, for the audit trail"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The store, approved again, with the claim secret (shown this once) for POST /v1/pledge/{store_id}/claim", body = ReinstatedStore),
        (status = 403, description = "Only association staff reinstate stores"),
        (status = 404, description = "No store with this id"),
        (status = 409, description = "The store is not suspended (`invalid_transition`)"),
    )
)]
async fn reinstate(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    OptionalJson(body): OptionalJson<ReasonRequest>,
) -> Result<axum::Json<ReinstatedStore>, ApiError> {
    let action = MembershipAction::Reinstate;
    caller.require_staff("reinstate stores")?;
    let reason = reason(body.reason.as_deref(), action.needs_reason())?;
    let claim_secret = Secret::new_claim();
    let storage = ctx.storage.clone();
    let actor = caller.actor();
    let claim = claim_secret.hash();
    let outcome = ctx
        .network
        .write(async move {
            storage
                .reinstate_store(
                    id,
                    reason.as_deref(),
                    &claim,
                    &actor,
                    OffsetDateTime::now_utc(),
                )
                .await
        })
        .await?;
    let reinstated = membership_outcome(id, action, outcome)?;
    tracing::info!(
        store_id = id,
        revoked_tokens = reinstated.revoked_tokens.len(),
        "store reinstated; its tokens are revoked"
    );
    Ok(axum::Json(ReinstatedStore {
        store: reinstated.store,
        claim_secret: claim_secret.expose().to_owned(),
    }))
}

/// Approve a store's pending move: its place, its streams and `GET
/// /v1/me` move there at once (staff).
#[utoipa::path(
    post, path = "/v1/stores/{id}/approve-move", tag = "membership",
    params(("id" = i64, Path, description = "The store")),
    request_body(content = Option<ReasonRequest>, description = "An optional reason, for the audit trail"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The store, moved", body = Store),
        (status = 403, description = "Only association staff decide moves"),
        (status = 404, description = "No store with this id"),
        (status = 409, description = "No move waits (`no_pending_move`)"),
    )
)]
async fn approve_move(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Changed {
    decide_move(ctx, caller, id, body, MoveDecision::Approve).await
}

/// Reject a store's pending move, saying why: it stays where it was (staff).
#[utoipa::path(
    post, path = "/v1/stores/{id}/reject-move", tag = "membership",
    params(("id" = i64, Path, description = "The store")),
    request_body(content = RequiredReason, description = "Why, for the audit trail"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The store, where it was, with no pending move", body = Store),
        (status = 403, description = "Only association staff decide moves"),
        (status = 404, description = "No store with this id"),
        (status = 409, description = "No move waits (`no_pending_move`)"),
    )
)]
async fn reject_move(
    ctx: State<ApiContext>,
    caller: Caller,
    id: Path<i64>,
    body: OptionalJson<ReasonRequest>,
) -> Changed {
    decide_move(ctx, caller, id, body, MoveDecision::Reject).await
}

async fn decide_move(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    OptionalJson(body): OptionalJson<ReasonRequest>,
    decision: MoveDecision,
) -> Changed {
    caller.require_staff("decide a store's move")?;
    let reason = reason(body.reason.as_deref(), decision.needs_reason())?;
    let storage = ctx.storage.clone();
    let actor = caller.actor();
    let outcome = ctx
        .network
        .write(async move {
            storage
                .decide_move(
                    id,
                    decision,
                    reason.as_deref(),
                    &actor,
                    OffsetDateTime::now_utc(),
                )
                .await
        })
        .await?;
    match outcome {
        MoveOutcome::Done(store) => {
            tracing::info!(store_id = id, ?decision, "store move decided");
            Ok(axum::Json(*store))
        }
        MoveOutcome::NotFound => Err(no_store(id)),
        MoveOutcome::NoPendingMove => Err(ApiError::conflict(
            "no_pending_move",
            format!("store {id} has asked for no move"),
        )),
    }
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
    let storage = ctx.storage.clone();
    let actor = caller.actor();
    let outcome = ctx
        .network
        .write(async move {
            storage
                .change_membership(
                    id,
                    action,
                    reason.as_deref(),
                    &actor,
                    OffsetDateTime::now_utc(),
                )
                .await
        })
        .await?;
    let store = membership_outcome(id, action, outcome)?;
    tracing::info!(
        store_id = id,
        action = action.audit_name(),
        "membership changed"
    );
    Ok(axum::Json(store))
}

fn membership_outcome<T>(
    id: i64,
    action: MembershipAction,
    outcome: Transition<T, StoreStatus>,
) -> Result<T, ApiError> {
    match outcome {
        Transition::Done(done) => Ok(done),
        Transition::NotFound => Err(no_store(id)),
        Transition::Conflict(current) => Err(ApiError::conflict(
            "invalid_transition",
            format!("cannot {} store {id}: it is {current}", action.verb()),
        )),
    }
}
