//! `GET /v1/alerts`: near a point, by kind, paged, newest first; and what a
//! store may see.

use std::collections::HashSet;

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<i64> {
    page["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn alerts_near_a_point_are_exactly_those_within_the_radius() {
    let (server, _, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    let manhattan = api
        .post_alert(&casing_at("manhattan", MANHATTAN, 5.0))
        .await;
    let brooklyn = api.post_alert(&casing_at("brooklyn", BROOKLYN, 5.0)).await;
    let newark = api.post_alert(&casing_at("newark", NEWARK, 5.0)).await;
    api.post_alert(&casing_at("philadelphia", PHILADELPHIA, 5.0))
        .await;
    api.post_alert(&casing_at("boston", BOSTON, 5.0)).await;

    // Brooklyn is ~8 km from Manhattan, Newark ~14 km.
    let near = |km: f64| {
        format!(
            "/v1/alerts?lat={}&lon={}&radius_km={km}",
            MANHATTAN.0, MANHATTAN.1
        )
    };
    let within_10 = api.get(&near(10.0)).await;
    assert_eq!(within_10.status, 200, "{within_10:?}");
    assert_eq!(
        ids(&within_10.body),
        vec![id_of(&brooklyn), id_of(&manhattan)]
    );
    let within_20 = api.get(&near(20.0)).await;
    let expected: Vec<i64> = [&newark, &brooklyn, &manhattan]
        .into_iter()
        .map(id_of)
        .collect();
    assert_eq!(ids(&within_20.body), expected, "newest first");
    assert_eq!(ids(&api.get(&near(500.0)).await.body).len(), 5);
    assert_eq!(within_20.body["next_before_id"], Value::Null);
}

#[tokio::test]
async fn paging_with_before_id_walks_every_alert_once() {
    let (server, _, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    for i in 0..7 {
        let kind = if i % 2 == 0 { "casing" } else { "fraud" };
        api.post_alert(&json!({ "kind": kind, "title": format!("alert {i}") }))
            .await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/alerts?limit=3".to_owned();
    loop {
        let page = api.get(&path).await;
        assert_eq!(page.status, 200, "{page:?}");
        seen.extend(ids(&page.body));
        match page.body["next_before_id"].as_i64() {
            Some(before) => path = format!("/v1/alerts?limit=3&before_id={before}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![7, 6, 5, 4, 3, 2, 1]);
    let fraud = api.get("/v1/alerts?kind=fraud").await;
    assert_eq!(ids(&fraud.body), vec![6, 4, 2]);
    let near_fraud = api
        .get(&format!(
            "/v1/alerts?kind=fraud&limit=2&lat={}&lon={}&radius_km=1",
            MANHATTAN.0, MANHATTAN.1
        ))
        .await;
    assert_eq!(ids(&near_fraud.body), vec![6, 4]);
    assert_eq!(near_fraud.body["next_before_id"], 4);
}

#[tokio::test]
async fn staff_see_every_alert_and_stores_see_published_ones() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let author = server.member(&staff, "Author", MANHATTAN, 25.0).await;
    let other = server.member(&staff, "Other", BOSTON, 25.0).await;
    let posted = server
        .api(Some(&author.token))
        .post_alert(&casing_at("seen", MANHATTAN, 5.0))
        .await;
    let id = id_of(&posted);
    for token in [&staff, &author.token, &other.token] {
        let api = server.api(Some(token));
        assert_eq!(ids(&api.get("/v1/alerts").await.body), vec![id]);
        assert_eq!(api.get(&format!("/v1/alerts/{id}")).await.status, 200);
    }
    let by_status = server
        .api(Some(&staff))
        .get("/v1/alerts?status=published")
        .await;
    assert_eq!(ids(&by_status.body), vec![id]);
    server
        .api(Some(&other.token))
        .get("/v1/alerts?status=published")
        .await
        .problem(403, "forbidden");
}

#[tokio::test]
async fn no_token_or_claim_secret_ever_reaches_the_log() {
    let server = TestServer::start().await;
    let admin = server.staff_token("admin");
    let (id, secret) = server.pledge("Main Street Jewelers", MANHATTAN, 25.0).await;
    let staff_api = server.api(Some(&admin));
    staff_api
        .post(&format!("/v1/stores/{id}/approve"), &json!({}))
        .await;
    let claimed = server
        .anonymous()
        .post(
            &format!("/v1/pledge/{id}/claim"),
            &json!({ "claim_secret": secret }),
        )
        .await;
    let token = claimed.str("token").to_owned();
    let device = server
        .api(Some(&token))
        .post("/v1/me/tokens", &json!({ "label": "tablet" }))
        .await
        .str("token")
        .to_owned();
    server
        .api(Some(&device))
        .post_alert(&casing_at("x", MANHATTAN, 5.0))
        .await;
    let mut stream = server
        .stream_with_query_token(&device)
        .await
        .expect("stream");
    stream.next().await;
    server
        .api(Some("p4p_guessed_token_value"))
        .get("/v1/me")
        .await;
    let logs = server.logs();
    assert!(logs.contains("request"), "the server logs requests");
    assert!(logs.contains("stream connected"), "and streams");
    for secret in [
        &admin,
        &secret,
        &token,
        &device,
        &"p4p_guessed_token_value".to_owned(),
    ] {
        assert!(!logs.contains(secret.as_str()), "a secret reached the log");
    }
    let unique: HashSet<&String> = [&admin, &token, &device].into_iter().collect();
    assert_eq!(unique.len(), 3);
}
