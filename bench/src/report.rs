//! The run's figures: a table on standard output, a JSON file, a plot.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::Serialize;

use crate::fanout::Phase;
use crate::scenarios::{History, Idle, Posting, Resume};

#[derive(Debug, Clone, Serialize)]
pub struct SystemRun {
    pub system: &'static str,
    pub streams: usize,
    pub rss_before_kib: u64,
    pub rss_connected_kib: u64,
    pub rss_per_connection_kib: f64,
    pub phase: Phase,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub p99_vs_floor: f64,
    pub p99_vs_nats: f64,
    pub rss_per_connection_vs_floor: f64,
    pub rss_per_connection_vs_nats: f64,
    pub cpu_vs_floor: f64,
    pub cpu_vs_nats: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fanout {
    pub streams: usize,
    pub runs: Vec<SystemRun>,
    pub ratios: Option<Ratios>,
    /// p4p at rising rates on the same streams, up to the first that fails.
    pub ramp: Vec<Phase>,
    pub highest_sustained_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub command: String,
    pub machine: String,
    pub started_at: String,
    /// What this machine changed in the run (limits met).
    pub notes: Vec<String>,
    pub fanout: Vec<Fanout>,
    pub idle: Option<Idle>,
    pub resume: Option<Resume>,
    pub history: Option<History>,
    pub posting: Vec<Posting>,
    /// Missing plus unexpected deliveries over every phase: must be 0.
    pub delivery_errors: usize,
}

pub fn ratios(runs: &[SystemRun]) -> Option<Ratios> {
    let by = |name: &str| runs.iter().find(|r| r.system == name);
    let (p4p, floor, nats) = (by("p4p")?, by("floor")?, by("nats")?);
    let r = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    Some(Ratios {
        p99_vs_floor: r(
            p4p.phase.outcome.latency.p99_ms,
            floor.phase.outcome.latency.p99_ms,
        ),
        p99_vs_nats: r(
            p4p.phase.outcome.latency.p99_ms,
            nats.phase.outcome.latency.p99_ms,
        ),
        rss_per_connection_vs_floor: r(p4p.rss_per_connection_kib, floor.rss_per_connection_kib),
        rss_per_connection_vs_nats: r(p4p.rss_per_connection_kib, nats.rss_per_connection_kib),
        cpu_vs_floor: r(p4p.phase.cpu_seconds, floor.phase.cpu_seconds),
        cpu_vs_nats: r(p4p.phase.cpu_seconds, nats.phase.cpu_seconds),
    })
}

pub fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), {} GiB RAM, Linux {}",
        memory / 1024 / 1024,
        kernel.trim()
    )
}

pub fn print_fanout(fanout: &Fanout) {
    println!("\nScenario 1, fanout: {} streams", fanout.streams);
    println!(
        "  {:<6} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8} {:>10} {:>9} {:>10} {:>7} {:>9}",
        "system",
        "alerts",
        "p50 ms",
        "p99 ms",
        "max ms",
        "alerts/s",
        "frames/s",
        "missing",
        "unexp.",
        "RSS MiB",
        "KiB/conn",
        "after MiB",
        "CPU s",
        "bench CPU"
    );
    for run in &fanout.runs {
        let o = &run.phase.outcome;
        println!(
            "  {:<6} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.1} {:>10.0} {:>8} {:>8} {:>10.1} {:>9.1} {:>10.1} {:>7.2} {:>9.2}",
            run.system,
            o.alerts,
            o.latency.p50_ms,
            o.latency.p99_ms,
            o.latency.max_ms,
            run.phase.alerts_per_s,
            run.phase.frames_per_s,
            o.missing,
            o.unexpected,
            run.rss_connected_kib as f64 / 1024.0,
            run.rss_per_connection_kib,
            run.phase.rss_after_kib as f64 / 1024.0,
            run.phase.cpu_seconds,
            run.phase.harness_cpu_seconds,
        );
        if run.phase.reconnects > 0 {
            println!(
                "         {} streams closed by the server resumed with since",
                run.phase.reconnects
            );
        }
    }
    if let Some(r) = &fanout.ratios {
        println!(
            "  p4p / floor: p99 {:.2}x, KiB/conn {:.2}x, CPU {:.2}x;  p4p / NATS: p99 {:.2}x, KiB/conn {:.2}x, CPU {:.2}x",
            r.p99_vs_floor, r.rss_per_connection_vs_floor, r.cpu_vs_floor, r.p99_vs_nats, r.rss_per_connection_vs_nats, r.cpu_vs_nats
        );
    }
    for phase in &fanout.ramp {
        println!(
            "  ramp {:>6.0}/s: sent {:>7.1}/s, p99 {:>8.2} ms, max {:>8.2} ms, {:>9.0} frames/s, missing {}, unexpected {}, errors {}",
            phase.rate,
            phase.alerts_per_s,
            phase.outcome.latency.p99_ms,
            phase.outcome.latency.max_ms,
            phase.frames_per_s,
            phase.outcome.missing,
            phase.outcome.unexpected,
            phase.publish_errors
        );
    }
    if let Some(rate) = fanout.highest_sustained_rate {
        println!("  highest rate with p99 under 100 ms and nothing lost: {rate:.0} alerts/s");
    }
}

pub fn print_rest(report: &Report) {
    if let Some(idle) = &report.idle {
        println!(
            "\nScenario 2, idle capacity (baseline RSS {:.1} MiB; {})",
            idle.baseline_rss_kib as f64 / 1024.0,
            idle.stopped_by
        );
        for step in &idle.steps {
            println!(
                "  {:>7} streams: server RSS {:>8.1} MiB, {:>6.2} KiB per stream",
                step.streams,
                step.server_rss_kib as f64 / 1024.0,
                step.rss_per_stream_kib
            );
        }
    }
    if let Some(r) = &report.resume {
        println!(
            "\nScenario 3, resume: {} missed alerts, {} received in {:.3} s = {:.0} frames/s (in order: {}, duplicates: {})",
            r.missed_alerts, r.received, r.seconds, r.frames_per_s, r.in_order, r.duplicates
        );
    }
    if let Some(h) = &report.history {
        println!(
            "\nScenario 4, history: {} alerts stored, {} queries within {} km (mean {:.1} results; {} checked against brute force): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            h.alerts_in_database, h.queries, h.radius_km, h.mean_results, h.checked_against_brute_force, h.latency.p50_ms, h.latency.p99_ms, h.latency.max_ms
        );
    }
    for p in &report.posting {
        println!(
            "\nScenario 5, posting alone on {}: {} clients, {} alerts in {:.1} s = {:.0} alerts/s (errors {}), p50 {:.2} ms, p99 {:.2} ms, server CPU {:.1} s",
            p.database, p.clients, p.alerts, p.seconds, p.alerts_per_s, p.errors, p.latency.p50_ms, p.latency.p99_ms, p.cpu_seconds
        );
    }
    println!(
        "\nMissing plus unexpected deliveries, all phases: {}",
        report.delivery_errors
    );
}

/// The latency distribution of the largest fanout: one line per system.
pub fn plot(fanout: &Fanout, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).context("plot")?;
    let top = fanout
        .runs
        .iter()
        .flat_map(|r| r.phase.outcome.quantiles_ms.iter().map(|q| q.1))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Post-to-delivery latency, {} streams (log scale)",
                fanout.streams
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((0.05_f64..top).log_scale(), 0.0_f64..100.0)
        .context("plot")?;
    chart
        .configure_mesh()
        .x_desc("latency, ms")
        .y_desc("deliveries at or under, %")
        .draw()
        .context("plot")?;
    let colors = [RED, BLUE, GREEN];
    for (run, color) in fanout.runs.iter().zip(colors) {
        let points = run
            .phase
            .outcome
            .quantiles_ms
            .iter()
            .map(|(q, ms)| (ms.max(0.05), q * 100.0));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .context("plot")?
            .label(run.system)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .context("plot")?;
    root.present().context("plot")?;
    Ok(())
}
