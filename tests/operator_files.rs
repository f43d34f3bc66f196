//! The files an operator names (issue 14, item 7), against the real binary: a certificate, a key or the
//! config file itself that is `/dev/zero`, a FIFO, a directory or a huge sparse file makes `check` exit 2
//! with a positioned error, promptly, and makes a SIGHUP reload fail the same way while the running
//! config stays and later reloads still work. Before, `check` read `/dev/zero` until memory ran out and
//! waited forever on a FIFO; so did the reload, and the control loop's poll of the config file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::process::{BIN, Proc};
use support::*;

/// Far above what any of these takes; only there so that a regression fails instead of hanging.
const PROMPTLY: Duration = Duration::from_secs(20);

/// `edgesplit check --config path`, killed (and the test failed) past [`PROMPTLY`].
fn check(path: &Path) -> Output {
    let mut child = Command::new(BIN)
        .args(["check", "--config"])
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PROMPTLY;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("edgesplit check --config {} did not return within {PROMPTLY:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success(), "mkfifo {}", path.display());
}

/// A file of `len` bytes that takes no room (sparse).
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// The 1-based line of `needle`'s first occurrence in `text`, and the column of the value after `= `.
fn value_at(text: &str, needle: &str) -> (usize, usize) {
    let (i, line) = text.lines().enumerate().find(|(_, l)| l.contains(needle)).unwrap();
    (i + 1, line.find("= ").unwrap() + 3)
}

struct Files {
    dir: tempfile::TempDir,
    fifo: PathBuf,
    huge: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.pem");
    mkfifo(&fifo);
    let huge = dir.path().join("huge.pem");
    sparse(&huge, 64 << 30);
    let (cert, key, _) = cert_files(dir.path(), "good", &["a.test"]);
    Files { dir, fifo, huge, cert, key }
}

#[test]
fn check_refuses_certificates_keys_and_ca_files_that_are_not_regular_files() {
    let f = files();
    let dir = f.dir.path().display().to_string();
    let pair = |cert: &str, key: &str| format!("[[listener.tls]]\ncert = \"{cert}\"\nkey = \"{key}\"\n");
    let (cert, key) = (f.cert.display().to_string(), f.key.display().to_string());
    let text = simple_config("http://127.0.0.1:1", None, "").replace(
        "listen = \"127.0.0.1:0\"\n\n[admin]",
        &format!(
            "listen = \"127.0.0.1:0\"\n{}{}{}{}{}\n[admin]",
            pair("/dev/zero", &key),
            pair(&f.fifo.display().to_string(), &key),
            pair(&dir, &key),
            pair(&f.huge.display().to_string(), &key),
            pair(&cert, "/dev/urandom"),
        ),
    ) + &format!("\n[upstream]\nca_file = \"{}\"\n", f.fifo.display());
    let path = f.dir.path().join("edgesplit.toml");
    std::fs::write(&path, &text).unwrap();

    let out = check(&path);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let name = path.display();
    let at = |needle: &str| {
        let (line, col) = value_at(&text, needle);
        format!("{name}:{line}:{col}")
    };
    let fifo = f.fifo.display();
    let huge = f.huge.display();
    let expected = [
        format!("{}: cannot read certificate: /dev/zero is a character device, not a regular file", at("/dev/zero")),
        format!("{}: cannot read certificate: {fifo} is a FIFO, not a regular file", at(&format!("cert = \"{fifo}"))),
        format!("{}: cannot read certificate: {dir} is a directory, not a regular file", at(&format!("\"{dir}\""))),
        format!("{}: cannot read certificate: {huge} is larger than the 1048576 bytes allowed", at("huge.pem")),
        format!("{}: cannot read private key: /dev/urandom is a character device, not a regular file", at("urandom")),
        format!("{}: cannot read CA file: {fifo} is a FIFO, not a regular file", at("ca_file")),
    ];
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected, "{stderr}");
}

#[test]
fn check_refuses_a_config_file_that_is_not_a_regular_file() {
    let f = files();
    let fifo = f.dir.path().join("edgesplit.toml");
    mkfifo(&fifo);
    let big = f.dir.path().join("big.toml");
    sparse(&big, 64 << 30);
    for (path, problem) in [
        (fifo.clone(), "is a FIFO, not a regular file".to_string()),
        ("/dev/zero".into(), "is a character device, not a regular file".to_string()),
        (f.dir.path().to_path_buf(), "is a directory, not a regular file".to_string()),
        (big.clone(), "is larger than the 4194304 bytes allowed".to_string()),
    ] {
        let out = check(&path);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let name = path.display();
        assert_eq!(stderr.trim_end(), format!("{name}:1:1: cannot read config file: {name} {problem}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_refuses_them_too_and_the_control_loop_keeps_working() {
    let f = files();
    let origin = Origin::echo("a").await;
    let path = f.dir.path().join("edgesplit.toml");
    // Polled every 100 ms too: before, the poll itself hung on a FIFO in the config file's place.
    let config = |extra: &str| {
        simple_config(&origin.url(), None, &format!("[timeouts]\nconfig_poll = \"100ms\"\n{extra}"))
            .replace("level = \"warn\"", "level = \"info\"")
    };
    std::fs::write(&path, config("")).unwrap();
    let mut proc = Proc::start(&path);
    let url = format!("http://{}/", proc.addr("http").await);
    assert_eq!(get(&url).await.0, 200);

    // A new HTTPS listener whose certificate is a FIFO: rejected at the key, the running config stays.
    let tls = format!(
        "[[listener]]\nname = \"https\"\nlisten = \"127.0.0.1:0\"\n[[listener.tls]]\ncert = \"{}\"\nkey = \"{}\"\n",
        f.fifo.display(),
        f.key.display()
    );
    let text = config(&tls);
    std::fs::write(&path, &text).unwrap();
    proc.signal("-HUP");
    let line = proc.wait_for(&["Config rejected", "cannot read certificate"]).await;
    let (l, c) = value_at(&text, "cert = ");
    assert!(line.contains(&format!("{}:{l}:{c}: cannot read certificate: ", path.display())), "{line}");
    assert!(line.contains("is a FIFO, not a regular file"), "{line}");
    assert_eq!(get(&url).await.0, 200);

    // The config file itself replaced by a FIFO (renamed over it, as an editor saves).
    let swap = f.dir.path().join("swap");
    mkfifo(&swap);
    std::fs::rename(&swap, &path).unwrap();
    proc.signal("-HUP");
    let line = proc.wait_for(&["Config rejected", "cannot read config file"]).await;
    assert!(line.contains(&format!("{}:1:1: cannot read config file: ", path.display())), "{line}");
    assert!(line.contains("is a FIFO, not a regular file"), "{line}");
    assert_eq!(get(&url).await.0, 200);

    // The control loop still works: a good file with the HTTPS listener (a real certificate) is taken.
    let good = config(&tls.replace(&f.fifo.display().to_string(), &f.cert.display().to_string()));
    std::fs::write(&swap, good).unwrap();
    std::fs::rename(&swap, &path).unwrap();
    proc.signal("-HUP");
    proc.addr("https").await;
    proc.wait_for(&["Config reloaded"]).await;
    assert_eq!(get(&url).await.0, 200);
}
