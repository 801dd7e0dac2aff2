//! `p4p post`: a store warns the stores around it.

use p4p_protocol::{Alert, AlertStatus, NewAlert, Timestamp};

use crate::api::paths;
use crate::commands::alert_fields::{AlertFields, Descriptions};
use crate::context::Context;
use crate::{args, render};

#[derive(Debug, clap::Args)]
#[command(
    mut_arg("kind", |arg| arg.required(true)),
    mut_arg("title", |arg| arg.required(true))
)]
pub struct PostArgs {
    #[command(flatten)]
    pub alert: AlertFields,

    /// When it happened, RFC 3339 [default: now].
    #[arg(long, value_parser = args::timestamp, value_name = "TIME")]
    pub occurred_at: Option<Timestamp>,

    #[command(flatten)]
    pub seen: Descriptions,

    /// The post's Idempotency-Key [default: a new random one]. A post that
    /// gets no answer is retried with it, and the server posts it at most
    /// once; give your own to retry safely from a script, across runs.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

pub async fn run(ctx: &Context, args: PostArgs) -> anyhow::Result<()> {
    let location = args.alert.location()?;
    let (Some(kind), Some(title)) = (args.alert.kind, args.alert.title) else {
        anyhow::bail!("p4p post needs --kind and --title");
    };
    let alert = NewAlert {
        kind,
        title,
        description: args.alert.description,
        occurred_at: args.occurred_at,
        location,
        radius_km: args.alert.radius_km,
        suspects: args.seen.suspect,
        vehicles: args.seen.vehicle,
    };
    let reply = ctx
        .api()?
        .post_once::<_, Alert>(&paths::alerts(), &alert, args.idempotency_key.as_deref())
        .await?;
    ctx.emit(&reply, posted)
}

/// `Posted alert #5 (published)`, or with why it waits: `(pending: new
/// member: held until a moderator approves it ...)`.
fn posted(alert: &Alert) -> String {
    let why = match alert.status_reason.as_deref().filter(|r| !r.is_empty()) {
        Some(reason) => format!(": {}", render::escape(reason)),
        None if alert.status == AlertStatus::Pending => {
            ": held until a moderator approves it".to_owned()
        }
        None => String::new(),
    };
    format!("Posted alert #{} ({}{why})", alert.id, alert.status)
}
