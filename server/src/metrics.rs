//! What the server counts, in the Prometheus text format (`GET /metrics`).
//!
//! Every series is named and described here, once. The code that counts
//! uses the `metrics` facade with these names; the recorder is installed
//! by [`install`] before anything counts. Hot paths (the fanout, stream
//! writes) keep a [`metrics::Counter`] handle instead of looking one up per
//! frame.
//!
//! A leaf: it knows nothing of the rest of the server. The layers above
//! count (the HTTP layer times requests and counts the database errors it
//! answers; the background loops count theirs with [`database_error`]);
//! the storage layer below counts nothing and only returns its errors.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram, Counter, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use p4p_protocol::{AlertKind, AlertStatus};

/// Gauge: open WebSocket streams on this node.
pub const STREAMS_OPEN: &str = "p4p_streams_open";
/// Gauge, labels `kind` and `status`: alerts in the database. Read at
/// scrape time and rendered by [`render_alerts`], not kept in the recorder:
/// when the database does not answer the series are absent, not stale.
pub const ALERTS: &str = "p4p_alerts";
/// Counter: event frames written to stream sockets, live and replayed.
pub const FRAMES_SENT: &str = "p4p_frames_sent_total";
/// Counter: frames the hub could not queue because a stream's queue was full.
pub const FRAMES_DROPPED: &str = "p4p_frames_dropped_total";
/// Counter, label `code`: streams the server closed (counted as it sends the close frame).
pub const STREAM_CLOSES: &str = "p4p_stream_closes_total";
/// Counter, label `limit`: requests refused by a rate limit.
pub const RATE_LIMITED: &str = "p4p_rate_limited_total";
/// Histogram, labels `method`, `route` (the matched route, never the raw
/// path) and `status`.
pub const HTTP_REQUEST_DURATION: &str = "p4p_http_request_duration_seconds";
/// Counter: database errors, answered or met in the background.
pub const DATABASE_ERRORS: &str = "p4p_database_errors_total";

/// The buckets of the request duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How often histogram samples are folded in when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);
/// How long a scrape waits for the alert counts before it answers without.
pub const COUNT_TIMEOUT: Duration = Duration::from_secs(2);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder's handle, and the counters the stream writers keep.
#[derive(Clone)]
pub struct Metrics {
    /// Renders the scrape.
    pub scrape: PrometheusHandle,
    pub frames_sent: Counter,
}

/// Installs the Prometheus recorder, once per process, and describes every
/// series. Needs a Tokio runtime (upkeep).
pub fn install() -> anyhow::Result<Metrics> {
    let scrape = recorder()?;
    // Present, at 0, from the first scrape.
    metrics::counter!(DATABASE_ERRORS).absolute(0);
    Ok(Metrics {
        scrape,
        frames_sent: metrics::counter!(FRAMES_SENT),
    })
}

fn recorder() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_REQUEST_DURATION.to_owned()),
            &DURATION_BUCKETS,
        )?
        .install_recorder()?;
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP).await;
            upkeep.run_upkeep();
        }
    });
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    describe_gauge!(STREAMS_OPEN, "Open WebSocket streams on this node.");
    describe_counter!(
        FRAMES_SENT,
        "Event frames (live and replayed) written to stream sockets; hello, pings and close frames not included."
    );
    describe_counter!(
        FRAMES_DROPPED,
        "Frames the hub could not queue for a stream because its queue was full; such a stream is closed with 4008."
    );
    describe_counter!(
        STREAM_CLOSES,
        "Streams the server closed, by close code (4008 too slow, 4001 revoked, 1001 shutdown, 1008 too many client messages, 1009 client message too big, 1011 database unavailable)."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests and messages refused by a rate limit, by limit."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "HTTP request durations until the response head, by method, matched route and status."
    );
    describe_counter!(
        DATABASE_ERRORS,
        "Database errors: answered to clients, or met by replay, the relay between nodes and the scrape itself."
    );
}

/// Counts one database error.
pub fn database_error() {
    metrics::counter!(DATABASE_ERRORS).increment(1);
}

/// Counts a stream the server closes, before its close frame goes out.
pub fn stream_closed(code: u16) {
    metrics::counter!(STREAM_CLOSES, "code" => code.to_string()).increment(1);
}

/// The `p4p_alerts` family from `(kind, status, count)` triples: every
/// known kind and status (0 when none), and any other pair the database
/// holds.
pub fn render_alerts<'a>(counts: impl IntoIterator<Item = (&'a str, &'a str, i64)>) -> String {
    let mut pairs: Vec<(&str, &str, i64)> = AlertKind::ALL
        .iter()
        .flat_map(|kind| {
            AlertStatus::ALL
                .iter()
                .map(move |status| (kind.as_str(), status.as_str(), 0))
        })
        .collect();
    for (kind, status, count) in counts {
        let known = pairs
            .iter_mut()
            .find(|pair| pair.0 == kind && pair.1 == status);
        match known {
            Some(pair) => pair.2 = count,
            None => pairs.push((kind, status, count)),
        }
    }
    let mut out = format!(
        "# HELP {ALERTS} Alerts in the database by kind and status, counted at scrape time.\n\
         # TYPE {ALERTS} gauge\n"
    );
    for (kind, status, count) in pairs {
        let _ = writeln!(
            out,
            "{ALERTS}{{kind=\"{}\",status=\"{}\"}} {count}",
            escape(kind),
            escape(status)
        );
    }
    out
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_counts_cover_every_kind_and_status() {
        let counts = [
            ("burglary", "published", 3),
            ("odd\"kind\\\n", "pending", 1),
        ];
        let text = render_alerts(counts);
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            series.len(),
            AlertKind::ALL.len() * AlertStatus::ALL.len() + 1
        );
        assert!(series.contains(&"p4p_alerts{kind=\"burglary\",status=\"published\"} 3"));
        assert!(series.contains(&"p4p_alerts{kind=\"burglary\",status=\"pending\"} 0"));
        assert!(series.contains(&"p4p_alerts{kind=\"odd\\\"kind\\\\\\n\",status=\"pending\"} 1"));
        assert!(text.starts_with("# HELP p4p_alerts "));
    }
}
