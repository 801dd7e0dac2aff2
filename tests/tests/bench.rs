//! The benchmark itself is not part of the suite (it takes ~20 minutes and
//! its figures mean something only on a quiet machine), but a smoke run of
//! it is, so that it cannot rot: N = 200 streams, 5 s, every scenario scaled
//! down, against the floor and NATS, with every delivery checked.

use std::path::Path;

use p4p_tests::{bench_binary, postgres_admin_url, server_binary};
use serde_json::Value;

#[tokio::test]
async fn a_smoke_run_of_the_benchmark_delivers_exactly_what_is_owed() {
    let bench = bench_binary();
    // The benchmark starts the p4p-server built beside it.
    server_binary();
    let out = tempfile::tempdir().expect("tempdir");
    let mut command = tokio::process::Command::new(bench);
    command
        .arg("--smoke")
        .arg("--out")
        .arg(out.path())
        .kill_on_drop(true);
    // Its posting scenario runs on PostgreSQL too, where the suite's do.
    command.args(["--postgres-url", &postgres_admin_url()]);
    let run = command.output().await.expect("p4p-bench runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "p4p-bench --smoke failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("report.json")).expect("report.json"),
    )
    .expect("JSON report");
    assert_eq!(report["delivery_errors"], 0, "{stdout}");
    let fanout = &report["fanout"][0];
    assert_eq!(fanout["streams"], 200);
    let systems: Vec<&str> = fanout["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["system"].as_str())
        .collect();
    assert_eq!(systems, ["p4p", "floor", "nats"]);
    for run in fanout["runs"].as_array().expect("runs") {
        assert_eq!(run["phase"]["outcome"]["alerts"], 100, "{run}");
        assert!(
            run["phase"]["outcome"]["delivered"].as_u64() > Some(100),
            "{run}"
        );
    }
    assert_eq!(report["resume"]["received"], 200);
    assert_eq!(report["history"]["checked_against_brute_force"], 20);
    assert_eq!(report["posting"].as_array().map(Vec::len), Some(2));
    assert!(Path::new(&out.path().join("latency.svg")).exists());
}
