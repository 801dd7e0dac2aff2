//! Moderation and trust: the alert lifecycle, who may do what, probation,
//! pre-moderation, flags, moves, replay after moderation, the audit trail
//! and retention.

use std::time::Duration;

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::{json, Value};

async fn post(server: &TestServer, member: &Member, title: &str, at: (f64, f64), km: f64) -> i64 {
    id_of(
        &server
            .api(Some(&member.token))
            .post_alert(&casing_at(title, at, km))
            .await,
    )
}

#[tokio::test]
async fn every_transition_and_every_illegal_one() {
    let server = TestServer::start_with(&["--moderation", "pre"]).await;
    let staff = server.staff_token("moderator");
    let store = server
        .member(&staff, "Main Street Jewelers", MANHATTAN, 25.0)
        .await;
    let mod_api = server.api(Some(&staff));
    let action = |id: i64, what: &str| format!("/v1/alerts/{id}/{what}");
    let reason = json!({ "reason": "checked" });

    // pending -> published -> (verified) -> retracted
    let first = post(&server, &store, "first", MANHATTAN, 5.0).await;
    for illegal in ["retract", "verify"] {
        let detail = mod_api
            .post(&action(first, illegal), &reason)
            .await
            .problem(409, "invalid_transition");
        assert!(
            detail.contains("pending"),
            "names the current status: {detail}"
        );
    }
    let approved = mod_api.post(&action(first, "approve"), &json!({})).await;
    assert_eq!(approved.status, 200, "{approved:?}");
    assert_eq!(approved.body["status"], "published");
    for illegal in ["approve", "reject"] {
        let detail = mod_api
            .post(&action(first, illegal), &reason)
            .await
            .problem(409, "invalid_transition");
        assert!(detail.contains("published"), "{detail}");
    }
    let verified = mod_api.post(&action(first, "verify"), &json!({})).await;
    assert_eq!(verified.body["verified"], true);
    assert_eq!(verified.body["status"], "published");
    mod_api
        .post(&action(first, "retract"), &json!({}))
        .await
        .problem(422, "invalid_input");
    let retracted = mod_api
        .post(&action(first, "retract"), &json!({ "reason": "duplicate" }))
        .await;
    assert_eq!(retracted.body["status"], "retracted");
    for illegal in ["approve", "reject", "verify", "retract"] {
        let detail = mod_api
            .post(&action(first, illegal), &reason)
            .await
            .problem(409, "invalid_transition");
        assert!(detail.contains("retracted"), "{detail}");
    }
    mod_api
        .patch(&format!("/v1/alerts/{first}"), &json!({ "title": "again" }))
        .await
        .problem(409, "invalid_transition");

    // pending -> rejected, and nothing after.
    let second = post(&server, &store, "second", MANHATTAN, 5.0).await;
    mod_api
        .post(&action(second, "reject"), &json!({}))
        .await
        .problem(422, "invalid_input");
    let rejected = mod_api
        .post(
            &action(second, "reject"),
            &json!({ "reason": "not a crime" }),
        )
        .await;
    assert_eq!(rejected.body["status"], "rejected");
    for illegal in ["approve", "reject", "verify", "retract"] {
        let detail = mod_api
            .post(&action(second, illegal), &reason)
            .await
            .problem(409, "invalid_transition");
        assert!(detail.contains("rejected"), "{detail}");
    }
    mod_api
        .post(&action(999, "approve"), &json!({}))
        .await
        .problem(404, "not_found");
}

/// Who may do what, for every endpoint of moderation: the author, another
/// store, a moderator, and nobody.
#[tokio::test]
async fn who_may_do_what_on_alerts() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let author = server.member(&staff, "Author", MANHATTAN, 25.0).await;
    let other = server.member(&staff, "Other", BROOKLYN, 25.0).await;

    #[derive(Clone, Copy, Debug)]
    enum Who {
        Author,
        OtherStore,
        Moderator,
        Nobody,
    }
    // (method, path after /v1/alerts/{id}, body, who, expected status)
    let reason = json!({ "reason": "because" });
    let edit = json!({ "title": "edited" });
    let cases: Vec<(&str, &str, Value, Who, u16)> = vec![
        ("PATCH", "", edit.clone(), Who::Author, 200),
        ("PATCH", "", edit.clone(), Who::OtherStore, 403),
        ("PATCH", "", edit.clone(), Who::Moderator, 200),
        ("PATCH", "", edit.clone(), Who::Nobody, 401),
        ("POST", "/flags", reason.clone(), Who::Author, 403),
        ("POST", "/flags", reason.clone(), Who::OtherStore, 201),
        ("POST", "/flags", reason.clone(), Who::Moderator, 403),
        ("POST", "/flags", reason.clone(), Who::Nobody, 401),
        ("POST", "/verify", json!({}), Who::Author, 403),
        ("POST", "/verify", json!({}), Who::OtherStore, 403),
        ("POST", "/verify", json!({}), Who::Moderator, 200),
        ("POST", "/verify", json!({}), Who::Nobody, 401),
        ("POST", "/retract", reason.clone(), Who::OtherStore, 403),
        ("POST", "/retract", reason.clone(), Who::Nobody, 401),
        ("POST", "/retract", reason.clone(), Who::Author, 200),
        ("POST", "/approve", json!({}), Who::Author, 403),
        ("POST", "/approve", json!({}), Who::OtherStore, 403),
        ("POST", "/reject", reason.clone(), Who::Author, 403),
        ("POST", "/reject", reason.clone(), Who::OtherStore, 403),
    ];
    let id = post(&server, &author, "casing", MANHATTAN, 25.0).await;
    for (method, suffix, body, who, expected) in cases {
        let token = match who {
            Who::Author => Some(author.token.as_str()),
            Who::OtherStore => Some(other.token.as_str()),
            Who::Moderator => Some(staff.as_str()),
            Who::Nobody => None,
        };
        let api = server.api(token);
        let path = format!("/v1/alerts/{id}{suffix}");
        let reply = match method {
            "PATCH" => api.patch(&path, &body).await,
            _ => api.post(&path, &body).await,
        };
        assert_eq!(
            reply.status, expected,
            "{method} {suffix} as {who:?}: {reply:?}"
        );
    }
    // A moderator retracts too; staff-only reads are staff-only.
    let again = post(&server, &author, "again", MANHATTAN, 25.0).await;
    let retracted = server
        .api(Some(&staff))
        .post(
            &format!("/v1/alerts/{again}/retract"),
            &json!({ "reason": "wrong place" }),
        )
        .await;
    assert_eq!(retracted.status, 200, "{retracted:?}");
    for path in ["/v1/moderation/queue", "/v1/audit"] {
        server
            .api(Some(&author.token))
            .get(path)
            .await
            .problem(403, "forbidden");
        server
            .anonymous()
            .get(path)
            .await
            .problem(401, "unauthorized");
        assert_eq!(server.api(Some(&staff)).get(path).await.status, 200);
    }
    // A retracted alert is gone for other stores, not for its author.
    server
        .api(Some(&other.token))
        .get(&format!("/v1/alerts/{again}"))
        .await
        .problem(404, "not_found");
    assert_eq!(
        server
            .api(Some(&author.token))
            .get(&format!("/v1/alerts/{again}"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_new_store_on_probation_waits_for_a_moderator() {
    let server = TestServer::start_with(&["--probation-alerts", "2"]).await;
    let staff = server.staff_token("moderator");
    let newcomer = server.member(&staff, "Newcomer", MANHATTAN, 25.0).await;
    let neighbour = server.member(&staff, "Neighbour", BROOKLYN, 25.0).await;
    let mut neighbour_stream = server.stream(&neighbour.token, None).await;
    hello_head(&neighbour_stream.next().await);
    let mut staff_stream = server.stream(&staff, None).await;
    hello_head(&staff_stream.next().await);
    let api = server.api(Some(&newcomer.token));

    let held = api.post_alert(&casing_at("first", MANHATTAN, 25.0)).await;
    assert_eq!(held["status"], "pending");
    let pending = staff_stream.next().await;
    assert_eq!(pending["type"], "pending");
    assert_eq!(pending["alert"]["id"], held["id"]);
    neighbour_stream
        .assert_quiet(Duration::from_millis(300))
        .await;
    let queue = server.api(Some(&staff)).get("/v1/moderation/queue").await;
    assert_eq!(queue.body["pending"][0]["id"], held["id"]);
    // Other stores do not see it; its author does.
    server
        .api(Some(&neighbour.token))
        .get(&format!("/v1/alerts/{}", id_of(&held)))
        .await
        .problem(404, "not_found");
    assert_eq!(
        api.get("/v1/alerts").await.body["alerts"][0]["id"],
        held["id"]
    );

    server
        .api(Some(&staff))
        .post(&format!("/v1/alerts/{}/approve", id_of(&held)), &json!({}))
        .await;
    let live = neighbour_stream.next().await;
    assert_eq!(live["type"], "alert");
    assert_eq!(live["alert"]["id"], held["id"]);
    assert_eq!(live["alert"]["status"], "published");

    assert_eq!(
        api.post_alert(&casing_at("second", MANHATTAN, 25.0)).await["status"],
        "pending"
    );
    let second = id_of(
        &server
            .api(Some(&staff))
            .get("/v1/moderation/queue")
            .await
            .body["pending"][0],
    );
    server
        .api(Some(&staff))
        .post(&format!("/v1/alerts/{second}/approve"), &json!({}))
        .await;
    // Two published: probation is over.
    assert_eq!(
        api.post_alert(&casing_at("third", MANHATTAN, 25.0)).await["status"],
        "published"
    );
}

#[tokio::test]
async fn pre_moderation_holds_every_alert() {
    let server = TestServer::start_with(&["--moderation", "pre"]).await;
    let staff = server.staff_token("moderator");
    let store = server
        .member(&staff, "Main Street Jewelers", MANHATTAN, 25.0)
        .await;
    let api = server.api(Some(&store.token));
    for i in 0..5 {
        let alert = api
            .post_alert(&casing_at(&format!("alert {i}"), MANHATTAN, 25.0))
            .await;
        assert_eq!(alert["status"], "pending");
        server
            .api(Some(&staff))
            .post(&format!("/v1/alerts/{}/approve", id_of(&alert)), &json!({}))
            .await;
    }
    let queue = server.api(Some(&staff)).get("/v1/moderation/queue").await;
    assert_eq!(queue.body["pending"], json!([]));
}

#[tokio::test]
async fn three_stores_flagging_an_alert_take_it_out_of_members_views_until_a_moderator_decides() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let author = server.member(&staff, "Author", MANHATTAN, 25.0).await;
    let flaggers = [
        server.member(&staff, "Flagger 1", BROOKLYN, 25.0).await,
        server.member(&staff, "Flagger 2", NEWARK, 25.0).await,
        server.member(&staff, "Flagger 3", BROOKLYN, 25.0).await,
    ];
    let mut watcher = server.stream(&flaggers[0].token, None).await;
    hello_head(&watcher.next().await);
    let mut staff_stream = server.stream(&staff, None).await;
    hello_head(&staff_stream.next().await);
    let id = post(&server, &author, "names the wrong man", MANHATTAN, 25.0).await;
    assert_eq!(watcher.next().await["type"], "alert");
    assert_eq!(staff_stream.next().await["type"], "alert");

    for (i, flagger) in flaggers.iter().enumerate() {
        let flag = server
            .api(Some(&flagger.token))
            .flag(id, &format!("wrong {i}"))
            .await;
        assert_eq!(flag.status, 201, "{flag:?}");
        assert_eq!(flag.body["store_id"], flagger.id);
        let frame = staff_stream.next().await;
        assert_eq!(frame["type"], "flag");
        assert_eq!(frame["store_id"], flagger.id);
        if i < 2 {
            let visible = server
                .api(Some(&flagger.token))
                .get(&format!("/v1/alerts/{id}"))
                .await;
            assert_eq!(
                visible.body["status"], "published",
                "below the threshold it stays"
            );
            server
                .api(Some(&flagger.token))
                .flag(id, "again")
                .await
                .problem(409, "already_flagged");
        }
    }
    let retract = watcher.next().await;
    assert_eq!(retract["type"], "retract");
    assert_eq!(retract["alert_id"], id);
    assert_eq!(staff_stream.next().await["type"], "retract");
    let waiting = staff_stream.next().await;
    assert_eq!(waiting["type"], "pending", "the console sees it waiting");
    assert_eq!(
        waiting["alert"]["status_reason"],
        "held for review after reports from member stores"
    );
    server
        .api(Some(&flaggers[1].token))
        .get(&format!("/v1/alerts/{id}"))
        .await
        .problem(404, "not_found");
    let queue = server.api(Some(&staff)).get("/v1/moderation/queue").await;
    assert_eq!(queue.body["flagged"][0]["alert"]["id"], id);
    assert_eq!(queue.body["flagged"][0]["alert"]["status"], "pending");
    assert_eq!(
        queue.body["flagged"][0]["flags"].as_array().map(Vec::len),
        Some(3)
    );

    // The moderator decides it was right after all: back to members.
    server
        .api(Some(&staff))
        .post(&format!("/v1/alerts/{id}/approve"), &json!({}))
        .await;
    let back = watcher.next().await;
    assert_eq!(back["type"], "alert");
    assert_eq!(back["alert"]["id"], id);
    let queue = server.api(Some(&staff)).get("/v1/moderation/queue").await;
    assert_eq!(
        queue.body["flagged"],
        json!([]),
        "the decision settles the flags"
    );
}

#[tokio::test]
async fn an_edit_that_moves_an_alert_retracts_it_where_it_left_and_alerts_where_it_arrived() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let author = server.member(&staff, "Author", MANHATTAN, 1.0).await;
    let newark = server.member(&staff, "Newark", NEWARK, 1.0).await;
    let philadelphia = server
        .member(&staff, "Philadelphia", PHILADELPHIA, 1.0)
        .await;
    let boston = server.member(&staff, "Boston", BOSTON, 1.0).await;
    let mut streams = Vec::new();
    for member in [&author, &newark, &philadelphia, &boston] {
        let mut stream = server.stream(&member.token, None).await;
        hello_head(&stream.next().await);
        streams.push(stream);
    }
    let id = post(&server, &author, "casing", MANHATTAN, 25.0).await;
    assert_eq!(streams[0].next().await["type"], "alert");
    assert_eq!(streams[1].next().await["type"], "alert");

    // The author corrects the place: it was Philadelphia.
    let moved = server
        .api(Some(&author.token))
        .patch(
            &format!("/v1/alerts/{id}"),
            &json!({ "location": { "lat": PHILADELPHIA.0, "lon": PHILADELPHIA.1 }, "title": "casing, Philadelphia" }),
        )
        .await;
    assert_eq!(moved.status, 200, "{moved:?}");
    let to_author = streams[0].next().await;
    assert_eq!(to_author["type"], "update", "the author keeps it");
    assert_eq!(to_author["alert"]["title"], "casing, Philadelphia");
    let to_newark = streams[1].next().await;
    assert_eq!(
        to_newark["type"], "retract",
        "Newark is out of its reach now"
    );
    assert_eq!(to_newark["alert_id"], id);
    let to_philadelphia = streams[2].next().await;
    assert_eq!(to_philadelphia["type"], "alert", "new to Philadelphia");
    assert_eq!(to_philadelphia["alert"]["title"], "casing, Philadelphia");
    assert!(to_philadelphia.distance_km().is_some_and(|d| d < 1.0));
    streams[3].assert_quiet(Duration::from_millis(300)).await;
    let seq = to_author.seq();
    for frame in [&to_newark, &to_philadelphia] {
        assert_eq!(frame.seq(), seq);
    }
}

#[tokio::test]
/// Replay shows the network as it is now (docs/API.md): the delivery rule as
/// live applied it, but current versions only, nothing of an alert no
/// longer published, and every `retract` still sent.
async fn replay_after_moderation_shows_the_network_as_it_is_now() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let author = server.member(&staff, "Author", MANHATTAN, 1.0).await;
    let newark = server.member(&staff, "Newark", NEWARK, 1.0).await;
    let flaggers = [
        server.member(&staff, "F1", BROOKLYN, 50.0).await,
        server.member(&staff, "F2", BROOKLYN, 50.0).await,
        server.member(&staff, "F3", BROOKLYN, 50.0).await,
    ];
    let mut live = server.stream(&newark.token, Some(0)).await;
    hello_head(&live.next().await);
    let mut staff_live = server.stream(&staff, Some(0)).await;
    hello_head(&staff_live.next().await);
    let mod_api = server.api(Some(&staff));

    let a = post(&server, &author, "a", MANHATTAN, 25.0).await;
    let b = post(&server, &author, "b", MANHATTAN, 25.0).await;
    mod_api
        .post(&format!("/v1/alerts/{a}/verify"), &json!({}))
        .await;
    server
        .api(Some(&author.token))
        .patch(
            &format!("/v1/alerts/{b}"),
            &json!({ "location": { "lat": BOSTON.0, "lon": BOSTON.1 } }),
        )
        .await;
    server
        .api(Some(&author.token))
        .patch(
            &format!("/v1/alerts/{b}"),
            &json!({ "location": { "lat": MANHATTAN.0, "lon": MANHATTAN.1 } }),
        )
        .await;
    for flagger in &flaggers {
        server.api(Some(&flagger.token)).flag(a, "doubt").await;
    }
    mod_api
        .post(&format!("/v1/alerts/{a}/approve"), &json!({}))
        .await;
    mod_api
        .post(
            &format!("/v1/alerts/{b}/retract"),
            &json!({ "reason": "duplicate" }),
        )
        .await;

    // Newark: alert a, alert b, update a (verified), retract b (moved away),
    // alert b (back), retract a (flags), alert a (approved), retract b.
    let newark_frames = live.take(8).await;
    let kinds: Vec<&str> = newark_frames
        .iter()
        .filter_map(|f| f["type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["alert", "alert", "update", "retract", "alert", "retract", "alert", "retract"]
    );
    live.assert_quiet(Duration::from_millis(300)).await;
    // Staff: every event, with the flags: 2 alerts + verify + 2 edits + 3 flags
    // + retract and pending (held) + approve + retract.
    let staff_frames = staff_live.take(12).await;
    staff_live.assert_quiet(Duration::from_millis(300)).await;

    // Now: a is published again (verified), b is retracted.
    let a_now = mod_api.get(&format!("/v1/alerts/{a}")).await.body;
    assert_eq!(a_now["status"], "published");
    let mut replay = server.stream(&newark.token, Some(0)).await;
    hello_head(&replay.next().await);
    // Of b nothing but its retracts (the move away, the retraction); of a
    // its current version in every alert and update frame.
    let replayed = replay.take(6).await;
    replay.assert_quiet(Duration::from_millis(300)).await;
    let kinds: Vec<(&str, i64)> = replayed
        .iter()
        .map(|f| (f["type"].as_str().unwrap_or("?"), f.alert_id()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("alert", a),
            ("update", a),
            ("retract", b),
            ("retract", a),
            ("alert", a),
            ("retract", b)
        ]
    );
    for frame in replayed.iter().filter(|f| f["alert"].is_object()) {
        assert_eq!(frame["alert"], a_now, "the current version: {frame}");
    }
    let live_seqs = seqs(&newark_frames);
    for frame in &replayed {
        assert!(
            live_seqs.contains(&frame.seq()),
            "at a seq live gave: {frame}"
        );
    }
    assert_eq!(
        replayed[1]["changed"],
        json!(["verified"]),
        "an update says what changed"
    );
    // Staff: the same rule; flags stay, the pending frame of an alert that
    // no longer waits goes.
    let mut staff_replay = server.stream(&staff, Some(0)).await;
    hello_head(&staff_replay.next().await);
    let staff_replayed = staff_replay.take(8).await;
    staff_replay.assert_quiet(Duration::from_millis(300)).await;
    let staff_kinds: Vec<&str> = staff_replayed
        .iter()
        .filter_map(|f| f["type"].as_str())
        .collect();
    assert_eq!(
        staff_kinds,
        ["alert", "update", "flag", "flag", "flag", "retract", "alert", "retract"]
    );
    assert_eq!(staff_frames.len(), 12);
    assert!(staff_replayed
        .iter()
        .filter(|f| f["alert"].is_object())
        .all(|f| f["alert"] == a_now));
}

#[tokio::test]
async fn every_action_appears_once_in_the_audit_with_its_reason() {
    let server = TestServer::start_with(&["--moderation", "pre"]).await;
    let admin = server.staff_token("admin");
    let admin_api = server.api(Some(&admin));
    let store = server
        .member(&admin, "Main Street Jewelers", MANHATTAN, 25.0)
        .await;
    let other = server.member(&admin, "Other", BROOKLYN, 25.0).await;
    let (rejected_store, _) = server.pledge("Shady", BOSTON, 25.0).await;
    admin_api
        .post(
            &format!("/v1/stores/{rejected_store}/reject"),
            &json!({ "reason": "no shop" }),
        )
        .await;
    admin_api
        .post(
            &format!("/v1/stores/{}/suspend", other.id),
            &json!({ "reason": "spam" }),
        )
        .await;
    let reinstated = admin_api
        .post(&format!("/v1/stores/{}/reinstate", other.id), &json!({}))
        .await;
    // Reinstatement revoked its tokens: it claims a fresh one.
    let reclaimed = server
        .anonymous()
        .post(
            &format!("/v1/pledge/{}/claim", other.id),
            &json!({ "claim_secret": reinstated.str("claim_secret") }),
        )
        .await;
    let other = Member {
        token: reclaimed.str("token").to_owned(),
        ..other
    };
    let device = server
        .api(Some(&store.token))
        .post("/v1/me/tokens", &json!({ "label": "tablet" }))
        .await;
    server
        .api(Some(&store.token))
        .delete(&format!("/v1/me/tokens/{}", device.i64("id")))
        .await;
    let a = post(&server, &store, "a", MANHATTAN, 25.0).await;
    let b = post(&server, &store, "b", MANHATTAN, 25.0).await;
    admin_api
        .post(&format!("/v1/alerts/{a}/approve"), &json!({}))
        .await;
    admin_api
        .post(
            &format!("/v1/alerts/{b}/reject"),
            &json!({ "reason": "not a crime" }),
        )
        .await;
    admin_api
        .post(&format!("/v1/alerts/{a}/verify"), &json!({}))
        .await;
    admin_api
        .patch(
            &format!("/v1/alerts/{a}"),
            &json!({ "title": "a, checked" }),
        )
        .await;
    server.api(Some(&other.token)).flag(a, "wrong car").await;
    admin_api
        .post(
            &format!("/v1/alerts/{a}/retract"),
            &json!({ "reason": "resolved" }),
        )
        .await;

    let audit = admin_api.get("/v1/audit?limit=500").await;
    let entries = audit.body["entries"].as_array().expect("entries").clone();
    let find = |action: &str, object: String| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["object"] == Value::String(object.clone()))
            .cloned()
            .collect()
    };
    let once = |action: &str, object: String, reason: Option<&str>| {
        let found = find(action, object.clone());
        assert_eq!(found.len(), 1, "{action} {object}: {entries:#?}");
        assert_eq!(
            found[0]["reason"],
            reason.map_or(Value::Null, Value::from),
            "{action}"
        );
        assert!(found[0]["actor"].is_string() && found[0]["at"].is_string());
    };
    once("store.approve", format!("store:{}", store.id), None);
    once(
        "store.reject",
        format!("store:{rejected_store}"),
        Some("no shop"),
    );
    once("store.suspend", format!("store:{}", other.id), Some("spam"));
    once("store.reinstate", format!("store:{}", other.id), None);
    once(
        "token.create",
        format!("token:{}", device.i64("id")),
        Some("tablet"),
    );
    once("token.revoke", format!("token:{}", device.i64("id")), None);
    once("alert.approve", format!("alert:{a}"), None);
    once("alert.reject", format!("alert:{b}"), Some("not a crime"));
    once("alert.verify", format!("alert:{a}"), None);
    once("alert.edit", format!("alert:{a}"), None);
    once("alert.flag", format!("alert:{a}"), Some("wrong car"));
    once("alert.retract", format!("alert:{a}"), Some("resolved"));
    assert!(find("alert.approve", format!("alert:{a}"))[0]["actor"]
        .as_str()
        .is_some_and(|actor| actor.starts_with("admin #")));
    let ids: Vec<i64> = entries.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");

    // Paging walks the same entries.
    let mut paged = Vec::new();
    let mut path = "/v1/audit?limit=4".to_owned();
    loop {
        let page = admin_api.get(&path).await;
        paged.extend(
            page.body["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .filter_map(|e| e["id"].as_i64()),
        );
        match page.body["next_before_id"].as_i64() {
            Some(before) => path = format!("/v1/audit?limit=4&before_id={before}"),
            None => break,
        }
    }
    assert_eq!(paged, ids);
    admin_api
        .get("/v1/audit?limit=0")
        .await
        .problem(422, "invalid_input");
}

fn rfc3339(at: time::OffsetDateTime) -> Value {
    Value::String(
        at.replace_nanosecond(0)
            .expect("whole seconds")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format"),
    )
}

/// Retention erases (docs/API.md): an alert past the retention period is 404 to
/// everyone, staff included, at once, and leaves replay; its text, suspects
/// and vehicles leave the database (event bodies included) at the next
/// sweep; its audit entries stay. Older `occurred_at` is refused. The
/// alert is posted a few seconds inside the period and waits it out, so
/// that no fixed date ever ages into a failure.
#[tokio::test]
async fn retention_erases_old_alerts_for_everyone() {
    let server =
        TestServer::start_with(&["--retention-days", "1", "--erase-interval-secs", "1"]).await;
    let staff = server.staff_token("moderator");
    let author = server.member(&staff, "Author", MANHATTAN, 25.0).await;
    let reader = server.member(&staff, "Reader", BROOKLYN, 25.0).await;
    let api = server.api(Some(&author.token));
    let day = time::Duration::days(1);
    let now = time::OffsetDateTime::now_utc();
    let mut too_old = casing_at("two days ago", MANHATTAN, 25.0);
    too_old["occurred_at"] = rfc3339(now - day * 2);
    let refused = api.post("/v1/alerts", &too_old).await;
    let detail = refused.problem(422, "invalid_input");
    assert!(detail.starts_with("occurred_at"), "{detail}");

    let mut ageing = casing_at("about to age out", MANHATTAN, 25.0);
    ageing["occurred_at"] = rfc3339(now - day + time::Duration::seconds(3));
    ageing["vehicles"] = json!([{ "plate": "OLDPL8" }]);
    let old_id = id_of(&api.post_alert(&ageing).await);
    let recent_id = post(&server, &author, "today", MANHATTAN, 25.0).await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    for token in [&author.token, &reader.token, &staff] {
        let token_api = server.api(Some(token));
        let listed: Vec<i64> = token_api.get("/v1/alerts").await.body["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter_map(|a| a["id"].as_i64())
            .collect();
        assert_eq!(listed, vec![recent_id]);
        token_api
            .get(&format!("/v1/alerts/{old_id}"))
            .await
            .problem(404, "not_found");
        let mut replay = server.stream(token, Some(0)).await;
        hello_head(&replay.next().await);
        assert_eq!(replay.next().await["alert"]["id"], recent_id);
        replay.assert_quiet(Duration::from_millis(300)).await;
    }
    // The sweep runs every second here (within the hour by default).
    let mut stored = server.stored_text().await;
    for _ in 0..50 {
        if !stored.contains("OLDPL8") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        stored = server.stored_text().await;
    }
    assert!(!stored.contains("OLDPL8"), "erased:\n{stored}");
    assert!(!stored.contains("about to age out"), "erased:\n{stored}");
    assert!(stored.contains("today"), "the recent alert stays");
    let audit = server.api(Some(&staff)).get("/v1/audit?limit=500").await;
    let entries = audit.body["entries"].as_array().expect("entries");
    let object = format!("alert:{old_id}");
    assert!(entries
        .iter()
        .any(|e| e["action"] == "alert.erase" && e["object"] == object.as_str()));
    assert!(
        entries
            .iter()
            .any(|e| e["object"] == format!("store:{}", author.id).as_str()),
        "older audit entries stay"
    );
}

#[tokio::test]
async fn an_authors_edit_drops_the_verification_and_waits_again_while_on_probation() {
    let server = TestServer::start_with(&["--probation-alerts", "2"]).await;
    let staff = server.staff_token("moderator");
    let author = server.member(&staff, "Author", MANHATTAN, 25.0).await;
    let neighbour = server.member(&staff, "Neighbour", BROOKLYN, 25.0).await;
    let mod_api = server.api(Some(&staff));
    let author_api = server.api(Some(&author.token));
    let id = id_of(
        &author_api
            .post_alert(&casing_at("first", MANHATTAN, 25.0))
            .await,
    );
    mod_api
        .post(&format!("/v1/alerts/{id}/approve"), &json!({}))
        .await;
    let verified = mod_api
        .post(&format!("/v1/alerts/{id}/verify"), &json!({}))
        .await;
    assert_eq!(verified.body["verified"], true);
    let mut neighbour_stream = server.stream(&neighbour.token, None).await;
    hello_head(&neighbour_stream.next().await);

    // Still on probation (one of two published): the edit waits.
    let edited = author_api
        .patch(
            &format!("/v1/alerts/{id}"),
            &json!({ "title": "first, with new details" }),
        )
        .await;
    assert_eq!(edited.status, 200, "{edited:?}");
    assert_eq!(edited.body["status"], "pending");
    assert_eq!(
        edited.body["verified"], false,
        "the association checked the old text, not this"
    );
    assert!(edited.body["status_reason"]
        .as_str()
        .is_some_and(|r| r.contains("edited")));
    let withdrawn = neighbour_stream.next().await;
    assert_eq!(withdrawn["type"], "retract");
    assert_eq!(withdrawn["alert_id"], id);
    let queue = mod_api.get("/v1/moderation/queue").await;
    assert_eq!(queue.body["pending"][0]["title"], "first, with new details");

    mod_api
        .post(&format!("/v1/alerts/{id}/approve"), &json!({}))
        .await;
    let back = neighbour_stream.next().await;
    assert_eq!(back["type"], "alert");
    assert_eq!(back["alert"]["title"], "first, with new details");

    // A moderator's edit keeps the verification.
    mod_api
        .post(&format!("/v1/alerts/{id}/verify"), &json!({}))
        .await;
    let by_staff = mod_api
        .patch(&format!("/v1/alerts/{id}"), &json!({ "radius_km": 30 }))
        .await;
    assert_eq!(by_staff.body["verified"], true, "{by_staff:?}");
    assert_eq!(by_staff.body["status"], "published");
}

#[tokio::test]
async fn the_author_sees_why_its_alert_was_rejected() {
    let server = TestServer::start_with(&["--moderation", "pre"]).await;
    let staff = server.staff_token("moderator");
    let author = server.member(&staff, "Author", MANHATTAN, 25.0).await;
    let id = post(&server, &author, "seen", MANHATTAN, 25.0).await;
    server
        .api(Some(&staff))
        .post(
            &format!("/v1/alerts/{id}/reject"),
            &json!({ "reason": "no crime described" }),
        )
        .await;
    let own = server
        .api(Some(&author.token))
        .get(&format!("/v1/alerts/{id}"))
        .await;
    assert_eq!(own.body["status"], "rejected");
    assert_eq!(own.body["status_reason"], "no crime described");
}
