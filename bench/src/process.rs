//! The processes under measurement (p4p-server, the floor broadcaster,
//! nats-server) and what the kernel says they use.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

/// A child process, killed when dropped.
pub struct Measured {
    pub name: &'static str,
    pub pid: u32,
    child: Child,
}

/// Memory and CPU of one process, read from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub rss_kib: u64,
    pub cpu_seconds: f64,
}

impl Measured {
    pub fn spawn(name: &'static str, mut command: Command, log: &Path) -> Result<Measured> {
        let out = std::fs::File::create(log).with_context(|| format!("{}", log.display()))?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id().context("child has no pid")?;
        Ok(Measured { name, pid, child })
    }

    pub fn usage(&self) -> Usage {
        usage_of(self.pid).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// Fails if the process has already exited (it crashed or refused its arguments).
    pub fn still_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited: {status}", self.name);
        }
        Ok(())
    }
}

/// Resident memory and CPU time (user + system) of a process.
pub fn usage_of(pid: u32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 here;
    // Linux reports them in USER_HZ, which is 100 on every Linux ABI.
    let cpu_seconds = (ticks(11) + ticks(12)) as f64 / 100.0;
    Ok(Usage {
        rss_kib,
        cpu_seconds,
    })
}

/// A port nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A port free on every address and below the ephemeral range (32768 and
/// up on Linux), where thousands of client connections cannot be holding it.
pub fn free_port_on_all_addresses() -> Result<u16> {
    (24_000..32_000)
        .find(|port| std::net::TcpListener::bind(("0.0.0.0", *port)).is_ok())
        .context("no free port between 24000 and 32000")
}

/// Waits until something accepts TCP connections on `port`.
pub async fn wait_for_port(port: u16, process: &mut Measured) -> Result<()> {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        process.still_running()?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{} did not listen on port {port} within 15 s", process.name)
}

/// A binary built beside this one (`cargo build --release --workspace`
/// puts `p4p-server` next to `p4p-bench`).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found; build the workspace first: cargo build --release --workspace",
            path.display()
        );
    }
    Ok(path)
}

/// Raises this process's open-file limit as far as the kernel allows; child
/// processes inherit it. Returns the new soft limit.
pub fn raise_file_limit() -> u64 {
    let wanted = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    if rlimit::setrlimit(rlimit::Resource::NOFILE, wanted, wanted).is_err() {
        // Not allowed to raise the hard limit: take the soft one up to it.
        let _ = rlimit::increase_nofile_limit(wanted);
    }
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
}
