//! Evidently's resources as stored and as sent on the wire (restJson1, 2021-02-01).

use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub name: String,
    pub pattern: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_time: f64,
    pub last_updated_time: f64,
    #[serde(default)]
    pub tags: Tags,
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
/// JSON document per resource (see [`EvState::key`]).
#[derive(Debug, Default, Clone)]
pub struct EvState {
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

impl EvState {
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
