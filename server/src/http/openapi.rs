//! `GET /v1/openapi.json`: the OpenAPI 3 document of the HTTP API.
//!
//! It is made from the same declarations as the router: every handler is
//! registered through `utoipa_axum::routes!`, which takes its method, path,
//! parameters and answers from the handler's `#[utoipa::path]`. What every
//! operation shares (problem documents, the bearer scheme, 401/429/503, the
//! answers of the body and path extractors) is added here, once, so that
//! the annotations say only what is particular to each endpoint.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use p4p_protocol::{Problem, PROBLEM_CONTENT_TYPE};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Header, OpenApi, Ref, RefOr, Response as Answer};
use utoipa::{Modify, OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiContext;

/// The name of the security scheme every annotation refers to (as a
/// literal: `#[utoipa::path(security(("bearer" = [])))]`).
pub const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "p4p",
        description = "The p4p alert network for jewelers: membership, alerts, moderation and the live stream (API.md, v1). Errors are RFC 9457 problem documents with a stable `code`.",
        version = "1",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(Problem)),
    modifiers(&BearerToken),
    tags(
        (name = "membership", description = "Pledging and vetting member stores"),
        (name = "me", description = "The caller, its store's area of interest, its tokens"),
        (name = "alerts", description = "Posting, reading, editing and flagging alerts"),
        (name = "moderation", description = "Association staff working the queue and the audit trail"),
        (name = "stream", description = "The live WebSocket stream"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct Base;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("A token starting with `p4p_`: a store's (claimed after approval, or made with POST /v1/me/tokens) or a staff token made on the server host."))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// `{"reason"}` where a reason is required: rejecting, suspending,
/// retracting and flagging. Those handlers read it as a
/// [`p4p_protocol::ReasonRequest`] and refuse a missing or blank reason
/// (422); this type only describes that body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RequiredReason {
    #[schema(schema_with = p4p_protocol::openapi::required_text::<500>)]
    reason: String,
}

/// The routes of this document.
pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(document))
}

/// An empty document with the API's description, to collect the routes in.
pub fn base() -> OpenApi {
    Base::openapi()
}

/// The document as served: rendered once, when the router is made.
#[derive(Clone)]
pub struct Document(Arc<str>);

impl Document {
    pub fn new(openapi: OpenApi) -> Document {
        let json = finished(openapi)
            .to_pretty_json()
            .unwrap_or_else(|error| format!("{{\"error\": \"cannot render: {error}\"}}"));
        Document(json.into())
    }
}

/// This document: every HTTP endpoint of the API.
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object),
    )
)]
async fn document(Extension(document): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.0.to_string(),
    )
        .into_response()
}

/// Adds to every operation the answers it shares with others: problem
/// documents as the body of every error, 401 and 429 where a token is
/// taken, 400/413/422 where a JSON body is read, 400 where an id is in the
/// path, and 503 everywhere.
pub fn finished(mut openapi: OpenApi) -> OpenApi {
    // A patch that changes nothing is refused (422): at least one field,
    // and not `null` (which means "leave it").
    for patch in ["AlertPatch", "MePatch"] {
        at_least_one_field(&mut openapi, patch);
    }
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
            &mut item.put,
        ];
        for operation in operations.into_iter().flatten() {
            shared_answers(operation);
        }
    }
    openapi
}

/// Requires at least one of the object's properties, with a value other
/// than `null`.
fn at_least_one_field(openapi: &mut OpenApi, name: &str) {
    let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas) else {
        return;
    };
    let Some(RefOr::T(Schema::Object(object))) = schemas.get(name) else {
        return;
    };
    let not_null = SchemaType::from_iter([
        Type::Boolean,
        Type::Integer,
        Type::Number,
        Type::String,
        Type::Array,
        Type::Object,
    ]);
    let mut any_field = AnyOfBuilder::new();
    for field in object.properties.keys() {
        any_field = any_field.item(
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(not_null.clone()))
                .required(field),
        );
    }
    let description = object.description.clone();
    let Some(original) = schemas.remove(name) else {
        return;
    };
    let patch = AllOfBuilder::new()
        .item(original)
        .item(any_field)
        .description(description)
        .build();
    schemas.insert(name.to_owned(), RefOr::T(Schema::AllOf(patch)));
}

fn shared_answers(operation: &mut Operation) {
    let takes_token = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let has_path_id = operation
        .parameters
        .iter()
        .flatten()
        .any(|parameter| parameter.parameter_in == ParameterIn::Path);
    let reads_body = operation.request_body.is_some();
    let answers = &mut operation.responses.responses;
    let mut add = |status: u16, description: &str| {
        answers
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(Answer::new(description)));
    };
    match (has_path_id, reads_body) {
        (true, true) => add(
            400,
            "The id in the path is not an integer, or the body is not JSON",
        ),
        (true, false) => add(400, "The id in the path is not an integer"),
        (false, true) => add(400, "The body is not JSON"),
        (false, false) => {}
    }
    if reads_body {
        add(413, "The body is larger than 64 KiB");
        add(
            415,
            "The body is not sent as `Content-Type: application/json` (`unsupported_media_type`)",
        );
        add(
            422,
            "The body is JSON of the wrong shape, or a value is out of its limits; `detail` names the field",
        );
    }
    if takes_token {
        add(
            401,
            "No bearer token, or an unknown or revoked one (`code`: `unauthorized`)",
        );
        add(
            429,
            "Too many failed authentications from this address, or the address already holds as many connections as it may (`code`: `rate_limited`)",
        );
    }
    add(
        429,
        "This address already holds as many connections as it may (`code`: `rate_limited`)",
    );
    add(
        503,
        "The database is unavailable (`database_unavailable`), the request took longer than the server's limit (`timeout`), or the server is at its connection cap (`too_many_connections`)",
    );
    for (status, answer) in answers.iter_mut() {
        let RefOr::T(answer) = answer else { continue };
        if !status.starts_with(['4', '5']) {
            continue;
        }
        if answer.content.is_empty() {
            answer.content.insert(
                PROBLEM_CONTENT_TYPE.to_owned(),
                Content::new(Some(Ref::from_schema_name(Problem::name()))),
            );
        }
        if status == "429" {
            let mut retry_after = Header::new(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            );
            retry_after.description = Some("Seconds to wait before trying again".to_owned());
            answer.headers.insert("Retry-After".to_owned(), retry_after);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every (method, path) in the document.
    fn documented(openapi: &OpenApi) -> BTreeSet<(String, String)> {
        let mut operations = BTreeSet::new();
        for (path, item) in &openapi.paths.paths {
            let methods = [
                ("get", &item.get),
                ("post", &item.post),
                ("patch", &item.patch),
                ("delete", &item.delete),
                ("put", &item.put),
                ("head", &item.head),
                ("options", &item.options),
                ("trace", &item.trace),
            ];
            for (method, operation) in methods {
                if operation.is_some() {
                    operations.insert((method.to_owned(), path.clone()));
                }
            }
        }
        operations
    }

    /// Every (method, path) the router serves, read from its `Debug` form
    /// (axum offers no other way to list routes): `paths` maps route ids to
    /// paths, `routes` each route id to a method router whose handled
    /// methods are not `None`. Should a new axum print it otherwise, this
    /// finds nothing and the test fails; it cannot pass by accident.
    fn served() -> BTreeSet<(String, String)> {
        let (router, _) = crate::http::all_endpoints().split_for_parts();
        let debug = format!("{router:?}");
        // The router's own routes, not those of axum's fallback router.
        let debug = debug
            .split("fallback_router:")
            .next()
            .expect("the path router");
        let mut operations = BTreeSet::new();
        // Entries of `paths` read `RouteId(7): "/v1/alerts/{id}"`.
        for (at, _) in debug.match_indices("RouteId(") {
            let entry = &debug[at..];
            let Some((id, rest)) = entry.split_once(": \"") else {
                continue;
            };
            if id.contains(' ') {
                continue;
            }
            let path = rest.split('"').next().expect("a quoted path");
            let route = format!("{id}: MethodRouter(MethodRouter {{ ");
            let at = debug.find(&route).expect("the route's method router");
            let fields = debug[at + route.len()..]
                .split(" })")
                .next()
                .expect("method router fields");
            for field in fields.split(", ") {
                let Some((method, handler)) = field.split_once(": ") else {
                    continue;
                };
                let method = method.trim();
                if handler != "None" && !["fallback", "allow_header"].contains(&method) {
                    operations.insert((method.to_owned(), path.to_owned()));
                }
            }
        }
        operations
    }

    #[test]
    fn every_route_the_router_serves_is_documented_and_only_those() {
        let served = served();
        assert!(!served.is_empty(), "reading the router's routes failed");
        let documented = documented(&finished(crate::http::all_endpoints().into_openapi()));
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "served but not in the OpenAPI document (register the handler with routes!() and #[utoipa::path]): {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "documented but not served: {unserved:?}"
        );
    }

    #[test]
    fn every_error_answer_is_a_problem_document_and_every_operation_can_be_unavailable() {
        let openapi = finished(crate::http::all_endpoints().into_openapi());
        for (path, item) in &openapi.paths.paths {
            for operation in [&item.get, &item.post, &item.patch, &item.delete]
                .into_iter()
                .flatten()
            {
                let answers = &operation.responses.responses;
                assert!(answers.contains_key("503"), "{path}: no 503");
                for (status, answer) in answers {
                    let RefOr::T(answer) = answer else { continue };
                    if status.starts_with(['4', '5']) {
                        assert!(
                            answer.content.contains_key(PROBLEM_CONTENT_TYPE),
                            "{path} {status}: not a problem document"
                        );
                    }
                }
                if operation.security.is_some() {
                    assert!(answers.contains_key("401"), "{path}: takes a token, no 401");
                    assert!(answers.contains_key("429"), "{path}: takes a token, no 429");
                }
            }
        }
    }
}
