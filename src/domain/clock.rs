//! The wall clock, in one place.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The clock Evidently evaluations read, at the edge and in the API alike: the wall clock, plus a skew
/// that only tests move (to cross a launch's scheduled step without sleeping).
#[derive(Debug, Default)]
pub struct EvalClock {
    skew_ms: std::sync::atomic::AtomicI64,
}

impl EvalClock {
    /// Unix milliseconds, as evaluations see them.
    pub(crate) fn now_ms(&self) -> i64 {
        self.at(now_ms())
    }

    /// This clock at the wall clock's `wall_ms` (read once by a caller that needs it twice).
    pub(crate) fn at(&self, wall_ms: u64) -> i64 {
        wall_ms as i64 + self.skew_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves the evaluation clock forward.
    pub(crate) fn advance(&self, by: std::time::Duration) {
        self.skew_ms.fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::Relaxed);
    }
}
