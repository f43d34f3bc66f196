//! Evaluations through the API (recording exposures), launch monitors for `/metrics`, and
//! PutProjectEvents, executed: custom events are turned into metric values and attributed (see
//! `evidently::events`), and the moments they update are committed in one transaction before the
//! answer.
//!
//! It holds the plane's lock only to read the project's metric rules: the wait for the exposure log (up
//! to 500 ms) and the store write happen unlocked (callers run it off the async workers), so events
//! never hold up an admin write or a reload. The results table is written by nothing else, and redb runs
//! one write transaction at a time, so concurrent calls still add up.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{ExecuteError, Plane};
use crate::evidently::engine::{CompiledFeature, Evaluation};
use crate::evidently::events::{attribute, entities, rules, series_prefix};
use crate::evidently::exposure::Exposure;
use crate::evidently::exposure::RuleKind;
use crate::evidently::input::Event;
use crate::evidently::model::RunStatus;
use crate::evidently::stats::Moments;
use crate::metrics::MonitorFigure;

/// How long after an evaluation an event is attributed to it (spec 5.1).
pub(super) const EXPOSURE_WINDOW_MS: i64 = 3_600_000;

/// How often an instance of a fleet writes its exposures to the shared store.
const SHARE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a call waits for evaluations made just before it to reach the exposure log.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

impl Plane {
    /// In a fleet, writes this instance's exposures to the shared store every `SHARE_EVERY`, on a
    /// thread of its own (the request path only enqueues, as before): batched, bounded by the log's
    /// outbox, dropped and counted (`edgesplit_exposures_total{result="unshared"}`) when the store
    /// refuses. Nothing for redb.
    pub fn share_exposures(self: &Arc<Self>) {
        if !self.store.shared() {
            return;
        }
        self.exposures.share();
        let plane = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("edgesplit-exposures".into()).spawn(move || {
            loop {
                std::thread::sleep(SHARE_EVERY);
                let Some(plane) = plane.upgrade() else { return };
                let batch = plane.exposures.take_shared();
                let before = crate::domain::clock::now_ms() as i64 - EXPOSURE_WINDOW_MS;
                if let Err(e) = plane.store.share_exposures(&batch, before) {
                    plane.exposures.unshared.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(error = %e, dropped = batch.len(), "Exposures not shared with the fleet");
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "Cannot start sharing exposures");
        }
    }

    /// EvaluateFeature through the API, against the published snapshot (lock-free), exactly as the
    /// proxy evaluates: a launch or experiment assignment is recorded as an exposure, for attributing
    /// the entity's events.
    pub fn evaluate<'f>(
        &self,
        project: &str,
        feature: &'f CompiledFeature,
        entity_id: &str,
        context: &serde_json::Value,
    ) -> Evaluation<'f> {
        let now_ms = self.clock.now_ms();
        let e = feature.evaluate(entity_id, context, now_ms);
        if let Some(x) = Exposure::of(&project.into(), feature, &e.details, entity_id, now_ms) {
            self.exposures.record(x);
        }
        e
    }

    /// Running launches' metric monitors, aggregated from the stored moments: events and mean per
    /// group (for `/metrics`). A monitor whose moments cannot be read is left out of this scrape.
    pub(crate) fn launch_monitors(&self) -> Vec<MonitorFigure> {
        let monitors: Vec<(String, String, String)> = {
            let st = self.lock();
            st.evidently
                .launches
                .iter()
                .filter(|(_, l)| l.status == RunStatus::Running)
                .flat_map(|((p, name), l)| {
                    l.metric_monitors.iter().map(move |m| (p.clone(), name.clone(), m.name.clone()))
                })
                .collect()
        };
        let mut out = Vec::new();
        for (project, launch, metric) in monitors {
            let prefix = series_prefix(&project, RuleKind::Launch, &launch, &metric);
            let Ok(rows) = self.store.results(&prefix) else { continue };
            let mut groups: BTreeMap<String, Moments> = BTreeMap::new();
            for (key, m) in rows {
                if let Some((group, _)) = key[prefix.len()..].split_once('\u{1f}') {
                    groups.entry(group.to_string()).or_default().merge(&m);
                }
            }
            out.extend(groups.into_iter().map(|(group, m)| MonitorFigure {
                project: project.clone(),
                launch: launch.clone(),
                metric: metric.clone(),
                group,
                events: m.n,
                mean: m.mean(),
            }));
        }
        out
    }

    /// Records the project's events: all their values, or (on a store failure) none.
    pub(crate) fn put_events(&self, project: &str, events: &[Event]) -> Result<(), ExecuteError> {
        let metric_rules = {
            let st = self.lock();
            super::evidently::project(&st.evidently, project).map_err(ExecuteError::Domain)?;
            rules(&st.evidently, project)
        };
        // Evaluations made just before are still in the exposure queue: let it drain (bounded), unlocked.
        self.exposures.settle(SETTLE);
        if self.store.shared() {
            // In a fleet, the entities may have been evaluated by other instances: their latest
            // assignments, from the shared store.
            let mut entities: Vec<String> =
                events.iter().filter(|e| e.custom).flat_map(|e| entities(&metric_rules, &e.data)).collect();
            entities.sort_unstable();
            entities.dedup();
            if !entities.is_empty() {
                let since = events.iter().map(|e| e.at_ms).min().unwrap_or(0) - EXPOSURE_WINDOW_MS;
                for x in self.store.shared_exposures(project, &entities, since).map_err(ExecuteError::Store)? {
                    self.exposures.insert_shared(x);
                }
            }
        }
        let adds: Vec<(String, f64)> = events
            .iter()
            .filter(|e| e.custom)
            .flat_map(|e| attribute(&metric_rules, &self.exposures, project, e.at_ms, &e.data))
            .collect();
        self.store.add_results(&adds).map_err(ExecuteError::Store)
    }
}
