//! CreateExperiment, GetExperiment, ListExperiments, UpdateExperiment, DeleteExperiment, StartExperiment,
//! StopExperiment.
//!
//! Where the spec is silent:
//! * all treatments of one experiment must use the same feature, as Evidently's console requires: an
//!   experiment then tests exactly one feature, which keeps evaluation (one running experiment per feature,
//!   D6) and results simple;
//! * `samplingRate` defaults to 10000 (10 %): the model documents no default, only 10000 as its example;
//! * `onlineAbConfig` defaults to the first treatment as control and equal weights adding up to 100000 (the
//!   remainder going to the first treatments); weights sent need not add up to 100000 (the engine normalises
//!   them by their sum, D5), and a treatment left out of `treatmentWeights` has weight 0;
//! * `desiredChange` is stored as sent (omitted when not sent);
//! * UpdateExperiment: when `treatments` change and `onlineAbConfig` (or one of its members) is not sent, the
//!   current control is kept if it is still a treatment (else the first treatment becomes control), and the
//!   current weights are kept if they still name exactly the treatments (else equal weights);
//!   `removeSegment: false` is a no-op, also while running;
//! * the 500-experiments quota is checked by CreateExperiment, the 50-running quota by StartExperiment;
//!   StartExperiment and StopExperiment also move `lastUpdatedTime`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Value, json};

use super::launches::{
    MetricDefinitionConfig, check_feature_variation, check_salt, check_segment_exists, metric_definition, required,
    status_filter, stop_body, timestamp,
};
use super::*;
use crate::evidently::model::{Experiment, MetricGoal, Resource, RunStatus, Tags, Treatment};

const DEFAULT_SAMPLING_RATE: i64 = 10_000;
const MAX_ANALYSIS_SECONDS: f64 = 30.0 * 24.0 * 3600.0;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TreatmentConfig {
    name: Option<String>,
    feature: Option<String>,
    variation: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricGoalConfig {
    metric_definition: Option<MetricDefinitionConfig>,
    desired_change: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnlineAbConfig {
    control_treatment_name: Option<String>,
    treatment_weights: Option<BTreeMap<String, i64>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    treatments: Option<Vec<TreatmentConfig>>,
    metric_goals: Option<Vec<MetricGoalConfig>>,
    online_ab_config: Option<OnlineAbConfig>,
    sampling_rate: Option<i64>,
    segment: Option<String>,
    randomization_salt: Option<String>,
    tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    description: Option<String>,
    treatments: Option<Vec<TreatmentConfig>>,
    metric_goals: Option<Vec<MetricGoalConfig>>,
    online_ab_config: Option<OnlineAbConfig>,
    sampling_rate: Option<i64>,
    segment: Option<String>,
    remove_segment: Option<bool>,
    randomization_salt: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBody {
    analysis_complete_time: Option<Value>,
}

// === request parsing ===

fn parse_treatments(configs: Vec<TreatmentConfig>) -> EvResult<Vec<Treatment>> {
    aws::TREATMENT_CONFIG_LIST.check("treatments", configs.len())?;
    // The request's `TreatmentConfigList` may be empty; the experiment it makes holds a `TreatmentList`,
    // 2 to 5 (a control and at least one treatment to compare), and edgesplit asks for that at once.
    aws::TREATMENT_LIST.check("treatments", configs.len())?;
    let mut out: Vec<Treatment> = Vec::with_capacity(configs.len());
    for (i, t) in configs.into_iter().enumerate() {
        let f = |m: &str| format!("treatments[{i}].{m}");
        let name = required(&f("name"), t.name)?;
        aws::TREATMENT_NAME.check(&f("name"), &name)?;
        let feature = required(&f("feature"), t.feature)?;
        aws::FEATURE_NAME.check(&f("feature"), &feature)?;
        let variation = required(&f("variation"), t.variation)?;
        aws::VARIATION_NAME.check(&f("variation"), &variation)?;
        check_opt(&aws::DESCRIPTION, &f("description"), t.description.as_deref())?;
        if out.iter().any(|o| o.name == name) {
            return Err(invalid("treatments", format!("treatment `{name}` is listed twice")));
        }
        if let Some(first) = out.first()
            && first.feature != feature
        {
            return Err(invalid(
                &f("feature"),
                format!("all treatments of an experiment must use the same feature (`{}`)", first.feature),
            ));
        }
        out.push(Treatment { name, description: t.description, feature, variation });
    }
    Ok(out)
}

fn parse_goals(configs: Vec<MetricGoalConfig>) -> EvResult<Vec<MetricGoal>> {
    aws::METRIC_GOAL_CONFIG_LIST.check("metricGoals", configs.len())?;
    let mut out: Vec<MetricGoal> = Vec::with_capacity(configs.len());
    for (i, g) in configs.into_iter().enumerate() {
        let field = format!("metricGoals[{i}].metricDefinition");
        let metric_definition = metric_definition(&field, required(&field, g.metric_definition)?)?;
        check_opt(
            &aws::CHANGE_DIRECTION_ENUM,
            &format!("metricGoals[{i}].desiredChange"),
            g.desired_change.as_deref(),
        )?;
        if out.iter().any(|o| o.metric_definition.name == metric_definition.name) {
            return Err(invalid("metricGoals", format!("metric `{}` is listed twice", metric_definition.name)));
        }
        out.push(MetricGoal { metric_definition, desired_change: g.desired_change });
    }
    Ok(out)
}

fn parse_online_ab(c: &OnlineAbConfig) -> EvResult<()> {
    check_opt(&aws::TREATMENT_NAME, "onlineAbConfig.controlTreatmentName", c.control_treatment_name.as_deref())?;
    if let Some(w) = &c.treatment_weights {
        // `TreatmentToWeightMap` is unbounded in the model; its keys name treatments, so it has no more
        // entries than a `TreatmentConfigList` may.
        aws::TREATMENT_CONFIG_LIST.check("onlineAbConfig.treatmentWeights", w.len())?;
        for (t, v) in w {
            aws::TREATMENT_NAME.check_key("onlineAbConfig.treatmentWeights", t)?;
            aws::SPLIT_WEIGHT.check(&format!("onlineAbConfig.treatmentWeights.{t}"), *v)?;
        }
    }
    Ok(())
}

/// Equal weights adding up to 100000, the remainder to the first treatments.
fn equal_weights(treatments: &[Treatment]) -> BTreeMap<String, i64> {
    let n = treatments.len().max(1) as i64;
    let (base, rest) = (100_000 / n, 100_000 % n);
    treatments.iter().enumerate().map(|(i, t)| (t.name.clone(), base + i64::from((i as i64) < rest))).collect()
}

/// Control and weights after a create or an update: what was sent, else (when the treatments did not change, or
/// still fit) what was there, else the defaults.
fn settle_online_ab(x: &mut Experiment, sent: Option<OnlineAbConfig>, treatments_changed: bool) {
    let names: BTreeSet<&str> = x.treatments.iter().map(|t| t.name.as_str()).collect();
    let (control, weights) = match sent {
        Some(c) => (c.control_treatment_name, c.treatment_weights),
        None => (None, None),
    };
    let kept_control = x.control_treatment.clone().filter(|c| !treatments_changed || names.contains(c.as_str()));
    x.control_treatment = control.or(kept_control).or_else(|| x.treatments.first().map(|t| t.name.clone()));
    let fits = !x.treatment_weights.is_empty()
        && (!treatments_changed
            || (x.treatment_weights.len() == names.len()
                && x.treatment_weights.keys().all(|k| names.contains(k.as_str()))));
    x.treatment_weights = match weights {
        Some(w) => w,
        None if fits => std::mem::take(&mut x.treatment_weights),
        None => equal_weights(&x.treatments),
    };
}

// === rules on the whole experiment ===

fn check_experiment(x: &Experiment) -> EvResult<()> {
    let names: BTreeSet<&str> = x.treatments.iter().map(|t| t.name.as_str()).collect();
    if let Some(c) = &x.control_treatment
        && !names.contains(c.as_str())
    {
        return Err(invalid(
            "onlineAbConfig.controlTreatmentName",
            format!("`{c}` is not a treatment of this experiment"),
        ));
    }
    if let Some(t) = x.treatment_weights.keys().find(|t| !names.contains(t.as_str())) {
        return Err(invalid("onlineAbConfig.treatmentWeights", format!("`{t}` is not a treatment of this experiment")));
    }
    Ok(aws::SPLIT_WEIGHT.check("samplingRate", x.sampling_rate)?)
}

/// The features, variations and segment the experiment names exist.
fn resolve(st: &ControlState, x: &Experiment) -> EvResult<()> {
    for (i, t) in x.treatments.iter().enumerate() {
        check_feature_variation(st, &x.project, &t.feature, &t.variation, &format!("treatments[{i}].variation"))?;
    }
    if let Some(s) = &x.segment {
        check_segment_exists(st, s)?;
    }
    Ok(())
}

/// D6: another running experiment of the project on one of this experiment's features.
fn rival_conflict(st: &ControlState, x: &Experiment) -> EvResult<()> {
    let mine: BTreeSet<&str> = x.treatments.iter().map(|t| t.feature.as_str()).collect();
    let rival = st
        .evidently
        .experiments
        .values()
        .filter(|o| o.project == x.project && o.name != x.name && o.status == RunStatus::Running)
        .find_map(|o| {
            o.treatments.iter().find(|t| mine.contains(t.feature.as_str())).map(|t| (t.feature.clone(), o.name.clone()))
        });
    match rival {
        Some((feature, other)) => {
            let arn = Arns(&st.config).experiment(&x.project, &x.name);
            Err(conflict(
                "experiment",
                &arn,
                format!(
                    "Feature `{feature}` already has a running experiment (`{other}`); a feature has at most one running experiment."
                ),
            ))
        }
        None => Ok(()),
    }
}

// === wire shape ===

pub fn view(st: &ControlState, x: &Experiment) -> Value {
    let arns = Arns(&st.config);
    let treatments: Vec<Value> = x
        .treatments
        .iter()
        .map(|t| {
            let feature_variations = BTreeMap::from([(t.feature.as_str(), t.variation.as_str())]);
            let mut v = json!({ "name": t.name, "featureVariations": feature_variations });
            if let Some(d) = &t.description {
                v["description"] = json!(d);
            }
            v
        })
        .collect();
    let mut online = json!({ "treatmentWeights": x.treatment_weights });
    if let Some(c) = &x.control_treatment {
        online["controlTreatmentName"] = json!(c);
    }
    let mut v = json!({
        "arn": arns.experiment(&x.project, &x.name),
        "name": x.name,
        "project": arns.project(&x.project),
        "status": x.status.as_str(),
        "type": "aws.evidently.onlineab",
        "treatments": treatments,
        "metricGoals": x.metric_goals,
        "onlineAbDefinition": online,
        "samplingRate": x.sampling_rate,
        "randomizationSalt": x.randomization_salt,
        "createdTime": x.created_time,
        "lastUpdatedTime": x.last_updated_time,
        "tags": x.tags,
    });
    if let Some(d) = &x.description {
        v["description"] = json!(d);
    }
    if let Some(r) = &x.status_reason {
        v["statusReason"] = json!(r);
    }
    if let Some(s) = &x.segment {
        v["segment"] = json!(arns.segment(s));
    }
    if let Some(t) = x.analysis_complete_time {
        v["schedule"] = json!({ "analysisCompleteTime": t });
    }
    if let Some(t) = x.started_time {
        let mut execution = json!({ "startedTime": t });
        if let Some(e) = x.ended_time {
            execution["endedTime"] = json!(e);
        }
        v["execution"] = execution;
    }
    v
}

/// The experiment `name` of project `p`, or 404.
pub fn find<'a>(st: &'a ControlState, p: &str, name: &str) -> EvResult<&'a Experiment> {
    let project = find_project(st, p)?.name.clone();
    aws::EXPERIMENT_NAME.check("experiment", name)?;
    st.evidently.experiments.get(&(project.clone(), name.to_string())).ok_or_else(|| {
        let arn = Arns(&st.config).experiment(&project, name);
        not_found("experiment", &arn, format!("Experiment does not exist with arn '{arn}'"))
    })
}

// === operations ===

pub fn create(plane: &Plane, st: &mut ControlState, p: &str, call: &EvCall) -> EvResult<Value> {
    let project = find_project(st, p)?.name.clone();
    let b: CreateBody = call.json()?;
    let name = required("name", b.name)?;
    aws::EXPERIMENT_NAME.check("name", &name)?;
    check_opt(&aws::DESCRIPTION, "description", b.description.as_deref())?;
    check_salt(&b.randomization_salt)?;
    let tags = b.tags.unwrap_or_default();
    check_tags(&tags)?;
    let treatments = parse_treatments(required("treatments", b.treatments)?)?;
    let metric_goals = parse_goals(required("metricGoals", b.metric_goals)?)?;
    if let Some(c) = &b.online_ab_config {
        parse_online_ab(c)?;
    }
    let segment = b.segment.as_deref().map(|s| segment_ref(&Arns(&st.config).base(), "segment", s)).transpose()?;
    let t = now();
    let mut x = Experiment {
        project: project.clone(),
        name: name.clone(),
        description: b.description,
        treatments,
        metric_goals,
        control_treatment: None,
        treatment_weights: BTreeMap::new(),
        sampling_rate: b.sampling_rate.unwrap_or(DEFAULT_SAMPLING_RATE),
        segment,
        randomization_salt: b.randomization_salt.unwrap_or_else(|| name.clone()),
        status: RunStatus::Created,
        status_reason: None,
        started_time: None,
        ended_time: None,
        analysis_complete_time: None,
        created_time: t,
        last_updated_time: t,
        tags,
    };
    settle_online_ab(&mut x, b.online_ab_config, true);
    check_experiment(&x)?;
    resolve(st, &x)?;
    let arn = Arns(&st.config).experiment(&project, &name);
    check_new_in_project(
        &st.evidently.experiments,
        ("experiment", "experiments"),
        &arn,
        &project,
        &name,
        st.config.quotas.experiments_per_project,
    )?;
    commit(plane, st, vec![Resource::Experiment(x.clone())], Vec::new())?;
    Ok(json!({ "experiment": view(st, &x) }))
}

pub fn get(st: &ControlState, p: &str, name: &str) -> EvResult<Value> {
    Ok(json!({ "experiment": view(st, find(st, p, name)?) }))
}

pub fn list(st: &ControlState, p: &str, call: &EvCall) -> EvResult<Value> {
    let project = find_project(st, p)?.name.clone();
    let status = status_filter(call, &aws::EXPERIMENT_STATUS)?;
    let items = st
        .evidently
        .experiments
        .iter()
        .filter(|(k, x)| k.0 == project && status.is_none_or(|s| x.status.as_str() == s))
        .map(|(k, v)| (k.1.clone(), v))
        .collect();
    let (page, next) = page(call, items, &aws::MAX_EXPERIMENTS, 50)?;
    Ok(listing("experiments", page.into_iter().map(|x| view(st, x)).collect::<Vec<_>>(), next))
}

pub fn update(plane: &Plane, st: &mut ControlState, p: &str, name: &str, call: &EvCall) -> EvResult<Value> {
    let mut x = find(st, p, name)?.clone();
    let b: UpdateBody = call.json()?;
    check_opt(&aws::DESCRIPTION, "description", b.description.as_deref())?;
    check_salt(&b.randomization_salt)?;
    if let Some(r) = b.sampling_rate {
        aws::SPLIT_WEIGHT.check("samplingRate", r)?;
    }
    let remove_segment = b.remove_segment.unwrap_or(false);
    if remove_segment && b.segment.is_some() {
        return Err(invalid("removeSegment", "cannot be used together with segment"));
    }
    let treatments = b.treatments.map(parse_treatments).transpose()?;
    let goals = b.metric_goals.map(parse_goals).transpose()?;
    if let Some(c) = &b.online_ab_config {
        parse_online_ab(c)?;
    }
    let segment = b.segment.as_deref().map(|s| segment_ref(&Arns(&st.config).base(), "segment", s)).transpose()?;
    let arn = Arns(&st.config).experiment(&x.project, &x.name);
    match x.status {
        RunStatus::Completed | RunStatus::Cancelled => {
            return Err(conflict(
                "experiment",
                &arn,
                format!("Experiment is {} and can no longer be updated.", x.status.as_str()),
            ));
        }
        RunStatus::Running => {
            let frozen = [
                ("treatments", treatments.is_some()),
                ("metricGoals", goals.is_some()),
                ("onlineAbConfig", b.online_ab_config.is_some()),
                ("randomizationSalt", b.randomization_salt.is_some()),
                ("segment", segment.is_some()),
                ("removeSegment", remove_segment),
            ];
            if let Some((field, _)) = frozen.iter().find(|(_, sent)| *sent) {
                return Err(conflict(
                    "experiment",
                    &arn,
                    format!(
                        "`{field}` cannot change while the experiment is running; only samplingRate and description can."
                    ),
                ));
            }
        }
        RunStatus::Created => {}
    }
    if let Some(d) = b.description {
        x.description = Some(d);
    }
    if let Some(r) = b.sampling_rate {
        x.sampling_rate = r;
    }
    if let Some(s) = b.randomization_salt {
        x.randomization_salt = s;
    }
    if let Some(g) = goals {
        x.metric_goals = g;
    }
    if let Some(s) = segment {
        x.segment = Some(s);
    }
    if remove_segment {
        x.segment = None;
    }
    let treatments_changed = treatments.is_some();
    if let Some(t) = treatments {
        x.treatments = t;
    }
    settle_online_ab(&mut x, b.online_ab_config, treatments_changed);
    check_experiment(&x)?;
    resolve(st, &x)?;
    x.last_updated_time = now();
    commit(plane, st, vec![Resource::Experiment(x.clone())], Vec::new())?;
    Ok(json!({ "experiment": view(st, &x) }))
}

pub fn delete(plane: &Plane, st: &mut ControlState, p: &str, name: &str) -> EvResult<Value> {
    let x = find(st, p, name)?;
    let (project, experiment) = (x.project.clone(), x.name.clone());
    if x.status == RunStatus::Running {
        let arn = Arns(&st.config).experiment(&project, &experiment);
        return Err(conflict("experiment", &arn, "Experiment is running; stop it before deleting it."));
    }
    commit(plane, st, Vec::new(), vec![format!("experiment/{project}/{experiment}")])?;
    Ok(json!({}))
}

pub fn start(plane: &Plane, st: &mut ControlState, p: &str, name: &str, call: &EvCall) -> EvResult<Value> {
    let mut x = find(st, p, name)?.clone();
    let b: StartBody = call.json()?;
    let analysis = timestamp("analysisCompleteTime", &required("analysisCompleteTime", b.analysis_complete_time)?)?;
    let t = now();
    if analysis <= t {
        return Err(invalid("analysisCompleteTime", "must be in the future"));
    }
    if analysis > t + MAX_ANALYSIS_SECONDS {
        return Err(invalid("analysisCompleteTime", "must be at most 30 days after the experiment starts"));
    }
    let arn = Arns(&st.config).experiment(&x.project, &x.name);
    if x.status != RunStatus::Created {
        return Err(conflict(
            "experiment",
            &arn,
            format!("Experiment is {}; only a CREATED experiment can be started.", x.status.as_str()),
        ));
    }
    rival_conflict(st, &x)?;
    let running =
        st.evidently.experiments.values().filter(|o| o.project == x.project && o.status == RunStatus::Running).count();
    if running >= st.config.quotas.running_experiments_per_project {
        return Err(quota(
            "experiment",
            format!(
                "A project runs at most {} experiments at a time.",
                st.config.quotas.running_experiments_per_project
            ),
        ));
    }
    x.status = RunStatus::Running;
    x.started_time = Some(t);
    x.analysis_complete_time = Some(analysis);
    x.last_updated_time = t;
    commit(plane, st, vec![Resource::Experiment(x.clone())], Vec::new())?;
    Ok(json!({ "startedTime": t }))
}

pub fn stop(plane: &Plane, st: &mut ControlState, p: &str, name: &str, call: &EvCall) -> EvResult<Value> {
    let mut x = find(st, p, name)?.clone();
    let (state, reason) = stop_body(call, &aws::EXPERIMENT_STOP_DESIRED_STATE)?;
    if x.status != RunStatus::Running {
        let arn = Arns(&st.config).experiment(&x.project, &x.name);
        return Err(conflict(
            "experiment",
            &arn,
            format!("Experiment is {}; only a RUNNING experiment can be stopped.", x.status.as_str()),
        ));
    }
    let t = now();
    x.status = state;
    x.status_reason = reason;
    x.ended_time = Some(t);
    x.last_updated_time = t;
    commit(plane, st, vec![Resource::Experiment(x.clone())], Vec::new())?;
    Ok(json!({ "endedTime": t }))
}
