//! The real `edgesplit` binary as a child process, for the tests that need the process itself (signals,
//! reloads, `kill -9`, resource limits): started on a config file, its log lines collected, its bound
//! addresses read from them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_edgesplit");

/// The binary running on a config file, its stdout collected line by line.
pub struct Proc {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The reader has seen the end of stdout: every line the process wrote is in `lines`.
    read_all: Arc<AtomicBool>,
}

impl Proc {
    pub fn start(config: &Path) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"]).arg(config);
        Proc::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let (sink, done) = (lines.clone(), Arc::new(AtomicBool::new(false)));
        let read_all = done.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
            done.store(true, Relaxed);
        });
        Proc { child, lines, read_all }
    }

    pub fn find(&self, needles: &[&str]) -> Option<String> {
        self.lines.lock().unwrap().iter().find(|l| needles.iter().all(|n| l.contains(n))).cloned()
    }

    pub fn count(&self, needles: &[&str]) -> usize {
        self.lines.lock().unwrap().iter().filter(|l| needles.iter().all(|n| l.contains(n))).count()
    }

    /// Waits (at most 10 s) for a log line containing all of `needles`.
    pub async fn wait_for(&mut self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(l) = self.find(needles) {
                return l;
            }
            // Exited, and its last lines read: the line will not come.
            if let Some(status) = self.child.try_wait().unwrap()
                && self.read_all.load(Relaxed)
                && self.find(needles).is_none()
            {
                panic!("edgesplit exited ({status}) before logging {needles:?}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no log line with {needles:?}; got:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub async fn addr(&mut self, listener: &str) -> SocketAddr {
        let line = self.wait_for(&["msg=Listening", &format!("listener={listener} ")]).await;
        line.split_whitespace().find_map(|f| f.strip_prefix("addr=")).unwrap().parse().unwrap()
    }

    pub async fn admin(&mut self) -> SocketAddr {
        let line = self.wait_for(&["Admin listening"]).await;
        line.split_whitespace().find_map(|f| f.strip_prefix("addr=")).unwrap().parse().unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig} failed");
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and the exit code (at most 10 s).
    pub async fn stop(&mut self) -> i32 {
        self.signal("-TERM");
        self.wait_exit(Duration::from_secs(10)).await
    }

    /// The exit code, once the process has exited (at most `within`).
    pub async fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("edgesplit did not exit within {within:?}");
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
