//! `p4p stores`: association staff review and manage member stores: their
//! membership, their tokens (a stolen one is spotted by when it was last
//! used) and the moves they ask for.

use p4p_protocol::{ReinstatedStore, Store, StoreList, StoreStatus, TokenInfo};

use serde::Deserialize;

use crate::api::paths;
use crate::commands::{post_reason, tokens};
use crate::context::Context;
use crate::{args, local_time, render};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct StoresArgs {
    #[command(subcommand)]
    pub action: Option<StoreAction>,

    /// Only the stores in this status [default: all].
    #[arg(long, value_parser = args::store_status())]
    pub status: Option<StoreStatus>,

    /// Only the stores with a move waiting for a decision.
    #[arg(long)]
    pub pending_move: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum StoreAction {
    /// Show one store: contact details, status and any move it asked for.
    #[command(after_help = "Example:\n  p4p stores show 7")]
    Show {
        /// The store's id (see `p4p stores`).
        id: i64,
    },
    /// List a store's tokens, with when each was last used (local time).
    #[command(
        long_about = "List a store's tokens, revoked ones included, never their secrets. \
`last used` (to the minute, in local time) shows which devices really use the store's \
account: a token the store does not recognise, or one used after the store says it \
stopped, is a stolen one: revoke it with `p4p stores revoke-token`.",
        after_help = "Example:\n  p4p stores tokens 7"
    )]
    Tokens {
        /// The store's id.
        id: i64,
    },
    /// Revoke one of a store's tokens at once; streams using it are closed.
    #[command(
        after_help = "Example:\n  p4p stores tokens 7          # find the token\n  \
p4p stores revoke-token 7 12"
    )]
    RevokeToken {
        /// The store's id.
        id: i64,
        /// The token's id (see `p4p stores tokens ID`).
        token_id: i64,
    },
    /// Approve a pending store: it can then claim its token.
    #[command(after_help = "Example:\n  p4p stores approve 7")]
    Approve {
        /// The store's id (see `p4p stores --status pending`).
        id: i64,
        /// A note for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject a pending application, with the reason.
    #[command(after_help = "Example:\n  p4p stores reject 7 --reason \"Not a jewelry store\"")]
    Reject {
        id: i64,
        /// Why; kept in the audit log and shown to staff.
        #[arg(long, required = true)]
        reason: String,
    },
    /// Suspend a store: its tokens stop working and its streams close at once.
    #[command(after_help = "Example:\n  p4p stores suspend 7 --reason \"Posted false alerts\"")]
    Suspend {
        id: i64,
        /// Why; kept in the audit log and told to the store.
        #[arg(long, required = true)]
        reason: String,
    },
    /// Reinstate a suspended store: its old tokens are revoked; prints the
    /// claim secret to hand the store.
    #[command(
        long_about = "Reinstate a suspended store. Every token it had is revoked (so that \
a stolen one dies with the rest), and the server hands out a new claim secret, printed \
here once: give it to the store (by phone, in person), which claims a fresh token with \
`p4p pledge claim`.",
        after_help = "Example:\n  p4p stores reinstate 7\n  \
# then, at the store:  p4p pledge claim 7 --secret p4pclaim_..."
    )]
    Reinstate {
        id: i64,
        /// A note for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Approve the move a store asked for: its place and stream move there.
    #[command(
        after_help = "Example:\n  p4p stores --pending-move     # who asked\n  \
p4p stores approve-move 7"
    )]
    ApproveMove {
        id: i64,
        /// A note for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject the move a store asked for, with the reason: it stays put.
    #[command(
        after_help = "Example:\n  p4p stores reject-move 7 --reason \"Not the store's address\""
    )]
    RejectMove {
        id: i64,
        /// Why; kept in the audit log.
        #[arg(long, required = true)]
        reason: String,
    },
}

pub async fn run(ctx: &Context, args: StoresArgs) -> anyhow::Result<()> {
    match args.action {
        None => list(ctx, args.status, args.pending_move).await,
        Some(StoreAction::Show { id }) => show(ctx, id).await,
        Some(StoreAction::Tokens { id }) => tokens::list(ctx, paths::store_tokens(id)).await,
        Some(StoreAction::RevokeToken { id, token_id }) => revoke_token(ctx, id, token_id).await,
        Some(StoreAction::Approve { id, reason }) => act(ctx, id, "approve", reason).await,
        Some(StoreAction::Reject { id, reason }) => act(ctx, id, "reject", Some(reason)).await,
        Some(StoreAction::Suspend { id, reason }) => act(ctx, id, "suspend", Some(reason)).await,
        Some(StoreAction::Reinstate { id, reason }) => reinstate(ctx, id, reason).await,
        Some(StoreAction::ApproveMove { id, reason }) => act(ctx, id, "approve-move", reason).await,
        Some(StoreAction::RejectMove { id, reason }) => {
            act(ctx, id, "reject-move", Some(reason)).await
        }
    }
}

async fn list(
    ctx: &Context,
    status: Option<StoreStatus>,
    pending_move: bool,
) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = status
        .map(|status| ("status", status.as_str().to_owned()))
        .into_iter()
        .collect();
    if pending_move {
        query.push(("pending_move", "true".to_owned()));
    }
    let reply = ctx
        .api()?
        .get::<StoreList>(&paths::stores(), &query)
        .await?;
    ctx.emit(&reply, |list| {
        let rows: Vec<Vec<String>> = list.stores.iter().map(row).collect();
        render::table_or(
            "No stores.",
            &[
                "id", "status", "name", "contact", "email", "phone", "location", "radius",
                "move to",
            ],
            &rows,
        )
    })
}

fn row(store: &Store) -> Vec<String> {
    vec![
        store.id.to_string(),
        store.status.to_string(),
        store.name.clone(),
        store.contact_name.clone(),
        store.contact_email.clone(),
        store.phone.clone().unwrap_or_else(|| "-".to_owned()),
        render::place(store.location),
        render::km(store.radius_km),
        store
            .pending_move
            .map(|pending| render::place(pending.location))
            .unwrap_or_else(|| "-".to_owned()),
    ]
}

async fn show(ctx: &Context, id: i64) -> anyhow::Result<()> {
    let reply = ctx.api()?.get::<Store>(&paths::store(id), &[]).await?;
    ctx.emit(&reply, store_in_full)
}

fn store_in_full(store: &Store) -> String {
    let mut lines = vec![
        format!("Store #{}: {}", store.id, store.name),
        format!("  Status:   {}", store.status),
    ];
    if let Some(reason) = &store.status_reason {
        lines.push(format!("  Why:      {reason}"));
    }
    lines.extend([
        format!("  Address:  {}", store.address),
        format!(
            "  Area:     {}, radius {}",
            render::place(store.location),
            render::km(store.radius_km)
        ),
    ]);
    if let Some(pending) = store.pending_move {
        lines.push(format!(
            "  Move:     asked to move to {} on {}; decide with `p4p stores approve-move {}` or `reject-move`",
            render::place(pending.location),
            local_time::local(pending.requested_at),
            store.id
        ));
    }
    lines.extend([
        format!(
            "  Contact:  {} <{}>",
            store.contact_name, store.contact_email
        ),
        format!("  Phone:    {}", store.phone.as_deref().unwrap_or("-")),
        format!("  Joined:   {}", local_time::local(store.created_at)),
        format!("  Changed:  {}", local_time::local(store.updated_at)),
    ]);
    lines.join("\n")
}

async fn revoke_token(ctx: &Context, id: i64, token_id: i64) -> anyhow::Result<()> {
    let answer = ctx.api()?.delete(&paths::store_token(id, token_id)).await?;
    ctx.emit_json(answer.as_ref(), || {
        let label = answer
            .as_ref()
            .and_then(|json| TokenInfo::deserialize(json).ok())
            .map(|token| format!(" \"{}\"", token.label))
            .unwrap_or_default();
        format!("Revoked token #{token_id}{label} of store #{id}; its streams are closed.")
    })
}

/// `approve`, `reject`, `suspend`, `approve-move` or `reject-move`, and
/// what the store is now.
async fn act(
    ctx: &Context,
    id: i64,
    action: &'static str,
    reason: Option<String>,
) -> anyhow::Result<()> {
    let reply = post_reason::<Store>(ctx, paths::store_action(id, action), reason).await?;
    ctx.emit(&reply, |store| {
        let area = || {
            format!(
                "{} around {}",
                render::km(store.radius_km),
                render::place(store.location)
            )
        };
        match action {
            "approve-move" => format!("{} moved: it now looks {}.", named(store), area()),
            "reject-move" => format!("{} stays where it was, looking {}.", named(store), area()),
            _ => format!("{} is now {}.", named(store), store.status),
        }
    })
}

async fn reinstate(ctx: &Context, id: i64, reason: Option<String>) -> anyhow::Result<()> {
    let endpoint = paths::store_action(id, "reinstate");
    let reply = post_reason::<ReinstatedStore>(ctx, endpoint, reason).await?;
    ctx.emit(&reply, |reinstated| {
        let store = &reinstated.store;
        let claim_secret = render::escape(&reinstated.claim_secret);
        format!(
            "{} is {} again; every token it had is revoked.\n\
             Hand the store this claim secret (shown only this once):\n  {claim_secret}\n\
             With it the store claims a fresh token:\n  p4p --server {} pledge claim {} --secret {claim_secret}",
            named(store),
            store.status,
            ctx.server,
            store.id
        )
    })
}

/// `Store #7 (Main Street Jewelers)`, as the confirmations start.
fn named(store: &Store) -> String {
    format!("Store #{} ({})", store.id, render::escape(&store.name))
}
