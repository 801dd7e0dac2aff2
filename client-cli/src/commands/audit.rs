//! `p4p audit`: association staff read the trail of moderation and
//! membership actions, newest first, a page at a time.

use p4p_protocol::{AuditEntry, AuditPage};

use crate::api::paths;
use crate::args::Paging;
use crate::context::Context;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub page: Paging,
}

pub async fn run(ctx: &Context, args: AuditArgs) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    args.page.push_query(&mut query);
    let reply = ctx.api()?.get::<AuditPage>(&paths::audit(), &query).await?;
    ctx.emit(&reply, |page| {
        let rows: Vec<Vec<String>> = page.entries.iter().map(row).collect();
        let table = render::table_or(
            "No audit entries.",
            &["id", "at", "actor", "action", "object", "reason"],
            &rows,
        );
        Paging::with_next_hint(table, "entries", page.next_before_id)
    })
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
