//! Continuous deployment, CloudFront style: the policy model ([`model`]), the stickiness cookie
//! ([`cookie`]) and the per-request decision ([`Rule::decide`]), a pure function of the request
//! headers, the clock and a random draw.

pub mod cookie;
pub mod model;

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::domain::{Decision, Reason, Target};
use cookie::{CookieKey, Session};
use model::{PolicyConfig, TrafficType};

/// What every sticky rule shares: the key, the cookie's name, the cache marking.
#[derive(Debug, Clone)]
pub struct CdSettings {
    pub key: CookieKey,
    pub cookie_name: Arc<str>,
    /// Add `Cache-Control: private` to responses that set the cookie.
    pub cache_control_private: bool,
    /// A session's cookie is re-issued once its `last seen` is this many seconds old (D3's refresh
    /// granularity); within it the response carries no `Set-Cookie` and costs no HMAC.
    pub refresh: u64,
}

/// A policy compiled for the request path.
#[derive(Debug, Clone)]
pub enum Rule {
    /// No policy applies to the distribution.
    None,
    /// A policy applies but is disabled (or has no traffic config): everything to primary.
    Disabled,
    /// Requests carrying `name: value` (any instance, value byte for byte) go to staging.
    Header { name: HeaderName, value: HeaderValue },
    /// A share of requests (or sessions) goes to staging: `draw < threshold` with `draw` uniform in u32.
    Weight { threshold: u64, sticky: Option<Sticky> },
}

#[derive(Debug, Clone)]
pub struct Sticky {
    pub idle: u64,
    pub max: u64,
    pub epoch: u64,
    /// Bound into the mac, so a cookie of one policy means nothing to another.
    pub policy_id: Arc<str>,
}

/// A decision, and the session cookie to set on the response (sticky weight rules only: a new session,
/// or a resumed one past the refresh granularity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    pub session: Option<Session>,
}

impl Rule {
    /// Compiles a policy. `policy_id` identifies it in cookies; `epoch` is its session generation.
    pub fn compile(policy: &PolicyConfig, policy_id: &str, epoch: u64) -> Rule {
        let Some(t) = policy.traffic.as_ref().filter(|_| policy.enabled) else { return Rule::Disabled };
        match (t.kind, &t.single_weight, &t.single_header) {
            (TrafficType::SingleWeight, Some(w), _) => Rule::Weight {
                threshold: (w.weight.clamp(0.0, 1.0) * 4_294_967_296.0).round() as u64,
                sticky: w.stickiness.map(|s| Sticky {
                    idle: u64::from(s.idle_ttl),
                    max: u64::from(s.maximum_ttl),
                    epoch,
                    policy_id: policy_id.into(),
                }),
            },
            (TrafficType::SingleHeader, _, Some(h)) => {
                match (HeaderName::from_bytes(h.header.as_bytes()), HeaderValue::from_str(&h.value)) {
                    (Ok(name), Ok(value)) => Rule::Header { name, value },
                    _ => Rule::Disabled,
                }
            }
            _ => Rule::Disabled,
        }
    }

    /// Whether requests need the clock (sticky sessions).
    pub fn is_sticky(&self) -> bool {
        matches!(self, Rule::Weight { sticky: Some(_), .. })
    }

    /// Primary or staging for a request. `now` is unix seconds; `draw` a uniform random u32.
    pub fn decide(&self, headers: &HeaderMap, settings: &CdSettings, now: u64, draw: u32) -> Outcome {
        let (target, reason, session) = match self {
            Rule::None => (Target::Primary, Reason::NoPolicy, None),
            Rule::Disabled => (Target::Primary, Reason::Disabled, None),
            Rule::Header { name, value } => {
                if headers.get_all(name).iter().any(|v| v == value) {
                    (Target::Staging, Reason::HeaderMatch, None)
                } else {
                    (Target::Primary, Reason::HeaderMiss, None)
                }
            }
            Rule::Weight { threshold, sticky } => {
                let resumed = sticky.as_ref().and_then(|st| {
                    let value = cookie::find(headers, &settings.cookie_name)?;
                    let s = settings.key.verify(&st.policy_id, value)?;
                    let valid = s.epoch == st.epoch
                        && now.saturating_sub(s.last) <= st.idle
                        && now.saturating_sub(s.issued) <= st.max;
                    valid.then_some(s)
                });
                match (resumed, sticky) {
                    (Some(s), _) => {
                        // Re-issued with `last seen = now` only past the refresh granularity.
                        let reissue = now.saturating_sub(s.last) >= settings.refresh;
                        (s.target, Reason::Sticky, reissue.then_some(Session { last: now, ..s }))
                    }
                    (None, sticky) => {
                        let target = if u64::from(draw) < *threshold { Target::Staging } else { Target::Primary };
                        let session =
                            sticky.as_ref().map(|st| Session { target, issued: now, last: now, epoch: st.epoch });
                        (target, Reason::WeightDraw, session)
                    }
                }
            }
        };
        Outcome { decision: Decision { target, reason }, session }
    }

    /// The `Set-Cookie` value for a session of this rule.
    pub fn set_cookie(&self, settings: &CdSettings, session: &Session, now: u64, secure: bool) -> Option<HeaderValue> {
        let Rule::Weight { sticky: Some(st), .. } = self else { return None };
        let max_age = st.idle.min(st.max.saturating_sub(now.saturating_sub(session.issued)));
        cookie::set_cookie(&settings.cookie_name, max_age, secure, |line| {
            settings.key.encode_into(&st.policy_id, session, line)
        })
    }
}

#[cfg(test)]
mod tests;
