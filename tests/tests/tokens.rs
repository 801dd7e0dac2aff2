//! Tokens: a stolen one is seen, revoked and outlived; a store holds at
//! most 10; staff tokens are moderators unless an admin asks otherwise.

use std::time::Duration;

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::{json, Value};

/// The store's tokens as staff list them, by id.
async fn staff_view_of_tokens(server: &TestServer, staff: &str, store_id: i64) -> Vec<Value> {
    let listed = server
        .api(Some(staff))
        .get(&format!("/v1/stores/{store_id}/tokens"))
        .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert!(
        !listed.body.to_string().contains("p4p_"),
        "no secret is ever listed: {listed:?}"
    );
    listed.body["tokens"].as_array().expect("tokens").clone()
}

fn token_with_id(tokens: &[Value], id: i64) -> &Value {
    tokens
        .iter()
        .find(|token| token["id"] == id)
        .unwrap_or_else(|| panic!("no token {id} in {tokens:?}"))
}

#[tokio::test]
async fn a_stolen_token_is_seen_by_staff_revoked_and_dies_with_every_other_at_reinstatement() {
    let (server, staff, owner) = TestServer::with_store().await;
    let stolen = owner.token.clone();
    let attacker = server.api(Some(&stolen));
    let owner_token_id = attacker.own_token_id().await;

    // The attacker mints two tokens of its own and locks the owner out.
    let minted = attacker
        .post("/v1/me/tokens", &json!({ "label": "back office PC" }))
        .await;
    assert_eq!(minted.status, 201, "{minted:?}");
    let first = minted.str("token").to_owned();
    let first_id = minted.i64("id");
    let spare = server
        .api(Some(&first))
        .post("/v1/me/tokens", &json!({ "label": "tablet" }))
        .await;
    assert_eq!(spare.status, 201, "{spare:?}");
    let second = spare.str("token").to_owned();
    let second_id = spare.i64("id");
    let revoked = server
        .api(Some(&first))
        .delete(&format!("/v1/me/tokens/{owner_token_id}"))
        .await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    attacker.get("/v1/me").await.problem(401, "unauthorized");
    let mut attacker_stream = server.stream(&first, None).await;
    hello_head(&attacker_stream.next().await);
    assert_eq!(
        server.api(Some(&second)).get("/v1/me").await.status,
        200,
        "the spare is used"
    );

    // Staff see every token of the store, with when each was last used.
    let tokens = staff_view_of_tokens(&server, &staff, owner.id).await;
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    let owners = token_with_id(&tokens, owner_token_id);
    assert!(owners["revoked_at"].is_string(), "{owners}");
    assert!(owners["last_used_at"].is_string(), "{owners}");
    for id in [first_id, second_id] {
        let token = token_with_id(&tokens, id);
        assert!(token["revoked_at"].is_null(), "{token}");
        assert!(token["last_used_at"].is_string(), "used: {token}");
    }
    let store = server
        .api(Some(&staff))
        .get(&format!("/v1/stores/{}", owner.id))
        .await;
    assert_eq!(store.status, 200, "{store:?}");
    assert_eq!(store.body["name"], owner.name);

    // They revoke the attacker's: its stream closes, it is refused.
    let revoked = server
        .api(Some(&staff))
        .delete(&format!("/v1/stores/{}/tokens/{first_id}", owner.id))
        .await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    assert_eq!(revoked.body["id"], first_id);
    assert!(revoked.body["revoked_at"].is_string(), "{revoked:?}");
    assert_eq!(attacker_stream.closed().await, Some(4001));
    server
        .api(Some(&first))
        .get("/v1/me")
        .await
        .problem(401, "unauthorized");

    // Suspension answers every token that is left 403, saying why.
    let suspended = server
        .api(Some(&staff))
        .post(
            &format!("/v1/stores/{}/suspend", owner.id),
            &json!({ "reason": "token stolen, under review" }),
        )
        .await;
    assert_eq!(suspended.status, 200, "{suspended:?}");
    let as_spare = server.api(Some(&second));
    for path in ["/v1/alerts", "/v1/me/tokens"] {
        let detail = as_spare.get(path).await.problem(403, "store_suspended");
        assert!(detail.contains("token stolen, under review"), "{detail}");
    }
    let me = as_spare.get("/v1/me").await;
    assert_eq!(me.body["store"]["status"], "suspended", "{me:?}");
    assert_eq!(
        me.body["store"]["status_reason"],
        "token stolen, under review"
    );
    let detail = as_spare
        .post("/v1/me/tokens", &json!({ "label": "another" }))
        .await
        .problem(403, "store_suspended");
    assert!(detail.contains("token stolen"), "{detail}");

    // Reinstatement revokes them all and hands staff a new claim secret.
    let reinstated = server
        .api(Some(&staff))
        .post(&format!("/v1/stores/{}/reinstate", owner.id), &json!({}))
        .await;
    assert_eq!(reinstated.status, 200, "{reinstated:?}");
    assert_eq!(reinstated.body["status"], "approved");
    assert_eq!(reinstated.body["id"], owner.id);
    let claim_secret = reinstated.str("claim_secret").to_owned();
    as_spare.get("/v1/me").await.problem(401, "unauthorized");
    let tokens = staff_view_of_tokens(&server, &staff, owner.id).await;
    assert!(
        tokens.iter().all(|token| token["revoked_at"].is_string()),
        "{tokens:?}"
    );

    // The store claims anew, once; nothing else claims.
    let claim = |secret: &str| {
        let body = json!({ "claim_secret": secret });
        let path = format!("/v1/pledge/{}/claim", owner.id);
        let api = server.anonymous();
        async move { api.post(&path, &body).await }
    };
    let fresh = claim(&claim_secret).await;
    assert_eq!(fresh.status, 200, "{fresh:?}");
    let fresh_token = fresh.str("token").to_owned();
    claim(&claim_secret).await.problem(409, "already_claimed");
    let me = server.api(Some(&fresh_token)).get("/v1/me").await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["store"]["status"], "approved");
    let mut stream = server.stream(&fresh_token, None).await;
    hello_head(&stream.next().await);

    let audit = server.api(Some(&staff)).get("/v1/audit").await;
    let revocations = audit.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|entry| entry["action"] == "token.revoke")
        .count();
    assert_eq!(
        revocations, 3,
        "owner's by the attacker, staff's, reinstatement's"
    );
    println!(
        "stolen token ({}): staff saw {} tokens with last_used_at, revoked the attacker's (stream closed 4001); \
         suspension answered 403 store_suspended with the reason; reinstatement revoked the rest; \
         the new claim secret gave one token, a second claim 409",
        if on_postgres() { "postgres" } else { "sqlite" },
        3
    );
}

#[tokio::test]
async fn the_pledge_claim_secret_no_longer_works_after_reinstatement() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let (id, pledge_secret) = server.pledge("Claimed Co", MANHATTAN, 25.0).await;
    let api = server.api(Some(&staff));
    assert_eq!(
        api.post(&format!("/v1/stores/{id}/approve"), &json!({}))
            .await
            .status,
        200
    );
    let path = format!("/v1/pledge/{id}/claim");
    let first = server
        .anonymous()
        .post(&path, &json!({ "claim_secret": pledge_secret }))
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    api.post(
        &format!("/v1/stores/{id}/suspend"),
        &json!({ "reason": "checking" }),
    )
    .await;
    // While suspended, the claim says so, with the reason.
    let detail = server
        .anonymous()
        .post(&path, &json!({ "claim_secret": pledge_secret }))
        .await
        .problem(403, "store_suspended");
    assert!(detail.contains("checking"), "{detail}");
    let reinstated = api
        .post(&format!("/v1/stores/{id}/reinstate"), &json!({}))
        .await;
    assert_eq!(reinstated.status, 200, "{reinstated:?}");
    server
        .anonymous()
        .post(&path, &json!({ "claim_secret": pledge_secret }))
        .await
        .problem(404, "not_found");
    // Reinstating again is a conflict, and hands out nothing.
    let again = api
        .post(&format!("/v1/stores/{id}/reinstate"), &json!({}))
        .await;
    again.problem(409, "invalid_transition");
    assert!(again.body.get("claim_secret").is_none(), "{again:?}");
}

#[tokio::test]
async fn the_eleventh_token_is_refused_even_when_created_concurrently() {
    let (server, _, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    // The claimed token is the first of ten; 20 creates race for the other nine.
    let creates = (0..20).map(|n| {
        let api = server.api(Some(&store.token));
        async move {
            api.post("/v1/me/tokens", &json!({ "label": format!("device {n}") }))
                .await
        }
    });
    let replies = futures_util::future::join_all(creates).await;
    let created: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status != 201).collect();
    assert_eq!(created.len(), 9, "{replies:?}");
    for reply in &refused {
        let detail = reply.problem(409, "too_many_tokens");
        assert!(detail.contains("10"), "{detail}");
    }
    let listed = api.get("/v1/me/tokens").await;
    let unrevoked = listed.body["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter(|token| token["revoked_at"].is_null())
        .count();
    assert_eq!(unrevoked, 10);

    // Revoking one makes room for one.
    let id = created[0].i64("id");
    assert_eq!(api.delete(&format!("/v1/me/tokens/{id}")).await.status, 200);
    let replacement = api
        .post("/v1/me/tokens", &json!({ "label": "replacement" }))
        .await;
    assert_eq!(replacement.status, 201, "{replacement:?}");
    api.post("/v1/me/tokens", &json!({ "label": "one too many" }))
        .await
        .problem(409, "too_many_tokens");
    println!(
        "token cap ({}): 20 concurrent creates on top of the claimed token: {} created, {} refused 409 too_many_tokens; 10 unrevoked",
        if on_postgres() { "postgres" } else { "sqlite" },
        created.len(),
        refused.len()
    );
}

#[tokio::test]
async fn an_admins_token_is_a_moderator_unless_it_asks_for_admin() {
    let (server, moderator, store) = TestServer::with_store().await;
    let admin = server.staff_token("admin");
    let as_admin = server.api(Some(&admin));

    let plain = as_admin
        .post("/v1/me/tokens", &json!({ "label": "Bob" }))
        .await;
    assert_eq!(plain.status, 201, "{plain:?}");
    let bob = server.api(Some(plain.str("token")));
    assert_eq!(bob.get("/v1/me").await.body["role"], "moderator");
    bob.post("/v1/me/tokens", &json!({ "label": "escalate" }))
        .await
        .problem(403, "forbidden");
    bob.post(
        "/v1/me/tokens",
        &json!({ "label": "escalate", "role": "admin" }),
    )
    .await
    .problem(403, "forbidden");

    let explicit = as_admin
        .post(
            "/v1/me/tokens",
            &json!({ "label": "Carol", "role": "moderator" }),
        )
        .await;
    assert_eq!(explicit.status, 201, "{explicit:?}");
    let carol = server.api(Some(explicit.str("token"))).get("/v1/me").await;
    assert_eq!(carol.body["role"], "moderator");
    let chosen = as_admin
        .post(
            "/v1/me/tokens",
            &json!({ "label": "Dana", "role": "admin" }),
        )
        .await;
    assert_eq!(chosen.status, 201, "{chosen:?}");
    let dana = server.api(Some(chosen.str("token"))).get("/v1/me").await;
    assert_eq!(dana.body["role"], "admin");

    for role in [json!("store"), json!("superuser"), json!(7), json!(null)] {
        let reply = as_admin
            .post("/v1/me/tokens", &json!({ "label": "x", "role": role }))
            .await;
        if role.is_null() {
            assert_eq!(reply.status, 201, "null is the default: {reply:?}");
            continue;
        }
        let detail = reply.problem(422, "invalid_input");
        assert!(detail.contains("role"), "{role}: {detail}");
    }

    // A store's tokens are store tokens.
    let as_store = server.api(Some(&store.token));
    for role in ["moderator", "admin"] {
        as_store
            .post("/v1/me/tokens", &json!({ "label": "x", "role": role }))
            .await
            .problem(403, "forbidden");
    }
    let own = as_store
        .post("/v1/me/tokens", &json!({ "label": "x", "role": "store" }))
        .await;
    assert_eq!(own.status, 201, "{own:?}");
    // A moderator makes no tokens at all.
    server
        .api(Some(&moderator))
        .post("/v1/me/tokens", &json!({ "label": "x" }))
        .await
        .problem(403, "forbidden");
}

#[tokio::test]
async fn a_store_cannot_see_or_revoke_tokens_through_the_staff_endpoints() {
    let (server, staff, store) = TestServer::with_store().await;
    let other = server.member(&staff, "Other", BOSTON, 25.0).await;
    let as_store = server.api(Some(&store.token));
    let other_token_id = server.api(Some(&other.token)).own_token_id().await;
    for id in [store.id, other.id] {
        as_store
            .get(&format!("/v1/stores/{id}"))
            .await
            .problem(403, "forbidden");
        as_store
            .get(&format!("/v1/stores/{id}/tokens"))
            .await
            .problem(403, "forbidden");
        as_store
            .delete(&format!("/v1/stores/{id}/tokens/{other_token_id}"))
            .await
            .problem(403, "forbidden");
    }
    server
        .anonymous()
        .get(&format!("/v1/stores/{}/tokens", store.id))
        .await
        .problem(401, "unauthorized");
    assert_eq!(
        server.api(Some(&other.token)).get("/v1/me").await.status,
        200,
        "untouched"
    );

    // Staff: unknown stores and tokens of another store are 404; bad ids 400.
    let as_staff = server.api(Some(&staff));
    as_staff
        .get("/v1/stores/9999")
        .await
        .problem(404, "not_found");
    as_staff
        .get("/v1/stores/9999/tokens")
        .await
        .problem(404, "not_found");
    as_staff
        .delete(&format!("/v1/stores/{}/tokens/{other_token_id}", store.id))
        .await
        .problem(404, "not_found");
    assert_eq!(
        server.api(Some(&other.token)).get("/v1/me").await.status,
        200,
        "a token is revoked only through its own store"
    );
    for path in ["/v1/stores/abc", "/v1/stores/abc/tokens"] {
        assert_eq!(as_staff.get(path).await.status, 400, "{path}");
    }
    assert_eq!(
        as_staff
            .delete(&format!("/v1/stores/{}/tokens/x", store.id))
            .await
            .status,
        400
    );
    // Revoking twice answers the same token.
    let path = format!("/v1/stores/{}/tokens/{other_token_id}", other.id);
    let once = as_staff.delete(&path).await;
    let twice = as_staff.delete(&path).await;
    assert_eq!((once.status, twice.status), (200, 200));
    assert_eq!(once.body["revoked_at"], twice.body["revoked_at"]);
}

#[tokio::test]
async fn last_used_at_is_recorded_but_not_rewritten_on_every_request() {
    let (server, _, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    let created = api
        .post("/v1/me/tokens", &json!({ "label": "unused" }))
        .await;
    let unused_id = created.i64("id");
    let listed = api.get("/v1/me/tokens").await;
    let tokens = listed.body["tokens"].as_array().expect("tokens").clone();
    assert!(
        token_with_id(&tokens, unused_id)["last_used_at"].is_null(),
        "never used: {tokens:?}"
    );
    let me = api.get("/v1/me").await;
    let first_seen = me.body["token"]["last_used_at"].clone();
    assert!(first_seen.is_string(), "{me:?}");

    // A burst of requests within the minute leaves the value as it was.
    let burst = (0..50).map(|_| {
        let api = server.api(Some(&store.token));
        async move { api.get("/v1/me").await }
    });
    let replies = futures_util::future::join_all(burst).await;
    assert!(replies.iter().all(|reply| reply.status == 200));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = api.get("/v1/me").await.body["token"]["last_used_at"].clone();
    assert_eq!(after, first_seen, "written at most once a minute");
    println!(
        "last_used_at ({}): 52 requests in a burst, one value recorded: {first_seen}",
        if on_postgres() { "postgres" } else { "sqlite" }
    );
}

#[tokio::test]
async fn staff_revoke_a_stolen_token_and_reinstate_the_store_from_the_cli() {
    let (server, staff, store) = TestServer::with_store().await;
    let staff_home = server.logged_in(&staff, "moderator").await;
    let store_home = server.logged_in(&store.token, "Main Street Jewelers").await;

    // A token the store does not know of appears, never used yet.
    let minted = server
        .run_cli(
            store_home.path(),
            &["tokens", "create", "--label", "tablet"],
        )
        .await
        .expect_ok("p4p_");
    let minted_token = minted.stdout.trim().to_owned();
    let listed = server
        .run_cli(store_home.path(), &["tokens"])
        .await
        .expect_ok("LAST USED");
    let tablet_row = listed
        .stdout
        .lines()
        .find(|line| line.contains("tablet"))
        .expect("the tablet's row")
        .to_owned();
    assert!(tablet_row.contains("never"), "{listed:?}");
    server.api(Some(&minted_token)).get("/v1/me").await;

    let id = store.id.to_string();
    server
        .run_cli(staff_home.path(), &["stores", "show", &id])
        .await
        .expect_ok("Main Street Jewelers");
    let tokens = server
        .run_cli(staff_home.path(), &["--json", "stores", "tokens", &id])
        .await;
    assert!(tokens.success, "{tokens:?}");
    let tokens: Value = serde_json::from_str(&tokens.stdout).expect("JSON");
    let tablet = tokens["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|token| token["label"] == "tablet")
        .expect("the tablet")
        .clone();
    assert!(tablet["last_used_at"].is_string(), "{tablet}");
    let table = server
        .run_cli(staff_home.path(), &["stores", "tokens", &id])
        .await
        .expect_ok("LAST USED");
    assert!(
        !table.stdout.contains("never"),
        "both tokens were used: {table:?}"
    );
    let tablet_id = id_of(&tablet).to_string();
    server
        .run_cli(
            staff_home.path(),
            &["stores", "revoke-token", &id, &tablet_id],
        )
        .await
        .expect_ok(&format!("Revoked token #{tablet_id} \"tablet\""));
    assert_eq!(
        server.api(Some(&minted_token)).get("/v1/me").await.status,
        401
    );

    // Suspend, reinstate: the CLI prints the secret and the store's command.
    server
        .run_cli(
            staff_home.path(),
            &["stores", "suspend", &id, "--reason", "stolen token"],
        )
        .await
        .expect_ok("suspended");
    server
        .run_cli(store_home.path(), &["whoami"])
        .await
        .expect_ok("Why:     stolen token");
    let reinstated = server
        .run_cli(staff_home.path(), &["stores", "reinstate", &id])
        .await
        .expect_ok(&format!("pledge claim {id} --secret p4pclaim_"));
    let secret = reinstated
        .stdout
        .split_whitespace()
        .find(|word| word.starts_with("p4pclaim_"))
        .expect("the claim secret")
        .to_owned();
    server
        .run_cli(store_home.path(), &["whoami"])
        .await
        .expect_error("revoked");
    server
        .run_cli(
            store_home.path(),
            &["pledge", "claim", &id, "--secret", &secret],
        )
        .await
        .expect_ok("approved; token saved");
    server
        .run_cli(store_home.path(), &["whoami"])
        .await
        .expect_ok("last used");
    server
        .run_cli(
            store_home.path(),
            &["pledge", "claim", &id, "--secret", &secret],
        )
        .await
        .expect_error("already claimed");
}

#[tokio::test]
async fn an_admin_makes_moderator_tokens_by_default_from_the_cli() {
    let server = TestServer::start().await;
    let admin = server.staff_token("admin");
    let admin_home = server.logged_in(&admin, "admin").await;
    for (args, role) in [
        (vec!["tokens", "create", "--label", "Bob"], "moderator"),
        (
            vec!["tokens", "create", "--label", "Al", "--role", "admin"],
            "admin",
        ),
    ] {
        let created = server
            .run_cli(admin_home.path(), &args)
            .await
            .expect_ok("p4p_");
        let me = server.api(Some(created.stdout.trim())).get("/v1/me").await;
        assert_eq!(me.body["role"], role, "{args:?}");
    }
    server
        .run_cli(
            admin_home.path(),
            &["tokens", "create", "--label", "x", "--role", "store"],
        )
        .await
        .expect_error("invalid value");
}

#[tokio::test]
async fn a_token_staff_revoke_on_one_node_closes_its_stream_on_another() {
    let a = TestServer::start_on_postgres().await;
    let b = a.another_node().await;
    let staff = a.staff_token("moderator");
    let store = a.member(&staff, "Two Nodes", MANHATTAN, 25.0).await;
    let mut on_b = b.stream(&store.token, None).await;
    hello_head(&on_b.next().await);
    assert!(b.readyz_becomes(200).await, "node B listens");
    let token_id = a.api(Some(&store.token)).own_token_id().await;
    let revoked = a
        .api(Some(&staff))
        .delete(&format!("/v1/stores/{}/tokens/{token_id}", store.id))
        .await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    assert_eq!(on_b.closed().await, Some(4001), "revoked on A, closed on B");
}
