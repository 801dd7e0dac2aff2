//! `p4p erase`: an admin erases an alert at once (a defamatory one).

use p4p_protocol::{ErasedAlert, ReasonRequest};

use crate::context::Context;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    /// The alert's id, as `p4p alerts` and `p4p listen` print it.
    pub id: i64,

    /// Why, for the audit trail; members are told only that the association
    /// erased it.
    #[arg(long, required = true)]
    pub reason: String,
}

pub async fn run(ctx: &Context, args: EraseArgs) -> anyhow::Result<()> {
    let id = args.id.to_string();
    let reason = ReasonRequest {
        reason: Some(args.reason),
    };
    let reply = ctx
        .api()?
        .post::<_, ErasedAlert>(&["v1", "alerts", &id, "erase"], &reason)
        .await?;
    if ctx.json {
        output::json(&reply.json)?;
        return Ok(());
    }
    output::line(&format!(
        "Erased alert #{}: its text, suspects and vehicles are gone from the server; \
         stores that showed it were told to drop it.",
        reply.body.alert_id
    ))?;
    Ok(())
}
