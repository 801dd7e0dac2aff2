//! Replacing a small file atomically: readers see the old content or the new
//! one, never half of either, even if the process dies mid-write.
//!
//! The new content goes to a temporary file in the same directory (so that
//! the rename stays on one file system), created with owner-only permissions
//! from the start, flushed to disk, then renamed over the target.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes `contents` to `path` atomically, with mode 0600 on Unix, creating
/// the parent directories (mode 0700) if needed.
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dir(dir)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp_path = dir.join(temp_name);

    let result =
        write_new_private_file(&temp_path, contents).and_then(|()| fs::rename(&temp_path, path));
    if result.is_err() {
        // Best effort: a stale temporary file is harmless but untidy.
        let _ = fs::remove_file(&temp_path);
    }
    result
}

fn write_new_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    // A leftover from a crashed run of this same pid would make create_new fail.
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested").join("config.json");
        write(&path, b"first").expect("first write");
        write(&path, b"second").expect("second write");
        assert_eq!(fs::read(&path).expect("read back"), b"second");
        let entries = fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .count();
        assert_eq!(entries, 1, "only the target file remains");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.json");
        write(&path, b"{}").expect("write");
        let mode = fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
