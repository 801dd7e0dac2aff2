//! `GET /v1/openapi.json`: an OpenAPI 3 document that lists every endpoint
//! of docs/API.md, each of which the server really serves.

use p4p_tests::{Reply, TestServer};
use serde_json::{json, Value};

/// Every HTTP endpoint of docs/API.md (v1), as method and path template.
const API_MD: &[(&str, &str)] = &[
    ("post", "/v1/pledge"),
    ("post", "/v1/pledge/{store_id}/claim"),
    ("get", "/v1/stores"),
    ("post", "/v1/stores/{id}/approve"),
    ("post", "/v1/stores/{id}/reject"),
    ("post", "/v1/stores/{id}/suspend"),
    ("post", "/v1/stores/{id}/reinstate"),
    ("get", "/v1/stores/{id}"),
    ("get", "/v1/stores/{id}/tokens"),
    ("delete", "/v1/stores/{id}/tokens/{token_id}"),
    ("post", "/v1/stores/{id}/approve-move"),
    ("post", "/v1/stores/{id}/reject-move"),
    ("get", "/v1/me"),
    ("patch", "/v1/me"),
    ("post", "/v1/me/tokens"),
    ("delete", "/v1/me/tokens/{id}"),
    ("post", "/v1/alerts"),
    ("get", "/v1/alerts"),
    ("get", "/v1/alerts/{id}"),
    ("patch", "/v1/alerts/{id}"),
    ("post", "/v1/alerts/{id}/retract"),
    ("post", "/v1/alerts/{id}/flags"),
    ("get", "/v1/moderation/queue"),
    ("post", "/v1/alerts/{id}/approve"),
    ("post", "/v1/alerts/{id}/reject"),
    ("post", "/v1/alerts/{id}/verify"),
    ("post", "/v1/alerts/{id}/erase"),
    ("get", "/v1/audit"),
    ("get", "/v1/stream"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
];

const METHODS: [&str; 5] = ["get", "post", "patch", "delete", "put"];

async fn document(server: &TestServer) -> Value {
    let reply = server.anonymous().get("/v1/openapi.json").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}

/// Every (method, path) the document lists.
fn operations(document: &Value) -> Vec<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.push((method.to_owned(), path.clone()));
            }
        }
    }
    operations
}

/// Whether a reply is the router's own refusal of an unknown endpoint or
/// method, rather than the endpoint's answer.
fn not_served(reply: &Reply) -> bool {
    reply.status == 405
        || (reply.status == 404 && reply.body["detail"] == json!("no such endpoint"))
}

#[tokio::test]
async fn the_document_is_openapi_3_and_lists_every_endpoint_of_the_contract() {
    let server = TestServer::start().await;
    let document = document(&server).await;

    let version = document["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3."), "OpenAPI {version}");
    assert!(document["info"]["title"].is_string());
    assert!(document["info"]["version"].is_string());
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        json!("bearer")
    );
    let listed = operations(&document);
    for (method, path) in API_MD {
        assert!(
            listed.contains(&(method.to_string(), path.to_string())),
            "{} {path} is not in the document",
            method.to_uppercase()
        );
    }
    // Every $ref points at a schema the document defines.
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let name = reference
            .split('"')
            .next()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .expect("a reference to a component schema");
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "{name} is referenced but not defined"
        );
    }
}

#[tokio::test]
async fn errors_are_problem_documents_and_every_operation_can_answer_503() {
    let server = TestServer::start().await;
    let document = document(&server).await;
    for (method, path) in operations(&document) {
        let answers = &document["paths"][&path][&method]["responses"];
        assert!(answers.get("503").is_some(), "{method} {path}: no 503");
        let takes_token = document["paths"][&path][&method]["security"].is_array();
        if takes_token {
            for status in ["401", "429"] {
                assert!(
                    answers.get(status).is_some(),
                    "{method} {path}: no {status}"
                );
            }
            assert!(
                answers["429"]["headers"].get("Retry-After").is_some(),
                "{method} {path}: 429 without Retry-After"
            );
        }
        for (status, answer) in answers.as_object().expect("responses") {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    answer["content"]["application/problem+json"]["schema"]["$ref"],
                    json!("#/components/schemas/Problem"),
                    "{method} {path} {status}"
                );
            }
        }
    }
    for (method, path) in [
        ("post", "/v1/pledge"),
        ("post", "/v1/alerts"),
        ("get", "/v1/stream"),
    ] {
        assert!(
            document["paths"][path][method]["responses"]
                .get("429")
                .is_some(),
            "{method} {path}: no 429"
        );
    }
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let server = TestServer::start_with(&["--metrics-bind", "127.0.0.1:0"]).await;
    let staff = server.staff_token("moderator");
    let document = document(&server).await;
    let public = server.api(Some(&staff));
    // `/metrics` is served to operators only, on their own address.
    let operators = server.operators();
    let body = json!({});
    for (method, template) in operations(&document) {
        let path = template.replace("{id}", "1").replace("{store_id}", "1");
        let api = if template == "/metrics" {
            &operators
        } else {
            &public
        };
        let reply = match method.as_str() {
            "get" => api.get(&path).await,
            "post" => api.post(&path, &body).await,
            "patch" => api.patch(&path, &body).await,
            "delete" => api.delete(&path).await,
            other => panic!("{other} {template}: a method this test does not send"),
        };
        assert!(
            !not_served(&reply),
            "{} {template} is documented but not served: {reply:?}",
            method.to_uppercase()
        );
    }
    // And the methods a path does not document are refused as such.
    for (method, template) in [("put", "/v1/me"), ("delete", "/v1/alerts/{id}")] {
        assert!(
            !operations(&document).contains(&(method.to_owned(), template.to_owned())),
            "{method} {template} is documented"
        );
    }
    let refused = public.delete("/v1/alerts/1").await;
    assert_eq!(refused.status, 405, "{refused:?}");
}
