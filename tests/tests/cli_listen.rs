//! What `p4p listen` says and does when it cannot deliver: a store that may
//! not listen yet (pending) or now (suspended) is told the truth and waits,
//! coming back by itself when the association acts; a rejected pledge ends
//! it with the reason; a failing `--exec` command is retried and holds the
//! saved position until it succeeds.

use std::path::Path;
use std::time::Duration;

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::json;

/// Retries of a held listener every second, so the tests need not wait a minute.
const FAST_RETRY: [&str; 2] = ["--held-retry-secs", "1"];

/// Reads the listener's stderr until it says `needle`; all it said.
async fn stderr_until(listen: &mut Listening, needle: &str) -> String {
    let mut said = String::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !said.contains(needle) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "p4p listen never said `{needle}`: {said}"
        );
        said.push_str(&listen.drain_stderr().await);
    }
    said
}

fn read_seq(state: &Path) -> Option<i64> {
    std::fs::read_to_string(state).ok()?.trim().parse().ok()
}

/// The id of the one store whose pledge awaits approval.
async fn pending_store_id(server: &TestServer, staff: &str) -> i64 {
    let pending = server
        .api(Some(staff))
        .get("/v1/stores?status=pending")
        .await;
    pending.body["stores"][0]["id"]
        .as_i64()
        .expect("pending store")
}

async fn apply_from_the_cli(server: &TestServer, home: &Path) {
    server
        .run_cli(
            home,
            &[
                "pledge",
                "--name",
                "Gold & Co",
                "--address",
                "1 Main St",
                "--lat",
                "40.7357",
                "--lon",
                "-74.1724",
                "--contact",
                "Ada Diamond",
                "--email",
                "ada@example.com",
            ],
        )
        .await
        .expect_ok("Pledge received");
}

#[tokio::test]
async fn a_pending_store_is_told_it_waits_and_listens_once_approved() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let home = tempfile::tempdir().expect("home");
    apply_from_the_cli(&server, home.path()).await;

    let mut listen = server.spawn_listen(home.path(), &FAST_RETRY);
    let said = stderr_until(&mut listen, "pending approval").await;
    assert!(!said.contains("no token"), "{said}");
    let store_id = pending_store_id(&server, &staff).await;
    server
        .api(Some(&staff))
        .post(&format!("/v1/stores/{store_id}/approve"), &json!({}))
        .await;
    stderr_until(&mut listen, "connected").await;
    server
        .api(Some(&poster.token))
        .post_alert(&casing_at("Two men casing showcases", NEWARK, 25.0))
        .await;
    let lines = listen.lines_until("Title:").await;
    assert!(
        lines.concat().contains("Two men casing showcases"),
        "{lines:?}"
    );
    listen.stop().await;
    // The token it claimed is saved, as `p4p pledge status` would have.
    server
        .run_cli(home.path(), &["whoami"])
        .await
        .expect_ok("Gold & Co");
}

#[tokio::test]
async fn a_rejected_store_is_told_why_and_the_listener_exits() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let home = tempfile::tempdir().expect("home");
    apply_from_the_cli(&server, home.path()).await;
    let store_id = pending_store_id(&server, &staff).await;
    server
        .api(Some(&staff))
        .post(
            &format!("/v1/stores/{store_id}/reject"),
            &json!({ "reason": "Not a jewelry store" }),
        )
        .await;
    let mut listen = server.spawn_listen(home.path(), &FAST_RETRY);
    assert_eq!(listen.wait().await, Some(1));
    let said = listen.drain_stderr().await;
    assert!(
        said.contains("rejected") && said.contains("Not a jewelry store"),
        "{said}"
    );
}

#[tokio::test]
async fn a_suspended_store_waits_and_comes_back_with_the_token_in_the_config_file() {
    let (server, staff, store) = TestServer::with_store().await;
    let poster = server.member(&staff, "Poster", BROOKLYN, 25.0).await;
    let home = server.logged_in(&store.token, "Logged in").await;

    let mut listen = server.spawn_listen(home.path(), &FAST_RETRY);
    stderr_until(&mut listen, "connected").await;
    server
        .api(Some(&staff))
        .post(
            &format!("/v1/stores/{}/suspend", store.id),
            &json!({ "reason": "Posted false alerts" }),
        )
        .await;
    let said = stderr_until(&mut listen, "suspended").await;
    assert!(
        said.contains("p4p pledge claim"),
        "says how to claim again: {said}"
    );
    // Said once, however often it tries.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = listen.drain_stderr().await;
    assert!(!again.contains("suspended"), "said once: {again}");

    // Staff reinstate it (every old token dies) and hand it a claim
    // secret; the store claims a new token, which the CLI saves in its
    // config file: the listener takes it and listens again.
    let reinstated = server
        .api(Some(&staff))
        .post(&format!("/v1/stores/{}/reinstate", store.id), &json!({}))
        .await;
    let secret = reinstated.str("claim_secret").to_owned();
    let id = store.id.to_string();
    server
        .run_cli(home.path(), &["pledge", "claim", &id, "--secret", &secret])
        .await
        .expect_ok("");
    let said = stderr_until(&mut listen, "connected").await;
    assert!(said.contains("new token"), "{said}");
    server
        .api(Some(&poster.token))
        .post_alert(&casing_at("Back on the network", MANHATTAN, 25.0))
        .await;
    let lines = listen.lines_until("Title:").await;
    assert!(lines.concat().contains("Back on the network"), "{lines:?}");
    listen.stop().await;
}

#[tokio::test]
async fn a_failing_exec_is_retried_and_the_position_waits_until_it_succeeds() {
    let (server, staff, store) = TestServer::with_store().await;
    let poster = server.member(&staff, "Poster", BROOKLYN, 25.0).await;
    let home = tempfile::tempdir().expect("home");
    let state = home.path().join("listen.seq");
    let count = home.path().join("runs");
    let done = home.path().join("done.jsonl");
    // Fails on its first two runs, then records the frame.
    let exec = format!(
        "n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; \
         [ $n -ge 3 ] && cat >> {done}",
        count = count.display(),
        done = done.display()
    );
    let state_text = state.display().to_string();
    let mut listen = server.spawn_listen(
        home.path(),
        &[
            "--token",
            &store.token,
            "--state-file",
            &state_text,
            "--exec",
            &exec,
        ],
    );
    stderr_until(&mut listen, "connected").await;
    let head = read_seq(&state).expect("the head is saved on connecting");
    server
        .api(Some(&poster.token))
        .post_alert(&casing_at("Two men casing showcases", MANHATTAN, 25.0))
        .await;

    let said = stderr_until(&mut listen, "running it again in 1 s").await;
    assert_eq!(
        read_seq(&state),
        Some(head),
        "not moved after a failure: {said}"
    );
    let said = stderr_until(&mut listen, "running it again in 2 s").await;
    assert_eq!(
        read_seq(&state),
        Some(head),
        "not moved after two failures: {said}"
    );

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while std::fs::read_to_string(&state).unwrap_or_default().trim() == head.to_string() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the position never moved"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let position = read_seq(&state).expect("a seq");
    let recorded = std::fs::read_to_string(&done).expect("the third run recorded it");
    assert_eq!(
        Received::parse(recorded.trim()).seq(),
        position,
        "moved exactly to the event, once it succeeded"
    );
    assert_eq!(std::fs::read_to_string(&count).expect("runs").trim(), "3");
    println!("--exec ran 3 times for seq {position}; the position moved from {head} only after the third");
    listen.stop().await;
}

#[tokio::test]
async fn exec_failures_skip_moves_on() {
    let (server, staff, store) = TestServer::with_store().await;
    let poster = server.member(&staff, "Poster", BROOKLYN, 25.0).await;
    let home = tempfile::tempdir().expect("home");
    let state = home.path().join("listen.seq");
    let state_text = state.display().to_string();
    let mut listen = server.spawn_listen(
        home.path(),
        &[
            "--token",
            &store.token,
            "--state-file",
            &state_text,
            "--exec",
            "exit 1",
            "--exec-failures",
            "skip",
        ],
    );
    stderr_until(&mut listen, "connected").await;
    let head = read_seq(&state).expect("the head is saved on connecting");
    server
        .api(Some(&poster.token))
        .post_alert(&casing_at("Two men casing showcases", MANHATTAN, 25.0))
        .await;
    stderr_until(&mut listen, "skipping it").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if read_seq(&state).is_some_and(|seq| seq > head) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the position never moved"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    listen.stop().await;
}
