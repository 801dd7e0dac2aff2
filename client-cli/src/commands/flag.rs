//! `p4p flag`: a store reports an alert as wrong or abusive to the association.

use p4p_protocol::{Flag, ReasonRequest};

use crate::context::Context;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct FlagArgs {
    /// The alert's id, as `p4p alerts` and `p4p listen` print it.
    pub id: i64,

    /// What is wrong with the alert; the association's moderators read it.
    #[arg(long, required = true)]
    pub reason: String,
}

pub async fn run(ctx: &Context, args: FlagArgs) -> anyhow::Result<()> {
    let id = args.id.to_string();
    let reason = ReasonRequest {
        reason: Some(args.reason),
    };
    let reply = ctx
        .api()?
        .post_once::<_, Flag>(&["v1", "alerts", &id, "flags"], &reason, None)
        .await?;
    if ctx.json {
        output::json(&reply.json)?;
        return Ok(());
    }
    output::line(&format!(
        "Flagged alert #{}; the association will review it.",
        reply.body.alert_id
    ))?;
    Ok(())
}
