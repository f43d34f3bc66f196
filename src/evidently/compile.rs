//! `EvResources -> EvSnapshot`: every feature compiled with its running launch and experiment, segment
//! patterns compiled once per segment, ready for lock-free evaluation by the API and the proxy.

use std::collections::HashMap;
use std::sync::Arc;

use super::arn::Arns;
use super::engine::{
    CompiledExperiment, CompiledFeature, CompiledLaunch, LaunchGroup, SegmentOverride, Step, Treatment,
};
use super::model::{EvResources, RunStatus};
use super::pattern::Pattern;

/// The compiled features, by project then feature name.
#[derive(Default)]
pub struct EvSnapshot {
    pub projects: HashMap<String, HashMap<String, Arc<CompiledFeature>>>,
    /// The account's ARNs, for answers.
    pub arns: Arns,
}

impl EvSnapshot {
    pub fn feature(&self, project: &str, feature: &str) -> Option<&Arc<CompiledFeature>> {
        self.projects.get(project)?.get(feature)
    }
}

pub fn compile(st: &EvResources, arns: &Arns) -> EvSnapshot {
    // Each segment's pattern is parsed on its first compile only (`Segment::compiled`).
    let patterns: HashMap<&str, Arc<Pattern>> =
        st.segments.iter().filter_map(|(name, s)| Some((name.as_str(), Arc::clone(s.compiled()?)))).collect();
    let mut projects: HashMap<String, HashMap<String, Arc<CompiledFeature>>> =
        st.projects.keys().map(|p| (p.clone(), HashMap::new())).collect();
    // The running launch and experiment of each (project, feature), found in one pass each (the first
    // in the maps' order wins, as before): a scan per feature made this quadratic, ~4 s per API write
    // at the default quotas.
    let mut launches: HashMap<(&str, &str), &crate::evidently::model::Launch> = HashMap::new();
    for ((p, _), l) in st.launches.iter().filter(|(_, l)| l.status == RunStatus::Running) {
        for g in &l.groups {
            for feature in g.feature_variations.keys() {
                launches.entry((p.as_str(), feature.as_str())).or_insert(l);
            }
        }
    }
    let mut experiments: HashMap<(&str, &str), &crate::evidently::model::Experiment> = HashMap::new();
    for ((p, _), x) in st.experiments.iter().filter(|(_, x)| x.status == RunStatus::Running) {
        for t in &x.treatments {
            experiments.entry((p.as_str(), t.feature.as_str())).or_insert(x);
        }
    }
    for ((project, name), f) in &st.features {
        let index = |variation: &str| f.variations.iter().position(|v| v.name == variation);
        let launch = launches.get(&(project.as_str(), name.as_str())).map(|l| {
            let groups: Vec<LaunchGroup> = l
                .groups
                .iter()
                .map(|g| LaunchGroup {
                    name: g.name.as_str().into(),
                    variation: g.feature_variations.get(name).and_then(|v| index(v)),
                })
                .collect();
            let weights = |w: &std::collections::BTreeMap<String, i64>| -> Vec<u32> {
                l.groups.iter().map(|g| w.get(&g.name).map_or(0, |x| (*x).clamp(0, 100_000) as u32)).collect()
            };
            let mut steps: Vec<Step> = l
                .steps
                .iter()
                .map(|s| {
                    let mut overrides: Vec<SegmentOverride> = s
                        .segment_overrides
                        .iter()
                        .filter_map(|o| {
                            let segment = patterns.get(o.segment.as_str())?.clone();
                            Some(SegmentOverride {
                                evaluation_order: o.evaluation_order,
                                segment,
                                weights: weights(&o.weights),
                            })
                        })
                        .collect();
                    overrides.sort_by_key(|o| o.evaluation_order);
                    Step { start_ms: (s.start_time * 1000.0) as i64, weights: weights(&s.group_weights), overrides }
                })
                .collect();
            steps.sort_by_key(|s| s.start_ms);
            CompiledLaunch {
                name: l.name.as_str().into(),
                salt: l.randomization_salt.as_str().into(),
                measured: !l.metric_monitors.is_empty(),
                groups,
                steps,
            }
        });
        let experiment = experiments.get(&(project.as_str(), name.as_str())).map(|x| CompiledExperiment {
            name: x.name.as_str().into(),
            salt: x.randomization_salt.as_str().into(),
            measured: !x.metric_goals.is_empty(),
            sampling_rate: x.sampling_rate.clamp(0, 100_000) as u32,
            segment: x.segment.as_deref().and_then(|s| patterns.get(s).cloned()),
            treatments: x
                .treatments
                .iter()
                .map(|t| Treatment {
                    name: t.name.as_str().into(),
                    variation: if &t.feature == name { index(&t.variation) } else { None },
                    weight: x.treatment_weights.get(&t.name).map_or(0, |w| (*w).clamp(0, 100_000) as u32),
                })
                .collect(),
        });
        let compiled = CompiledFeature {
            project_arn: arns.project(project).into(),
            feature_arn: arns.feature(project, name).into(),
            name: name.as_str().into(),
            variations: f.variations.iter().map(|v| (Arc::from(v.name.as_str()), v.value.clone())).collect(),
            default_variation: index(&f.default_variation).unwrap_or(0),
            default_only: f.evaluation_strategy == "DEFAULT_VARIATION",
            overrides: f.entity_overrides.iter().filter_map(|(e, v)| Some((e.clone(), index(v)?))).collect(),
            launch,
            experiment,
        };
        projects.entry(project.clone()).or_default().insert(name.clone(), Arc::new(compiled));
    }
    EvSnapshot { projects, arns: arns.clone() }
}
