//! Posting and reading alerts.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use p4p_protocol::{
    Alert, AlertKind, AlertPage, AlertPatch, AlertStatus, ErasedAlert, Flag, Location, NewAlert,
    ReasonRequest, Role, StoreRef,
};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Caller, Json, OptionalJson, Query, Sent};
use super::moderation::{moderate, outcome_of};
use super::openapi::RequiredReason;
use super::safe_writes::{self, if_match, Begun, Versioned};
use super::{ApiContext, ApiError};
use crate::db::{AlertQuery, Edit, FlagOutcome, IdempotencyKey, Posted, Remembered, Viewer};
use crate::domain::alert::{patched, ValidAlert};
use crate::domain::moderation::{Admission, AlertAction};
use crate::domain::place::{Area, Place, RadiusKm};
use crate::domain::reason;
use crate::domain::Invalid;

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list, post_alert))
        .routes(routes!(show, edit))
        .routes(routes!(retract))
        .routes(routes!(flag))
        .routes(routes!(erase))
}

/// Post an alert (stores). It is published at once unless moderation holds
/// it (`pending`). With an `Idempotency-Key`, a retry answers the first
/// success again and posts nothing.
#[utoipa::path(
    post, path = "/v1/alerts", tag = "alerts",
    request_body = NewAlert,
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "1 to 200 visible ASCII characters: the same key from the same store within 24 hours answers the first success again and posts nothing", pattern = "^[!-~]{1,200}$"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The alert, `published` or `pending`", body = Alert,
            headers(("ETag" = String, description = "The alert's `version`, quoted"))),
        (status = 400, description = "A malformed `Idempotency-Key` (`bad_request`)"),
        (status = 403, description = "Only approved member stores post alerts"),
        (status = 409, description = "A request with this `Idempotency-Key` is still running (`idempotency_in_progress`)"),
        (status = 422, description = "A field is out of its limits (`invalid_input`), or the `Idempotency-Key` was used with another request (`idempotency_key_reused`)"),
        (status = 429, description = "This store posted its allowance of alerts for the hour (`rate_limited`)"),
    )
)]
async fn post_alert(
    State(ctx): State<ApiContext>,
    caller: Caller,
    headers: HeaderMap,
    sent: Sent<NewAlert>,
) -> Result<(StatusCode, Versioned), ApiError> {
    let store = caller.require_store("post alerts")?;
    let begun = safe_writes::begin(
        ctx.storage.as_ref(),
        &ctx.in_progress,
        &caller,
        &headers,
        "/v1/alerts",
        &sent.bytes,
    )
    .await?;
    let (key, _running) = match begun {
        Begun::Remembered(remembered) => return remembered_alert(&ctx, &caller, &remembered).await,
        Begun::New { key, _running } => (key, _running),
    };
    let place = Area::of_store(store).center;
    let now = OffsetDateTime::now_utc();
    let alert = ValidAlert::parse(sent.value, place, now)?;
    within_retention(&ctx, &alert, now)?;
    ctx.limits.alert_posted(store.id)?;
    let author = StoreRef {
        id: store.id,
        name: store.name.clone(),
    };
    let admission = status_of_new_alert(&ctx, store.id).await?;
    let storage = ctx.storage.clone();
    let keep = key.clone();
    let posted = ctx
        .network
        .write(async move {
            storage
                .post_alert(&author, &alert, &admission, keep, now)
                .await
        })
        .await?;
    let Posted::Created(posted) = posted else {
        // Another node took the key meanwhile: answer what it posted.
        let remembered = safe_writes::taken(ctx.storage.as_ref(), key.as_ref()).await?;
        return remembered_alert(&ctx, &caller, &remembered).await;
    };
    tracing::info!(alert_id = posted.id, kind = %posted.kind, status = %posted.status, "alert posted");
    Ok((StatusCode::CREATED, Versioned(*posted)))
}

/// The alert a remembered post made, as it is now.
async fn remembered_alert(
    ctx: &ApiContext,
    caller: &Caller,
    remembered: &Remembered,
) -> Result<(StatusCode, Versioned), ApiError> {
    let id = remembered
        .object
        .strip_prefix("alert:")
        .and_then(|id| id.parse::<i64>().ok())
        .ok_or_else(|| ApiError::Internal(format!("remembered {}", remembered.object)))?;
    tracing::info!(alert_id = id, "a retried post answered again");
    let alert = visible_alert(ctx, caller, id).await?;
    Ok((safe_writes::status_of(remembered), Versioned(alert)))
}

/// docs/API.md: an alert that happened longer ago than the retention period
/// would be erased at once; it is refused.
fn within_retention(
    ctx: &ApiContext,
    alert: &ValidAlert,
    now: OffsetDateTime,
) -> Result<(), Invalid> {
    if alert.occurred_at.unix_timestamp() < ctx.policy.retention_cutoff(now) {
        return Err(Invalid::new(
            "occurred_at",
            format!(
                "must be within the retention period of {} days: older alerts are erased",
                ctx.policy.retention_days
            ),
        ));
    }
    Ok(())
}

/// Whether a store's new alert would be published or wait for a moderator.
async fn status_of_new_alert(ctx: &ApiContext, store_id: i64) -> Result<Admission, ApiError> {
    // Probation only needs to know whether the store reached its count.
    let published_before = match ctx.policy.probation_alerts {
        0 => 0,
        probation => {
            ctx.storage
                .published_count(store_id, i64::from(probation))
                .await?
        }
    };
    Ok(ctx.policy.status_of_new_alert(published_before))
}

/// Whether the caller may see the alert: nobody sees one past retention
/// (erased alerts never leave the database layer); staff see the rest;
/// stores see published alerts and their own.
fn visible(ctx: &ApiContext, caller: &Caller, alert: &Alert) -> bool {
    let recent = alert.occurred_at.unix_timestamp()
        >= ctx.policy.retention_cutoff(OffsetDateTime::now_utc());
    recent
        && caller.store.as_ref().is_none_or(|store| {
            alert.status == AlertStatus::Published || alert.store.id == store.id
        })
}

/// The alert, if the caller may see it; 404 alike for unknown and hidden.
async fn visible_alert(ctx: &ApiContext, caller: &Caller, id: i64) -> Result<Alert, ApiError> {
    match ctx.storage.alert(id).await? {
        Some(alert) if visible(ctx, caller, &alert) => Ok(alert),
        _ => Err(ApiError::NotFound(format!("no alert with id {id}"))),
    }
}

/// The alert, if the caller may change it: its author or staff. Others
/// get 403 if they can see it, 404 if not.
pub(super) async fn changeable(
    ctx: &ApiContext,
    caller: &Caller,
    id: i64,
    doing: &str,
) -> Result<Alert, ApiError> {
    caller.require_active()?;
    let alert = visible_alert(ctx, caller, id).await?;
    match &caller.store {
        Some(store) if store.id != alert.store.id => Err(ApiError::forbidden(
            "forbidden",
            format!("only its author or association staff can {doing} alert {id}"),
        )),
        _ => Ok(alert),
    }
}

/// Change an alert (its author or staff): what is given replaces.
#[utoipa::path(
    patch, path = "/v1/alerts/{id}", tag = "alerts",
    params(
        ("id" = i64, Path, description = "The alert"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` the editor read (`\"3\"`): the edit applies only to that version", pattern = r#"^(\*|(W/)?"[1-9][0-9]{0,17}")$"#),
    ),
    request_body = AlertPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert, changed", body = Alert,
            headers(("ETag" = String, description = "The alert's new `version`, quoted"))),
        (status = 400, description = "A malformed `If-Match` (`bad_request`)"),
        (status = 403, description = "Only its author or staff edit an alert"),
        (status = 404, description = "No alert with this id that the caller may see"),
        (status = 409, description = "The alert cannot be edited in its status (`invalid_transition`), or changed while this request ran (`edit_conflict`, without `If-Match`)"),
        (status = 412, description = "The alert is at another version than `If-Match` named (`precondition_failed`); nothing changed"),
    )
)]
async fn edit(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(patch): Json<AlertPatch>,
) -> Result<Versioned, ApiError> {
    let if_match = if_match(&headers)?;
    let current = changeable(&ctx, &caller, id, "edit").await?;
    if patch == AlertPatch::default() {
        return Err(Invalid::new("body", "give at least one field to change").into());
    }
    let now = OffsetDateTime::now_utc();
    let place = Place::from_stored(current.location.lat, current.location.lon);
    let edited = ValidAlert::parse(patched(&current, patch), place, now)?;
    if let Some(store) = &caller.store {
        // Every edit of a published alert reaches every store in reach.
        ctx.limits.alert_edited(store.id)?;
    }
    // An author whose new alerts would wait has its edits wait too, so that
    // no content reaches members unseen by a moderator.
    let by_author = caller.store.is_some();
    let hold = match &caller.store {
        Some(store) => status_of_new_alert(&ctx, store.id).await?.status == AlertStatus::Pending,
        None => false,
    };
    let storage = ctx.storage.clone();
    let actor = caller.actor();
    let outcome = ctx
        .network
        .write(async move {
            let edit = Edit {
                alert: &edited,
                seen: &current,
                if_match: if_match.as_ref(),
                by_author,
                hold,
            };
            storage.edit_alert(id, edit, &actor, now).await
        })
        .await?;
    let alert = outcome_of(id, "edit", outcome)?;
    tracing::info!(alert_id = id, "alert edited");
    Ok(Versioned(alert))
}

/// Withdraw a published alert, saying why (its author or staff).
#[utoipa::path(
    post, path = "/v1/alerts/{id}/retract", tag = "alerts",
    params(
        ("id" = i64, Path, description = "The alert"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` the caller read: retract only that version", pattern = r#"^(\*|(W/)?"[1-9][0-9]{0,17}")$"#),
    ),
    request_body(content = RequiredReason, description = "Why; members are told"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert, now retracted", body = Alert,
            headers(("ETag" = String, description = "The alert's new `version`, quoted"))),
        (status = 403, description = "Only its author or staff retract an alert"),
        (status = 404, description = "No alert with this id that the caller may see"),
        (status = 409, description = "The alert is not published (`invalid_transition`)"),
        (status = 412, description = "The alert is at another version than `If-Match` named (`precondition_failed`)"),
    )
)]
async fn retract(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReasonRequest>,
) -> Result<Versioned, ApiError> {
    let if_match = if_match(&headers)?;
    changeable(&ctx, &caller, id, "retract").await?;
    moderate(
        &ctx,
        &caller,
        id,
        AlertAction::Retract,
        body.reason.as_deref(),
        if_match,
    )
    .await
}

/// Erase an alert at once (admins), for a defamatory one: its text,
/// suspects and vehicles leave the database, stored stream events
/// included; it is 404 to everyone; members that saw it get `retract`.
#[utoipa::path(
    post, path = "/v1/alerts/{id}/erase", tag = "moderation",
    params(("id" = i64, Path, description = "The alert")),
    request_body(content = RequiredReason, description = "Why; kept in the audit trail (members are told only that the association erased it)"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What is left: the alert's id, when and why it was erased", body = ErasedAlert),
        (status = 403, description = "Only admins erase alerts"),
        (status = 404, description = "No alert with this id (or it is erased already)"),
        (status = 422, description = "No `reason` given"),
    )
)]
async fn erase(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    OptionalJson(body): OptionalJson<ReasonRequest>,
) -> Result<axum::Json<ErasedAlert>, ApiError> {
    if caller.role() != Role::Admin {
        return Err(ApiError::forbidden(
            "forbidden",
            "only admins erase alerts; moderators retract or reject them",
        ));
    }
    let reason = reason(body.reason.as_deref(), true)?.unwrap_or_default();
    // Past retention it is 404 already; the sweep erases it.
    visible_alert(&ctx, &caller, id).await?;
    let storage = ctx.storage.clone();
    let actor = caller.actor();
    let now = crate::domain::alert::whole_seconds(OffsetDateTime::now_utc());
    let kept = reason.clone();
    ctx.network
        .write(async move { storage.erase_alert(id, &kept, &actor, now).await })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert with id {id}")))?;
    tracing::info!(alert_id = id, "alert erased");
    Ok(axum::Json(ErasedAlert {
        alert_id: id,
        erased_at: now,
        reason,
    }))
}

/// Report an alert as wrong or abusive (stores; once per store and alert).
#[utoipa::path(
    post, path = "/v1/alerts/{id}/flags", tag = "alerts",
    params(
        ("id" = i64, Path, description = "The alert"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "1 to 200 visible ASCII characters: a retry with the same key within 24 hours answers the first success again", pattern = "^[!-~]{1,200}$"),
    ),
    request_body(content = RequiredReason, description = "What is wrong with it"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The flag", body = Flag),
        (status = 400, description = "A malformed `Idempotency-Key` (`bad_request`)"),
        (status = 403, description = "Only member stores flag, and not their own alerts"),
        (status = 404, description = "No alert with this id that the caller may see"),
        (status = 409, description = "Already flagged by this store (`already_flagged`), not flaggable in its status (`invalid_transition`), or a request with this `Idempotency-Key` still running (`idempotency_in_progress`)"),
        (status = 422, description = "No `reason` (`invalid_input`), or the `Idempotency-Key` was used with another request (`idempotency_key_reused`)"),
    )
)]
async fn flag(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    sent: Sent<ReasonRequest>,
) -> Result<(StatusCode, axum::Json<Flag>), ApiError> {
    let store = caller.require_store("flag alerts")?;
    let path = format!("/v1/alerts/{id}/flags");
    let begun = safe_writes::begin(
        ctx.storage.as_ref(),
        &ctx.in_progress,
        &caller,
        &headers,
        &path,
        &sent.bytes,
    )
    .await?;
    let (key, _running) = match begun {
        Begun::Remembered(remembered) => return remembered_flag(&ctx, &remembered).await,
        Begun::New { key, _running } => (key, _running),
    };
    let reason = reason(sent.value.reason.as_deref(), true)?.unwrap_or_default();
    let alert = match visible_alert(&ctx, &caller, id).await {
        Ok(alert) => alert,
        Err(refused) => return remembered_flag_or(&ctx, key.as_ref(), refused).await,
    };
    if alert.store.id == store.id {
        return Err(ApiError::forbidden(
            "forbidden",
            "a store cannot flag its own alert; edit or retract it instead",
        ));
    }
    let storage = ctx.storage.clone();
    let (store_id, threshold) = (store.id, ctx.policy.flag_threshold);
    let keep = key.clone();
    let outcome = ctx
        .network
        .write(async move {
            storage
                .flag_alert(
                    id,
                    store_id,
                    &reason,
                    threshold,
                    keep,
                    OffsetDateTime::now_utc(),
                )
                .await
        })
        .await?;
    match outcome {
        FlagOutcome::Flagged { flag, held } => {
            if held {
                tracing::info!(alert_id = id, "alert held for review after flags");
            }
            Ok((StatusCode::CREATED, axum::Json(flag)))
        }
        // Another node took the key meanwhile: answer the flag it made.
        FlagOutcome::KeyTaken => {
            let remembered = safe_writes::taken(ctx.storage.as_ref(), key.as_ref()).await?;
            remembered_flag(&ctx, &remembered).await
        }
        FlagOutcome::NotFound => Err(ApiError::NotFound(format!("no alert with id {id}"))),
        FlagOutcome::AlreadyFlagged => Err(ApiError::conflict(
            "already_flagged",
            format!("this store already flagged alert {id}"),
        )),
        FlagOutcome::NotFlaggable(status) => Err(ApiError::conflict(
            "invalid_transition",
            format!("cannot flag alert {id}: it is {status}"),
        )),
    }
}

/// A keyed flag that can no longer be made (its first try, on another
/// node, held the alert meanwhile, so it is no longer visible) answers what
/// the key remembers; otherwise the refusal stands.
async fn remembered_flag_or(
    ctx: &ApiContext,
    key: Option<&IdempotencyKey>,
    refused: ApiError,
) -> Result<(StatusCode, axum::Json<Flag>), ApiError> {
    if let Some(key) = key {
        if let Some(remembered) = safe_writes::still_remembered(ctx.storage.as_ref(), key).await? {
            return remembered_flag(ctx, &remembered).await;
        }
    }
    Err(refused)
}

/// The flag a remembered request made, as it is now.
async fn remembered_flag(
    ctx: &ApiContext,
    remembered: &Remembered,
) -> Result<(StatusCode, axum::Json<Flag>), ApiError> {
    let ids: Option<(i64, i64)> = remembered
        .object
        .strip_prefix("flag:")
        .and_then(|ids| ids.split_once(':'))
        .and_then(|(alert, store)| Some((alert.parse().ok()?, store.parse().ok()?)));
    let (alert_id, store_id) =
        ids.ok_or_else(|| ApiError::Internal(format!("remembered {}", remembered.object)))?;
    match ctx.storage.flag(alert_id, store_id).await? {
        Some(flag) => Ok((safe_writes::status_of(remembered), axum::Json(flag))),
        None => Err(ApiError::NotFound(format!("no flag of alert {alert_id}"))),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Around a point: with `lon` and `radius_km`.
    #[param(minimum = -90.0, maximum = 90.0)]
    lat: Option<f64>,
    /// Around a point: with `lat` and `radius_km`.
    #[param(minimum = -180.0, maximum = 180.0)]
    lon: Option<f64>,
    /// Around a point: with `lat` and `lon`.
    #[param(minimum = 0.5, maximum = 500.0)]
    radius_km: Option<f64>,
    kind: Option<AlertKind>,
    /// Staff only; stores see published alerts and their own.
    status: Option<AlertStatus>,
    /// At most this many alerts (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// Only alerts older than this one: `next_before_id` of the page before.
    before_id: Option<i64>,
}

impl ListParams {
    fn near(&self) -> Result<Option<Area>, Invalid> {
        match (self.lat, self.lon, self.radius_km) {
            (None, None, None) => Ok(None),
            (Some(lat), Some(lon), Some(radius_km)) => Ok(Some(Area {
                center: Place::parse("location", Location { lat, lon }).map_err(|e| {
                    Invalid::new(e.field.trim_start_matches("location."), e.message)
                })?,
                radius: RadiusKm::parse("radius_km", radius_km)?,
            })),
            _ => Err(Invalid::new("lat", "lat, lon and radius_km go together")),
        }
    }

    fn limit(&self) -> Result<usize, Invalid> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
            Some(_) => Err(Invalid::new(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            )),
        }
    }
}

/// Alerts, newest first, filtered (stores and staff).
#[utoipa::path(
    get, path = "/v1/alerts", tag = "alerts",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of alerts", body = AlertPage),
        (status = 403, description = "A pending or suspended store, or a store filtering by `status`"),
        (status = 422, description = "A parameter is out of its limits, or `lat`, `lon` and `radius_km` are not given together"),
    )
)]
async fn list(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<AlertPage>, ApiError> {
    caller.require_active()?;
    let viewer = match &caller.store {
        Some(_) if params.status.is_some() => {
            return Err(ApiError::forbidden(
                "forbidden",
                "only association staff filter by status; stores see published alerts and their own",
            ));
        }
        Some(store) => Viewer::Store(store.id),
        None => Viewer::Staff,
    };
    let query = AlertQuery {
        viewer,
        near: params.near()?,
        kind: params.kind,
        status: params.status,
        limit: params.limit()?,
        before_id: params.before_id,
        not_before: ctx.policy.retention_cutoff(OffsetDateTime::now_utc()),
    };
    let list = ctx.storage.alerts(&query).await?;
    let next_before_id = if list.more {
        list.alerts.last().map(|alert| alert.id)
    } else {
        None
    };
    Ok(axum::Json(AlertPage {
        alerts: list.alerts,
        next_before_id,
    }))
}

/// One alert. A retracted or rejected alert is 404 to stores other than
/// its author.
#[utoipa::path(
    get, path = "/v1/alerts/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "The alert")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert", body = Alert,
            headers(("ETag" = String, description = "The alert's `version`, quoted: send it back in `If-Match` to change it"))),
        (status = 403, description = "A pending or suspended store"),
        (status = 404, description = "No alert with this id that the caller may see"),
    )
)]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Versioned, ApiError> {
    caller.require_active()?;
    let alert = visible_alert(&ctx, &caller, id).await?;
    Ok(Versioned(alert))
}
