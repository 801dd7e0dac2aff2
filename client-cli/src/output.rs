//! Writing results to standard output.
//!
//! Every write is flushed at once, because scripts and tests read the CLI
//! through a pipe, and a closed pipe is an error to report, never a panic
//! (as `println!` would do). JSON goes out with every character a terminal
//! would act on as a JSON escape (`render::escape_json`): the same JSON.

use std::io::{self, Write};

use crate::render;

#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct OutputError(#[from] io::Error);

/// Prints `text` followed by a newline, flushed.
pub fn line(text: &str) -> Result<(), OutputError> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(())
}

/// Prints a JSON value for scripts, pretty-printed.
pub fn json(value: &serde_json::Value) -> Result<(), OutputError> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    json_line(&text)
}

/// Prints JSON text as it came from the server (a stream frame) on one
/// line: a raw LF or CR can only be whitespace between tokens (or make it
/// no JSON at all), so it becomes a space, and one frame stays one line.
pub fn json_line(text: &str) -> Result<(), OutputError> {
    let one_line = text.replace(['\n', '\r'], " ");
    line(&render::escape_json(&one_line))
}
