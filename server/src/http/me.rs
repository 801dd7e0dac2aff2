//! The caller itself: who it is, where its store looks, its tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use p4p_protocol::{Me, MePatch, OwnStore, Role, Store, TokenCreated, TokenList, TokenRequest};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Caller, Json};
use super::{ApiContext, ApiError};
use crate::db::{AreaChange, NewToken, TokenCreation, TokenOwner};
use crate::domain::place::{Place, RadiusKm};
use crate::domain::secret::Secret;
use crate::domain::store::MAX_STORE_TOKENS;
use crate::domain::{required_line, Invalid};

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
        status_reason: store.status_reason.clone(),
        pending_move: store.pending_move,
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

/// Change the store's area of interest: `radius_km` applies at once; a new
/// `location` waits for a moderator (a place is vetted, as at the pledge).
#[utoipa::path(
    patch, path = "/v1/me", tag = "me",
    request_body = MePatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The store, with its new radius; also when `location` is the store's current place, which withdraws a pending move", body = OwnStore),
        (status = 202, description = "The store, whose `pending_move` holds the place asked for; `location` and the streams stay where they were until a moderator approves", body = OwnStore),
        (status = 403, description = "Staff have no area; a pending or suspended store may not move"),
        (status = 422, description = "`radius_km` or `location` out of range, or neither given"),
    )
)]
async fn update(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Json(patch): Json<MePatch>,
) -> Result<(StatusCode, axum::Json<OwnStore>), ApiError> {
    let store = caller.require_store("change a store's area of interest")?;
    if patch.location.is_none() && patch.radius_km.is_none() {
        return Err(Invalid::new("body", "give radius_km, location or both").into());
    }
    let change = AreaChange {
        radius: patch
            .radius_km
            .map(|km| RadiusKm::parse("radius_km", km))
            .transpose()?,
        move_to: patch
            .location
            .map(|location| Place::parse("location", location))
            .transpose()?,
    };
    let storage = ctx.storage.clone();
    let store_id = store.id;
    let changed = ctx
        .network
        .write(async move {
            storage
                .change_area(store_id, change, OffsetDateTime::now_utc())
                .await
        })
        .await?
        .ok_or_else(|| ApiError::NotFound("this store no longer exists".to_owned()))?;
    if let Some(pending) = &changed.pending_move {
        tracing::info!(
            store_id = store.id,
            lat = pending.location.lat,
            lon = pending.location.lon,
            "move requested"
        );
    }
    // 202 when this request's place waits for a moderator; a radius alone
    // is done (an older pending move still shows in the body).
    let status = match (change.move_to, changed.pending_move) {
        (Some(_), Some(_)) => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    Ok((status, axum::Json(own_store(&changed))))
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

/// Make another token: a store's for another device, an admin's for staff
/// (a moderator's unless `role` says admin: least privilege by default).
#[utoipa::path(
    post, path = "/v1/me/tokens", tag = "me",
    request_body = TokenRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new token, shown this once", body = TokenCreated),
        (status = 403, description = "Only stores and admins manage tokens; a store's tokens are store tokens (`role` other than `store`)"),
        (status = 409, description = "The store already holds 10 unrevoked tokens (`too_many_tokens`): revoke one first"),
        (status = 422, description = "`label` blank or too long; `role` unknown, or `store` from an admin"),
    )
)]
async fn create_token(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Json(request): Json<TokenRequest>,
) -> Result<(StatusCode, axum::Json<TokenCreated>), ApiError> {
    let owner = token_owner(&caller)?;
    let label = required_line("label", &request.label, MAX_TOKEN_LABEL)?;
    let role = token_role(owner, request.role)?;
    ctx.limits.token_requested(super::limits::Account::of(
        caller.store.as_ref().map(|store| store.id),
        caller.token.id,
    ))?;
    let secret = Secret::new_token();
    let token = NewToken {
        role,
        store_id: owner.store_id(),
        label: &label,
        hash: &secret.hash(),
    };
    let creation = ctx
        .storage
        .create_token(token, &caller.actor(), OffsetDateTime::now_utc())
        .await?;
    let info = match creation {
        TokenCreation::Created(info) => info,
        TokenCreation::TooMany => {
            return Err(ApiError::conflict(
                "too_many_tokens",
                format!(
                    "this store already holds {MAX_STORE_TOKENS} tokens, the most it may; \
                     revoke one it no longer uses (DELETE /v1/me/tokens/{{id}})"
                ),
            ))
        }
    };
    tracing::info!(token_id = info.id, role = %role, "token created");
    let created = TokenCreated {
        id: info.id,
        label: info.label,
        token: secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// The role a new token gets: a store's are store tokens (asking for a
/// staff role is a matter of permission: 403); an admin's staff tokens are
/// moderators unless `admin` is asked for.
fn token_role(owner: TokenOwner, asked: Option<Role>) -> Result<Role, ApiError> {
    match (owner, asked) {
        (TokenOwner::Store(_), None | Some(Role::Store)) => Ok(Role::Store),
        (TokenOwner::Store(_), Some(role)) => Err(ApiError::forbidden(
            "forbidden",
            format!("a store's tokens are store tokens; it cannot make a {role} token"),
        )),
        (TokenOwner::Staff, None | Some(Role::Moderator)) => Ok(Role::Moderator),
        (TokenOwner::Staff, Some(Role::Admin)) => Ok(Role::Admin),
        (TokenOwner::Staff, Some(Role::Store)) => Err(Invalid::new(
            "role",
            "must be moderator or admin: store tokens come from an approved pledge",
        )
        .into()),
    }
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
    let storage = ctx.storage.clone();
    let actor = caller.actor();
    let revoked = ctx
        .network
        .write(async move {
            storage
                .revoke_token(owner, id, &actor, OffsetDateTime::now_utc())
                .await
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no token with id {id} among yours")))?;
    tracing::info!(token_id = id, "token revoked");
    Ok(axum::Json(revoked))
}
