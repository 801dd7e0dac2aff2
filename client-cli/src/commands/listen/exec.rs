//! `p4p listen --exec CMD`: hand each event to a local program (a siren, a
//! message to the staff's phones), one at a time, in `seq` order.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How long one `--exec` run may take before it is killed (and counts as
/// failed): a hung siren script must not hold back the alerts after it.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// The wait before a failed run is tried again; it doubles up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// Runs `sh -c CMD` with the frame's JSON on standard input and
/// `P4P_FRAME_TYPE` set, and waits for it, at most [`EXEC_TIMEOUT`]. A
/// failure says why, for the listener to retry or skip.
pub async fn run(
    command: &str,
    frame_type: &str,
    frame_json: &str,
    seq: i64,
) -> Result<(), String> {
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("P4P_FRAME_TYPE", frame_type)
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child =
        spawned.map_err(|error| format!("cannot run --exec command for seq {seq}: {error}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input closes the pipe early; fine.
        let _ = stdin.write_all(frame_json.as_bytes()).await;
        let _ = stdin.write_all(b"\n").await;
    }
    match tokio::time::timeout(EXEC_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("--exec command failed for seq {seq} ({status})")),
        Ok(Err(error)) => Err(format!("--exec command for seq {seq}: {error}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "--exec command for seq {seq} ran over {} s and was stopped",
                EXEC_TIMEOUT.as_secs()
            ))
        }
    }
}
