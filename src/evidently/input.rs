//! Evidently's requests, from their JSON bodies to typed inputs: every member checked against its
//! shape in the service model (`crate::limits`), defaults filled where the operation's own rules say.
//! Rules that need the state (does the feature exist, is the name taken) are the control plane's.
//!
//! Both the restJson API (`admin::evidently`) and the config file's `[[evidently.*]]` declarations
//! (`plane::declare`) decode through here, so the two can never disagree. Pure.
//!
//! Where the spec is silent (launches):
//! * weights are not required to add up to 100000 (spec 2.5), but every weight must name a group of the
//!   launch (checked on the whole launch, by the control plane);
//! * the `startTime`s of a launch's steps must differ, and so must the `evaluationOrder`s of one step's
//!   segment overrides (either would leave the rule that applies ambiguous); steps may be given in any
//!   order and may start in the past (such a step is in force at once);
//! * `scheduledSplitsConfig` may be omitted: the launch then has no step and serves nothing until one is
//!   set; an empty `eventPattern` reads as no pattern.
//!
//! Experiments: all treatments of one experiment must use the same feature, as Evidently's console
//! requires (an experiment then tests exactly one feature, which keeps evaluation, one running
//! experiment per feature (D6), and results simple).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::arn::Arns;
use super::model::{
    LaunchGroup, MetricDefinition, MetricGoal, RunStatus, ScheduledStep, Segment, SegmentOverride, Tags, Treatment,
    VariableValue, Variation,
};
use super::pattern::Pattern;
use crate::domain::error::{DomainError, DomainResult, ResourceId, ResourceKind};
use crate::limits::Text;
use crate::limits::evidently as aws;

fn required<T>(field: &str, v: Option<T>) -> DomainResult<T> {
    v.ok_or_else(|| DomainError::required(field))
}

/// An optional string member, checked against its shape when present.
pub(crate) fn check_opt(shape: &Text, field: &str, v: Option<&str>) -> DomainResult<()> {
    Ok(v.map_or(Ok(()), |v| shape.check(field, v))?)
}

/// Most tags a resource holds. The model bounds no `TagMap` (only UntagResource's `TagKeyList`, 50);
/// this is AWS's documented limit of 50 tags per resource, which edgesplit enforces on purpose.
pub(crate) const MAX_TAGS: usize = 50;

/// Tags: each key a `TagKey` and each value a `TagValue` (the model's), at most [`MAX_TAGS`] of them.
pub(crate) fn check_tags(tags: &Tags) -> DomainResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(DomainError::invalid("tags", format!("a resource holds at most {MAX_TAGS} tags")));
    }
    for (k, v) in tags {
        aws::TAG_KEY.check_key("tags", k)?;
        aws::TAG_VALUE.check_map_value("tags", v)?;
    }
    Ok(())
}

/// UntagResource's `tagKeys`.
pub(crate) fn check_tag_keys(keys: &[String]) -> DomainResult<()> {
    aws::TAG_KEY_LIST.check("tagKeys", keys.len())?;
    for k in keys {
        aws::TAG_KEY.check("tagKeys", k)?;
    }
    Ok(())
}

/// The name in a reference to a `kind` (project, segment): the reference itself, or the name in an
/// ARN of this account and region. An ARN of another account or region names a resource that is not
/// here (not found), never the local one of that name; anything else that starts with `arn:` is
/// malformed. Callers check `r` against its `ProjectRef` or `SegmentRef` shape first, so an ARN's name
/// is already of the name's characters.
fn named<'r>(arns: &Arns, field: &str, kind: ResourceKind, r: &'r str) -> DomainResult<&'r str> {
    if !r.starts_with("arn:") {
        return Ok(r);
    }
    let resource = |arn: &'r str| arn.strip_prefix(kind.name()).and_then(|rest| rest.strip_prefix('/'));
    if let Some(name) = r.strip_prefix(arns.base()).and_then(|rest| rest.strip_prefix(':')).and_then(resource) {
        return Ok(name);
    }
    let parts: Vec<&str> = r.splitn(6, ':').collect();
    match (parts.as_slice(), parts.get(5).copied().and_then(resource)) {
        ([_, _, "evidently", _, _, _], Some(name)) if !name.is_empty() => {
            Err(DomainError::NotFound(ResourceId::Arn(kind, r.to_string())))
        }
        _ => Err(DomainError::invalid(field, format!("is not a {} name or ARN", kind.name()))),
    }
}

/// A `{project}` reference: a name or a project ARN of this account and region.
pub(crate) fn project_ref(arns: &Arns, r: &str) -> DomainResult<String> {
    aws::PROJECT_REF.check("project", r)?;
    let name = named(arns, "project", ResourceKind::Project, r)?;
    aws::PROJECT_NAME.check("project", name)?;
    Ok(name.to_string())
}

/// A segment reference: a name or a segment ARN of this account and region.
pub(crate) fn segment_ref(arns: &Arns, field: &str, r: &str) -> DomainResult<String> {
    aws::SEGMENT_REF.check(field, r)?;
    let name = named(arns, field, ResourceKind::Segment, r)?;
    aws::SEGMENT_NAME.check(field, name)?;
    Ok(name.to_string())
}

/// A taggable resource named by its ARN: which one it would be in this account and region.
pub(crate) fn tagged(arns: &Arns, arn: &str) -> DomainResult<ResourceId> {
    aws::ARN.check("resourceArn", arn)?;
    let missing = || DomainError::NotFound(ResourceId::Arn(ResourceKind::Resource, arn.to_string()));
    let rest = arn.strip_prefix(arns.base()).and_then(|r| r.strip_prefix(':')).ok_or_else(missing)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let part = |i: usize| parts[i].to_string();
    Ok(match parts.as_slice() {
        ["project", _] => ResourceId::Project(part(1)),
        ["project", _, "feature", _] => ResourceId::Feature(part(1), part(3)),
        ["project", _, "launch", _] => ResourceId::Launch(part(1), part(3)),
        ["project", _, "experiment", _] => ResourceId::Experiment(part(1), part(3)),
        ["segment", _] => ResourceId::Segment(part(1)),
        _ => return Err(missing()),
    })
}

/// A request timestamp: epoch seconds as a JSON number (botocore sends integers, other SDKs fractions), a
/// numeric string or an RFC 3339 string.
pub fn timestamp(field: &str, v: &Value) -> DomainResult<f64> {
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
    t.filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| DomainError::invalid(field, "must be a timestamp in epoch seconds"))
}

// === projects ===

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub app_config_resource: Option<Value>,
    pub data_delivery: Option<DataDeliveryBody>,
    pub tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectPatchBody {
    pub description: Option<String>,
    pub app_config_resource: Option<Value>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DataDeliveryBody {
    pub cloud_watch_logs: Option<Value>,
    pub s3_destination: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewProject {
    pub name: String,
    pub description: Option<String>,
    pub app_config_resource: Option<Value>,
    pub data_delivery: Option<Value>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProjectPatch {
    pub description: Option<String>,
    pub app_config_resource: Option<Value>,
}

fn app_config(v: Option<Value>) -> DomainResult<Option<Value>> {
    let Some(v) = v else { return Ok(None) };
    let obj = v.as_object().ok_or_else(|| DomainError::invalid("appConfigResource", "must be an object"))?;
    // Both ids are optional in the model; edgesplit asks for both, as a project is linked to an
    // application's environment or to nothing.
    let id = |k: &str| -> DomainResult<String> {
        let field = format!("appConfigResource.{k}");
        let s = obj.get(k).and_then(Value::as_str).ok_or_else(|| DomainError::required(&field))?;
        aws::APP_CONFIG_RESOURCE_ID.check(&field, s)?;
        Ok(s.to_string())
    };
    let application_id = id("applicationId")?;
    let environment_id = id("environmentId")?;
    // Evidently made a configuration profile per project; edgesplit names one so the shape is whole.
    let profile: String = application_id.chars().rev().collect();
    Ok(Some(
        json!({ "applicationId": application_id, "environmentId": environment_id, "configurationProfileId": profile }),
    ))
}

impl DataDeliveryBody {
    /// The destination as stored, or `None` for none.
    pub fn decode(self) -> DomainResult<Option<Value>> {
        match (self.cloud_watch_logs, self.s3_destination) {
            (Some(_), Some(_)) => {
                Err(DomainError::invalid("dataDelivery", "name either cloudWatchLogs or s3Destination, not both"))
            }
            (Some(c), None) => {
                // Optional in the model; edgesplit asks for it, as a log destination without a group is
                // no destination.
                let group = c.get("logGroup").and_then(Value::as_str).unwrap_or("");
                aws::CW_LOG_GROUP_SAFE_NAME.check("cloudWatchLogs.logGroup", group)?;
                Ok(Some(json!({ "cloudWatchLogs": { "logGroup": group } })))
            }
            (None, Some(s)) => {
                // Likewise the bucket.
                let bucket = s.get("bucket").and_then(Value::as_str).unwrap_or("");
                aws::S3_BUCKET_SAFE_NAME.check("s3Destination.bucket", bucket)?;
                let mut v = json!({ "bucket": bucket });
                if let Some(prefix) = s.get("prefix").and_then(Value::as_str) {
                    aws::S3_PREFIX_SAFE_NAME.check("s3Destination.prefix", prefix)?;
                    v["prefix"] = json!(prefix);
                }
                Ok(Some(json!({ "s3Destination": v })))
            }
            (None, None) => Ok(None),
        }
    }
}

impl ProjectBody {
    pub fn decode(self) -> DomainResult<NewProject> {
        let name = required("name", self.name)?;
        aws::PROJECT_NAME.check("name", &name)?;
        check_opt(&aws::DESCRIPTION, "description", self.description.as_deref())?;
        let tags = self.tags.unwrap_or_default();
        check_tags(&tags)?;
        let app_config_resource = app_config(self.app_config_resource)?;
        let data_delivery = self.data_delivery.map(DataDeliveryBody::decode).transpose()?.flatten();
        Ok(NewProject { name, description: self.description, app_config_resource, data_delivery, tags })
    }
}

impl ProjectPatchBody {
    pub fn decode(self) -> DomainResult<ProjectPatch> {
        check_opt(&aws::DESCRIPTION, "description", self.description.as_deref())?;
        Ok(ProjectPatch { description: self.description, app_config_resource: app_config(self.app_config_resource)? })
    }
}

// === features ===

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub variations: Option<Vec<Variation>>,
    pub default_variation: Option<String>,
    pub evaluation_strategy: Option<String>,
    pub entity_overrides: Option<BTreeMap<String, String>>,
    pub tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeaturePatchBody {
    pub description: Option<String>,
    pub add_or_update_variations: Option<Vec<Variation>>,
    pub remove_variations: Option<Vec<String>>,
    pub default_variation: Option<String>,
    pub evaluation_strategy: Option<String>,
    pub entity_overrides: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewFeature {
    pub name: String,
    pub description: Option<String>,
    pub variations: Vec<Variation>,
    /// The first variation when not sent.
    pub default_variation: String,
    /// `ALL_RULES` when not sent.
    pub evaluation_strategy: String,
    pub entity_overrides: BTreeMap<String, String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeaturePatch {
    pub description: Option<String>,
    pub add_or_update_variations: Vec<Variation>,
    pub remove_variations: Vec<String>,
    pub default_variation: Option<String>,
    pub evaluation_strategy: Option<String>,
    /// Replaced whole when sent, as the service does.
    pub entity_overrides: Option<BTreeMap<String, String>>,
}

/// One variation's name and value.
pub(crate) fn check_variation(field: &str, v: &Variation) -> DomainResult<()> {
    aws::VARIATION_NAME.check(&format!("{field}.name"), &v.name)?;
    match &v.value {
        VariableValue::Long(n) => aws::VARIABLE_VALUE_LONG_VALUE_LONG.check(&format!("{field}.value.longValue"), *n)?,
        VariableValue::String(s) => {
            aws::VARIABLE_VALUE_STRING_VALUE_STRING.check(&format!("{field}.value.stringValue"), s)?
        }
        // The model's `Double` is unbounded; JSON has no NaN or infinity, but a value must compare.
        VariableValue::Double(d) if !d.is_finite() => {
            return Err(DomainError::invalid(format!("{field}.value.doubleValue"), "must be finite"));
        }
        _ => {}
    }
    Ok(())
}

impl FeatureBody {
    pub fn decode(self) -> DomainResult<NewFeature> {
        let name = required("name", self.name)?;
        aws::FEATURE_NAME.check("name", &name)?;
        check_opt(&aws::DESCRIPTION, "description", self.description.as_deref())?;
        check_opt(&aws::FEATURE_EVALUATION_STRATEGY, "evaluationStrategy", self.evaluation_strategy.as_deref())?;
        check_opt(&aws::VARIATION_NAME, "defaultVariation", self.default_variation.as_deref())?;
        let variations = required("variations", self.variations)?;
        let tags = self.tags.unwrap_or_default();
        check_tags(&tags)?;
        let default_variation =
            self.default_variation.unwrap_or_else(|| variations.first().map(|v| v.name.clone()).unwrap_or_default());
        Ok(NewFeature {
            name,
            description: self.description,
            variations,
            default_variation,
            evaluation_strategy: self.evaluation_strategy.unwrap_or_else(|| "ALL_RULES".into()),
            entity_overrides: self.entity_overrides.unwrap_or_default(),
            tags,
        })
    }
}

impl FeaturePatchBody {
    pub fn decode(self) -> DomainResult<FeaturePatch> {
        check_opt(&aws::DESCRIPTION, "description", self.description.as_deref())?;
        check_opt(&aws::FEATURE_EVALUATION_STRATEGY, "evaluationStrategy", self.evaluation_strategy.as_deref())?;
        check_opt(&aws::VARIATION_NAME, "defaultVariation", self.default_variation.as_deref())?;
        if let Some(adds) = &self.add_or_update_variations {
            aws::VARIATION_CONFIGS_LIST.check("addOrUpdateVariations", adds.len())?;
            for (i, v) in adds.iter().enumerate() {
                check_variation(&format!("addOrUpdateVariations[{i}]"), v)?;
            }
        }
        if let Some(removes) = &self.remove_variations {
            aws::VARIATION_NAME_LIST.check("removeVariations", removes.len())?;
            for (i, r) in removes.iter().enumerate() {
                aws::VARIATION_NAME.check(&format!("removeVariations[{i}]"), r)?;
            }
        }
        let (adds, removes) =
            (self.add_or_update_variations.unwrap_or_default(), self.remove_variations.unwrap_or_default());
        Ok(FeaturePatch {
            description: self.description,
            add_or_update_variations: adds,
            remove_variations: removes,
            default_variation: self.default_variation,
            evaluation_strategy: self.evaluation_strategy,
            entity_overrides: self.entity_overrides,
        })
    }
}

// === segments ===

#[derive(Deserialize)]
pub struct SegmentBody {
    pub name: Option<String>,
    pub pattern: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Tags>,
}

/// Checks and compiles a pattern sent as a JSON string (a `SegmentPattern`).
pub fn pattern(field: &str, text: &str) -> DomainResult<Pattern> {
    aws::SEGMENT_PATTERN.check(field, text)?;
    Pattern::parse(text).map_err(|e| DomainError::invalid(field, e.to_string()))
}

impl SegmentBody {
    /// The segment, its pattern compiled, its times still to be set.
    pub fn decode(self) -> DomainResult<Segment> {
        let name = required("name", self.name)?;
        aws::SEGMENT_NAME.check("name", &name)?;
        let text = required("pattern", self.pattern)?;
        let parsed = pattern("pattern", &text)?;
        check_opt(&aws::DESCRIPTION, "description", self.description.as_deref())?;
        let tags = self.tags.unwrap_or_default();
        check_tags(&tags)?;
        // Compiled to validate it: kept, so the state compiler does not parse it again.
        Ok(Segment::new(name, text, self.description, 0.0, tags).with_compiled(parsed))
    }
}

// === launches and experiments ===

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupBody {
    pub name: Option<String>,
    pub feature: Option<String>,
    pub variation: Option<String>,
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideBody {
    pub segment: Option<String>,
    pub evaluation_order: Option<i64>,
    pub weights: Option<BTreeMap<String, i64>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepBody {
    pub start_time: Option<Value>,
    pub group_weights: Option<BTreeMap<String, i64>>,
    pub segment_overrides: Option<Vec<OverrideBody>>,
}

#[derive(Deserialize)]
pub struct SplitsBody {
    pub steps: Option<Vec<StepBody>>,
}

/// `MetricDefinitionConfig`, shared by launches' monitors and experiments' goals.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricDefinitionBody {
    pub name: Option<String>,
    pub entity_id_key: Option<String>,
    pub value_key: Option<String>,
    pub event_pattern: Option<String>,
    pub unit_label: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricMonitorBody {
    pub metric_definition: Option<MetricDefinitionBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub groups: Option<Vec<GroupBody>>,
    pub scheduled_splits_config: Option<SplitsBody>,
    pub metric_monitors: Option<Vec<MetricMonitorBody>>,
    pub randomization_salt: Option<String>,
    pub tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchPatchBody {
    pub description: Option<String>,
    pub groups: Option<Vec<GroupBody>>,
    pub scheduled_splits_config: Option<SplitsBody>,
    pub metric_monitors: Option<Vec<MetricMonitorBody>>,
    pub randomization_salt: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewLaunch {
    pub name: String,
    pub tags: Tags,
    pub spec: LaunchPatch,
}

/// What a launch's create sets, or an update replaces (each member sent is replaced whole).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaunchPatch {
    pub description: Option<String>,
    pub groups: Option<Vec<LaunchGroup>>,
    pub steps: Option<Vec<ScheduledStep>>,
    pub metric_monitors: Option<Vec<MetricDefinition>>,
    pub randomization_salt: Option<String>,
}

fn salt(v: &Option<String>) -> DomainResult<()> {
    check_opt(&aws::RANDOMIZATION_SALT, "randomizationSalt", v.as_deref())
}

impl MetricDefinitionBody {
    pub fn decode(self, field: &str) -> DomainResult<MetricDefinition> {
        let f = |m: &str| format!("{field}.{m}");
        let name = required(&f("name"), self.name)?;
        aws::CW_DIMENSION_SAFE_NAME.check(&f("name"), &name)?;
        let entity_id_key = required(&f("entityIdKey"), self.entity_id_key)?;
        aws::JSON_PATH.check(&f("entityIdKey"), &entity_id_key)?;
        let value_key = required(&f("valueKey"), self.value_key)?;
        aws::JSON_PATH.check(&f("valueKey"), &value_key)?;
        check_opt(&aws::METRIC_UNIT_LABEL, &f("unitLabel"), self.unit_label.as_deref())?;
        check_opt(
            &aws::METRIC_DEFINITION_CONFIG_EVENT_PATTERN_STRING,
            &f("eventPattern"),
            self.event_pattern.as_deref(),
        )?;
        let event_pattern = match self.event_pattern {
            Some(p) if !p.trim().is_empty() => {
                let parsed: Value = serde_json::from_str(&p)
                    .map_err(|e| DomainError::invalid(f("eventPattern"), format!("is not valid JSON: {e}")))?;
                if !parsed.is_object() {
                    return Err(DomainError::invalid(f("eventPattern"), "must be a JSON object"));
                }
                Some(p)
            }
            _ => None,
        };
        Ok(MetricDefinition { name, entity_id_key, value_key, event_pattern, unit_label: self.unit_label })
    }
}

fn groups(configs: Vec<GroupBody>) -> DomainResult<Vec<LaunchGroup>> {
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
            return Err(DomainError::invalid("groups", format!("group `{name}` is listed twice")));
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
fn weights(field: &str, weights: &BTreeMap<String, i64>) -> DomainResult<()> {
    aws::GROUP_TO_WEIGHT_MAP.check(field, weights.len())?;
    for (g, w) in weights {
        aws::GROUP_NAME.check_key(field, g)?;
        aws::SPLIT_WEIGHT.check(&format!("{field}.{g}"), *w)?;
    }
    Ok(())
}

fn steps(arns: &Arns, config: SplitsBody) -> DomainResult<Vec<ScheduledStep>> {
    let configs = required("scheduledSplitsConfig.steps", config.steps)?;
    aws::SCHEDULED_SPLIT_CONFIG_LIST.check("scheduledSplitsConfig.steps", configs.len())?;
    let mut steps: Vec<ScheduledStep> = Vec::with_capacity(configs.len());
    for (i, s) in configs.into_iter().enumerate() {
        let field = format!("scheduledSplitsConfig.steps[{i}]");
        let start_time =
            timestamp(&format!("{field}.startTime"), &required(&format!("{field}.startTime"), s.start_time)?)?;
        if steps.iter().any(|o| o.start_time == start_time) {
            return Err(DomainError::invalid(format!("{field}.startTime"), "two steps start at the same time"));
        }
        let group_weights = required(&format!("{field}.groupWeights"), s.group_weights)?;
        weights(&format!("{field}.groupWeights"), &group_weights)?;
        let override_configs = s.segment_overrides.unwrap_or_default();
        aws::SEGMENT_OVERRIDES_LIST.check(&format!("{field}.segmentOverrides"), override_configs.len())?;
        let mut segment_overrides: Vec<SegmentOverride> = Vec::with_capacity(override_configs.len());
        for (j, o) in override_configs.into_iter().enumerate() {
            let of = |m: &str| format!("{field}.segmentOverrides[{j}].{m}");
            let segment = segment_ref(arns, &of("segment"), &required(&of("segment"), o.segment)?)?;
            let evaluation_order = required(&of("evaluationOrder"), o.evaluation_order)?;
            if segment_overrides.iter().any(|p| p.evaluation_order == evaluation_order) {
                return Err(DomainError::invalid(
                    of("evaluationOrder"),
                    "two segment overrides of one step have the same evaluationOrder",
                ));
            }
            let w = required(&of("weights"), o.weights)?;
            weights(&of("weights"), &w)?;
            segment_overrides.push(SegmentOverride { segment, evaluation_order, weights: w });
        }
        steps.push(ScheduledStep { start_time, group_weights, segment_overrides });
    }
    Ok(steps)
}

fn monitors(configs: Vec<MetricMonitorBody>) -> DomainResult<Vec<MetricDefinition>> {
    aws::METRIC_MONITOR_CONFIG_LIST.check("metricMonitors", configs.len())?;
    let mut out: Vec<MetricDefinition> = Vec::with_capacity(configs.len());
    for (i, m) in configs.into_iter().enumerate() {
        let field = format!("metricMonitors[{i}].metricDefinition");
        let d = required(&field, m.metric_definition)?.decode(&field)?;
        if out.iter().any(|o| o.name == d.name) {
            return Err(DomainError::invalid("metricMonitors", format!("metric `{}` is listed twice", d.name)));
        }
        out.push(d);
    }
    Ok(out)
}

impl LaunchBody {
    /// `arns` reads segment ARNs in the steps' overrides.
    pub fn decode(self, arns: &Arns) -> DomainResult<NewLaunch> {
        let name = required("name", self.name)?;
        aws::LAUNCH_NAME.check("name", &name)?;
        let tags = self.tags.unwrap_or_default();
        check_tags(&tags)?;
        check_opt(&aws::DESCRIPTION, "description", self.description.as_deref())?;
        salt(&self.randomization_salt)?;
        let groups = Some(groups(required("groups", self.groups)?)?);
        let spec = LaunchPatch {
            description: self.description,
            groups,
            steps: self.scheduled_splits_config.map(|c| steps(arns, c)).transpose()?,
            metric_monitors: self.metric_monitors.map(monitors).transpose()?,
            randomization_salt: self.randomization_salt,
        };
        Ok(NewLaunch { name, tags, spec })
    }
}

impl LaunchPatchBody {
    pub fn decode(self, arns: &Arns) -> DomainResult<LaunchPatch> {
        check_opt(&aws::DESCRIPTION, "description", self.description.as_deref())?;
        salt(&self.randomization_salt)?;
        Ok(LaunchPatch {
            description: self.description,
            groups: self.groups.map(groups).transpose()?,
            steps: self.scheduled_splits_config.map(|c| steps(arns, c)).transpose()?,
            metric_monitors: self.metric_monitors.map(monitors).transpose()?,
            randomization_salt: self.randomization_salt,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreatmentBody {
    pub name: Option<String>,
    pub feature: Option<String>,
    pub variation: Option<String>,
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricGoalBody {
    pub metric_definition: Option<MetricDefinitionBody>,
    pub desired_change: Option<String>,
}

#[derive(Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OnlineAbBody {
    pub control_treatment_name: Option<String>,
    pub treatment_weights: Option<BTreeMap<String, i64>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub treatments: Option<Vec<TreatmentBody>>,
    pub metric_goals: Option<Vec<MetricGoalBody>>,
    pub online_ab_config: Option<OnlineAbBody>,
    pub sampling_rate: Option<i64>,
    pub segment: Option<String>,
    pub randomization_salt: Option<String>,
    pub tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentPatchBody {
    pub description: Option<String>,
    pub treatments: Option<Vec<TreatmentBody>>,
    pub metric_goals: Option<Vec<MetricGoalBody>>,
    pub online_ab_config: Option<OnlineAbBody>,
    pub sampling_rate: Option<i64>,
    pub segment: Option<String>,
    pub remove_segment: Option<bool>,
    pub randomization_salt: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewExperiment {
    pub name: String,
    pub tags: Tags,
    pub spec: ExperimentPatch,
}

/// What an experiment's create sets, or an update changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExperimentPatch {
    pub description: Option<String>,
    pub treatments: Option<Vec<Treatment>>,
    pub metric_goals: Option<Vec<MetricGoal>>,
    pub online_ab: Option<OnlineAbBody>,
    pub sampling_rate: Option<i64>,
    /// A segment name.
    pub segment: Option<String>,
    pub remove_segment: bool,
    pub randomization_salt: Option<String>,
}

fn treatments(configs: Vec<TreatmentBody>) -> DomainResult<Vec<Treatment>> {
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
            return Err(DomainError::invalid("treatments", format!("treatment `{name}` is listed twice")));
        }
        if let Some(first) = out.first()
            && first.feature != feature
        {
            return Err(DomainError::invalid(
                f("feature"),
                format!("all treatments of an experiment must use the same feature (`{}`)", first.feature),
            ));
        }
        out.push(Treatment { name, description: t.description, feature, variation });
    }
    Ok(out)
}

fn goals(configs: Vec<MetricGoalBody>) -> DomainResult<Vec<MetricGoal>> {
    aws::METRIC_GOAL_CONFIG_LIST.check("metricGoals", configs.len())?;
    let mut out: Vec<MetricGoal> = Vec::with_capacity(configs.len());
    for (i, g) in configs.into_iter().enumerate() {
        let field = format!("metricGoals[{i}].metricDefinition");
        let metric_definition = required(&field, g.metric_definition)?.decode(&field)?;
        check_opt(
            &aws::CHANGE_DIRECTION_ENUM,
            &format!("metricGoals[{i}].desiredChange"),
            g.desired_change.as_deref(),
        )?;
        if out.iter().any(|o| o.metric_definition.name == metric_definition.name) {
            return Err(DomainError::invalid(
                "metricGoals",
                format!("metric `{}` is listed twice", metric_definition.name),
            ));
        }
        out.push(MetricGoal { metric_definition, desired_change: g.desired_change });
    }
    Ok(out)
}

fn online_ab(c: &OnlineAbBody) -> DomainResult<()> {
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

impl ExperimentBody {
    pub fn decode(self, arns: &Arns) -> DomainResult<NewExperiment> {
        let name = required("name", self.name)?;
        aws::EXPERIMENT_NAME.check("name", &name)?;
        check_opt(&aws::DESCRIPTION, "description", self.description.as_deref())?;
        salt(&self.randomization_salt)?;
        let tags = self.tags.unwrap_or_default();
        check_tags(&tags)?;
        let treatments = treatments(required("treatments", self.treatments)?)?;
        let metric_goals = goals(required("metricGoals", self.metric_goals)?)?;
        if let Some(c) = &self.online_ab_config {
            online_ab(c)?;
        }
        let segment = self.segment.as_deref().map(|s| segment_ref(arns, "segment", s)).transpose()?;
        let spec = ExperimentPatch {
            description: self.description,
            treatments: Some(treatments),
            metric_goals: Some(metric_goals),
            online_ab: self.online_ab_config,
            sampling_rate: self.sampling_rate,
            segment,
            remove_segment: false,
            randomization_salt: self.randomization_salt,
        };
        Ok(NewExperiment { name, tags, spec })
    }
}

impl ExperimentPatchBody {
    pub fn decode(self, arns: &Arns) -> DomainResult<ExperimentPatch> {
        check_opt(&aws::DESCRIPTION, "description", self.description.as_deref())?;
        salt(&self.randomization_salt)?;
        if let Some(r) = self.sampling_rate {
            aws::SPLIT_WEIGHT.check("samplingRate", r)?;
        }
        let remove_segment = self.remove_segment.unwrap_or(false);
        if remove_segment && self.segment.is_some() {
            return Err(DomainError::invalid("removeSegment", "cannot be used together with segment"));
        }
        let treatments = self.treatments.map(treatments).transpose()?;
        let metric_goals = self.metric_goals.map(goals).transpose()?;
        if let Some(c) = &self.online_ab_config {
            online_ab(c)?;
        }
        let segment = self.segment.as_deref().map(|s| segment_ref(arns, "segment", s)).transpose()?;
        Ok(ExperimentPatch {
            description: self.description,
            treatments,
            metric_goals,
            online_ab: self.online_ab_config,
            sampling_rate: self.sampling_rate,
            segment,
            remove_segment,
            randomization_salt: self.randomization_salt,
        })
    }
}

/// StartExperiment's body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StartBody {
    pub analysis_complete_time: Option<Value>,
}

impl StartBody {
    /// The analysis time, in epoch seconds (its bounds against the clock are the control plane's).
    pub fn decode(self) -> DomainResult<f64> {
        timestamp("analysisCompleteTime", &required("analysisCompleteTime", self.analysis_complete_time)?)
    }
}

/// StopLaunch's and StopExperiment's body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StopBody {
    pub desired_state: Option<String>,
    pub reason: Option<String>,
}

/// How a launch or an experiment ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// COMPLETED or CANCELLED.
    pub state: RunStatus,
    pub reason: Option<String>,
}

impl StopBody {
    /// `desired` is `LaunchStopDesiredState` or `ExperimentStopDesiredState`; COMPLETED when omitted.
    pub fn decode(self, desired: &Text) -> DomainResult<Stop> {
        check_opt(desired, "desiredState", self.desired_state.as_deref())?;
        let state = match self.desired_state.as_deref() {
            None | Some("COMPLETED") => RunStatus::Completed,
            Some("CANCELLED") => RunStatus::Cancelled,
            // The model's enums hold exactly these two (the tests below hold them together).
            Some(other) => {
                return Err(DomainError::invalid("desiredState", format!("edgesplit cannot stop in state `{other}`")));
            }
        };
        check_opt(&aws::DESCRIPTION, "reason", self.reason.as_deref())?;
        Ok(Stop { state, reason: self.reason })
    }
}

// === events and results ===

/// PutProjectEvents' body.
#[derive(Deserialize)]
pub(crate) struct EventsBody {
    pub events: Option<Vec<EventBody>>,
}

#[derive(Deserialize)]
pub(crate) struct EventBody {
    pub timestamp: Option<Value>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub data: Option<String>,
}

/// `EventType`'s values.
pub(crate) const CUSTOM: &str = "aws.evidently.custom";
pub(crate) const EVALUATION: &str = "aws.evidently.evaluation";

/// One event, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    /// Epoch milliseconds.
    pub at_ms: i64,
    /// A custom event, turned into metric values; an evaluation event is accepted and not attributed
    /// (its schema is unpublished).
    pub custom: bool,
    /// A JSON object.
    pub data: Value,
}

impl EventsBody {
    /// The events, each decoded on its own: the call succeeds while single events may fail (one bad
    /// event in a batch should not lose the others, edgesplit's choice for an `EventType` outside the
    /// model's enum too).
    pub fn decode(self) -> DomainResult<Vec<DomainResult<Event>>> {
        let events = required("events", self.events)?;
        aws::EVENT_LIST.check("events", events.len())?;
        Ok(events.into_iter().map(EventBody::decode).collect())
    }
}

impl EventBody {
    fn decode(self) -> DomainResult<Event> {
        let seconds = self.timestamp.as_ref().and_then(Value::as_f64).filter(|s| s.is_finite() && *s >= 0.0);
        let at_ms = seconds
            .map(|s| (s * 1000.0) as i64)
            .ok_or_else(|| DomainError::invalid("timestamp", "must be epoch seconds"))?;
        let text = required("data", self.data)?;
        let data: Value =
            serde_json::from_str(&text).map_err(|e| DomainError::invalid("data", format!("is not valid JSON: {e}")))?;
        if !data.is_object() {
            return Err(DomainError::invalid("data", "must be a JSON object"));
        }
        if let Some(kind) = self.kind.as_deref() {
            aws::EVENT_TYPE.check("type", kind)?;
        }
        let custom = match self.kind.as_deref() {
            Some(CUSTOM) => true,
            Some(EVALUATION) => false,
            _ => return Err(DomainError::invalid("type", format!("must be {CUSTOM} or {EVALUATION}"))),
        };
        Ok(Event { at_ms, custom, data })
    }
}

/// GetExperimentResults' body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResultsBody {
    pub metric_names: Option<Vec<String>>,
    pub treatment_names: Option<Vec<String>>,
    pub base_stat: Option<String>,
    pub result_stats: Option<Vec<String>>,
    pub report_names: Option<Vec<String>>,
    pub period: Option<i64>,
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
}

/// What GetExperimentResults asks for, checked against the model (against the experiment: by the
/// control plane).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResultsQuery {
    pub metric: String,
    pub treatments: Vec<String>,
    /// `ExperimentResultRequestType`s: every one the model names when none is asked.
    pub stats: Vec<String>,
    pub reports: Vec<String>,
    /// Seconds, a `ResultsPeriod`.
    pub period: Option<i64>,
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
}

impl ResultsBody {
    pub fn decode(self) -> DomainResult<ResultsQuery> {
        let metrics = required("metricNames", self.metric_names)?;
        aws::METRIC_NAME_LIST.check("metricNames", metrics.len())?;
        for (i, m) in metrics.iter().enumerate() {
            aws::CW_DIMENSION_SAFE_NAME.check(&format!("metricNames[{i}]"), m)?;
        }
        let [metric] = <[String; 1]>::try_from(metrics)
            .map_err(|_| DomainError::invalid("metricNames", "takes exactly one metric name"))?;
        let treatments = required("treatmentNames", self.treatment_names)?;
        aws::TREATMENT_NAME_LIST.check("treatmentNames", treatments.len())?;
        for (i, t) in treatments.iter().enumerate() {
            aws::TREATMENT_NAME.check(&format!("treatmentNames[{i}]"), t)?;
        }
        check_opt(&aws::EXPERIMENT_BASE_STAT, "baseStat", self.base_stat.as_deref())?;
        let stats = self
            .result_stats
            .unwrap_or_else(|| aws::EXPERIMENT_RESULT_REQUEST_TYPE.values.iter().map(|s| s.to_string()).collect());
        aws::EXPERIMENT_RESULT_REQUEST_TYPE_LIST.check("resultStats", stats.len())?;
        for (i, s) in stats.iter().enumerate() {
            aws::EXPERIMENT_RESULT_REQUEST_TYPE.check(&format!("resultStats[{i}]"), s)?;
        }
        let reports = self.report_names.unwrap_or_default();
        aws::EXPERIMENT_REPORT_NAME_LIST.check("reportNames", reports.len())?;
        for (i, r) in reports.iter().enumerate() {
            aws::EXPERIMENT_REPORT_NAME.check(&format!("reportNames[{i}]"), r)?;
        }
        if let Some(period) = self.period {
            aws::RESULTS_PERIOD.check("period", period)?;
        }
        Ok(ResultsQuery {
            metric,
            treatments,
            stats,
            reports,
            period: self.period,
            start_time: self.start_time,
            end_time: self.end_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: (&str, &str) = ("us-east-1", "000000000000");

    #[test]
    fn references_by_name_or_by_an_arn_of_this_account_only() {
        let arns = Arns::new(BASE.0, BASE.1);
        let base = arns.base().to_string();
        assert_eq!(project_ref(&arns, "shop").unwrap(), "shop");
        assert_eq!(project_ref(&arns, &format!("{base}:project/shop")).unwrap(), "shop");
        assert_eq!(segment_ref(&arns, "segment", &format!("{base}:segment/s")).unwrap(), "s");
        // Regression: another account's or region's ARN named the local project of the same name.
        let foreign = "arn:aws:evidently:us-east-1:999999999999:project/shop";
        assert_eq!(
            project_ref(&arns, foreign),
            Err(DomainError::NotFound(ResourceId::Arn(ResourceKind::Project, foreign.into())))
        );
        assert!(matches!(
            project_ref(&arns, "arn:aws:evidently:eu-west-1:000000000000:project/shop"),
            Err(DomainError::NotFound(_))
        ));
        // Malformed, or traversal in the name: invalid.
        for bad in [
            "arn:aws:evidently:us-east-1:000000000000:segment/x:project/shop",
            "arn:aws:evidently:us-east-1:000000000000:project/shop/feature/f",
            "arn:aws:evidently:us-east-1:000000000000:project/shop/../other",
            "arn:aws:evidently:us-east-1:999999999999:project/shop/../other",
            "arn:aws:s3:::project/shop",
            "arn:",
            "shop/../other",
            "..%2Fother",
        ] {
            assert!(
                matches!(project_ref(&arns, bad), Err(DomainError::Invalid { .. } | DomainError::Constraint(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn run_states_are_the_models() {
        let all = [RunStatus::Created, RunStatus::Running, RunStatus::Completed, RunStatus::Cancelled];
        for statuses in [&aws::LAUNCH_STATUS, &aws::EXPERIMENT_STATUS] {
            for s in all {
                assert!(statuses.values.contains(&s.as_str()), "{} lacks {}", statuses.shape, s.as_str());
            }
        }
        // StopBody::decode maps exactly these.
        for desired in [&aws::LAUNCH_STOP_DESIRED_STATE, &aws::EXPERIMENT_STOP_DESIRED_STATE] {
            assert_eq!(desired.values, [RunStatus::Completed.as_str(), RunStatus::Cancelled.as_str()]);
        }
    }

    #[test]
    fn value_types_and_strategies_are_the_models() {
        let values = [
            VariableValue::Bool(true),
            VariableValue::Long(1),
            VariableValue::Double(0.5),
            VariableValue::String("s".into()),
        ];
        let mut types: Vec<&str> = values.iter().map(VariableValue::value_type).collect();
        let mut model = aws::VARIATION_VALUE_TYPE.values.to_vec();
        types.sort_unstable();
        model.sort_unstable();
        assert_eq!(types, model);
        // The default strategy is one of the model's.
        assert!(aws::FEATURE_EVALUATION_STRATEGY.values.contains(&"ALL_RULES"));
    }

    #[test]
    fn the_event_types_are_the_models() {
        assert_eq!(aws::EVENT_TYPE.values, [EVALUATION, CUSTOM]);
    }

    #[test]
    fn tagged_arns_name_their_resource() {
        let arns = Arns::new(BASE.0, BASE.1);
        assert_eq!(tagged(&arns, &arns.launch("p", "l")), Ok(ResourceId::Launch("p".into(), "l".into())));
        assert_eq!(tagged(&arns, &arns.segment("s")), Ok(ResourceId::Segment("s".into())));
        let other = "arn:aws:evidently:us-east-1:999999999999:project/p";
        assert_eq!(
            tagged(&arns, other),
            Err(DomainError::NotFound(ResourceId::Arn(ResourceKind::Resource, other.into())))
        );
    }
}
