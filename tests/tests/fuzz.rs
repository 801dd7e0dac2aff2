//! Schema-driven fuzzing: schemathesis reads `GET /v1/openapi.json` from
//! the real server and sends it generated requests, valid and invalid, as a
//! member store and as a moderator, with every check: no 5xx, and status
//! codes, content types, headers and bodies as the document says; valid
//! requests accepted, invalid ones refused.
//!
//! schemathesis is installed once, with pip, into a virtual environment in
//! the cargo target directory (`target/schemathesis-venv`).

use std::path::{Path, PathBuf};
use std::process::Command;

use p4p_tests::{casing_at, id_of, places, TestServer};

const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// Examples per operation: 40 in the suite; `P4P_FUZZ_EXAMPLES` asks for a
/// longer run (RELIABILITY.md).
fn max_examples() -> String {
    std::env::var("P4P_FUZZ_EXAMPLES")
        .ok()
        .filter(|n| n.parse::<u32>().is_ok_and(|n| n > 0))
        .unwrap_or_else(|| "40".to_owned())
}

/// Where the test's own cases were the server's to judge, beyond what JSON
/// Schema can say. Each exception adds statuses (422, or 400 and 412 for
/// the safe-write headers) to those a schema-valid request may get, for
/// the operations it names, and says why.
const CONFIG: &str = r#"
# `If-Match` (documented pattern: `*` or one entity tag) and the flags'
# `Idempotency-Key`: a value outside the pattern is 400, and the coverage
# phase sends header values such as `0` and `null` without the pattern the
# document gives them. An `If-Match` naming another version than the
# alert's is 412, as documented: a schema cannot know the alert's version.
# (The most specific blocks come first: the first that matches applies.)
[[operations]]
include-path = "/v1/alerts/{id}"
include-method = "PATCH"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "422", "429", "5xx"]

[[operations]]
include-path = "/v1/alerts/{id}/approve"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "422", "429", "5xx"]

[[operations]]
include-path = "/v1/alerts/{id}/reject"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "422", "429", "5xx"]

[[operations]]
include-path = "/v1/alerts/{id}/verify"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "422", "429", "5xx"]

[[operations]]
include-path = "/v1/alerts/{id}/retract"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "422", "429", "5xx"]

[[operations]]
include-path = "/v1/alerts/{id}/flags"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "422", "429", "5xx"]

# `lat`, `lon` and `radius_km` go together: OpenAPI cannot tie query
# parameters to each other, so a valid-looking lone `lat` is refused.
[[operations]]
include-path = "/v1/alerts"
include-method = "GET"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

# `occurred_at` must not be in the future: JSON Schema has no "before now".
# And an `Idempotency-Key` outside its documented pattern is 400 (API.md):
# the coverage phase sends header values such as `0` and `null` without
# the pattern the document gives them.
[[operations]]
include-path = "/v1/alerts"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]

"#;

/// The cargo target directory this test was built in.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // <target>/<profile>/deps/fuzz-<hash>
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .expect("the target directory above the test binary")
        .to_path_buf()
}

fn run(command: &mut Command) -> bool {
    command.status().is_ok_and(|status| status.success())
}

/// The Python of the environment schemathesis is installed in, installed
/// first if it is not there yet. Parallel test processes each install into
/// their own staging directory and rename it into place; the first rename
/// wins. (schemathesis is run as `python -m schemathesis.cli`, which works
/// from a renamed environment; its scripts would not.)
fn schemathesis_python() -> PathBuf {
    let venv = target_dir().join("schemathesis-venv");
    let python = |venv: &Path| venv.join("bin").join("python");
    let installed = |venv: &Path| {
        Command::new(python(venv))
            .args(["-m", "schemathesis.cli", "--version"])
            .output()
            .is_ok_and(|out| {
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout)
                        .contains(SCHEMATHESIS.trim_start_matches("schemathesis=="))
            })
    };
    if installed(&venv) {
        return python(&venv);
    }
    let staging = target_dir().join(format!("schemathesis-venv.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    assert!(
        run(Command::new("python3").arg("-m").arg("venv").arg(&staging)),
        "cannot make a Python virtual environment at {} (is python3 with venv installed?)",
        staging.display()
    );
    assert!(
        run(Command::new(python(&staging)).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SCHEMATHESIS
        ])),
        "cannot install {SCHEMATHESIS} with pip into {} (is PyPI reachable?)",
        staging.display()
    );
    if std::fs::rename(&staging, &venv).is_err() {
        // Another process was first (or an old broken one is in the way).
        let _ = std::fs::remove_dir_all(&staging);
    }
    assert!(
        installed(&venv),
        "{SCHEMATHESIS} is not usable in {}; remove it to install again",
        venv.display()
    );
    python(&venv)
}

/// What schemathesis said about one run.
struct Outcome {
    passed: bool,
    summary: String,
}

fn fuzz(server: &TestServer, who: &str, token: &str, config: &Path) -> Outcome {
    let output = Command::new(schemathesis_python())
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(config)
        .args([
            "run",
            &format!("{}/v1/openapi.json", server.url),
            "--checks",
            "all",
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--max-examples",
            &max_examples(),
            "--phases",
            "examples,coverage,fuzzing",
            // One worker: with several threads, Python 3.11's `ast` can fail
            // hypothesis with "AST constructor recursion depth mismatch".
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--seed",
            "20261130",
            "--suppress-health-check",
            "all",
            "--no-color",
            // GET /v1/stream answers a valid request by switching the
            // connection to WebSocket (101); schemathesis' HTTP client then
            // reuses that connection for HTTP and fails on the first frame.
            // The stream is exercised by the stream tests instead.
            "--exclude-path",
            "/v1/stream",
            // Served on the operators' listener (--metrics-bind), not here.
            "--exclude-path",
            "/metrics",
        ])
        .env("PYTHONIOENCODING", "utf-8")
        // schemathesis keeps a cache in `.schemathesis/` of its working
        // directory: the server's temporary one, not the source tree.
        .current_dir(server.dir.path())
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary = stdout
        .lines()
        .skip_while(|line| !line.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n");
    println!("schemathesis as the {who}:\n{summary}");
    if !output.status.success() {
        println!("{stdout}\n{stderr}");
    }
    Outcome {
        passed: output.status.success(),
        summary,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_requests_get_the_answers_the_openapi_document_promises() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let store = server
        .member(&staff, "Main Street Jewelers", places::MANHATTAN, 25.0)
        .await;
    let other = server
        .member(&staff, "Broadway Gold", places::BROOKLYN, 25.0)
        .await;
    let own_alert = server
        .api(Some(&store.token))
        .post_alert(&casing_at(
            "Two men casing showcases",
            places::MANHATTAN,
            25.0,
        ))
        .await;
    let others_alert = server
        .api(Some(&other.token))
        .post_alert(&casing_at(
            "A grey van circling the block",
            places::BROOKLYN,
            25.0,
        ))
        .await;
    // Half of the ids in paths are ones that exist, so that generated
    // requests reach the handlers' work, not only their 404.
    let known_ids = [store.id, other.id, id_of(&own_alert), id_of(&others_alert)];
    let known_ids = format!(
        r#"
[dictionaries.known-ids]
values = {known_ids:?}

[parameters]
"path.id" = {{ dictionary = "known-ids", probability = 0.5 }}
"path.store_id" = {{ dictionary = "known-ids", probability = 0.5 }}
"#
    );
    let config = server.dir.path().join("schemathesis.toml");
    std::fs::write(&config, format!("{known_ids}{CONFIG}")).expect("write the schemathesis config");

    // The store first: as staff, schemathesis suspends and rejects stores
    // with the ids it tries, this one among them.
    let as_store = tokio::task::block_in_place(|| fuzz(&server, "store", &store.token, &config));
    let as_staff = tokio::task::block_in_place(|| fuzz(&server, "moderator", &staff, &config));
    // The known ids were used: the store's own alert was edited or retracted.
    let own_id = id_of(&own_alert);
    let after = server
        .api(Some(&staff))
        .get(&format!("/v1/alerts/{own_id}"))
        .await;
    println!(
        "alert {own_id} after fuzzing: status {}, updated_at {}",
        after.body["status"], after.body["updated_at"]
    );
    assert!(
        after.body != own_alert,
        "no generated request changed alert {own_id}: the known ids were not used"
    );
    for (who, outcome) in [("store", &as_store), ("moderator", &as_staff)] {
        assert!(
            outcome.summary.contains("Test cases:"),
            "schemathesis as the {who} ran no cases"
        );
        assert!(
            outcome.passed,
            "schemathesis as the {who} found failures:\n{}\nserver log:\n{}",
            outcome.summary,
            server.logs()
        );
    }
}
