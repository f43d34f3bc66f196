//! A real PostgreSQL for the tests of the shared store (issue 16): a throwaway cluster from Debian's
//! `postgresql` package, made by `initdb` in a fresh temporary folder and served by `pg_ctl` on
//! 127.0.0.1 on a free port, with its Unix socket and its log in that folder too.
//!
//! The server refuses to run as root, and this machine and CI run everything as root: then every server
//! command (`initdb`, `pg_ctl`, and so `postgres`) runs as the package's `postgres` user through
//! `runuser`, in a folder chowned to it. Otherwise they run as the current user. `psql` is only a client
//! and runs as whoever we are.
//!
//! The binaries come from `/usr/lib/postgresql/<version>/bin`, the highest version present, never from
//! `PATH` (`/usr/bin/psql` is Debian's version-picking wrapper; other `pg_ctl`s on `PATH` may be
//! anything). Without them `start` panics saying to install the package: these tests never skip.
//!
//! Every wait is bounded: each command runs under a deadline and is killed when it passes, and `pg_ctl`
//! is given its own timeout inside that.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where Debian's packages put each major version's binaries.
const PG_LIB: &str = "/usr/lib/postgresql";
/// The user Debian's package creates, which the server runs as when we are root.
const SERVER_USER: &str = "postgres";
/// The database superuser `initdb` makes (whatever the OS user), and the one `url` names.
const SUPERUSER: &str = "postgres";
/// The database `start` creates, and the one `url` and `psql` use.
const DATABASE: &str = "edgesplit";
/// How long the server gets to become ready, and to shut down.
const PG_CTL_WAIT: Duration = Duration::from_secs(30);
/// Start attempts, each on a new free port, when the port was taken between picking it and binding it.
const PORT_ATTEMPTS: usize = 5;

/// A running (or stopped) throwaway cluster. Dropping it shuts the server down (immediate mode) and
/// removes its folder.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `Some(user)` when we are root: server commands run as that user.
    run_as: Option<&'static str>,
    port: u16,
    running: AtomicBool,
}

impl Postgres {
    /// `initdb` into a fresh temporary folder, start the server on 127.0.0.1 on a free port, wait until it
    /// accepts connections (at most 30 s), and make the database `edgesplit` (`initdb`'s `postgres`,
    /// renamed: the cluster holds `edgesplit`, `template0` and `template1`; a test wanting more databases
    /// creates them while connected to `edgesplit`).
    pub fn start() -> Postgres {
        let bin = binaries();
        let (dir, run_as) = folder();
        let mut pg = Postgres { dir, bin, run_as, port: 0, running: AtomicBool::new(false) };
        std::fs::create_dir(pg.socket_dir()).unwrap_or_else(|e| panic!("creating the socket folder: {e}"));
        if let Some(user) = run_as {
            let (uid, gid) = user_ids(user);
            for path in [pg.dir.path(), &pg.socket_dir()] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {} to {user}: {e}", path.display()));
            }
        }
        pg.initdb();
        for attempt in 1..=PORT_ATTEMPTS {
            pg.port = free_port();
            pg.configure(&format!("port = {}\n", pg.port));
            let log_before = pg.log().len();
            match pg.pg_ctl_start() {
                Ok(()) => break,
                // Someone took the port after we let it go: try another.
                Err(_) if attempt < PORT_ATTEMPTS && pg.log().get(log_before..).is_some_and(port_taken) => {}
                Err(e) => panic!("PostgreSQL did not start on port {}: {e}\n{}", pg.port, pg.log_tail()),
            }
        }
        // The database `initdb` made, renamed: a `create database` would copy a template's 300 files, whose
        // fsync at the next checkpoint and removal at drop cost about 1.5 s per cluster.
        pg.psql_in("template1", &format!("alter database postgres rename to {DATABASE}"));
        pg
    }

    /// `postgres://postgres@127.0.0.1:PORT/edgesplit`: trust authentication, on loopback only.
    pub fn url(&self) -> String {
        self.url_for(DATABASE)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary folder holding the cluster (`data/`), its socket (`sock/`) and its log
    /// (`postgres.log`); gone once the `Postgres` is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- last lines of {} ---\n{}",
            self.log_path().display(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// Fast shutdown (sessions ended, transactions rolled back, a checkpoint written), waiting until the
    /// server is gone; for outage tests. Does nothing when it is already stopped.
    pub fn stop(&self) {
        if !self.running.load(SeqCst) {
            return;
        }
        let mut cmd = self.server_cmd("pg_ctl");
        cmd.args(["stop", "-s", "-m", "fast", "-w", "-t"])
            .arg(PG_CTL_WAIT.as_secs().to_string())
            .arg("-D")
            .arg(self.data_dir());
        if let Err(e) = run(cmd, None, PG_CTL_WAIT + Duration::from_secs(10)) {
            panic!("PostgreSQL did not stop: {e}\n{}", self.log_tail());
        }
        self.running.store(false, SeqCst);
    }

    /// Starts the server again on the same port and data folder (stopping it first if it runs), and waits
    /// until it accepts connections (at most 30 s).
    pub fn restart(&self) {
        self.stop();
        if let Err(e) = self.pg_ctl_start() {
            panic!("PostgreSQL did not restart on port {}: {e}\n{}", self.port, self.log_tail());
        }
    }

    /// Runs `sql` (any number of statements, each committed on its own unless it says otherwise) with
    /// `psql` against the database `edgesplit`, stopping at the first error, and returns the output:
    /// unaligned, tuples only (`select 1` gives `"1\n"`). Panics with psql's stderr on failure.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in(DATABASE, sql)
    }

    fn psql_in(&self, database: &str, sql: &str) -> String {
        let mut cmd = Command::new(self.bin.join("psql"));
        clean_env(&mut cmd, self.dir.path());
        cmd.env("PGCONNECT_TIMEOUT", "10").env("PGCLIENTENCODING", "UTF8");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-", "-d"]).arg(self.url_for(database));
        run(cmd, Some(sql.to_owned()), PG_CTL_WAIT)
            .unwrap_or_else(|e| panic!("psql on port {} failed running\n{sql}\n{e}\n{}", self.port, self.log_tail()))
    }

    fn url_for(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn log(&self) -> String {
        std::fs::read(self.log_path()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// `initdb` without fsyncing the new files (the cluster itself runs with fsync on), UTF-8 in the C
    /// locale (no dependence on the machine's locales), trust authentication, then our settings.
    fn initdb(&self) {
        let mut cmd = self.server_cmd("initdb");
        cmd.args(["--no-sync", "--auth=trust", "--encoding=UTF8", "--locale=C", "-U", SUPERUSER, "-D"])
            .arg(self.data_dir());
        if let Err(e) = run(cmd, None, Duration::from_secs(60)) {
            panic!("initdb failed: {e}");
        }
        let socket_dir = self.socket_dir().display().to_string().replace('\'', "''");
        self.configure(&format!(
            "\n# edgesplit test harness (tests/support/postgres.rs)\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             fsync = on\n\
             synchronous_commit = on\n\
             full_page_writes = on\n\
             shared_buffers = 16MB\n\
             max_connections = 100\n\
             logging_collector = off\n\
             log_line_prefix = '%m [%p] '\n"
        ));
    }

    /// Appends `lines` to `postgresql.conf` (a later setting overrides an earlier one).
    fn configure(&self, lines: &str) {
        let path = self.data_dir().join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        file.write_all(lines.as_bytes()).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// `pg_ctl start`, waiting until the server accepts connections.
    fn pg_ctl_start(&self) -> Result<(), String> {
        let mut cmd = self.server_cmd("pg_ctl");
        cmd.args(["start", "-s", "-w", "-t"]).arg(PG_CTL_WAIT.as_secs().to_string());
        cmd.arg("-D").arg(self.data_dir()).arg("-l").arg(self.log_path());
        // Marked first: if the wait times out, the server may still come up, and Drop must stop it.
        self.running.store(true, SeqCst);
        let result = run(cmd, None, PG_CTL_WAIT + Duration::from_secs(10)).map(drop);
        if result.is_err() && !self.data_dir().join("postmaster.pid").exists() {
            self.running.store(false, SeqCst);
        }
        result
    }

    /// A command running `tool` from the server binaries, as the server user when we are root.
    fn server_cmd(&self, tool: &str) -> Command {
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(self.bin.join(tool));
                cmd
            }
            None => Command::new(self.bin.join(tool)),
        };
        clean_env(&mut cmd, self.dir.path());
        cmd
    }
}

impl Drop for Postgres {
    /// Immediate shutdown (at most about 15 s), then SIGKILL to the postmaster if it is somehow still
    /// there; the folder goes with the `TempDir`. Never panics.
    fn drop(&mut self) {
        let pid_file = self.data_dir().join("postmaster.pid");
        if !pid_file.exists() {
            return;
        }
        let mut cmd = self.server_cmd("pg_ctl");
        cmd.args(["stop", "-s", "-m", "immediate", "-w", "-t", "10", "-D"]).arg(self.data_dir());
        let _ = run(cmd, None, Duration::from_secs(15));
        let pid = std::fs::read_to_string(&pid_file).ok().and_then(|t| t.lines().next()?.trim().parse::<u32>().ok());
        // Only a process that is a postgres (the file could be stale and the pid reused).
        if let Some(pid) = pid
            && std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("postgres"))
        {
            let mut kill = Command::new("kill");
            kill.args(["-KILL", &pid.to_string()]);
            let _ = run(kill, None, Duration::from_secs(5));
        }
    }
}

/// The highest version's binary folder under `/usr/lib/postgresql`, holding `initdb`, `pg_ctl` and `psql`.
fn binaries() -> PathBuf {
    let version = |name: &str| name.split('.').map(|p| p.parse::<u32>().ok()).collect::<Option<Vec<u32>>>();
    let found = std::fs::read_dir(PG_LIB)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| Some((version(&name)?, Path::new(PG_LIB).join(&name).join("bin"))))
        .filter(|(_, bin)| ["initdb", "pg_ctl", "postgres", "psql"].iter().all(|t| bin.join(t).is_file()))
        .max_by(|a, b| a.0.cmp(&b.0));
    match found {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) in {PG_LIB}/<version>/bin: install \
             Debian's `postgresql` package (`apt-get install postgresql`; .ci/run installs it). The PostgreSQL \
             tests never skip."
        ),
    }
}

/// A fresh temporary folder, and the user the server must run as: `postgres` when we are root (then the
/// folder must be reachable by it: under `/tmp` if `TMPDIR` is a private folder).
fn folder() -> (tempfile::TempDir, Option<&'static str>) {
    let make = |parent: &Path| {
        tempfile::Builder::new()
            .prefix("edgesplit-pg-")
            .tempdir_in(parent)
            .unwrap_or_else(|e| panic!("creating a temporary folder in {}: {e}", parent.display()))
    };
    let dir = make(&std::env::temp_dir());
    let root = std::fs::metadata(dir.path()).is_ok_and(|m| m.uid() == 0);
    if !root {
        return (dir, None);
    }
    // Every folder above it must let others through (o+x), or the server user cannot reach its files.
    let reachable =
        dir.path().ancestors().skip(1).all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    let dir = if reachable { dir } else { make(Path::new("/tmp")) };
    (dir, Some(SERVER_USER))
}

/// The uid and gid of `user`, from `/etc/passwd` (where Debian's package puts its system user).
fn user_ids(user: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 3 && fields[0] == user).then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))?
    });
    ids.unwrap_or_else(|| {
        panic!(
            "running as root, the server must run as the `{user}` user, and there is none: install Debian's \
             `postgresql` package, which creates it"
        )
    })
}

/// A port nothing listens on right now (bound on 127.0.0.1:0, then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding 127.0.0.1:0: {e}"));
    listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("local_addr: {e}"))
}

fn port_taken(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("could not create any TCP/IP sockets")
}

/// No `PG*` variable of the caller's (PGHOST, PGPORT, PGUSER, ...) reaches the tools, messages are in
/// English, and the working folder is ours (the server user may not be allowed into the caller's).
fn clean_env(cmd: &mut Command, dir: &Path) {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            cmd.env_remove(key);
        }
    }
    cmd.env("LC_ALL", "C").current_dir(dir);
}

/// Runs `cmd` (with `input` on its stdin), killing it if it is not done within `limit`: its stdout on
/// success, otherwise what happened with its stderr and stdout.
fn run(mut cmd: Command, input: Option<String>, limit: Duration) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let deadline = Instant::now() + limit;
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| format!("{what}: could not run: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
    }
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // A daemon the command left behind could hold the pipes open: read only until the deadline.
    let read = |rx: mpsc::Receiver<String>| {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1)))
            .unwrap_or_default()
    };
    let (stdout, stderr) = (read(stdout), read(stderr));
    match status {
        Some(status) if status.success() => Ok(stdout),
        Some(status) => Err(format!("{what} failed ({status})\nstderr:\n{stderr}\nstdout:\n{stdout}")),
        None => Err(format!("{what} did not finish within {limit:?}; killed\nstderr:\n{stderr}\nstdout:\n{stdout}")),
    }
}

/// Reads `pipe` to its end on a thread of its own, sending the text when done.
fn collect(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
        });
    }
    rx
}
