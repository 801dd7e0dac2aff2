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

    /// Alerts that happened longer ago than this leave members' views and
    /// replay; staff still see them and the audit trail stays.
    #[arg(long, env = "P4P_RETENTION_DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: u32,
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
