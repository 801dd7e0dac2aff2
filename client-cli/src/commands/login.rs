//! `p4p login` and `p4p whoami`: which server and token this user works with.

use p4p_protocol::{Me, StoreStatus};

use crate::api::{paths, Api, ApiError, Reply, ServerUrl};
use crate::context::Context;
use crate::{local_time, render};

/// Checks the token given with `--token` (or `P4P_TOKEN`) against the server
/// and saves both in the config file; a token the server refuses is not saved.
pub async fn login(ctx: &mut Context) -> anyhow::Result<()> {
    let Some(token) = ctx.given_token.clone() else {
        anyhow::bail!("login needs a token: p4p login --server URL --token TOKEN");
    };
    let api = Api::new(ctx.server.clone(), Some(token.clone()))?;
    let me = fetch_me(&api).await.map_err(|error| match error.status() {
        Some(status) if status.as_u16() == 401 => {
            anyhow::anyhow!("{error} (the token was not saved)")
        }
        _ => error.into(),
    })?;

    ctx.config.file.server = Some(ctx.server.to_string());
    ctx.config.file.token = Some(token);
    let path = ctx.config.save()?;
    ctx.emit(&me, |me| {
        format!(
            "Logged in to {} as {}.\nSaved the server and token to {}.",
            ctx.server,
            who(me),
            path.display()
        )
    })
}

/// Prints who the current token belongs to.
pub async fn whoami(ctx: &Context) -> anyhow::Result<()> {
    let me = fetch_me(&ctx.api()?).await?;
    ctx.emit(&me, |me| whoami_text(&ctx.server, me))
}

/// Server, role, the store (its status and any move waiting) and the token.
fn whoami_text(server: &ServerUrl, me: &Me) -> String {
    let mut lines = vec![
        format!("Server:  {server}"),
        format!("Role:    {}", me.role),
    ];
    if let Some(store) = &me.store {
        lines.push(format!(
            "Store:   {} (#{}, {})",
            render::escape(&store.name),
            store.id,
            store.status
        ));
        if let (StoreStatus::Suspended | StoreStatus::Rejected, Some(reason)) =
            (store.status, &store.status_reason)
        {
            lines.push(format!("Why:     {}", render::escape(reason)));
        }
        lines.push(format!("Address: {}", render::escape(&store.address)));
        lines.push(format!(
            "Area:    {}, radius {}",
            render::place(store.location),
            render::km(store.radius_km)
        ));
        if let Some(pending) = store.pending_move {
            lines.push(format!(
                "Move:    to {}, asked {}: waiting for the association to approve; \
                 until then alerts reach you where you were",
                render::place(pending.location),
                local_time::local(pending.requested_at)
            ));
        }
    }
    lines.push(format!(
        "Token:   #{} \"{}\", created {}, last used {}",
        me.token.id,
        render::escape(&me.token.label),
        local_time::local(me.token.created_at),
        local_time::local_or_never(me.token.last_used_at)
    ));
    lines.join("\n")
}

async fn fetch_me(api: &Api) -> Result<Reply<Me>, ApiError> {
    api.get(&paths::me(), &[]).await
}

/// `store Main Street Jewelers (#7)` or `admin (token "laptop")`.
fn who(me: &Me) -> String {
    match &me.store {
        Some(store) => format!(
            "{} {} (#{})",
            me.role,
            render::escape(&store.name),
            store.id
        ),
        None => format!(
            "{} (token \"{}\")",
            me.role,
            render::escape(&me.token.label)
        ),
    }
}
