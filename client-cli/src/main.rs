//! `p4p`: the command-line client of the p4p alert network for jewelry stores.

mod api;
mod args;
mod atomic_file;
mod commands;
mod config;
mod context;
mod local_time;
mod output;
mod render;
mod secret;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{
    alerts, audit, edit, erase, flag, listen, login, moderation, pledge, post, retract, show,
    stores, tokens,
};
use context::{Context, GlobalArgs};

#[derive(Debug, Parser)]
#[command(
    name = "p4p",
    version,
    about = "p4p: jewelry stores warn each other of thieves and suspects, live.",
    long_about = "p4p: jewelry stores warn each other of thieves and suspects, live.\n\n\
A member store posts an alert (someone casing the showcases, a grab and run, a \
suspicious car); every member store around it receives it at once with `p4p listen`. \
Association staff approve new stores and moderate alerts.",
    after_help = "Getting started, as a store:\n  \
p4p pledge --name \"Main Street Jewelers\" --address \"1 Main St\" --lat 40.7128 --lon -74.006 \\\n      \
--contact \"Ann Lee\" --email ann@example.com      # apply\n  \
p4p pledge status                                   # once approved: saves your token\n  \
p4p listen                                          # receive alerts, live\n  \
p4p post --kind casing --title \"Two men watching the showcases\"\n\n\
As staff, with a token from `p4p-server token create`:\n  \
p4p login --server https://p4p.example.org --token p4p_...\n  \
p4p stores --status pending\n  \
p4p stores approve 7\n  \
p4p mod queue                                       # alerts awaiting approval, flagged alerts\n  \
p4p mod approve 42\n  \
p4p audit                                           # who did what, newest first\n\n\
Settings: --server/--token flags, then P4P_SERVER/P4P_TOKEN, then the config file \
(P4P_CONFIG or --config, default <config dir>/p4p/config.json).\n\
Add --json to any command to get the server's JSON, for scripts."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply for membership with your store (then: `p4p pledge status`).
    #[command(
        long_about = "Apply for membership with your store. This sends the store's details \
and its acceptance of the Partner for Protection pledge to the association, and saves \
the store id and a claim secret in the config file. Once the association has approved \
the store, `p4p pledge status` fetches its token.",
        after_help = "Examples:\n  \
p4p --server https://p4p.example.org pledge --name \"Main Street Jewelers\" \\\n      \
--address \"1 Main St, New York\" --lat 40.7128 --lon -74.006 \\\n      \
--contact \"Ann Lee\" --email ann@example.com --phone \"+1 212 555 0100\"\n  \
p4p pledge status\n  \
p4p pledge claim 7 --secret p4pclaim_...     # with the secret staff gave on reinstatement"
    )]
    Pledge(pledge::PledgeArgs),

    /// Save the server and a token (given by staff or `p4p tokens create`).
    #[command(
        long_about = "Save the server URL and a token in the config file, after checking \
the token with the server. A token the server refuses is not saved.",
        after_help = "Example:\n  p4p login --server https://p4p.example.org --token p4p_..."
    )]
    Login,

    /// Show who the token belongs to: role, store (and any move waiting), token.
    #[command(visible_alias = "me", after_help = "Example:\n  p4p whoami")]
    Whoami,

    /// Receive alerts live, resuming where the last run stopped.
    #[command(
        long_about = "Receive alerts live from the stream and print each as a block: \
new alerts, updates, retractions (and, for staff, alerts awaiting moderation and \
flags). The listener reconnects by itself and keeps the seq of the last event it \
processed in a state file, so that a restart misses nothing. Status messages go to \
standard error; standard output carries only the events. With --json each frame \
is printed as one JSON line, exactly as received. Ctrl-C stops it.\n\n\
A store that may not listen is told why and waits rather than exits: a pledge still \
pending is checked every 60 s, and once approved its token is saved to the config file \
and the listener starts; a suspended store (the reason is shown once) tries again every \
60 s, reading the config file each time, so that the token claimed after reinstatement \
(`p4p pledge claim STORE_ID --secret S`, with the secret staff hand out) is picked up. \
A rejected pledge ends it with the reason (exit 1), as does a revoked token.\n\n\
A failing --exec command is run again for the same event (after 1 s, doubling to 60 s) \
and the saved position does not pass the event until it succeeds; \
--exec-failures skip moves on instead.",
        after_help = "Examples:\n  \
p4p listen\n  \
p4p listen --json | jq .\n  \
p4p listen --exec 'notify-send \"p4p $P4P_FRAME_TYPE\" \"$(jq -r .alert.title)\"'"
    )]
    Listen(listen::ListenArgs),

    /// Post an alert to the stores around yours.
    #[command(
        long_about = "Post an alert. It reaches every member store within its radius (by \
default, by kind) of where it happened (by default, your store). Describe each suspect \
and vehicle with `key=value` pairs separated by `;`. A post that gets no answer (a \
timeout, a restarting server) is retried with the same Idempotency-Key: it is posted \
once, never twice.",
        after_help = "Example:\n  \
p4p post --kind casing --title \"Two men casing showcases, left in a silver sedan\" \\\n      \
--suspect \"sex=male; age=30s; clothing=red hoodie; shoes=white sneakers\" \\\n      \
--vehicle \"make=Honda; color=silver; plate=ABC1234\""
    )]
    Post(post::PostArgs),

    /// List alerts, newest first, with filters.
    #[command(after_help = "Examples:\n  \
p4p alerts\n  \
p4p alerts --near -33.86,151.2 --radius-km 10 --kind grab_and_run\n  \
p4p alerts --before-id 17")]
    Alerts(alerts::AlertsArgs),

    /// Show one alert in full.
    #[command(after_help = "Example:\n  p4p show 42")]
    Show(show::ShowArgs),

    /// Correct an alert you posted (staff: any alert); only what you give changes.
    #[command(
        override_usage = "p4p edit <ID> [OPTIONS]   (at least one change)",
        long_about = "Correct an alert you posted (staff: any alert). Only the fields given \
change, and at least one must be given. --suspect and --vehicle replace the alert's whole list of suspects or vehicles \
(repeat them to give several); --clear-suspects and --clear-vehicles empty it. Stores \
that received the alert receive the update. The edit applies only to the version of the \
alert it read (If-Match): if someone changed it meanwhile, nothing changes and p4p says so; \
--if-version names the version you saw in `p4p show`.",
        after_help = "Examples:\n  \
p4p edit 42 --title \"Two men casing showcases, left in a silver Honda\"\n  \
p4p edit 42 --vehicle \"make=Honda; model=Civic; color=silver; plate=ABC1234\"\n  \
p4p edit 42 --lat 40.7128 --lon -74.006 --radius-km 10 --clear-suspects\n  \
p4p edit 42 --if-version 3 --title \"Three men, not two\""
    )]
    Edit(edit::EditArgs),

    /// Withdraw an alert you posted (staff: any alert), with the reason.
    #[command(
        long_about = "Withdraw a published alert you posted (staff: any alert). Stores that \
received it are told to drop it, with the reason.",
        after_help = "Example:\n  p4p retract 42 --reason \"Duplicate of 41\""
    )]
    Retract(retract::RetractArgs),

    /// Admins: erase an alert at once (a defamatory one), with the reason.
    #[command(
        long_about = "Erase an alert at once (admins): its text, suspects and vehicles \
leave the server, stored stream events included; it is gone for everyone, staff too, and \
stores that showed it are told to drop it. The reason goes to the audit trail. Use it for \
an alert that must not exist (a defamatory one); `p4p retract` withdraws an ordinary one.",
        after_help = "Example:\n  p4p erase 42 --reason \"Names a customer, not a suspect\""
    )]
    Erase(erase::EraseArgs),

    /// Report an alert as wrong or abusive to the association.
    #[command(
        long_about = "Report another store's alert as wrong or abusive. The association's \
moderators review it; each store can flag an alert once.",
        after_help = "Example:\n  p4p flag 42 --reason \"Wrong store: this happened at ours\""
    )]
    Flag(flag::FlagArgs),

    /// List your tokens (with when each was last used); create one for another device, or revoke one.
    #[command(after_help = "Examples:\n  \
p4p tokens                                  # a token last used when you did not: revoke it\n  \
p4p tokens create --label \"back office PC\"\n  \
p4p tokens create --label \"Bob\" --role admin   # admins: a staff token (default moderator)\n  \
p4p tokens revoke 3")]
    Tokens(tokens::TokensArgs),

    /// Staff: list member stores; vet them, see and revoke their tokens, decide their moves.
    #[command(after_help = "Examples:\n  \
p4p stores --status pending\n  \
p4p stores approve 7\n  \
p4p stores reject 8 --reason \"Not a jewelry store\"\n  \
p4p stores show 7\n  \
p4p stores tokens 7                      # which devices use the account, and when\n  \
p4p stores revoke-token 7 12             # a token the store does not recognise\n  \
p4p stores suspend 7 --reason \"Posted false alerts\"\n  \
p4p stores reinstate 7                   # revokes its tokens, prints a new claim secret\n  \
p4p stores --pending-move                # stores waiting to move\n  \
p4p stores approve-move 7\n  \
p4p stores reject-move 7 --reason \"Not the store's address\"")]
    Stores(stores::StoresArgs),

    /// Staff: the moderation queue; approve, reject or verify an alert.
    #[command(
        name = "mod",
        after_help = "Examples:\n  \
p4p mod queue\n  \
p4p mod approve 42\n  \
p4p mod reject 43 --reason \"Not a crime, a dispute over a refund\"\n  \
p4p mod verify 42"
    )]
    Mod(moderation::ModerationArgs),

    /// Staff: the audit trail of moderation and membership actions, newest first.
    #[command(after_help = "Examples:\n  \
p4p audit\n  \
p4p audit --limit 20 --before-id 118")]
    Audit(audit::AuditArgs),
}

fn main() -> ExitCode {
    // Before the runtime starts its threads (see local_time).
    local_time::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Errors may quote the server (a problem's `detail`).
            eprintln!("error: {}", render::escape(&error.to_string()));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut ctx = Context::resolve(cli.global)?;
    match cli.command {
        Command::Pledge(args) => pledge::run(&mut ctx, args).await,
        Command::Login => login::login(&mut ctx).await,
        Command::Whoami => login::whoami(&ctx).await,
        Command::Listen(args) => listen::run(&ctx, args).await,
        Command::Post(args) => post::run(&ctx, args).await,
        Command::Alerts(args) => alerts::run(&ctx, args).await,
        Command::Show(args) => show::run(&ctx, args).await,
        Command::Edit(args) => edit::run(&ctx, args).await,
        Command::Retract(args) => retract::run(&ctx, args).await,
        Command::Flag(args) => flag::run(&ctx, args).await,
        Command::Erase(args) => erase::run(&ctx, args).await,
        Command::Tokens(args) => tokens::run(&ctx, args).await,
        Command::Stores(args) => stores::run(&ctx, args).await,
        Command::Mod(args) => moderation::run(&ctx, args).await,
        Command::Audit(args) => audit::run(&ctx, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn reject_and_suspend_need_a_reason() {
        assert!(Cli::try_parse_from(["p4p", "stores", "reject", "7"]).is_err());
        assert!(Cli::try_parse_from(["p4p", "stores", "suspend", "7"]).is_err());
        assert!(Cli::try_parse_from(["p4p", "stores", "reject", "7", "--reason", "no"]).is_ok());
        assert!(Cli::try_parse_from(["p4p", "stores", "approve", "7"]).is_ok());
    }

    #[test]
    fn pledge_takes_its_flags_or_the_status_subcommand() {
        assert!(Cli::try_parse_from(["p4p", "pledge", "status"]).is_ok());
        assert!(Cli::try_parse_from(["p4p", "pledge", "--name", "Main"]).is_err());
        let full = [
            "p4p",
            "pledge",
            "--name",
            "Main",
            "--address",
            "1 Main St",
            "--lat",
            "-33.86",
            "--lon",
            "151.2",
            "--contact",
            "Ann",
            "--email",
            "ann@example.com",
        ];
        assert!(Cli::try_parse_from(full).is_ok());
    }

    #[test]
    fn near_takes_negative_numbers_and_needs_a_radius() {
        let parsed = Cli::try_parse_from([
            "p4p",
            "alerts",
            "--near",
            "-33.86,151.2",
            "--radius-km",
            "5",
        ]);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert!(Cli::try_parse_from(["p4p", "alerts", "--near", "-33.86,151.2"]).is_err());
        assert!(Cli::try_parse_from(["p4p", "alerts", "--radius-km", "5"]).is_err());
    }

    #[test]
    fn post_needs_lat_and_lon_together_and_a_known_kind() {
        let base = ["p4p", "post", "--kind", "casing", "--title", "t"];
        assert!(Cli::try_parse_from(base).is_ok());
        assert!(Cli::try_parse_from([&base[..], &["--lat", "40.7"]].concat()).is_err());
        assert!(
            Cli::try_parse_from([&base[..], &["--lat", "-40.7", "--lon", "-74"]].concat()).is_ok()
        );
        assert!(
            Cli::try_parse_from(["p4p", "post", "--kind", "shoplifting", "--title", "t"]).is_err()
        );
        assert!(Cli::try_parse_from([&base[..], &["--suspect", "colour=red"]].concat()).is_err());
    }

    #[test]
    fn edit_needs_a_change_and_lat_and_lon_together() {
        assert!(Cli::try_parse_from(["p4p", "edit", "42"]).is_err());
        assert!(Cli::try_parse_from(["p4p", "edit", "42", "--title", "t"]).is_ok());
        assert!(Cli::try_parse_from(["p4p", "edit", "42", "--clear-vehicles"]).is_ok());
        assert!(Cli::try_parse_from(["p4p", "edit", "42", "--lat", "-40.7"]).is_err());
        assert!(
            Cli::try_parse_from(["p4p", "edit", "42", "--lat", "-40.7", "--lon", "-74"]).is_ok()
        );
        assert!(Cli::try_parse_from(["p4p", "edit", "42", "--kind", "shoplifting"]).is_err());
    }

    #[test]
    fn edit_reads_suspects_like_post_and_refuses_a_list_and_its_clearing() {
        let parsed = Cli::try_parse_from([
            "p4p",
            "edit",
            "42",
            "--suspect",
            "sex=male; age=30s",
            "--suspect",
            "hair=short black",
        ]);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert!(Cli::try_parse_from(["p4p", "edit", "42", "--suspect", "colour=red"]).is_err());
        let both = [
            "p4p",
            "edit",
            "42",
            "--suspect",
            "sex=male",
            "--clear-suspects",
        ];
        assert!(Cli::try_parse_from(both).is_err());
        let both = [
            "p4p",
            "edit",
            "42",
            "--vehicle",
            "make=Honda",
            "--clear-vehicles",
        ];
        assert!(Cli::try_parse_from(both).is_err());
    }

    #[test]
    fn retract_flag_and_reject_need_a_reason() {
        assert!(Cli::try_parse_from(["p4p", "retract", "42"]).is_err());
        assert!(Cli::try_parse_from(["p4p", "retract", "42", "--reason", "dup"]).is_ok());
        assert!(Cli::try_parse_from(["p4p", "flag", "42"]).is_err());
        assert!(Cli::try_parse_from(["p4p", "flag", "42", "--reason", "wrong"]).is_ok());
        assert!(Cli::try_parse_from(["p4p", "mod", "reject", "42"]).is_err());
        assert!(Cli::try_parse_from(["p4p", "mod", "reject", "42", "--reason", "no"]).is_ok());
        assert!(Cli::try_parse_from(["p4p", "mod", "approve", "42"]).is_ok());
        assert!(Cli::try_parse_from(["p4p", "mod", "verify", "42"]).is_ok());
        assert!(Cli::try_parse_from(["p4p", "mod", "queue"]).is_ok());
        assert!(Cli::try_parse_from(["p4p", "mod"]).is_err());
    }

    #[test]
    fn audit_pages_with_limit_and_before_id() {
        let parsed = Cli::try_parse_from(["p4p", "audit", "--limit", "20", "--before-id", "118"]);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert!(Cli::try_parse_from(["p4p", "audit", "--limit", "many"]).is_err());
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["p4p", "alerts", "--json", "--server", "http://x:1"]);
        let cli = cli.expect("parses");
        assert!(cli.global.json);
        assert_eq!(cli.global.server.as_deref(), Some("http://x:1"));
    }
}
