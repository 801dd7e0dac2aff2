//! `p4p flag`: a store reports an alert as wrong or abusive to the association.

use p4p_protocol::{Flag, ReasonRequest};

use crate::api::paths;
use crate::args::AlertId;
use crate::context::Context;

#[derive(Debug, clap::Args)]
pub struct FlagArgs {
    #[command(flatten)]
    pub alert: AlertId,

    /// What is wrong with the alert; the association's moderators read it.
    #[arg(long, required = true)]
    pub reason: String,
}

pub async fn run(ctx: &Context, args: FlagArgs) -> anyhow::Result<()> {
    let reason = ReasonRequest {
        reason: Some(args.reason),
    };
    let reply = ctx
        .api()?
        .post_once::<_, Flag>(&paths::alert_action(args.alert.id, "flags"), &reason, None)
        .await?;
    ctx.emit(&reply, |flag| {
        format!(
            "Flagged alert #{}; the association will review it.",
            flag.alert_id
        )
    })
}
