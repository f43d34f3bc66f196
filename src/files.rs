//! Reading the files an operator names: the config file, certificates, private keys, the CA file. Each
//! is read only if it is a regular file, and only up to a size cap, so that a path naming `/dev/zero`,
//! `/dev/urandom`, a FIFO, a directory or a huge file makes `check` and a reload fail with a clear error
//! instead of eating memory or hanging.
//!
//! How: the file is opened with `O_NONBLOCK` (opening a FIFO for reading would otherwise wait for a
//! writer) and `O_NOCTTY`, then the opened handle is checked with `fstat`: what is read is what was
//! checked, with no window for the path to be swapped between a check and the open. The read itself
//! stops at `cap + 1` bytes, so a file that grows after the check is still refused. A `stat` of the
//! path comes first too, only so that a device is not even opened (opening some devices has effects);
//! the `fstat` is the check that counts.

use std::fs::{File, FileType, OpenOptions};
use std::io::Read;
use std::path::Path;

/// Largest PEM file read (a certificate chain, a private key, a CA bundle): 1 MiB. Mozilla's whole
/// root bundle is about 220 KB.
pub(crate) const PEM_CAP: u64 = 1024 * 1024;

/// Largest config file read: 4 MiB, room for thousands of distributions and Evidently declarations.
pub(crate) const CONFIG_CAP: u64 = 4 * 1024 * 1024;

/// Why a file was not read; the message names the path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("{path} is {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path} is {kind}, not a directory")]
    NotDirectory { path: String, kind: &'static str },
    #[error("{path} is larger than the {cap} bytes allowed")]
    TooLarge { path: String, cap: u64 },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
}

fn kind(t: FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_file() {
        "a regular file"
    } else {
        "of an unknown type"
    }
}

/// Opens `path` for reading without blocking and checks the opened handle is a regular file no larger
/// than `cap`. The handle is left in non-blocking mode, which changes nothing for a regular file.
pub(crate) fn open_regular(path: &Path, cap: u64) -> Result<File, FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    not_a_device(path)?;
    let file = open_checked(path, OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY))?;
    let len = file.metadata().map_err(|source| FileError::Read { path: path.display().to_string(), source })?.len();
    if len > cap {
        return Err(FileError::TooLarge { path: path.display().to_string(), cap });
    }
    Ok(file)
}

/// Opens (or creates) `path` for reading and writing, as a database file is: without blocking, and
/// only if the opened handle is a regular file. No size cap: the file is the store's own.
pub(crate) fn open_regular_rw(path: &Path) -> Result<File, FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    not_a_device(path)?;
    open_checked(
        path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY),
    )
}

/// Not the check that counts (see the module doc): it only keeps devices and FIFOs from being opened at
/// all, since opening some devices has effects.
fn not_a_device(path: &Path) -> Result<(), FileError> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            Err(FileError::NotRegular { path: path.display().to_string(), kind: kind(meta.file_type()) })
        }
        _ => Ok(()),
    }
}

/// Opens `path` with `options` (which must not block: `O_NONBLOCK`) and `fstat`s the handle: the check
/// that counts, on what will be read.
fn open_checked(path: &Path, options: &OpenOptions) -> Result<File, FileError> {
    let name = || path.display().to_string();
    let file = options.open(path).map_err(|source| FileError::Open { path: name(), source })?;
    let meta = file.metadata().map_err(|source| FileError::Read { path: name(), source })?;
    if !meta.is_file() {
        return Err(FileError::NotRegular { path: name(), kind: kind(meta.file_type()) });
    }
    Ok(file)
}

/// Why `path` cannot be the directory of a file named `name` opened by [`open_regular_rw`], as far as a
/// `stat` tells (for `check`, which opens nothing): `path` exists and is not a directory, or the file
/// exists and is not a regular file.
pub(crate) fn check_dir_for(path: &Path, name: &str) -> Result<(), FileError> {
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_dir()
    {
        return Err(FileError::NotDirectory { path: path.display().to_string(), kind: kind(meta.file_type()) });
    }
    let file = path.join(name);
    match std::fs::metadata(&file) {
        Ok(meta) if !meta.is_file() => {
            Err(FileError::NotRegular { path: file.display().to_string(), kind: kind(meta.file_type()) })
        }
        _ => Ok(()),
    }
}

/// The bytes of the regular file at `path`, if it holds at most `cap` of them.
pub fn read(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    read_capped(open_regular(path, cap)?, path, cap)
}

/// Reads `file` (opened from `path`) to its end, refusing it past `cap` bytes: reading stops at
/// `cap + 1`, so a file that grew since [`open_regular`] checked its size is refused too, not read whole.
fn read_capped(file: File, path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    let len = file.metadata().map(|m| m.len()).unwrap_or(0).min(cap);
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Read { path: path.display().to_string(), source })?;
    if bytes.len() as u64 > cap {
        return Err(FileError::TooLarge { path: path.display().to_string(), cap });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, Instant};

    fn message(r: Result<Vec<u8>, FileError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn a_regular_file_up_to_the_cap_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.pem");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read(&p, 10).unwrap(), b"0123456789");
        assert_eq!(read(&p, 100).unwrap(), b"0123456789");
        let e = message(read(&p, 9));
        assert_eq!(e, format!("{} is larger than the 9 bytes allowed", p.display()));
        std::fs::write(&p, b"").unwrap();
        assert_eq!(read(&p, 9).unwrap(), b"");
    }

    #[test]
    fn devices_directories_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (path, kind) in [("/dev/zero", "a character device"), ("/dev/urandom", "a character device")] {
            assert_eq!(message(read(Path::new(path), PEM_CAP)), format!("{path} is {kind}, not a regular file"));
        }
        let e = message(read(dir.path(), PEM_CAP));
        assert_eq!(e, format!("{} is a directory, not a regular file", dir.path().display()));
        let e = message(read(&dir.path().join("missing"), PEM_CAP));
        assert!(e.starts_with("cannot open ") && e.contains("No such file"), "{e}");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        // On a thread, so a regression fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(read(&path, PEM_CAP).map_err(|e| e.to_string())));
        let got = rx.recv_timeout(Duration::from_secs(10)).expect("reading a FIFO blocked");
        assert_eq!(got.unwrap_err(), format!("{} is a FIFO, not a regular file", fifo.display()));
    }

    #[test]
    fn the_check_on_the_opened_handle_refuses_what_the_path_check_would() {
        // `not_a_device` runs first and catches these by path; this is the check that still holds when
        // the path is swapped between the two (a race no test can time): the open does not block on a
        // FIFO, and the handle's type is what is refused.
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let (tx, rx) = std::sync::mpsc::channel();
        let paths = [fifo.clone(), "/dev/zero".into(), dir.path().to_path_buf()];
        std::thread::spawn(move || {
            let mut options = OpenOptions::new();
            options.read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
            let got: Vec<String> =
                paths.iter().map(|p| open_checked(p, &options).map(|_| ()).unwrap_err().to_string()).collect();
            tx.send(got)
        });
        let got = rx.recv_timeout(Duration::from_secs(10)).expect("opening a FIFO blocked");
        let d = dir.path().display();
        assert_eq!(
            got,
            [
                format!("{d}/fifo is a FIFO, not a regular file"),
                "/dev/zero is a character device, not a regular file".to_string(),
                format!("{d} is a directory, not a regular file"),
            ]
        );
    }

    #[test]
    fn the_store_file_is_opened_only_if_regular() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("edgesplit.redb");
        assert!(open_regular_rw(&db).is_ok(), "created");
        assert!(open_regular_rw(&db).is_ok(), "opened again");
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(open_regular_rw(&fifo).unwrap_err().to_string().ends_with("is a FIFO, not a regular file"));
        assert!(open_regular_rw(Path::new("/dev/null")).is_err());
        assert!(check_dir_for(dir.path(), "edgesplit.redb").is_ok());
        assert!(check_dir_for(&dir.path().join("new"), "edgesplit.redb").is_ok(), "made at start");
        let e = check_dir_for(dir.path(), "fifo").unwrap_err().to_string();
        assert_eq!(e, format!("{}/fifo is a FIFO, not a regular file", dir.path().display()));
        let e = check_dir_for(&db, "x").unwrap_err().to_string();
        assert_eq!(e, format!("{} is a regular file, not a directory", db.display()));
    }

    #[test]
    fn a_huge_sparse_file_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("huge.pem");
        let f = File::create(&p).unwrap();
        f.set_len(64 * 1024 * 1024 * 1024).unwrap();
        let started = Instant::now();
        let e = message(read(&p, PEM_CAP));
        assert_eq!(e, format!("{} is larger than the {PEM_CAP} bytes allowed", p.display()));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_file_that_grows_after_the_check_is_refused() {
        // The handle passed the size check, then the file grew past the cap before it was read.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("grows.pem");
        std::fs::write(&p, b"small").unwrap();
        let file = open_regular(&p, 16).unwrap();
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(&[b'x'; 100_000]).unwrap();
        let e = read_capped(file, &p, 16).unwrap_err().to_string();
        assert_eq!(e, format!("{} is larger than the 16 bytes allowed", p.display()));
    }
}
