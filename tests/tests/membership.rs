//! Pledge, claim, vetting, roles, tokens and suspension, end to end.

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::json;

#[tokio::test]
async fn a_pledge_is_claimed_once_approved_and_only_once() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let (id, secret) = server.pledge("Main Street Jewelers", MANHATTAN, 30.0).await;
    let claim = json!({ "claim_secret": secret });
    let path = format!("/v1/pledge/{id}/claim");

    let pending = server.anonymous().post(&path, &claim).await;
    assert_eq!(pending.status, 202, "{pending:?}");
    assert_eq!(pending.body["status"], "pending");
    assert!(pending.body.get("token").is_none());

    let approved = server
        .api(Some(&staff))
        .post(&format!("/v1/stores/{id}/approve"), &json!({}))
        .await;
    assert_eq!(approved.status, 200, "{approved:?}");
    assert_eq!(approved.body["status"], "approved");
    assert_eq!(approved.body["contact_email"], "ada@example.com");

    let claimed = server.anonymous().post(&path, &claim).await;
    assert_eq!(claimed.status, 200, "{claimed:?}");
    assert_eq!(claimed.body["status"], "approved");
    let token = claimed.str("token").to_owned();
    assert!(token.starts_with("p4p_"));

    server
        .anonymous()
        .post(&path, &claim)
        .await
        .problem(409, "already_claimed");
    let wrong = server
        .anonymous()
        .post(&path, &json!({ "claim_secret": "p4pclaim_nope" }))
        .await;
    let wrong_secret = wrong.problem(404, "not_found");
    let unknown_store = server
        .anonymous()
        .post("/v1/pledge/9999/claim", &claim)
        .await
        .problem(404, "not_found");
    assert_eq!(
        wrong_secret.replace(&id.to_string(), "N"),
        unknown_store.replace("9999", "N"),
        "a wrong secret and an unknown store look alike"
    );

    let me = server.api(Some(&token)).get("/v1/me").await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["role"], "store");
    assert_eq!(me.body["store"]["id"], id);
    assert_eq!(me.body["store"]["name"], "Main Street Jewelers");
    assert_eq!(me.body["store"]["radius_km"], 30.0);
    assert_eq!(me.body["store"]["status"], "approved");
}

#[tokio::test]
async fn a_rejected_pledge_cannot_claim_and_is_told_why() {
    let server = TestServer::start().await;
    let staff = server.staff_token("admin");
    let (id, secret) = server.pledge("Shady Pawn", BOSTON, 25.0).await;
    let staff_api = server.api(Some(&staff));
    staff_api
        .post(&format!("/v1/stores/{id}/reject"), &json!({}))
        .await
        .problem(422, "invalid_input");
    let rejected = staff_api
        .post(
            &format!("/v1/stores/{id}/reject"),
            &json!({ "reason": "not a jeweler" }),
        )
        .await;
    assert_eq!(rejected.status, 200, "{rejected:?}");
    assert_eq!(rejected.body["status"], "rejected");
    assert_eq!(rejected.body["status_reason"], "not a jeweler");
    let detail = server
        .anonymous()
        .post(
            &format!("/v1/pledge/{id}/claim"),
            &json!({ "claim_secret": secret }),
        )
        .await
        .problem(403, "pledge_rejected");
    assert!(detail.contains("not a jeweler"), "{detail}");
    let again = staff_api
        .post(&format!("/v1/stores/{id}/approve"), &json!({}))
        .await;
    let detail = again.problem(409, "invalid_transition");
    assert!(
        detail.contains("rejected"),
        "names the current status: {detail}"
    );
}

#[tokio::test]
async fn staff_list_stores_by_status_with_contact_details() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let member = server.member(&staff, "Approved Co", MANHATTAN, 25.0).await;
    let (pending_id, _) = server.pledge("Waiting Co", NEWARK, 25.0).await;
    let api = server.api(Some(&staff));

    let pending = api.get("/v1/stores?status=pending").await;
    assert_eq!(pending.status, 200);
    let stores = pending.body["stores"].as_array().expect("stores");
    assert_eq!(stores.len(), 1);
    assert_eq!(stores[0]["id"], pending_id);
    assert_eq!(stores[0]["contact_name"], "Ada Diamond");
    assert_eq!(stores[0]["phone"], "+1 555 0100");

    let all = api.get("/v1/stores").await;
    assert_eq!(all.body["stores"].as_array().expect("stores").len(), 2);
    let approved = api.get("/v1/stores?status=approved").await;
    assert_eq!(approved.body["stores"][0]["id"], member.id);
    api.get("/v1/stores?status=sleeping")
        .await
        .problem(422, "invalid_input");
}

#[tokio::test]
async fn roles_decide_who_may_do_what() {
    let (server, staff, store) = TestServer::with_store().await;
    let (pending_id, _) = server.pledge("Waiting Co", NEWARK, 25.0).await;
    let as_store = server.api(Some(&store.token));
    let as_staff = server.api(Some(&staff));
    let nobody = server.anonymous();
    let forged = server.api(Some("p4p_not_a_real_token"));

    // No token, or an unknown one: 401 everywhere that needs one.
    for path in [
        "/v1/me",
        "/v1/stores",
        "/v1/alerts",
        "/v1/alerts/1",
        "/v1/me/tokens",
    ] {
        nobody.get(path).await.problem(401, "unauthorized");
        forged.get(path).await.problem(401, "unauthorized");
    }
    nobody
        .post("/v1/alerts", &casing_at("x", MANHATTAN, 5.0))
        .await
        .problem(401, "unauthorized");
    assert_eq!(
        server.try_stream("p4p_not_a_real_token", None).await.err(),
        Some(401)
    );

    // A store cannot vet stores.
    as_store.get("/v1/stores").await.problem(403, "forbidden");
    for action in ["approve", "reject", "suspend", "reinstate"] {
        as_store
            .post(
                &format!("/v1/stores/{pending_id}/{action}"),
                &json!({ "reason": "x" }),
            )
            .await
            .problem(403, "forbidden");
    }
    // Staff do not post alerts or change a store's area.
    as_staff
        .post("/v1/alerts", &casing_at("x", MANHATTAN, 5.0))
        .await
        .problem(403, "forbidden");
    as_staff
        .patch("/v1/me", &json!({ "radius_km": 10 }))
        .await
        .problem(403, "forbidden");
    // A moderator is not an admin: no staff tokens.
    as_staff
        .post("/v1/me/tokens", &json!({ "label": "laptop" }))
        .await
        .problem(403, "forbidden");
    let me = as_staff.get("/v1/me").await;
    assert_eq!(me.body["role"], "moderator");
    assert!(me.body.get("store").is_none());
}

#[tokio::test]
async fn suspension_refuses_the_store_at_once_and_closes_its_streams_with_4001() {
    let (server, staff, store) = TestServer::with_store().await;
    let bystander = server.member(&staff, "Next Door", BROOKLYN, 25.0).await;
    let mut suspended_stream = server.stream(&store.token, None).await;
    hello_head(&suspended_stream.next().await);
    let mut bystander_stream = server.stream(&bystander.token, None).await;
    hello_head(&bystander_stream.next().await);

    let api = server.api(Some(&staff));
    api.post(&format!("/v1/stores/{}/suspend", store.id), &json!({}))
        .await
        .problem(422, "invalid_input");
    let suspended = api
        .post(
            &format!("/v1/stores/{}/suspend", store.id),
            &json!({ "reason": "fake alerts" }),
        )
        .await;
    assert_eq!(suspended.status, 200, "{suspended:?}");
    assert_eq!(suspended.body["status"], "suspended");
    assert_eq!(suspended_stream.closed().await, Some(4001));

    let as_store = server.api(Some(&store.token));
    as_store
        .post("/v1/alerts", &casing_at("x", MANHATTAN, 5.0))
        .await
        .problem(403, "store_suspended");
    as_store
        .get("/v1/alerts")
        .await
        .problem(403, "store_suspended");
    assert_eq!(server.try_stream(&store.token, None).await.err(), Some(403));
    let me = as_store.get("/v1/me").await;
    assert_eq!(
        me.status, 200,
        "a suspended store can still see where it stands"
    );
    assert_eq!(me.body["store"]["status"], "suspended");

    // Others are untouched.
    let posted = server
        .api(Some(&bystander.token))
        .post_alert(&casing_at("still here", BROOKLYN, 5.0))
        .await;
    let frame = bystander_stream.next().await;
    assert_eq!(frame["alert"]["id"], posted["id"]);

    let reinstated = api
        .post(&format!("/v1/stores/{}/reinstate", store.id), &json!({}))
        .await;
    assert_eq!(reinstated.body["status"], "approved");
    // Reinstatement revoked the old token; the store claims a fresh one.
    as_store
        .get("/v1/alerts")
        .await
        .problem(401, "unauthorized");
    let claimed = server
        .anonymous()
        .post(
            &format!("/v1/pledge/{}/claim", store.id),
            &json!({ "claim_secret": reinstated.str("claim_secret") }),
        )
        .await;
    assert_eq!(claimed.status, 200, "{claimed:?}");
    let fresh = server.api(Some(claimed.str("token")));
    assert_eq!(fresh.get("/v1/alerts").await.status, 200);
}

#[tokio::test]
async fn a_store_makes_and_revokes_device_tokens_and_revocation_closes_their_streams() {
    let (server, staff, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    api.post("/v1/me/tokens", &json!({ "label": " " }))
        .await
        .problem(422, "invalid_input");
    let created = api
        .post("/v1/me/tokens", &json!({ "label": "back office PC" }))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let device_token = created.str("token").to_owned();
    let device_id = created.i64("id");
    assert!(device_token.starts_with("p4p_"));

    let listed = api.get("/v1/me/tokens").await;
    let labels = listed.texts("tokens", "label");
    assert!(labels.contains(&"back office PC"), "{labels:?}");
    assert!(
        listed.body.to_string().find("p4p_").is_none(),
        "tokens are never listed"
    );

    let mut stream = server.stream(&device_token, None).await;
    hello_head(&stream.next().await);
    let revoked = api.delete(&format!("/v1/me/tokens/{device_id}")).await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    assert!(revoked.body["revoked_at"].is_string());
    assert_eq!(stream.closed().await, Some(4001));
    server
        .api(Some(&device_token))
        .get("/v1/me")
        .await
        .problem(401, "unauthorized");
    assert_eq!(
        api.get("/v1/me").await.status,
        200,
        "the other token still works"
    );

    // Another store's token is not ours to revoke.
    let other = server.member(&staff, "Other", BOSTON, 25.0).await;
    let other_id = server.api(Some(&other.token)).own_token_id().await;
    api.delete(&format!("/v1/me/tokens/{other_id}"))
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn an_admin_makes_staff_tokens() {
    let server = TestServer::start().await;
    let admin = server.staff_token("admin");
    let created = server
        .api(Some(&admin))
        .post("/v1/me/tokens", &json!({ "label": "Bob", "role": "admin" }))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let me = server.api(Some(created.str("token"))).get("/v1/me").await;
    assert_eq!(me.body["role"], "admin");
    assert_eq!(me.body["token"]["label"], "Bob");
}

#[tokio::test]
async fn a_store_moves_its_area_of_interest() {
    let (server, _, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    let moved = api.patch("/v1/me", &json!({ "radius_km": 80 })).await;
    assert_eq!(moved.status, 200, "{moved:?}");
    assert_eq!(moved.body["radius_km"], 80.0);
    assert_eq!(moved.body["location"]["lat"], MANHATTAN.0);
    api.patch("/v1/me", &json!({ "radius_km": 501 }))
        .await
        .problem(422, "invalid_input");
    api.patch("/v1/me", &json!({}))
        .await
        .problem(422, "invalid_input");
    let detail = api
        .patch("/v1/me", &json!({ "location": { "lat": 0, "lon": 181 } }))
        .await
        .problem(422, "invalid_input");
    assert!(detail.contains("location.lon"), "{detail}");
}
