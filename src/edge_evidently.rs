//! Evidently decisions at the edge (D9): per request, the distribution's features are evaluated for the
//! viewer's entity id and context and handed to the origin as request headers, so origins need no SDK;
//! a feature may also choose primary or staging. Everything that can be is resolved when the snapshot is
//! compiled (features, header values per variation, metric counters), so a request costs the
//! evaluations, a few header inserts and no lock.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use serde_json::{Map, Value};

use crate::cd::cookie;
use crate::config::{ContextAttr, EdgeEvidently, EntitySource};
use crate::domain::{Decision, Reason, Target};
use crate::evidently::compile::EvSnapshot;
use crate::evidently::engine::{CompiledFeature, EvalReason};
use crate::evidently::exposure::{Exposure, ExposureLog};
use crate::metrics::Metrics;
use crate::routing::Routes;

const REASONS: [EvalReason; 4] = [
    EvalReason::EntityOverridesMatch,
    EvalReason::LaunchRuleMatch,
    EvalReason::ExperimentRuleMatch,
    EvalReason::Default,
];

fn reason_index(r: EvalReason) -> usize {
    REASONS.iter().position(|x| *x == r).unwrap_or(3)
}

/// One feature evaluated at the edge, with everything per variation prepared.
pub struct EdgeFeature {
    /// `None` while the project or feature does not exist: nothing is injected.
    pub feature: Option<Arc<CompiledFeature>>,
    pub header: HeaderName,
    pub value_header: Option<HeaderName>,
    names: Vec<HeaderValue>,
    values: Vec<HeaderValue>,
    counters: Vec<[Arc<AtomicU64>; 4]>,
}

impl EdgeFeature {
    fn compile(
        project: &str,
        name: &str,
        header: HeaderName,
        value_header: Option<HeaderName>,
        ev: &EvSnapshot,
        metrics: &Metrics,
    ) -> EdgeFeature {
        let feature = ev.feature(project, name).cloned();
        let variations = feature.as_ref().map_or(&[][..], |f| &f.variations[..]);
        let names = variations
            .iter()
            .map(|(n, _)| HeaderValue::from_str(n).unwrap_or_else(|_| HeaderValue::from_static("-")))
            .collect();
        let values = variations
            .iter()
            .map(|(_, v)| {
                let json = match v {
                    crate::evidently::model::VariableValue::Bool(b) => b.to_string(),
                    crate::evidently::model::VariableValue::Long(n) => n.to_string(),
                    crate::evidently::model::VariableValue::Double(d) => serde_json::to_string(d).unwrap_or_default(),
                    // serde_json leaves DEL as is, and a header value may not hold it: escape it too.
                    crate::evidently::model::VariableValue::String(s) => {
                        serde_json::to_string(s).unwrap_or_default().replace('\u{7f}', "\\u007f")
                    }
                };
                HeaderValue::from_bytes(json.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static("null"))
            })
            .collect();
        let counters = variations
            .iter()
            .map(|(variation, _)| REASONS.map(|r| metrics.evaluation(project, name, variation, r.as_str())))
            .collect();
        EdgeFeature { feature, header, value_header, names, values, counters }
    }

    /// Evaluates, counts, and records an exposure when a launch or an experiment served the entity.
    fn evaluate(
        &self,
        project: &Arc<str>,
        entity: &str,
        ctx: &Value,
        now_ms: i64,
        exposures: &ExposureLog,
    ) -> Option<usize> {
        let f = self.feature.as_ref()?;
        let e = f.evaluate(entity, ctx, now_ms);
        if let Some(c) = self.counters.get(e.variation) {
            c[reason_index(e.reason)].fetch_add(1, Relaxed);
        }
        if let Some(x) = Exposure::of(project, f, &e.details, entity, now_ms) {
            exposures.record(x);
        }
        Some(e.variation)
    }
}

/// A distribution's edge evaluation, compiled.
pub struct CompiledEdge {
    project: Arc<str>,
    entity: Vec<EntitySource>,
    entity_cookie: Arc<str>,
    /// The issued entity cookie's lifetime, in seconds.
    entity_cookie_max_age: u64,
    response_headers: bool,
    context: Vec<(String, ContextAttr)>,
    features: Vec<EdgeFeature>,
    /// Every header name edgesplit injects: removed from the client's request first.
    strip: Vec<HeaderName>,
    route: Option<(EdgeFeature, Vec<bool>)>,
}

/// Every distribution's edge evaluation, compiled for a new snapshot, by distribution index.
pub fn compile_all(routes: &Routes, ev: &EvSnapshot, metrics: &Metrics) -> Box<[Option<CompiledEdge>]> {
    routes.distributions.iter().map(|d| d.edge.as_ref().map(|e| CompiledEdge::compile(e, ev, metrics))).collect()
}

/// What the response needs from the edge evaluation.
#[derive(Default)]
pub struct EdgeOutcome {
    /// A new entity id, to set as the entity cookie.
    pub issued: Option<String>,
    /// Injected headers to echo on the response (`response_headers = true`).
    pub echo: Vec<(HeaderName, HeaderValue)>,
    /// The feature-driven routing decision, when the distribution has one.
    pub route: Option<Decision>,
}

impl CompiledEdge {
    pub fn compile(c: &EdgeEvidently, ev: &EvSnapshot, metrics: &Metrics) -> CompiledEdge {
        let features: Vec<EdgeFeature> = c
            .features
            .iter()
            .map(|f| {
                EdgeFeature::compile(&c.project, &f.feature, f.header.clone(), f.value_header.clone(), ev, metrics)
            })
            .collect();
        let strip =
            c.features.iter().flat_map(|f| std::iter::once(f.header.clone()).chain(f.value_header.clone())).collect();
        let route = c.route.as_ref().map(|r| {
            let ef = EdgeFeature::compile(
                &c.project,
                &r.feature,
                HeaderName::from_static("x-edgesplit-route"),
                None,
                ev,
                metrics,
            );
            let staging = ef
                .feature
                .as_ref()
                .map(|f| f.variations.iter().map(|(n, _)| r.staging_variations.iter().any(|s| s == &**n)).collect())
                .unwrap_or_default();
            (ef, staging)
        });
        CompiledEdge {
            project: c.project.as_str().into(),
            entity: c.entity.clone(),
            entity_cookie: c.entity_cookie.as_str().into(),
            entity_cookie_max_age: c.entity_cookie_max_age.as_secs(),
            response_headers: c.response_headers,
            context: c.context.clone(),
            features,
            strip,
            route,
        }
    }

    /// The entity id: the first configured source that has one, else edgesplit's own cookie, else a new
    /// random id (returned so the response can set it). An id must be a valid `EntityId`, as
    /// EvaluateFeature's is, so the edge and the API agree on every entity.
    fn entity<'a>(&self, headers: &'a HeaderMap) -> (std::borrow::Cow<'a, str>, bool) {
        for s in &self.entity {
            let found = match s {
                EntitySource::Cookie(name) => cookie::find(headers, name),
                EntitySource::Header(name) => headers.get(name).and_then(|v| v.to_str().ok()),
            };
            if let Some(id) = found.filter(|id| crate::limits::evidently::ENTITY_ID.check("entityId", id).is_ok()) {
                return (id.into(), false);
            }
        }
        let own = cookie::find(headers, &self.entity_cookie);
        if let Some(id) = own.filter(|id| crate::limits::evidently::ENTITY_ID.check("entityId", id).is_ok()) {
            return (id.into(), false);
        }
        (new_entity_id(crate::random::id128()).into(), true)
    }

    fn context(&self, headers: &HeaderMap, uri: &Uri, method: &Method, client: IpAddr) -> Value {
        if self.context.is_empty() {
            return Value::Null;
        }
        let mut m = Map::new();
        for (key, attr) in &self.context {
            let v = match attr {
                ContextAttr::Header(h) => headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_string),
                ContextAttr::Query(q) => query_param(uri.query(), q),
                ContextAttr::Path => Some(uri.path().to_string()),
                ContextAttr::Method => Some(method.as_str().to_string()),
                ContextAttr::ClientIp => Some(client.to_string()),
            };
            if let Some(v) = v {
                m.insert(key.clone(), Value::String(v));
            }
        }
        Value::Object(m)
    }

    /// Evaluates the distribution's features for this request, strips forged headers and injects the
    /// decisions.
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        uri: &Uri,
        method: &Method,
        client: IpAddr,
        now_ms: i64,
        exposures: &ExposureLog,
    ) -> EdgeOutcome {
        for name in &self.strip {
            headers.remove(name);
        }
        let (entity, issued) = self.entity(headers);
        let entity = entity.into_owned();
        let ctx = self.context(headers, uri, method, client);
        let mut out = EdgeOutcome::default();
        for f in &self.features {
            let Some(i) = f.evaluate(&self.project, &entity, &ctx, now_ms, exposures) else { continue };
            if let Some(v) = f.names.get(i) {
                headers.insert(f.header.clone(), v.clone());
                if self.response_headers {
                    out.echo.push((f.header.clone(), v.clone()));
                }
            }
            if let (Some(h), Some(v)) = (&f.value_header, f.values.get(i)) {
                headers.insert(h.clone(), v.clone());
                if self.response_headers {
                    out.echo.push((h.clone(), v.clone()));
                }
            }
        }
        if let Some((f, staging)) = &self.route {
            out.route = Some(match f.evaluate(&self.project, &entity, &ctx, now_ms, exposures) {
                Some(i) if staging.get(i).copied().unwrap_or(false) => {
                    Decision { target: Target::Staging, reason: Reason::FeatureStaging }
                }
                _ => Decision { target: Target::Primary, reason: Reason::FeaturePrimary },
            });
        }
        if issued {
            out.issued = Some(entity);
        }
        out
    }

    /// The `Set-Cookie` value for a newly issued entity id.
    pub(crate) fn entity_cookie(&self, id: &str, secure: bool) -> Option<HeaderValue> {
        cookie::set_cookie(&self.entity_cookie, self.entity_cookie_max_age, secure, |line| line.push_str(id))
    }
}

/// A new entity id: 128 random bits as 32 lowercase hex digits, written without the formatting machinery
/// (this runs for every request without an entity cookie).
fn new_entity_id(bits: u128) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for i in (0..32).rev() {
        id.push(HEX[(bits >> (i * 4)) as usize & 0xf] as char);
    }
    id
}

/// The first value of query parameter `name`, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let k = crate::domain::text::percent_decode(&k.replace('+', " "))?;
        (k == name).then(|| crate::domain::text::percent_decode(&v.replace('+', " ")).unwrap_or_else(|| v.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ids_are_32_hex_digits_as_format_writes_them() {
        for bits in [0, 1, 0xdead_beef, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210] {
            assert_eq!(new_entity_id(bits), format!("{bits:032x}"));
        }
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(query_param(Some("a=1&plan=pro%20max&b"), "plan").as_deref(), Some("pro max"));
        assert_eq!(query_param(Some("a=1"), "plan"), None);
        assert_eq!(query_param(None, "plan"), None);
        assert_eq!(query_param(Some("b&plan=x+y"), "plan").as_deref(), Some("x y"));
    }
}
