//! Liveness and readiness on the public listener; metrics on the
//! operators' (`--metrics-bind`) only.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiContext, ApiError};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
}

/// Served on `--metrics-bind`, never on the public listener.
pub fn operator_router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// Live while the process serves.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Serving", content_type = "text/plain", body = String, example = "ok"))
)]
async fn live() -> &'static str {
    "ok"
}

/// Ready when the database answers (and, on PostgreSQL, this node hears
/// the others).
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready", content_type = "text/plain", body = String, example = "ready"))
)]
async fn ready(State(ctx): State<ApiContext>) -> Result<(StatusCode, &'static str), ApiError> {
    ctx.storage.ping().await.map_err(|error| {
        tracing::warn!(%error, "not ready: the database does not answer");
        ApiError::Database(error)
    })?;
    if !ctx.network.is_ready() {
        return Err(ApiError::Unavailable(
            "not listening to the other nodes; reconnecting",
        ));
    }
    Ok((StatusCode::OK, "ready"))
}

/// The Prometheus text format, for operators: served only on the address
/// `--metrics-bind` names (none by default), which only operators reach;
/// the public listener answers 404. It holds counts, never an id, a token
/// or a path with one.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    description = "Served only on the operators' address (`--metrics-bind`), never on the public listener (404 there).",
    responses((status = 200, description = "The server's metrics in the Prometheus text format (version 0.0.4)", content_type = "text/plain", body = String))
)]
async fn scrape(State(ctx): State<ApiContext>) -> impl IntoResponse {
    metrics::gauge!(crate::metrics::STREAMS_OPEN).set(ctx.network.connections() as f64);
    let alerts = match tokio::time::timeout(
        crate::metrics::COUNT_TIMEOUT,
        ctx.storage.alert_counts(),
    )
    .await
    {
        Ok(Ok(counts)) => crate::metrics::render_alerts(
            counts
                .iter()
                .map(|count| (count.kind.as_str(), count.status.as_str(), count.count)),
        ),
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
