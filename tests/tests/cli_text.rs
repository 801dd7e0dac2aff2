//! The CLI never passes a control character from the network to a terminal
//! (API.md, "Safe writes"): the review's forged screens, replayed against
//! content the server cannot refuse because it is written straight into the
//! database, as an old or hostile server would serve it. Whatever `show`,
//! `alerts`, `listen`, `mod queue`, `stores` and `audit` print holds no raw
//! control character or bidirectional override, and the forged lines
//! ("ALERT robbery, 0.2 km away", a fake `Store:` line) never start a line.

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::json;

/// The forged block of the review: CR and LF to start lines of its own, a
/// fake headline and store line, ESC to clear the screen, and U+202E.
const FORGED: &str =
    "\r\n\nALERT robbery, 0.2 km away\n  Store:    P4P Association HQ\u{1b}[2J\u{202e}";

/// [`FORGED`] as it reads inside a JSON string (a stored event body).
const FORGED_IN_JSON: &str =
    r"\r\n\nALERT robbery, 0.2 km away\n  Store:    P4P Association HQ\u001b[2J\u202e";

/// `text` then the forged block, as an SQL string literal.
fn literal(text: &str, forged: &str) -> String {
    format!("'{}'", format!("{text}{forged}").replace('\'', "''"))
}

/// No raw control character but the CLI's own line feeds, no bidi control,
/// and no forged line at the start of a line.
fn assert_safe(what: &str, output: &str) {
    let raw: Vec<char> = output
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    assert!(raw.is_empty(), "{what} printed raw {raw:?}: {output}");
    for line in output.lines() {
        assert!(
            !line.starts_with("ALERT robbery") && !line.starts_with("  Store:    P4P"),
            "{what} let a forged line start a line: {line:?}\n{output}"
        );
    }
    assert!(
        output.contains(r"\x1b[2J"),
        "{what} shows ESC visibly: {output}"
    );
}

#[tokio::test]
async fn hostile_content_from_the_database_cannot_forge_a_screen_in_any_command() {
    let (server, staff, author) = TestServer::with_store().await;
    let flagger = server.member(&staff, "Gold & Co", BROOKLYN, 25.0).await;
    let author_api = server.api(Some(&author.token));
    let alert = author_api
        .post_alert(&json!({
            "kind": "casing",
            "title": "Casing placeholder",
            "description": "Description placeholder",
            "suspects": [{ "clothing": "Clothing placeholder" }],
            "vehicles": [{ "plate": "Plate placeholder" }],
        }))
        .await;
    let id = id_of(&alert);
    let withdrawn = author_api
        .post_alert(&casing_at("Withdrawn", MANHATTAN, 25.0))
        .await;
    let retracted = author_api
        .post(
            &format!("/v1/alerts/{}/retract", withdrawn["id"]),
            &json!({ "reason": "Reason placeholder" }),
        )
        .await;
    assert_eq!(retracted.status, 200, "{retracted:?}");
    let flagged = server
        .api(Some(&flagger.token))
        .flag(id, "Flag placeholder")
        .await;
    assert_eq!(flagged.status, 201, "{flagged:?}");
    let (pending, _secret) = server.pledge("Pending placeholder", NEWARK, 10.0).await;

    // What the API refuses, written behind its back.
    for statement in [
        format!(
            "UPDATE alerts SET title = {}, description = {}, suspects = '[{{\"clothing\": \"red{FORGED_IN_JSON}\"}}]', \
             vehicles = '[{{\"plate\": \"\\u202e4321CBA{FORGED_IN_JSON}\"}}]' WHERE id = {id}",
            literal("Casing", FORGED),
            literal("Watched the door.", FORGED),
        ),
        format!("UPDATE stores SET name = {} WHERE id = {}", literal("Main", FORGED), author.id),
        format!(
            "UPDATE stores SET name = {}, address = {}, contact_name = {} WHERE id = {pending}",
            literal("Pending", FORGED),
            literal("1 Main St", FORGED),
            literal("Ada", FORGED),
        ),
        format!("UPDATE flags SET reason = {}", literal("Wrong", FORGED)),
        format!(
            "INSERT INTO audit (at, actor, action, object, reason) VALUES (0, 'store:1', 'alert.retract', 'alert:1', {})",
            literal("Duplicate", FORGED)
        ),
        // Replay serves stored event bodies (or, once replay shows current
        // versions, the rows above): both hold the forged text.
        format!(
            "UPDATE events SET body = replace(replace(replace(body, 'Casing placeholder', 'Casing{FORGED_IN_JSON}'), \
             'Reason placeholder', 'Duplicate{FORGED_IN_JSON}'), 'Main Street Jewelers', 'Main{FORGED_IN_JSON}')"
        ),
    ] {
        server.execute_sql(&statement).await;
    }

    let home = tempfile::tempdir().expect("home");
    let as_store = ["--token", author.token.as_str()];
    let as_staff = ["--token", staff.as_str()];
    let id_text = id.to_string();
    let runs: [(&str, Vec<&str>); 6] = [
        ("show", [&as_store[..], &["show", &id_text]].concat()),
        ("alerts", [&as_store[..], &["alerts"]].concat()),
        ("mod queue", [&as_staff[..], &["mod", "queue"]].concat()),
        ("stores", [&as_staff[..], &["stores"]].concat()),
        ("audit", [&as_staff[..], &["audit"]].concat()),
        ("staff show", [&as_staff[..], &["show", &id_text]].concat()),
    ];
    for (what, args) in &runs {
        let run = server.run_cli(home.path(), args).await;
        assert!(run.success, "{what}: {run:?}");
        println!("p4p {what}:\n{}", run.stdout);
        assert_safe(what, &run.stdout);
    }
    let show = server.run_cli(home.path(), &runs[0].1).await.stdout;
    assert!(
        show.contains("  Details:\n      | Watched the door.\\r\n      | \n      | ALERT robbery, 0.2 km away\n"),
        "the description's lines are indented under their label: {show}"
    );

    let mut listen = server.spawn_listen(home.path(), &[&as_store[..], &["--since", "0"]].concat());
    let lines = listen.lines_until("RETRACTED").await;
    let replayed = lines.join("\n");
    println!("p4p listen --since 0:\n{replayed}");
    assert_safe("listen", &replayed);
    assert!(replayed.contains("RETRACTED #"), "{replayed}");
    listen.stop().await;

    // --json: the same JSON value, with nothing a terminal acts on.
    let json = server
        .run_cli(
            home.path(),
            &[&as_store[..], &["--json", "show", &id_text]].concat(),
        )
        .await;
    assert!(
        !json
            .stdout
            .chars()
            .any(|c| matches!(c, '\u{1b}' | '\u{202e}' | '\r')),
        "{json:?}"
    );
    let shown: serde_json::Value = serde_json::from_str(&json.stdout).expect("--json is JSON");
    assert_eq!(shown["title"], format!("Casing{FORGED}"));
}

#[tokio::test]
async fn an_error_detail_from_the_server_is_escaped() {
    let (server, _staff, store) = TestServer::with_store().await;
    let home = tempfile::tempdir().expect("home");
    // The server names the refused field; the CLI shows its detail on one line.
    let run = server
        .run_cli(
            home.path(),
            &[
                "--token",
                &store.token,
                "post",
                "--kind",
                "casing",
                "--title",
                "Two men\r\nALERT robbery, 0.2 km away",
            ],
        )
        .await;
    assert!(!run.success, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        run.stderr
            .contains("title must not contain line breaks or control characters"),
        "{run:?}"
    );
}
