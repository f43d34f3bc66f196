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

use super::{ExecuteError, Plane};
use crate::evidently::engine::{CompiledFeature, Evaluation};
use crate::evidently::events::{attribute, rules, series_prefix};
use crate::evidently::exposure::Exposure;
use crate::evidently::exposure::RuleKind;
use crate::evidently::input::Event;
use crate::evidently::model::RunStatus;
use crate::evidently::stats::Moments;
use crate::metrics::MonitorFigure;

/// How long a call waits for evaluations made just before it to reach the exposure log.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

impl Plane {
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
        let adds: Vec<(String, f64)> = events
            .iter()
            .filter(|e| e.custom)
            .flat_map(|e| attribute(&metric_rules, &self.exposures, project, e.at_ms, &e.data))
            .collect();
        self.store.add_results(&adds).map_err(ExecuteError::Store)
    }
}
