//! A TCP proxy between a test server and its database that can be cut, for
//! database outages without touching the machine's real PostgreSQL.
//!
//! Cut, it looks to its clients as a stopped PostgreSQL does: new
//! connections are refused (nothing listens on the port) and open ones are
//! severed. Restored, it listens on the same port again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A proxy from `127.0.0.1:port` to a target address, on its own runtime
/// so that it forwards whatever the test is doing.
pub struct Proxy {
    pub port: u16,
    target: SocketAddr,
    open: watch::Sender<bool>,
    /// Connections forwarded since the start.
    accepted: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Forwards a free local port to `target` (e.g. `127.0.0.1:5432`).
    pub fn to(target: &str) -> Proxy {
        let target: SocketAddr = target.parse().expect("target address");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("local address").port();
        let (open, _) = watch::channel(true);
        let accepted = Arc::new(AtomicUsize::new(0));
        let (state, count) = (open.clone(), accepted.clone());
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("tokio listener");
            serve(listener, target, state, count).await;
        });
        Proxy {
            port,
            target,
            open,
            accepted,
            runtime: Some(runtime),
        }
    }

    /// The database URL with the target's host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let target = self.target.to_string();
        assert!(url.contains(&target), "{url} does not name {target}");
        url.replacen(&target, &format!("127.0.0.1:{}", self.port), 1)
    }

    /// Refuses new connections and severs the open ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Listens and forwards again.
    pub fn restore(&self) {
        self.open.send_replace(true);
    }

    /// How many connections it has forwarded so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Accepts while open; while cut, nothing listens on the port.
async fn serve(
    first: TcpListener,
    target: SocketAddr,
    open: watch::Sender<bool>,
    accepted: Arc<AtomicUsize>,
) {
    let port = first.local_addr().expect("local address").port();
    let mut listener = Some(first);
    let mut state = open.subscribe();
    loop {
        if state.wait_for(|open| *open).await.is_err() {
            return;
        }
        let current = match listener.take() {
            Some(listener) => listener,
            None => rebind(port).await,
        };
        loop {
            tokio::select! {
                client = current.accept() => {
                    let Ok((client, _)) = client else { continue };
                    accepted.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(forward(client, target, open.subscribe()));
                }
                _ = state.wait_for(|open| !*open) => break,
            }
        }
        // `current` is dropped here: connections are refused until restored.
    }
}

/// Binds the proxy's port again (retrying while the old socket lingers).
async fn rebind(port: u16) -> TcpListener {
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Copies both ways until either side closes or the proxy is cut.
async fn forward(mut client: TcpStream, target: SocketAddr, mut state: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = state.wait_for(|open| !*open) => {}
    }
    // Both sockets close here, as a stopped database's would.
}
