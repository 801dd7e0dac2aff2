//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use super::{ApiContext, ApiError};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
}

/// Ready when the database answers.
async fn ready(State(ctx): State<ApiContext>) -> Result<(StatusCode, &'static str), ApiError> {
    ctx.storage.ping().await.map_err(|error| {
        tracing::warn!(%error, "not ready: the database does not answer");
        ApiError::Database(error)
    })?;
    if !ctx
        .hears_other_nodes
        .load(std::sync::atomic::Ordering::Acquire)
    {
        return Err(ApiError::Unavailable(
            "not listening to the other nodes; reconnecting",
        ));
    }
    Ok((StatusCode::OK, "ready"))
}
