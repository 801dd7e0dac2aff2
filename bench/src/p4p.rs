//! p4p under measurement: the real `p4p-server` binary, fed through its API.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::places::{store_radius_km, Site};
use crate::process::{free_port, sibling_binary, wait_for_port, Measured};

/// A running p4p-server with its staff token.
pub struct P4p {
    pub url: String,
    pub port: u16,
    pub staff: String,
    pub http: reqwest::Client,
    pub process: Measured,
}

/// A member store the benchmark made.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: i64,
    pub token: String,
}

/// How many API requests run at once while stores are made.
const SETUP_CONCURRENCY: usize = 64;

impl P4p {
    /// Starts `p4p-server` on a free port against `database_url`, with
    /// alerts published at once (no probation) and its log in `dir`.
    pub async fn start(database_url: &str, dir: &Path, extra: &[&str]) -> Result<P4p> {
        let binary = sibling_binary("p4p-server")?;
        let staff = staff_token(&binary, database_url).await?;
        let port = free_port()?;
        let mut command = Command::new(&binary);
        command
            .args(["--database-url", database_url])
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--probation-alerts", "0"])
            // The benchmark posts and connects far faster than any store.
            .args(["--rate-limits", "off"])
            // Every benchmark stream comes from 127.0.0.1.
            .args(["--connections-per-address", "0"])
            .args(extra)
            // p4p-server reads P4P_LOG (RUST_LOG is ignored).
            .env("P4P_LOG", "warn");
        let log = dir.join(format!("p4p-server-{port}.log"));
        let mut process = Measured::spawn("p4p-server", command, &log)?;
        wait_for_port(port, &mut process).await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(P4p {
            url: format!("http://127.0.0.1:{port}"),
            port,
            staff,
            http,
            process,
        })
    }

    /// Pledges, approves and claims one store per site, through the API.
    pub async fn make_members(&self, sites: &[Site]) -> Result<Vec<Member>> {
        stream::iter(sites.iter().enumerate())
            .map(|(i, site)| self.make_member(i, *site))
            .buffered(SETUP_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn make_member(&self, i: usize, site: Site) -> Result<Member> {
        let pledge = self
            .send(
                None,
                "/v1/pledge",
                &json!({
                    "store_name": format!("Bench store {i}"),
                    "address": format!("{i} Main Street"),
                    "location": {"lat": site.lat, "lon": site.lon},
                    "contact_name": "Ada Diamond",
                    "contact_email": "ada@example.com",
                    "radius_km": store_radius_km(i),
                    "accept_pledge": true,
                }),
                201,
            )
            .await?;
        let id = pledge["store_id"]
            .as_i64()
            .context("pledge without store_id")?;
        let secret = pledge["claim_secret"]
            .as_str()
            .context("pledge without claim_secret")?;
        self.send(
            Some(&self.staff),
            &format!("/v1/stores/{id}/approve"),
            &json!({}),
            200,
        )
        .await?;
        let claim = self
            .send(
                None,
                &format!("/v1/pledge/{id}/claim"),
                &json!({"claim_secret": secret}),
                200,
            )
            .await?;
        let token = claim["token"]
            .as_str()
            .context("claim without token")?
            .to_owned();
        Ok(Member { id, token })
    }

    /// POSTs `body` to `path`; fails unless the answer is `expected`.
    pub async fn send(
        &self,
        token: Option<&str>,
        path: &str,
        body: &Value,
        expected: u16,
    ) -> Result<Value> {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request, &format!("POST {path}"), expected).await
    }

    pub async fn get(&self, token: &str, path_and_query: &str) -> Result<Value> {
        let request = self
            .http
            .get(format!("{}{path_and_query}", self.url))
            .bearer_auth(token);
        answer(request, &format!("GET {path_and_query}"), 200).await
    }

    pub fn stream_url(&self, since: Option<i64>) -> String {
        match since {
            Some(since) => format!("ws://127.0.0.1:{}/v1/stream?since={since}", self.port),
            None => format!("ws://127.0.0.1:{}/v1/stream", self.port),
        }
    }

    pub async fn stop(self) {
        self.process.stop().await;
    }
}

/// Sends `request` (`what` names it in errors); its JSON body, unless the
/// status is not `expected`.
async fn answer(request: reqwest::RequestBuilder, what: &str, expected: u16) -> Result<Value> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != expected {
        bail!("{what} answered {status}: {body}");
    }
    Ok(body)
}

/// Makes an admin token with `p4p-server token create`, on the server host.
async fn staff_token(binary: &PathBuf, database_url: &str) -> Result<String> {
    let output = Command::new(binary)
        .args(["--database-url", database_url])
        .args(["token", "create", "--role", "admin", "--label", "bench"])
        .env("P4P_LOG", "warn")
        .output()
        .await?;
    if !output.status.success() {
        bail!(
            "token create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let token = String::from_utf8(output.stdout)?.trim().to_owned();
    if token.is_empty() {
        bail!("token create printed nothing");
    }
    Ok(token)
}

/// A scratch PostgreSQL database, dropped when the benchmark is done with it.
pub struct PostgresScratch {
    pub admin_url: String,
    pub name: String,
}

impl PostgresScratch {
    pub async fn create(admin_url: &str) -> Result<PostgresScratch> {
        let name = format!("p4p_bench_{}", std::process::id());
        psql(
            admin_url,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await?;
        psql(admin_url, &format!("CREATE DATABASE {name}")).await?;
        Ok(PostgresScratch {
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// The admin URL with its database (if it names one) replaced.
    pub fn url(&self) -> String {
        let (scheme, rest) = self
            .admin_url
            .split_once("://")
            .unwrap_or(("postgres", &self.admin_url));
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        format!("{scheme}://{authority}/{}", self.name)
    }

    pub async fn drop_database(self) -> Result<()> {
        psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await
    }
}

async fn psql(url: &str, statement: &str) -> Result<()> {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", statement])
        .output()
        .await
        .context("cannot run psql")?;
    if !output.status.success() {
        bail!(
            "psql {statement}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

pub type Members = Arc<Vec<Member>>;
