//! The floor: the least a WebSocket broadcaster can do. No database, no
//! geography, no authentication: subscribers connect to `/sub/{n}`, the
//! publisher connects to `/publish` and sends, per alert, the recipients'
//! numbers and the frame; the floor writes the frame to each of them.
//! Its figures are what p4p's stack cannot beat on the same machine.
//!
//! It runs as its own process (`p4p-bench floor`), so that its memory and
//! CPU are measured like the server's.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

/// Frames a subscriber may have queued, as p4p's default `--stream-queue`.
const QUEUE: usize = 1024;

type Registry = Arc<RwLock<HashMap<u32, mpsc::Sender<Message>>>>;

pub async fn serve(bind: &str) -> Result<()> {
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot bind {bind}"))?;
    println!("floor listening on {}", listener.local_addr()?);
    let registry: Registry = Arc::default();
    loop {
        let (tcp, _) = listener.accept().await?;
        let registry = registry.clone();
        tokio::spawn(async move {
            let _ = connection(tcp, registry).await;
        });
    }
}

/// The same small buffers on both ends of every benchmark socket.
pub fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

// The handshake callback's Result type is tungstenite's, not ours.
#[allow(clippy::result_large_err)]
async fn connection(tcp: TcpStream, registry: Registry) -> Result<()> {
    tcp.set_nodelay(true)?;
    let mut path = String::new();
    let socket = tokio_tungstenite::accept_hdr_async_with_config(
        tcp,
        |request: &Request, response: Response| {
            path = request.uri().path().to_owned();
            Ok(response)
        },
        Some(socket_config()),
    )
    .await?;
    if path == "/publish" {
        return publisher(socket, registry).await;
    }
    let number: u32 = path
        .strip_prefix("/sub/")
        .and_then(|n| n.parse().ok())
        .context("path is neither /publish nor /sub/{n}")?;
    let (mut sink, mut source) = socket.split();
    let (queue, mut frames) = mpsc::channel::<Message>(QUEUE);
    if let Ok(mut registry) = registry.write() {
        registry.insert(number, queue);
    }
    sink.send(Message::Text(Utf8Bytes::from_static(r#"{"type":"hello"}"#)))
        .await?;
    let writer = async {
        while let Some(frame) = frames.recv().await {
            sink.feed(frame).await?;
            while let Ok(more) = frames.try_recv() {
                sink.feed(more).await?;
            }
            sink.flush().await?;
        }
        Ok::<_, anyhow::Error>(())
    };
    let reader = async { while let Some(Ok(_)) = source.next().await {} };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
    if let Ok(mut registry) = registry.write() {
        registry.remove(&number);
    }
    Ok(())
}

async fn publisher(
    mut socket: tokio_tungstenite::WebSocketStream<TcpStream>,
    registry: Registry,
) -> Result<()> {
    while let Some(message) = socket.next().await {
        let Message::Binary(bytes) = message? else {
            continue;
        };
        let Some((recipients, frame)) = decode(&bytes) else {
            continue;
        };
        let frame = Message::Text(frame);
        let Ok(registry) = registry.read() else {
            continue;
        };
        for number in recipients {
            if let Some(queue) = registry.get(&number) {
                let _ = queue.try_send(frame.clone());
            }
        }
    }
    Ok(())
}

/// A publish message: recipient count (u32 LE), recipients (u32 LE each), frame.
pub fn encode(recipients: &[u32], frame: &str) -> Bytes {
    let mut out = Vec::with_capacity(4 + recipients.len() * 4 + frame.len());
    out.extend_from_slice(&(recipients.len() as u32).to_le_bytes());
    for r in recipients {
        out.extend_from_slice(&r.to_le_bytes());
    }
    out.extend_from_slice(frame.as_bytes());
    Bytes::from(out)
}

fn decode(bytes: &Bytes) -> Option<(Vec<u32>, Utf8Bytes)> {
    let word = |at: usize| -> Option<u32> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = word(0)? as usize;
    let recipients = (0..count)
        .map(|i| word(4 + 4 * i))
        .collect::<Option<Vec<_>>>()?;
    let frame = bytes.slice(4 + 4 * count..);
    let frame = Utf8Bytes::try_from(frame).ok()?;
    Some((recipients, frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_message_round_trips() {
        let bytes = encode(&[3, 1, 4_000_000], r#"{"type":"alert"}"#);
        let (recipients, frame) = decode(&bytes).expect("decodes");
        assert_eq!(recipients, vec![3, 1, 4_000_000]);
        assert_eq!(frame.as_str(), r#"{"type":"alert"}"#);
        assert!(decode(&Bytes::from_static(&[9, 0, 0, 0, 1])).is_none());
    }
}
