//! End-to-end test support: the real `p4p-server` on a free port against a
//! fresh SQLite file, real HTTP and WebSocket clients, and the real `p4p`.
//!
//! Every test starts its own server; helpers here make member stores, open
//! streams and run the CLI so that test files read like their scenarios.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use p4p_protocol::{Alert, Frame, Hello};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod proxy;

/// How long a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Places with real distances between them (km from Manhattan: Newark 14,
/// Philadelphia 130, Boston 306).
pub mod places {
    pub const MANHATTAN: (f64, f64) = (40.7128, -74.0060);
    pub const NEWARK: (f64, f64) = (40.7357, -74.1724);
    pub const PHILADELPHIA: (f64, f64) = (39.9526, -75.1652);
    pub const BOSTON: (f64, f64) = (42.3601, -71.0589);
    pub const BROOKLYN: (f64, f64) = (40.6782, -73.9442);
}

/// The real `p4p-server`, built (or found fresh) once per test process.
pub fn server_binary() -> &'static Path {
    static SERVER: OnceLock<PathBuf> = OnceLock::new();
    SERVER.get_or_init(|| build_binary("p4p-server"))
}

/// The real `p4p` CLI, built (or found fresh) once per test process.
pub fn cli_binary() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| build_binary("p4p"))
}

/// The benchmark, `p4p-bench`, for its smoke run.
pub fn bench_binary() -> &'static Path {
    static BENCH: OnceLock<PathBuf> = OnceLock::new();
    BENCH.get_or_init(|| build_binary("p4p-bench"))
}

/// Builds one binary of the workspace with the profile of this test build.
/// `--workspace` keeps feature unification the same as the test build's,
/// so nothing is compiled twice; a fresh binary costs a no-op check.
fn build_binary(bin: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut command = std::process::Command::new(env!("CARGO"));
    command
        .current_dir(&workspace)
        .args(["build", "--quiet", "--workspace", "--bin", bin]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    assert!(status.success(), "cargo build --bin {bin} failed");
    // This test runs from <target>/<profile>/deps/; the binaries sit in <target>/<profile>/.
    let test_exe = std::env::current_exe().expect("current exe");
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A running `p4p-server` with its own database; killed when dropped.
pub struct TestServer {
    pub url: String,
    /// The operators' listener (`--metrics-bind`), when it was asked for.
    pub metrics_url: Option<String>,
    pub database_url: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// A PostgreSQL database made for this server, dropped with it.
    postgres: Option<PostgresDatabase>,
}

/// Where PostgreSQL test databases are made: `P4P_TEST_POSTGRES_URL`, or the
/// local server with trust authentication.
pub fn postgres_admin_url() -> String {
    std::env::var("P4P_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Whether the end-to-end tests run on PostgreSQL (`P4P_TEST_DATABASE=postgres`)
/// rather than SQLite.
pub fn on_postgres() -> bool {
    std::env::var("P4P_TEST_DATABASE").is_ok_and(|db| db == "postgres")
}

/// A fresh PostgreSQL database, dropped when this is dropped.
pub struct PostgresDatabase {
    pub name: String,
    pub url: String,
}

impl PostgresDatabase {
    pub fn create() -> PostgresDatabase {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "p4p_test_{}_{}_{unique}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        psql(&format!("CREATE DATABASE {name}"));
        PostgresDatabase {
            url: format!("{}/{name}", postgres_admin_url()),
            name,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The server goes before its database (which is dropped WITH
        // (FORCE), ending any connection the killed server left).
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        self.postgres.take();
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs one statement on the PostgreSQL server's `postgres` database; what
/// it printed, unaligned.
pub fn psql(statement: &str) -> String {
    let output = std::process::Command::new("psql")
        .args([
            &format!("{}/postgres", postgres_admin_url()),
            "-v",
            "ON_ERROR_STOP=1",
            "-Atqc",
            statement,
        ])
        .output()
        .expect("run psql (is the PostgreSQL client installed?)");
    assert!(
        output.status.success(),
        "psql {statement}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A fresh SQLite file's URL in `dir`.
fn sqlite_url(dir: &Path) -> String {
    format!("sqlite:{}", dir.join("p4p.db").display())
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(&[]).await
    }

    /// Starts a server with extra command-line arguments, on the database
    /// `P4P_TEST_DATABASE` asks for (a fresh one).
    pub async fn start_with(args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let postgres = on_postgres().then(PostgresDatabase::create);
        let database_url = match &postgres {
            Some(database) => database.url.clone(),
            None => sqlite_url(dir.path()),
        };
        TestServer::launched(dir, database_url, postgres, args).await
    }

    /// A server on a fresh SQLite file, whatever `P4P_TEST_DATABASE`
    /// says: for faults that only SQLite has (a file locked by another
    /// process).
    pub async fn start_on_sqlite(args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = sqlite_url(dir.path());
        TestServer::launched(dir, database_url, None, args).await
    }

    /// The SQLite file, when the database is one.
    pub fn sqlite_path(&self) -> Option<&str> {
        self.database_url.strip_prefix("sqlite:")
    }

    /// A first node on a fresh PostgreSQL database, whatever
    /// `P4P_TEST_DATABASE` says: several nodes need PostgreSQL.
    pub async fn start_on_postgres() -> TestServer {
        let postgres = PostgresDatabase::create();
        let database_url = postgres.url.clone();
        let dir = tempfile::tempdir().expect("temp dir");
        TestServer::launched(dir, database_url, Some(postgres), &[]).await
    }

    /// A server on a fresh PostgreSQL database that it reaches through
    /// `proxy` (which can cut it off), whatever `P4P_TEST_DATABASE` says.
    pub async fn start_on_postgres_through(proxy: &proxy::Proxy, args: &[&str]) -> TestServer {
        let postgres = PostgresDatabase::create();
        let database_url = proxy.url_for(&postgres.url);
        let dir = tempfile::tempdir().expect("temp dir");
        TestServer::launched(dir, database_url, Some(postgres), args).await
    }

    /// Another node on this server's database (PostgreSQL).
    pub async fn another_node(&self) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        TestServer::launched(dir, self.database_url.clone(), None, &[]).await
    }

    /// Starts a server on `database_url`, keeping its log in `dir` and
    /// dropping `postgres` after it. Probation is off unless the arguments
    /// set it, so that a new store's alerts publish at once; the moderation
    /// tests turn it on.
    async fn launched(
        dir: tempfile::TempDir,
        database_url: String,
        postgres: Option<PostgresDatabase>,
        args: &[&str],
    ) -> TestServer {
        let mut args = args.to_vec();
        if !args.contains(&"--probation-alerts") {
            args.extend(["--probation-alerts", "0"]);
        }
        let mut server = TestServer {
            url: String::new(),
            metrics_url: None,
            database_url,
            dir,
            child: None,
            postgres,
        };
        server.launch("127.0.0.1:0", &args).await;
        server
    }

    /// Polls `/readyz` until it answers `status` (for at most 10 s), and
    /// says whether it did. A node on PostgreSQL is ready once it listens.
    pub async fn readyz_becomes(&self, status: u16) -> bool {
        for _ in 0..100 {
            if self.anonymous().get("/readyz").await.status == status {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Runs one SQL statement on this server's database behind its back:
    /// for content the API would refuse (what an old or hostile server
    /// could send a client).
    pub async fn execute_sql(&self, statement: &str) {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut connection = sqlx::AnyConnection::connect(&self.database_url)
            .await
            .expect("connect to the test database");
        sqlx::query(statement)
            .execute(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }

    /// Every row of every table of this server's database, as text, read
    /// through SQL: what the database still holds, whatever the API shows.
    pub async fn stored_text(&self) -> String {
        use sqlx::{Connection, Row};
        let mut text = String::new();
        if let Some(database) = self.postgres_database() {
            let url = format!("{}/{database}", postgres_admin_url());
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(&mut conn)
            .await
            .expect("tables");
            for table in tables {
                let rows = sqlx::query(&format!("SELECT t::text AS row FROM \"{table}\" t"))
                    .fetch_all(&mut conn)
                    .await
                    .expect("rows");
                for row in rows {
                    text.push_str(&row.get::<String, _>("row"));
                    text.push('\n');
                }
            }
        } else {
            let url = format!("{}?mode=ro", self.database_url);
            let mut conn = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect");
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .fetch_all(&mut conn)
                    .await
                    .expect("tables");
            for table in tables {
                let columns: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                        .fetch_all(&mut conn)
                        .await
                        .expect("columns");
                let row = columns
                    .iter()
                    .map(|c| {
                        format!(
                            "COALESCE(CASE typeof(\"{c}\") WHEN 'blob' THEN hex(\"{c}\") \
                             ELSE CAST(\"{c}\" AS TEXT) END, '')"
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" || ' ' || ");
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT {row} FROM \"{table}\""))
                        .fetch_all(&mut conn)
                        .await
                        .expect("rows");
                for row in rows {
                    text.push_str(&row);
                    text.push('\n');
                }
            }
        }
        text
    }

    /// The PostgreSQL database's name, when there is one.
    pub fn postgres_database(&self) -> Option<&str> {
        self.postgres.as_ref().map(|db| db.name.as_str())
    }

    /// A server with a moderator and one approved store, Main Street
    /// Jewelers in Manhattan looking 25 km around: the usual opening scene.
    pub async fn with_store() -> (TestServer, String, Member) {
        let server = TestServer::start().await;
        let staff = server.staff_token("moderator");
        let store = server
            .member(&staff, "Main Street Jewelers", places::MANHATTAN, 25.0)
            .await;
        (server, staff, store)
    }

    /// Starts the server process (again) on `bind`, same database.
    pub async fn launch(&mut self, bind: &str, args: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut child = Command::new(server_binary())
            .args(["--bind", bind, "--database-url", &self.database_url])
            .args(args)
            .env("P4P_LOG", "info,p4p_server=debug")
            // Tests post and pledge far faster than any store; the rate
            // limit tests turn them on with `--rate-limits on`.
            .env("P4P_RATE_LIMITS", "off")
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start p4p-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("p4p-server did not say where it listens")
            .expect("read stdout")
            .unwrap_or_else(|| panic!("p4p-server exited: {}", self.logs()));
        let url = line
            .strip_prefix("p4p-server listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"));
        self.url = url.to_owned();
        self.metrics_url = None;
        if args.contains(&"--metrics-bind") {
            let line = tokio::time::timeout(PATIENCE, lines.next_line())
                .await
                .expect("p4p-server did not say where it serves metrics")
                .expect("read stdout")
                .unwrap_or_else(|| panic!("p4p-server exited: {}", self.logs()));
            let metrics = line
                .strip_prefix("p4p-server metrics on ")
                .and_then(|url| url.strip_suffix("/metrics"))
                .unwrap_or_else(|| panic!("unexpected second line: {line}"));
            self.metrics_url = Some(metrics.to_owned());
        }
        self.child = Some(child);
    }

    /// A client of the operators' listener (`--metrics-bind 127.0.0.1:0`).
    pub fn operators(&self) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: self
                .metrics_url
                .clone()
                .expect("a server started with --metrics-bind"),
            token: None,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Sends a signal to the server and waits for it to exit.
    pub async fn stop(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let pid = child.id().expect("pid").to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        tokio::time::timeout(PATIENCE, child.wait())
            .await
            .expect("server did not exit")
            .expect("wait")
    }

    /// A new staff token, made as an operator would on the server host.
    pub fn staff_token(&self, role: &str) -> String {
        let output = std::process::Command::new(server_binary())
            .args([
                "--database-url",
                &self.database_url,
                "token",
                "create",
                "--role",
                role,
                "--label",
                "test staff",
            ])
            .output()
            .expect("run p4p-server token create");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    pub fn api(&self, token: Option<&str>) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: self.url.clone(),
            token: token.map(str::to_owned),
        }
    }

    pub fn anonymous(&self) -> Api {
        self.api(None)
    }

    /// Applies with a pledge; returns the store id and its claim secret.
    pub async fn pledge(&self, name: &str, at: (f64, f64), radius_km: f64) -> (i64, String) {
        let reply = self
            .anonymous()
            .post("/v1/pledge", &pledge_body(name, at, radius_km))
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        (reply.i64("store_id"), reply.str("claim_secret").to_owned())
    }

    /// An approved member store with its token, vetted by `staff`.
    pub async fn member(&self, staff: &str, name: &str, at: (f64, f64), radius_km: f64) -> Member {
        let (id, secret) = self.pledge(name, at, radius_km).await;
        let approved = self
            .api(Some(staff))
            .post(&format!("/v1/stores/{id}/approve"), &json!({}))
            .await;
        assert_eq!(approved.status, 200, "{approved:?}");
        let claim = self
            .anonymous()
            .post(
                &format!("/v1/pledge/{id}/claim"),
                &json!({ "claim_secret": secret }),
            )
            .await;
        assert_eq!(claim.status, 200, "{claim:?}");
        Member {
            id,
            name: name.to_owned(),
            token: claim.str("token").to_owned(),
        }
    }

    /// Opens a stream with a bearer token.
    pub async fn stream(&self, token: &str, since: Option<i64>) -> Stream {
        self.try_stream(token, since)
            .await
            .unwrap_or_else(|status| panic!("stream refused: {status}"))
    }

    /// Opens a stream, or says the HTTP status it was refused with.
    pub async fn try_stream(&self, token: &str, since: Option<i64>) -> Result<Stream, u16> {
        stream_at(&self.url, token, since).await
    }

    /// Opens a stream with a bearer token and extra request headers (a
    /// browser's Origin, say), or says the HTTP status it was refused with.
    pub async fn try_stream_with(
        &self,
        token: &str,
        headers: &[(&str, &str)],
    ) -> Result<Stream, u16> {
        let url = format!("{}/v1/stream", self.url.replacen("http", "ws", 1));
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("header name"),
                HeaderValue::from_str(value).expect("header"),
            );
        }
        connect(request).await
    }

    /// Opens a stream whose socket takes in at most a few KiB at a time, so
    /// that a client that stops reading really stops the server's writes.
    pub async fn tiny_window_stream(&self, token: &str) -> Stream {
        self.tiny_window(token, "").await
    }

    /// The same, resuming after `since`.
    pub async fn tiny_window_stream_since(&self, token: &str, since: i64) -> Stream {
        self.tiny_window(token, &format!("?since={since}")).await
    }

    async fn tiny_window(&self, token: &str, query: &str) -> Stream {
        let address = self.url.trim_start_matches("http://");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4 * 1024).expect("SO_RCVBUF");
        let tcp = socket
            .connect(address.parse().expect("address"))
            .await
            .expect("connect");
        let mut request = format!("ws://{address}/v1/stream{query}")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        let (socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
            .await
            .expect("stream");
        Stream { socket }
    }

    /// Opens a stream passing the token as `?access_token=`, as a browser would.
    pub async fn stream_with_query_token(&self, token: &str) -> Result<Stream, u16> {
        let url = format!(
            "{}/v1/stream?access_token={token}",
            self.url.replacen("http", "ws", 1)
        );
        connect(url.into_client_request().expect("request")).await
    }

    /// Runs the real `p4p` CLI with its own home, config and state.
    pub fn cli(&self, home: &Path) -> Command {
        let mut command = Command::new(cli_binary());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("P4P_SERVER", &self.url)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }
}

pub fn pledge_body(name: &str, at: (f64, f64), radius_km: f64) -> Value {
    json!({
        "store_name": name,
        "address": format!("1 Main Street, {name}"),
        "location": { "lat": at.0, "lon": at.1 },
        "contact_name": "Ada Diamond",
        "contact_email": "ada@example.com",
        "phone": "+1 555 0100",
        "radius_km": radius_km,
        "accept_pledge": true,
    })
}

/// Opens a stream on the server at `url` (`http://...`), or says the
/// HTTP status it was refused with.
pub async fn stream_at(url: &str, token: &str, since: Option<i64>) -> Result<Stream, u16> {
    let mut url = format!("{}/v1/stream", url.replacen("http", "ws", 1));
    if let Some(since) = since {
        url.push_str(&format!("?since={since}"));
    }
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    connect(request).await
}

async fn connect(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<Stream, u16> {
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(Stream { socket }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("stream connection failed: {error}"),
    }
}

/// An approved member store.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: i64,
    pub name: String,
    pub token: String,
}

/// An HTTP client for the API, with or without a token.
pub struct Api {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// A response: status, content type and body (JSON when it is JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// A response read whole: JSON when it is JSON, else its text.
    async fn read(response: reqwest::Response) -> Result<Reply, reqwest::Error> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Reply {
            status,
            content_type,
            body,
            headers,
        })
    }

    /// A response header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn str(&self, field: &str) -> &str {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field} in {:?}", self.body))
    }

    pub fn i64(&self, field: &str) -> i64 {
        self.body[field]
            .as_i64()
            .unwrap_or_else(|| panic!("no integer {field} in {:?}", self.body))
    }

    /// The text field `field` of every object in the list `list` of the
    /// body (`"alerts"`, `"title"`): the titles listed, say.
    pub fn texts(&self, list: &str, field: &str) -> Vec<&str> {
        self.body[list]
            .as_array()
            .unwrap_or_else(|| panic!("no list {list} in {:?}", self.body))
            .iter()
            .filter_map(|item| item[field].as_str())
            .collect()
    }

    /// Asserts a problem document with this status and code; its detail.
    pub fn problem(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["code"], code, "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.body["title"].is_string(), "{self:?}");
        assert_eq!(self.body["type"], "about:blank", "{self:?}");
        self.str("detail").to_owned()
    }
}

impl Api {
    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(
            reqwest::Method::POST,
            path,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(
            reqwest::Method::PATCH,
            path,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Sends a JSON body (if any) with extra headers (`If-Match`,
    /// `Idempotency-Key`).
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let Some(body) = body else {
            return self.send_with_headers(method, path, headers, "").await;
        };
        let mut with_type = headers.to_vec();
        with_type.push(("content-type", "application/json"));
        self.send_with_headers(method, path, &with_type, body.to_string())
            .await
    }

    /// Sends raw bytes as the body, for malformed and oversized input.
    pub async fn post_raw(&self, path: &str, body: impl Into<Vec<u8>>) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body.into()))
            .await
    }

    /// Sends exactly these headers (and the token) with `body`: no
    /// Content-Type unless given, for requests that get it wrong.
    pub async fn send_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .body(body.into())
            .send()
            .await
            .unwrap_or_else(|error| panic!("request: {error}"));
        Reply::read(response)
            .await
            .unwrap_or_else(|error| panic!("response: {error}"))
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Reply {
        self.try_send(method, path, body)
            .await
            .unwrap_or_else(|error| panic!("request: {error}"))
    }

    /// Posts, or says why no answer came (the server is gone, the
    /// connection broke): for tests that kill the server mid-request.
    pub async fn try_post(&self, path: &str, body: &Value) -> Result<Reply, reqwest::Error> {
        self.try_send(
            reqwest::Method::POST,
            path,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await?;
        Reply::read(response).await
    }

    /// Flags alert `alert_id` as this client's store, with `reason`.
    pub async fn flag(&self, alert_id: i64, reason: &str) -> Reply {
        let path = format!("/v1/alerts/{alert_id}/flags");
        self.post(&path, &json!({ "reason": reason })).await
    }

    /// The id of the token this client sends, as `GET /v1/me` names it.
    pub async fn own_token_id(&self) -> i64 {
        let me = self.get("/v1/me").await;
        me.body["token"]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no token id in {me:?}"))
    }

    /// Posts an alert; asserts 201 and returns it.
    pub async fn post_alert(&self, alert: &Value) -> Value {
        let reply = self.post("/v1/alerts", alert).await;
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body
    }
}

/// The `id` of an object the API answered with (an alert, a token).
pub fn id_of(object: &Value) -> i64 {
    object["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer id in {object}"))
}

/// A casing alert at a place with a radius.
pub fn casing_at(title: &str, at: (f64, f64), radius_km: f64) -> Value {
    json!({
        "kind": "casing",
        "title": title,
        "location": { "lat": at.0, "lon": at.1 },
        "radius_km": radius_km,
    })
}

/// An alert as large as the limits allow (~35 KB): every suspect and
/// vehicle field full. A few hundred overrun any socket buffer.
pub fn largest_alert(title: &str, at: (f64, f64)) -> Value {
    let full = |fields: &[&str], fill: &str| -> Value {
        fields
            .iter()
            .map(|f| (f.to_string(), Value::String(fill.repeat(200))))
            .collect::<serde_json::Map<String, Value>>()
            .into()
    };
    let suspect = full(
        &[
            "sex", "age", "height", "build", "hair", "clothing", "shoes", "marks", "notes",
        ],
        "s",
    );
    let vehicle = full(
        &["make", "model", "color", "plate", "plate_region", "notes"],
        "v",
    );
    let mut alert = casing_at(title, at, 25.0);
    alert["description"] = Value::String("d".repeat(4_000));
    alert["suspects"] = Value::Array(vec![suspect; 10]);
    alert["vehicles"] = Value::Array(vec![vehicle; 10]);
    alert
}

/// One stream frame as it came: read through the protocol's types
/// (`frame`), and the JSON exactly as sent (`json`, which indexing reads:
/// `frame["alert"]`), for assertions on the wire form itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub frame: Frame,
    pub json: Value,
}

impl Received {
    /// Reads a frame; fails the test unless it is JSON and a frame of a
    /// type the protocol knows.
    pub fn parse(text: &str) -> Received {
        let json: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        let frame: Frame = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("not a protocol frame ({e}): {text}"));
        assert!(
            frame != Frame::Unknown,
            "a frame of an unknown type: {text}"
        );
        Received { frame, json }
    }

    /// The event's `seq`; fails the test for a frame without one (`hello`).
    pub fn seq(&self) -> i64 {
        self.frame
            .seq()
            .unwrap_or_else(|| panic!("no seq in {}", self.json))
    }

    /// The alert of an `alert`, `update` or `pending` frame.
    pub fn alert(&self) -> &Alert {
        match &self.frame {
            Frame::Alert(event) | Frame::Update(event) => &event.alert,
            Frame::Pending { alert, .. } => alert,
            _ => panic!("no alert in {}", self.json),
        }
    }

    /// The id of the alert an event frame is about.
    pub fn alert_id(&self) -> i64 {
        match &self.frame {
            Frame::Retract { alert_id, .. } | Frame::Flag { alert_id, .. } => *alert_id,
            _ => self.alert().id,
        }
    }

    /// How far from the receiving store an `alert` or `update` frame says
    /// its alert is (absent on staff streams).
    pub fn distance_km(&self) -> Option<f64> {
        match &self.frame {
            Frame::Alert(event) | Frame::Update(event) => event.distance_km,
            _ => panic!("no alert in {}", self.json),
        }
    }

    /// `(seq, alert id)` of an `alert` frame (an alert published to this
    /// stream); `None` for any other frame.
    pub fn published(&self) -> Option<(i64, i64)> {
        match &self.frame {
            Frame::Alert(event) => Some((event.seq, event.alert.id)),
            _ => None,
        }
    }

    /// The `hello` frame's fields; fails the test for any other frame.
    pub fn hello(&self) -> &Hello {
        match &self.frame {
            Frame::Hello(hello) => hello,
            _ => panic!("not a hello: {}", self.json),
        }
    }
}

/// The `seq` of each frame, in order.
pub fn seqs(frames: &[Received]) -> Vec<i64> {
    frames.iter().map(Received::seq).collect()
}

impl std::ops::Index<&str> for Received {
    type Output = Value;

    fn index(&self, field: &str) -> &Value {
        &self.json[field]
    }
}

impl std::fmt::Display for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.json.fmt(f)
    }
}

/// As the JSON it came as.
impl serde::Serialize for Received {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

/// A WebSocket stream client.
pub struct Stream {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a stream ended.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Closed(Option<u16>),
    Dropped,
}

impl Stream {
    /// The next frame; fails the test if none comes in time.
    pub async fn next(&mut self) -> Received {
        match self.next_within(PATIENCE).await {
            Ok(Some(frame)) => frame,
            Ok(None) => panic!("no frame within {PATIENCE:?}"),
            Err(ended) => panic!("stream ended: {ended:?}"),
        }
    }

    /// The next frame within `wait`, `None` if none came, or how it ended.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Received>, Ended> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return Ok(None),
                Ok(message) => message,
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Ok(Some(Received::parse(&text)));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(Ended::Closed(frame.map(|f| u16::from(f.code))));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(Ended::Dropped),
            }
        }
    }

    /// Waits for the server to close the stream; the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.next_within(PATIENCE).await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream was not closed within {PATIENCE:?}"),
                Err(Ended::Closed(code)) => return code,
                Err(Ended::Dropped) => return None,
            }
        }
    }

    /// Collects frames until `count` have come; fails if they do not.
    pub async fn take(&mut self, count: usize) -> Vec<Received> {
        let mut frames = Vec::with_capacity(count);
        while frames.len() < count {
            frames.push(self.next().await);
        }
        frames
    }

    /// Asserts that no frame comes for a while.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        if let Ok(Some(frame)) = self.next_within(wait).await {
            panic!("expected no frame, got {frame}");
        }
    }

    /// Sends one message to the server, as a (misbehaving) client would.
    pub async fn send(&mut self, message: Message) {
        self.socket.send(message).await.expect("send to the server");
    }

    pub async fn close(mut self) {
        let _ = self
            .socket
            .send(Message::Close(Some(
                tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: CloseCode::Normal,
                    reason: "bye".into(),
                },
            )))
            .await;
    }
}

/// The hello frame's head, asserting the frame is a hello.
pub fn hello_head(frame: &Received) -> i64 {
    frame.hello().head
}

/// The outcome of one `p4p` run.
#[derive(Debug)]
pub struct CliRun {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// Asserts the run succeeded and printed `needle` on stdout.
    pub fn expect_ok(self, needle: &str) -> CliRun {
        assert!(
            self.success && self.stdout.contains(needle),
            "expected `{needle}`: {self:?}"
        );
        self
    }

    /// Asserts the run failed and said `needle` on stderr.
    pub fn expect_error(self, needle: &str) -> CliRun {
        assert!(
            !self.success && self.stderr.contains(needle),
            "expected error `{needle}`: {self:?}"
        );
        self
    }
}

impl TestServer {
    /// Runs `p4p ARGS` with its own home and waits for it.
    pub async fn run_cli(&self, home: &Path, args: &[&str]) -> CliRun {
        let output = tokio::time::timeout(PATIENCE, self.cli(home).args(args).output())
            .await
            .unwrap_or_else(|_| panic!("p4p {args:?} did not finish"))
            .expect("run p4p");
        CliRun {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// A fresh home for `p4p`, logged in with `token`: `p4p login` succeeds
    /// and names `who` (a role or a store's name).
    pub async fn logged_in(&self, token: &str, who: &str) -> tempfile::TempDir {
        let home = tempfile::tempdir().expect("home");
        self.run_cli(home.path(), &["login", "--token", token])
            .await
            .expect_ok(who);
        home
    }

    /// Starts `p4p listen ARGS` in the background, reading its stdout.
    pub fn spawn_listen(&self, home: &Path, args: &[&str]) -> Listening {
        let mut child = self
            .cli(home)
            .arg("listen")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start p4p listen");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        Listening {
            child,
            stdout,
            stderr,
        }
    }
}

/// A running `p4p listen`.
pub struct Listening {
    child: Child,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
}

impl Listening {
    /// The next line on stdout; fails the test if none comes in time.
    pub async fn line(&mut self) -> String {
        match tokio::time::timeout(PATIENCE, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => panic!("p4p listen ended; stderr: {}", self.drain_stderr().await),
            Err(_) => panic!("no output from p4p listen within {PATIENCE:?}"),
        }
    }

    /// The next stdout line as a frame (`--json`).
    pub async fn frame(&mut self) -> Received {
        Received::parse(&self.line().await)
    }

    /// Lines until one contains `needle`; all of them.
    pub async fn lines_until(&mut self, needle: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let found = line.contains(needle);
            lines.push(line);
            if found {
                return lines;
            }
        }
    }

    /// Asserts nothing more is printed for a while.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        if let Ok(Ok(Some(line))) = tokio::time::timeout(wait, self.stdout.next_line()).await {
            panic!("expected no output, got {line}");
        }
    }

    /// Stops it as a service manager would (SIGTERM); its exit code.
    pub async fn stop(mut self) -> Option<i32> {
        let pid = self.child.id().expect("pid").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        self.wait().await
    }

    /// Waits for it to exit by itself; its exit code.
    pub async fn wait(&mut self) -> Option<i32> {
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("p4p listen did not exit")
            .expect("wait");
        status.code()
    }

    /// Everything it printed on stderr (after it exited).
    pub async fn drain_stderr(&mut self) -> String {
        let mut text = String::new();
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_millis(500), self.stderr.next_line()).await
        {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }
}
