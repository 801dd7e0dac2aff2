//! `p4p tokens`: the caller's own tokens, one per device or system.

use p4p_protocol::{Role, TokenCreated, TokenInfo, TokenList, TokenRequest};

use crate::api::paths::{self, Endpoint};
use crate::context::Context;
use crate::{local_time, render};

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
        long_about = "Create another token for the same store (or, for an admin, a staff \
token), e.g. for a second computer or the alarm system. The token is printed once on \
standard output and cannot be shown again: store it right away. A store holds at most \
10 tokens that are not revoked: revoke one it no longer uses first. An admin's new \
staff token is a moderator's unless --role admin is given.",
        after_help = "Examples:\n  \
p4p tokens create --label \"back office PC\"\n  \
p4p tokens create --label \"Bob, moderator\"              # admin: a moderator's token\n  \
p4p tokens create --label \"Alice, admin\" --role admin   # admin: another admin"
    )]
    Create {
        /// What the token is for, e.g. the device's name.
        #[arg(long)]
        label: String,
        /// Admins: the staff token's role [default: moderator].
        #[arg(long, value_parser = ["moderator", "admin"])]
        role: Option<String>,
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
        None => list(ctx, paths::my_tokens()).await,
        Some(TokenAction::Create { label, role }) => create(ctx, label, role).await,
        Some(TokenAction::Revoke { id }) => revoke(ctx, id).await,
    }
}

/// Lists the tokens at `endpoint` (the caller's, or a store's for staff),
/// with when each was last used in local time: a use nobody recognises is
/// a stolen token to revoke.
pub async fn list(ctx: &Context, endpoint: Endpoint) -> anyhow::Result<()> {
    let reply = ctx.api()?.get::<TokenList>(&endpoint, &[]).await?;
    ctx.emit(&reply, |list| {
        let rows: Vec<Vec<String>> = list.tokens.iter().map(row).collect();
        render::table_or(
            "No tokens.",
            &["id", "label", "role", "created", "last used", "revoked"],
            &rows,
        )
    })
}

fn row(token: &TokenInfo) -> Vec<String> {
    vec![
        token.id.to_string(),
        token.label.clone(),
        token.role.to_string(),
        local_time::local(token.created_at),
        local_time::local_or_never(token.last_used_at),
        token
            .revoked_at
            .map(local_time::local)
            .unwrap_or_else(|| "-".to_owned()),
    ]
}

async fn create(ctx: &Context, label: String, role: Option<String>) -> anyhow::Result<()> {
    let role = role
        .map(|role| role.parse::<Role>().map_err(anyhow::Error::msg))
        .transpose()?;
    let reply = ctx
        .api()?
        .post::<_, TokenCreated>(&paths::my_tokens(), &TokenRequest { label, role })
        .await?;
    ctx.emit(&reply, |created| {
        eprintln!(
            "Created token #{} \"{}\"; it is shown only this once.",
            created.id,
            render::escape(&created.label)
        );
        // The token alone on stdout, so that `$(p4p tokens create ...)` captures it.
        render::escape(&created.token).into_owned()
    })
}

async fn revoke(ctx: &Context, id: i64) -> anyhow::Result<()> {
    let answer = ctx.api()?.delete(&paths::my_token(id)).await?;
    ctx.emit_json(answer.as_ref(), || format!("Revoked token #{id}."))
}
