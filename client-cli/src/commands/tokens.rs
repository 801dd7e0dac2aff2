//! `p4p tokens`: the caller's own tokens, one per device or system.

use p4p_protocol::{TokenCreated, TokenList, TokenRequest};

use crate::context::Context;
use crate::{output, render};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub action: Option<TokenAction>,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenAction {
    /// Create another token (for another device); it is printed this once.
    #[command(
        long_about = "Create another token for the same store (or staff member), e.g. for \
a second computer or the alarm system. The token is printed once on standard output \
and cannot be shown again: store it right away.",
        after_help = "Example:\n  p4p tokens create --label \"back office PC\""
    )]
    Create {
        /// What the token is for, e.g. the device's name.
        #[arg(long)]
        label: String,
    },
    /// Revoke a token at once; streams using it are closed.
    #[command(after_help = "Example:\n  p4p tokens revoke 3")]
    Revoke {
        /// The token's id (see `p4p tokens`).
        id: i64,
    },
}

pub async fn run(ctx: &Context, args: TokensArgs) -> anyhow::Result<()> {
    match args.action {
        None => list(ctx).await,
        Some(TokenAction::Create { label }) => create(ctx, label).await,
        Some(TokenAction::Revoke { id }) => revoke(ctx, id).await,
    }
}

async fn list(ctx: &Context) -> anyhow::Result<()> {
    let reply = ctx
        .api()?
        .get::<TokenList>(&["v1", "me", "tokens"], &[])
        .await?;
    if ctx.json {
        output::json(&reply.json)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reply
        .body
        .tokens
        .iter()
        .map(|token| {
            vec![
                token.id.to_string(),
                token.label.clone(),
                token.role.to_string(),
                render::time(token.created_at),
                token
                    .revoked_at
                    .map(render::time)
                    .unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    output::line(&render::table(
        &["id", "label", "role", "created", "revoked"],
        &rows,
    ))?;
    Ok(())
}

async fn create(ctx: &Context, label: String) -> anyhow::Result<()> {
    let reply = ctx
        .api()?
        .post::<_, TokenCreated>(&["v1", "me", "tokens"], &TokenRequest { label })
        .await?;
    if ctx.json {
        output::json(&reply.json)?;
        return Ok(());
    }
    let created = reply.body;
    // The token alone on stdout, so that `$(p4p tokens create ...)` captures it.
    eprintln!(
        "Created token #{} \"{}\"; it is shown only this once.",
        created.id,
        render::escape(&created.label)
    );
    output::line(&render::escape(&created.token))?;
    Ok(())
}

async fn revoke(ctx: &Context, id: i64) -> anyhow::Result<()> {
    let id_text = id.to_string();
    let answer = ctx.api()?.delete(&["v1", "me", "tokens", &id_text]).await?;
    if ctx.json {
        if let Some(json) = answer {
            output::json(&json)?;
        }
        return Ok(());
    }
    output::line(&format!("Revoked token #{id}."))?;
    Ok(())
}
