//! Evidently's rules on the whole state: names taken, quotas, references that must exist, status
//! transitions, one running launch and one running experiment per feature (D6). Pure: each function
//! takes the state and a decoded input (`evidently::input`) and returns the resources to write, or a
//! [`DomainError`]. Launches and experiments share their lifecycle (create checks, start, stop,
//! delete, counters) through [`Run`].
//!
//! Where the spec is silent:
//! * UpdateLaunch replaces each member it is sent (groups, steps, monitors) whole; it is allowed while
//!   the launch runs, and a running launch whose new groups take a feature another running launch uses
//!   is a conflict (D6);
//! * `samplingRate` defaults to 10000 (10 %): the model documents no default, only 10000 as its example;
//! * `onlineAbConfig` defaults to the first treatment as control and equal weights adding up to 100000
//!   (the remainder going to the first treatments); weights sent need not add up to 100000 (the engine
//!   normalises them by their sum, D5), and a treatment left out of `treatmentWeights` has weight 0;
//! * UpdateExperiment: when `treatments` change and `onlineAbConfig` (or one of its members) is not
//!   sent, the current control is kept if it is still a treatment (else the first treatment becomes
//!   control), and the current weights are kept if they still name exactly the treatments (else equal
//!   weights); `removeSegment: false` is a no-op, also while running;
//! * the per-project quotas are checked by the creates, the running quotas by the starts; starts and
//!   stops also move `lastUpdatedTime`.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::EvidentlyQuotas;
use crate::domain::error::{DomainError, DomainResult, QuotaScope, ResourceId, ResourceKind};
use crate::evidently::input::{
    ExperimentPatch, FeaturePatch, LaunchPatch, NewExperiment, NewFeature, NewLaunch, NewProject, OnlineAbBody,
    ProjectPatch, Stop, check_tags, check_variation,
};
use crate::evidently::model::{EvResources, Experiment, Feature, Launch, Project, Resource, RunStatus, Segment, Tags};
use crate::limits::evidently as aws;

const DEFAULT_SAMPLING_RATE: i64 = 10_000;
const MAX_ANALYSIS_SECONDS: f64 = 30.0 * 24.0 * 3600.0;
/// A feature's entity overrides may take at most this much (each entry counting its entity id, its
/// variation name and 6 bytes): AWS documents it; the model bounds only the entries (`EntityOverrideMap`).
const MAX_OVERRIDE_BYTES: usize = 40 * 1024;

fn conflict(resource: ResourceId, message: impl Into<String>) -> DomainError {
    DomainError::Conflict { resource, message: message.into() }
}

// === projects ===

pub fn project<'a>(ev: &'a EvResources, name: &str) -> DomainResult<&'a Project> {
    ev.projects.get(name).ok_or_else(|| DomainError::NotFound(ResourceId::Project(name.to_string())))
}

pub fn create_project(ev: &EvResources, q: &EvidentlyQuotas, p: NewProject, t: f64) -> DomainResult<Project> {
    if ev.projects.contains_key(&p.name) {
        return Err(DomainError::Exists(ResourceId::Project(p.name)));
    }
    if ev.projects.len() >= q.projects {
        return Err(quota(ResourceKind::Project, QuotaScope::Account, q.projects));
    }
    Ok(Project {
        name: p.name,
        description: p.description,
        created_time: t,
        last_updated_time: t,
        app_config_resource: p.app_config_resource,
        data_delivery: p.data_delivery,
        tags: p.tags,
    })
}

pub fn update_project(ev: &EvResources, name: &str, patch: ProjectPatch, t: f64) -> DomainResult<Project> {
    let mut p = project(ev, name)?.clone();
    if let Some(d) = patch.description {
        p.description = Some(d);
    }
    if let Some(a) = patch.app_config_resource {
        p.app_config_resource = Some(a);
    }
    p.last_updated_time = t;
    Ok(p)
}

pub(crate) fn set_data_delivery(
    ev: &EvResources,
    name: &str,
    data_delivery: Option<serde_json::Value>,
    t: f64,
) -> DomainResult<Project> {
    let mut p = project(ev, name)?.clone();
    p.data_delivery = data_delivery;
    p.last_updated_time = t;
    Ok(p)
}

/// The project's store key, if it holds nothing.
pub fn delete_project(ev: &EvResources, name: &str) -> DomainResult<String> {
    project(ev, name)?;
    let busy = ev.features.keys().chain(ev.launches.keys()).chain(ev.experiments.keys()).any(|k| k.0 == name);
    if busy {
        return Err(conflict(ResourceId::Project(name.to_string()), "Project has sub-resources"));
    }
    Ok(format!("project/{name}"))
}

fn quota(kind: ResourceKind, scope: QuotaScope, limit: usize) -> DomainError {
    DomainError::Quota { kind, scope, limit }
}

/// A new resource in a project: taken names and the per-project quota.
fn check_new_in_project<T>(
    map: &BTreeMap<(String, String), T>,
    id: ResourceId,
    (project, name): (&str, &str),
    limit: usize,
) -> DomainResult<()> {
    if map.contains_key(&(project.to_string(), name.to_string())) {
        return Err(DomainError::Exists(id));
    }
    if map.keys().filter(|k| k.0 == project).count() >= limit {
        return Err(quota(id.kind(), QuotaScope::Project, limit));
    }
    Ok(())
}

// === features ===

pub fn feature<'a>(ev: &'a EvResources, p: &str, f: &str) -> DomainResult<&'a Feature> {
    project(ev, p)?;
    ev.features
        .get(&(p.to_string(), f.to_string()))
        .ok_or_else(|| DomainError::NotFound(ResourceId::Feature(p.to_string(), f.to_string())))
}

/// Rules that must hold for any feature after a create or an update.
fn check_feature(f: &Feature) -> DomainResult<()> {
    // The stored feature's list (`VariationsList`) is unbounded in the model; AWS documents 1 to 5
    // variations per feature, the bounds of the request's `VariationConfigsList`, which edgesplit holds
    // the feature to after an update too.
    aws::VARIATION_CONFIGS_LIST.check("variations", f.variations.len())?;
    for (i, v) in f.variations.iter().enumerate() {
        check_variation(&format!("variations[{i}]"), v)?;
        if f.variations[..i].iter().any(|w| w.name == v.name) {
            return Err(DomainError::invalid("variations", format!("variation `{}` is listed twice", v.name)));
        }
    }
    let kind = f.variations.first().map(|v| v.value.value_type());
    if f.variations.iter().any(|v| Some(v.value.value_type()) != kind) {
        return Err(DomainError::invalid("variations", "all variations of a feature must have the same value type"));
    }
    if !f.variations.iter().any(|v| v.name == f.default_variation) {
        return Err(DomainError::invalid(
            "defaultVariation",
            format!("`{}` is not a variation of this feature", f.default_variation),
        ));
    }
    aws::ENTITY_OVERRIDE_MAP.check("entityOverrides", f.entity_overrides.len())?;
    let mut size = 0;
    for (entity, variation) in &f.entity_overrides {
        aws::ENTITY_ID.check_key("entityOverrides", entity)?;
        aws::VARIATION_NAME.check_map_value("entityOverrides", variation)?;
        if !f.variations.iter().any(|v| &v.name == variation) {
            return Err(DomainError::invalid(
                "entityOverrides",
                format!("`{variation}` (for entity `{entity}`) is not a variation of this feature"),
            ));
        }
        size += entity.len() + variation.len() + 6;
    }
    if size > MAX_OVERRIDE_BYTES {
        return Err(DomainError::invalid("entityOverrides", "entity overrides may take at most 40 KB"));
    }
    Ok(())
}

/// Launches and experiments of the project, not yet ended, that serve `feature`: (launches,
/// experiments), the feature's evaluation rules.
pub(crate) fn rules_of<'a>(
    ev: &'a EvResources,
    project: &str,
    feature: &str,
) -> (Vec<&'a Launch>, Vec<&'a Experiment>) {
    let live = |s: RunStatus| matches!(s, RunStatus::Created | RunStatus::Running);
    let launches = ev
        .launches
        .iter()
        .filter(|((p, _), l)| p == project && live(l.status) && l.features().any(|f| f == feature))
        .map(|(_, l)| l)
        .collect();
    let experiments = ev
        .experiments
        .iter()
        .filter(|((p, _), x)| p == project && live(x.status) && x.features().any(|f| f == feature))
        .map(|(_, x)| x)
        .collect();
    (launches, experiments)
}

pub fn create_feature(ev: &EvResources, q: &EvidentlyQuotas, p: &str, n: NewFeature, t: f64) -> DomainResult<Feature> {
    project(ev, p)?;
    let f = Feature {
        project: p.to_string(),
        name: n.name,
        description: n.description,
        variations: n.variations,
        default_variation: n.default_variation,
        evaluation_strategy: n.evaluation_strategy,
        entity_overrides: n.entity_overrides,
        created_time: t,
        last_updated_time: t,
        tags: n.tags,
    };
    check_feature(&f)?;
    let id = ResourceId::Feature(p.to_string(), f.name.clone());
    check_new_in_project(&ev.features, id, (p, &f.name), q.features_per_project)?;
    Ok(f)
}

pub fn update_feature(ev: &EvResources, p: &str, name: &str, patch: FeaturePatch, t: f64) -> DomainResult<Feature> {
    let mut f = feature(ev, p, name)?.clone();
    for v in patch.add_or_update_variations {
        match f.variations.iter_mut().find(|w| w.name == v.name) {
            Some(existing) => existing.value = v.value,
            None => f.variations.push(v),
        }
    }
    if !patch.remove_variations.is_empty() {
        let (launches, experiments) = rules_of(ev, p, name);
        let used: BTreeSet<&str> = launches
            .iter()
            .flat_map(|l| l.groups.iter().filter_map(|g| g.feature_variations.get(name)).map(String::as_str))
            .chain(
                experiments
                    .iter()
                    .flat_map(|x| x.treatments.iter().filter(|t| t.feature == name).map(|t| t.variation.as_str())),
            )
            .collect();
        if let Some(busy) = patch.remove_variations.iter().find(|r| used.contains(r.as_str())) {
            return Err(conflict(
                ResourceId::Feature(p.to_string(), name.to_string()),
                format!("Variation `{busy}` is used by a launch or an experiment that has not ended."),
            ));
        }
        f.variations.retain(|v| !patch.remove_variations.contains(&v.name));
    }
    if let Some(d) = patch.default_variation {
        f.default_variation = d;
    }
    if let Some(s) = patch.evaluation_strategy {
        f.evaluation_strategy = s;
    }
    if let Some(d) = patch.description {
        f.description = Some(d);
    }
    if let Some(o) = patch.entity_overrides {
        f.entity_overrides = o;
    }
    check_feature(&f)?;
    f.last_updated_time = t;
    Ok(f)
}

pub fn delete_feature(ev: &EvResources, p: &str, name: &str) -> DomainResult<String> {
    feature(ev, p, name)?;
    let (launches, experiments) = rules_of(ev, p, name);
    if !launches.is_empty() || !experiments.is_empty() {
        return Err(conflict(
            ResourceId::Feature(p.to_string(), name.to_string()),
            "Feature is used by a launch or an experiment that has not ended.",
        ));
    }
    Ok(format!("feature/{p}/{name}"))
}

/// The variation `variation` of feature `feature` in `project`: not found for the feature, invalid
/// `field` for the variation.
fn check_feature_variation(
    ev: &EvResources,
    project: &str,
    feature: &str,
    variation: &str,
    field: &str,
) -> DomainResult<()> {
    let f = ev
        .features
        .get(&(project.to_string(), feature.to_string()))
        .ok_or_else(|| DomainError::NotFound(ResourceId::Feature(project.to_string(), feature.to_string())))?;
    if !f.variations.iter().any(|v| v.name == variation) {
        return Err(DomainError::invalid(field, format!("`{variation}` is not a variation of feature `{feature}`")));
    }
    Ok(())
}

// === segments ===

pub fn segment<'a>(ev: &'a EvResources, name: &str) -> DomainResult<&'a Segment> {
    ev.segments.get(name).ok_or_else(|| DomainError::NotFound(ResourceId::Segment(name.to_string())))
}

/// Launches and experiments that use segment `name`: (launches, experiments).
pub(crate) fn segment_users<'a>(ev: &'a EvResources, name: &str) -> (Vec<&'a Launch>, Vec<&'a Experiment>) {
    let launches = ev
        .launches
        .values()
        .filter(|l| l.steps.iter().any(|s| s.segment_overrides.iter().any(|o| o.segment == name)))
        .collect();
    let experiments = ev.experiments.values().filter(|x| x.segment.as_deref() == Some(name)).collect();
    (launches, experiments)
}

pub fn create_segment(ev: &EvResources, q: &EvidentlyQuotas, mut s: Segment, t: f64) -> DomainResult<Segment> {
    if ev.segments.contains_key(&s.name) {
        return Err(DomainError::Exists(ResourceId::Segment(s.name)));
    }
    if ev.segments.len() >= q.segments {
        return Err(quota(ResourceKind::Segment, QuotaScope::Account, q.segments));
    }
    s.created_time = t;
    s.last_updated_time = t;
    Ok(s)
}

pub fn delete_segment(ev: &EvResources, name: &str) -> DomainResult<String> {
    segment(ev, name)?;
    let (launches, experiments) = segment_users(ev, name);
    if !launches.is_empty() || !experiments.is_empty() {
        return Err(conflict(ResourceId::Segment(name.to_string()), "Segment is in use by a launch or an experiment."));
    }
    Ok(format!("segment/{name}"))
}

fn check_segment_exists(ev: &EvResources, name: &str) -> DomainResult<()> {
    segment(ev, name).map(drop)
}

// === tags ===

/// The resource with its tags changed: `add` merged in, then `remove` taken out.
pub(crate) fn retag(ev: &EvResources, id: &ResourceId, add: Tags, remove: &[String]) -> DomainResult<Resource> {
    let mut r = resource(ev, id)?;
    let tags = match &mut r {
        Resource::Project(p) => &mut p.tags,
        Resource::Feature(f) => &mut f.tags,
        Resource::Launch(l) => &mut l.tags,
        Resource::Experiment(x) => &mut x.tags,
        Resource::Segment(s) => &mut s.tags,
    };
    tags.extend(add);
    for k in remove {
        tags.remove(k);
    }
    check_tags(tags)?;
    Ok(r)
}

/// The resource `id` names, or not found (by its ARN, as the tagging calls name it).
pub fn resource(ev: &EvResources, id: &ResourceId) -> DomainResult<Resource> {
    let pair = |p: &str, n: &str| (p.to_string(), n.to_string());
    let found = match id {
        ResourceId::Project(p) => ev.projects.get(p).cloned().map(Resource::Project),
        ResourceId::Feature(p, n) => ev.features.get(&pair(p, n)).cloned().map(Resource::Feature),
        ResourceId::Launch(p, n) => ev.launches.get(&pair(p, n)).cloned().map(Resource::Launch),
        ResourceId::Experiment(p, n) => ev.experiments.get(&pair(p, n)).cloned().map(Resource::Experiment),
        ResourceId::Segment(s) => ev.segments.get(s).cloned().map(Resource::Segment),
        ResourceId::Policy(_) | ResourceId::Distribution(_) | ResourceId::Rollout(_) | ResourceId::Arn(..) => None,
    };
    found.ok_or_else(|| DomainError::NotFound(id.clone()))
}

// === the lifecycle launches and experiments share ===

/// A launch or an experiment: CREATED -> RUNNING -> COMPLETED | CANCELLED.
pub trait Run: Clone + Sized {
    const KIND: ResourceKind;
    fn all(ev: &EvResources) -> &BTreeMap<(String, String), Self>;
    fn id(project: &str, name: &str) -> ResourceId;
    fn per_project(q: &EvidentlyQuotas) -> usize;
    fn running_per_project(q: &EvidentlyQuotas) -> usize;
    fn into_resource(self) -> Resource;
    fn project(&self) -> &str;
    fn name(&self) -> &str;
    fn status(&self) -> RunStatus;
    /// The features it serves.
    fn features(&self) -> impl Iterator<Item = &str>;
    /// Moves it to `status` at `t`: started or ended, with the reason given.
    fn set_status(&mut self, status: RunStatus, reason: Option<String>, t: f64);
}

impl Run for Launch {
    const KIND: ResourceKind = ResourceKind::Launch;
    fn all(ev: &EvResources) -> &BTreeMap<(String, String), Self> {
        &ev.launches
    }
    fn id(project: &str, name: &str) -> ResourceId {
        ResourceId::Launch(project.to_string(), name.to_string())
    }
    fn per_project(q: &EvidentlyQuotas) -> usize {
        q.launches_per_project
    }
    fn running_per_project(q: &EvidentlyQuotas) -> usize {
        q.running_launches_per_project
    }
    fn into_resource(self) -> Resource {
        Resource::Launch(self)
    }
    fn project(&self) -> &str {
        &self.project
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn status(&self) -> RunStatus {
        self.status
    }
    fn features(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flat_map(|g| g.feature_variations.keys()).map(String::as_str)
    }
    fn set_status(&mut self, status: RunStatus, reason: Option<String>, t: f64) {
        set_status(
            &mut self.status,
            &mut self.status_reason,
            (&mut self.started_time, &mut self.ended_time),
            status,
            reason,
            t,
        );
        self.last_updated_time = t;
    }
}

impl Run for Experiment {
    const KIND: ResourceKind = ResourceKind::Experiment;
    fn all(ev: &EvResources) -> &BTreeMap<(String, String), Self> {
        &ev.experiments
    }
    fn id(project: &str, name: &str) -> ResourceId {
        ResourceId::Experiment(project.to_string(), name.to_string())
    }
    fn per_project(q: &EvidentlyQuotas) -> usize {
        q.experiments_per_project
    }
    fn running_per_project(q: &EvidentlyQuotas) -> usize {
        q.running_experiments_per_project
    }
    fn into_resource(self) -> Resource {
        Resource::Experiment(self)
    }
    fn project(&self) -> &str {
        &self.project
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn status(&self) -> RunStatus {
        self.status
    }
    fn features(&self) -> impl Iterator<Item = &str> {
        self.treatments.iter().map(|t| t.feature.as_str())
    }
    fn set_status(&mut self, status: RunStatus, reason: Option<String>, t: f64) {
        set_status(
            &mut self.status,
            &mut self.status_reason,
            (&mut self.started_time, &mut self.ended_time),
            status,
            reason,
            t,
        );
        self.last_updated_time = t;
    }
}

fn set_status(
    current: &mut RunStatus,
    status_reason: &mut Option<String>,
    (started, ended): (&mut Option<f64>, &mut Option<f64>),
    status: RunStatus,
    reason: Option<String>,
    t: f64,
) {
    *current = status;
    match status {
        RunStatus::Running => *started = Some(t),
        RunStatus::Completed | RunStatus::Cancelled => {
            *ended = Some(t);
            *status_reason = reason;
        }
        RunStatus::Created => {}
    }
}

/// The launch or experiment `name` of project `p`, or not found.
pub fn find<'a, R: Run>(ev: &'a EvResources, p: &str, name: &str) -> DomainResult<&'a R> {
    project(ev, p)?;
    R::all(ev).get(&(p.to_string(), name.to_string())).ok_or_else(|| DomainError::NotFound(R::id(p, name)))
}

/// How many of the project's launches (or experiments) there are, and how many run.
pub fn counts<R: Run>(ev: &EvResources, project: &str) -> (usize, usize) {
    let mine = R::all(ev).iter().filter(|(k, _)| k.0 == project);
    mine.fold((0, 0), |(n, running), (_, r)| (n + 1, running + usize::from(r.status() == RunStatus::Running)))
}

/// D6: another running launch (or experiment) of the project that serves one of this one's features.
fn rival_conflict<R: Run>(ev: &EvResources, r: &R) -> DomainResult<()> {
    let mine: BTreeSet<&str> = r.features().collect();
    let rival = R::all(ev)
        .values()
        .filter(|o| o.project() == r.project() && o.name() != r.name() && o.status() == RunStatus::Running)
        .find_map(|o| o.features().find(|f| mine.contains(f)).map(|f| (f.to_string(), o.name().to_string())));
    match rival {
        Some((feature, other)) => {
            let kind = R::KIND.name();
            Err(conflict(
                R::id(r.project(), r.name()),
                format!(
                    "Feature `{feature}` already has a running {kind} (`{other}`); a feature has at most one running {kind}."
                ),
            ))
        }
        None => Ok(()),
    }
}

fn check_not_ended<R: Run>(r: &R) -> DomainResult<()> {
    if matches!(r.status(), RunStatus::Completed | RunStatus::Cancelled) {
        return Err(conflict(
            R::id(r.project(), r.name()),
            format!("{} is {} and can no longer be updated.", R::KIND.title(), r.status().as_str()),
        ));
    }
    Ok(())
}

pub fn start<R: Run>(ev: &EvResources, q: &EvidentlyQuotas, mut r: R, t: f64) -> DomainResult<R> {
    if r.status() != RunStatus::Created {
        return Err(conflict(
            R::id(r.project(), r.name()),
            format!(
                "{} is {}; only a CREATED {} can be started.",
                R::KIND.title(),
                r.status().as_str(),
                R::KIND.name()
            ),
        ));
    }
    rival_conflict(ev, &r)?;
    let limit = R::running_per_project(q);
    if counts::<R>(ev, r.project()).1 >= limit {
        return Err(quota(R::KIND, QuotaScope::Running, limit));
    }
    r.set_status(RunStatus::Running, None, t);
    Ok(r)
}

pub fn stop<R: Run>(mut r: R, stop: Stop, t: f64) -> DomainResult<R> {
    if r.status() != RunStatus::Running {
        return Err(conflict(
            R::id(r.project(), r.name()),
            format!(
                "{} is {}; only a RUNNING {} can be stopped.",
                R::KIND.title(),
                r.status().as_str(),
                R::KIND.name()
            ),
        ));
    }
    r.set_status(stop.state, stop.reason, t);
    Ok(r)
}

/// The store key of a launch or experiment that does not run.
pub fn delete<R: Run>(ev: &EvResources, p: &str, name: &str) -> DomainResult<String> {
    let r = find::<R>(ev, p, name)?;
    if r.status() == RunStatus::Running {
        return Err(conflict(R::id(p, name), format!("{} is running; stop it before deleting it.", R::KIND.title())));
    }
    Ok(format!("{}/{p}/{name}", R::KIND.name()))
}

/// The checks of a new launch or experiment against the others of its project.
fn check_new<R: Run>(ev: &EvResources, q: &EvidentlyQuotas, r: &R) -> DomainResult<()> {
    check_new_in_project(R::all(ev), R::id(r.project(), r.name()), (r.project(), r.name()), R::per_project(q))
}

// === launches ===

/// Every weight names a group of the launch.
fn check_weights_name_groups(l: &Launch) -> DomainResult<()> {
    let groups: BTreeSet<&str> = l.groups.iter().map(|g| g.name.as_str()).collect();
    let stray = |w: &BTreeMap<String, i64>| w.keys().find(|g| !groups.contains(g.as_str())).cloned();
    for (i, s) in l.steps.iter().enumerate() {
        let field = format!("scheduledSplitsConfig.steps[{i}]");
        if let Some(g) = stray(&s.group_weights) {
            return Err(DomainError::invalid(
                format!("{field}.groupWeights"),
                format!("`{g}` is not a group of this launch"),
            ));
        }
        for (j, o) in s.segment_overrides.iter().enumerate() {
            if let Some(g) = stray(&o.weights) {
                return Err(DomainError::invalid(
                    format!("{field}.segmentOverrides[{j}].weights"),
                    format!("`{g}` is not a group of this launch"),
                ));
            }
        }
    }
    Ok(())
}

/// The features, variations and segments the launch names exist.
fn resolve_launch(ev: &EvResources, l: &Launch) -> DomainResult<()> {
    for (i, g) in l.groups.iter().enumerate() {
        for (feature, variation) in &g.feature_variations {
            check_feature_variation(ev, &l.project, feature, variation, &format!("groups[{i}].variation"))?;
        }
    }
    for s in &l.steps {
        for o in &s.segment_overrides {
            check_segment_exists(ev, &o.segment)?;
        }
    }
    Ok(())
}

fn patch_launch(l: &mut Launch, patch: LaunchPatch) {
    if let Some(d) = patch.description {
        l.description = Some(d);
    }
    if let Some(s) = patch.randomization_salt {
        l.randomization_salt = s;
    }
    if let Some(g) = patch.groups {
        l.groups = g;
    }
    if let Some(s) = patch.steps {
        l.steps = s;
    }
    if let Some(m) = patch.metric_monitors {
        l.metric_monitors = m;
    }
}

pub fn create_launch(ev: &EvResources, q: &EvidentlyQuotas, p: &str, n: NewLaunch, t: f64) -> DomainResult<Launch> {
    project(ev, p)?;
    let mut l = Launch {
        project: p.to_string(),
        randomization_salt: n.name.clone(),
        name: n.name,
        description: None,
        groups: Vec::new(),
        steps: Vec::new(),
        metric_monitors: Vec::new(),
        status: RunStatus::Created,
        status_reason: None,
        started_time: None,
        ended_time: None,
        created_time: t,
        last_updated_time: t,
        tags: n.tags,
    };
    patch_launch(&mut l, n.spec);
    check_weights_name_groups(&l)?;
    resolve_launch(ev, &l)?;
    check_new(ev, q, &l)?;
    Ok(l)
}

pub fn update_launch(ev: &EvResources, p: &str, name: &str, patch: LaunchPatch, t: f64) -> DomainResult<Launch> {
    let mut l = find::<Launch>(ev, p, name)?.clone();
    check_not_ended(&l)?;
    patch_launch(&mut l, patch);
    check_weights_name_groups(&l)?;
    resolve_launch(ev, &l)?;
    if l.status == RunStatus::Running {
        rival_conflict(ev, &l)?;
    }
    l.last_updated_time = t;
    Ok(l)
}

// === experiments ===

/// Equal weights adding up to 100000, the remainder to the first treatments.
fn equal_weights(x: &Experiment) -> BTreeMap<String, i64> {
    let n = x.treatments.len().max(1) as i64;
    let (base, rest) = (100_000 / n, 100_000 % n);
    x.treatments.iter().enumerate().map(|(i, t)| (t.name.clone(), base + i64::from((i as i64) < rest))).collect()
}

/// Control and weights after a create or an update: what was sent, else (when the treatments did not
/// change, or still fit) what was there, else the defaults.
fn settle_online_ab(x: &mut Experiment, sent: Option<OnlineAbBody>, treatments_changed: bool) {
    let names: BTreeSet<&str> = x.treatments.iter().map(|t| t.name.as_str()).collect();
    let sent = sent.unwrap_or_default();
    let kept_control = x.control_treatment.clone().filter(|c| !treatments_changed || names.contains(c.as_str()));
    x.control_treatment =
        sent.control_treatment_name.or(kept_control).or_else(|| x.treatments.first().map(|t| t.name.clone()));
    let fits = !x.treatment_weights.is_empty()
        && (!treatments_changed
            || (x.treatment_weights.len() == names.len()
                && x.treatment_weights.keys().all(|k| names.contains(k.as_str()))));
    x.treatment_weights = match sent.treatment_weights {
        Some(w) => w,
        None if fits => std::mem::take(&mut x.treatment_weights),
        None => equal_weights(x),
    };
}

fn check_experiment(x: &Experiment) -> DomainResult<()> {
    let names: BTreeSet<&str> = x.treatments.iter().map(|t| t.name.as_str()).collect();
    if let Some(c) = &x.control_treatment
        && !names.contains(c.as_str())
    {
        return Err(DomainError::invalid(
            "onlineAbConfig.controlTreatmentName",
            format!("`{c}` is not a treatment of this experiment"),
        ));
    }
    if let Some(t) = x.treatment_weights.keys().find(|t| !names.contains(t.as_str())) {
        return Err(DomainError::invalid(
            "onlineAbConfig.treatmentWeights",
            format!("`{t}` is not a treatment of this experiment"),
        ));
    }
    Ok(aws::SPLIT_WEIGHT.check("samplingRate", x.sampling_rate)?)
}

/// The features, variations and segment the experiment names exist.
fn resolve_experiment(ev: &EvResources, x: &Experiment) -> DomainResult<()> {
    for (i, t) in x.treatments.iter().enumerate() {
        check_feature_variation(ev, &x.project, &t.feature, &t.variation, &format!("treatments[{i}].variation"))?;
    }
    if let Some(s) = &x.segment {
        check_segment_exists(ev, s)?;
    }
    Ok(())
}

pub fn create_experiment(
    ev: &EvResources,
    q: &EvidentlyQuotas,
    p: &str,
    n: NewExperiment,
    t: f64,
) -> DomainResult<Experiment> {
    project(ev, p)?;
    let s = n.spec;
    let mut x = Experiment {
        project: p.to_string(),
        randomization_salt: s.randomization_salt.unwrap_or_else(|| n.name.clone()),
        name: n.name,
        description: s.description,
        treatments: s.treatments.unwrap_or_default(),
        metric_goals: s.metric_goals.unwrap_or_default(),
        control_treatment: None,
        treatment_weights: BTreeMap::new(),
        sampling_rate: s.sampling_rate.unwrap_or(DEFAULT_SAMPLING_RATE),
        segment: s.segment,
        status: RunStatus::Created,
        status_reason: None,
        started_time: None,
        ended_time: None,
        analysis_complete_time: None,
        created_time: t,
        last_updated_time: t,
        tags: n.tags,
    };
    settle_online_ab(&mut x, s.online_ab, true);
    check_experiment(&x)?;
    resolve_experiment(ev, &x)?;
    check_new(ev, q, &x)?;
    Ok(x)
}

pub fn update_experiment(
    ev: &EvResources,
    p: &str,
    name: &str,
    patch: ExperimentPatch,
    t: f64,
) -> DomainResult<Experiment> {
    let mut x = find::<Experiment>(ev, p, name)?.clone();
    check_not_ended(&x)?;
    if x.status == RunStatus::Running {
        let frozen = [
            ("treatments", patch.treatments.is_some()),
            ("metricGoals", patch.metric_goals.is_some()),
            ("onlineAbConfig", patch.online_ab.is_some()),
            ("randomizationSalt", patch.randomization_salt.is_some()),
            ("segment", patch.segment.is_some()),
            ("removeSegment", patch.remove_segment),
        ];
        if let Some((field, _)) = frozen.iter().find(|(_, sent)| *sent) {
            return Err(conflict(
                ResourceId::Experiment(p.to_string(), name.to_string()),
                format!(
                    "`{field}` cannot change while the experiment is running; only samplingRate and description can."
                ),
            ));
        }
    }
    if let Some(d) = patch.description {
        x.description = Some(d);
    }
    if let Some(r) = patch.sampling_rate {
        x.sampling_rate = r;
    }
    if let Some(s) = patch.randomization_salt {
        x.randomization_salt = s;
    }
    if let Some(g) = patch.metric_goals {
        x.metric_goals = g;
    }
    if let Some(s) = patch.segment {
        x.segment = Some(s);
    }
    if patch.remove_segment {
        x.segment = None;
    }
    let treatments_changed = patch.treatments.is_some();
    if let Some(tr) = patch.treatments {
        x.treatments = tr;
    }
    settle_online_ab(&mut x, patch.online_ab, treatments_changed);
    check_experiment(&x)?;
    resolve_experiment(ev, &x)?;
    x.last_updated_time = t;
    Ok(x)
}

pub fn start_experiment(
    ev: &EvResources,
    q: &EvidentlyQuotas,
    p: &str,
    name: &str,
    analysis_complete_time: f64,
    t: f64,
) -> DomainResult<Experiment> {
    let mut x = find::<Experiment>(ev, p, name)?.clone();
    if analysis_complete_time <= t {
        return Err(DomainError::invalid("analysisCompleteTime", "must be in the future"));
    }
    if analysis_complete_time > t + MAX_ANALYSIS_SECONDS {
        return Err(DomainError::invalid(
            "analysisCompleteTime",
            "must be at most 30 days after the experiment starts",
        ));
    }
    x.analysis_complete_time = Some(analysis_complete_time);
    start(ev, q, x, t)
}

#[cfg(test)]
#[path = "evidently_tests.rs"]
mod tests;
