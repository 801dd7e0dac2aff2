//! `p4p pledge`: a store applies for membership, then claims its token once
//! the association has approved it (`p4p pledge status`), or claims a fresh
//! one with the secret staff hand out on reinstatement (`p4p pledge claim`).

use p4p_protocol::{
    ClaimRequest, ClaimResponse, Location, PledgeCreated, PledgeRequest, StoreStatus,
};

use crate::api::paths;
use crate::context::Context;
use crate::output;
use crate::secret::{ClaimSecret, Token};

#[derive(Debug, clap::Args)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct PledgeArgs {
    #[command(subcommand)]
    pub command: Option<PledgeCommand>,

    /// The store's name, as members see it on its alerts.
    #[arg(long, required = true, value_name = "NAME")]
    pub name: Option<String>,

    /// The store's street address.
    #[arg(long, required = true, value_name = "ADDRESS")]
    pub address: Option<String>,

    /// The store's latitude in degrees (WGS 84), e.g. 40.7128.
    #[arg(
        long,
        required = true,
        allow_negative_numbers = true,
        value_name = "DEGREES"
    )]
    pub lat: Option<f64>,

    /// The store's longitude in degrees (WGS 84), e.g. -74.0060.
    #[arg(
        long,
        required = true,
        allow_negative_numbers = true,
        value_name = "DEGREES"
    )]
    pub lon: Option<f64>,

    /// The person the association talks to.
    #[arg(long, required = true, value_name = "NAME")]
    pub contact: Option<String>,

    /// The contact's email address.
    #[arg(long, required = true, value_name = "EMAIL")]
    pub email: Option<String>,

    /// The contact's phone number.
    #[arg(long, value_name = "PHONE")]
    pub phone: Option<String>,

    /// How far around the store alerts should reach it, 0.5 to 500 km
    /// [default: the server's].
    #[arg(long, value_name = "KM")]
    pub radius_km: Option<f64>,
}

#[derive(Debug, clap::Subcommand)]
pub enum PledgeCommand {
    /// Check whether the association approved the store; once it has, save its token.
    #[command(
        long_about = "Check whether the association approved the store applied for with \
`p4p pledge`. While the application is pending this says so; once it is approved \
the store's first token is fetched (it is handed out exactly once) and saved in \
the config file as the active token.",
        after_help = "Example:\n  p4p pledge status"
    )]
    Status,
    /// Claim a fresh token with a claim secret staff gave you; save it.
    #[command(
        long_about = "Claim the store's token with a claim secret given by the association, for example after a reinstatement (which revokes every token the store had, so that a stolen one dies). The token is handed out once per claim secret and saved in the config file as the active token, as `p4p pledge status` does.",
        after_help = "Example:\n  p4p --server https://p4p.example.org pledge claim 7 --secret p4pclaim_..."
    )]
    Claim {
        /// The store's id, as staff gave it.
        store_id: i64,
        /// The claim secret staff gave you (p4pclaim_...).
        #[arg(
            long,
            value_name = "SECRET",
            env = "P4P_CLAIM_SECRET",
            hide_env_values = true
        )]
        secret: String,
    },
}

pub const PLEDGE_LINE: &str = "You accept the Partner for Protection pledge.";

pub async fn run(ctx: &mut Context, args: PledgeArgs) -> anyhow::Result<()> {
    match args.command {
        Some(PledgeCommand::Status) => status(ctx).await,
        Some(PledgeCommand::Claim { store_id, secret }) => {
            claim(ctx, store_id, ClaimSecret::new(secret)).await
        }
        None => apply(ctx, args).await,
    }
}

async fn apply(ctx: &mut Context, args: PledgeArgs) -> anyhow::Result<()> {
    let (
        Some(store_name),
        Some(address),
        Some(lat),
        Some(lon),
        Some(contact_name),
        Some(contact_email),
    ) = (
        args.name,
        args.address,
        args.lat,
        args.lon,
        args.contact,
        args.email,
    )
    else {
        anyhow::bail!("p4p pledge needs --name, --address, --lat, --lon, --contact and --email");
    };
    // Check before applying: the claim secret is shown once and must be kept.
    ctx.config.path()?;
    if let (Some(store_id), Some(_)) = (ctx.config.file.store_id, &ctx.config.file.claim_secret) {
        eprintln!("warning: replacing the saved application of store #{store_id}");
    }

    let request = PledgeRequest {
        store_name,
        address,
        location: Location { lat, lon },
        contact_name,
        contact_email,
        phone: args.phone,
        radius_km: args.radius_km,
        accept_pledge: true,
    };
    if ctx.json {
        eprintln!("{PLEDGE_LINE}");
    } else {
        output::line(PLEDGE_LINE)?;
    }
    let reply = ctx
        .anonymous_api()?
        .post::<_, PledgeCreated>(&paths::pledge(), &request)
        .await?;
    let created = &reply.body;

    ctx.config.file.server = Some(ctx.server.to_string());
    ctx.config.file.store_id = Some(created.store_id);
    ctx.config.file.claim_secret = Some(ClaimSecret::new(created.claim_secret.clone()));
    let path = match ctx.config.save() {
        Ok(path) => path,
        Err(error) => {
            // Without the secret the store could never claim its token.
            eprintln!(
                "store #{} applied; keep its claim secret: {}",
                created.store_id,
                crate::render::escape(&created.claim_secret)
            );
            return Err(error.into());
        }
    };

    ctx.emit(&reply, |created| {
        format!(
            "Pledge received: store #{} is {}.\n\
             Saved the store id and claim secret to {}.\n\
             Next: wait for the association to approve your store, then run `p4p pledge status`.",
            created.store_id,
            created.status,
            path.display()
        )
    })
}

async fn status(ctx: &mut Context) -> anyhow::Result<()> {
    if let (Some(store_id), None, Some(_)) = (
        ctx.config.file.store_id,
        &ctx.config.file.claim_secret,
        &ctx.config.file.token,
    ) {
        output::line(&format!(
            "Store #{store_id}: approved; its token is already saved in {}.",
            ctx.config.path()?.display()
        ))?;
        return Ok(());
    }
    let (Some(store_id), Some(secret)) = (
        ctx.config.file.store_id,
        ctx.config.file.claim_secret.clone(),
    ) else {
        anyhow::bail!(
            "no pledge awaiting its token in {}: apply first with `p4p pledge --name ...`",
            ctx.config.path()?.display()
        );
    };
    claim(ctx, store_id, secret).await
}

/// Claims the store's token with `secret`; saves it once handed out.
async fn claim(ctx: &mut Context, store_id: i64, secret: ClaimSecret) -> anyhow::Result<()> {
    let request = ClaimRequest {
        claim_secret: secret.expose().to_owned(),
    };
    let reply = ctx
        .anonymous_api()?
        .post::<_, ClaimResponse>(&paths::claim(store_id), &request)
        .await
        .map_err(|error| match error.status().map(|status| status.as_u16()) {
            Some(409) => anyhow::anyhow!("the token was already claimed ({error})"),
            Some(404) => anyhow::anyhow!(
                "{error} (a claim secret from before a reinstatement no longer works: ask the association for the new one)"
            ),
            _ => error.into(),
        })?;

    let token = match (reply.body.status, reply.body.token.clone()) {
        (StoreStatus::Approved, Some(token)) => token,
        (status, _) => {
            // Still waiting: keep the secret to claim with later.
            ctx.config.file.store_id = Some(store_id);
            ctx.config.file.claim_secret = Some(secret);
            ctx.config.file.server = Some(ctx.server.to_string());
            ctx.config.save()?;
            return ctx.emit(&reply, |_| {
                format!("Store #{store_id}: {}", waiting(status))
            });
        }
    };

    ctx.config.file.token = Some(Token::new(token));
    ctx.config.file.store_id = Some(store_id);
    ctx.config.file.claim_secret = None;
    ctx.config.file.server = Some(ctx.server.to_string());
    let path = ctx.config.save()?;
    ctx.emit(&reply, |_| {
        format!(
            "Store #{store_id}: approved; token saved to {}.\n\
             Next: run `p4p listen` to receive alerts, `p4p post --help` to send one.",
            path.display()
        )
    })
}

fn waiting(status: StoreStatus) -> &'static str {
    match status {
        StoreStatus::Pending => "pending approval",
        StoreStatus::Approved => "approved, but the server sent no token",
        StoreStatus::Rejected => "rejected",
        StoreStatus::Suspended => "suspended",
    }
}
