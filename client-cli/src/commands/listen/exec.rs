//! `p4p listen --exec CMD`: hand each event to a local program (a siren, a
//! message to the staff's phones), one at a time, in `seq` order.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs `sh -c CMD` with the frame's JSON on standard input and
/// `P4P_FRAME_TYPE` set, and waits for it. A failure is reported on stderr
/// and does not stop the listener: one broken siren must not hide the next
/// alert.
pub async fn run(command: &str, frame_type: &str, frame_json: &str, seq: i64) {
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("P4P_FRAME_TYPE", frame_type)
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            eprintln!("warning: cannot run --exec command for seq {seq}: {error}");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input closes the pipe early; fine.
        let _ = stdin.write_all(frame_json.as_bytes()).await;
        let _ = stdin.write_all(b"\n").await;
    }
    match child.wait().await {
        Ok(status) if status.success() => {}
        Ok(status) => {
            eprintln!("warning: --exec command failed for seq {seq} ({status}); going on")
        }
        Err(error) => eprintln!("warning: --exec command for seq {seq}: {error}; going on"),
    }
}
