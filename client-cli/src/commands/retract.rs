//! `p4p retract`: the author (or a moderator) withdraws a published alert.

use p4p_protocol::{Alert, ReasonRequest};

use crate::context::Context;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct RetractArgs {
    /// The alert's id, as `p4p alerts` and `p4p listen` print it.
    pub id: i64,

    /// Why, e.g. "Duplicate of 41"; members who received the alert see it.
    #[arg(long, required = true)]
    pub reason: String,
}

pub async fn run(ctx: &Context, args: RetractArgs) -> anyhow::Result<()> {
    let id = args.id.to_string();
    let reason = ReasonRequest {
        reason: Some(args.reason),
    };
    let reply = ctx
        .api()?
        .post::<_, Alert>(&["v1", "alerts", &id, "retract"], &reason)
        .await?;
    if ctx.json {
        output::json(&reply.json)?;
        return Ok(());
    }
    output::line(&format!("Retracted alert #{}.", reply.body.id))?;
    Ok(())
}
