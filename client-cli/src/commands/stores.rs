//! `p4p stores`: association staff review and manage member stores.

use p4p_protocol::{ReasonRequest, Store, StoreList, StoreStatus};

use crate::context::Context;
use crate::{args, output, render};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct StoresArgs {
    #[command(subcommand)]
    pub action: Option<StoreAction>,

    /// Only the stores in this status [default: all].
    #[arg(long, value_parser = args::store_status())]
    pub status: Option<StoreStatus>,
}

#[derive(Debug, clap::Subcommand)]
pub enum StoreAction {
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
        /// Why; kept in the audit log and shown to staff.
        #[arg(long, required = true)]
        reason: String,
    },
    /// Reinstate a suspended store.
    #[command(after_help = "Example:\n  p4p stores reinstate 7")]
    Reinstate {
        id: i64,
        /// A note for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
}

pub async fn run(ctx: &Context, args: StoresArgs) -> anyhow::Result<()> {
    match args.action {
        None => list(ctx, args.status).await,
        Some(StoreAction::Approve { id, reason }) => act(ctx, id, "approve", reason).await,
        Some(StoreAction::Reject { id, reason }) => act(ctx, id, "reject", Some(reason)).await,
        Some(StoreAction::Suspend { id, reason }) => act(ctx, id, "suspend", Some(reason)).await,
        Some(StoreAction::Reinstate { id, reason }) => act(ctx, id, "reinstate", reason).await,
    }
}

async fn list(ctx: &Context, status: Option<StoreStatus>) -> anyhow::Result<()> {
    let query: Vec<(&str, String)> = status
        .map(|status| ("status", status.as_str().to_owned()))
        .into_iter()
        .collect();
    let reply = ctx
        .api()?
        .get::<StoreList>(&["v1", "stores"], &query)
        .await?;
    if ctx.json {
        output::json(&reply.json)?;
        return Ok(());
    }
    if reply.body.stores.is_empty() {
        output::line("No stores.")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reply.body.stores.iter().map(row).collect();
    output::line(&render::table(
        &[
            "id", "status", "name", "contact", "email", "phone", "location", "radius",
        ],
        &rows,
    ))?;
    Ok(())
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
    ]
}

async fn act(ctx: &Context, id: i64, action: &str, reason: Option<String>) -> anyhow::Result<()> {
    let id_text = id.to_string();
    let reply = ctx
        .api()?
        .post::<_, Store>(
            &["v1", "stores", &id_text, action],
            &ReasonRequest { reason },
        )
        .await?;
    if ctx.json {
        output::json(&reply.json)?;
        return Ok(());
    }
    let store = reply.body;
    output::line(&format!(
        "Store #{} ({}) is now {}.",
        store.id,
        render::escape(&store.name),
        store.status
    ))?;
    Ok(())
}
