//! The caller itself: who it is, where its store looks, its tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use p4p_protocol::{
    close_code, Me, MePatch, OwnStore, Role, Store, TokenCreated, TokenList, TokenRequest,
};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Caller, Json};
use super::{ApiContext, ApiError};
use crate::db::{NewToken, TokenOwner};
use crate::domain::place::{Area, Place, RadiusKm};
use crate::domain::secret::Secret;
use crate::domain::{required_text, Invalid};

const MAX_TOKEN_LABEL: usize = 100;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(show, update))
        .routes(routes!(tokens, create_token))
        .routes(routes!(revoke_token))
}

fn own_store(store: &Store) -> OwnStore {
    OwnStore {
        id: store.id,
        name: store.name.clone(),
        address: store.address.clone(),
        location: store.location,
        radius_km: store.radius_km,
        status: store.status,
    }
}

/// Who the caller is. Works for a pending or suspended store too: it can
/// see where it stands.
#[utoipa::path(
    get, path = "/v1/me", tag = "me",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller, its store and the token used", body = Me))
)]
async fn show(caller: Caller) -> axum::Json<Me> {
    axum::Json(Me {
        role: caller.role(),
        store: caller.store.as_ref().map(own_store),
        token: caller.token,
    })
}

/// Move the store's area of interest: `radius_km`, `location` or both.
#[utoipa::path(
    patch, path = "/v1/me", tag = "me",
    request_body = MePatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller, with its store's new area", body = Me),
        (status = 403, description = "Staff have no area; a pending or suspended store may not move"),
    )
)]
async fn update(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Json(patch): Json<MePatch>,
) -> Result<axum::Json<Me>, ApiError> {
    let store = caller.require_store("change a store's area of interest")?;
    if patch.location.is_none() && patch.radius_km.is_none() {
        return Err(Invalid::new("body", "give radius_km, location or both").into());
    }
    let center = match patch.location {
        Some(location) => Place::parse("location", location)?,
        None => Area::of_store(store).center,
    };
    let radius = RadiusKm::parse("radius_km", patch.radius_km.unwrap_or(store.radius_km))?;
    let interest = Area { center, radius };
    let _moves = ctx.store_moves.lock().await;
    let moved = ctx
        .storage
        .move_store(store.id, interest, OffsetDateTime::now_utc())
        .await?
        .ok_or_else(|| ApiError::NotFound("this store no longer exists".to_owned()))?;
    ctx.hub.move_store(store.id, interest);
    Ok(axum::Json(Me {
        role: caller.role(),
        store: Some(own_store(&moved)),
        token: caller.token.clone(),
    }))
}

/// Stores manage their own tokens; admins manage the staff's.
fn token_owner(caller: &Caller) -> Result<TokenOwner, ApiError> {
    caller.require_active()?;
    match (&caller.store, caller.role()) {
        (Some(store), _) => Ok(TokenOwner::Store(store.id)),
        (None, Role::Admin) => Ok(TokenOwner::Staff),
        _ => Err(ApiError::forbidden(
            "forbidden",
            "only stores and admins manage tokens; ask an admin",
        )),
    }
}

/// The caller's tokens (a store's own; an admin's: the staff's), never
/// their secrets.
#[utoipa::path(
    get, path = "/v1/me/tokens", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tokens, revoked ones included", body = TokenList),
        (status = 403, description = "Only stores and admins manage tokens"),
    )
)]
async fn tokens(
    State(ctx): State<ApiContext>,
    caller: Caller,
) -> Result<axum::Json<TokenList>, ApiError> {
    let owner = token_owner(&caller)?;
    let tokens = ctx.storage.tokens(owner).await?;
    Ok(axum::Json(TokenList { tokens }))
}

/// Make another token: a store's for another device, an admin's for staff.
#[utoipa::path(
    post, path = "/v1/me/tokens", tag = "me",
    request_body = TokenRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new token, shown this once", body = TokenCreated),
        (status = 403, description = "Only stores and admins manage tokens"),
    )
)]
async fn create_token(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Json(request): Json<TokenRequest>,
) -> Result<(StatusCode, axum::Json<TokenCreated>), ApiError> {
    let owner = token_owner(&caller)?;
    let label = required_text("label", &request.label, MAX_TOKEN_LABEL)?;
    ctx.limits.token_requested(super::limits::Account::of(
        caller.store.as_ref().map(|store| store.id),
        caller.token.id,
    ))?;
    let secret = Secret::new_token();
    let store_id = match owner {
        TokenOwner::Store(id) => Some(id),
        TokenOwner::Staff => None,
    };
    let token = NewToken {
        role: caller.role(),
        store_id,
        label: &label,
        hash: &secret.hash(),
    };
    let info = ctx
        .storage
        .create_token(token, &caller.actor(), OffsetDateTime::now_utc())
        .await?;
    tracing::info!(token_id = info.id, "token created");
    let created = TokenCreated {
        id: info.id,
        label: info.label,
        token: secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Revoke one token at once; streams using it are closed with 4001.
#[utoipa::path(
    delete, path = "/v1/me/tokens/{id}", tag = "me",
    params(("id" = i64, Path, description = "The token's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token, now revoked", body = p4p_protocol::TokenInfo),
        (status = 403, description = "Only stores and admins manage tokens"),
        (status = 404, description = "No token with this id among the caller's"),
    )
)]
async fn revoke_token(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<axum::Json<p4p_protocol::TokenInfo>, ApiError> {
    let owner = token_owner(&caller)?;
    let revoked = ctx
        .storage
        .revoke_token(owner, id, &caller.actor(), OffsetDateTime::now_utc())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no token with id {id} among yours")))?;
    ctx.hub
        .close_token(id, close_code::REVOKED, "token revoked");
    tracing::info!(token_id = id, "token revoked");
    Ok(axum::Json(revoked))
}
