//! `p4p listen`: the live stream of alerts, printed as they come.
//!
//! The listener keeps the `seq` of the last event it fully processed (printed
//! and handed to `--exec`) in a state file, and resumes from it with `since`
//! after a dropped connection or a restart, so that no alert is missed and
//! none is shown twice. A store that cannot listen yet (pending) or now
//! (suspended) is told why and waits (`membership`); a failing `--exec`
//! command is retried before the position moves on (`exec`).

mod exec;
mod membership;
mod seq_file;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use futures_util::{SinkExt, StreamExt};
use p4p_protocol::{close_code, Frame, Hello, Problem};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, AUTHORIZATION};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::api::{error_chain, ServerUrl};
use crate::context::Context;
use crate::secret::Token;
use crate::{output, render};
use membership::{SaidOnce, TokenSource, CLAIM_AGAIN};
use seq_file::SeqFile;

#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// Resume after this seq instead of the one saved in the state file.
    #[arg(long, value_name = "SEQ")]
    pub since: Option<i64>,

    /// Where to keep the last processed seq
    /// [default: <state dir>/p4p/listen-<hash of server and token>.seq].
    #[arg(long, env = "P4P_STATE_FILE", value_name = "PATH")]
    pub state_file: Option<PathBuf>,

    /// Run `sh -c CMD` for every event, with the frame's JSON on standard
    /// input and P4P_FRAME_TYPE set to its type (alert, update, retract,
    /// pending, flag).
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,

    /// What to do when the --exec command fails (exits non-zero, cannot
    /// start, or runs over 60 s): `retry` runs it again for the same event,
    /// after 1 s, doubling to 60 s, and the saved position stays before the
    /// event until it succeeds (later events wait); `skip` warns and moves
    /// on to the next event.
    #[arg(long, value_enum, default_value_t = ExecFailures::Retry, value_name = "WHAT")]
    pub exec_failures: ExecFailures,

    /// How often a store that may not listen (pending, suspended) checks
    /// again, in seconds (for tests).
    #[arg(
        long,
        env = "P4P_LISTEN_HELD_RETRY_SECS",
        default_value_t = 60,
        hide = true
    )]
    pub held_retry_secs: u64,
}

/// `--exec-failures`: whether a failed `--exec` holds the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecFailures {
    /// Run it again, with backoff, until it succeeds.
    Retry,
    /// Warn and go on to the next event.
    Skip,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const PING_EVERY: Duration = Duration::from_secs(30);
/// Without a single message (pongs included) for this long, the connection
/// is taken for dead: a cut cable does not always close a socket.
const SILENCE_LIMIT: Duration = Duration::from_secs(75);

pub async fn run(ctx: &Context, args: ListenArgs) -> anyhow::Result<()> {
    // Installed before anything waits, so that Ctrl-C or SIGTERM at any moment
    // ends the listener cleanly: at once while it waits, and after the frame
    // in hand is printed, handed to --exec and recorded while it works, so
    // that a restart neither misses nor repeats it.
    let shutdown = Shutdown::install()?;
    let (stop_sender, mut stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.wait().await;
        let _ = stop_sender.send(true);
    });
    let token_source = match (&ctx.given_token, ctx.config.path()) {
        (None, Ok(path)) => TokenSource::File(path.to_owned()),
        _ => TokenSource::Given,
    };
    let token = match (&ctx.token, ctx.config.file.store_id, ctx.config.path()) {
        (Some(token), _, _) => token.clone(),
        // A pledge awaiting approval: wait for it rather than exit.
        (None, Some(store_id), Ok(path)) if ctx.config.file.claim_secret.is_some() => {
            let retry = Duration::from_secs(args.held_retry_secs.max(1));
            match membership::wait_for_approval(&ctx.server, path, store_id, retry, &mut stop)
                .await?
            {
                Some(token) => token,
                None => return Ok(()),
            }
        }
        (None, _, _) => ctx.require_token()?.clone(),
    };
    let state_path = match args.state_file.filter(|path| !path.as_os_str().is_empty()) {
        Some(path) => path,
        None => seq_file::default_path(&ctx.server, &token).ok_or_else(|| {
            anyhow!("cannot find a state directory: pass --state-file PATH or set P4P_STATE_FILE")
        })?,
    };
    let seq_file = SeqFile::new(state_path);
    let saved = seq_file.load()?;
    let listener = Listener {
        server: ctx.server.clone(),
        token,
        token_source,
        json: ctx.json,
        exec: args.exec,
        exec_failures: args.exec_failures,
        last_seq: args.since.or(saved),
        seq_file,
        held: false,
        held_retry: Duration::from_secs(args.held_retry_secs.max(1)),
        said: SaidOnce::default(),
        stop,
    };
    listener.run().await?;
    eprintln!("p4p listen: stopped");
    Ok(())
}

/// What to do after a connection ended without a fatal error.
enum Reconnect {
    /// At once, with `since` (the server found us too slow).
    Now(String),
    /// After the backoff delay, with `since`.
    Later(String),
    /// After at least this long (the server's `Retry-After`), with `since`.
    After(Duration, String),
    /// At once, without `since`: the server is behind our saved seq.
    FromHead(String),
    /// After `--held-retry-secs` (60 s), with the token the config file holds
    /// then: the store is suspended or not approved yet.
    Held(String),
    /// Not at all: Ctrl-C or SIGTERM.
    Stop,
}

struct Listener {
    server: ServerUrl,
    token: Token,
    token_source: TokenSource,
    json: bool,
    exec: Option<String>,
    exec_failures: ExecFailures,
    /// The last event fully processed; `None` before the first `hello`.
    last_seq: Option<i64>,
    seq_file: SeqFile,
    /// Whether the server last said the store may not listen (suspended,
    /// not approved): a revoked token then means reinstatement, not theft.
    held: bool,
    /// How often a held store tries again.
    held_retry: Duration,
    /// Why the listener waits, said once while it stays true.
    said: SaidOnce,
    /// Turns true on Ctrl-C or SIGTERM.
    stop: tokio::sync::watch::Receiver<bool>,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl Listener {
    /// Listens until stopped or a fatal error; reconnections happen in here.
    async fn run(mut self) -> anyhow::Result<()> {
        let mut backoff = Backoff::new();
        let mut stop = self.stop.clone();
        loop {
            let (delay, why) = match self.session(&mut backoff).await? {
                Reconnect::Stop => return Ok(()),
                Reconnect::Now(why) => {
                    eprintln!("p4p listen: {}; reconnecting now", render::escape(&why));
                    continue;
                }
                Reconnect::FromHead(why) => {
                    eprintln!("warning: {}", render::escape(&why));
                    self.last_seq = None;
                    continue;
                }
                Reconnect::Held(why) => {
                    self.held = true;
                    self.said.say(&format!(
                        "{why}; trying again every {} s",
                        self.held_retry.as_secs()
                    ));
                    tokio::select! {
                        () = tokio::time::sleep(self.held_retry) => {}
                        _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
                    }
                    self.pick_up_new_token()?;
                    continue;
                }
                Reconnect::Later(why) => (backoff.next_delay(), why),
                Reconnect::After(at_least, why) => (backoff.next_delay().max(at_least), why),
            };
            eprintln!(
                "p4p listen: {}; reconnecting in {} s",
                render::escape(&why),
                delay.as_secs()
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
            }
        }
    }

    /// One connection, from the upgrade to its end.
    async fn session(&mut self, backoff: &mut Backoff) -> anyhow::Result<Reconnect> {
        let since = self.last_seq;
        let mut stop = self.stop.clone();
        let connected = tokio::select! {
            connected = self.connect(since) => connected?,
            _ = stop.wait_for(|stopped| *stopped) => return Ok(Reconnect::Stop),
        };
        let mut socket = match connected {
            Ok(socket) => socket,
            Err(reconnect) => return Ok(reconnect),
        };
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => {
                    let _ = socket.close(None).await;
                    return Ok(Reconnect::Stop);
                }
                message = socket.next() => {
                    last_heard = Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            self.handle(text.as_str(), since, backoff).await?;
                            // Time spent in --exec is not the server's silence.
                            last_heard = Instant::now();
                        }
                        Some(Ok(Message::Close(frame))) => return self.closed(frame),
                        Some(Ok(_)) => {}
                        Some(Err(error)) => {
                            return Ok(Reconnect::Later(format!(
                                "the stream broke: {}",
                                error_chain(&error)
                            )))
                        }
                        None => {
                            return Ok(Reconnect::Later(
                                "the server ended the connection".to_owned(),
                            ))
                        }
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= SILENCE_LIMIT {
                        return Ok(Reconnect::Later(format!(
                            "no word from the server for {} s",
                            SILENCE_LIMIT.as_secs()
                        )));
                    }
                    if let Err(error) = socket.send(Message::Ping(Default::default())).await {
                        return Ok(Reconnect::Later(format!(
                            "the stream broke: {}",
                            error_chain(&error)
                        )));
                    }
                }
            }
        }
    }

    /// Opens the stream; `Ok(Err(_))` says how to try again, `Err` is fatal.
    async fn connect(&self, since: Option<i64>) -> anyhow::Result<Result<Socket, Reconnect>> {
        let url = self.server.stream_url(since);
        let mut request = url.as_str().into_client_request()?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", self.token.expose()))
            .map_err(|_| anyhow!("the token holds characters no HTTP header may carry"))?;
        request.headers_mut().insert(AUTHORIZATION, bearer);
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request)).await
        {
            Ok(Ok((socket, _response))) => Ok(Ok(socket)),
            Ok(Err(error)) => self.refused(error, since).map(Err),
            Err(_) => Ok(Err(Reconnect::Later(format!(
                "cannot reach the p4p server at {}: no answer within {} s",
                self.server,
                CONNECT_TIMEOUT.as_secs()
            )))),
        }
    }

    /// Why the upgrade failed, and whether trying again can help.
    fn refused(&self, error: WsError, since: Option<i64>) -> anyhow::Result<Reconnect> {
        let response = match error {
            WsError::Http(response) => response,
            WsError::Url(error) => {
                return Err(anyhow!(
                    "cannot open the stream at {}: {error}",
                    self.server.stream_url(since)
                ))
            }
            other => {
                return Ok(Reconnect::Later(format!(
                    "cannot reach the p4p server at {}: {}",
                    self.server,
                    error_chain(&other)
                )))
            }
        };
        let status = response.status();
        let problem: Option<Problem> = response
            .body()
            .as_deref()
            .and_then(|body| serde_json::from_slice(body).ok());
        let code = problem.as_ref().map(|problem| problem.code.as_str());
        let detail = match &problem {
            Some(problem) if !problem.detail.is_empty() => problem.detail.clone(),
            _ => status.to_string(),
        };
        match (status.as_u16(), since) {
            (403, _) if code == Some("store_suspended") => Ok(Reconnect::Held(format!(
                "this store is suspended: {detail}; {CLAIM_AGAIN}"
            ))),
            (403, _) if code == Some("store_not_approved") => Ok(Reconnect::Held(format!(
                "this store may not listen yet: {detail}; waiting for the association"
            ))),
            (401, _) if self.held => Ok(Reconnect::Held(format!(
                "the store's token was revoked ({detail}), as reinstatement does; {CLAIM_AGAIN}"
            ))),
            (401 | 403, _) => Err(anyhow!(detail)),
            (409, Some(since)) if code == Some("since_ahead") => Ok(Reconnect::FromHead(format!(
                "the saved seq {since} is ahead of the server's newest event (was its \
                 database replaced?); listening from its newest event instead"
            ))),
            (429 | 500..=599, _) => {
                let why = format!(
                    "the p4p server at {} answered {status}: {detail}",
                    self.server
                );
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.trim().parse::<u64>().ok());
                Ok(match retry_after {
                    // Never more than an hour: a bad header must not park
                    // the back office's listener for a day.
                    Some(seconds) => Reconnect::After(Duration::from_secs(seconds.min(3_600)), why),
                    None => Reconnect::Later(why),
                })
            }
            _ => Err(anyhow!(
                "the p4p server at {} refused the stream ({status}): {detail}",
                self.server
            )),
        }
    }

    /// The server closed the stream: revoked (fatal), too slow, or going away.
    fn closed(&self, frame: Option<CloseFrame>) -> anyhow::Result<Reconnect> {
        let (code, reason) = frame
            .map(|frame| (u16::from(frame.code), frame.reason.to_string()))
            .unwrap_or((1005, String::new()));
        let because = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        match code {
            // Revoked, or the store suspended: connecting again tells which
            // (401 ends the listener, 403 `store_suspended` makes it wait).
            close_code::REVOKED => Ok(Reconnect::Now(format!(
                "the server closed the stream: the token was revoked or the store suspended{because}"
            ))),
            close_code::TOO_SLOW => Ok(Reconnect::Now(format!(
                "the server closed the stream because this client read too slowly{because}"
            ))),
            close_code::GOING_AWAY => Ok(Reconnect::Later(format!(
                "the server is going away{because}"
            ))),
            other => Ok(Reconnect::Later(format!(
                "the server closed the stream (code {other}){because}"
            ))),
        }
    }

    /// One text frame, exactly as received.
    async fn handle(
        &mut self,
        text: &str,
        since: Option<i64>,
        backoff: &mut Backoff,
    ) -> anyhow::Result<()> {
        let frame: Frame = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(error) => {
                // Scripts still get it as it came; people are told.
                if self.json {
                    output::json_line(text)?;
                }
                eprintln!(
                    "warning: a frame this client cannot read: {}",
                    render::escape(&error.to_string())
                );
                return Ok(());
            }
        };
        match &frame {
            Frame::Hello(hello) => {
                backoff.reset();
                self.held = false;
                self.said = SaidOnce::default();
                self.greet(hello, text, since)
            }
            // Scripts may know frame types this client does not.
            Frame::Unknown if self.json => Ok(output::json_line(text)?),
            Frame::Unknown => Ok(()),
            event => self.process(event, text).await,
        }
    }

    fn greet(&mut self, hello: &Hello, text: &str, since: Option<i64>) -> anyhow::Result<()> {
        if self.json {
            output::json_line(text)?;
        }
        match since {
            Some(since) => eprintln!(
                "p4p listen: connected to {} as {}; resumed from seq {since} (server head {})",
                self.server, hello.role, hello.head
            ),
            None => eprintln!(
                "p4p listen: connected to {} as {}; live from seq {}",
                self.server, hello.role, hello.head
            ),
        }
        if self.last_seq.is_none() {
            // First run: later restarts resume from here.
            self.last_seq = Some(hello.head);
            self.seq_file.save(hello.head)?;
        }
        Ok(())
    }

    /// Prints an event, hands it to `--exec`, then records its seq.
    async fn process(&mut self, frame: &Frame, text: &str) -> anyhow::Result<()> {
        let Some(seq) = frame.seq() else {
            return Ok(());
        };
        if self.last_seq.is_some_and(|last| seq <= last) {
            return Ok(());
        }
        if self.json {
            output::json_line(text)?;
        } else if let Some(block) = render::frame(frame) {
            output::line(&format!("{block}\n"))?;
        }
        if let Some(command) = self.exec.clone() {
            if !self.exec_until_done(&command, frame, text, seq).await {
                // Stopped while retrying: the position stays before it.
                return Ok(());
            }
        }
        self.last_seq = Some(seq);
        self.seq_file.save(seq)?;
        Ok(())
    }

    /// Runs `--exec` for one event; with `--exec-failures retry`, again
    /// after each failure (1 s, doubling to 60 s) until it succeeds. False
    /// when stopped before it succeeded.
    async fn exec_until_done(
        &mut self,
        command: &str,
        frame: &Frame,
        text: &str,
        seq: i64,
    ) -> bool {
        let mut delay = exec::FIRST_RETRY;
        let mut stop = self.stop.clone();
        loop {
            let why = match exec::run(command, frame_type(frame), text, seq).await {
                Ok(()) => return true,
                Err(why) => why,
            };
            if self.exec_failures == ExecFailures::Skip {
                eprintln!("warning: {why}; skipping it (--exec-failures skip)");
                return true;
            }
            eprintln!(
                "warning: {why}; running it again in {} s (the saved position stays before seq {seq})",
                delay.as_secs()
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|stopped| *stopped) => return false,
            }
            delay = (delay * 2).min(exec::MAX_RETRY);
        }
    }

    /// While the store waits, the token may change (claimed again after
    /// reinstatement): take the one the config file holds now.
    fn pick_up_new_token(&mut self) -> anyhow::Result<()> {
        if let Some(token) = self.token_source.reread()? {
            if token.expose() != self.token.expose() {
                eprintln!("p4p listen: using the new token from the config file");
                self.token = token;
            }
        }
        Ok(())
    }
}

fn frame_type(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello(_) => "hello",
        Frame::Alert(_) => "alert",
        Frame::Update(_) => "update",
        Frame::Retract { .. } => "retract",
        Frame::Pending { .. } => "pending",
        Frame::Flag { .. } => "flag",
        Frame::Unknown => "unknown",
    }
}

/// 1 s, doubling up to 30 s; back to 1 s once a connection says hello.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Ctrl-C and SIGTERM.
struct Shutdown {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Shutdown {
    #[cfg(unix)]
    fn install() -> anyhow::Result<Shutdown> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Shutdown {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    #[cfg(not(unix))]
    fn install() -> anyhow::Result<Shutdown> {
        Ok(Shutdown {})
    }

    #[cfg(unix)]
    async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }

    #[cfg(not(unix))]
    async fn wait(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_thirty_seconds() {
        let mut backoff = Backoff::new();
        let delays: Vec<u64> = (0..7).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.next_delay().as_secs(), 1);
    }
}
