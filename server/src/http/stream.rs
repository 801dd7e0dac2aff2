//! `GET /v1/stream`: hello, replay from `since`, then live frames.
//!
//! The connection subscribes to the hub first, then replays from the
//! database up to the hub's head at that moment, then drains its live queue,
//! whose frames all come after that head: no gap, no duplicate.

use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use p4p_protocol::{Hello, Role};
use serde::Deserialize;
use tracing::Instrument;

use super::extract::{Query, StreamCaller};
use super::{ApiContext, ApiError};
use crate::domain::delivery::Listener;
use crate::domain::place::{Area, Place, RadiusKm};
use crate::domain::Invalid;
use crate::fanout::{frame_for, Audience, Registration, Subscription};

/// How many events one replay read takes from the database.
const REPLAY_BATCH: i64 = 1_000;
/// Clients send nothing but control frames; anything larger is refused.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/v1/stream", get(connect))
}

#[derive(Deserialize)]
struct StreamParams {
    since: Option<i64>,
}

async fn connect(
    State(ctx): State<ApiContext>,
    StreamCaller(caller): StreamCaller,
    Query(params): Query<StreamParams>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
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
    let audience = match &caller.store {
        Some(store) => Audience::Store(Listener {
            store_id: store.id,
            interest: Area {
                center: Place::from_stored(store.location.lat, store.location.lon),
                radius: RadiusKm::from_stored(store.radius_km),
            },
        }),
        None => Audience::Staff,
    };
    let subscription = Subscription {
        token_id: caller.token.id,
        audience,
    };
    let role = caller.role();
    let span = tracing::Span::current();
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| {
            async move {
                let registration = ctx.hub.subscribe(subscription);
                tracing::info!(
                    head = registration.head,
                    since = params.since,
                    "stream connected"
                );
                let started = Instant::now();
                let ended = serve(&ctx, socket, registration, role, audience, params.since).await;
                tracing::info!(
                    seconds = started.elapsed().as_secs(),
                    ended = %ended,
                    "stream disconnected"
                );
            }
            .instrument(span)
        }))
}

/// Serves one stream until it ends; says how it ended.
async fn serve(
    ctx: &ApiContext,
    socket: WebSocket,
    mut registration: Registration,
    role: Role,
    audience: Audience,
    since: Option<i64>,
) -> String {
    let (mut sink, mut incoming) = socket.split();
    let hello = Hello {
        head: registration.head,
        role,
        store_id: match audience {
            Audience::Store(listener) => Some(listener.store_id),
            Audience::Staff => None,
        },
        location: match audience {
            Audience::Store(listener) => Some(listener.interest.center.location()),
            Audience::Staff => None,
        },
        radius_km: match audience {
            Audience::Store(listener) => Some(listener.interest.radius.km()),
            Audience::Staff => None,
        },
    };
    let hello = match serde_json::to_string(&p4p_protocol::Frame::Hello(hello)) {
        Ok(hello) => hello,
        Err(error) => return format!("cannot serialize hello: {error}"),
    };
    if sink.send(Message::Text(hello.into())).await.is_err() {
        return "client gone before hello".to_owned();
    }
    let mut delivered = registration.head;
    if let Some(since) = since {
        match replay(ctx, &mut sink, &audience, since, registration.head).await {
            Ok(()) => delivered = delivered.max(since),
            Err(ended) => return ended,
        }
    }

    let interval = ctx.stream.ping_interval;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut last_heard = Instant::now();
    let closer = registration.closer.clone();
    loop {
        tokio::select! {
            biased;
            (code, reason) = closer.closed() => {
                let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return format!("closed by the server: {code} {reason}");
            }
            queued = registration.queue.recv() => {
                let Some((seq, frame)) = queued else {
                    return "hub gone".to_owned();
                };
                if seq <= delivered {
                    continue;
                }
                if sink.send(Message::Text(frame)).await.is_err() {
                    return "client gone".to_owned();
                }
                delivered = seq;
            }
            message = incoming.next() => {
                match message {
                    None | Some(Err(_)) => return "client gone".to_owned(),
                    Some(Ok(Message::Close(_))) => return "closed by the client".to_owned(),
                    Some(Ok(_)) => last_heard = Instant::now(),
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > interval * 2 {
                    return "no answer to pings".to_owned();
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return "client gone".to_owned();
                }
            }
        }
    }
}

/// Sends every event in `(since, head]` the audience would have received
/// live, in `seq` order.
async fn replay(
    ctx: &ApiContext,
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    audience: &Audience,
    since: i64,
    head: i64,
) -> Result<(), String> {
    let mut cursor = since;
    while cursor < head {
        let events = ctx
            .storage
            .events_after(cursor, REPLAY_BATCH)
            .await
            .map_err(|error| {
                tracing::error!(%error, "replay failed");
                format!("replay failed: {error}")
            })?;
        if events.is_empty() {
            break;
        }
        for event in events.iter().take_while(|event| event.seq <= head) {
            cursor = event.seq;
            if let Some(frame) = frame_for(event, audience) {
                sink.send(Message::Text(frame.into()))
                    .await
                    .map_err(|_| "client gone during replay".to_owned())?;
            }
        }
        if events.last().is_some_and(|event| event.seq > head) {
            break;
        }
    }
    Ok(())
}
