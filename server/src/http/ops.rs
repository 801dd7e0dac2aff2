//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::{ApiContext, ApiError};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(scrape))
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

/// The Prometheus text format. Unauthenticated, like `/healthz`: it holds
/// counts, never an id, a token or a path with one.
async fn scrape(State(ctx): State<ApiContext>) -> impl IntoResponse {
    metrics::gauge!(crate::metrics::STREAMS_OPEN).set(ctx.hub.connections() as f64);
    let alerts = match tokio::time::timeout(
        crate::metrics::COUNT_TIMEOUT,
        ctx.storage.alert_counts(),
    )
    .await
    {
        Ok(Ok(counts)) => crate::metrics::render_alerts(&counts),
        Ok(Err(error)) => {
            tracing::warn!(%error, "metrics without alert counts: the database does not answer");
            crate::metrics::database_error();
            String::new()
        }
        Err(_) => {
            tracing::warn!("metrics without alert counts: the database took too long");
            crate::metrics::database_error();
            String::new()
        }
    };
    // Rendered after counting the scrape's own database error.
    let mut body = ctx.metrics.scrape.render();
    body.push_str(&alerts);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}
