//! The three systems side by side: p4p, the floor and NATS. Each gets the
//! same subscribers (one connection per store) and the same alerts; every
//! subscriber records what it received into one [`Recorder`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::{stream, SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::WebSocketStream;

use crate::alerts::{seen, Planned};
use crate::deliveries::Recorder;
use crate::floor;
use crate::p4p::{Members, P4p};
use crate::places::{self, Site, LARGEST_STORE_RADIUS_KM};

/// Connections opened at once while subscribers join.
const CONNECT_CONCURRENCY: usize = 200;
/// Source addresses to spread client connections over: each has its own
/// ~28,000 ephemeral ports on loopback.
const SOURCE_ADDRESSES: u32 = 32;

pub type Socket = WebSocketStream<TcpStream>;

/// The loopback source address of the `n`th client connection.
pub fn source_address(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        1,
        1 + (n as u32 % SOURCE_ADDRESSES) as u8,
    ))
}

/// Opens a WebSocket to `url` from `source`, with a bearer token if given.
pub async fn connect_ws(url: &str, token: Option<&str>, source: IpAddr) -> Result<Socket> {
    let mut request = url.into_client_request()?;
    if let Some(token) = token {
        request.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    let host = request.uri().host().context("url without host")?;
    let port = request.uri().port_u16().context("url without port")?;
    let address: SocketAddr = format!("{host}:{port}").parse()?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let tcp = socket.connect(address).await?;
    tcp.set_nodelay(true)?;
    let (socket, _) =
        tokio_tungstenite::client_async_with_config(request, tcp, Some(floor::socket_config()))
            .await
            .with_context(|| format!("WebSocket to {url}"))?;
    Ok(socket)
}

/// Waits for the first text frame (hello) of a fresh stream.
pub async fn hello(socket: &mut Socket) -> Result<String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Ok(text.as_str().to_owned()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(error))) => return Err(error.into()),
            Ok(None) => bail!("stream ended before hello"),
            Err(_) => bail!("no hello within 60 s"),
        }
    }
}

/// Where a p4p subscriber resumes from when the server closes its stream
/// (4008, a reader too slow for its queue): docs/API.md's recovery, as every
/// real client does it.
struct Resume {
    url: String,
    token: Option<String>,
    seq: i64,
}

/// Reads a subscriber's frames until the connection ends, recording alerts;
/// with `resume`, reconnects with `since` when the server closes the stream.
async fn read_frames(
    mut socket: Socket,
    store: u32,
    recorder: Arc<Recorder>,
    mut resume: Option<Resume>,
) {
    loop {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Text(text)) => {
                    recorder.raw_frames.fetch_add(1, Ordering::Relaxed);
                    if let Some(seen) = seen(text.as_str()) {
                        recorder.received(seen.number, store);
                        if let (Some(resume), Some(seq)) = (resume.as_mut(), seen.seq) {
                            resume.seq = seq;
                        }
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        recorder.closed.fetch_add(1, Ordering::Relaxed);
        let Some(at) = resume.as_ref() else { return };
        let url = format!("{}?since={}", at.url, at.seq);
        let Ok(mut again) =
            connect_ws(&url, at.token.as_deref(), source_address(store as usize)).await
        else {
            return;
        };
        if hello(&mut again).await.is_err() {
            return;
        }
        recorder.reconnects.fetch_add(1, Ordering::Relaxed);
        socket = again;
    }
}

/// The `head` of a p4p hello frame.
pub fn hello_head(text: &str) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(text).ok()?["head"].as_i64()
}

/// Subscribers of one system; dropping this closes them all.
pub struct Subscribers {
    pub tasks: JoinSet<()>,
}

impl Subscribers {
    pub async fn close(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One p4p stream per store `0..count`, each past its hello.
pub async fn p4p_subscribers(
    server: &P4p,
    members: &Members,
    count: usize,
    recorder: &Arc<Recorder>,
) -> Result<Subscribers> {
    let url = server.stream_url(None);
    ws_subscribers(count, recorder, true, |i| {
        (url.clone(), Some(members[i].token.clone()))
    })
    .await
}

/// One floor subscriber per store `0..count`.
pub async fn floor_subscribers(
    port: u16,
    count: usize,
    recorder: &Arc<Recorder>,
) -> Result<Subscribers> {
    ws_subscribers(count, recorder, false, |i| {
        (format!("ws://127.0.0.1:{port}/sub/{i}"), None)
    })
    .await
}

/// WebSocket subscribers `0..count`, each to the url (and with the token)
/// `target` gives it, each past its first frame; `resumable` ones resume
/// from the hello's head (p4p's streams; the floor keeps no history).
async fn ws_subscribers(
    count: usize,
    recorder: &Arc<Recorder>,
    resumable: bool,
    target: impl Fn(usize) -> (String, Option<String>),
) -> Result<Subscribers> {
    let mut tasks = JoinSet::new();
    let mut opened = stream::iter(0..count)
        .map(|i| {
            let (url, token) = target(i);
            async move {
                let mut socket = connect_ws(&url, token.as_deref(), source_address(i)).await?;
                let head = hello_head(&hello(&mut socket).await?);
                let resume = match (resumable, head) {
                    (true, Some(seq)) => Some(Resume { url, token, seq }),
                    _ => None,
                };
                Ok::<_, anyhow::Error>((i, socket, resume))
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some(opened) = opened.next().await {
        let (i, socket, resume) = opened?;
        tasks.spawn(read_frames(socket, i as u32, recorder.clone(), resume));
    }
    Ok(Subscribers { tasks })
}

/// One NATS connection per store `0..count`, subscribed to its own cell;
/// it keeps what the rule owes it (the cell is coarser than the rule).
pub async fn nats_subscribers(
    urls: &[String],
    sites: &[Site],
    count: usize,
    recorder: &Arc<Recorder>,
) -> Result<Subscribers> {
    let mut tasks = JoinSet::new();
    let mut opened = stream::iter(0..count)
        .map(|i| async move {
            let client = nats_connect(&urls[i % urls.len()]).await?;
            let subscriber = client
                .subscribe(places::cell_subject(places::cell_of(sites[i])))
                .await
                .context("NATS subscribe")?;
            client.flush().await.context("NATS flush")?;
            Ok::<_, anyhow::Error>((i, client, subscriber))
        })
        .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some(opened) = opened.next().await {
        let (i, client, mut subscriber) = opened?;
        let recorder = recorder.clone();
        let me = sites[i];
        tasks.spawn(async move {
            let _client = client;
            while let Some(message) = subscriber.next().await {
                recorder.raw_frames.fetch_add(1, Ordering::Relaxed);
                let Ok(text) = std::str::from_utf8(&message.payload) else {
                    continue;
                };
                let Some(seen) = seen(text) else { continue };
                let owed = seen.author == Some(i as i64)
                    || match (seen.at, seen.radius_km) {
                        (Some(at), Some(radius)) => {
                            places::receives(me, places::store_radius_km(i), at, radius)
                        }
                        _ => false,
                    };
                if owed {
                    recorder.received(seen.number, i as u32);
                }
            }
            recorder.closed.fetch_add(1, Ordering::Relaxed);
        });
    }
    Ok(Subscribers { tasks })
}

/// Connects to NATS, trying again a few times: with tens of thousands of
/// connections opening at once, a handshake may take longer than the
/// client's default 5 s.
async fn nats_connect(url: &str) -> Result<async_nats::Client> {
    let mut tries = 0;
    loop {
        let options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(30));
        match tokio::time::timeout(Duration::from_secs(60), options.connect(url)).await {
            Ok(Ok(client)) => return Ok(client),
            Ok(Err(error)) if tries < 3 => eprintln!("NATS connect: {error:?}; trying again"),
            Ok(Err(error)) => return Err(anyhow::anyhow!("NATS connect: {error:?}")),
            Err(_) => bail!("NATS connect: nothing within 60 s"),
        }
        tries += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends one alert into one of the systems.
#[derive(Clone)]
pub enum Publisher {
    /// `POST /v1/alerts` with the author's token.
    P4p { server: Arc<P4p>, members: Members },
    /// The recipients and the frame, over one WebSocket.
    Floor { queue: mpsc::UnboundedSender<Bytes> },
    /// The frame, to every cell the alert's reach touches.
    Nats { client: async_nats::Client },
}

impl Publisher {
    pub async fn floor(port: u16) -> Result<(Publisher, tokio::task::JoinHandle<()>)> {
        let mut socket = connect_ws(
            &format!("ws://127.0.0.1:{port}/publish"),
            None,
            source_address(0),
        )
        .await?;
        let (queue, mut messages) = mpsc::unbounded_channel::<Bytes>();
        let writer = tokio::spawn(async move {
            while let Some(bytes) = messages.recv().await {
                if socket.send(Message::Binary(bytes)).await.is_err() {
                    break;
                }
            }
        });
        Ok((Publisher::Floor { queue }, writer))
    }

    pub async fn nats(url: &str) -> Result<Publisher> {
        Ok(Publisher::Nats {
            client: nats_connect(url).await?,
        })
    }

    /// Publishes `alert`; `recipients` are its exact recipients (the floor
    /// has no geography of its own).
    pub async fn publish(&self, alert: &Planned, recipients: &[u32]) -> Result<()> {
        match self {
            Publisher::P4p { server, members } => {
                let token = &members[alert.author].token;
                server
                    .send(Some(token), "/v1/alerts", &alert.request(), 201)
                    .await?;
            }
            Publisher::Floor { queue } => {
                let message = floor::encode(recipients, &alert.frame(alert.author as i64));
                queue
                    .send(message)
                    .ok()
                    .context("the floor publisher has stopped")?;
            }
            Publisher::Nats { client } => {
                let frame = Bytes::from(alert.frame(alert.author as i64));
                let reach = alert.radius_km().max(LARGEST_STORE_RADIUS_KM);
                let cells = places::cells_reached(alert.at, reach);
                for cell in cells {
                    client
                        .publish(places::cell_subject(cell), frame.clone())
                        .await?;
                }
            }
        }
        Ok(())
    }
}
