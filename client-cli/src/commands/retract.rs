//! `p4p retract`: the author (or a moderator) withdraws a published alert.

use p4p_protocol::Alert;

use crate::api::paths;
use crate::args::AlertId;
use crate::commands::post_reason;
use crate::context::Context;

#[derive(Debug, clap::Args)]
pub struct RetractArgs {
    #[command(flatten)]
    pub alert: AlertId,

    /// Why, e.g. "Duplicate of 41"; members who received the alert see it.
    #[arg(long, required = true)]
    pub reason: String,
}

pub async fn run(ctx: &Context, args: RetractArgs) -> anyhow::Result<()> {
    let endpoint = paths::alert_action(args.alert.id, "retract");
    let reply = post_reason::<Alert>(ctx, endpoint, Some(args.reason)).await?;
    ctx.emit(&reply, |alert| format!("Retracted alert #{}.", alert.id))
}
