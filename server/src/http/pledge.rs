//! Membership applications: pledge, then claim the token once approved.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use p4p_protocol::{ClaimRequest, ClaimResponse, PledgeCreated, PledgeRequest, StoreStatus};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{suspended, ClientIp, Json};
use super::{ApiContext, ApiError};
use crate::db::ClaimOutcome;
use crate::domain::secret::Secret;
use crate::domain::store::ValidPledge;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(apply))
        .routes(routes!(claim))
}

/// Apply for membership: the store accepts the pledge and waits for staff.
#[utoipa::path(
    post, path = "/v1/pledge", tag = "membership",
    request_body = PledgeRequest,
    responses(
        (status = 201, description = "Application received; keep the claim secret to claim the token once approved", body = PledgeCreated),
        (status = 429, description = "Too many pledges from this address (`code`: `rate_limited`)"),
    )
)]
async fn apply(
    State(ctx): State<ApiContext>,
    ClientIp(client): ClientIp,
    Json(request): Json<PledgeRequest>,
) -> Result<Response, ApiError> {
    let pledge = ValidPledge::parse(request)?;
    ctx.limits.pledge_sent(client)?;
    let claim_secret = Secret::new_claim();
    let store_id = ctx
        .storage
        .create_store(&pledge, &claim_secret.hash(), OffsetDateTime::now_utc())
        .await?;
    tracing::info!(store_id, "pledge received");
    let created = PledgeCreated {
        store_id,
        status: StoreStatus::Pending,
        claim_secret: claim_secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// Claim a token with the claim secret, once approved: the store's first
/// (the pledge's secret), or a fresh one after reinstatement (the secret
/// staff were given then); once per claim secret.
#[utoipa::path(
    post, path = "/v1/pledge/{store_id}/claim", tag = "membership",
    params(("store_id" = i64, Path, description = "The `store_id` the pledge answered")),
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "Approved: the token, handed out this once", body = ClaimResponse),
        (status = 202, description = "Still pending", body = ClaimResponse),
        (status = 403, description = "The pledge was rejected (`pledge_rejected`) or the store is suspended (`store_suspended`)"),
        (status = 404, description = "No pledge with this store id and claim secret"),
        (status = 409, description = "The token for this claim secret was already handed out (`already_claimed`)"),
    )
)]
async fn claim(
    State(ctx): State<ApiContext>,
    Path(store_id): Path<i64>,
    Json(request): Json<ClaimRequest>,
) -> Result<Response, ApiError> {
    let token = Secret::new_token();
    let claim = Secret::presented(&request.claim_secret).hash();
    let outcome = ctx
        .storage
        .claim_token(store_id, &claim, &token.hash(), OffsetDateTime::now_utc())
        .await?;
    match outcome {
        // One answer for both, so that nobody learns which ids pledged.
        ClaimOutcome::UnknownStore | ClaimOutcome::WrongSecret => Err(ApiError::NotFound(format!(
            "no pledge with store id {store_id} and this claim_secret"
        ))),
        ClaimOutcome::Pending => {
            let pending = ClaimResponse {
                status: StoreStatus::Pending,
                token: None,
            };
            Ok((StatusCode::ACCEPTED, axum::Json(pending)).into_response())
        }
        ClaimOutcome::Rejected { reason } => Err(ApiError::forbidden(
            "pledge_rejected",
            match reason {
                Some(reason) => format!("the pledge was rejected: {reason}"),
                None => "the pledge was rejected".to_owned(),
            },
        )),
        ClaimOutcome::Suspended { reason } => Err(suspended(reason.as_deref())),
        ClaimOutcome::AlreadyClaimed => Err(ApiError::conflict(
            "already_claimed",
            "the token for this claim secret was already handed out; an existing device can make more with POST /v1/me/tokens, and staff hand out a new claim secret when they reinstate a store",
        )),
        ClaimOutcome::Issued => {
            tracing::info!(store_id, "store token claimed");
            let approved = ClaimResponse {
                status: StoreStatus::Approved,
                token: Some(token.expose().to_owned()),
            };
            Ok((StatusCode::OK, axum::Json(approved)).into_response())
        }
    }
}
