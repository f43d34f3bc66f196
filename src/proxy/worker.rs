//! Which data-plane worker thread this is: the per-worker pools (HTTP/2 clients) are picked by it. Set
//! once by `server::Workers` when it starts a worker.

/// The most worker threads edgesplit runs, whatever the core count.
pub(crate) const MAX_WORKERS: usize = 256; // `limits.workers` allows 0..=256

thread_local! {
    static WORKER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Which data-plane worker this thread is, if it is one.
pub(crate) fn worker_index() -> Option<usize> {
    WORKER.get()
}

/// Marks this thread as worker `i`.
pub(crate) fn set(i: usize) {
    WORKER.set(Some(i));
}
