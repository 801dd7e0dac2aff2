//! What members see is true, and what they do is safe (issue 11, findings
//! 1, 8, 9 and 10): withdrawn content never comes back, an edit from a
//! stale read changes nothing, a retried post posts once, and an erased
//! alert leaves the database.

use std::time::Duration;

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::{json, Value};

/// Every frame a fresh replay from 0 gives, until the stream is quiet.
async fn replay_all(server: &TestServer, token: &str) -> Vec<Received> {
    let mut stream = server.stream(token, Some(0)).await;
    let head = hello_head(&stream.next().await);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = stream.next_within(Duration::from_millis(500)).await {
        let seq = frame.frame.seq().unwrap_or(0);
        frames.push(frame);
        if seq >= head {
            break;
        }
    }
    frames
}

fn with_vehicle(title: &str, plate: &str) -> Value {
    let mut alert = casing_at(title, MANHATTAN, 25.0);
    alert["vehicles"] = json!([{ "make": "Honda", "color": "silver", "plate": plate }]);
    alert["suspects"] = json!([{ "clothing": format!("jacket of {plate}") }]);
    alert
}

/// Finding 1: a store approved after the facts replays from 0 and must get
/// nothing of an alert held by flags then rejected, of a retracted alert,
/// nor the old plate of an edited one; the database keeps none of it in
/// stored event bodies either.
#[tokio::test]
async fn a_store_approved_later_replays_nothing_that_was_withdrawn() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let author = server.member(&staff, "Author", MANHATTAN, 25.0).await;
    let flaggers = [
        server.member(&staff, "F1", BROOKLYN, 25.0).await,
        server.member(&staff, "F2", BROOKLYN, 25.0).await,
        server.member(&staff, "F3", BROOKLYN, 25.0).await,
    ];
    let author_api = server.api(Some(&author.token));
    let mod_api = server.api(Some(&staff));

    let defamatory = id_of(
        &author_api
            .post_alert(&with_vehicle("held then rejected", "HELD111"))
            .await,
    );
    for flagger in &flaggers {
        let flagged = server
            .api(Some(&flagger.token))
            .flag(defamatory, "not him")
            .await;
        assert_eq!(flagged.status, 201, "{flagged:?}");
    }
    let rejected = mod_api
        .post(
            &format!("/v1/alerts/{defamatory}/reject"),
            &json!({ "reason": "defamatory" }),
        )
        .await;
    assert_eq!(rejected.status, 200, "{rejected:?}");
    let retracted = id_of(
        &author_api
            .post_alert(&with_vehicle("retracted by its author", "RETR222"))
            .await,
    );
    author_api
        .post(
            &format!("/v1/alerts/{retracted}/retract"),
            &json!({ "reason": "my mistake" }),
        )
        .await;
    let edited = id_of(
        &author_api
            .post_alert(&with_vehicle("edited plate", "OLDP333"))
            .await,
    );
    let fixed = author_api
        .patch(
            &format!("/v1/alerts/{edited}"),
            &json!({ "vehicles": [{ "make": "Honda", "color": "silver", "plate": "NEWP444" }],
                     "suspects": [] }),
        )
        .await;
    assert_eq!(fixed.status, 200, "{fixed:?}");

    let newcomer = server.member(&staff, "Newcomer", NEWARK, 25.0).await;
    for (who, token) in [
        ("a new store", newcomer.token.as_str()),
        ("staff", staff.as_str()),
    ] {
        let frames = replay_all(&server, token).await;
        let text = serde_json::to_string(&frames).expect("json");
        for withdrawn in [
            "HELD111",
            "RETR222",
            "OLDP333",
            "held then rejected",
            "retracted by its author",
        ] {
            assert!(
                !text.contains(withdrawn),
                "{who} replayed {withdrawn}: {text}"
            );
        }
        assert!(
            text.contains("NEWP444"),
            "{who} gets the current version: {text}"
        );
        for id in [defamatory, retracted] {
            assert!(
                frames
                    .iter()
                    .any(|f| f["type"] == "retract" && f["alert_id"] == id),
                "{who} still gets the retract of {id}: {text}"
            );
        }
        println!("{who} replayed {} frames, none withdrawn", frames.len());
    }
    for id in [defamatory, retracted] {
        server
            .api(Some(&newcomer.token))
            .get(&format!("/v1/alerts/{id}"))
            .await
            .problem(404, "not_found");
    }
    let events = server.stored_text().await;
    for withdrawn in ["HELD111", "RETR222", "OLDP333"] {
        let in_bodies = events.lines().filter(|l| l.contains(withdrawn)).count();
        // The alerts table keeps the withdrawn alert for its author and staff
        // (one row each); no stream event body holds it.
        assert!(
            in_bodies <= 1,
            "{withdrawn} is stored {in_bodies} times:\n{events}"
        );
    }
}

/// Finding 8: an author's edit from a stale read no longer undoes a
/// moderator's change: `If-Match` with the old version is 412 and changes
/// nothing; concurrent edits from one read give exactly one 200.
#[tokio::test]
async fn an_edit_from_a_stale_read_is_refused_412_and_changes_nothing() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let author = server.member(&staff, "Author", MANHATTAN, 25.0).await;
    let author_api = server.api(Some(&author.token));
    let mod_api = server.api(Some(&staff));
    let posted = author_api
        .post("/v1/alerts", &with_vehicle("plate read wrong", "AAA0001"))
        .await;
    assert_eq!(posted.status, 201);
    assert_eq!(posted.header("etag"), Some("\"1\""));
    assert_eq!(posted.body["version"], 1);
    let id = id_of(&posted.body);
    let read = author_api.get(&format!("/v1/alerts/{id}")).await;
    assert_eq!(read.header("etag"), Some("\"1\""));

    let by_moderator = mod_api
        .send_with(
            "PATCH",
            &format!("/v1/alerts/{id}"),
            Some(&json!({ "title": "plate corrected by the association" })),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(by_moderator.status, 200, "{by_moderator:?}");
    assert_eq!(by_moderator.header("etag"), Some("\"2\""));
    let stale = author_api
        .send_with(
            "PATCH",
            &format!("/v1/alerts/{id}"),
            Some(&json!({ "title": "my old title" })),
            &[("if-match", "\"1\"")],
        )
        .await;
    let detail = stale.problem(412, "precondition_failed");
    assert!(detail.contains("version 2"), "{detail}");
    let now = mod_api.get(&format!("/v1/alerts/{id}")).await;
    assert_eq!(now.body["title"], "plate corrected by the association");
    assert_eq!(now.body["version"], 2);

    for (action, body) in [
        ("retract", json!({ "reason": "stale" })),
        ("verify", json!({})),
    ] {
        mod_api
            .send_with(
                "POST",
                &format!("/v1/alerts/{id}/{action}"),
                Some(&body),
                &[("if-match", "\"1\"")],
            )
            .await
            .problem(412, "precondition_failed");
    }
    for bad in ["one", "\"\"", "\"0\""] {
        let refused = author_api
            .send_with(
                "PATCH",
                &format!("/v1/alerts/{id}"),
                Some(&json!({ "title": "x" })),
                &[("if-match", bad)],
            )
            .await;
        let detail = refused.problem(400, "bad_request");
        assert!(detail.contains("If-Match"), "{detail}");
    }
    let verified = mod_api
        .send_with(
            "POST",
            &format!("/v1/alerts/{id}/verify"),
            Some(&json!({})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(verified.body["version"], 3);

    // Ten edits from the same read at once: one wins, nine are 412.
    let edits = (0..10).map(|n| {
        let api = server.api(Some(&author.token));
        async move {
            api.send_with(
                "PATCH",
                &format!("/v1/alerts/{id}"),
                Some(&json!({ "title": format!("edit {n}") })),
                &[("if-match", "\"3\"")],
            )
            .await
            .status
        }
    });
    let mut statuses = futures_util::future::join_all(edits).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412, 412, 412, 412, 412, 412, 412, 412, 412]);
    println!("10 concurrent edits from version 3: {statuses:?}");
    let last = mod_api.get(&format!("/v1/alerts/{id}")).await;
    assert_eq!(last.body["version"], 4);
}

/// `update` frames say which fields changed.
#[tokio::test]
async fn update_frames_name_the_fields_that_changed() {
    let (server, staff, store) = TestServer::with_store().await;
    let neighbour = server.member(&staff, "Neighbour", BROOKLYN, 25.0).await;
    let mut stream = server.stream(&neighbour.token, None).await;
    hello_head(&stream.next().await);
    let api = server.api(Some(&store.token));
    let id = id_of(&api.post_alert(&with_vehicle("two men", "CHG0001")).await);
    assert_eq!(stream.next().await["type"], "alert");
    api.patch(
        &format!("/v1/alerts/{id}"),
        &json!({ "title": "two men, one limping",
                 "vehicles": [{ "plate": "CHG0002" }] }),
    )
    .await;
    let update = stream.next().await;
    assert_eq!(update["type"], "update");
    assert_eq!(update["changed"], json!(["title", "vehicles"]));
    server
        .api(Some(&staff))
        .post(&format!("/v1/alerts/{id}/verify"), &json!({}))
        .await;
    let verified = stream.next().await;
    assert_eq!(verified["changed"], json!(["verified"]));
    assert_eq!(verified["alert"]["version"], 3);
}

/// Finding 9: a retry of a post with the same `Idempotency-Key` answers
/// the first success again and posts nothing, also after a crash and a
/// restart; a reused key with another body is 422; keys are per store.
#[tokio::test]
async fn a_retried_post_with_the_same_key_posts_once_even_after_a_crash() {
    let mut server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let store = server
        .member(&staff, "Main Street Jewelers", MANHATTAN, 25.0)
        .await;
    let other = server.member(&staff, "Other", BROOKLYN, 25.0).await;
    let api = server.api(Some(&store.token));
    let alert = with_vehicle("posted once", "IDEM001");
    let key = [("idempotency-key", "post-7f3a-0001")];
    let first = api
        .send_with("POST", "/v1/alerts", Some(&alert), &key)
        .await;
    assert_eq!(first.status, 201, "{first:?}");
    let id = id_of(&first.body);
    let again = api
        .send_with("POST", "/v1/alerts", Some(&alert), &key)
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body, "the same object");

    // As it is now: after an edit, the retry answers the edited alert.
    api.patch(
        &format!("/v1/alerts/{id}"),
        &json!({ "title": "posted once, edited" }),
    )
    .await;
    let after_edit = api
        .send_with("POST", "/v1/alerts", Some(&alert), &key)
        .await;
    assert_eq!(after_edit.body["title"], "posted once, edited");
    assert_eq!(after_edit.body["id"], id);

    let other_body = with_vehicle("another alert", "IDEM002");
    api.send_with("POST", "/v1/alerts", Some(&other_body), &key)
        .await
        .problem(422, "idempotency_key_reused");
    // Another store's same key is its own.
    let theirs = server
        .api(Some(&other.token))
        .send_with("POST", "/v1/alerts", Some(&alert), &key)
        .await;
    assert_eq!(theirs.status, 201);
    assert_ne!(id_of(&theirs.body), id);

    let long = "k".repeat(201);
    for bad in ["", "with space", "tab\there", long.as_str()] {
        let refused = api
            .send_with(
                "POST",
                "/v1/alerts",
                Some(&alert),
                &[("idempotency-key", bad)],
            )
            .await;
        let detail = refused.problem(400, "bad_request");
        assert!(detail.contains("Idempotency-Key"), "{detail}");
    }
    // A failure is not remembered: the same key with a good body posts.
    let failing = [("idempotency-key", "fails-first")];
    api.send_with(
        "POST",
        "/v1/alerts",
        Some(&json!({ "kind": "casing" })),
        &failing,
    )
    .await
    .problem(422, "invalid_input");
    let then = api
        .send_with("POST", "/v1/alerts", Some(&alert), &failing)
        .await;
    assert_eq!(then.status, 201, "{then:?}");

    // A crash, a restart: the key is in the database.
    server.stop("-KILL").await;
    server
        .launch("127.0.0.1:0", &["--probation-alerts", "0"])
        .await;
    let api = server.api(Some(&store.token));
    let after_crash = api
        .send_with("POST", "/v1/alerts", Some(&alert), &key)
        .await;
    assert_eq!(after_crash.status, 201);
    assert_eq!(after_crash.body["id"], id);

    // Twenty retries at once with a new key: one alert.
    let burst_key = [("idempotency-key", "burst-0001")];
    let burst = with_vehicle("burst", "IDEM003");
    let tries = (0..20).map(|_| {
        let api = server.api(Some(&store.token));
        let burst = burst.clone();
        async move {
            api.send_with("POST", "/v1/alerts", Some(&burst), &burst_key)
                .await
        }
    });
    let answers = futures_util::future::join_all(tries).await;
    let created: std::collections::BTreeSet<i64> = answers
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| id_of(&r.body))
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    for answer in answers.iter().filter(|r| r.status != 201) {
        answer.problem(409, "idempotency_in_progress");
    }
    let listed = server.api(Some(&staff)).get("/v1/alerts?limit=500").await;
    let bursts = listed.body["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["title"] == "burst")
        .count();
    assert_eq!(bursts, 1);
    println!(
        "20 concurrent posts with one key: {} answered 201 (one alert), {} answered 409",
        answers.iter().filter(|r| r.status == 201).count(),
        answers.iter().filter(|r| r.status == 409).count(),
    );
}

/// Finding 9 across nodes: a retry on another node is answered the same.
#[tokio::test]
async fn a_retry_on_another_node_is_answered_the_same() {
    if !on_postgres() {
        return;
    }
    let (server, _staff, store) = TestServer::with_store().await;
    let other_node = server.another_node().await;
    let alert = with_vehicle("on node A", "NODE001");
    let key = [("idempotency-key", "node-retry-1")];
    let first = server
        .api(Some(&store.token))
        .send_with("POST", "/v1/alerts", Some(&alert), &key)
        .await;
    assert_eq!(first.status, 201);
    let on_b = other_node
        .api(Some(&store.token))
        .send_with("POST", "/v1/alerts", Some(&alert), &key)
        .await;
    assert_eq!(on_b.status, 201);
    assert_eq!(on_b.body["id"], first.body["id"]);
}

/// Flags take a key too; without one, a second flag is 409.
#[tokio::test]
async fn a_retried_flag_with_the_same_key_is_answered_the_same() {
    let (server, staff, store) = TestServer::with_store().await;
    let flagger = server.member(&staff, "Flagger", BROOKLYN, 25.0).await;
    let id = id_of(
        &server
            .api(Some(&store.token))
            .post_alert(&casing_at("doubtful", MANHATTAN, 25.0))
            .await,
    );
    let api = server.api(Some(&flagger.token));
    let path = format!("/v1/alerts/{id}/flags");
    let body = json!({ "reason": "wrong store" });
    let key = [("idempotency-key", "flag-1")];
    let first = api.send_with("POST", &path, Some(&body), &key).await;
    assert_eq!(first.status, 201, "{first:?}");
    let again = api.send_with("POST", &path, Some(&body), &key).await;
    assert_eq!((again.status, &again.body), (201, &first.body));
    api.post(&path, &body).await.problem(409, "already_flagged");
}

/// Finding 10: an admin erases a defamatory alert at once: 404 to everyone,
/// members get `retract`, its text, suspects and vehicles leave the
/// database (event bodies included), the audit keeps the action.
#[tokio::test]
async fn an_admin_erases_a_defamatory_alert_at_once() {
    let server = TestServer::start().await;
    let admin = server.staff_token("admin");
    let moderator = server.staff_token("moderator");
    let author = server.member(&admin, "Author", MANHATTAN, 25.0).await;
    let neighbour = server.member(&admin, "Neighbour", BROOKLYN, 25.0).await;
    let mut live = server.stream(&neighbour.token, None).await;
    hello_head(&live.next().await);
    let id = id_of(
        &server
            .api(Some(&author.token))
            .post_alert(&with_vehicle("names the wrong man", "DEFAM01"))
            .await,
    );
    assert_eq!(live.next().await["type"], "alert");

    let path = format!("/v1/alerts/{id}/erase");
    server
        .api(Some(&moderator))
        .post(&path, &json!({ "reason": "defamatory" }))
        .await
        .problem(403, "forbidden");
    server
        .api(Some(&author.token))
        .post(&path, &json!({ "reason": "defamatory" }))
        .await
        .problem(403, "forbidden");
    let admin_api = server.api(Some(&admin));
    admin_api
        .post(&path, &json!({}))
        .await
        .problem(422, "invalid_input");
    let erased = admin_api
        .post(&path, &json!({ "reason": "defamatory: names a customer" }))
        .await;
    assert_eq!(erased.status, 200, "{erased:?}");
    assert_eq!(erased.body["alert_id"], id);
    let retract = live.next().await;
    assert_eq!(retract["type"], "retract");
    assert_eq!(retract["alert_id"], id);
    assert!(
        !retract.to_string().contains("customer"),
        "the admin's reason stays with staff"
    );

    for token in [&admin, &moderator, &author.token, &neighbour.token] {
        server
            .api(Some(token))
            .get(&format!("/v1/alerts/{id}"))
            .await
            .problem(404, "not_found");
    }
    admin_api
        .post(&path, &json!({ "reason": "again" }))
        .await
        .problem(404, "not_found");
    admin_api
        .post("/v1/alerts/999999/erase", &json!({ "reason": "x" }))
        .await
        .problem(404, "not_found");
    let stored = server.stored_text().await;
    for gone in ["DEFAM01", "names the wrong man"] {
        assert!(!stored.contains(gone), "{gone} still stored:\n{stored}");
    }
    if let Some(path) = server.sqlite_path() {
        // Not in the file's free space nor in the WAL either.
        for suffix in ["", "-wal"] {
            let bytes = std::fs::read(format!("{path}{suffix}")).unwrap_or_default();
            let raw = String::from_utf8_lossy(&bytes);
            assert!(
                !raw.contains("DEFAM01"),
                "DEFAM01 in the bytes of p4p.db{suffix}"
            );
        }
    }
    let audit = admin_api.get("/v1/audit").await;
    assert_eq!(audit.body["entries"][0]["action"], "alert.erase");
    assert_eq!(
        audit.body["entries"][0]["reason"],
        "defamatory: names a customer"
    );
    for token in [&neighbour.token, &admin] {
        let frames = replay_all(&server, token).await;
        assert!(!serde_json::to_string(&frames)
            .expect("json")
            .contains("DEFAM01"));
        assert!(frames
            .iter()
            .any(|f| f["type"] == "retract" && f["alert_id"] == id));
    }
}

/// A front for the server that loses the answer to the first request: it
/// forwards the request, waits until the server has answered, then hangs
/// up on the client without passing the answer on. Later connections are
/// relayed as they are. The network a store's post crosses, at its worst.
async fn losing_the_first_answer(server_url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = server_url.trim_start_matches("http://").to_owned();
    let front = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = front.local_addr().expect("address");
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut client, _)) = front.accept().await {
            let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                return;
            };
            if !std::mem::take(&mut first) {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
                continue;
            }
            let mut request = Vec::new();
            let mut buffer = [0u8; 8192];
            // The whole request: headers, then Content-Length bytes of body.
            loop {
                let Ok(read) = client.read(&mut buffer).await else {
                    return;
                };
                if read == 0 {
                    return;
                }
                request.extend_from_slice(&buffer[..read]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let _ = upstream.write_all(&request).await;
            let mut answer = Vec::new();
            while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
                match upstream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => answer.extend_from_slice(&buffer[..read]),
                }
            }
            // The server answered; the client never hears it.
            drop(client);
        }
    });
    format!("http://{address}")
}

/// The CLI's side of finding 9: `p4p post` sends an `Idempotency-Key` and,
/// when the answer is lost, retries with it: one alert, and the poster is
/// told its number.
#[tokio::test]
async fn p4p_post_retries_a_lost_answer_with_the_same_key_and_posts_once() {
    let (server, staff, store) = TestServer::with_store().await;
    let home = tempfile::tempdir().expect("home");
    let front = losing_the_first_answer(&server.url).await;
    let started = std::time::Instant::now();
    let posted = server
        .run_cli(
            home.path(),
            &[
                "--server",
                &front,
                "--token",
                &store.token,
                "post",
                "--kind",
                "casing",
                "--title",
                "posted through a bad line",
            ],
        )
        .await;
    assert!(posted.success, "{posted:?}");
    assert!(posted.stderr.contains("same Idempotency-Key"), "{posted:?}");
    assert!(posted.stdout.contains("Posted alert #1"), "{posted:?}");
    let listed = server.api(Some(&staff)).get("/v1/alerts").await;
    assert_eq!(
        listed.body["alerts"].as_array().map(Vec::len),
        Some(1),
        "posted once: {listed:?}"
    );
    println!(
        "p4p post through a line that lost the first answer ({:.1} s): {}",
        started.elapsed().as_secs_f64(),
        posted.stderr.trim()
    );
}

/// `p4p edit` sends `If-Match`: an edit of a version someone changed since
/// changes nothing and says so; `p4p erase` erases for admins only.
#[tokio::test]
async fn p4p_edit_sends_if_match_and_p4p_erase_erases() {
    let server = TestServer::start().await;
    let admin = server.staff_token("admin");
    let store = server
        .member(&admin, "Main Street Jewelers", MANHATTAN, 25.0)
        .await;
    let home = tempfile::tempdir().expect("home");
    let as_store = |args: &[&str]| {
        let mut all = vec!["--token", store.token.as_str()];
        all.extend_from_slice(args);
        all.iter().map(|a| a.to_string()).collect::<Vec<String>>()
    };
    let run = |args: Vec<String>| {
        let server = &server;
        let home = home.path().to_owned();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            server.run_cli(&home, &args).await
        }
    };
    run(as_store(&[
        "post",
        "--kind",
        "casing",
        "--title",
        "first words",
    ]))
    .await
    .expect_ok("Posted alert #1");
    server
        .api(Some(&admin))
        .patch(
            "/v1/alerts/1",
            &json!({ "title": "corrected by the association" }),
        )
        .await;
    let stale = run(as_store(&[
        "edit",
        "1",
        "--if-version",
        "1",
        "--title",
        "my words",
    ]))
    .await;
    assert!(!stale.success, "{stale:?}");
    assert!(stale.stderr.contains("version 2"), "{stale:?}");
    let now = server.api(Some(&admin)).get("/v1/alerts/1").await;
    assert_eq!(now.body["title"], "corrected by the association");
    run(as_store(&[
        "edit",
        "1",
        "--title",
        "my words, after reading yours",
    ]))
    .await
    .expect_ok("Updated alert #1");

    let refused = run(as_store(&["erase", "1", "--reason", "mine"])).await;
    assert!(
        !refused.success && refused.stderr.contains("only admins"),
        "{refused:?}"
    );
    let erased = run(vec![
        "--token".into(),
        admin.clone(),
        "erase".into(),
        "1".into(),
        "--reason".into(),
        "defamatory".into(),
    ])
    .await
    .expect_ok("Erased alert #1");
    assert!(erased.stderr.is_empty(), "{erased:?}");
    server
        .api(Some(&admin))
        .get("/v1/alerts/1")
        .await
        .problem(404, "not_found");
}
