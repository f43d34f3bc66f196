//! PutProjectEvents, executed: custom events are turned into metric values and attributed (see
//! `evidently::events`), and the moments they update are committed in one transaction before the
//! answer.
//!
//! It holds the plane's lock only to read the project's metric rules: the wait for the exposure log (up
//! to 500 ms) and the store write happen unlocked (callers run it off the async workers), so events
//! never hold up an admin write or a reload. The results table is written by nothing else, and redb runs
//! one write transaction at a time, so concurrent calls still add up.

use super::{ExecuteError, Plane};
use crate::evidently::events::{attribute, rules};
use crate::evidently::input::Event;

/// How long a call waits for evaluations made just before it to reach the exposure log.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

impl Plane {
    /// Records the project's events: all their values, or (on a store failure) none.
    pub fn put_events(&self, project: &str, events: &[Event]) -> Result<(), ExecuteError> {
        let metric_rules = {
            let st = self.lock();
            super::evidently::project(&st.evidently, project).map_err(ExecuteError::Domain)?;
            rules(&st.evidently, project)
        };
        // Evaluations made just before are still in the exposure queue: let it drain (bounded), unlocked.
        self.exposures.settle(SETTLE);
        let adds: Vec<(String, f64)> = events
            .iter()
            .filter(|e| e.custom)
            .flat_map(|e| attribute(&metric_rules, &self.exposures, project, e.at_ms, &e.data))
            .collect();
        self.store.add_results(&adds).map_err(ExecuteError::Store)
    }
}
