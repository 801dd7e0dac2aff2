//! Command-line options, each with an environment fallback and a default
//! that works on one machine.

use clap::{Args, Parser, Subcommand};
use p4p_protocol::Role;

use crate::domain::moderation::{ModerationMode, Policy};

#[derive(Debug, Parser)]
#[command(
    name = "p4p-server",
    version,
    about = "The p4p alert network server: membership, alerts, live fanout by radius.",
    long_about = "The p4p alert network server.\n\n\
        With no arguments it serves on 127.0.0.1:8080 with the SQLite file p4p.db in the \
        working directory, created and migrated on first start. Make the first staff token \
        with `p4p-server token create --role admin --label NAME`.",
    after_help = "Examples:\n  p4p-server\n  p4p-server --bind 0.0.0.0:8080 --database-url sqlite:/var/lib/p4p/p4p.db\n  \
        p4p-server token create --role admin --label \"Alice (association)\""
)]
pub struct Cli {
    /// Where the data lives: sqlite:PATH (created if missing), or
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE for several nodes.
    #[arg(
        long,
        env = "P4P_DATABASE_URL",
        default_value = "sqlite:p4p.db",
        global = true
    )]
    pub database_url: String,

    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to serve on (port 0 picks a free one).
    #[arg(long, env = "P4P_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// The address users reach this server at, e.g. https://p4p.example.org
    /// (behind a proxy that terminates TLS). It is the base of absolute
    /// links, makes cookies `Secure` when it is https, and its origin may
    /// always open streams. Default: the bind address over http.
    #[arg(long, env = "P4P_PUBLIC_URL", value_parser = PublicUrl::parse)]
    pub public_url: Option<PublicUrl>,

    /// Address and port to serve `GET /metrics` on, for operators only
    /// (e.g. 127.0.0.1:9090; port 0 picks a free one). The public listener
    /// never serves metrics. Default: metrics are not served.
    #[arg(long, env = "P4P_METRICS_BIND")]
    pub metrics_bind: Option<String>,

    /// Frames a stream may have waiting before its client counts as too
    /// slow and is closed with 4008 (it resumes with `since`, losing nothing).
    #[arg(long, env = "P4P_STREAM_QUEUE", default_value_t = 1024, value_parser = queue_length)]
    pub stream_queue: usize,

    /// Seconds between pings on idle streams; a client silent for two
    /// intervals is dropped.
    #[arg(long, env = "P4P_PING_INTERVAL_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ping_interval_secs: u64,

    /// PostgreSQL: connections in each of the node's reading and writing
    /// pools (a node uses up to twice this, plus one to LISTEN).
    #[arg(long, env = "P4P_DATABASE_POOL", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool: u32,

    /// post: publish at once, staff review afterwards; pre: every alert
    /// waits for a moderator.
    #[arg(long, env = "P4P_MODERATION", value_enum, default_value_t = ModerationMode::Post)]
    pub moderation: ModerationMode,

    /// A new store's first N alerts wait for a moderator (0: no probation).
    #[arg(long, env = "P4P_PROBATION_ALERTS", default_value_t = 3)]
    pub probation_alerts: u32,

    /// Flags from this many different stores move an alert back to pending.
    #[arg(long, env = "P4P_FLAG_THRESHOLD", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub flag_threshold: u32,

    /// Alerts that happened longer ago than this are erased: 404 to
    /// everyone at once, their content gone from the database within the
    /// hour; the audit trail stays. Older `occurred_at` is refused.
    #[arg(long, env = "P4P_RETENTION_DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: u32,

    /// How often alerts past retention are erased (their text, suspects and
    /// vehicles, stored stream events included), and expired idempotency
    /// keys forgotten. At most an hour: docs/API.md promises erasure within it.
    #[arg(long, env = "P4P_ERASE_INTERVAL_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub erase_interval_secs: u64,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Defences against floods and abuse. Every rate limit allows its whole
/// hourly allowance at once and then refills evenly over the hour; a
/// refusal is 429 with `Retry-After`. 0 turns that one limit off.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// on, or off to turn every rate limit below off (for benchmarks and
    /// trusted test rigs; the server warns when it starts so). Caps on
    /// streams, connections, message sizes and time stay on.
    #[arg(long, env = "P4P_RATE_LIMITS", value_enum, default_value_t = Switch::On)]
    pub rate_limits: Switch,

    /// New alerts one store may post per hour.
    #[arg(long, env = "P4P_ALERTS_PER_STORE_PER_HOUR", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..))]
    pub alerts_per_store_per_hour: u32,

    /// Edits one store may make to its alerts per hour (each edit of a
    /// published alert reaches every store in reach).
    #[arg(long, env = "P4P_ALERT_EDITS_PER_STORE_PER_HOUR", default_value_t = 120,
          value_parser = clap::value_parser!(u32).range(0..))]
    pub alert_edits_per_store_per_hour: u32,

    /// Pledges one client address may send per hour.
    #[arg(long, env = "P4P_PLEDGES_PER_ADDRESS_PER_HOUR", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..))]
    pub pledges_per_address_per_hour: u32,

    /// Unknown or revoked tokens one client address may present per hour;
    /// past that, the address gets 429 for every token (guessing) until
    /// its allowance refills.
    #[arg(long, env = "P4P_FAILED_AUTHS_PER_ADDRESS_PER_HOUR", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(0..))]
    pub failed_auths_per_address_per_hour: u32,

    /// Tokens one store may make per hour (POST /v1/me/tokens; each admin
    /// token has its own allowance too).
    #[arg(long, env = "P4P_TOKENS_PER_STORE_PER_HOUR", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(0..))]
    pub tokens_per_store_per_hour: u32,

    /// New stream connections one token may open per hour (reconnections
    /// included).
    #[arg(long, env = "P4P_STREAM_CONNECTS_PER_TOKEN_PER_HOUR", default_value_t = 120,
          value_parser = clap::value_parser!(u32).range(0..))]
    pub stream_connects_per_token_per_hour: u32,

    /// Streams one token may hold open at once (a token is one device).
    #[arg(long, env = "P4P_STREAMS_PER_TOKEN", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub streams_per_token: u32,

    /// Streams one store's tokens may hold open at once, in all (a few
    /// devices and browser tabs).
    #[arg(long, env = "P4P_STREAMS_PER_STORE", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub streams_per_store: u32,

    /// Connections (HTTP and streams) open at once; more are answered 503
    /// and closed. 0: the open-file limit less a reserve for the database
    /// and logs.
    #[arg(long, env = "P4P_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: u32,

    /// Connections one client address (an IPv6 client: its /64) may hold
    /// open at once; more are answered 429 and closed. The address is the
    /// TCP peer: trusted proxies are exempt (limit per client on the
    /// proxy). 0: no cap but --max-connections.
    #[arg(long, env = "P4P_CONNECTIONS_PER_ADDRESS", default_value_t = 64)]
    pub connections_per_address: u32,

    /// Seconds a client has to send a request's whole head (also between
    /// requests on a kept-alive connection); a slower one is disconnected.
    #[arg(long, env = "P4P_HEADER_READ_TIMEOUT_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_read_timeout_secs: u64,

    /// Seconds a request may take before it is answered 503 (streams are
    /// timed by the ping interval instead, once upgraded).
    #[arg(long, env = "P4P_REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,

    /// Reverse proxies (addresses or CIDR blocks, comma-separated) whose
    /// X-Forwarded-For names the client: from them, the per-address limits
    /// count the rightmost address in that header that is not itself a
    /// trusted proxy. Without this, every client behind a proxy shares the
    /// proxy's allowance.
    #[arg(long, env = "P4P_TRUSTED_PROXIES", value_delimiter = ',', value_parser = ip_block)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Browser origins allowed to open streams, comma-separated (e.g.
    /// https://console.example.org). A stream upgrade that carries any
    /// other Origin header is refused (403); clients that send none (the
    /// CLI, store systems) are not affected.
    #[arg(long, env = "P4P_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl ServeArgs {
    pub fn policy(&self) -> Policy {
        Policy {
            mode: self.moderation,
            probation_alerts: self.probation_alerts,
            flag_threshold: self.flag_threshold,
            retention_days: self.retention_days,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Staff tokens, made on the server host.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new staff token to standard output (shown once).
    #[command(
        after_help = "Example:\n  p4p-server token create --role admin --label \"Alice (association)\""
    )]
    Create {
        /// admin (can also manage staff tokens) or moderator.
        #[arg(long, value_parser = parse_staff_role)]
        role: Role,
        /// Who or what the token is for, shown in the audit trail.
        #[arg(long)]
        label: String,
    },
}

/// An address or a CIDR block.
fn ip_block(value: &str) -> Result<ipnet::IpNet, String> {
    let value = value.trim();
    value
        .parse::<ipnet::IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{value:?} is neither an address nor a CIDR block like 10.0.0.0/8"))
}

fn queue_length(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(length) if (1..=1_000_000).contains(&length) => Ok(length),
        _ => Err("must be a whole number from 1 to 1000000".to_owned()),
    }
}

fn parse_staff_role(value: &str) -> Result<Role, String> {
    match value.parse()? {
        Role::Store => {
            Err("store tokens come from an approved pledge; use admin or moderator".to_owned())
        }
        role => Ok(role),
    }
}

/// Where users reach the server (`--public-url`): an http or https URL with
/// no query or fragment, kept without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    https: bool,
    /// `scheme://host[:port]`, lower case: what browsers send as `Origin`.
    origin: String,
    /// The origin and any path prefix, without a trailing slash.
    base: String,
}

impl PublicUrl {
    pub fn parse(text: &str) -> Result<PublicUrl, String> {
        let uri: axum::http::Uri = text
            .trim()
            .parse()
            .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("`{text}` must start with http:// or https://")),
        };
        let Some(authority) = uri.authority() else {
            return Err(format!("`{text}` names no host"));
        };
        if uri.query().is_some() || text.contains('#') {
            return Err(format!("`{text}` must have no query or fragment"));
        }
        let scheme = if https { "https" } else { "http" };
        // As browsers send it: without the scheme's default port.
        let default_port = if https { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port == default_port => authority.host().to_owned(),
            _ => authority.as_str().to_owned(),
        };
        let origin = format!("{scheme}://{}", host.to_ascii_lowercase());
        let base = format!("{origin}{}", uri.path().trim_end_matches('/'));
        Ok(PublicUrl {
            https,
            origin,
            base,
        })
    }

    /// The default: the address the server listens on, over http.
    pub fn of_bind(address: std::net::SocketAddr) -> PublicUrl {
        let origin = format!("http://{address}");
        PublicUrl {
            https: false,
            base: origin.clone(),
            origin,
        }
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// An absolute link to `path` (which starts with `/`) on this server.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

#[cfg(test)]
mod public_url_tests {
    use super::PublicUrl;

    #[test]
    fn the_public_url_gives_the_origin_links_and_whether_it_is_https() {
        let url = PublicUrl::parse("https://P4P.example.org/").expect("valid");
        assert!(url.is_https());
        assert_eq!(url.origin(), "https://p4p.example.org");
        assert_eq!(
            url.link("/verify/abc"),
            "https://p4p.example.org/verify/abc"
        );
        let prefixed = PublicUrl::parse("http://example.org:8443/p4p/").expect("valid");
        assert!(!prefixed.is_https());
        assert_eq!(prefixed.origin(), "http://example.org:8443");
        assert_eq!(
            prefixed.link("/v1/feed.atom"),
            "http://example.org:8443/p4p/v1/feed.atom"
        );
        for bad in [
            "ftp://example.org",
            "example.org",
            "https://example.org/?a=1",
            "https://x.org/#f",
            "",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
        let default_port = PublicUrl::parse("https://example.org:443").expect("valid");
        assert_eq!(default_port.origin(), "https://example.org");
        let bound = PublicUrl::of_bind("127.0.0.1:8080".parse().expect("address"));
        assert_eq!(bound.origin(), "http://127.0.0.1:8080");
    }
}
