//! `p4p erase`: an admin erases an alert at once (a defamatory one).

use p4p_protocol::ErasedAlert;

use crate::api::paths;
use crate::args::AlertId;
use crate::commands::post_reason;
use crate::context::Context;

#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    #[command(flatten)]
    pub alert: AlertId,

    /// Why, for the audit trail; members are told only that the association
    /// erased it.
    #[arg(long, required = true)]
    pub reason: String,
}

pub async fn run(ctx: &Context, args: EraseArgs) -> anyhow::Result<()> {
    let endpoint = paths::alert_action(args.alert.id, "erase");
    let reply = post_reason::<ErasedAlert>(ctx, endpoint, Some(args.reason)).await?;
    ctx.emit(&reply, |erased| {
        format!(
            "Erased alert #{}: its text, suspects and vehicles are gone from the server; \
             stores that showed it were told to drop it.",
            erased.alert_id
        )
    })
}
