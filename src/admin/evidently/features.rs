//! CreateFeature, GetFeature, ListFeatures, UpdateFeature, DeleteFeature.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::evidently::model::{Feature, Resource, RunStatus, Tags, VariableValue, Variation};

/// A feature's entity overrides may take at most this much (each entry counting its entity id, its
/// variation name and 6 bytes): AWS documents it; the model bounds only the entries (`EntityOverrideMap`).
const MAX_OVERRIDE_BYTES: usize = 40 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    variations: Option<Vec<Variation>>,
    default_variation: Option<String>,
    evaluation_strategy: Option<String>,
    entity_overrides: Option<BTreeMap<String, String>>,
    tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    description: Option<String>,
    add_or_update_variations: Option<Vec<Variation>>,
    remove_variations: Option<Vec<String>>,
    default_variation: Option<String>,
    evaluation_strategy: Option<String>,
    entity_overrides: Option<BTreeMap<String, String>>,
}

fn check_variation(field: &str, v: &Variation) -> EvResult<()> {
    aws::VARIATION_NAME.check(&format!("{field}.name"), &v.name)?;
    match &v.value {
        VariableValue::Long(n) => aws::VARIABLE_VALUE_LONG_VALUE_LONG.check(&format!("{field}.value.longValue"), *n)?,
        VariableValue::String(s) => {
            aws::VARIABLE_VALUE_STRING_VALUE_STRING.check(&format!("{field}.value.stringValue"), s)?
        }
        // The model's `Double` is unbounded; JSON has no NaN or infinity, but a value must compare.
        VariableValue::Double(d) if !d.is_finite() => {
            return Err(invalid(&format!("{field}.value.doubleValue"), "must be finite"));
        }
        _ => {}
    }
    Ok(())
}

/// Rules that must hold for any feature after a create or an update.
fn check_feature(f: &Feature) -> EvResult<()> {
    // The stored feature's list (`VariationsList`) is unbounded in the model; AWS documents 1 to 5
    // variations per feature, the bounds of the request's `VariationConfigsList`, which edgesplit holds
    // the feature to after an update too.
    aws::VARIATION_CONFIGS_LIST.check("variations", f.variations.len())?;
    for (i, v) in f.variations.iter().enumerate() {
        check_variation(&format!("variations[{i}]"), v)?;
        if f.variations[..i].iter().any(|w| w.name == v.name) {
            return Err(invalid("variations", format!("variation `{}` is listed twice", v.name)));
        }
    }
    let kind = f.variations.first().map(|v| v.value.value_type());
    if f.variations.iter().any(|v| Some(v.value.value_type()) != kind) {
        return Err(invalid("variations", "all variations of a feature must have the same value type"));
    }
    if !f.variations.iter().any(|v| v.name == f.default_variation) {
        return Err(invalid(
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
            return Err(invalid(
                "entityOverrides",
                format!("`{variation}` (for entity `{entity}`) is not a variation of this feature"),
            ));
        }
        size += entity.len() + variation.len() + 6;
    }
    if size > MAX_OVERRIDE_BYTES {
        return Err(invalid("entityOverrides", "entity overrides may take at most 40 KB"));
    }
    Ok(())
}

/// Launches and experiments, not yet ended, that serve this feature: `EvaluationRule`s.
fn rules(st: &ControlState, project: &str, feature: &str) -> Vec<Value> {
    let live = |s: RunStatus| matches!(s, RunStatus::Created | RunStatus::Running);
    let mut out = Vec::new();
    for ((p, _), l) in &st.evidently.launches {
        if p == project && live(l.status) && l.groups.iter().any(|g| g.feature_variations.contains_key(feature)) {
            out.push(json!({ "name": l.name, "type": "aws.evidently.splits" }));
        }
    }
    for ((p, _), x) in &st.evidently.experiments {
        if p == project && live(x.status) && x.treatments.iter().any(|t| t.feature == feature) {
            out.push(json!({ "name": x.name, "type": "aws.evidently.onlineab" }));
        }
    }
    out
}

/// Variation names that unfinished launches and experiments of the project use for `feature`.
fn used_variations(st: &ControlState, project: &str, feature: &str) -> Vec<String> {
    let live = |s: RunStatus| matches!(s, RunStatus::Created | RunStatus::Running);
    let mut used = Vec::new();
    for ((p, _), l) in &st.evidently.launches {
        if p == project && live(l.status) {
            used.extend(l.groups.iter().filter_map(|g| g.feature_variations.get(feature).cloned()));
        }
    }
    for ((p, _), x) in &st.evidently.experiments {
        if p == project && live(x.status) {
            used.extend(x.treatments.iter().filter(|t| t.feature == feature).map(|t| t.variation.clone()));
        }
    }
    used
}

pub fn view(st: &ControlState, f: &Feature) -> Value {
    let arns = Arns(&st.config);
    let mut v = json!({
        "arn": arns.feature(&f.project, &f.name),
        "name": f.name,
        "project": arns.project(&f.project),
        "status": "AVAILABLE",
        "valueType": f.variations.first().map_or("STRING", |v| v.value.value_type()),
        "variations": f.variations,
        "defaultVariation": f.default_variation,
        "evaluationStrategy": f.evaluation_strategy,
        "entityOverrides": f.entity_overrides,
        "evaluationRules": rules(st, &f.project, &f.name),
        "createdTime": f.created_time,
        "lastUpdatedTime": f.last_updated_time,
        "tags": f.tags,
    });
    if let Some(d) = &f.description {
        v["description"] = json!(d);
    }
    v
}

/// The feature `f` of project `p`, or 404 in the words the service used.
pub fn find<'a>(st: &'a ControlState, p: &str, f: &str) -> EvResult<&'a Feature> {
    let project = find_project(st, p)?.name.clone();
    aws::FEATURE_NAME.check("feature", f)?;
    st.evidently.features.get(&(project.clone(), f.to_string())).ok_or_else(|| {
        let arn = Arns(&st.config).feature(&project, f);
        not_found("feature", &arn, format!("Feature does not exist with arn '{arn}'"))
    })
}

pub fn create(plane: &Plane, st: &mut ControlState, p: &str, call: &EvCall) -> EvResult<Value> {
    let project = find_project(st, p)?.name.clone();
    let b: CreateBody = call.json()?;
    let name = b.name.ok_or_else(|| invalid("name", "is required"))?;
    aws::FEATURE_NAME.check("name", &name)?;
    check_opt(&aws::DESCRIPTION, "description", b.description.as_deref())?;
    check_opt(&aws::FEATURE_EVALUATION_STRATEGY, "evaluationStrategy", b.evaluation_strategy.as_deref())?;
    check_opt(&aws::VARIATION_NAME, "defaultVariation", b.default_variation.as_deref())?;
    let variations = b.variations.ok_or_else(|| invalid("variations", "is required"))?;
    let tags = b.tags.unwrap_or_default();
    check_tags(&tags)?;
    let default_variation = match b.default_variation {
        Some(d) => d,
        None => variations.first().map(|v| v.name.clone()).unwrap_or_default(),
    };
    let t = now();
    let f = Feature {
        project: project.clone(),
        name: name.clone(),
        description: b.description,
        variations,
        default_variation,
        evaluation_strategy: b.evaluation_strategy.unwrap_or_else(|| "ALL_RULES".into()),
        entity_overrides: b.entity_overrides.unwrap_or_default(),
        created_time: t,
        last_updated_time: t,
        tags,
    };
    check_feature(&f)?;
    let arn = Arns(&st.config).feature(&project, &name);
    check_new_in_project(
        &st.evidently.features,
        ("feature", "features"),
        &arn,
        &project,
        &name,
        st.config.quotas.features_per_project,
    )?;
    commit(plane, st, vec![Resource::Feature(f.clone())], Vec::new())?;
    Ok(json!({ "feature": view(st, &f) }))
}

pub fn get(st: &ControlState, p: &str, f: &str) -> EvResult<Value> {
    Ok(json!({ "feature": view(st, find(st, p, f)?) }))
}

pub fn list(st: &ControlState, p: &str, call: &EvCall) -> EvResult<Value> {
    let project = find_project(st, p)?.name.clone();
    let items = st.evidently.features.iter().filter(|(k, _)| k.0 == project).map(|(k, v)| (k.1.clone(), v)).collect();
    let (page, next) = page(call, items, &aws::MAX_FEATURES, 50)?;
    let arns = Arns(&st.config);
    let features: Vec<Value> = page
        .into_iter()
        .map(|f| {
            json!({
                "arn": arns.feature(&f.project, &f.name),
                "name": f.name,
                "project": arns.project(&f.project),
                "status": "AVAILABLE",
                "createdTime": f.created_time,
                "lastUpdatedTime": f.last_updated_time,
                "defaultVariation": f.default_variation,
                "evaluationStrategy": f.evaluation_strategy,
                "evaluationRules": rules(st, &f.project, &f.name),
                "tags": f.tags,
            })
        })
        .collect();
    Ok(listing("features", features, next))
}

pub fn update(plane: &Plane, st: &mut ControlState, p: &str, name: &str, call: &EvCall) -> EvResult<Value> {
    let mut f = find(st, p, name)?.clone();
    let b: UpdateBody = call.json()?;
    check_opt(&aws::DESCRIPTION, "description", b.description.as_deref())?;
    check_opt(&aws::FEATURE_EVALUATION_STRATEGY, "evaluationStrategy", b.evaluation_strategy.as_deref())?;
    check_opt(&aws::VARIATION_NAME, "defaultVariation", b.default_variation.as_deref())?;
    if let Some(adds) = &b.add_or_update_variations {
        aws::VARIATION_CONFIGS_LIST.check("addOrUpdateVariations", adds.len())?;
        for (i, v) in adds.iter().enumerate() {
            check_variation(&format!("addOrUpdateVariations[{i}]"), v)?;
            match f.variations.iter_mut().find(|w| w.name == v.name) {
                Some(existing) => existing.value = v.value.clone(),
                None => f.variations.push(v.clone()),
            }
        }
    }
    if let Some(removes) = &b.remove_variations {
        aws::VARIATION_NAME_LIST.check("removeVariations", removes.len())?;
        for (i, r) in removes.iter().enumerate() {
            aws::VARIATION_NAME.check(&format!("removeVariations[{i}]"), r)?;
        }
        let used = used_variations(st, &f.project, &f.name);
        if let Some(busy) = removes.iter().find(|r| used.contains(r)) {
            let arn = Arns(&st.config).feature(&f.project, &f.name);
            return Err(conflict(
                "feature",
                &arn,
                format!("Variation `{busy}` is used by a launch or an experiment that has not ended."),
            ));
        }
        f.variations.retain(|v| !removes.contains(&v.name));
    }
    if let Some(d) = b.default_variation {
        f.default_variation = d;
    }
    if let Some(s) = b.evaluation_strategy {
        f.evaluation_strategy = s;
    }
    if let Some(d) = b.description {
        f.description = Some(d);
    }
    // Replaced whole, as the service does.
    if let Some(o) = b.entity_overrides {
        f.entity_overrides = o;
    }
    check_feature(&f)?;
    f.last_updated_time = now();
    commit(plane, st, vec![Resource::Feature(f.clone())], Vec::new())?;
    Ok(json!({ "feature": view(st, &f) }))
}

pub fn delete(plane: &Plane, st: &mut ControlState, p: &str, name: &str) -> EvResult<Value> {
    let f = find(st, p, name)?;
    let (project, feature) = (f.project.clone(), f.name.clone());
    if !rules(st, &project, &feature).is_empty() {
        let arn = Arns(&st.config).feature(&project, &feature);
        return Err(conflict("feature", &arn, "Feature is used by a launch or an experiment that has not ended."));
    }
    commit(plane, st, Vec::new(), vec![format!("feature/{project}/{feature}")])?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
