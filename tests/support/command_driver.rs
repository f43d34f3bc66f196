//! Drives sequences of typed control-plane commands (`plane::command::Command`) against a fresh
//! [`Plane`] and checks the state's invariants after every one. Shared by the fuzz target `commands`
//! (`fuzz/fuzz_targets/commands.rs`) and its deterministic twin in `cargo test` (`tests/commands.rs`),
//! which include this file with `#[path]`: one interpreter, two drivers.
//!
//! Invariants, checked under the plane's lock after every command:
//! 1. no panic (in the rules, the store or the publish);
//! 2. D6: at most one RUNNING launch and at most one RUNNING experiment per (project, feature);
//! 3. references hold: every feature, launch and experiment's project exists; every feature a CREATED or
//!    RUNNING launch or experiment names exists and has the variation named; every segment a launch's
//!    override or an experiment names exists (whatever their status); every feature's default variation
//!    and entity overrides name its variations;
//! 4. the quotas of `[evidently]` hold (projects, segments, features, launches and experiments per
//!    project, running launches and experiments per project);
//! 5. a refused command changed nothing; an accepted one left in the state what it answered (or, for a
//!    delete, one resource fewer);
//! 6. the store agrees with the state: exactly the keys of the state's resources, each document the
//!    state's resource as written (`Resource::to_json`, byte for byte), reading back
//!    (`Resource::from_stored`, as a restart does) to the state's resource exactly.
//!
//! Input: a byte string read as a program of at most [`MAX_COMMANDS`] commands, one per [`RECORD`]
//! bytes (the last record may be short: zeros past the end). A record's first byte picks the command's
//! kind ([`TABLE`], modulo its length: creates, starts and stops appear twice, so that random programs get
//! somewhere), the next ones are its arguments (listed in [`command`] for each kind; bytes a kind does
//! not use are ignored). A name byte picks from a small alphabet (byte modulo the alphabet's length + 2,
//! the first name taking the 2 extra values, so that commands meet on the same names more often than
//! not). Bodies are built as the API's JSON and decoded with `evidently::input`, as the API and the
//! config file's declarations decode them; a body that does not decode is counted and skipped.
#![allow(dead_code, clippy::panic, clippy::unwrap_used, clippy::expect_used)] // a failed invariant panics

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use edgesplit::config::{Config, EvidentlyQuotas};
use edgesplit::evidently::arn::Arns;
use edgesplit::evidently::input::{
    DataDeliveryBody, ExperimentBody, ExperimentPatchBody, FeatureBody, FeaturePatchBody, LaunchBody, LaunchPatchBody,
    ProjectBody, ProjectPatchBody, SegmentBody, Stop,
};
use edgesplit::evidently::model::{EvResources, Resource, RunStatus, Tags};
use edgesplit::plane::command::{Command, DomainError, Outcome, ResourceId};
use edgesplit::plane::{ControlState, ExecuteError, Plane};
use edgesplit::store::Store;
use serde_json::json;

/// Most commands one input runs.
pub const MAX_COMMANDS: usize = 32;
/// The bytes of one command: its kind and up to 11 arguments (zeros past the input's end).
pub const RECORD: usize = 12;

pub const PROJECTS: [&str; 3] = ["p0", "p1", "p2"];
pub const FEATURES: [&str; 4] = ["f0", "f1", "f2", "f3"];
pub const VARIATIONS: [&str; 2] = ["a", "b"];
pub const SEGMENTS: [&str; 3] = ["s0", "s1", "s2"];
pub const LAUNCHES: [&str; 4] = ["l0", "l1", "l2", "l3"];
pub const EXPERIMENTS: [&str; 4] = ["x0", "x1", "x2", "x3"];

/// Low quotas, each reachable with the alphabets above (one name more than each allows). The running
/// quotas are 2, so that D6 (one running per feature) is the rules' to keep, not the quota's, and 3
/// features per project let a third launch or experiment on a free feature meet the running quota.
const CONFIG: &str = r#"
[[listener]]
name = "http"
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
auth = "none"

[continuous_deployment]
cookie_key = "fuzz-fuzz-fuzz-fuzz-fuzz-fuzz-fuzz"

[evidently]
max_projects = 2
max_segments = 2
max_features_per_project = 3
max_launches_per_project = 3
max_running_launches_per_project = 2
max_experiments_per_project = 3
max_running_experiments_per_project = 2

[[distribution]]
id = "web"
domains = ["*"]
[distribution.primary]
origins = ["http://127.0.0.1:1"]
"#;

/// The config every plane starts from (no `[store]` path: an in-memory store), parsed once.
pub fn config() -> &'static Config {
    static CONFIG_ONCE: OnceLock<Config> = OnceLock::new();
    CONFIG_ONCE.get_or_init(|| {
        edgesplit::config::parse(CONFIG, "commands.toml", std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("the driver's config does not parse:\n{e}"))
    })
}

/// A fresh plane: empty state, its own in-memory store.
pub fn plane() -> Plane {
    Plane::new(config().clone()).unwrap_or_else(|e| panic!("the driver's plane does not start: {e}"))
}

/// The command kinds, in the order of the first 20 entries of [`TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    CreateProject,
    UpdateProject,
    SetDataDelivery,
    DeleteProject,
    CreateFeature,
    UpdateFeature,
    DeleteFeature,
    CreateSegment,
    DeleteSegment,
    CreateLaunch,
    UpdateLaunch,
    DeleteLaunch,
    StartLaunch,
    StopLaunch,
    CreateExperiment,
    UpdateExperiment,
    DeleteExperiment,
    StartExperiment,
    StopExperiment,
    Retag,
}

/// What a command's first byte (modulo 32) picks: every kind once, in declaration order (bytes 0 to
/// 19), then the creates, starts and stops again (20 to 31).
pub const TABLE: [Kind; 32] = {
    use Kind::*;
    [
        CreateProject,
        UpdateProject,
        SetDataDelivery,
        DeleteProject,
        CreateFeature,
        UpdateFeature,
        DeleteFeature,
        CreateSegment,
        DeleteSegment,
        CreateLaunch,
        UpdateLaunch,
        DeleteLaunch,
        StartLaunch,
        StopLaunch,
        CreateExperiment,
        UpdateExperiment,
        DeleteExperiment,
        StartExperiment,
        StopExperiment,
        Retag,
        // 20..
        CreateProject,
        CreateFeature,
        CreateFeature,
        CreateSegment,
        CreateLaunch,
        CreateLaunch,
        StartLaunch,
        CreateExperiment,
        CreateExperiment,
        StartExperiment,
        StopLaunch,
        StopExperiment,
    ]
};

/// One command's record, read front to back; zeros past its end.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }

    /// A name from `names`; the first is the likeliest.
    fn pick<'n>(&mut self, names: &[&'n str]) -> &'n str {
        let i = usize::from(self.byte()) % (names.len() + 2);
        names.get(i).copied().unwrap_or(names[0])
    }

    /// One of `n` choices.
    fn choice(&mut self, n: u8) -> u8 {
        self.byte() % n
    }
}

/// A split weight: even, all, none, or one past the model's bound.
fn weight(b: u8) -> i64 {
    [50_000, 100_000, 0, 100_001][usize::from(b % 4)]
}

/// A segment pattern: two that compile, one that does not.
fn pattern(b: u8) -> &'static str {
    [r#"{"Browser":["Chrome"]}"#, r#"{"Country":["US","CA"]}"#, r#"{"Browser":[{"wildcard":"Chrome*"}]}"#]
        [usize::from(b % 3)]
}

fn now_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Decodes a JSON body into one of `evidently::input`'s bodies, the type the caller names (a shape serde
/// refuses: an invalid body). A macro, so that the fuzz crate needs no `serde` of its own.
macro_rules! body {
    ($v:expr) => {
        serde_json::from_value($v).map_err(|e| DomainError::invalid("body", e.to_string()))
    };
}

fn stop(how: u8) -> Stop {
    let state = if how.is_multiple_of(2) { RunStatus::Completed } else { RunStatus::Cancelled };
    Stop { state, reason: how.is_multiple_of(3).then(|| "done".to_string()) }
}

/// The command a record holds (`Err`: its body does not decode). The argument bytes of each kind are
/// listed where it is built.
pub fn command(record: &[u8], arns: &Arns) -> (Kind, Result<Command, DomainError>) {
    let input = &mut Input(record);
    let kind = TABLE[usize::from(input.byte()) % TABLE.len()];
    fn s(name: &str) -> String {
        name.to_string()
    }
    let cmd = match kind {
        // [project]
        Kind::CreateProject => {
            let name = input.pick(&PROJECTS);
            body!(json!({ "name": name })).and_then(ProjectBody::decode).map(Command::CreateProject)
        }
        // [project, description]
        Kind::UpdateProject => {
            let (project, d) = (input.pick(&PROJECTS), input.byte());
            body!(json!({ "description": format!("d{}", d % 4) }))
                .and_then(ProjectPatchBody::decode)
                .map(|patch| Command::UpdateProject { project: s(project), patch })
        }
        // [project, destination: none, S3, CloudWatch Logs]
        Kind::SetDataDelivery => {
            let (project, to) = (input.pick(&PROJECTS), input.choice(3));
            let v = match to {
                0 => json!({}),
                1 => json!({ "s3Destination": { "bucket": "bucket-one", "prefix": "events" } }),
                _ => json!({ "cloudWatchLogs": { "logGroup": "group" } }),
            };
            body!(v)
                .and_then(DataDeliveryBody::decode)
                .map(|data_delivery| Command::SetDataDelivery { project: s(project), data_delivery })
        }
        // [project]
        Kind::DeleteProject => Ok(Command::DeleteProject { project: s(input.pick(&PROJECTS)) }),
        // [project, feature, variations, default, override]: variations is a mask (bit 0: `a`, bit 1:
        // `b`, none: refused; bit 2: `b` holds a number, a mixed feature: refused), default and override
        // are none, `a` or `b`.
        Kind::CreateFeature => {
            let (project, name) = (input.pick(&PROJECTS), input.pick(&FEATURES));
            let (mask, default, over) = (input.byte(), input.choice(3), input.choice(3));
            let mut variations = Vec::new();
            if mask & 1 != 0 {
                variations.push(json!({ "name": "a", "value": { "stringValue": "va" } }));
            }
            if mask & 2 != 0 {
                let value = if mask & 4 != 0 { json!({ "longValue": 2 }) } else { json!({ "stringValue": "vb" }) };
                variations.push(json!({ "name": "b", "value": value }));
            }
            let mut v = json!({ "name": name, "variations": variations });
            if default > 0 {
                v["defaultVariation"] = json!(VARIATIONS[usize::from(default - 1)]);
            }
            if over > 0 {
                v["entityOverrides"] = json!({ "vip": VARIATIONS[usize::from(over - 1)] });
            }
            body!(v)
                .and_then(FeatureBody::decode)
                .map(|feature| Command::CreateFeature { project: s(project), feature })
        }
        // [project, feature, change: add or update, remove, default, description; variation]
        Kind::UpdateFeature => {
            let (project, feature) = (input.pick(&PROJECTS), input.pick(&FEATURES));
            let (change, variation) = (input.choice(4), input.pick(&VARIATIONS));
            let v = match change {
                0 => json!({ "addOrUpdateVariations": [{ "name": variation, "value": { "stringValue": "new" } }] }),
                1 => json!({ "removeVariations": [variation] }),
                2 => json!({ "defaultVariation": variation }),
                _ => json!({ "description": "updated" }),
            };
            body!(v).and_then(FeaturePatchBody::decode).map(|patch| Command::UpdateFeature {
                project: s(project),
                feature: s(feature),
                patch,
            })
        }
        // [project, feature]
        Kind::DeleteFeature => {
            Ok(Command::DeleteFeature { project: s(input.pick(&PROJECTS)), feature: s(input.pick(&FEATURES)) })
        }
        // [segment, pattern]
        Kind::CreateSegment => {
            let (name, p) = (input.pick(&SEGMENTS), input.byte());
            body!(json!({ "name": name, "pattern": pattern(p) }))
                .and_then(SegmentBody::decode)
                .map(Command::CreateSegment)
        }
        // [segment]
        Kind::DeleteSegment => Ok(Command::DeleteSegment { segment: s(input.pick(&SEGMENTS)) }),
        // [project, launch, feature, variation, second group?, feature, variation, splits, weight,
        // segment]: group `g0` serves the first feature and variation; an odd fourth byte adds group `g1`
        // with the second; splits: none, one step with weights for both groups, the same with an override
        // for the segment giving `g0` all of it.
        Kind::CreateLaunch => {
            let (project, name) = (input.pick(&PROJECTS), input.pick(&LAUNCHES));
            let (f0, v0) = (input.pick(&FEATURES), input.pick(&VARIATIONS));
            let (two, f1, v1) = (input.byte() % 2 == 1, input.pick(&FEATURES), input.pick(&VARIATIONS));
            let (splits, w, segment) = (input.choice(3), input.byte(), input.pick(&SEGMENTS));
            let mut groups = vec![json!({ "name": "g0", "feature": f0, "variation": v0 })];
            if two {
                groups.push(json!({ "name": "g1", "feature": f1, "variation": v1 }));
            }
            let mut v = json!({ "name": name, "groups": groups });
            if splits > 0 {
                let mut step = json!({ "startTime": 0, "groupWeights": { "g0": weight(w) } });
                if two {
                    step["groupWeights"]["g1"] = json!(weight(w / 4));
                }
                if splits == 2 {
                    step["segmentOverrides"] =
                        json!([{ "segment": segment, "evaluationOrder": 1, "weights": { "g0": 100_000 } }]);
                }
                v["scheduledSplitsConfig"] = json!({ "steps": [step] });
            }
            body!(v)
                .and_then(|b: LaunchBody| b.decode(arns))
                .map(|launch| Command::CreateLaunch { project: s(project), launch })
        }
        // [project, launch, change: description, groups, steps, salt; feature, variation, weight,
        // segment]: new groups are one, `g0`, serving the feature and variation; new steps are one with
        // the weight for `g0` and an override for the segment.
        Kind::UpdateLaunch => {
            let (project, launch, change) = (input.pick(&PROJECTS), input.pick(&LAUNCHES), input.choice(4));
            let (feature, variation) = (input.pick(&FEATURES), input.pick(&VARIATIONS));
            let (w, segment) = (input.byte(), input.pick(&SEGMENTS));
            let v = match change {
                0 => json!({ "description": "updated" }),
                1 => json!({ "groups": [{ "name": "g0", "feature": feature, "variation": variation }] }),
                2 => json!({ "scheduledSplitsConfig": { "steps": [{
                    "startTime": 1,
                    "groupWeights": { "g0": weight(w) },
                    "segmentOverrides": [{ "segment": segment, "evaluationOrder": 2, "weights": { "g0": 0 } }],
                }] } }),
                _ => json!({ "randomizationSalt": "pepper" }),
            };
            body!(v).and_then(|b: LaunchPatchBody| b.decode(arns)).map(|patch| Command::UpdateLaunch {
                project: s(project),
                launch: s(launch),
                patch,
            })
        }
        // [project, launch]
        Kind::DeleteLaunch => {
            Ok(Command::DeleteLaunch { project: s(input.pick(&PROJECTS)), launch: s(input.pick(&LAUNCHES)) })
        }
        // [project, launch]
        Kind::StartLaunch => {
            Ok(Command::StartLaunch { project: s(input.pick(&PROJECTS)), launch: s(input.pick(&LAUNCHES)) })
        }
        // [project, launch, how: even COMPLETED, odd CANCELLED]
        Kind::StopLaunch => Ok(Command::StopLaunch {
            project: s(input.pick(&PROJECTS)),
            launch: s(input.pick(&LAUNCHES)),
            stop: stop(input.byte()),
        }),
        // [project, experiment, feature, variation, variation, segment?, online A/B]: treatments `t0` and
        // `t1` on the feature; segment: none (0) or one; online A/B: none, even weights, a control that is
        // no treatment (refused).
        Kind::CreateExperiment => {
            let (project, name, feature) = (input.pick(&PROJECTS), input.pick(&EXPERIMENTS), input.pick(&FEATURES));
            let (v0, v1) = (input.pick(&VARIATIONS), input.pick(&VARIATIONS));
            let (segment, ab) = (input.byte(), input.choice(3));
            let mut v = json!({
                "name": name,
                "treatments": [
                    { "name": "t0", "feature": feature, "variation": v0 },
                    { "name": "t1", "feature": feature, "variation": v1 },
                ],
                "metricGoals": [{ "desiredChange": "INCREASE", "metricDefinition": {
                    "name": "clicks", "entityIdKey": "userDetails.userId", "valueKey": "details.clicks",
                } }],
            });
            if segment % 2 == 1 {
                v["segment"] = json!(SEGMENTS[usize::from(segment / 2) % SEGMENTS.len()]);
            }
            match ab {
                1 => v["onlineAbConfig"] = json!({ "treatmentWeights": { "t0": 50_000, "t1": 50_000 } }),
                2 => v["onlineAbConfig"] = json!({ "controlTreatmentName": "t9" }),
                _ => {}
            }
            body!(v)
                .and_then(|b: ExperimentBody| b.decode(arns))
                .map(|experiment| Command::CreateExperiment { project: s(project), experiment })
        }
        // [project, experiment, change: samplingRate, segment, removeSegment, treatments, description;
        // argument]: the rate is the argument times 1000 (past the bound from 101); the segment is
        // picked by it; new treatments use the feature it picks, with variations `a` and `b`.
        Kind::UpdateExperiment => {
            let (project, experiment) = (input.pick(&PROJECTS), input.pick(&EXPERIMENTS));
            let (change, arg) = (input.choice(5), input.byte());
            let v = match change {
                0 => json!({ "samplingRate": i64::from(arg) * 1000 }),
                1 => json!({ "segment": SEGMENTS[usize::from(arg) % SEGMENTS.len()] }),
                2 => json!({ "removeSegment": true }),
                3 => {
                    let feature = FEATURES[usize::from(arg) % FEATURES.len()];
                    json!({ "treatments": [
                        { "name": "t0", "feature": feature, "variation": "a" },
                        { "name": "t1", "feature": feature, "variation": "b" },
                    ] })
                }
                _ => json!({ "description": "updated" }),
            };
            body!(v).and_then(|b: ExperimentPatchBody| b.decode(arns)).map(|patch| Command::UpdateExperiment {
                project: s(project),
                experiment: s(experiment),
                patch,
            })
        }
        // [project, experiment]
        Kind::DeleteExperiment => {
            Ok(Command::DeleteExperiment { project: s(input.pick(&PROJECTS)), experiment: s(input.pick(&EXPERIMENTS)) })
        }
        // [project, experiment, analysis: an hour from now, a minute ago, 40 days from now]
        Kind::StartExperiment => {
            let (project, experiment) = (input.pick(&PROJECTS), input.pick(&EXPERIMENTS));
            let offset = [3_600.0, -60.0, 40.0 * 86_400.0][usize::from(input.choice(3))];
            Ok(Command::StartExperiment {
                project: s(project),
                experiment: s(experiment),
                analysis_complete_time: now_seconds() + offset,
            })
        }
        // [project, experiment, how: even COMPLETED, odd CANCELLED]
        Kind::StopExperiment => Ok(Command::StopExperiment {
            project: s(input.pick(&PROJECTS)),
            experiment: s(input.pick(&EXPERIMENTS)),
            stop: stop(input.byte()),
        }),
        // [resource kind, project, name, add or remove]: the tag `team`.
        Kind::Retag => {
            let (which, project, n, add) = (input.choice(5), input.pick(&PROJECTS), input.byte(), input.byte());
            let name = |names: &[&str]| s(names[usize::from(n) % names.len()]);
            let resource = match which {
                0 => ResourceId::Project(s(project)),
                1 => ResourceId::Feature(s(project), name(&FEATURES)),
                2 => ResourceId::Launch(s(project), name(&LAUNCHES)),
                3 => ResourceId::Experiment(s(project), name(&EXPERIMENTS)),
                _ => ResourceId::Segment(name(&SEGMENTS)),
            };
            let (add, remove) = if add % 2 == 0 {
                (Tags::from([(s("team"), s("edge"))]), Vec::new())
            } else {
                (Tags::new(), vec![s("team")])
            };
            Ok(Command::Retag { resource, add, remove })
        }
    };
    (kind, cmd)
}

/// What a set of runs did: how often each kind succeeded, why commands were refused.
#[derive(Debug, Default)]
pub struct Tally {
    pub commands: usize,
    /// Bodies that did not decode (never sent to the plane).
    pub undecodable: usize,
    pub ok: BTreeMap<Kind, usize>,
    /// By the refusal's class: `not found`, `exists`, `conflict`, `quota`, `invalid`, `constraint`.
    pub refused: BTreeMap<&'static str, usize>,
    /// By kind and class.
    pub refused_by_kind: BTreeMap<(Kind, &'static str), usize>,
    /// Quotas hit, as `kind/scope`.
    pub quotas: BTreeSet<String>,
    /// The most launches, and experiments, seen running at once in one project.
    pub most_running: (usize, usize),
}

impl Tally {
    fn record(&mut self, kind: Kind, result: &Result<Outcome, ExecuteError>, ev: &EvResources) {
        self.commands += 1;
        match result {
            Ok(_) => *self.ok.entry(kind).or_default() += 1,
            Err(ExecuteError::Domain(e)) => {
                let class = match e {
                    DomainError::NotFound(_) => "not found",
                    DomainError::Exists(_) => "exists",
                    DomainError::Conflict { .. } => "conflict",
                    DomainError::Quota { kind, scope, .. } => {
                        self.quotas.insert(format!("{}/{scope:?}", kind.name()));
                        "quota"
                    }
                    DomainError::Invalid { .. } => "invalid",
                    DomainError::Constraint(_) => "constraint",
                    _ => "other",
                };
                *self.refused.entry(class).or_default() += 1;
                *self.refused_by_kind.entry((kind, class)).or_default() += 1;
            }
            Err(ExecuteError::Store(_)) => *self.refused.entry("store").or_default() += 1,
        }
        for p in ev.projects.keys() {
            let running = |s: &RunStatus| *s == RunStatus::Running;
            let l = ev.launches.iter().filter(|(k, l)| &k.0 == p && running(&l.status)).count();
            let x = ev.experiments.iter().filter(|(k, x)| &k.0 == p && running(&x.status)).count();
            self.most_running = (self.most_running.0.max(l), self.most_running.1.max(x));
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: Tally) {
        self.commands += other.commands;
        self.undecodable += other.undecodable;
        for (k, n) in other.ok {
            *self.ok.entry(k).or_default() += n;
        }
        for (k, n) in other.refused {
            *self.refused.entry(k).or_default() += n;
        }
        for (k, n) in other.refused_by_kind {
            *self.refused_by_kind.entry(k).or_default() += n;
        }
        self.quotas.extend(other.quotas);
        self.most_running =
            (self.most_running.0.max(other.most_running.0), self.most_running.1.max(other.most_running.1));
    }
}

/// Runs the program `data` on `plane`, checking the invariants after every command; panics, with the
/// commands run so far, on the first that fails.
pub fn run(plane: &Plane, data: &[u8], tally: &mut Tally) {
    let arns = {
        let st = plane.lock();
        Arns::new(&st.config.region, &st.config.account_id)
    };
    let mut log = String::new();
    for record in data.chunks(RECORD).take(MAX_COMMANDS) {
        let (kind, cmd) = command(record, &arns);
        let Ok(cmd) = cmd else {
            tally.undecodable += 1;
            continue;
        };
        let _ = write!(log, "\n  {cmd:?}");
        let before = plane.lock().evidently.clone();
        let result = plane.execute(cmd);
        let _ = write!(log, "\n    -> {}", result.as_ref().map_or_else(ToString::to_string, |o| format!("{o:?}")));
        let st = plane.lock();
        if let Err(broken) = check(&st, &plane.store, &before, &result) {
            panic!("invariant broken: {broken}\ncommands:{log}\nstate: {:#?}", st.evidently);
        }
        tally.record(kind, &result, &st.evidently);
    }
}

/// Every resource of the state, by its store key.
fn resources(ev: &EvResources) -> BTreeMap<String, Resource> {
    let all = (ev.projects.values().cloned().map(Resource::Project))
        .chain(ev.features.values().cloned().map(Resource::Feature))
        .chain(ev.launches.values().cloned().map(Resource::Launch))
        .chain(ev.experiments.values().cloned().map(Resource::Experiment))
        .chain(ev.segments.values().cloned().map(Resource::Segment));
    all.map(|r| (r.key(), r)).collect()
}

/// The invariants (see the module's documentation), after `result` changed `before` into `st`.
pub fn check(
    st: &ControlState,
    store: &Store,
    before: &EvResources,
    result: &Result<Outcome, ExecuteError>,
) -> Result<(), String> {
    let ev = &st.evidently;
    let now = resources(ev);

    // 5. A refusal changes nothing; an answer is what was written.
    match result {
        Err(ExecuteError::Store(e)) => return Err(format!("the in-memory store failed: {e}")),
        Err(ExecuteError::Domain(e)) => {
            if resources(before) != now {
                return Err(format!("the refused command ({e}) changed the state"));
            }
        }
        Ok(Outcome::Resource(r)) => {
            if now.get(&r.key()) != Some(r) {
                return Err(format!("the state does not hold the resource answered, {}", r.key()));
            }
        }
        Ok(Outcome::Deleted) => {
            let was = resources(before);
            let gone: Vec<&String> = was.keys().filter(|k| !now.contains_key(*k)).collect();
            if gone.len() != 1 || now.len() + 1 != was.len() {
                return Err(format!("a delete removed {gone:?} and left {} of {} resources", now.len(), was.len()));
            }
        }
        Ok(Outcome::Policy(p)) => return Err(format!("an Evidently command answered a policy: {p:?}")),
        Ok(Outcome::Rollout(r)) => return Err(format!("an Evidently command answered a rollout: {r:?}")),
    }

    // 2. D6: one running launch, and one running experiment, per (project, feature).
    let mut launched = BTreeMap::new();
    for l in ev.launches.values().filter(|l| l.status == RunStatus::Running) {
        let features: BTreeSet<&str> =
            l.groups.iter().flat_map(|g| g.feature_variations.keys()).map(String::as_str).collect();
        for f in features {
            if let Some(other) = launched.insert((l.project.as_str(), f), l.name.as_str()) {
                return Err(format!("D6: launches {other} and {} both run feature {}/{f}", l.name, l.project));
            }
        }
    }
    let mut tested = BTreeMap::new();
    for x in ev.experiments.values().filter(|x| x.status == RunStatus::Running) {
        let features: BTreeSet<&str> = x.treatments.iter().map(|t| t.feature.as_str()).collect();
        for f in features {
            if let Some(other) = tested.insert((x.project.as_str(), f), x.name.as_str()) {
                return Err(format!("D6: experiments {other} and {} both run feature {}/{f}", x.name, x.project));
            }
        }
    }

    // 3. References.
    let project_of = |p: &str, what: &str| {
        if ev.projects.contains_key(p) {
            Ok(())
        } else {
            Err(format!("{what} is in project {p}, which does not exist"))
        }
    };
    let live = |s: RunStatus| matches!(s, RunStatus::Created | RunStatus::Running);
    let variation = |p: &str, f: &str, v: &str, what: &str| match ev.features.get(&(p.to_string(), f.to_string())) {
        None => Err(format!("{what} names feature {p}/{f}, which does not exist")),
        Some(feature) if !feature.variations.iter().any(|x| x.name == v) => {
            Err(format!("{what} names variation {v} of feature {p}/{f}, which it does not have"))
        }
        Some(_) => Ok(()),
    };
    let segment = |s: &str, what: &str| {
        if ev.segments.contains_key(s) {
            Ok(())
        } else {
            Err(format!("{what} names segment {s}, which does not exist"))
        }
    };
    for f in ev.features.values() {
        let what = format!("feature {}/{}", f.project, f.name);
        project_of(&f.project, &what)?;
        let has = |v: &str| f.variations.iter().any(|x| x.name == v);
        if !has(&f.default_variation) {
            return Err(format!("{what}'s default variation {} is not one of its variations", f.default_variation));
        }
        if let Some((entity, v)) = f.entity_overrides.iter().find(|(_, v)| !has(v)) {
            return Err(format!("{what} overrides {entity} to {v}, which is not one of its variations"));
        }
    }
    for l in ev.launches.values() {
        let what = format!("{} launch {}/{}", l.status.as_str(), l.project, l.name);
        project_of(&l.project, &what)?;
        if live(l.status) {
            for (f, v) in l.groups.iter().flat_map(|g| &g.feature_variations) {
                variation(&l.project, f, v, &what)?;
            }
        }
        for o in l.steps.iter().flat_map(|s| &s.segment_overrides) {
            segment(&o.segment, &what)?;
        }
    }
    for x in ev.experiments.values() {
        let what = format!("{} experiment {}/{}", x.status.as_str(), x.project, x.name);
        project_of(&x.project, &what)?;
        if live(x.status) {
            for t in &x.treatments {
                variation(&x.project, &t.feature, &t.variation, &what)?;
            }
        }
        if let Some(s) = &x.segment {
            segment(s, &what)?;
        }
    }

    // 4. Quotas.
    let q: &EvidentlyQuotas = &st.config.quotas;
    let over = |what: &str, n: usize, limit: usize| {
        if n > limit { Err(format!("quota: {n} {what}, at most {limit}")) } else { Ok(()) }
    };
    over("projects", ev.projects.len(), q.projects)?;
    over("segments", ev.segments.len(), q.segments)?;
    for p in ev.projects.keys() {
        let mine = |k: &(String, String)| &k.0 == p;
        let running = |s: RunStatus| s == RunStatus::Running;
        over(&format!("features in {p}"), ev.features.keys().filter(|k| mine(k)).count(), q.features_per_project)?;
        over(&format!("launches in {p}"), ev.launches.keys().filter(|k| mine(k)).count(), q.launches_per_project)?;
        over(
            &format!("experiments in {p}"),
            ev.experiments.keys().filter(|k| mine(k)).count(),
            q.experiments_per_project,
        )?;
        over(
            &format!("running launches in {p}"),
            ev.launches.iter().filter(|(k, l)| mine(k) && running(l.status)).count(),
            q.running_launches_per_project,
        )?;
        over(
            &format!("running experiments in {p}"),
            ev.experiments.iter().filter(|(k, x)| mine(k) && running(x.status)).count(),
            q.running_experiments_per_project,
        )?;
    }

    // 6. The store holds exactly the state: its keys, each document the state's resource as written
    //    (`Resource::to_json`), reading back to exactly it.
    let stored = store.evidently().map_err(|e| format!("the store cannot be read: {e}"))?;
    let mut keys = BTreeSet::new();
    for (key, json) in stored {
        let text = || String::from_utf8_lossy(&json).into_owned();
        let Some(mine) = now.get(&key) else { return Err(format!("{key} is in the store, not in the state")) };
        if json != mine.to_json() {
            return Err(format!("stored {key} is not the state's:\nstored: {}\nstate:  {mine:?}", text()));
        }
        let read =
            Resource::from_stored(&key, &json).ok_or_else(|| format!("stored {key} does not read back: {}", text()))?;
        if read.key() != key || &read != mine {
            return Err(format!("stored {key} reads back as another resource:\nread:  {read:?}\nstate: {mine:?}"));
        }
        keys.insert(key);
    }
    if let Some(k) = now.keys().find(|k| !keys.contains(*k)) {
        return Err(format!("{k} is in the state, not in the store"));
    }
    Ok(())
}
