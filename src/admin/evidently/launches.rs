//! CreateLaunch, GetLaunch, ListLaunches, UpdateLaunch, DeleteLaunch, StartLaunch, StopLaunch.
//!
//! A launch's request groups `{name, feature, variation}` are stored as `LaunchGroup`s with a one-entry
//! `featureVariations` map; segment overrides are stored by segment name and sent back as ARNs (spec 2.5).
//! Where the spec is silent:
//! * weights are not required to add up to 100000 (spec 2.5), but every weight must name a group of the launch;
//! * the `startTime`s of a launch's steps must differ, and so must the `evaluationOrder`s of one step's segment
//!   overrides (either would leave the rule that applies ambiguous); steps may be given in any order and may
//!   start in the past (such a step is in force at once);
//! * `scheduledSplitsConfig` may be omitted: the launch then has no step and serves nothing until one is set;
//! * an empty `eventPattern` reads as no pattern;
//! * UpdateLaunch replaces each member it is sent (groups, steps, monitors) whole; it is allowed while the
//!   launch runs, and a running launch whose new groups take a feature another running launch uses is a
//!   `ConflictException` (D6);
//! * the 500-launches quota is checked by CreateLaunch, the 50-running quota by StartLaunch; StartLaunch and
//!   StopLaunch also move `lastUpdatedTime`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::evidently::model::{
    Launch, LaunchGroup, MetricDefinition, Resource, RunStatus, ScheduledStep, SegmentOverride, Tags,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupConfig {
    name: Option<String>,
    feature: Option<String>,
    variation: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OverrideConfig {
    segment: Option<String>,
    evaluation_order: Option<i64>,
    weights: Option<BTreeMap<String, i64>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StepConfig {
    start_time: Option<Value>,
    group_weights: Option<BTreeMap<String, i64>>,
    segment_overrides: Option<Vec<OverrideConfig>>,
}

#[derive(Deserialize)]
struct SplitsConfig {
    steps: Option<Vec<StepConfig>>,
}

/// `MetricDefinitionConfig`, shared with experiments' metric goals.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MetricDefinitionConfig {
    name: Option<String>,
    entity_id_key: Option<String>,
    value_key: Option<String>,
    event_pattern: Option<String>,
    unit_label: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricMonitorConfig {
    metric_definition: Option<MetricDefinitionConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    groups: Option<Vec<GroupConfig>>,
    scheduled_splits_config: Option<SplitsConfig>,
    metric_monitors: Option<Vec<MetricMonitorConfig>>,
    randomization_salt: Option<String>,
    tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    description: Option<String>,
    groups: Option<Vec<GroupConfig>>,
    scheduled_splits_config: Option<SplitsConfig>,
    metric_monitors: Option<Vec<MetricMonitorConfig>>,
    randomization_salt: Option<String>,
}

/// StopLaunch and StopExperiment.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopBody {
    desired_state: Option<String>,
    reason: Option<String>,
}

// === helpers shared with experiments ===

pub(super) fn required<T>(field: &str, v: Option<T>) -> EvResult<T> {
    v.ok_or_else(|| invalid(field, "is required"))
}

/// A request timestamp: epoch seconds as a JSON number (botocore sends integers, other SDKs fractions), a
/// numeric string or an RFC 3339 string.
pub(super) fn timestamp(field: &str, v: &Value) -> EvResult<f64> {
    let t = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().or_else(|| {
            humantime::parse_rfc3339_weak(s.trim())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64())
        }),
        _ => None,
    };
    t.filter(|t| t.is_finite() && *t >= 0.0).ok_or_else(|| invalid(field, "must be a timestamp in epoch seconds"))
}

/// `randomizationSalt`, when sent.
pub(super) fn check_salt(v: &Option<String>) -> EvResult<()> {
    check_opt(&aws::RANDOMIZATION_SALT, "randomizationSalt", v.as_deref())
}

/// A `MetricDefinitionConfig` checked and stored.
pub(super) fn metric_definition(field: &str, c: MetricDefinitionConfig) -> EvResult<MetricDefinition> {
    let f = |m: &str| format!("{field}.{m}");
    let name = required(&f("name"), c.name)?;
    aws::CW_DIMENSION_SAFE_NAME.check(&f("name"), &name)?;
    let entity_id_key = required(&f("entityIdKey"), c.entity_id_key)?;
    aws::JSON_PATH.check(&f("entityIdKey"), &entity_id_key)?;
    let value_key = required(&f("valueKey"), c.value_key)?;
    aws::JSON_PATH.check(&f("valueKey"), &value_key)?;
    check_opt(&aws::METRIC_UNIT_LABEL, &f("unitLabel"), c.unit_label.as_deref())?;
    check_opt(&aws::METRIC_DEFINITION_CONFIG_EVENT_PATTERN_STRING, &f("eventPattern"), c.event_pattern.as_deref())?;
    let event_pattern = match c.event_pattern {
        Some(p) if !p.trim().is_empty() => {
            let parsed: Value =
                serde_json::from_str(&p).map_err(|e| invalid(&f("eventPattern"), format!("is not valid JSON: {e}")))?;
            if !parsed.is_object() {
                return Err(invalid(&f("eventPattern"), "must be a JSON object"));
            }
            Some(p)
        }
        _ => None,
    };
    Ok(MetricDefinition { name, entity_id_key, value_key, event_pattern, unit_label: c.unit_label })
}

/// The `status` filter of ListLaunches (`LaunchStatus`) and ListExperiments (`ExperimentStatus`).
pub(super) fn status_filter<'c>(call: &'c EvCall, statuses: &Text) -> EvResult<Option<&'c str>> {
    let status = call.query("status");
    check_opt(statuses, "status", status)?;
    Ok(status)
}

/// The body of StopLaunch and StopExperiment (`desired` is `LaunchStopDesiredState` or
/// `ExperimentStopDesiredState`): the final state (COMPLETED when omitted) and the reason.
pub(super) fn stop_body(call: &EvCall, desired: &Text) -> EvResult<(RunStatus, Option<String>)> {
    let b: StopBody = call.json()?;
    check_opt(desired, "desiredState", b.desired_state.as_deref())?;
    let state = match b.desired_state.as_deref() {
        None | Some("COMPLETED") => RunStatus::Completed,
        Some("CANCELLED") => RunStatus::Cancelled,
        // The model's enums hold exactly these two (the tests below hold them together).
        Some(other) => return Err(invalid("desiredState", format!("edgesplit cannot stop in state `{other}`"))),
    };
    check_opt(&aws::DESCRIPTION, "reason", b.reason.as_deref())?;
    Ok((state, b.reason))
}

/// The variation `variation` of feature `feature` in `project`: 404 for the feature, 400 on `field` for the
/// variation.
pub(super) fn check_feature_variation(
    st: &ControlState,
    project: &str,
    feature: &str,
    variation: &str,
    field: &str,
) -> EvResult<()> {
    let f = st.evidently.features.get(&(project.to_string(), feature.to_string())).ok_or_else(|| {
        let arn = Arns(&st.config).feature(project, feature);
        not_found("feature", &arn, format!("Feature does not exist with arn '{arn}'"))
    })?;
    if !f.variations.iter().any(|v| v.name == variation) {
        return Err(invalid(field, format!("`{variation}` is not a variation of feature `{feature}`")));
    }
    Ok(())
}

/// The segment named `name` must exist (404 otherwise).
pub(super) fn check_segment_exists(st: &ControlState, name: &str) -> EvResult<()> {
    if st.evidently.segments.contains_key(name) {
        return Ok(());
    }
    let arn = Arns(&st.config).segment(name);
    Err(not_found("segment", &arn, format!("Segment does not exist with arn '{arn}'")))
}

// === request parsing ===

fn parse_groups(configs: Vec<GroupConfig>) -> EvResult<Vec<LaunchGroup>> {
    aws::LAUNCH_GROUP_CONFIG_LIST.check("groups", configs.len())?;
    let mut out: Vec<LaunchGroup> = Vec::with_capacity(configs.len());
    for (i, g) in configs.into_iter().enumerate() {
        let f = |m: &str| format!("groups[{i}].{m}");
        let name = required(&f("name"), g.name)?;
        aws::GROUP_NAME.check(&f("name"), &name)?;
        let feature = required(&f("feature"), g.feature)?;
        aws::FEATURE_NAME.check(&f("feature"), &feature)?;
        let variation = required(&f("variation"), g.variation)?;
        aws::VARIATION_NAME.check(&f("variation"), &variation)?;
        check_opt(&aws::DESCRIPTION, &f("description"), g.description.as_deref())?;
        if out.iter().any(|o| o.name == name) {
            return Err(invalid("groups", format!("group `{name}` is listed twice")));
        }
        out.push(LaunchGroup {
            name,
            description: g.description,
            feature_variations: BTreeMap::from([(feature, variation)]),
        });
    }
    Ok(out)
}

/// A `GroupToWeightMap`: group names to `SplitWeight`s.
fn parse_weights(field: &str, weights: &BTreeMap<String, i64>) -> EvResult<()> {
    aws::GROUP_TO_WEIGHT_MAP.check(field, weights.len())?;
    for (g, w) in weights {
        aws::GROUP_NAME.check_key(field, g)?;
        aws::SPLIT_WEIGHT.check(&format!("{field}.{g}"), *w)?;
    }
    Ok(())
}

/// `arn_base` is the account's (segments may be named by ARN).
fn parse_steps(arn_base: &str, config: SplitsConfig) -> EvResult<Vec<ScheduledStep>> {
    let configs = required("scheduledSplitsConfig.steps", config.steps)?;
    aws::SCHEDULED_SPLIT_CONFIG_LIST.check("scheduledSplitsConfig.steps", configs.len())?;
    let mut steps: Vec<ScheduledStep> = Vec::with_capacity(configs.len());
    for (i, s) in configs.into_iter().enumerate() {
        let field = format!("scheduledSplitsConfig.steps[{i}]");
        let start_time =
            timestamp(&format!("{field}.startTime"), &required(&format!("{field}.startTime"), s.start_time)?)?;
        if steps.iter().any(|o| o.start_time == start_time) {
            return Err(invalid(&format!("{field}.startTime"), "two steps start at the same time"));
        }
        let group_weights = required(&format!("{field}.groupWeights"), s.group_weights)?;
        parse_weights(&format!("{field}.groupWeights"), &group_weights)?;
        let override_configs = s.segment_overrides.unwrap_or_default();
        aws::SEGMENT_OVERRIDES_LIST.check(&format!("{field}.segmentOverrides"), override_configs.len())?;
        let mut segment_overrides: Vec<SegmentOverride> = Vec::with_capacity(override_configs.len());
        for (j, o) in override_configs.into_iter().enumerate() {
            let of = |m: &str| format!("{field}.segmentOverrides[{j}].{m}");
            let segment = segment_ref(arn_base, &of("segment"), &required(&of("segment"), o.segment)?)?;
            let evaluation_order = required(&of("evaluationOrder"), o.evaluation_order)?;
            if segment_overrides.iter().any(|p| p.evaluation_order == evaluation_order) {
                return Err(invalid(
                    &of("evaluationOrder"),
                    "two segment overrides of one step have the same evaluationOrder",
                ));
            }
            let weights = required(&of("weights"), o.weights)?;
            parse_weights(&of("weights"), &weights)?;
            segment_overrides.push(SegmentOverride { segment, evaluation_order, weights });
        }
        steps.push(ScheduledStep { start_time, group_weights, segment_overrides });
    }
    Ok(steps)
}

fn parse_monitors(configs: Vec<MetricMonitorConfig>) -> EvResult<Vec<MetricDefinition>> {
    aws::METRIC_MONITOR_CONFIG_LIST.check("metricMonitors", configs.len())?;
    let mut out: Vec<MetricDefinition> = Vec::with_capacity(configs.len());
    for (i, m) in configs.into_iter().enumerate() {
        let field = format!("metricMonitors[{i}].metricDefinition");
        let d = metric_definition(&field, required(&field, m.metric_definition)?)?;
        if out.iter().any(|o| o.name == d.name) {
            return Err(invalid("metricMonitors", format!("metric `{}` is listed twice", d.name)));
        }
        out.push(d);
    }
    Ok(out)
}

// === rules on the whole launch ===

/// Every weight names a group of the launch.
fn check_weights_name_groups(l: &Launch) -> EvResult<()> {
    let groups: BTreeSet<&str> = l.groups.iter().map(|g| g.name.as_str()).collect();
    let stray = |w: &BTreeMap<String, i64>| w.keys().find(|g| !groups.contains(g.as_str())).cloned();
    for (i, s) in l.steps.iter().enumerate() {
        let field = format!("scheduledSplitsConfig.steps[{i}]");
        if let Some(g) = stray(&s.group_weights) {
            return Err(invalid(&format!("{field}.groupWeights"), format!("`{g}` is not a group of this launch")));
        }
        for (j, o) in s.segment_overrides.iter().enumerate() {
            if let Some(g) = stray(&o.weights) {
                return Err(invalid(
                    &format!("{field}.segmentOverrides[{j}].weights"),
                    format!("`{g}` is not a group of this launch"),
                ));
            }
        }
    }
    Ok(())
}

/// The features, variations and segments the launch names exist.
fn resolve(st: &ControlState, l: &Launch) -> EvResult<()> {
    for (i, g) in l.groups.iter().enumerate() {
        for (feature, variation) in &g.feature_variations {
            check_feature_variation(st, &l.project, feature, variation, &format!("groups[{i}].variation"))?;
        }
    }
    for s in &l.steps {
        for o in &s.segment_overrides {
            check_segment_exists(st, &o.segment)?;
        }
    }
    Ok(())
}

fn features_of(l: &Launch) -> impl Iterator<Item = &String> {
    l.groups.iter().flat_map(|g| g.feature_variations.keys())
}

/// D6: another running launch of the project that serves one of this launch's features.
fn running_rival(st: &ControlState, l: &Launch) -> Option<(String, String)> {
    st.evidently
        .launches
        .values()
        .filter(|o| o.project == l.project && o.name != l.name && o.status == RunStatus::Running)
        .find_map(|o| {
            let theirs: BTreeSet<&String> = features_of(o).collect();
            features_of(l).find(|f| theirs.contains(f)).map(|f| (f.clone(), o.name.clone()))
        })
}

fn rival_conflict(st: &ControlState, l: &Launch) -> EvResult<()> {
    match running_rival(st, l) {
        Some((feature, other)) => {
            let arn = Arns(&st.config).launch(&l.project, &l.name);
            Err(conflict(
                "launch",
                &arn,
                format!(
                    "Feature `{feature}` already has a running launch (`{other}`); a feature has at most one running launch."
                ),
            ))
        }
        None => Ok(()),
    }
}

fn ended(s: RunStatus) -> bool {
    matches!(s, RunStatus::Completed | RunStatus::Cancelled)
}

// === wire shape ===

pub fn view(st: &ControlState, l: &Launch) -> Value {
    let arns = Arns(&st.config);
    let mut v = json!({
        "arn": arns.launch(&l.project, &l.name),
        "name": l.name,
        "project": arns.project(&l.project),
        "status": l.status.as_str(),
        "type": "aws.evidently.splits",
        "groups": l.groups,
        "metricMonitors": l.metric_monitors.iter().map(|m| json!({ "metricDefinition": m })).collect::<Vec<_>>(),
        "randomizationSalt": l.randomization_salt,
        "createdTime": l.created_time,
        "lastUpdatedTime": l.last_updated_time,
        "tags": l.tags,
    });
    if !l.steps.is_empty() {
        let steps: Vec<Value> = l
            .steps
            .iter()
            .map(|s| {
                let overrides: Vec<Value> = s
                    .segment_overrides
                    .iter()
                    .map(|o| json!({ "segment": arns.segment(&o.segment), "evaluationOrder": o.evaluation_order, "weights": o.weights }))
                    .collect();
                json!({ "startTime": s.start_time, "groupWeights": s.group_weights, "segmentOverrides": overrides })
            })
            .collect();
        v["scheduledSplitsDefinition"] = json!({ "steps": steps });
    }
    if let Some(d) = &l.description {
        v["description"] = json!(d);
    }
    if let Some(r) = &l.status_reason {
        v["statusReason"] = json!(r);
    }
    if let Some(t) = l.started_time {
        let mut execution = json!({ "startedTime": t });
        if let Some(e) = l.ended_time {
            execution["endedTime"] = json!(e);
        }
        v["execution"] = execution;
    }
    v
}

/// The launch `name` of project `p`, or 404.
pub fn find<'a>(st: &'a ControlState, p: &str, name: &str) -> EvResult<&'a Launch> {
    let project = find_project(st, p)?.name.clone();
    aws::LAUNCH_NAME.check("launch", name)?;
    st.evidently.launches.get(&(project.clone(), name.to_string())).ok_or_else(|| {
        let arn = Arns(&st.config).launch(&project, name);
        not_found("launch", &arn, format!("Launch does not exist with arn '{arn}'"))
    })
}

// === operations ===

pub fn create(plane: &Plane, st: &mut ControlState, p: &str, call: &EvCall) -> EvResult<Value> {
    let project = find_project(st, p)?.name.clone();
    let b: CreateBody = call.json()?;
    let name = required("name", b.name)?;
    aws::LAUNCH_NAME.check("name", &name)?;
    check_opt(&aws::DESCRIPTION, "description", b.description.as_deref())?;
    check_salt(&b.randomization_salt)?;
    let tags = b.tags.unwrap_or_default();
    check_tags(&tags)?;
    let groups = parse_groups(required("groups", b.groups)?)?;
    let base = Arns(&st.config).base();
    let steps = b.scheduled_splits_config.map(|c| parse_steps(&base, c)).transpose()?.unwrap_or_default();
    let metric_monitors = b.metric_monitors.map(parse_monitors).transpose()?.unwrap_or_default();
    let t = now();
    let l = Launch {
        project: project.clone(),
        name: name.clone(),
        description: b.description,
        groups,
        steps,
        metric_monitors,
        randomization_salt: b.randomization_salt.unwrap_or_else(|| name.clone()),
        status: RunStatus::Created,
        status_reason: None,
        started_time: None,
        ended_time: None,
        created_time: t,
        last_updated_time: t,
        tags,
    };
    check_weights_name_groups(&l)?;
    resolve(st, &l)?;
    let arn = Arns(&st.config).launch(&project, &name);
    check_new_in_project(
        &st.evidently.launches,
        ("launch", "launches"),
        &arn,
        &project,
        &name,
        st.config.quotas.launches_per_project,
    )?;
    commit(plane, st, vec![Resource::Launch(l.clone())], Vec::new())?;
    Ok(json!({ "launch": view(st, &l) }))
}

pub fn get(st: &ControlState, p: &str, name: &str) -> EvResult<Value> {
    Ok(json!({ "launch": view(st, find(st, p, name)?) }))
}

pub fn list(st: &ControlState, p: &str, call: &EvCall) -> EvResult<Value> {
    let project = find_project(st, p)?.name.clone();
    let status = status_filter(call, &aws::LAUNCH_STATUS)?;
    let items = st
        .evidently
        .launches
        .iter()
        .filter(|(k, l)| k.0 == project && status.is_none_or(|s| l.status.as_str() == s))
        .map(|(k, v)| (k.1.clone(), v))
        .collect();
    let (page, next) = page(call, items, &aws::MAX_LAUNCHES, 50)?;
    Ok(listing("launches", page.into_iter().map(|l| view(st, l)).collect::<Vec<_>>(), next))
}

pub fn update(plane: &Plane, st: &mut ControlState, p: &str, name: &str, call: &EvCall) -> EvResult<Value> {
    let mut l = find(st, p, name)?.clone();
    let b: UpdateBody = call.json()?;
    check_opt(&aws::DESCRIPTION, "description", b.description.as_deref())?;
    check_salt(&b.randomization_salt)?;
    let groups = b.groups.map(parse_groups).transpose()?;
    let base = Arns(&st.config).base();
    let steps = b.scheduled_splits_config.map(|c| parse_steps(&base, c)).transpose()?;
    let monitors = b.metric_monitors.map(parse_monitors).transpose()?;
    let arn = Arns(&st.config).launch(&l.project, &l.name);
    if ended(l.status) {
        return Err(conflict("launch", &arn, format!("Launch is {} and can no longer be updated.", l.status.as_str())));
    }
    if let Some(d) = b.description {
        l.description = Some(d);
    }
    if let Some(s) = b.randomization_salt {
        l.randomization_salt = s;
    }
    if let Some(g) = groups {
        l.groups = g;
    }
    if let Some(s) = steps {
        l.steps = s;
    }
    if let Some(m) = monitors {
        l.metric_monitors = m;
    }
    check_weights_name_groups(&l)?;
    resolve(st, &l)?;
    if l.status == RunStatus::Running {
        rival_conflict(st, &l)?;
    }
    l.last_updated_time = now();
    commit(plane, st, vec![Resource::Launch(l.clone())], Vec::new())?;
    Ok(json!({ "launch": view(st, &l) }))
}

pub fn delete(plane: &Plane, st: &mut ControlState, p: &str, name: &str) -> EvResult<Value> {
    let l = find(st, p, name)?;
    let (project, launch) = (l.project.clone(), l.name.clone());
    if l.status == RunStatus::Running {
        let arn = Arns(&st.config).launch(&project, &launch);
        return Err(conflict("launch", &arn, "Launch is running; stop it before deleting it."));
    }
    commit(plane, st, Vec::new(), vec![format!("launch/{project}/{launch}")])?;
    Ok(json!({}))
}

pub fn start(plane: &Plane, st: &mut ControlState, p: &str, name: &str) -> EvResult<Value> {
    let mut l = find(st, p, name)?.clone();
    let arn = Arns(&st.config).launch(&l.project, &l.name);
    if l.status != RunStatus::Created {
        return Err(conflict(
            "launch",
            &arn,
            format!("Launch is {}; only a CREATED launch can be started.", l.status.as_str()),
        ));
    }
    rival_conflict(st, &l)?;
    let running =
        st.evidently.launches.values().filter(|o| o.project == l.project && o.status == RunStatus::Running).count();
    if running >= st.config.quotas.running_launches_per_project {
        return Err(quota(
            "launch",
            format!("A project runs at most {} launches at a time.", st.config.quotas.running_launches_per_project),
        ));
    }
    let t = now();
    l.status = RunStatus::Running;
    l.started_time = Some(t);
    l.last_updated_time = t;
    commit(plane, st, vec![Resource::Launch(l.clone())], Vec::new())?;
    Ok(json!({ "launch": view(st, &l) }))
}

pub fn stop(plane: &Plane, st: &mut ControlState, p: &str, name: &str, call: &EvCall) -> EvResult<Value> {
    let mut l = find(st, p, name)?.clone();
    let (state, reason) = stop_body(call, &aws::LAUNCH_STOP_DESIRED_STATE)?;
    if l.status != RunStatus::Running {
        let arn = Arns(&st.config).launch(&l.project, &l.name);
        return Err(conflict(
            "launch",
            &arn,
            format!("Launch is {}; only a RUNNING launch can be stopped.", l.status.as_str()),
        ));
    }
    let t = now();
    l.status = state;
    l.status_reason = reason;
    l.ended_time = Some(t);
    l.last_updated_time = t;
    commit(plane, st, vec![Resource::Launch(l.clone())], Vec::new())?;
    Ok(json!({ "endedTime": t }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_states_are_the_models() {
        let all = [RunStatus::Created, RunStatus::Running, RunStatus::Completed, RunStatus::Cancelled];
        for statuses in [&aws::LAUNCH_STATUS, &aws::EXPERIMENT_STATUS] {
            for s in all {
                assert!(statuses.values.contains(&s.as_str()), "{} lacks {}", statuses.shape, s.as_str());
            }
        }
        // stop_body maps exactly these.
        for desired in [&aws::LAUNCH_STOP_DESIRED_STATE, &aws::EXPERIMENT_STOP_DESIRED_STATE] {
            assert_eq!(desired.values, [RunStatus::Completed.as_str(), RunStatus::Cancelled.as_str()]);
        }
    }
}
