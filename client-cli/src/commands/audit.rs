//! `p4p audit`: association staff read the trail of moderation and
//! membership actions, newest first, a page at a time.

use p4p_protocol::{AuditEntry, AuditPage};

use crate::context::Context;
use crate::{output, render};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// At most this many entries, 1 to 500 [default: 50].
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,

    /// Only entries older than this id: the next page.
    #[arg(long, value_name = "ID")]
    pub before_id: Option<i64>,
}

pub async fn run(ctx: &Context, args: AuditArgs) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(before_id) = args.before_id {
        query.push(("before_id", before_id.to_string()));
    }
    let reply = ctx
        .api()?
        .get::<AuditPage>(&["v1", "audit"], &query)
        .await?;
    if ctx.json {
        output::json(&reply.json)?;
        return Ok(());
    }
    let page = reply.body;
    if page.entries.is_empty() {
        output::line("No audit entries.")?;
    } else {
        let rows: Vec<Vec<String>> = page.entries.iter().map(row).collect();
        output::line(&render::table(
            &["id", "at", "actor", "action", "object", "reason"],
            &rows,
        ))?;
    }
    if let Some(next) = page.next_before_id {
        output::line(&format!("More entries: run again with --before-id {next}"))?;
    }
    Ok(())
}

fn row(entry: &AuditEntry) -> Vec<String> {
    vec![
        entry.id.to_string(),
        render::time(entry.at),
        entry.actor.clone(),
        entry.action.clone(),
        entry.object.clone(),
        entry
            .reason
            .clone()
            .filter(|reason| !reason.is_empty())
            .unwrap_or_else(|| "-".to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_entry_without_reason_shows_a_dash() {
        let entry = AuditEntry {
            id: 3,
            at: datetime!(2026-11-24 15:06:00 UTC),
            actor: "admin #1 (Alice)".to_owned(),
            action: "store.approve".to_owned(),
            object: "store:7".to_owned(),
            reason: None,
        };
        assert_eq!(
            row(&entry),
            [
                "3",
                "2026-11-24T15:06:00Z",
                "admin #1 (Alice)",
                "store.approve",
                "store:7",
                "-"
            ]
        );
    }
}
