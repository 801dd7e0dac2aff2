//! `p4p show`: one alert in full.

use p4p_protocol::Alert;

use crate::context::Context;
use crate::{output, render};

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The alert's id, as `p4p alerts` and `p4p listen` print it.
    pub id: i64,
}

pub async fn run(ctx: &Context, args: ShowArgs) -> anyhow::Result<()> {
    let id = args.id.to_string();
    let reply = ctx.api()?.get::<Alert>(&["v1", "alerts", &id], &[]).await?;
    if ctx.json {
        output::json(&reply.json)?;
        return Ok(());
    }
    output::line(&render::alert_in_full(&reply.body))?;
    Ok(())
}
