//! CloudFront's continuous deployment policy, as stored and as checked: the shapes of the 2020-05-31
//! `ContinuousDeploymentPolicyConfig`, and the rules the service enforces that botocore does not.

use serde::{Deserialize, Serialize};

/// CloudFront's bounds for `IdleTTL` and `MaximumTTL`, in seconds (its developer guide: the service model
/// says only `integer`).
pub const STICKINESS_TTL: std::ops::RangeInclusive<u32> = 300..=3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrafficType {
    SingleWeight,
    SingleHeader,
}

impl TrafficType {
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficType::SingleWeight => "SingleWeight",
            TrafficType::SingleHeader => "SingleHeader",
        }
    }

    pub fn parse(s: &str) -> Option<TrafficType> {
        match s {
            "SingleWeight" => Some(TrafficType::SingleWeight),
            "SingleHeader" => Some(TrafficType::SingleHeader),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stickiness {
    pub idle_ttl: u32,
    pub maximum_ttl: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SingleWeight {
    pub weight: f64,
    pub stickiness: Option<Stickiness>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SingleHeader {
    pub header: String,
    pub value: String,
}

/// `TrafficConfig`: both sub-configs are kept as sent (CloudFront echoes what it was given); `kind`
/// says which one routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficConfig {
    pub kind: TrafficType,
    pub single_weight: Option<SingleWeight>,
    pub single_header: Option<SingleHeader>,
}

/// `ContinuousDeploymentPolicyConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    pub staging_dns_names: Vec<String>,
    pub enabled: bool,
    pub traffic: Option<TrafficConfig>,
}

pub(crate) const HEADER_PREFIX: &str = "aws-cf-cd-";

impl PolicyConfig {
    /// The service-side rules on the traffic config (CloudFront's `InvalidArgument`). Quantities and
    /// staging names are checked by the caller, which knows the distributions.
    ///
    /// None of these bounds is a constraint trait of the model (`crate::limits::cloudfront` has only the
    /// `Type` enum for these shapes: `Weight` is a bare `float`, the TTLs bare `integer`s, `Header` and
    /// `Value` bare `string`s). The weight and TTL ranges are in the model's documentation strings and
    /// CloudFront's guide (spec `cloudfront-cd.md` §2.1, §3); the header's prefix and the lengths are
    /// CloudFront's documented rules and HTTP's.
    pub fn validate(&self) -> Result<(), String> {
        let Some(t) = &self.traffic else { return Ok(()) };
        match t.kind {
            TrafficType::SingleWeight => {
                let w = t.single_weight.as_ref().ok_or("TrafficConfig Type SingleWeight needs a SingleWeightConfig")?;
                if !(w.weight.is_finite() && (0.0..=0.15).contains(&w.weight)) {
                    return Err(format!("Weight {} is out of range: it must be between 0 and 0.15", w.weight));
                }
                if let Some(s) = &w.stickiness {
                    for (name, v) in [("IdleTTL", s.idle_ttl), ("MaximumTTL", s.maximum_ttl)] {
                        if !STICKINESS_TTL.contains(&v) {
                            return Err(format!(
                                "{name} {v} is out of range: it must be between {} and {} seconds",
                                STICKINESS_TTL.start(),
                                STICKINESS_TTL.end()
                            ));
                        }
                    }
                    if s.idle_ttl > s.maximum_ttl {
                        return Err(format!("IdleTTL {} must not exceed MaximumTTL {}", s.idle_ttl, s.maximum_ttl));
                    }
                }
            }
            TrafficType::SingleHeader => {
                let h = t.single_header.as_ref().ok_or("TrafficConfig Type SingleHeader needs a SingleHeaderConfig")?;
                if h.header.is_empty() || h.header.len() > 256 {
                    return Err("Header must be 1 to 256 characters long".into());
                }
                if !h.header.to_ascii_lowercase().starts_with(HEADER_PREFIX) {
                    return Err(format!("Header `{}` must start with the prefix {HEADER_PREFIX}", h.header));
                }
                if http::HeaderName::from_bytes(h.header.as_bytes()).is_err() {
                    return Err(format!("Header `{}` is not a valid HTTP header name", h.header));
                }
                if h.value.is_empty() || h.value.len() > 1783 {
                    return Err("Value must be 1 to 1783 characters long".into());
                }
                if http::HeaderValue::from_str(&h.value).is_err() {
                    return Err("Value must be visible ASCII characters and spaces".into());
                }
            }
        }
        Ok(())
    }

    /// Whether sessions are sticky; switching this resets every session.
    pub fn sticky(&self) -> bool {
        self.traffic.as_ref().is_some_and(|t| {
            t.kind == TrafficType::SingleWeight && t.single_weight.as_ref().is_some_and(|w| w.stickiness.is_some())
        })
    }
}

/// A policy as the API manages it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPolicy {
    pub id: String,
    pub etag: String,
    /// Unix milliseconds.
    pub last_modified_ms: u64,
    pub config: PolicyConfig,
    /// Session generation: bumped when the policy is enabled or disabled or stickiness is switched,
    /// which invalidates every sticky cookie of the policy (D3).
    pub epoch: u64,
}

impl StoredPolicy {
    /// The epoch a new config gets: the same unless the change resets sessions.
    pub(crate) fn next_epoch(&self, new: &PolicyConfig) -> u64 {
        if self.config.enabled != new.enabled || self.config.sticky() != new.sticky() {
            self.epoch + 1
        } else {
            self.epoch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(w: f64, sticky: Option<(u32, u32)>) -> PolicyConfig {
        PolicyConfig {
            staging_dns_names: vec!["s".into()],
            enabled: true,
            traffic: Some(TrafficConfig {
                kind: TrafficType::SingleWeight,
                single_weight: Some(SingleWeight {
                    weight: w,
                    stickiness: sticky.map(|(i, m)| Stickiness { idle_ttl: i, maximum_ttl: m }),
                }),
                single_header: None,
            }),
        }
    }

    fn header(h: &str, v: &str) -> PolicyConfig {
        PolicyConfig {
            staging_dns_names: vec!["s".into()],
            enabled: true,
            traffic: Some(TrafficConfig {
                kind: TrafficType::SingleHeader,
                single_weight: None,
                single_header: Some(SingleHeader { header: h.into(), value: v.into() }),
            }),
        }
    }

    #[test]
    fn cloudfront_rules() {
        assert!(weight(0.0, None).validate().is_ok());
        assert!(weight(0.15, Some((300, 3600))).validate().is_ok());
        assert!(weight(0.16, None).validate().is_err());
        assert!(weight(-0.01, None).validate().is_err());
        assert!(weight(f64::NAN, None).validate().is_err());
        assert!(weight(0.1, Some((299, 600))).validate().is_err());
        assert!(weight(0.1, Some((300, 3601))).validate().is_err());
        assert!(weight(0.1, Some((600, 300))).validate().is_err());
        assert!(header("aws-cf-cd-test", "blue").validate().is_ok());
        assert!(header("AWS-CF-CD-Test", "blue").validate().is_ok());
        assert!(header("x-test", "blue").validate().is_err());
        assert!(header("aws-cf-cd-test", "").validate().is_err());
        assert!(header("aws-cf-cd-test", "a\nb").validate().is_err());
        assert!(header("aws-cf-cd-te st", "a").validate().is_err());
        let mut wrong = header("aws-cf-cd-test", "blue");
        wrong.traffic.as_mut().unwrap().kind = TrafficType::SingleWeight;
        assert!(wrong.validate().is_err());
    }

    #[test]
    fn traffic_types_are_the_models() {
        let model = crate::limits::cloudfront::CONTINUOUS_DEPLOYMENT_POLICY_TYPE.values;
        for v in model {
            assert_eq!(TrafficType::parse(v).map(TrafficType::as_str), Some(*v));
        }
        for t in [TrafficType::SingleWeight, TrafficType::SingleHeader] {
            assert!(model.contains(&t.as_str()), "{t:?} is not in the model");
        }
    }

    #[test]
    fn epoch_moves_on_enable_and_stickiness_switches_only() {
        let p = StoredPolicy {
            id: "x".into(),
            etag: "E".into(),
            last_modified_ms: 0,
            config: weight(0.1, Some((300, 600))),
            epoch: 7,
        };
        assert_eq!(p.next_epoch(&weight(0.05, Some((300, 900)))), 7);
        assert_eq!(p.next_epoch(&weight(0.1, None)), 8);
        let mut disabled = weight(0.1, Some((300, 600)));
        disabled.enabled = false;
        assert_eq!(p.next_epoch(&disabled), 8);
    }
}
