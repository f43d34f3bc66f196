//! Guards snapshot compile, which runs on every config reload and every API write (the plane compiles the
//! whole Evidently state and the routing snapshot, then publishes, under the control-plane lock): off the
//! request path, but it must stay cheap so writes stay fast. Cases: the Evidently snapshot of one project
//! (50 features, 20 running launches with 6 segment overrides per step, 10 running experiments, 2,500
//! entity overrides), the same state four times larger (growth should be about 4x; more means a step is
//! worse than linear), ten projects at the default quotas (100 features, 500 launches and 500
//! experiments each, 50 of each running), and the routing snapshot of 100 distributions; config parsing,
//! for reference. Runs on mimalloc, as the binary does: compile is allocation-heavy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use edgesplit::cd::CdSettings;
use edgesplit::cd::cookie::CookieKey;
use edgesplit::cd::model::{PolicyConfig, SingleWeight, Stickiness, StoredPolicy, TrafficConfig, TrafficType};
use edgesplit::config::Config;
use edgesplit::evidently::compile::{EvSnapshot, compile};
use edgesplit::evidently::model::{
    EvResources, Experiment, Feature, Launch, LaunchGroup, MetricDefinition, MetricGoal, Project, Resource, RunStatus,
    ScheduledStep, Segment, SegmentOverride, Treatment, VariableValue, Variation,
};
use edgesplit::metrics::Metrics;
use edgesplit::routing::{CompileInput, HealthRegistry, Routes};

#[global_allocator]
static ALLOC: alloc_ctl::MiMalloc = alloc_ctl::MiMalloc;

const PROJECT: &str = "shop";
fn arns() -> edgesplit::evidently::arn::Arns {
    edgesplit::evidently::arn::Arns::new("us-east-1", "000000000000")
}

/// How big an Evidently project is.
#[derive(Clone, Copy)]
struct Size {
    features: usize,
    /// Running launches; `history` more per running one are COMPLETED.
    launches: usize,
    /// Running experiments; `history` more per running one are COMPLETED.
    experiments: usize,
    history: usize,
    segments: usize,
    entity_overrides: usize,
}

const BASE: Size =
    Size { features: 50, launches: 20, experiments: 10, history: 0, segments: 40, entity_overrides: 2_500 };

/// The default quotas of one project: 100 features, 500 launches and 500 experiments of which 50 run.
const AT_QUOTA: Size =
    Size { features: 100, launches: 50, experiments: 50, history: 9, segments: 100, entity_overrides: 2_500 };

impl Size {
    fn times(self, k: usize) -> Size {
        Size {
            features: self.features * k,
            launches: self.launches * k,
            experiments: self.experiments * k,
            history: self.history,
            segments: self.segments * k,
            entity_overrides: self.entity_overrides * k,
        }
    }
}

/// Segment patterns of a few shapes, 60 to 250 characters, as a real account has them.
fn segment_pattern(i: usize) -> String {
    match i % 4 {
        0 => format!(r#"{{"Browser":[{{"prefix":"Chrome/{i}"}},{{"prefix":"Edg/"}}],"Country":["US","CA","GB"]}}"#),
        1 => format!(
            r#"{{"Price":[{{"numeric":[">",{i},"<=",{}]}}],"Plan":["pro","enterprise"],"Country":[{{"prefix":"US"}}]}}"#,
            i + 100
        ),
        2 => format!(
            r#"{{"Country":[{{"anything-but":["CN","RU","KP"]}}],"Device":{{"os":[{{"prefix":"iOS"}}],"tablet":[false,{{"exists":false}}]}},"Email":[{{"suffix":"@example{i}.com"}}]}}"#
        ),
        _ => format!(
            r#"{{"$or":[{{"Beta":[true]}},{{"user.tier":[{{"numeric":[">=",{}]}}]}},{{"Email":[{{"suffix":"@corp{i}.example"}}]}}],"Referrer":[{{"exists":false}}]}}"#,
            i % 5
        ),
    }
}

fn variations(i: usize) -> Vec<Variation> {
    ["control", "variant-a", "variant-b"]
        .iter()
        .map(|n| Variation { name: (*n).into(), value: VariableValue::String(format!("{n}-{i}")) })
        .collect()
}

/// One project, see [`add_project`].
fn ev_state(size: Size) -> EvResources {
    ev_state_with(&[PROJECT], size)
}

/// `projects` of `size` each, sharing `size.segments` segments.
fn ev_state_with(projects: &[&str], size: Size) -> EvResources {
    let mut st = EvResources::default();
    for s in 0..size.segments {
        st.put(Resource::Segment(Segment::new(
            format!("segment-{s}"),
            segment_pattern(s),
            None,
            1.7e9,
            BTreeMap::new(),
        )));
    }
    for project in projects {
        add_project(&mut st, project, size);
    }
    st
}

/// Launch `l` runs over feature `l` (its COMPLETED predecessors too), experiment `x` over feature
/// `launches + x`; the entity overrides are spread evenly over the features; segment override `k` of a
/// launch uses segment `(6 l + k) % segments`.
fn add_project(st: &mut EvResources, project: &str, size: Size) {
    st.put(Resource::Project(Project {
        name: project.into(),
        description: None,
        created_time: 1.7e9,
        last_updated_time: 1.7e9,
        app_config_resource: None,
        data_delivery: None,
        tags: BTreeMap::new(),
    }));
    let per_feature = size.entity_overrides / size.features;
    for f in 0..size.features {
        let variations = variations(f);
        let entity_overrides = (0..per_feature)
            .map(|e| (format!("user-{}", f * per_feature + e), variations[1 + e % 2].name.clone()))
            .collect();
        st.put(Resource::Feature(Feature {
            project: project.into(),
            name: format!("feature-{f}"),
            description: None,
            variations,
            default_variation: "control".into(),
            evaluation_strategy: "ALL_RULES".into(),
            entity_overrides,
            created_time: 1.7e9,
            last_updated_time: 1.7e9,
            tags: BTreeMap::new(),
        }));
    }
    let groups = ["control", "variant-a", "variant-b"];
    for l in 0..size.launches {
        let feature = format!("feature-{l}");
        let weights = |w: [i64; 3]| groups.iter().zip(w).map(|(g, w)| ((*g).to_string(), w)).collect();
        let overrides: Vec<SegmentOverride> = (0..6)
            .map(|k| SegmentOverride {
                segment: format!("segment-{}", (6 * l + k) % size.segments),
                evaluation_order: 6 - k as i64,
                weights: weights([0, 50_000, 50_000]),
            })
            .collect();
        let steps = [(0.0, [90_000, 5_000, 5_000]), (1.7e9, [50_000, 25_000, 25_000]), (1.8e9, [0, 50_000, 50_000])]
            .into_iter()
            .map(|(start_time, w)| ScheduledStep {
                start_time,
                group_weights: weights(w),
                segment_overrides: overrides.clone(),
            })
            .collect();
        let launch = Launch {
            project: project.into(),
            name: format!("launch-{l}"),
            description: None,
            groups: groups
                .iter()
                .map(|g| LaunchGroup {
                    name: (*g).into(),
                    description: None,
                    feature_variations: BTreeMap::from([(feature.clone(), (*g).into())]),
                })
                .collect(),
            steps,
            metric_monitors: Vec::new(),
            randomization_salt: format!("launch-{l}"),
            status: RunStatus::Running,
            status_reason: None,
            started_time: Some(1.7e9),
            ended_time: None,
            created_time: 1.7e9,
            last_updated_time: 1.7e9,
            tags: BTreeMap::new(),
        };
        for k in 1..=size.history {
            let name = format!("launch-{l}-old{k}");
            st.put(Resource::Launch(Launch {
                name,
                status: RunStatus::Completed,
                ended_time: Some(1.7e9),
                ..launch.clone()
            }));
        }
        st.put(Resource::Launch(launch));
    }
    for x in 0..size.experiments {
        let feature = format!("feature-{}", size.launches + x);
        let treatments: Vec<Treatment> = ["control", "variant-a"]
            .iter()
            .map(|t| Treatment {
                name: (*t).into(),
                description: None,
                feature: feature.clone(),
                variation: (*t).into(),
            })
            .collect();
        let experiment = Experiment {
            project: project.into(),
            name: format!("experiment-{x}"),
            description: None,
            treatment_weights: treatments.iter().map(|t| (t.name.clone(), 50_000)).collect(),
            treatments,
            metric_goals: vec![MetricGoal {
                metric_definition: MetricDefinition {
                    name: "conversion".into(),
                    entity_id_key: "userDetails.userId".into(),
                    value_key: "details.converted".into(),
                    event_pattern: None,
                    unit_label: None,
                },
                desired_change: Some("INCREASE".into()),
            }],
            control_treatment: Some("control".into()),
            sampling_rate: 50_000,
            segment: (x % 2 == 0).then(|| format!("segment-{}", x % size.segments)),
            randomization_salt: format!("experiment-{x}"),
            status: RunStatus::Running,
            status_reason: None,
            started_time: Some(1.7e9),
            ended_time: None,
            analysis_complete_time: None,
            created_time: 1.7e9,
            last_updated_time: 1.7e9,
            tags: BTreeMap::new(),
        };
        for k in 1..=size.history {
            let name = format!("experiment-{x}-old{k}");
            let old = Experiment { name, status: RunStatus::Completed, ended_time: Some(1.7e9), ..experiment.clone() };
            st.put(Resource::Experiment(old));
        }
        st.put(Resource::Experiment(experiment));
    }
}

/// 100 distributions plus the default: every one with a staging pool; a third with a sticky weight
/// policy in the file, a third attached to an API policy by `staging_dns_name`, a third pinned to one
/// by id; half of them evaluate two features of the project at the edge, every fifth routes by a feature.
fn config_text(distributions: usize) -> String {
    let mut text = String::from("[[listener]]\nlisten = \"127.0.0.1:0\"\n");
    for i in 0..distributions {
        text.push_str(&format!(
            "[[distribution]]\nid = \"d{i}\"\ndomains = [\"shop{i}.example.com\", \"*.api{i}.example.com\"]\n\
             staging_dns_name = \"staging{i}.example.com\"\n"
        ));
        let route = i % 5 == 0;
        if i % 3 == 2 && !route {
            text.push_str(&format!("continuous_deployment_policy_id = \"pinned-{i}\"\n"));
        }
        text.push_str(&format!(
            "[distribution.primary]\norigins = [\"http://10.0.{i}.1:8080\", \"http://10.0.{i}.2:8080\"]\n\
             [distribution.staging]\norigins = [\"http://10.1.{i}.1:8080\"]\nprotocol = \"http2\"\n"
        ));
        if i % 3 == 0 && !route {
            text.push_str(
                "[distribution.policy]\ntype = \"SingleWeight\"\nweight = 0.05\nidle_ttl = 600\nmaximum_ttl = 3600\n",
            );
        }
        if i % 2 == 0 || route {
            let (a, b) = (i % BASE.features, (i + 1) % BASE.features);
            text.push_str(&format!(
                "[distribution.evidently]\nproject = \"{PROJECT}\"\nentity = [\"cookie:uid\"]\n\
                 context = {{ Browser = \"header:user-agent\", Country = \"header:cloudfront-viewer-country\" }}\n\
                 features = [{{ feature = \"feature-{a}\" }}, {{ feature = \"feature-{b}\", value_header = \"x-v-{b}\" }}]\n"
            ));
            if route {
                text.push_str(&format!(
                    "route = {{ feature = \"feature-{a}\", staging_variations = [\"variant-a\", \"variant-b\"] }}\n"
                ));
            }
        }
    }
    text.push_str("[[distribution]]\nid = \"default\"\ndomains = [\"*\"]\n[distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n");
    text
}

/// The API policies the distributions attach to: one per attached or pinned distribution.
fn api_policies(distributions: usize) -> BTreeMap<String, StoredPolicy> {
    (0..distributions)
        .filter(|i| i % 3 != 0 && i % 5 != 0)
        .map(|i| {
            let id = if i % 3 == 2 { format!("pinned-{i}") } else { format!("api-{i}") };
            let config = PolicyConfig {
                staging_dns_names: vec![format!("staging{i}.example.com")],
                enabled: true,
                traffic: Some(TrafficConfig {
                    kind: TrafficType::SingleWeight,
                    single_weight: Some(SingleWeight {
                        weight: 0.1,
                        stickiness: Some(Stickiness { idle_ttl: 300, maximum_ttl: 600 }),
                    }),
                    single_header: None,
                }),
            };
            let policy = StoredPolicy { id: id.clone(), etag: "E1".into(), last_modified_ms: 0, config, epoch: 0 };
            (id, policy)
        })
        .collect()
}

fn routing_compile(
    config: &Config,
    metrics: &Metrics,
    health: &HealthRegistry,
    policies: &BTreeMap<String, StoredPolicy>,
    epochs: &HashMap<String, u64>,
    evidently: &EvSnapshot,
) -> Routes {
    let cd = CdSettings {
        key: CookieKey::new(&[7u8; 32]),
        cookie_name: "edgesplit-cd".into(),
        cache_control_private: false,
        refresh: 10,
    };
    let input = CompileInput { metrics, health, policies, inline_epochs: epochs, cd, evidently };
    Routes::compile(config, input)
}

fn evidently(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile evidently");
    for (label, size) in [("1x", BASE), ("4x", BASE.times(4))] {
        let st = ev_state(size);
        let snapshot = compile(&st, &arns());
        let features = snapshot.projects.get(PROJECT).map_or(0, HashMap::len);
        assert_eq!(features, size.features);
        let launch = snapshot.feature(PROJECT, "feature-0").and_then(|f| f.launch.as_ref()).unwrap();
        assert!(launch.steps.iter().all(|s| s.overrides.len() == 6), "every segment must compile");
        let name = format!(
            "{label}: {} features, {} launches x 3 steps x 6 overrides, {} experiments, {} segments, {} entity overrides",
            size.features, size.launches, size.experiments, size.segments, size.entity_overrides
        );
        let arns = arns();
        group.bench_function(name, |b| b.iter(|| compile(black_box(&st), &arns)));
    }
    group.finish();

    // Slow enough (tens of ms) that ten samples say what is needed.
    let mut group = c.benchmark_group("compile evidently at quota");
    group.sample_size(10);
    let projects: Vec<String> = (0..10).map(|p| format!("project-{p}")).collect();
    let names: Vec<&str> = projects.iter().map(String::as_str).collect();
    let st = ev_state_with(&names, AT_QUOTA);
    assert_eq!((st.features.len(), st.launches.len(), st.experiments.len()), (1_000, 5_000, 5_000));
    let snapshot = compile(&st, &arns());
    assert!(snapshot.feature("project-9", "feature-0").is_some_and(|f| f.launch.is_some()));
    group.bench_function("10 projects x (100 features, 500 launches, 500 experiments; 50 + 50 running)", |b| {
        let arns = arns();
        b.iter(|| compile(black_box(&st), &arns))
    });
    group.finish();
}

fn routing(c: &mut Criterion) {
    let distributions = 100;
    let text = config_text(distributions);
    let config = edgesplit::config::parse(&text, "bench.toml", Path::new(".")).unwrap();
    let evidently = compile(&ev_state(BASE), &arns());
    let (metrics, health, policies) = (Metrics::default(), HealthRegistry::default(), api_policies(distributions));
    let epochs: HashMap<String, u64> = config.distributions.iter().map(|d| (d.id.clone(), 0)).collect();

    let snapshot = routing_compile(&config, &metrics, &health, &policies, &epochs, &evidently);
    assert_eq!(snapshot.distributions.len(), distributions + 1);
    assert!(snapshot.distributions.iter().filter(|d| d.edge.is_some()).count() >= distributions / 2);
    let edges = edgesplit::edge_evidently::compile_all(&snapshot, &evidently, &metrics);
    assert!(edges.iter().filter(|e| e.is_some()).count() >= distributions / 2);
    // Feature-routed distributions and the default have no policy; every other one has a sticky policy.
    let sticky = snapshot.distributions.iter().filter(|d| d.rule.is_sticky()).count();
    assert_eq!(sticky, distributions - distributions / 5);

    let mut group = c.benchmark_group("compile routing");
    group.bench_function("Snapshot::compile, 100 distributions", |b| {
        // The routes and, as before the edge's compile moved to the data plane, the edges' headers too.
        b.iter(|| {
            let routes = routing_compile(black_box(&config), &metrics, &health, &policies, &epochs, &evidently);
            let edges = edgesplit::edge_evidently::compile_all(&routes, &evidently, &metrics);
            (routes, edges)
        })
    });
    group.bench_function("config::parse, 100 distributions (reference)", |b| {
        b.iter(|| edgesplit::config::parse(black_box(&text), "bench.toml", Path::new(".")).unwrap())
    });
    group.finish();
}

criterion_group!(benches, evidently, routing);
criterion_main!(benches);
