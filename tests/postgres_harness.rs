//! The PostgreSQL harness (`tests/support/postgres.rs`) itself: a throwaway cluster from Debian's
//! `postgresql` package starts on a free loopback port as a non-root user, answers SQL, keeps committed
//! rows across a fast shutdown and a restart on the same port, and leaves no server and no files behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use support::postgres::Postgres;

#[test]
fn a_throwaway_cluster_keeps_committed_rows_across_a_restart_and_leaves_nothing_behind() {
    let t = Instant::now();
    let pg = Postgres::start();
    let started = t.elapsed();
    let port = pg.port();
    assert_eq!(pg.url(), format!("postgres://postgres@127.0.0.1:{port}/edgesplit"));
    assert_eq!(pg.psql("select 1"), "1\n");
    assert_eq!(pg.psql("select current_database()"), "edgesplit\n");
    assert_eq!(pg.psql("select datname from pg_database order by datname"), "edgesplit\ntemplate0\ntemplate1\n");
    // Loopback only, socket in its own folder, and durable writes: what the store's tests rely on.
    let settings = pg.psql(
        "select current_setting('listen_addresses'), current_setting('unix_socket_directories'), \
         current_setting('fsync'), current_setting('synchronous_commit'), current_setting('max_connections')",
    );
    let sock = pg.dir().join("sock").display().to_string();
    assert_eq!(settings, format!("127.0.0.1|{sock}|on|on|100\n"));
    // The server never runs as root: its pid file belongs to the user it runs as.
    let pid_file = std::fs::metadata(pg.dir().join("data/postmaster.pid")).unwrap();
    assert_ne!(pid_file.uid(), 0, "the server runs as root");

    pg.psql("create table kv (k text primary key, v text not null); insert into kv values ('a', 'één');");
    assert_eq!(pg.psql("select v from kv"), "één\n");

    let t = Instant::now();
    pg.stop();
    let stopped = t.elapsed();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening after stop");
    pg.stop(); // idempotent

    let t = Instant::now();
    pg.restart();
    let restarted = t.elapsed();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("select k, v from kv"), "a|één\n", "the committed row did not survive the restart");

    // A failing statement panics with psql's error.
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pg.psql("select * from missing")))
        .expect_err("a bad statement did not panic");
    let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("relation \"missing\" does not exist"), "{message}");

    let dir = pg.dir().to_path_buf();
    let t = Instant::now();
    drop(pg);
    let dropped = t.elapsed();
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening after drop");
    println!("start {started:?}, stop {stopped:?}, restart {restarted:?}, drop {dropped:?}");
}
