//! Every limit and bad input of docs/API.md answers the right status and a
//! problem document naming the field; nothing bad is stored.

use std::time::Duration;

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::{json, Value};

async fn store_server() -> (TestServer, Api, Member) {
    let (server, _, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    (server, api, store)
}

fn alert_with(field: &str, value: Value) -> Value {
    let mut alert = json!({
        "kind": "casing",
        "title": "Two men casing showcases",
        "location": { "lat": 40.7, "lon": -74.0 },
    });
    alert[field] = value;
    alert
}

#[tokio::test]
async fn each_bad_alert_is_refused_with_422_naming_the_field() {
    let (_server, api, _) = store_server().await;
    let long = |n: usize| Value::String("x".repeat(n));
    let suspects = |n: usize| Value::Array(vec![json!({ "hair": "short" }); n]);
    let vehicles = |n: usize| Value::Array(vec![json!({ "plate": "ABC1234" }); n]);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("location", json!({ "lat": 90.1, "lon": 0 }), "location.lat"),
        (
            "location",
            json!({ "lat": -90.1, "lon": 0 }),
            "location.lat",
        ),
        (
            "location",
            json!({ "lat": 0, "lon": 180.1 }),
            "location.lon",
        ),
        (
            "location",
            json!({ "lat": 0, "lon": -180.1 }),
            "location.lon",
        ),
        (
            "location",
            json!({ "lat": "NaN", "lon": 0 }),
            "location.lat",
        ),
        ("location", json!({ "lat": 0 }), "location"),
        ("kind", json!("shoplifting"), "kind"),
        ("kind", json!(null), "kind"),
        ("title", json!(""), "title"),
        ("title", json!("   "), "title"),
        ("title", long(121), "title"),
        ("description", long(4_001), "description"),
        ("radius_km", json!(0), "radius_km"),
        ("radius_km", json!(0.4), "radius_km"),
        ("radius_km", json!(501), "radius_km"),
        ("radius_km", json!("far"), "radius_km"),
        ("suspects", suspects(11), "suspects"),
        ("vehicles", vehicles(11), "vehicles"),
        (
            "suspects",
            json!([{ "clothing": "x".repeat(201) }]),
            "suspects[0].clothing",
        ),
        (
            "vehicles",
            json!([{}, { "plate": "x".repeat(201) }]),
            "vehicles[1].plate",
        ),
        ("occurred_at", json!("2999-01-01T00:00:00Z"), "occurred_at"),
        ("occurred_at", json!("yesterday"), "occurred_at"),
    ];
    for (field, value, named) in cases {
        let reply = api
            .post("/v1/alerts", &alert_with(field, value.clone()))
            .await;
        let detail = reply.problem(422, "invalid_input");
        assert!(
            detail.starts_with(named),
            "{field}={value}: detail `{detail}` should name {named}"
        );
    }
    let listed = api.get("/v1/alerts").await;
    assert_eq!(listed.body["alerts"], json!([]), "nothing bad was stored");
}

#[tokio::test]
async fn limits_are_inclusive_at_their_edges() {
    let (_server, api, _) = store_server().await;
    let edges = [
        alert_with("title", Value::String("é".repeat(120))),
        alert_with("description", Value::String("x".repeat(4_000))),
        alert_with("radius_km", json!(0.5)),
        alert_with("radius_km", json!(500)),
        alert_with(
            "suspects",
            Value::Array(vec![json!({ "shoes": "x".repeat(200) }); 10]),
        ),
        alert_with(
            "vehicles",
            Value::Array(vec![json!({ "plate": "ABC1234" }); 10]),
        ),
        alert_with("location", json!({ "lat": -90, "lon": 180 })),
    ];
    for alert in edges {
        api.post_alert(&alert).await;
    }
}

#[tokio::test]
async fn malformed_json_is_400_and_a_body_over_64_kib_is_413() {
    let (_server, api, _) = store_server().await;
    api.post_raw("/v1/alerts", "{\"kind\": \"casing\",")
        .await
        .problem(400, "malformed_json");
    api.post_raw("/v1/alerts", "not json")
        .await
        .problem(400, "malformed_json");
    // JSON has no NaN: a literal NaN is malformed.
    api.post_raw(
        "/v1/alerts",
        r#"{"kind":"casing","title":"x","location":{"lat":NaN,"lon":0}}"#,
    )
    .await
    .problem(400, "malformed_json");
    api.post_raw("/v1/alerts", "{} {}")
        .await
        .problem(400, "malformed_json");
    let padding = "x".repeat(70 * 1024);
    let huge = format!(r#"{{"kind":"casing","title":"x","description":"{padding}"}}"#);
    api.post_raw("/v1/alerts", huge)
        .await
        .problem(413, "too_large");
    api.post_raw("/v1/pledge", "x".repeat(70 * 1024))
        .await
        .problem(413, "too_large");
}

#[tokio::test]
async fn defaults_fill_what_the_author_leaves_out() {
    let (_server, api, store) = store_server().await;
    let defaults = [
        ("casing", 25.0),
        ("suspicious_vehicle", 15.0),
        ("burglary", 40.0),
        ("robbery", 50.0),
        ("distraction_theft", 50.0),
        ("grab_and_run", 50.0),
        ("smash_and_grab", 50.0),
        ("fraud", 50.0),
        ("other", 50.0),
    ];
    for (kind, radius) in defaults {
        let alert = api
            .post_alert(&json!({ "kind": kind, "title": "seen" }))
            .await;
        assert_eq!(alert["radius_km"], radius, "{kind}");
        assert_eq!(
            alert["location"],
            json!({ "lat": MANHATTAN.0, "lon": MANHATTAN.1 }),
            "the store's place"
        );
        assert_eq!(alert["status"], "published");
        assert_eq!(alert["store"]["id"], store.id);
        assert_eq!(alert["verified"], false);
        assert!(alert["occurred_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
    }
}

#[tokio::test]
async fn a_full_alert_round_trips_every_field() {
    let (_server, api, store) = store_server().await;
    // Three days ago, to the second: a fixed date would one day pass the
    // retention period and be refused.
    let three_days_ago = time::OffsetDateTime::now_utc() - time::Duration::days(3);
    let occurred_at = three_days_ago
        .replace_nanosecond(0)
        .expect("whole seconds")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let posted = api
        .post_alert(&json!({
            "kind": "smash_and_grab",
            "title": "Crew of three smashed the front case",
            "description": "Hammers, 40 seconds, left northbound.",
            "occurred_at": occurred_at,
            "location": { "lat": 40.75, "lon": -73.99 },
            "radius_km": 30,
            "suspects": [{ "sex": "male", "age": "30s", "height": "6 ft", "build": "heavy",
                           "hair": "short black", "clothing": "red hoodie, dark jeans",
                           "shoes": "white sneakers", "marks": "tattoo on left hand" }],
            "vehicles": [{ "make": "Honda", "model": "Civic", "color": "silver",
                           "plate": "ABC1234", "plate_region": "NY" }],
        }))
        .await;
    let id = id_of(&posted);
    let fetched = api.get(&format!("/v1/alerts/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, posted);
    assert_eq!(posted["occurred_at"], occurred_at.as_str());
    assert_eq!(posted["suspects"][0]["shoes"], "white sneakers");
    assert_eq!(posted["suspects"][0]["notes"], Value::Null);
    assert_eq!(posted["vehicles"][0]["plate"], "ABC1234");
    assert_eq!(
        posted["store"],
        json!({ "id": store.id, "name": "Main Street Jewelers" })
    );
    api.get("/v1/alerts/999999").await.problem(404, "not_found");
    api.get("/v1/alerts/abc").await.problem(400, "bad_request");
}

#[tokio::test]
async fn bad_pledges_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("accept_pledge", json!(false), "accept_pledge"),
        ("store_name", json!(""), "store_name"),
        ("store_name", Value::String("x".repeat(121)), "store_name"),
        ("contact_email", json!("not-an-email"), "contact_email"),
        ("radius_km", json!(0.1), "radius_km"),
        ("radius_km", json!(501), "radius_km"),
        ("location", json!({ "lat": 91, "lon": 0 }), "location.lat"),
    ];
    for (field, value, named) in cases {
        let mut body = pledge_body("Main Street Jewelers", MANHATTAN, 25.0);
        body[field] = value.clone();
        let detail = server
            .anonymous()
            .post("/v1/pledge", &body)
            .await
            .problem(422, "invalid_input");
        assert!(detail.starts_with(named), "{field}={value}: `{detail}`");
    }
    let mut missing = pledge_body("Main Street Jewelers", MANHATTAN, 25.0);
    missing
        .as_object_mut()
        .expect("object")
        .remove("accept_pledge");
    server
        .anonymous()
        .post("/v1/pledge", &missing)
        .await
        .problem(422, "invalid_input");
    let staff = server.staff_token("moderator");
    let stores = server.api(Some(&staff)).get("/v1/stores").await;
    assert_eq!(stores.body["stores"], json!([]), "no bad pledge was stored");
}

#[tokio::test]
async fn listing_parameters_are_checked() {
    let (_server, api, _) = store_server().await;
    for query in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "lat=40.7&lon=-74",
        "lat=91&lon=0&radius_km=5",
        "lat=40&lon=-74&radius_km=0",
        "kind=shoplifting",
        "before_id=x",
    ] {
        api.get(&format!("/v1/alerts?{query}"))
            .await
            .problem(422, "invalid_input");
    }
    assert_eq!(api.get("/v1/alerts?limit=500").await.status, 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_problem_documents() {
    let server = TestServer::start().await;
    server
        .anonymous()
        .get("/v1/nothing-here")
        .await
        .problem(404, "not_found");
    server
        .anonymous()
        .delete("/v1/alerts")
        .await
        .problem(405, "method_not_allowed");
    let health = server.anonymous().get("/healthz").await;
    assert_eq!(health.status, 200);
    assert!(server.readyz_becomes(200).await, "ready once it serves");
}

#[tokio::test]
async fn a_json_body_without_the_json_content_type_is_refused_with_415() {
    let (server, staff, _store) = TestServer::with_store().await;
    let pledge = pledge_body("Form Jewelers", MANHATTAN, 25.0).to_string();
    // What a cross-site HTML form can send, and no type at all.
    let form = "store_name=Forged&accept_pledge=true";
    for (content_type, body) in [
        (Some("application/x-www-form-urlencoded"), form.to_owned()),
        (Some("text/plain"), pledge.clone()),
        (Some("multipart/form-data; boundary=x"), pledge.clone()),
        (Some("application/jsonp"), pledge.clone()),
        (None, pledge.clone()),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|value| ("content-type", value))
            .into_iter()
            .collect();
        let detail = server
            .anonymous()
            .send_with_headers("POST", "/v1/pledge", &headers, body)
            .await
            .problem(415, "unsupported_media_type");
        assert!(detail.contains("Content-Type"), "{detail}");
    }
    let staff_api = server.api(Some(&staff));
    let pending = staff_api.get("/v1/stores?status=pending").await;
    assert_eq!(pending.body["stores"], json!([]), "nothing was stored");
    // JSON with parameters, in any case, is JSON.
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let mut body = pledge_body(content_type, MANHATTAN, 25.0);
        body["store_name"] = json!(format!("Typed {}", content_type.len()));
        let reply = server
            .anonymous()
            .send_with_headers(
                "POST",
                "/v1/pledge",
                &[("content-type", content_type)],
                body.to_string(),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    // Where the body is optional, an empty one needs no type; a body does.
    let (id, _) = server.pledge("Quiet Jewelers", NEWARK, 25.0).await;
    staff_api
        .send_with_headers(
            "POST",
            &format!("/v1/stores/{id}/reject"),
            &[("content-type", "text/plain")],
            r#"{"reason": "forged"}"#,
        )
        .await
        .problem(415, "unsupported_media_type");
    let approved = staff_api
        .send_with_headers("POST", &format!("/v1/stores/{id}/approve"), &[], "")
        .await;
    assert_eq!(approved.status, 200, "{approved:?}");
}

#[tokio::test]
async fn a_client_request_id_is_logged_only_when_short_and_safe() {
    let server = TestServer::start().await;
    let api = server.anonymous();
    let echoed = |reply: &Reply| {
        reply
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("an X-Request-Id answered")
            .to_owned()
    };
    let safe = "shop-till.42_a";
    let reply = api
        .send_with_headers("GET", "/healthz", &[("x-request-id", safe)], "")
        .await;
    assert_eq!(echoed(&reply), safe);
    // A forged log line, a flood, and two ids at once are each replaced.
    let forged = "x\" status=200 caller=\"store:1";
    let long = "a".repeat(65);
    let mut made = Vec::new();
    for given in [forged, long.as_str(), "a b", "<script>"] {
        let reply = api
            .send_with_headers("GET", "/healthz", &[("x-request-id", given)], "")
            .await;
        let id = echoed(&reply);
        assert_ne!(id, given);
        assert!(
            id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{id}"
        );
        made.push(id);
    }
    let twice = reqwest::Client::new()
        .get(format!("{}/healthz", server.url))
        .header("x-request-id", "first")
        .header("x-request-id", "second")
        .send()
        .await
        .expect("answer");
    let ids: Vec<_> = twice.headers().get_all("x-request-id").iter().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(ids[0] != "first" && ids[0] != "second");
    // The log has the safe id and the made ones, never the forged.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = server.logs();
        if made.iter().all(|id| logs.contains(id.as_str())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logs.contains(safe));
    for id in &made {
        assert!(logs.contains(id.as_str()), "{id} not logged");
    }
    assert!(
        !logs.contains("status=200 caller="),
        "a forged line:\n{logs}"
    );
    assert!(!logs.contains(&long));
}
