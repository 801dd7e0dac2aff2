//! `GET /v1/stream`: hello, replay from `since`, then live frames.
//!
//! The connection subscribes to the hub first, then replays from the
//! database up to the hub's head at that moment, then drains its live queue,
//! whose frames all come after that head: no gap, no duplicate.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use p4p_protocol::{close_code, Hello, Role};
use serde::Deserialize;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Caller, Query, StreamCaller};
use super::limits::Account;
use super::{ApiContext, ApiError};
use crate::domain::delivery::Listener;
use crate::domain::place::Area;
use crate::domain::Invalid;
use crate::fanout::{frame_for, Audience, Closer, Registration, Subscription};

/// How many events one replay read takes from the database.
const REPLAY_BATCH: i64 = 1_000;
/// Clients send nothing but control frames; anything larger is refused.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;
/// What a connection reads into at once. The library's default (128 KiB,
/// zero-filled on first read) would cost every idle stream 128 KiB of RSS,
/// for a client that only ever sends pongs.
const READ_BUFFER: usize = 4 * 1024;
/// Frames gathered before they are written to the socket: large enough to
/// batch a replay or a burst into few writes, small enough to keep per
/// stream once it has been busy.
const WRITE_BUFFER: usize = 16 * 1024;
/// Frames taken from the queue before one flush.
const BURST: usize = 64;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(connect))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamParams {
    /// Replay every event after this `seq` first, then go on live.
    #[param(minimum = 0)]
    since: Option<i64>,
}

/// The live stream: a WebSocket of JSON text frames (`hello`, `alert`,
/// `update`, `retract`, and for staff `pending` and `flag`; docs/API.md).
#[utoipa::path(
    get, path = "/v1/stream", tag = "stream",
    params(
        StreamParams,
        ("access_token" = Option<String>, Query, description = "The token, for clients that cannot set the Authorization header (browsers)"),
        ("Connection" = String, Header, description = "The WebSocket handshake: `Upgrade`"),
        ("Upgrade" = String, Header, description = "The WebSocket handshake: `websocket`"),
        ("Sec-WebSocket-Version" = String, Header, description = "The WebSocket handshake: `13`"),
        ("Sec-WebSocket-Key" = String, Header, description = "The WebSocket handshake: the client's nonce"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; the first frame is `hello`"),
        (status = 400, description = "Not a WebSocket handshake"),
        (status = 403, description = "A pending or suspended store, or an Origin that may not open streams"),
        (status = 409, description = "`since` is ahead of this network's newest `seq` (`since_ahead`): reconnect without it"),
        (status = 422, description = "`since` is not a number of 0 or more"),
        (status = 429, description = "This token opened too many streams this hour, or holds as many open streams as it may (`rate_limited`)"),
    )
)]

async fn connect(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    StreamCaller(caller): StreamCaller,
    Query(params): Query<StreamParams>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    ctx.edge.origins.check(&headers)?;
    caller.require_active()?;
    if let Some(since) = params.since {
        if since < 0 {
            return Err(Invalid::new("since", "must be 0 or more").into());
        }
        let head = ctx.storage.head().await?;
        if since > head {
            return Err(ApiError::conflict(
                "since_ahead",
                format!("since {since} is ahead of this network's newest seq {head}; was the database replaced? Reconnect without since"),
            ));
        }
    }
    let subscription = Subscription {
        token_id: caller.token.id,
        audience: audience_of(&caller),
    };
    let store_id = caller.store.as_ref().map(|store| store.id);
    let open = ctx
        .limits
        .stream_opened(caller.token.id, store_id, ctx.stream.ping_interval)?;
    let account = Account::of(store_id, caller.token.id);
    let span = tracing::Span::current();
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| {
            async move {
                let _open = open;
                let started = Instant::now();
                let ended = match subscribe(&ctx, &caller, subscription).await {
                    Ok((registration, audience)) => {
                        tracing::info!(head = registration.head, since = params.since, "stream connected");
                        serve(&ctx, socket, registration, caller.role(), audience, account, params.since).await
                    }
                    Err(refusal) => refuse(socket, refusal, ctx.stream.ping_interval).await,
                };
                tracing::info!(seconds = started.elapsed().as_secs(), ended = %ended, "stream disconnected");
            }
            .instrument(span)
        }))
}

fn audience_of(caller: &Caller) -> Audience {
    match &caller.store {
        Some(store) => Audience::Store(Listener {
            store_id: store.id,
            interest: Area::of_store(store),
        }),
        None => Audience::Staff,
    }
}

/// Joins the network, then checks the token and the store again: a
/// suspension, revocation or move committed between authentication and
/// joining is seen here, and any later one reaches the registration. Store
/// moves wait meanwhile, so the hub never keeps an older area.
async fn subscribe(
    ctx: &ApiContext,
    caller: &Caller,
    subscription: Subscription,
) -> Result<(Registration, Audience), Refusal> {
    let subscribing = ctx.network.subscribe(subscription).await;
    let current = match ctx.storage.credential(&caller.token_hash).await {
        Ok(Some(credential)) => credential,
        Ok(None) => return Err(Refusal::TokenRevoked),
        Err(error) => {
            tracing::error!(%error, "cannot check the token again");
            crate::metrics::database_error();
            return Err(Refusal::DatabaseUnavailable);
        }
    };
    let current = Caller {
        token: current.token,
        store: current.store,
        token_hash: caller.token_hash.clone(),
    };
    if current.require_active().is_err() {
        return Err(Refusal::StoreSuspended);
    }
    let audience = audience_of(&current);
    if let (Audience::Store(now), Audience::Store(then)) = (audience, subscription.audience) {
        if now.interest != then.interest {
            subscribing.moved(now.store_id, now.interest);
        }
    }
    Ok((subscribing.joined(), audience))
}

/// Why a stream may not go on once it has joined the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    TokenRevoked,
    StoreSuspended,
    /// The database could not say whether the credential still holds.
    DatabaseUnavailable,
}

impl Refusal {
    /// 4001 for a dead credential, 1011 when the database cannot say.
    fn close_code(self) -> u16 {
        match self {
            Refusal::TokenRevoked | Refusal::StoreSuspended => close_code::REVOKED,
            Refusal::DatabaseUnavailable => close_code::INTERNAL_ERROR,
        }
    }

    /// The close frame's reason.
    fn reason(self) -> &'static str {
        match self {
            Refusal::TokenRevoked => "token revoked",
            Refusal::StoreSuspended => "store suspended",
            Refusal::DatabaseUnavailable => "database unavailable",
        }
    }
}

/// Closes a stream that may not go on.
async fn refuse(mut socket: WebSocket, refusal: Refusal, limit: Duration) -> String {
    let (code, reason) = (refusal.close_code(), refusal.reason());
    close(&mut socket, code, reason, limit).await;
    format!("refused: {code} {reason}")
}

/// Sends the server's close frame (counted by code), giving up on a client
/// that does not take it within `limit`.
async fn close<S>(sink: &mut S, code: u16, reason: &'static str, limit: Duration)
where
    S: futures_util::Sink<Message, Error = axum::Error> + Unpin,
{
    crate::metrics::stream_closed(code);
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = within(limit, sink.send(Message::Close(Some(frame)))).await;
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Sends one message, giving up on a client that does not take it within
/// `limit`: a reader that stopped must not hold the connection forever.
async fn send(sink: &mut Sink, message: Message, limit: Duration) -> Result<(), String> {
    within(limit, sink.send(message)).await
}

/// Writes `messages` and flushes once, giving up as [`send`] does when the
/// client takes nothing for `limit`. Stops early (leaving the close to the
/// caller) once `closer` says the stream is to be closed: a long replay must
/// not delay a suspension. Counts the frames written in `sent`, at once.
async fn send_all(
    sink: &mut Sink,
    messages: impl IntoIterator<Item = Message>,
    closer: &Closer,
    limit: Duration,
    sent: &metrics::Counter,
) -> Result<(), String> {
    let mut written = 0;
    let fed = async {
        for message in messages {
            if closer.is_closing() {
                break;
            }
            within(limit, sink.feed(message)).await?;
            written += 1;
        }
        Ok::<(), String>(())
    }
    .await;
    sent.increment(written);
    fed?;
    within(limit, sink.flush()).await
}

async fn within(
    limit: Duration,
    write: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> Result<(), String> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("client gone".to_owned()),
        Err(_) => Err(format!("client took nothing for {} s", limit.as_secs())),
    }
}

/// Serves one stream until it ends; says how it ended.
async fn serve(
    ctx: &ApiContext,
    socket: WebSocket,
    mut registration: Registration,
    role: Role,
    audience: Audience,
    account: Account,
    since: Option<i64>,
) -> String {
    let (mut sink, mut incoming) = socket.split();
    let interval = ctx.stream.ping_interval;
    let (store_id, location, radius_km) = match audience {
        Audience::Store(listener) => (
            Some(listener.store_id),
            Some(listener.interest.center.location()),
            Some(listener.interest.radius.km()),
        ),
        Audience::Staff => (None, None, None),
    };
    let hello = Hello {
        head: registration.head,
        role,
        store_id,
        location,
        radius_km,
    };
    let hello = match serde_json::to_string(&p4p_protocol::Frame::Hello(hello)) {
        Ok(hello) => hello,
        Err(error) => return format!("cannot serialize hello: {error}"),
    };
    if let Err(ended) = send(&mut sink, Message::Text(hello.into()), interval).await {
        return ended;
    }
    let closer = registration.closer.clone();
    let mut delivered = registration.head;
    if let Some(since) = since {
        // The replay waits its turn (one per account, a few per node); a
        // close meanwhile skips it, and the loop below sends the close.
        let turn = tokio::select! {
            turn = ctx.limits.replay_turn(account, registration.head - since) => Some(turn),
            _ = closer.closed() => None,
        };
        if turn.is_none() {
            return close_now(&mut sink, &closer, interval).await;
        }
        if let Err(ended) = replay(
            ctx,
            &mut sink,
            &closer,
            &audience,
            since,
            registration.head,
            interval,
        )
        .await
        {
            return ended;
        }
        drop(turn);
        delivered = delivered.max(since);
    }

    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut last_heard = Instant::now();
    let client_messages = governor::RateLimiter::direct(client_message_quota());
    loop {
        tokio::select! {
            biased;
            (code, reason) = closer.closed() => {
                close(&mut sink, code, reason, interval).await;
                return format!("closed by the server: {code} {reason}");
            }
            queued = registration.queue.recv() => {
                let Some(first) = queued else {
                    return "hub gone".to_owned();
                };
                // This frame and those queued behind it go out in one write.
                let mut burst = Vec::with_capacity(BURST.min(registration.queue.len() + 1));
                let mut next = Some(first);
                while let Some((seq, frame)) = next {
                    if seq > delivered {
                        burst.push(Message::Text(frame));
                        delivered = seq;
                    }
                    next = if burst.len() < BURST { registration.queue.try_recv().ok() } else { None };
                }
                if let Err(ended) = send_all(&mut sink, burst, &closer, interval, &ctx.metrics.frames_sent).await {
                    return ended;
                }
            }
            message = incoming.next() => {
                let (code, reason) = match message {
                    None => return "client gone".to_owned(),
                    Some(Err(error)) if is_too_long(&error) => {
                        (close_code::MESSAGE_TOO_BIG, "message too big")
                    }
                    Some(Err(_)) => return "client gone".to_owned(),
                    Some(Ok(Message::Close(_))) => return "closed by the client".to_owned(),
                    Some(Ok(_)) if client_messages.check().is_err() => {
                        (close_code::POLICY_VIOLATION, "too many messages")
                    }
                    Some(Ok(_)) => {
                        last_heard = Instant::now();
                        continue;
                    }
                };
                close(&mut sink, code, reason, interval).await;
                return format!("closed by the server: {code} {reason}");
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > interval * 2 {
                    return "no answer to pings".to_owned();
                }
                if let Err(ended) = send(&mut sink, Message::Ping(Default::default()), interval).await {
                    return ended;
                }
            }
        }
    }
}

/// Sends the close `closer` was asked for.
async fn close_now(sink: &mut Sink, closer: &Closer, limit: Duration) -> String {
    let (code, reason) = closer.closed().await;
    close(sink, code, reason, limit).await;
    format!("closed by the server: {code} {reason}")
}

/// Clients only answer pings and close; a client sending more than this
/// (a burst of 20, then 5 a second) is closed with 1008.
fn client_message_quota() -> governor::Quota {
    const PER_SECOND: std::num::NonZeroU32 = std::num::NonZeroU32::new(5).expect("not zero");
    const BURST: std::num::NonZeroU32 = std::num::NonZeroU32::new(20).expect("not zero");
    governor::Quota::per_second(PER_SECOND).allow_burst(BURST)
}

/// Whether a read failed on a message larger than [`MAX_CLIENT_MESSAGE`].
fn is_too_long(error: &axum::Error) -> bool {
    let source = std::error::Error::source(error);
    matches!(
        source.and_then(|e| e.downcast_ref::<tungstenite::Error>()),
        Some(tungstenite::Error::Capacity(_))
    )
}

/// Sends every event in `(since, head]` the audience would have received
/// live, in `seq` order. Stops early, leaving the close to the caller, when
/// the connection is to be closed (suspension, revocation, shutdown).
async fn replay(
    ctx: &ApiContext,
    sink: &mut Sink,
    closer: &Closer,
    audience: &Audience,
    since: i64,
    head: i64,
    limit: Duration,
) -> Result<(), String> {
    let not_before = ctx.policy.retention_cutoff(time::OffsetDateTime::now_utc());
    let mut cursor = since;
    while cursor < head {
        let events = ctx
            .storage
            .events_after(cursor, REPLAY_BATCH)
            .await
            .map_err(|error| {
                tracing::error!(%error, "replay failed");
                crate::metrics::database_error();
                format!("replay failed: {error}")
            })?;
        if events.is_empty() {
            break;
        }
        if closer.is_closing() {
            return Ok(());
        }
        let mut frames = Vec::new();
        for event in events.iter().take_while(|event| event.seq <= head) {
            cursor = event.seq;
            if let Some(frame) = frame_for(event, audience, not_before) {
                frames.push(Message::Text(frame.into()));
            }
        }
        send_all(sink, frames, closer, limit, &ctx.metrics.frames_sent).await?;
        if events.last().is_some_and(|event| event.seq > head) {
            break;
        }
    }
    Ok(())
}
