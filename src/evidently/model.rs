//! Evidently's resources as stored and as sent on the wire (restJson1, 2021-02-01).

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::pattern::Pattern;

/// `VariableValue`: a tagged union with exactly one member set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VariableValue {
    #[serde(rename = "boolValue")]
    Bool(bool),
    #[serde(rename = "longValue")]
    Long(i64),
    #[serde(rename = "doubleValue")]
    Double(f64),
    #[serde(rename = "stringValue")]
    String(String),
}

impl VariableValue {
    /// `VariationValueType`.
    pub fn value_type(&self) -> &'static str {
        match self {
            VariableValue::Bool(_) => "BOOLEAN",
            VariableValue::Long(_) => "LONG",
            VariableValue::Double(_) => "DOUBLE",
            VariableValue::String(_) => "STRING",
        }
    }
}

use std::collections::BTreeMap;

/// Tags on any resource.
pub type Tags = BTreeMap<String, String>;

/// A project as stored; the counters of the wire shape are computed when it is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_time: f64,
    pub last_updated_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_config_resource: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_delivery: Option<serde_json::Value>,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variation {
    pub name: String,
    pub value: VariableValue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Feature {
    pub project: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub variations: Vec<Variation>,
    pub default_variation: String,
    pub evaluation_strategy: String,
    #[serde(default)]
    pub entity_overrides: BTreeMap<String, String>,
    pub created_time: f64,
    pub last_updated_time: f64,
    #[serde(default)]
    pub tags: Tags,
}

/// A segment as stored. Segments are immutable but for their tags (there is no UpdateSegment), so the
/// pattern text is read-only ([`Segment::pattern`]) and its compiled form is kept with the value
/// (`Segment::compiled`); build one with [`Segment::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub name: String,
    pattern: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_time: f64,
    pub last_updated_time: f64,
    #[serde(default)]
    pub tags: Tags,
    /// Derived from `pattern`, never stored: the stored document is the same as without it.
    #[serde(skip)]
    compiled: CompiledPattern,
}

impl Segment {
    /// A segment created at `time` (also its last update), its pattern not compiled yet.
    pub fn new(name: String, pattern: String, description: Option<String>, time: f64, tags: Tags) -> Segment {
        Segment {
            name,
            pattern,
            description,
            created_time: time,
            last_updated_time: time,
            tags,
            compiled: CompiledPattern::default(),
        }
    }

    /// The pattern's JSON text, as given to CreateSegment.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The compiled pattern: parsed from [`Segment::pattern`] on the first call and kept with this value,
    /// so however often the state is compiled (every Evidently write and config reload), a segment's
    /// pattern is parsed once. Clones share what was compiled before they were made (the control plane's
    /// rehearsal copy of the state among them).
    ///
    /// `None` if the text does not compile. CreateSegment refuses such patterns, so only a stored document
    /// this version cannot compile gets here; the state compiler leaves such a segment out, as before.
    pub(crate) fn compiled(&self) -> Option<&Arc<Pattern>> {
        self.compiled.0.get_or_init(|| Pattern::parse(&self.pattern).ok().map(Arc::new)).as_ref()
    }

    /// This segment with its pattern already compiled, for a caller that had to compile it anyway
    /// (CreateSegment validates it). `parsed` must be `Pattern::parse(self.pattern())`; does nothing if
    /// the pattern was compiled already.
    pub(crate) fn with_compiled(self, parsed: Pattern) -> Segment {
        // `Err` only means it was compiled already, from the same text.
        let _ = self.compiled.0.set(Some(Arc::new(parsed)));
        self
    }
}

/// `Segment::compiled`'s cache: empty until first used, then the pattern or `None` if it does not
/// compile. Derived data, so it never makes two segments unequal.
#[derive(Clone, Default)]
struct CompiledPattern(OnceLock<Option<Arc<Pattern>>>);

impl PartialEq for CompiledPattern {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for CompiledPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0.get() {
            None => "not compiled yet",
            Some(Some(_)) => "compiled",
            Some(None) => "does not compile",
        })
    }
}

/// `MetricDefinitionConfig` as stored (the wire's `MetricDefinition`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricDefinition {
    pub name: String,
    pub entity_id_key: String,
    pub value_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_pattern: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchGroup {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Feature name -> variation name (one entry per group).
    pub feature_variations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentOverride {
    /// The segment's name (sent back as its ARN).
    pub segment: String,
    pub evaluation_order: i64,
    pub weights: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledStep {
    pub start_time: f64,
    #[serde(default)]
    pub group_weights: BTreeMap<String, i64>,
    #[serde(default)]
    pub segment_overrides: Vec<SegmentOverride>,
}

/// Launch and experiment life: CREATED -> RUNNING -> COMPLETED | CANCELLED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Created,
    Running,
    Completed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Created => "CREATED",
            RunStatus::Running => "RUNNING",
            RunStatus::Completed => "COMPLETED",
            RunStatus::Cancelled => "CANCELLED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Launch {
    pub project: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub groups: Vec<LaunchGroup>,
    pub steps: Vec<ScheduledStep>,
    #[serde(default)]
    pub metric_monitors: Vec<MetricDefinition>,
    pub randomization_salt: String,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_time: Option<f64>,
    pub created_time: f64,
    pub last_updated_time: f64,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Treatment {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub feature: String,
    pub variation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricGoal {
    pub metric_definition: MetricDefinition,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_change: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    pub project: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub treatments: Vec<Treatment>,
    pub metric_goals: Vec<MetricGoal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_treatment: Option<String>,
    /// Treatment name -> weight (thousandths of a percent).
    pub treatment_weights: BTreeMap<String, i64>,
    pub sampling_rate: i64,
    /// A segment name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    pub randomization_salt: String,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis_complete_time: Option<f64>,
    pub created_time: f64,
    pub last_updated_time: f64,
    #[serde(default)]
    pub tags: Tags,
}

/// Every Evidently resource, as the control plane holds them. Keys are names; the stored form is one
/// JSON document per resource (see [`Resource::key`]).
#[derive(Debug, Default, Clone)]
pub struct EvResources {
    pub projects: BTreeMap<String, Project>,
    pub features: BTreeMap<(String, String), Feature>,
    pub launches: BTreeMap<(String, String), Launch>,
    pub experiments: BTreeMap<(String, String), Experiment>,
    pub segments: BTreeMap<String, Segment>,
}

/// One stored resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Project(Project),
    Feature(Feature),
    Launch(Launch),
    Experiment(Experiment),
    Segment(Segment),
}

impl Resource {
    /// The store key: `project/P`, `feature/P/F`, `launch/P/L`, `experiment/P/E`, `segment/S`.
    pub fn key(&self) -> String {
        match self {
            Resource::Project(p) => format!("project/{}", p.name),
            Resource::Feature(f) => format!("feature/{}/{}", f.project, f.name),
            Resource::Launch(l) => format!("launch/{}/{}", l.project, l.name),
            Resource::Experiment(e) => format!("experiment/{}/{}", e.project, e.name),
            Resource::Segment(s) => format!("segment/{}", s.name),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let v = match self {
            Resource::Project(p) => serde_json::to_vec(p),
            Resource::Feature(f) => serde_json::to_vec(f),
            Resource::Launch(l) => serde_json::to_vec(l),
            Resource::Experiment(e) => serde_json::to_vec(e),
            Resource::Segment(s) => serde_json::to_vec(s),
        };
        v.unwrap_or_default()
    }

    /// Reads a stored resource back; `None` for a key or document this version does not know.
    pub fn from_stored(key: &str, json: &[u8]) -> Option<Resource> {
        let kind = key.split('/').next()?;
        Some(match kind {
            "project" => Resource::Project(serde_json::from_slice(json).ok()?),
            "feature" => Resource::Feature(serde_json::from_slice(json).ok()?),
            "launch" => Resource::Launch(serde_json::from_slice(json).ok()?),
            "experiment" => Resource::Experiment(serde_json::from_slice(json).ok()?),
            "segment" => Resource::Segment(serde_json::from_slice(json).ok()?),
            _ => return None,
        })
    }
}

impl EvResources {
    /// Puts a resource in its map (insert or replace).
    pub fn put(&mut self, r: Resource) {
        match r {
            Resource::Project(p) => {
                self.projects.insert(p.name.clone(), p);
            }
            Resource::Feature(f) => {
                self.features.insert((f.project.clone(), f.name.clone()), f);
            }
            Resource::Launch(l) => {
                self.launches.insert((l.project.clone(), l.name.clone()), l);
            }
            Resource::Experiment(e) => {
                self.experiments.insert((e.project.clone(), e.name.clone()), e);
            }
            Resource::Segment(s) => {
                self.segments.insert(s.name.clone(), s);
            }
        }
    }

    /// Removes the resource stored under `key`.
    pub fn remove(&mut self, key: &str) {
        let parts: Vec<&str> = key.split('/').collect();
        let pair = |i: usize| {
            (parts.get(i).copied().unwrap_or("").to_string(), parts.get(i + 1).copied().unwrap_or("").to_string())
        };
        match parts.first().copied() {
            Some("project") => {
                self.projects.remove(parts.get(1).copied().unwrap_or(""));
            }
            Some("feature") => {
                self.features.remove(&pair(1));
            }
            Some("launch") => {
                self.launches.remove(&pair(1));
            }
            Some("experiment") => {
                self.experiments.remove(&pair(1));
            }
            Some("segment") => {
                self.segments.remove(parts.get(1).copied().unwrap_or(""));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATTERN: &str = r#"{"Browser":[{"prefix":"Chrome/"}],"Country":["US","CA"]}"#;

    fn segment(pattern: &str) -> Segment {
        Segment::new("beta".into(), pattern.into(), None, 1.5, Tags::new())
    }

    #[test]
    fn pattern_is_compiled_once_per_segment_value() {
        let s = segment(PATTERN);
        assert_eq!(format!("{:?}", s.compiled), "not compiled yet");
        let first = Arc::clone(s.compiled().expect("the pattern compiles"));
        assert_eq!(format!("{:?}", s.compiled), "compiled");
        assert!(Arc::ptr_eq(&first, s.compiled().expect("still compiled")), "compiled a second time");
        // A clone (the control plane's rehearsal copy) shares it; so does a tag change, which clones.
        let copy = s.clone();
        assert!(Arc::ptr_eq(&first, copy.compiled().expect("shared")));
        let retagged = Segment { tags: Tags::from([("k".into(), "v".into())]), ..s.clone() };
        assert!(Arc::ptr_eq(&first, retagged.compiled().expect("shared")));
        assert!(first.matches(&serde_json::json!({"Browser": "Chrome/120", "Country": "CA"})));
        assert!(!first.matches(&serde_json::json!({"Browser": "Firefox/120", "Country": "CA"})));
    }

    #[test]
    fn a_segment_compiled_on_creation_is_not_compiled_again() {
        let parsed = Pattern::parse(PATTERN).expect("the pattern compiles");
        let s = segment(PATTERN).with_compiled(parsed);
        assert_eq!(format!("{:?}", s.compiled), "compiled");
        let first = Arc::clone(s.compiled().expect("compiled"));
        assert!(Arc::ptr_eq(&first, s.compiled().expect("compiled")));
        // Seeding a compiled segment changes nothing.
        let again = s.with_compiled(Pattern::parse(PATTERN).expect("the pattern compiles"));
        assert!(Arc::ptr_eq(&first, again.compiled().expect("compiled")));
    }

    #[test]
    fn a_pattern_that_does_not_compile_is_none() {
        for text in ["", "not json", "[1]", "{}", r#"{"Browser":[{"wildcard":"Chrome*"}]}"#] {
            let s = segment(text);
            assert!(s.compiled().is_none(), "{text}");
            assert!(s.compiled().is_none(), "{text}");
            assert_eq!(format!("{:?}", s.compiled), "does not compile");
        }
    }

    #[test]
    fn the_cache_neither_changes_the_stored_form_nor_equality() {
        let stored = br#"{"name":"beta","pattern":"{\"Browser\":[{\"prefix\":\"Chrome/\"}],\"Country\":[\"US\",\"CA\"]}","createdTime":1.5,"lastUpdatedTime":1.5,"tags":{}}"#;
        let fresh = segment(PATTERN);
        let compiled = segment(PATTERN);
        assert!(compiled.compiled().is_some());
        assert_eq!(fresh, compiled);
        for s in [&fresh, &compiled] {
            assert_eq!(Resource::Segment(s.clone()).to_json(), stored.to_vec());
        }
        let Some(Resource::Segment(read)) = Resource::from_stored("segment/beta", stored) else {
            panic!("a stored segment reads back");
        };
        assert_eq!(read, compiled);
        assert_eq!(format!("{:?}", read.compiled), "not compiled yet");
        assert!(read.compiled().is_some());
    }
}
