//! From events to metric values (spec 5.1, 5.2): an event that a metric's `eventPattern` selects yields
//! the number at `valueKey` for the entity at `entityIdKey`, attributed to that entity's latest
//! assignment, made at most an hour before the event, in each running experiment (metric goals) and
//! launch (metric monitors) of the project. Values are added to mergeable moments per 5-minute bucket,
//! so what is stored grows with experiments and time, never with events.

use serde_json::Value;

use super::exposure::{ExposureLog, RuleKind};
use super::model::{EvResources, MetricDefinition, RunStatus};
use super::pattern::Pattern;

/// The finest time bucket kept; GetExperimentResults periods are multiples of it (300 s minimum).
pub const BUCKET_SECS: i64 = 300;

/// One metric of one running experiment or launch.
pub struct MetricRule {
    pub kind: RuleKind,
    pub rule: String,
    pub metric: String,
    entity_key: String,
    value_key: String,
    pattern: Option<Pattern>,
}

impl MetricRule {
    fn new(kind: RuleKind, rule: &str, m: &MetricDefinition) -> MetricRule {
        let pattern = m.event_pattern.as_deref().filter(|p| !p.trim().is_empty()).and_then(|p| Pattern::parse(p).ok());
        MetricRule {
            kind,
            rule: rule.to_string(),
            metric: m.name.clone(),
            entity_key: m.entity_id_key.clone(),
            value_key: m.value_key.clone(),
            pattern,
        }
    }
}

/// The metrics of the project's running experiments and launches.
pub fn rules(st: &EvResources, project: &str) -> Vec<MetricRule> {
    let mut out = Vec::new();
    for ((p, name), x) in &st.experiments {
        if p == project && x.status == RunStatus::Running {
            out.extend(
                x.metric_goals.iter().map(|g| MetricRule::new(RuleKind::Experiment, name, &g.metric_definition)),
            );
        }
    }
    for ((p, name), l) in &st.launches {
        if p == project && l.status == RunStatus::Running {
            out.extend(l.metric_monitors.iter().map(|m| MetricRule::new(RuleKind::Launch, name, m)));
        }
    }
    out
}

/// A value at a dotted path (`userDetails.userId`, also `$.userDetails.userId`).
pub fn lookup<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.strip_prefix("$.").unwrap_or(path);
    path.split('.').try_fold(data, |v, key| v.get(key))
}

/// The store key of one series bucket.
pub fn result_key(project: &str, kind: RuleKind, rule: &str, metric: &str, arm: &str, bucket: i64) -> String {
    let kind = match kind {
        RuleKind::Experiment => "experiment",
        RuleKind::Launch => "launch",
    };
    format!("{project}\u{1f}{kind}\u{1f}{rule}\u{1f}{metric}\u{1f}{arm}\u{1f}{bucket:012}")
}

/// The prefix of every bucket of one rule's metric: `result_key` without arm and bucket.
pub(crate) fn series_prefix(project: &str, kind: RuleKind, rule: &str, metric: &str) -> String {
    let kind = match kind {
        RuleKind::Experiment => "experiment",
        RuleKind::Launch => "launch",
    };
    format!("{project}\u{1f}{kind}\u{1f}{rule}\u{1f}{metric}\u{1f}")
}

/// The entity ids the rules would attribute `data` to (each rule's `entityIdKey`).
pub fn entities(rules: &[MetricRule], data: &Value) -> Vec<String> {
    let mut out: Vec<String> = rules
        .iter()
        .filter_map(|r| match lookup(data, &r.entity_key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The (store key, value) pairs one custom event contributes. `event_ms` is the event's time.
pub fn attribute(
    rules: &[MetricRule],
    exposures: &ExposureLog,
    project: &str,
    event_ms: i64,
    data: &Value,
) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let bucket = event_ms.div_euclid(1000).div_euclid(BUCKET_SECS) * BUCKET_SECS;
    for r in rules {
        let selected = match &r.pattern {
            Some(p) => p.matches(data),
            None => lookup(data, &r.entity_key).is_some() && lookup(data, &r.value_key).is_some(),
        };
        if !selected {
            continue;
        }
        let entity = match lookup(data, &r.entity_key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        let Some(value) = lookup(data, &r.value_key).and_then(Value::as_f64) else { continue };
        // botocore sends whole epoch seconds (spec 1.2): an event stamped in the same second as the
        // evaluation, but truncated to before it, still counts.
        let assignment = exposures
            .latest(project, &entity, event_ms + 999)
            .into_iter()
            .find(|a| a.kind == r.kind && *a.rule == *r.rule);
        if let Some(a) = assignment {
            out.push((result_key(project, r.kind, &r.rule, &r.metric, &a.arm, bucket), value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidently::exposure::Exposure;
    use serde_json::json;

    #[test]
    fn dotted_lookup() {
        let d = json!({"details": {"pageLoadTime": 800.0}, "userDetails": {"userId": "u1"}});
        assert_eq!(lookup(&d, "userDetails.userId"), Some(&json!("u1")));
        assert_eq!(lookup(&d, "$.details.pageLoadTime"), Some(&json!(800.0)));
        assert_eq!(lookup(&d, "details.missing"), None);
    }

    #[test]
    fn events_are_attributed_to_the_latest_assignment_within_the_hour() {
        let log = ExposureLog::new(3_600_000, 1000);
        log.insert(Exposure {
            project: "p".into(),
            kind: RuleKind::Experiment,
            rule: "exp".into(),
            arm: "treat".into(),
            entity: "u1".into(),
            at_ms: 1_000_000,
        });
        let m = MetricDefinition {
            name: "load".into(),
            entity_id_key: "userDetails.userId".into(),
            value_key: "details.pageLoadTime".into(),
            event_pattern: Some(r#"{"details.pageLoadTime":[{"exists":true}]}"#.into()),
            unit_label: None,
        };
        let rules = vec![MetricRule::new(RuleKind::Experiment, "exp", &m)];
        let data = json!({"details": {"pageLoadTime": 800.0}, "userDetails": {"userId": "u1"}});
        let got = attribute(&rules, &log, "p", 1_500_000, &data);
        assert_eq!(got, vec![(result_key("p", RuleKind::Experiment, "exp", "load", "treat", 1_500), 800.0)]);
        // Before the evaluation's second, or more than an hour after it: not attributed. The same
        // second counts (botocore truncates timestamps to seconds).
        assert!(attribute(&rules, &log, "p", 999_000, &data).is_empty());
        assert_eq!(attribute(&rules, &log, "p", 999_001, &data).len(), 1);
        assert!(attribute(&rules, &log, "p", 1_000_000 + 3_600_000, &data).is_empty());
        // Another entity, or an event the pattern does not select.
        let other = json!({"details": {"pageLoadTime": 1.0}, "userDetails": {"userId": "u2"}});
        assert!(attribute(&rules, &log, "p", 1_500_000, &other).is_empty());
        assert!(attribute(&rules, &log, "p", 1_500_000, &json!({"userDetails": {"userId": "u1"}})).is_empty());
    }
}
