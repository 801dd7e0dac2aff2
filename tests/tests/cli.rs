//! The real `p4p` CLI against the real server: the quick start, post and
//! listen talking to each other, listen resuming after a restart, errors.

use std::time::Duration;

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::json;

#[tokio::test]
async fn the_quick_start_works_as_written() {
    // The server's own default: a new store's first alerts wait.
    let server = TestServer::start_with(&["--probation-alerts", "3"]).await;
    let staff_home = tempfile::tempdir().expect("home");
    let store_home = tempfile::tempdir().expect("home");
    let listener_home = tempfile::tempdir().expect("home");
    let staff = server.staff_token("admin");

    let login = server
        .run_cli(staff_home.path(), &["login", "--token", &staff])
        .await;
    assert!(login.success, "{login:?}");
    assert!(login.stdout.contains("admin"), "{login:?}");
    let config = staff_home.path().join("config/p4p/config.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config)
        .expect("config saved")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the config file holds a token");

    let pledge = server
        .run_cli(
            store_home.path(),
            &[
                "pledge",
                "--name",
                "Main Street Jewelers",
                "--address",
                "1 Main St, New York",
                "--lat",
                "40.7128",
                "--lon",
                "-74.0060",
                "--contact",
                "Ann Lee",
                "--email",
                "ann@example.com",
                "--radius-km",
                "30",
            ],
        )
        .await;
    assert!(pledge.success, "{pledge:?}");
    assert!(pledge.stdout.contains("store #1 is pending"), "{pledge:?}");
    server
        .run_cli(store_home.path(), &["pledge", "status"])
        .await
        .expect_ok("pending approval");

    server
        .run_cli(staff_home.path(), &["stores", "--status", "pending"])
        .await
        .expect_ok("Main Street Jewelers");
    server
        .run_cli(staff_home.path(), &["stores", "approve", "1"])
        .await
        .expect_ok("now approved");

    server
        .run_cli(store_home.path(), &["pledge", "status"])
        .await
        .expect_ok("approved; token saved");
    server
        .run_cli(store_home.path(), &["pledge", "status"])
        .await
        .expect_ok("already saved");
    let whoami = server.run_cli(store_home.path(), &["whoami"]).await;
    assert!(whoami.stdout.contains("Main Street Jewelers"), "{whoami:?}");

    // A neighbour listens in Brooklyn, about 8 km away.
    let neighbour = server.member(&staff, "Brooklyn Gold", BROOKLYN, 5.0).await;
    let login = server
        .run_cli(
            listener_home.path(),
            &["login", "--token", &neighbour.token],
        )
        .await;
    assert!(login.success, "{login:?}");
    let mut listen = server.spawn_listen(listener_home.path(), &[]);
    // Human output: wait until it is connected (stderr says so), then post.
    let connected = tokio::time::timeout(PATIENCE, listen_connected(&mut listen)).await;
    assert!(connected.is_ok(), "p4p listen did not connect");

    let post = server
        .run_cli(
            store_home.path(),
            &[
                "post",
                "--kind",
                "casing",
                "--title",
                "Two men casing showcases",
                "--suspect",
                "clothing=red hoodie; shoes=white sneakers; hair=short black",
                "--vehicle",
                "make=Honda; color=silver; plate=ABC1234",
            ],
        )
        .await;
    assert!(post.success, "{post:?}");
    assert_eq!(
        post.stdout.trim(),
        "Posted alert #1 (pending: new member: held until a moderator approves it \
         (probation: a new store's first 3 alerts wait for review; 0 published so far))",
        "on probation, and says so"
    );
    server
        .run_cli(staff_home.path(), &["mod", "queue"])
        .await
        .expect_ok("Two men casing showcases");
    server
        .run_cli(staff_home.path(), &["mod", "approve", "1"])
        .await
        .expect_ok("Alert #1 is now published.");

    let block = listen.lines_until("seq").await.join("\n");
    for expected in [
        "ALERT casing",
        "km away",
        "Two men casing showcases",
        "red hoodie",
        "white sneakers",
        "short black",
        "ABC1234",
        "Main Street Jewelers",
    ] {
        assert!(
            block.contains(expected),
            "`{expected}` missing from:\n{block}"
        );
    }
    assert_eq!(listen.stop().await, Some(0));

    let alerts = server.run_cli(listener_home.path(), &["alerts"]).await;
    assert!(
        alerts.stdout.contains("Two men casing showcases"),
        "{alerts:?}"
    );
    let shown = server.run_cli(listener_home.path(), &["show", "1"]).await;
    assert!(
        shown.stdout.contains("ABC1234") && shown.stdout.contains("published"),
        "{shown:?}"
    );
}

/// Reads `p4p listen`'s stderr until it says it is connected.
async fn listen_connected(listen: &mut Listening) {
    loop {
        let text = listen.drain_stderr().await;
        if text.contains("connected") {
            return;
        }
    }
}

#[tokio::test]
async fn post_and_listen_json_talk_to_each_other() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let reader = server.member(&staff, "Reader", NEWARK, 5.0).await;
    let poster_home = server.logged_in(&poster.token, "Poster").await;
    let reader_home = server.logged_in(&reader.token, "Reader").await;

    let mut listen = server.spawn_listen(reader_home.path(), &["--json"]);
    let hello = listen.frame().await;
    assert_eq!(hello.hello().store_id, Some(reader.id));

    let post = server
        .run_cli(
            poster_home.path(),
            &[
                "post",
                "--kind",
                "grab_and_run",
                "--title",
                "Grabbed a tray of rings",
                "--lat",
                "40.72",
                "--lon",
                "-74.01",
                "--radius-km",
                "20",
                "--suspect",
                "sex=female; age=20s; clothing=black puffer jacket",
            ],
        )
        .await;
    assert!(post.success, "{post:?}");
    let frame = listen.frame().await;
    assert_eq!(frame["type"], "alert");
    assert_eq!(frame["alert"]["kind"], "grab_and_run");
    assert_eq!(frame["alert"]["title"], "Grabbed a tray of rings");
    assert_eq!(frame["alert"]["radius_km"], 20.0);
    assert_eq!(
        frame["alert"]["suspects"][0]["clothing"],
        "black puffer jacket"
    );
    assert!(
        frame.distance_km().is_some_and(|d| d > 10.0 && d < 20.0),
        "{frame}"
    );
    assert_eq!(listen.stop().await, Some(0));
}

#[tokio::test]
async fn listen_resumes_after_a_restart_missing_nothing() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let reader = server.member(&staff, "Reader", BROOKLYN, 25.0).await;
    let home = server.logged_in(&reader.token, "Reader").await;
    let api = server.api(Some(&poster.token));
    let exec_log = home.path().join("exec.jsonl");
    let exec = format!("cat >> {}", exec_log.display());

    let mut listen = server.spawn_listen(home.path(), &["--json", "--exec", &exec]);
    listen.frame().await;
    let first = api.post_alert(&casing_at("first", MANHATTAN, 25.0)).await;
    assert_eq!(listen.frame().await["alert"]["id"], first["id"]);
    assert_eq!(listen.stop().await, Some(0));

    // While it is down, two more.
    let second = api.post_alert(&casing_at("second", MANHATTAN, 25.0)).await;
    let third = api.post_alert(&casing_at("third", MANHATTAN, 25.0)).await;

    let mut listen = server.spawn_listen(home.path(), &["--json", "--exec", &exec]);
    assert_eq!(listen.frame().await["type"], "hello");
    assert_eq!(listen.frame().await["alert"]["id"], second["id"]);
    assert_eq!(listen.frame().await["alert"]["id"], third["id"]);
    listen.assert_quiet(Duration::from_millis(500)).await;
    assert_eq!(listen.stop().await, Some(0));

    // --exec saw each alert once, as JSON on its standard input.
    let log = std::fs::read_to_string(&exec_log).expect("exec log");
    let ids: Vec<i64> = log
        .lines()
        .map(|line| Received::parse(line).alert_id())
        .collect();
    let expected: Vec<i64> = [&first, &second, &third].into_iter().map(id_of).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn listen_rides_out_a_server_restart() {
    let mut server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let reader = server.member(&staff, "Reader", BROOKLYN, 25.0).await;
    let home = tempfile::tempdir().expect("home");
    let port = server.url.rsplit(':').next().expect("port").to_owned();
    let url = server.url.clone();
    let mut listen = server.spawn_listen(home.path(), &["--json", "--token", &reader.token]);
    listen.frame().await;
    server.stop("-TERM").await;
    // Same port, same database, while the listener keeps trying.
    server
        .launch(&format!("127.0.0.1:{port}"), &["--probation-alerts", "0"])
        .await;
    assert_eq!(server.url, url);
    let alert = server
        .api(Some(&poster.token))
        .post_alert(&casing_at("after restart", MANHATTAN, 25.0))
        .await;
    let mut frame = listen.frame().await;
    if frame["type"] == "hello" {
        frame = listen.frame().await;
    }
    assert_eq!(frame["alert"]["id"], alert["id"]);
    assert_eq!(listen.stop().await, Some(0));
}

#[tokio::test]
async fn errors_print_the_servers_detail_in_one_line_and_exit_non_zero() {
    let (server, _, store) = TestServer::with_store().await;
    let home = tempfile::tempdir().expect("home");
    let empty = tempfile::tempdir().expect("home");

    let no_token = server.run_cli(empty.path(), &["alerts"]).await;
    assert!(!no_token.success);
    assert!(no_token.stderr.contains("p4p login"), "{no_token:?}");

    server
        .run_cli(home.path(), &["login", "--token", &store.token])
        .await;
    let bad = server
        .run_cli(
            home.path(),
            &[
                "post",
                "--kind",
                "casing",
                "--title",
                "x",
                "--radius-km",
                "900",
            ],
        )
        .await;
    assert!(!bad.success);
    assert_eq!(
        bad.stderr.trim(),
        "error: radius_km must be between 0.5 and 500 km"
    );
    let missing = server.run_cli(home.path(), &["show", "999"]).await;
    assert!(!missing.success);
    assert_eq!(missing.stderr.trim(), "error: no alert with id 999");
    let forbidden = server
        .run_cli(home.path(), &["stores", "approve", "1"])
        .await;
    assert!(!forbidden.success);
    assert!(
        forbidden
            .stderr
            .trim()
            .starts_with("error: only association staff"),
        "{forbidden:?}"
    );
    let bad_spec = server
        .run_cli(
            home.path(),
            &[
                "post",
                "--kind",
                "casing",
                "--title",
                "x",
                "--suspect",
                "colour=red",
            ],
        )
        .await;
    assert!(!bad_spec.success);
    assert!(bad_spec.stderr.contains("colour"), "{bad_spec:?}");
    let unknown_kind = server
        .run_cli(
            home.path(),
            &["post", "--kind", "shoplifting", "--title", "x"],
        )
        .await;
    assert!(!unknown_kind.success);
    assert!(
        unknown_kind.stderr.contains("casing"),
        "lists the kinds: {unknown_kind:?}"
    );

    let unreachable = server
        .run_cli(home.path(), &["--server", "http://127.0.0.1:9", "alerts"])
        .await;
    assert!(!unreachable.success);
    assert!(
        unreachable.stderr.contains("cannot reach"),
        "{unreachable:?}"
    );

    let json = server.run_cli(home.path(), &["--json", "alerts"]).await;
    assert!(json.success);
    let page: serde_json::Value = serde_json::from_str(&json.stdout).expect("--json prints JSON");
    assert_eq!(page["alerts"], json!([]));
}

#[tokio::test]
async fn a_revoked_listener_stops_with_an_error() {
    let (server, _staff, store) = TestServer::with_store().await;
    let home = tempfile::tempdir().expect("home");
    let mut listen = server.spawn_listen(home.path(), &["--json", "--token", &store.token]);
    listen.frame().await;
    // A suspended store waits for reinstatement (tests/cli_listen.rs); a
    // revoked token has nothing to wait for.
    let api = server.api(Some(&store.token));
    let me = api.get("/v1/me").await;
    let revoked = api
        .delete(&format!("/v1/me/tokens/{}", me.body["token"]["id"]))
        .await;
    assert!(revoked.status < 300, "{revoked:?}");
    assert_eq!(listen.wait().await, Some(1));
    let stderr = listen.drain_stderr().await;
    assert!(stderr.contains("error"), "{stderr}");
}

#[tokio::test]
async fn staff_work_the_queue_and_stores_edit_retract_and_flag_from_the_cli() {
    let server = TestServer::start_with(&["--probation-alerts", "1"]).await;
    let admin = server.staff_token("admin");
    let author = server
        .member(&admin, "Main Street Jewelers", MANHATTAN, 25.0)
        .await;
    let neighbour = server.member(&admin, "Brooklyn Gold", BROOKLYN, 25.0).await;
    let staff_home = server.logged_in(&admin, "admin").await;
    let author_home = server.logged_in(&author.token, "Main Street").await;
    let neighbour_home = server.logged_in(&neighbour.token, "Brooklyn").await;

    // Staff listen too: pending and flag frames are marked.
    let mut staff_listen = server.spawn_listen(staff_home.path(), &[]);
    tokio::time::timeout(PATIENCE, listen_connected(&mut staff_listen))
        .await
        .expect("connected");
    let mut neighbour_listen = server.spawn_listen(neighbour_home.path(), &[]);
    tokio::time::timeout(PATIENCE, listen_connected(&mut neighbour_listen))
        .await
        .expect("connected");

    // The author's first alert waits: probation.
    server
        .run_cli(
            author_home.path(),
            &["post", "--kind", "casing", "--title", "Two men casing"],
        )
        .await
        .expect_ok("Posted alert #1 (pending: new member: held until a moderator approves it");
    staff_listen.lines_until("PENDING MODERATION #1").await;
    let queue = server
        .run_cli(staff_home.path(), &["mod", "queue"])
        .await
        .expect_ok("Pending approval (1)");
    assert!(queue.stdout.contains("Two men casing"), "{queue:?}");
    server
        .run_cli(staff_home.path(), &["mod", "approve", "1"])
        .await
        .expect_ok("Alert #1 is now published.");
    neighbour_listen.lines_until("Two men casing").await;
    server
        .run_cli(staff_home.path(), &["mod", "verify", "1"])
        .await
        .expect_ok("Alert #1 is now verified.");
    neighbour_listen.lines_until("UPDATED #1").await;

    // The author corrects the title; the neighbour sees the update.
    server
        .run_cli(
            author_home.path(),
            &[
                "edit",
                "1",
                "--title",
                "Two men casing, left in a silver sedan",
            ],
        )
        .await
        .expect_ok("Updated alert #1 (published).");
    neighbour_listen.lines_until("silver sedan").await;

    // The neighbour flags it; staff see the flag.
    server
        .run_cli(
            neighbour_home.path(),
            &["flag", "1", "--reason", "Wrong store name"],
        )
        .await
        .expect_ok("Flagged alert #1");
    staff_listen.lines_until("FLAGGED #1").await;
    server
        .run_cli(neighbour_home.path(), &["flag", "1", "--reason", "again"])
        .await
        .expect_error("already flagged");

    // The author retracts; the neighbour sees it go.
    server
        .run_cli(
            author_home.path(),
            &["retract", "1", "--reason", "Duplicate of 41"],
        )
        .await
        .expect_ok("Retracted alert #1.");
    let lines = neighbour_listen.lines_until("RETRACTED #1").await;
    assert!(
        lines.last().is_some_and(|l| l.contains("Duplicate of 41")),
        "{lines:?}"
    );
    server
        .run_cli(author_home.path(), &["retract", "1", "--reason", "again"])
        .await
        .expect_error("retracted");

    // A second alert, rejected from the queue.
    server
        .run_cli(
            author_home.path(),
            &["post", "--kind", "fraud", "--title", "Fake cheque"],
        )
        .await
        .expect_ok("(published)");
    let rejected = server
        .run_cli(staff_home.path(), &["mod", "reject", "2", "--reason", "x"])
        .await;
    rejected.expect_error("published");

    let audit = server
        .run_cli(staff_home.path(), &["audit", "--limit", "50"])
        .await
        .expect_ok("alert.retract");
    for action in [
        "alert.approve",
        "alert.verify",
        "alert.edit",
        "alert.flag",
        "store.approve",
    ] {
        assert!(
            audit.stdout.contains(action),
            "{action} missing: {}",
            audit.stdout
        );
    }
    assert!(audit.stdout.contains("Duplicate of 41"));
    let json = server
        .run_cli(staff_home.path(), &["--json", "audit"])
        .await;
    let page: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert!(page["entries"].as_array().is_some_and(|e| !e.is_empty()));
    server
        .run_cli(author_home.path(), &["audit"])
        .await
        .expect_error("only association staff");
    assert_eq!(staff_listen.stop().await, Some(0));
    assert_eq!(neighbour_listen.stop().await, Some(0));
}

#[tokio::test]
async fn listen_waits_as_long_as_the_server_asks_when_refused_429() {
    // One stream per token; pings every 2 s, so a refused stream is told to
    // come back in 4 s (when a dead connection would have been found).
    let server =
        TestServer::start_with(&["--streams-per-token", "1", "--ping-interval-secs", "2"]).await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    let home = server.logged_in(&store.token, "").await;
    // Another device holds the token's one stream.
    let mut other = server.stream(&store.token, None).await;
    hello_head(&other.next().await);
    let mut listen = server.spawn_listen(home.path(), &["--json"]);
    let mut said = String::new();
    let refused = tokio::time::timeout(PATIENCE, async {
        while !said.contains("reconnecting in") {
            said.push_str(&listen.drain_stderr().await);
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "listen did not say it would reconnect: {said}"
    );
    assert!(said.contains("429"), "{said}");
    assert!(said.contains("reconnecting in 4 s"), "{said}");
    // Once the other stream goes, listen gets in by itself.
    other.close().await;
    let hello = listen.frame().await;
    assert_eq!(hello["type"], "hello");
    server
        .api(Some(&store.token))
        .post_alert(&casing_at("after the wait", MANHATTAN, 25.0))
        .await;
    assert_eq!(listen.frame().await["alert"]["title"], "after the wait");
    listen.stop().await;
}
