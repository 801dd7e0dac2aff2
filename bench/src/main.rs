//! `p4p-bench`: where p4p stands, next to the floor (a bare broadcaster)
//! and NATS, in one run. See PERFORMANCE.md for what it measures and the
//! figures of a full run.

mod alerts;
mod deliveries;
mod fanout;
mod floor;
mod p4p;
mod places;
mod process;
mod report;
mod scenarios;
mod systems;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use tokio::process::Command;

use crate::deliveries::Recorder;
use crate::fanout::{run_phase, Plan};
use crate::p4p::{Members, P4p, PostgresScratch};
use crate::places::store_sites;
use crate::process::{free_port, wait_for_port, Measured, Usage};
use crate::report::{Fanout, Report, SystemRun};
use crate::systems::Publisher;

/// Measures p4p: fanout to N live streams (against a bare WebSocket
/// broadcaster and NATS, same frames, same recipients), idle capacity,
/// resume, history queries and posting. Every delivery is checked against
/// a brute-force recipient set.
///
/// Build first: cargo build --release --workspace, then
/// ./target/release/p4p-bench (the full run takes about 20 minutes).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Action>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Action {
    /// The floor broadcaster (started by the benchmark itself).
    #[command(hide = true)]
    Floor {
        #[arg(long)]
        bind: String,
    },
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Fanout,
    Idle,
    Resume,
    History,
    Posting,
}

#[derive(clap::Args)]
struct RunArgs {
    /// A quick run that checks the benchmark works (N = 200, 5 s, every scenario scaled down).
    #[arg(long)]
    smoke: bool,
    /// Scenarios to run (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Stream counts of the fanout scenario.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,20000")]
    streams: Vec<usize>,
    /// Alerts per second in the fanout scenario.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Seconds of posting per fanout phase.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Seconds per step of the rate ramp (0: no ramp).
    #[arg(long, default_value_t = 10.0)]
    ramp_seconds: f64,
    /// Idle streams to try to open in scenario 2.
    #[arg(long, default_value_t = 100_000)]
    idle_streams: usize,
    /// Alerts a store misses before it resumes in scenario 3.
    #[arg(long, default_value_t = 10_000)]
    resume_alerts: usize,
    /// Alerts in the database for scenario 4.
    #[arg(long, default_value_t = 1_000_000)]
    history_alerts: usize,
    /// Seconds of posting in scenario 5.
    #[arg(long, default_value_t = 10.0)]
    posting_seconds: f64,
    /// Concurrent posting clients in scenario 5.
    #[arg(long, default_value_t = 64)]
    posting_clients: usize,
    /// PostgreSQL server for scenario 5 (a scratch database is made and dropped).
    #[arg(
        long,
        env = "P4P_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// An already running NATS server to use instead of starting nats-server.
    #[arg(long, env = "P4P_BENCH_NATS_URL")]
    nats_url: Option<String>,
    /// The nats-server binary to start (on a free port, with this run's file limit).
    #[arg(long, default_value = "nats-server")]
    nats_server: String,
    /// Where the JSON report, the plot and the servers' logs go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Seed of store places and alert plans.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl RunArgs {
    fn wants(&self, scenario: Scenario) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }

    fn scale_for_smoke(&mut self) {
        if self.smoke {
            self.streams = vec![200];
            self.seconds = 5.0;
            self.ramp_seconds = 2.0;
            self.idle_streams = 400;
            self.resume_alerts = 200;
            self.history_alerts = 10_000;
            self.posting_seconds = 2.0;
            self.posting_clients = 8;
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Action::Floor { bind }) => runtime.block_on(floor::serve(&bind)),
        None => {
            let mut args = cli.run;
            args.scale_for_smoke();
            runtime.block_on(run(args))
        }
    }
}

/// Open files each process keeps free of streams.
const FILES_KEPT_FREE: usize = 500;

async fn run(mut args: RunArgs) -> Result<()> {
    let limit = process::raise_file_limit();
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}", args.out.display()))?;
    let out = args.out.canonicalize()?;
    let scratch = tempfile::tempdir()?;
    let mut report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: report::machine(),
        started_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        ..Report::default()
    };
    println!("p4p-bench on {}; open-file limit {limit}", report.machine);
    // Every stream is one open file in the server and one here; a process
    // may not open more than `limit`, and without CAP_SYS_RESOURCE the
    // limit cannot be raised past its hard value. Leave room for the
    // listener, the database, logs and HTTP connections.
    let most = (limit as usize).saturating_sub(FILES_KEPT_FREE);
    for streams in args.streams.iter_mut() {
        if *streams > most {
            let note = format!("{streams} streams asked, {most} run: this machine allows {limit} open files per process");
            println!("  {note}");
            report.notes.push(note);
            *streams = most;
        }
    }
    if args.idle_streams > most {
        let note =
            format!("idle streams capped at {most} by the open-file limit of {limit} per process");
        println!("  {note}");
        report.notes.push(note);
        args.idle_streams = most;
    }

    let largest = args.streams.iter().copied().max().unwrap_or(0).max(64);
    let sites = store_sites(largest, args.seed);
    let needs_network =
        args.wants(Scenario::Fanout) || args.wants(Scenario::Idle) || args.wants(Scenario::Resume);
    if needs_network {
        let database = format!("sqlite:{}", scratch.path().join("network.db").display());
        let mut server = Arc::new(P4p::start(&database, &out, &[]).await?);
        println!("making {largest} member stores through the API...");
        let started = std::time::Instant::now();
        let members: Members = Arc::new(server.make_members(&sites).await?);
        println!(
            "  {largest} stores pledged, approved and claimed in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        if args.wants(Scenario::Fanout) {
            for &streams in &args.streams {
                // A fresh process for each size: memory figures start clean.
                server = restart(server, &database, &out).await?;
                let fanout =
                    fanout_scenario(&args, &server, &members, &sites, streams, &out).await?;
                report::print_fanout(&fanout);
                report.fanout.push(fanout);
            }
        }
        if args.wants(Scenario::Idle) {
            println!("\nScenario 2: idle streams...");
            server = restart(server, &database, &out).await?;
            let step = (args.idle_streams / 10).max(100);
            report.idle = Some(scenarios::idle(&server, &members, args.idle_streams, step).await);
        }
        if args.wants(Scenario::Resume) {
            tokio::time::sleep(Duration::from_secs(2)).await;
            println!(
                "\nScenario 3: resume after {} missed alerts...",
                args.resume_alerts
            );
            report.resume =
                Some(scenarios::resume(&server, &members, &sites, args.resume_alerts).await?);
        }
    }
    if args.wants(Scenario::History) {
        println!(
            "\nScenario 4: history over {} alerts...",
            args.history_alerts
        );
        report.history = Some(history_scenario(&args, scratch.path(), &out).await?);
    }
    if args.wants(Scenario::Posting) {
        let sqlite = format!("sqlite:{}", scratch.path().join("posting.db").display());
        report
            .posting
            .push(posting_scenario(&args, &sqlite, "SQLite", &out).await?);
        let postgres = PostgresScratch::create(&args.postgres_url).await?;
        let outcome = posting_scenario(&args, &postgres.url(), "PostgreSQL", &out).await;
        postgres.drop_database().await?;
        report.posting.push(outcome?);
    }

    report.delivery_errors = report
        .fanout
        .iter()
        .flat_map(|f| f.runs.iter().map(|r| &r.phase).chain(f.ramp.iter()))
        .map(|p| p.outcome.missing + p.outcome.unexpected)
        .sum();
    report.delivery_errors += report
        .resume
        .as_ref()
        .map(|r| r.missed_alerts - r.received + r.duplicates + usize::from(!r.in_order))
        .unwrap_or(0);
    report::print_rest(&report);
    let json = out.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)?;
    println!("report: {}", json.display());
    if let Some(largest) = report.fanout.iter().max_by_key(|f| f.streams) {
        let plot = out.join("latency.svg");
        report::plot(largest, &plot)?;
        println!("plot: {}", plot.display());
    }
    if report.delivery_errors > 0 {
        bail!(
            "{} deliveries were missing or unexpected",
            report.delivery_errors
        );
    }
    Ok(())
}

/// Scenario 1 at one stream count: p4p, then the floor, then NATS, each
/// with the same plan; then p4p at rising rates.
async fn fanout_scenario(
    args: &RunArgs,
    server: &Arc<P4p>,
    members: &Members,
    sites: &[places::Site],
    streams: usize,
    out: &Path,
) -> Result<Fanout> {
    println!(
        "\nScenario 1: {streams} streams, {} alerts/s for {} s",
        args.rate, args.seconds
    );
    let count = (args.rate * args.seconds).round() as usize;
    let plan = Plan::new(sites, streams, 0, count, args.seed + streams as u64);
    let mut runs = Vec::new();

    // p4p
    let recorder = Recorder::new();
    let usage = || server.process.usage();
    let before = settled_usage(&usage).await;
    let subscribers = systems::p4p_subscribers(server, members, streams, &recorder).await?;
    let connected = settled_usage(&usage).await;
    let publisher = Publisher::P4p {
        server: server.clone(),
        members: members.clone(),
    };
    let phase = run_phase(&publisher, &plan, args.rate, &recorder, usage).await;
    let mut highest = held(&phase, args.rate).then_some(args.rate);
    runs.push(system_run("p4p", streams, before, connected, phase));
    println!("  p4p done");
    let mut ramp = Vec::new();
    if highest.is_some() && args.ramp_seconds > 0.0 {
        let mut rate = args.rate * 2.0;
        let mut next = plan.end();
        loop {
            let count = (rate * args.ramp_seconds).round() as usize;
            let step = Plan::new(sites, streams, next, count, args.seed + next as u64);
            next = step.end();
            let phase = run_phase(&publisher, &step, rate, &recorder, usage).await;
            let held = held(&phase, rate);
            println!(
                "  ramp {rate:.0}/s: p99 {:.1} ms, held: {held}",
                phase.outcome.latency.p99_ms
            );
            ramp.push(phase);
            if !held || rate >= 10_000.0 {
                break;
            }
            highest = Some(rate);
            rate *= 2.0;
        }
    }
    subscribers.close().await;

    // The floor, in its own process.
    let port = free_port()?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["floor", "--bind", &format!("127.0.0.1:{port}")]);
    let mut floor = Measured::spawn("floor", command, &out.join("floor.log"))?;
    wait_for_port(port, &mut floor).await?;
    let recorder = Recorder::new();
    let usage = || floor.usage();
    let before = settled_usage(&usage).await;
    let subscribers = systems::floor_subscribers(port, streams, &recorder).await?;
    let connected = settled_usage(&usage).await;
    let (publisher, writer) = Publisher::floor(port).await?;
    let phase = run_phase(&publisher, &plan, args.rate, &recorder, usage).await;
    runs.push(system_run("floor", streams, before, connected, phase));
    drop(publisher);
    let _ = writer.await;
    subscribers.close().await;
    floor.stop().await;
    println!("  floor done");

    // NATS: a private nats-server, unless one was given.
    // Its subscribers connect to 32 loopback addresses in turn: the NATS
    // client cannot choose its source address, and one address pair runs
    // out of ephemeral ports before 20,000 connections.
    let (nats_urls, mut nats) = match &args.nats_url {
        Some(url) => (vec![url.clone()], None),
        None => {
            let port = process::free_port_on_all_addresses()?;
            let mut command = Command::new(nats_server_binary(&args.nats_server));
            command.args(["-a", "0.0.0.0", "-p", &port.to_string()]);
            let mut nats = Measured::spawn("nats-server", command, &out.join("nats.log"))
                .context("pass --nats-url to use a running NATS server")?;
            wait_for_port(port, &mut nats).await?;
            let urls = (1..=32)
                .map(|n| format!("nats://127.0.2.{n}:{port}"))
                .collect();
            (urls, Some(nats))
        }
    };
    let recorder = Recorder::new();
    let usage = || nats.as_ref().map(Measured::usage).unwrap_or_default();
    let before = settled_usage(&usage).await;
    let subscribers = systems::nats_subscribers(&nats_urls, sites, streams, &recorder).await?;
    let connected = settled_usage(&usage).await;
    let publisher = Publisher::nats(&nats_urls[0]).await?;
    let phase = run_phase(&publisher, &plan, args.rate, &recorder, usage).await;
    runs.push(system_run("nats", streams, before, connected, phase));
    subscribers.close().await;
    if let Some(nats) = nats.take() {
        nats.stop().await;
    }
    println!("  nats done");

    Ok(Fanout {
        streams,
        ratios: report::ratios(&runs),
        runs,
        ramp,
        highest_sustained_rate: highest,
    })
}

/// `nats-server` from the PATH, or where Debian puts it (/usr/sbin is not
/// on every user's PATH).
fn nats_server_binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).exists()))
        .unwrap_or(false);
    let debian = Path::new("/usr/sbin").join(name);
    if !on_path && debian.exists() {
        debian
    } else {
        PathBuf::from(name)
    }
}

/// Whether p4p sustained `rate`: p99 under 100 ms, nothing lost, nothing
/// refused, and the schedule kept.
fn held(phase: &fanout::Phase, rate: f64) -> bool {
    phase.outcome.latency.p99_ms < 100.0
        && phase.outcome.missing + phase.outcome.unexpected == 0
        && phase.publish_errors == 0
        && phase.alerts_per_s >= rate * 0.95
}

/// Stops `server` and starts it again on the same database (the member
/// stores and their tokens stay).
async fn restart(server: Arc<P4p>, database: &str, out: &Path) -> Result<Arc<P4p>> {
    match Arc::try_unwrap(server) {
        Ok(server) => server.stop().await,
        Err(_) => bail!("the server is still in use"),
    }
    Ok(Arc::new(P4p::start(database, out, &[]).await?))
}

/// Usage after a moment's rest, so that the allocator has settled.
async fn settled_usage(usage: &impl Fn() -> Usage) -> Usage {
    tokio::time::sleep(Duration::from_secs(1)).await;
    usage()
}

fn system_run(
    system: &'static str,
    streams: usize,
    before: Usage,
    connected: Usage,
    phase: fanout::Phase,
) -> SystemRun {
    SystemRun {
        system,
        streams,
        rss_before_kib: before.rss_kib,
        rss_connected_kib: connected.rss_kib,
        rss_per_connection_kib: connected.rss_kib.saturating_sub(before.rss_kib) as f64
            / streams.max(1) as f64,
        phase,
    }
}

async fn history_scenario(
    args: &RunArgs,
    scratch: &Path,
    out: &Path,
) -> Result<scenarios::History> {
    let database = format!("sqlite:{}", scratch.join("history.db").display());
    let server = P4p::start(&database, out, &[]).await?;
    let authors = server.make_members(&store_sites(20, 9)).await?;
    let token = authors[0].token.clone();
    let ids: Vec<i64> = authors.iter().map(|m| m.id).collect();
    server.stop().await;
    let started = std::time::Instant::now();
    let placed = scenarios::fill_history(&database, args.history_alerts, &ids).await?;
    println!(
        "  {} alerts stored in {:.1} s",
        placed.len(),
        started.elapsed().as_secs_f64()
    );
    let server = P4p::start(&database, out, &[]).await?;
    // Warm up, as a server that has been up for a while would be.
    // (at other points than those measured).
    let _ = scenarios::history(&server, &token, &placed, 50, 25.0, 22).await?;
    let queries = if args.smoke { 200 } else { 2_000 };
    let history = scenarios::history(&server, &token, &placed, queries, 25.0, 21).await;
    server.stop().await;
    history
}

async fn posting_scenario(
    args: &RunArgs,
    database: &str,
    name: &str,
    out: &Path,
) -> Result<scenarios::Posting> {
    println!("\nScenario 5: posting alone on {name}...");
    let server = Arc::new(P4p::start(database, out, &[]).await?);
    let members: Members = Arc::new(
        server
            .make_members(&store_sites(args.posting_clients, 5))
            .await?,
    );
    let posting = scenarios::posting(&server, &members, name, args.posting_seconds).await;
    if let Ok(server) = Arc::try_unwrap(server) {
        server.stop().await;
    }
    Ok(posting)
}
