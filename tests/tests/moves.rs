//! A store's place is vetted: a move waits for a moderator, and until then
//! the store sees nothing of where it asked to be.

use std::time::Duration;

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::json;

/// Long enough for a frame that would come to have come.
const QUIET: Duration = Duration::from_millis(700);

#[tokio::test]
async fn a_far_store_that_moves_next_to_a_crime_receives_nothing_from_there_until_approved() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let author = server.member(&staff, "Crime Scene", MANHATTAN, 1.0).await;
    let far = server.member(&staff, "Far Away", BOSTON, 1.0).await;
    let before = server
        .api(Some(&author.token))
        .post_alert(&casing_at("before the move", MANHATTAN, 1.0))
        .await;

    // The far store puts its place next to the crime.
    let asked = server
        .api(Some(&far.token))
        .patch(
            "/v1/me",
            &json!({ "location": { "lat": MANHATTAN.0, "lon": MANHATTAN.1 } }),
        )
        .await;
    assert_eq!(asked.status, 202, "{asked:?}");
    assert_eq!(asked.body["location"]["lat"], BOSTON.0);
    assert_eq!(asked.body["pending_move"]["location"]["lat"], MANHATTAN.0);
    assert!(asked.body["pending_move"]["requested_at"].is_string());
    let me = server.api(Some(&far.token)).get("/v1/me").await;
    assert_eq!(me.body["store"]["location"]["lat"], BOSTON.0, "{me:?}");

    // It replays from the start and listens: nothing from Manhattan.
    let mut replay = server.stream(&far.token, Some(0)).await;
    let hello = replay.next().await;
    assert_eq!(hello["location"]["lat"], BOSTON.0, "{hello}");
    let during = server
        .api(Some(&author.token))
        .post_alert(&casing_at("while the move waits", MANHATTAN, 1.0))
        .await;
    replay.assert_quiet(QUIET).await;
    let mut again = server.stream(&far.token, Some(0)).await;
    hello_head(&again.next().await);
    again.assert_quiet(QUIET).await;

    // Staff see the move waiting, and approve it.
    let waiting = server
        .api(Some(&staff))
        .get("/v1/stores?pending_move=true")
        .await;
    let stores = waiting.body["stores"].as_array().expect("stores");
    assert_eq!(stores.len(), 1, "{waiting:?}");
    assert_eq!(stores[0]["id"], far.id);
    assert_eq!(stores[0]["pending_move"]["location"]["lon"], MANHATTAN.1);
    let approved = server
        .api(Some(&staff))
        .post(&format!("/v1/stores/{}/approve-move", far.id), &json!({}))
        .await;
    assert_eq!(approved.status, 200, "{approved:?}");
    assert_eq!(approved.body["location"]["lat"], MANHATTAN.0);
    assert!(approved.body["pending_move"].is_null(), "{approved:?}");

    // From now on it receives Manhattan, live and in replay.
    let after = server
        .api(Some(&author.token))
        .post_alert(&casing_at("after approval", MANHATTAN, 1.0))
        .await;
    assert_eq!(replay.next().await["alert"]["id"], after["id"]);
    let mut moved = server.stream(&far.token, Some(0)).await;
    assert_eq!(moved.next().await["location"]["lat"], MANHATTAN.0);
    let replayed: Vec<i64> = moved.take(3).await.iter().map(Received::alert_id).collect();
    assert_eq!(replayed, [id_of(&before), id_of(&during), id_of(&after)]);
    let me = server.api(Some(&far.token)).get("/v1/me").await;
    assert_eq!(me.body["store"]["location"]["lat"], MANHATTAN.0);
    assert!(me.body["store"]["pending_move"].is_null());

    let audit = server.api(Some(&staff)).get("/v1/audit").await;
    let entry = audit.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|entry| entry["action"] == "store.move")
        .cloned()
        .expect("the move is audited");
    assert_eq!(entry["object"], format!("store:{}", far.id));
    assert!(
        entry["reason"]
            .as_str()
            .is_some_and(|r| r.contains("approved")),
        "{entry}"
    );
    println!(
        "vetted move ({}): while the move waited, 0 frames from Manhattan live and in replay from since=0; after approval 1 live and 3 replayed",
        if on_postgres() { "postgres" } else { "sqlite" }
    );
}

#[tokio::test]
async fn a_second_request_replaces_the_first_and_a_rejected_move_leaves_the_store_where_it_was() {
    let (server, staff, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    let first = api
        .patch(
            "/v1/me",
            &json!({ "location": { "lat": NEWARK.0, "lon": NEWARK.1 } }),
        )
        .await;
    assert_eq!(first.status, 202, "{first:?}");
    // The radius applies at once; the place waits.
    let second = api
        .patch(
            "/v1/me",
            &json!({ "radius_km": 60, "location": { "lat": BROOKLYN.0, "lon": BROOKLYN.1 } }),
        )
        .await;
    assert_eq!(second.status, 202, "{second:?}");
    assert_eq!(second.body["radius_km"], 60.0);
    assert_eq!(second.body["location"]["lat"], MANHATTAN.0);
    assert_eq!(second.body["pending_move"]["location"]["lat"], BROOKLYN.0);
    // A radius alone is done at once (200); the move still waits.
    let radius = api.patch("/v1/me", &json!({ "radius_km": 40 })).await;
    assert_eq!(radius.status, 200, "{radius:?}");
    assert_eq!(radius.body["radius_km"], 40.0);
    assert_eq!(radius.body["pending_move"]["location"]["lat"], BROOKLYN.0);
    let hello = server.stream(&store.token, None).await.next().await;
    assert_eq!(hello["radius_km"], 40.0, "{hello}");
    assert_eq!(hello["location"]["lat"], MANHATTAN.0, "{hello}");

    let as_staff = server.api(Some(&staff));
    let shown = as_staff.get(&format!("/v1/stores/{}", store.id)).await;
    assert_eq!(shown.body["pending_move"]["location"]["lat"], BROOKLYN.0);
    let path = format!("/v1/stores/{}/reject-move", store.id);
    let detail = as_staff
        .post(&path, &json!({}))
        .await
        .problem(422, "invalid_input");
    assert!(detail.contains("reason"), "{detail}");
    let rejected = as_staff
        .post(
            &path,
            &json!({ "reason": "that is a competitor's address" }),
        )
        .await;
    assert_eq!(rejected.status, 200, "{rejected:?}");
    assert_eq!(rejected.body["location"]["lat"], MANHATTAN.0);
    assert!(rejected.body["pending_move"].is_null());
    for action in ["approve-move", "reject-move"] {
        let detail = as_staff
            .post(
                &format!("/v1/stores/{}/{action}", store.id),
                &json!({ "reason": "again" }),
            )
            .await
            .problem(409, "no_pending_move");
        assert!(detail.contains(&store.id.to_string()), "{detail}");
    }
    let audit = as_staff.get("/v1/audit").await;
    let entry = &audit.body["entries"][0];
    assert_eq!(entry["action"], "store.move");
    assert!(
        entry["reason"]
            .as_str()
            .is_some_and(|r| r.contains("rejected") && r.contains("competitor")),
        "{entry}"
    );
    let me = api.get("/v1/me").await;
    assert_eq!(me.body["store"]["location"]["lat"], MANHATTAN.0);
    assert!(me.body["store"]["pending_move"].is_null());
    let listed = as_staff.get("/v1/stores?pending_move=true").await;
    assert_eq!(listed.body["stores"], json!([]));
}

#[tokio::test]
async fn asking_for_the_current_place_withdraws_a_pending_move() {
    let (server, _, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    let asked = api
        .patch(
            "/v1/me",
            &json!({ "location": { "lat": NEWARK.0, "lon": NEWARK.1 } }),
        )
        .await;
    assert_eq!(asked.status, 202);
    let withdrawn = api
        .patch(
            "/v1/me",
            &json!({ "location": { "lat": MANHATTAN.0, "lon": MANHATTAN.1 } }),
        )
        .await;
    assert_eq!(withdrawn.status, 200, "{withdrawn:?}");
    assert!(withdrawn.body["pending_move"].is_null());
}

#[tokio::test]
async fn only_staff_decide_moves_and_bad_requests_name_the_field() {
    let (server, staff, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    api.patch(
        "/v1/me",
        &json!({ "location": { "lat": NEWARK.0, "lon": NEWARK.1 } }),
    )
    .await;
    for action in ["approve-move", "reject-move"] {
        api.post(
            &format!("/v1/stores/{}/{action}", store.id),
            &json!({ "reason": "self-service" }),
        )
        .await
        .problem(403, "forbidden");
    }
    let as_staff = server.api(Some(&staff));
    as_staff
        .post("/v1/stores/9999/approve-move", &json!({}))
        .await
        .problem(404, "not_found");
    as_staff
        .get("/v1/stores?pending_move=maybe")
        .await
        .problem(422, "invalid_input");
    let detail = api
        .patch("/v1/me", &json!({ "location": { "lat": 91, "lon": 0 } }))
        .await
        .problem(422, "invalid_input");
    assert!(detail.contains("location.lat"), "{detail}");
    // Nothing moved for the refusals.
    let me = api.get("/v1/me").await;
    assert_eq!(
        me.body["store"]["pending_move"]["location"]["lat"],
        NEWARK.0
    );
    assert_eq!(me.body["store"]["location"]["lat"], MANHATTAN.0);
}

#[tokio::test]
async fn a_move_shows_as_waiting_and_staff_decide_it_from_the_cli() {
    let (server, staff, store) = TestServer::with_store().await;
    let staff_home = server.logged_in(&staff, "moderator").await;
    let store_home = server.logged_in(&store.token, "Main Street Jewelers").await;
    let asked = server
        .api(Some(&store.token))
        .patch(
            "/v1/me",
            &json!({ "location": { "lat": NEWARK.0, "lon": NEWARK.1 } }),
        )
        .await;
    assert_eq!(asked.status, 202);
    let whoami = server
        .run_cli(store_home.path(), &["whoami"])
        .await
        .expect_ok("waiting for the association");
    assert!(whoami.stdout.contains("40.73570, -74.17240"), "{whoami:?}");

    let id = store.id.to_string();
    let waiting = server
        .run_cli(staff_home.path(), &["stores", "--pending-move"])
        .await
        .expect_ok("MOVE TO");
    assert!(
        waiting.stdout.contains("40.73570, -74.17240"),
        "{waiting:?}"
    );
    server
        .run_cli(staff_home.path(), &["stores", "show", &id])
        .await
        .expect_ok(&format!("approve-move {id}"));
    server
        .run_cli(staff_home.path(), &["stores", "reject-move", &id])
        .await
        .expect_error("--reason");
    server
        .run_cli(staff_home.path(), &["stores", "approve-move", &id])
        .await
        .expect_ok("moved");
    server
        .run_cli(staff_home.path(), &["stores", "--pending-move"])
        .await
        .expect_ok("No stores.");
    server
        .run_cli(staff_home.path(), &["stores", "approve-move", &id])
        .await
        .expect_error("asked for no move");
    let whoami = server
        .run_cli(store_home.path(), &["whoami"])
        .await
        .expect_ok("40.73570, -74.17240");
    assert!(!whoami.stdout.contains("Move:"), "{whoami:?}");
}
