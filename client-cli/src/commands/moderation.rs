//! `p4p mod`: association staff work through the moderation queue: alerts
//! awaiting approval, alerts that stores flagged, and the verdict on each.

use p4p_protocol::{Alert, FlaggedAlert, ModerationQueue};

use crate::api::paths;
use crate::commands::post_reason;
use crate::context::Context;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct ModerationArgs {
    #[command(subcommand)]
    pub action: ModerationAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum ModerationAction {
    /// Show the alerts awaiting approval and the flagged alerts, oldest first.
    #[command(
        after_help = "Examples:\n  p4p mod queue\n  p4p mod queue --json | jq '.flagged[].flags'"
    )]
    Queue,
    /// Approve a pending alert: it is published to the stores around it at once.
    #[command(after_help = "Example:\n  p4p mod approve 42")]
    Approve {
        /// The alert's id (see `p4p mod queue`).
        id: i64,
        /// A note for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject a pending alert, with the reason: it is never published.
    #[command(
        after_help = "Example:\n  p4p mod reject 42 --reason \"Not a crime, a dispute over a refund\""
    )]
    Reject {
        /// The alert's id (see `p4p mod queue`).
        id: i64,
        /// Why; kept in the audit log and shown to the author.
        #[arg(long, required = true)]
        reason: String,
    },
    /// Mark a published alert as checked by the association.
    #[command(after_help = "Example:\n  p4p mod verify 42")]
    Verify {
        /// The alert's id (see `p4p alerts`).
        id: i64,
    },
}

/// What a moderator decides about one alert.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    Approve,
    Reject,
    Verify,
}

impl Verdict {
    /// The last segment of the endpoint, `/v1/alerts/{id}/<segment>`.
    fn segment(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
            Verdict::Verify => "verify",
        }
    }

    /// What the alert now is, as the confirmation says it.
    fn outcome(self, alert: &Alert) -> String {
        match self {
            Verdict::Approve | Verdict::Reject => alert.status.to_string(),
            Verdict::Verify => "verified".to_owned(),
        }
    }
}

pub async fn run(ctx: &Context, args: ModerationArgs) -> anyhow::Result<()> {
    match args.action {
        ModerationAction::Queue => queue(ctx).await,
        ModerationAction::Approve { id, reason } => decide(ctx, id, Verdict::Approve, reason).await,
        ModerationAction::Reject { id, reason } => {
            decide(ctx, id, Verdict::Reject, Some(reason)).await
        }
        ModerationAction::Verify { id } => decide(ctx, id, Verdict::Verify, None).await,
    }
}

async fn queue(ctx: &Context) -> anyhow::Result<()> {
    let reply = ctx
        .api()?
        .get::<ModerationQueue>(&paths::moderation_queue(), &[])
        .await?;
    ctx.emit(&reply, queue_text)
}

async fn decide(
    ctx: &Context,
    id: i64,
    verdict: Verdict,
    reason: Option<String>,
) -> anyhow::Result<()> {
    let endpoint = paths::alert_action(id, verdict.segment());
    let reply = post_reason::<Alert>(ctx, endpoint, reason).await?;
    ctx.emit(&reply, |alert| {
        format!("Alert #{} is now {}.", alert.id, verdict.outcome(alert))
    })
}

const ALERT_COLUMNS: [&str; 5] = ["id", "kind", "created", "store", "title"];

/// The queue for people: a section for pending alerts, one for flagged
/// alerts with each flag on its own indented line under its alert.
fn queue_text(queue: &ModerationQueue) -> String {
    if queue.pending.is_empty() && queue.flagged.is_empty() {
        return "Nothing awaits moderation.".to_owned();
    }
    [
        pending_section(&queue.pending),
        flagged_section(&queue.flagged),
    ]
    .join("\n\n")
}

fn pending_section(pending: &[Alert]) -> String {
    if pending.is_empty() {
        return "Pending approval: none.".to_owned();
    }
    let rows: Vec<Vec<String>> = pending.iter().map(alert_row).collect();
    format!(
        "Pending approval ({}):\n{}",
        pending.len(),
        render::table(&ALERT_COLUMNS, &rows)
    )
}

fn flagged_section(flagged: &[FlaggedAlert]) -> String {
    if flagged.is_empty() {
        return "Flagged: none.".to_owned();
    }
    let rows: Vec<Vec<String>> = flagged
        .iter()
        .map(|entry| alert_row(&entry.alert))
        .collect();
    let mut table = render::table_lines(&ALERT_COLUMNS, &rows).into_iter();
    let mut lines = vec![format!("Flagged ({}):", flagged.len())];
    lines.extend(table.next());
    for (entry, row) in flagged.iter().zip(table) {
        lines.push(row);
        for flag in &entry.flags {
            lines.push(format!(
                "  store #{}: {} ({})",
                flag.store_id,
                render::escape(&flag.reason),
                render::time(flag.created_at)
            ));
        }
    }
    lines.join("\n")
}

fn alert_row(alert: &Alert) -> Vec<String> {
    vec![
        alert.id.to_string(),
        alert.kind.to_string(),
        render::time(alert.created_at),
        format!("{} (#{})", alert.store.name, alert.store.id),
        alert.title.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::casing_alert;
    use p4p_protocol::{AlertStatus, Flag};
    use time::macros::datetime;

    fn alert(id: i64, status: AlertStatus, title: &str) -> Alert {
        Alert {
            id,
            status,
            title: title.to_owned(),
            description: None,
            suspects: Vec::new(),
            vehicles: Vec::new(),
            ..casing_alert()
        }
    }

    fn flag(store_id: i64, reason: &str) -> Flag {
        Flag {
            alert_id: 42,
            store_id,
            reason: reason.to_owned(),
            created_at: datetime!(2026-11-24 16:00:00 UTC),
        }
    }

    #[test]
    fn an_empty_queue_says_so() {
        let queue = ModerationQueue {
            pending: Vec::new(),
            flagged: Vec::new(),
        };
        assert_eq!(queue_text(&queue), "Nothing awaits moderation.");
    }

    #[test]
    fn the_queue_has_a_section_for_pending_and_one_for_flagged_alerts() {
        let queue = ModerationQueue {
            pending: vec![alert(
                41,
                AlertStatus::Pending,
                "Man asked for the back room",
            )],
            flagged: vec![FlaggedAlert {
                alert: alert(42, AlertStatus::Published, "Two men casing showcases"),
                flags: vec![flag(9, "Wrong store"), flag(12, "Not a crime")],
            }],
        };
        assert_eq!(
            queue_text(&queue),
            "Pending approval (1):\n\
ID  KIND    CREATED               STORE                      TITLE\n\
41  casing  2026-11-24T15:06:00Z  Main Street Jewelers (#7)  Man asked for the back room\n\
\n\
Flagged (1):\n\
ID  KIND    CREATED               STORE                      TITLE\n\
42  casing  2026-11-24T15:06:00Z  Main Street Jewelers (#7)  Two men casing showcases\n  \
store #9: Wrong store (2026-11-24T16:00:00Z)\n  \
store #12: Not a crime (2026-11-24T16:00:00Z)"
        );
    }

    #[test]
    fn an_empty_section_says_none() {
        let queue = ModerationQueue {
            pending: vec![alert(
                41,
                AlertStatus::Pending,
                "Man asked for the back room",
            )],
            flagged: Vec::new(),
        };
        let text = queue_text(&queue);
        assert!(text.starts_with("Pending approval (1):\n"), "{text}");
        assert!(text.ends_with("\n\nFlagged: none."), "{text}");
    }

    #[test]
    fn verification_is_confirmed_as_verified_not_as_the_status() {
        let published = alert(42, AlertStatus::Published, "t");
        assert_eq!(Verdict::Verify.outcome(&published), "verified");
        assert_eq!(Verdict::Approve.outcome(&published), "published");
        let rejected = alert(42, AlertStatus::Rejected, "t");
        assert_eq!(Verdict::Reject.outcome(&rejected), "rejected");
    }
}
