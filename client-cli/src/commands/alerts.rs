//! `p4p alerts`: the alerts the caller may see, newest first, a page at a time.

use p4p_protocol::{Alert, AlertKind, AlertPage, AlertStatus, Location};

use crate::api::paths;
use crate::args::Paging;
use crate::context::Context;
use crate::{args, render};

#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    /// Only alerts around this point, e.g. `--near 40.71,-74.0` or
    /// `--near -33.86,151.2` (needs --radius-km).
    #[arg(
        long,
        value_name = "LAT,LON",
        allow_hyphen_values = true,
        value_parser = args::location,
        requires = "radius_km"
    )]
    pub near: Option<Location>,

    /// How far around --near to look, in km (needs --near).
    #[arg(long, value_name = "KM", requires = "near")]
    pub radius_km: Option<f64>,

    /// Only alerts of this kind.
    #[arg(long, value_parser = args::alert_kind())]
    pub kind: Option<AlertKind>,

    /// Only alerts in this status (staff; stores see published alerts and their own).
    #[arg(long, value_parser = args::alert_status())]
    pub status: Option<AlertStatus>,

    #[command(flatten)]
    pub page: Paging,
}

pub async fn run(ctx: &Context, args: AlertsArgs) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let (Some(near), Some(radius_km)) = (args.near, args.radius_km) {
        query.push(("lat", near.lat.to_string()));
        query.push(("lon", near.lon.to_string()));
        query.push(("radius_km", radius_km.to_string()));
    }
    if let Some(kind) = args.kind {
        query.push(("kind", kind.as_str().to_owned()));
    }
    if let Some(status) = args.status {
        query.push(("status", status.as_str().to_owned()));
    }
    args.page.push_query(&mut query);

    let reply = ctx
        .api()?
        .get::<AlertPage>(&paths::alerts(), &query)
        .await?;
    ctx.emit(&reply, |page| {
        let rows: Vec<Vec<String>> = page.alerts.iter().map(row).collect();
        let table = render::table_or(
            "No alerts.",
            &["id", "kind", "status", "occurred_at", "title", "store"],
            &rows,
        );
        Paging::with_next_hint(table, "alerts", page.next_before_id)
    })
}

fn row(alert: &Alert) -> Vec<String> {
    vec![
        alert.id.to_string(),
        alert.kind.to_string(),
        alert.status.to_string(),
        render::time(alert.occurred_at),
        alert.title.clone(),
        alert.store.name.clone(),
    ]
}
