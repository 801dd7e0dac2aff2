//! Several nodes on one PostgreSQL database: the same network, past one
//! machine. These tests always run on PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::json;

async fn open(node: &TestServer, member: &Member, since: Option<i64>) -> Stream {
    let mut stream = node.stream(&member.token, since).await;
    hello_head(&stream.next().await);
    stream
}

#[tokio::test]
async fn a_post_on_one_node_reaches_subscribers_on_every_other_node_by_the_delivery_rule() {
    let a = TestServer::start_on_postgres().await;
    let b = a.another_node().await;
    let c = a.another_node().await;
    let staff = a.staff_token("moderator");
    let author = a.member(&staff, "Author", MANHATTAN, 1.0).await;
    let newark = a.member(&staff, "Newark", NEWARK, 1.0).await;
    let philadelphia = a.member(&staff, "Philadelphia", PHILADELPHIA, 140.0).await;
    let boston = a.member(&staff, "Boston", BOSTON, 100.0).await;
    let mut on_b = open(&b, &newark, None).await;
    let mut on_c = open(&c, &philadelphia, None).await;
    let mut boston_on_b = open(&b, &boston, None).await;

    for (i, node) in [&a, &b, &c].into_iter().enumerate() {
        let posted = node
            .api(Some(&author.token))
            .post_alert(&casing_at(&format!("seen {i}"), MANHATTAN, 25.0))
            .await;
        let to_newark = on_b.next().await;
        assert_eq!(to_newark["alert"]["id"], posted["id"], "posted on node {i}");
        let to_philadelphia = on_c.next().await;
        assert_eq!(to_philadelphia["alert"]["id"], posted["id"]);
        assert_eq!(to_newark.seq(), to_philadelphia.seq());
    }
    boston_on_b.assert_quiet(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn concurrent_posters_on_two_nodes_give_every_subscriber_every_seq_once_in_order() {
    let a = TestServer::start_on_postgres().await;
    let b = a.another_node().await;
    let staff = a.staff_token("moderator");
    let mut posters = Vec::new();
    for i in 0..4 {
        posters.push(
            a.member(&staff, &format!("Poster {i}"), MANHATTAN, 1.0)
                .await,
        );
    }
    let wide_a = a.member(&staff, "Wide A", BROOKLYN, 500.0).await;
    let wide_b = a.member(&staff, "Wide B", NEWARK, 500.0).await;
    let mut on_a = open(&a, &wide_a, None).await;
    let mut on_b = open(&b, &wide_b, None).await;

    const PER_POSTER: usize = 50;
    let mut tasks = Vec::new();
    for (i, poster) in posters.iter().enumerate() {
        let api = if i % 2 == 0 {
            a.api(Some(&poster.token))
        } else {
            b.api(Some(&poster.token))
        };
        tasks.push(tokio::spawn(async move {
            for n in 0..PER_POSTER {
                api.post_alert(&casing_at(&format!("poster {i} alert {n}"), MANHATTAN, 5.0))
                    .await;
            }
        }));
    }
    // Halfway, cut every node's LISTEN connection.
    let first = on_b.take(100).await;
    let database = a.postgres_database().expect("postgres").to_owned();
    let terminated = psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{database}' AND query ILIKE '%LISTEN%'"
    ));
    assert_eq!(terminated, "2", "one LISTEN connection per node");
    let rest = on_b.take(100).await;
    for task in tasks {
        task.await.expect("poster");
    }
    let mut on_b_seqs = seqs(&first);
    on_b_seqs.extend(seqs(&rest));
    let on_a_seqs = seqs(&on_a.take(200).await);
    let expected: Vec<i64> = (1..=200).collect();
    assert_eq!(on_a_seqs, expected, "node A: every seq once, in order");
    assert_eq!(on_b_seqs, expected, "node B: every seq once, in order");
    on_a.assert_quiet(Duration::from_millis(300)).await;
    on_b.assert_quiet(Duration::from_millis(300)).await;
    let ids: HashSet<i64> = first.iter().chain(&rest).map(Received::alert_id).collect();
    assert_eq!(ids.len(), 200);

    // Replay from 0, on either node, gives the same list.
    for node in [&a, &b] {
        let mut replay = open(node, &wide_b, Some(0)).await;
        assert_eq!(seqs(&replay.take(200).await), expected);
    }
}

#[tokio::test]
async fn suspension_and_revocation_on_one_node_close_streams_on_another() {
    let a = TestServer::start_on_postgres().await;
    let b = a.another_node().await;
    let staff = a.staff_token("moderator");
    let store = a
        .member(&staff, "Main Street Jewelers", MANHATTAN, 25.0)
        .await;
    let device = a
        .api(Some(&store.token))
        .post("/v1/me/tokens", &json!({ "label": "tablet" }))
        .await;
    let device_member = Member {
        token: device.str("token").to_owned(),
        ..store.clone()
    };
    let mut device_on_b = open(&b, &device_member, None).await;
    a.api(Some(&store.token))
        .delete(&format!("/v1/me/tokens/{}", device.i64("id")))
        .await;
    assert_eq!(
        device_on_b.closed().await,
        Some(4001),
        "revoked on A, closed on B"
    );

    let mut store_on_b = open(&b, &store, None).await;
    a.api(Some(&staff))
        .post(
            &format!("/v1/stores/{}/suspend", store.id),
            &json!({ "reason": "abuse" }),
        )
        .await;
    assert_eq!(
        store_on_b.closed().await,
        Some(4001),
        "suspended on A, closed on B"
    );
    assert!(b.readyz_becomes(200).await);
}

#[tokio::test]
async fn a_store_that_moves_on_one_node_is_re_indexed_on_another() {
    let a = TestServer::start_on_postgres().await;
    let b = a.another_node().await;
    let staff = a.staff_token("moderator");
    let author = a.member(&staff, "Author", BOSTON, 1.0).await;
    let mover = a.member(&staff, "Mover", MANHATTAN, 1.0).await;
    let mut on_b = open(&b, &mover, None).await;
    // The mover now looks at Boston: asked and approved through node A.
    let asked = a
        .api(Some(&mover.token))
        .patch(
            "/v1/me",
            &json!({ "location": { "lat": BOSTON.0, "lon": BOSTON.1 } }),
        )
        .await;
    assert_eq!(asked.status, 202, "{asked:?}");
    let moved = a
        .api(Some(&staff))
        .post(&format!("/v1/stores/{}/approve-move", mover.id), &json!({}))
        .await;
    assert_eq!(moved.status, 200, "{moved:?}");
    // Give node B time to hear of it (no speed is asserted), then post in Boston.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let posted = a
        .api(Some(&author.token))
        .post_alert(&casing_at("in Boston", BOSTON, 1.0))
        .await;
    assert_eq!(on_b.next().await["alert"]["id"], posted["id"]);
}

#[tokio::test]
async fn a_node_that_cannot_listen_is_not_ready_then_catches_up_and_rechecks_its_streams() {
    let a = TestServer::start_on_postgres().await;
    let b = a.another_node().await;
    let staff = a.staff_token("moderator");
    let author = a.member(&staff, "Author", MANHATTAN, 1.0).await;
    let reader = a.member(&staff, "Reader", BROOKLYN, 25.0).await;
    let mut on_b = open(&b, &reader, None).await;
    let device = a
        .api(Some(&reader.token))
        .post("/v1/me/tokens", &json!({ "label": "tablet" }))
        .await;
    let device_member = Member {
        token: device.str("token").to_owned(),
        ..reader.clone()
    };
    let mut device_on_b = open(&b, &device_member, None).await;
    assert!(b.readyz_becomes(200).await);

    // Node A keeps serving through the outage on connections it already
    // holds: open a few now.
    let warm: Vec<_> = (0..8).map(|_| a.api(Some(&author.token))).collect();
    futures_util::future::join_all(warm.iter().map(|api| api.get("/v1/alerts"))).await;

    // No new connections to the database, then cut the LISTEN ones: the
    // nodes cannot listen again until connections are allowed.
    let database = a.postgres_database().expect("postgres").to_owned();
    psql(&format!(
        "ALTER DATABASE {database} ALLOW_CONNECTIONS false"
    ));
    psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{database}' AND query ILIKE '%LISTEN%'"
    ));
    assert!(
        b.readyz_becomes(503).await,
        "not ready while deaf to the others"
    );
    // Posted on A meanwhile (A's pool still has its connections).
    let reply = a
        .api(Some(&author.token))
        .post(
            "/v1/alerts",
            &casing_at("while B was deaf", MANHATTAN, 25.0),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}\n{}", a.logs());
    let posted = reply.body;
    // Revoked on A while B hears nothing of it.
    let revoked = a
        .api(Some(&reader.token))
        .delete(&format!("/v1/me/tokens/{}", device.i64("id")))
        .await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    psql(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"));
    assert!(b.readyz_becomes(200).await, "ready again");
    let frame = on_b.next().await;
    assert_eq!(frame["alert"]["id"], posted["id"], "nothing lost");
    assert_eq!(
        device_on_b.closed().await,
        Some(4001),
        "B re-checked its streams after listening again"
    );
}
