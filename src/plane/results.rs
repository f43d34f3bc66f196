//! GetExperimentResults, computed: statistics per treatment against the control, over time, from the
//! moments PutProjectEvents stored (see `evidently::stats` for the methods).
//!
//! Each timestamp closes a `period`; the statistics at a timestamp are cumulative from `startTime`, as
//! an experiment dashboard shows them. A timestamp appears once every requested treatment has at least
//! two values (so every statistic exists); `details` says "Not enough events" below 100 events per
//! treatment, and reports a sample-ratio mismatch when the event counts stray from the treatment
//! weights (chi-square p < 0.001).
//!
//! It holds the plane's lock only to find the experiment (a copy is taken): the store read and the
//! statistics run unlocked, so a large result set never holds up an admin write or a reload (callers
//! run it off the async workers). The cumulative moments advance bucket by bucket as the timestamps do,
//! so the work is linear in timestamps plus buckets, not their product.

use std::collections::BTreeMap;

use super::{ExecuteError, Plane};
use crate::domain::error::DomainError;
use crate::evidently::events::{BUCKET_SECS, series_prefix};
use crate::evidently::exposure::RuleKind;
use crate::evidently::input::ResultsQuery;
use crate::evidently::model::Experiment;
use crate::evidently::stats::{Moments, bayes, srm_p_value, welch};
use crate::limits::evidently as aws;

/// One statistic of one treatment, at every timestamp.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub treatment: String,
    /// `ExperimentResultResponseType`: Mean, TreatmentEffect, ConfidenceIntervalLowerBound, ...
    pub stat: &'static str,
    pub values: Vec<f64>,
}

/// One report of one treatment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub treatment: String,
    pub name: &'static str,
    /// A JSON document.
    pub content: String,
}

/// The results of one metric of one experiment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExperimentResults {
    pub metric: String,
    /// Epoch seconds.
    pub timestamps: Vec<f64>,
    pub series: Vec<Series>,
    pub reports: Vec<Report>,
    pub details: Option<String>,
}

impl Plane {
    /// GetExperimentResults for the experiment `name` of `project`.
    pub(crate) fn experiment_results(
        &self,
        project: &str,
        name: &str,
        q: ResultsQuery,
    ) -> Result<ExperimentResults, ExecuteError> {
        let x = super::evidently::find::<Experiment>(&self.lock().evidently, project, name)
            .map_err(ExecuteError::Domain)?
            .clone();
        let now = crate::domain::clock::now_ms() as f64 / 1000.0;
        let window = window(&x, &q, now).map_err(ExecuteError::Domain)?;
        let prefix = series_prefix(project, RuleKind::Experiment, name, &q.metric);
        let rows = self.store.results(&prefix).map_err(ExecuteError::Store)?;
        Ok(compute(&x, q, window, &prefix, rows))
    }
}

/// `(start, end, period)` in whole seconds, checked against the experiment.
fn window(x: &Experiment, q: &ResultsQuery, now: f64) -> Result<(i64, i64, i64), DomainError> {
    let metric = &q.metric;
    if !x.metric_goals.iter().any(|g| &g.metric_definition.name == metric) {
        return Err(DomainError::invalid("metricNames", format!("`{metric}` is not a metric of this experiment")));
    }
    if let Some(t) = q.treatments.iter().find(|t| !x.treatments.iter().any(|xt| &xt.name == *t)) {
        return Err(DomainError::invalid("treatmentNames", format!("`{t}` is not a treatment of this experiment")));
    }
    let start = q.start_time.or(x.started_time).unwrap_or(x.created_time).floor() as i64;
    let end = q.end_time.unwrap_or(now).ceil() as i64;
    if end <= start {
        return Err(DomainError::invalid("endTime", "must be after startTime"));
    }
    let period = q.period.unwrap_or(end - start).max(BUCKET_SECS);
    // The answer's `timestamps` is a `TimestampList`.
    let max_timestamps = aws::TIMESTAMP_LIST.max.unwrap_or(usize::MAX);
    if usize::try_from((end - start) / period).is_ok_and(|n| n > max_timestamps) {
        return Err(DomainError::invalid(
            "period",
            format!("gives more than {max_timestamps} timestamps for this time range"),
        ));
    }
    Ok((start, end, period))
}

/// The statistics from the stored moments `rows` (keys under `prefix`).
fn compute(
    x: &Experiment,
    q: ResultsQuery,
    (start, end, period): (i64, i64, i64),
    prefix: &str,
    rows: Vec<(String, Moments)>,
) -> ExperimentResults {
    let ResultsQuery { metric, treatments, stats, reports, .. } = q;
    // Buckets per treatment, keyed by bucket start.
    let mut by_arm: BTreeMap<String, BTreeMap<i64, Moments>> = BTreeMap::new();
    for (key, m) in rows {
        let rest = &key[prefix.len()..];
        let Some((arm, bucket)) = rest.split_once('\u{1f}') else { continue };
        let Ok(bucket) = bucket.parse::<i64>() else { continue };
        by_arm.entry(arm.to_string()).or_default().insert(bucket, m);
    }
    let control =
        x.control_treatment.clone().or_else(|| x.treatments.first().map(|t| t.name.clone())).unwrap_or_default();
    let first_bucket = start.div_euclid(BUCKET_SECS) * BUCKET_SECS;
    let empty = BTreeMap::new();
    let buckets = |arm: &str| by_arm.get(arm).unwrap_or(&empty).range(first_bucket..).peekable();
    // The moments of one arm's buckets from `first_bucket` up to (not including) `until`, summed in
    // bucket order whether asked once (`cumulative`) or step by step as the timestamps advance.
    let cumulative = |arm: &str, until: i64| -> Moments {
        let mut total = Moments::default();
        for (_, m) in buckets(arm).take_while(|(b, _)| **b < until) {
            total.merge(m);
        }
        total
    };
    let mut running: BTreeMap<&str, (Moments, _)> = BTreeMap::new();
    for arm in treatments.iter().chain(std::iter::once(&control)) {
        running.entry(arm.as_str()).or_insert_with(|| (Moments::default(), buckets(arm)));
    }
    let mut advance = |arm: &str, until: i64| -> Moments {
        let Some((total, rest)) = running.get_mut(arm) else { return Moments::default() };
        while let Some((_, m)) = rest.next_if(|(b, _)| **b < until) {
            total.merge(m);
        }
        *total
    };

    let mut timestamps = Vec::new();
    let mut series: BTreeMap<(String, &'static str), Vec<f64>> = BTreeMap::new();
    let mut t = start + period;
    loop {
        let at = t.min(end);
        let control_m = advance(&control, at);
        let arms: Vec<(String, Moments)> = treatments.iter().map(|n| (n.clone(), advance(n, at))).collect();
        if arms.iter().all(|(_, m)| m.n >= 2) && control_m.n >= 2 {
            timestamps.push(at as f64);
            for (arm, m) in &arms {
                let mut push = |stat: &'static str, v: f64| series.entry((arm.clone(), stat)).or_default().push(v);
                if stats.iter().any(|s| s == "BaseStat") {
                    push("Mean", m.mean().unwrap_or(0.0));
                }
                if *arm == control {
                    continue;
                }
                if let Some(c) = welch(&control_m, m) {
                    if stats.iter().any(|s| s == "TreatmentEffect") {
                        push("TreatmentEffect", c.treatment_effect);
                    }
                    if stats.iter().any(|s| s == "ConfidenceInterval") {
                        push("ConfidenceIntervalLowerBound", c.ci_lower);
                        push("ConfidenceIntervalUpperBound", c.ci_upper);
                    }
                    if stats.iter().any(|s| s == "PValue") {
                        push("PValue", c.p_value);
                    }
                }
            }
        }
        if t >= end {
            break;
        }
        t += period;
    }
    // A series shorter than `timestamps` (a comparison that was not computable at every point) would
    // misalign: only whole series go out.
    let series: Vec<Series> = series
        .into_iter()
        .filter(|(_, v)| v.len() == timestamps.len())
        .map(|((treatment, stat), values)| Series { treatment, stat, values })
        .collect();

    let totals: Vec<(String, Moments)> = treatments.iter().map(|n| (n.clone(), cumulative(n, end + 1))).collect();
    let control_total = cumulative(&control, end + 1);
    let mut report_list = Vec::new();
    if !reports.is_empty() {
        for (arm, m) in totals.iter().filter(|(a, _)| *a != control) {
            if let Some(bz) = bayes(&control_total, m) {
                let content = serde_json::json!({
                    "method": "normal approximation of each mean's posterior (flat prior), lift by the delta method",
                    "threshold": 0.03,
                    "probabilityIncrease": bz.p_increase,
                    "probabilityDecrease": bz.p_decrease,
                    "probabilityWithin": bz.p_within,
                });
                report_list.push(Report {
                    treatment: arm.clone(),
                    name: "BayesianInference",
                    content: content.to_string(),
                });
            }
        }
    }

    let mut details = Vec::new();
    if totals.iter().any(|(_, m)| m.n < 100) || control_total.n < 100 {
        details
            .push("Not enough events to generate results: at least 100 events per treatment are needed.".to_string());
    }
    let all: Vec<&str> = x.treatments.iter().map(|t| t.name.as_str()).collect();
    let observed: Vec<u64> = all.iter().map(|n| cumulative(n, end + 1).n).collect();
    let weights: Vec<f64> = all.iter().map(|n| *x.treatment_weights.get(*n).unwrap_or(&0) as f64).collect();
    if observed.iter().sum::<u64>() >= 100
        && let Some(p) = srm_p_value(&observed, &weights)
        && p < 0.001
    {
        details.push(format!("Sample ratio mismatch: event counts {observed:?} do not fit the treatment weights (chi-square p = {p:.2e})."));
    }
    ExperimentResults {
        metric,
        timestamps,
        series,
        reports: report_list,
        details: (!details.is_empty()).then(|| details.join(" ")),
    }
}
