//! `p4p show`: one alert in full.

use p4p_protocol::Alert;

use crate::api::paths;
use crate::args::AlertId;
use crate::context::Context;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub alert: AlertId,
}

pub async fn run(ctx: &Context, args: ShowArgs) -> anyhow::Result<()> {
    let reply = ctx
        .api()?
        .get::<Alert>(&paths::alert(args.alert.id), &[])
        .await?;
    ctx.emit(&reply, render::alert_in_full)
}
