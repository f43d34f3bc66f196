//! The routing decision: weight statistics within fixed bounds, stickiness over an injected clock,
//! header matching.

use super::*;
use crate::cd::model::{SingleHeader, SingleWeight, Stickiness, TrafficConfig};

fn settings() -> CdSettings {
    CdSettings {
        key: CookieKey::new(b"test key"),
        cookie_name: "edgesplit-cd".into(),
        cache_control_private: false,
        refresh: 10,
    }
}

fn weight_policy(weight: f64, sticky: Option<(u32, u32)>) -> PolicyConfig {
    PolicyConfig {
        staging_dns_names: vec!["staging.test".into()],
        enabled: true,
        traffic: Some(TrafficConfig {
            kind: TrafficType::SingleWeight,
            single_weight: Some(SingleWeight {
                weight,
                stickiness: sticky.map(|(idle_ttl, maximum_ttl)| Stickiness { idle_ttl, maximum_ttl }),
            }),
            single_header: None,
        }),
    }
}

fn with_cookie(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::COOKIE, HeaderValue::from_str(&format!("a=1; edgesplit-cd={value}")).unwrap());
    h
}

#[test]
fn weight_015_stays_within_binomial_bounds() {
    // n = 100_000, p = 0.15: sd = 113; +-6 sd = [14_322, 15_678]. Fixed seed: deterministic.
    let rule = Rule::compile(&weight_policy(0.15, None), "p", 0);
    let s = settings();
    let mut rng = fastrand::Rng::with_seed(42);
    let h = HeaderMap::new();
    let staged =
        (0..100_000).filter(|_| rule.decide(&h, &s, 0, rng.u32(..)).decision.target == Target::Staging).count();
    assert!((14_322..=15_678).contains(&staged), "{staged}");
}

#[test]
fn weight_edges() {
    let s = settings();
    let h = HeaderMap::new();
    let zero = Rule::compile(&weight_policy(0.0, None), "p", 0);
    assert_eq!(zero.decide(&h, &s, 0, 0).decision.target, Target::Primary);
    let w = Rule::compile(&weight_policy(0.1, None), "p", 0);
    let threshold = 429_496_730u32; // round(0.1 * 2^32)
    assert_eq!(
        w.decide(&h, &s, 0, threshold - 1).decision,
        Decision { target: Target::Staging, reason: Reason::WeightDraw }
    );
    assert_eq!(w.decide(&h, &s, 0, threshold).decision.target, Target::Primary);
    assert_eq!(w.decide(&h, &s, 0, 0).session, None, "no cookie without stickiness");
}

#[test]
fn sticky_session_keeps_its_side_with_a_sliding_idle_window_and_a_hard_cap() {
    let s = settings();
    let rule = Rule::compile(&weight_policy(0.15, Some((300, 600))), "cdp", 4);
    let t0 = 1_000_000;
    // First request draws staging (draw 0) and gets a session.
    let first = rule.decide(&HeaderMap::new(), &s, t0, 0);
    assert_eq!(first.decision, Decision { target: Target::Staging, reason: Reason::WeightDraw });
    let session = first.session.unwrap();
    assert_eq!(session, Session { target: Target::Staging, issued: t0, last: t0, epoch: 4 });

    // Replayed within IdleTTL, with a draw that would say primary: still staging, last seen slides.
    let mut cookie = s.key.encode("cdp", &session);
    let mut now = t0;
    for _ in 0..3 {
        now += 200;
        let o = rule.decide(&with_cookie(&cookie), &s, now, u32::MAX);
        assert_eq!(o.decision, Decision { target: Target::Staging, reason: Reason::Sticky }, "at {now}");
        assert_eq!(o.session.unwrap().last, now);
        assert_eq!(o.session.unwrap().issued, t0);
        cookie = s.key.encode("cdp", &o.session.unwrap());
    }
    // t0 + 600 is the MaximumTTL: one second past it the session is over, though never idle.
    assert_eq!(rule.decide(&with_cookie(&cookie), &s, t0 + 600, u32::MAX).decision.reason, Reason::Sticky);
    let expired = rule.decide(&with_cookie(&cookie), &s, t0 + 601, u32::MAX);
    assert_eq!(expired.decision, Decision { target: Target::Primary, reason: Reason::WeightDraw });
    assert_eq!(expired.session.unwrap().issued, t0 + 601);

    // Idle: 301 s of silence ends a session.
    let fresh = s.key.encode("cdp", &Session { target: Target::Staging, issued: t0, last: t0, epoch: 4 });
    assert_eq!(rule.decide(&with_cookie(&fresh), &s, t0 + 300, u32::MAX).decision.reason, Reason::Sticky);
    assert_eq!(rule.decide(&with_cookie(&fresh), &s, t0 + 301, u32::MAX).decision.reason, Reason::WeightDraw);
}

#[test]
fn a_resumed_session_is_re_issued_only_past_the_refresh_granularity() {
    let s = settings(); // refresh: 10 s
    let rule = Rule::compile(&weight_policy(0.15, Some((300, 600))), "cdp", 4);
    let t0 = 1_000_000;
    let session = Session { target: Target::Staging, issued: t0, last: t0, epoch: 4 };
    let cookie = s.key.encode("cdp", &session);
    for age in [0, 1, 9] {
        let o = rule.decide(&with_cookie(&cookie), &s, t0 + age, u32::MAX);
        assert_eq!(o.decision, Decision { target: Target::Staging, reason: Reason::Sticky }, "age {age}");
        assert_eq!(o.session, None, "{age} s after it was issued, the cookie is not re-issued");
    }
    for age in [10, 11, 300] {
        let o = rule.decide(&with_cookie(&cookie), &s, t0 + age, u32::MAX);
        assert_eq!(o.session, Some(Session { last: t0 + age, ..session }), "age {age}");
    }
    // Granularity 0: every response re-issues (the first version of D3).
    let every = CdSettings { refresh: 0, ..settings() };
    assert_eq!(rule.decide(&with_cookie(&cookie), &every, t0, u32::MAX).session, Some(session));
    // A new session is always issued, whatever the granularity.
    assert!(rule.decide(&HeaderMap::new(), &s, t0, u32::MAX).session.is_some());
}

#[test]
fn max_age_is_the_smaller_of_idle_and_what_is_left_of_the_maximum() {
    let s = settings();
    let rule = Rule::compile(&weight_policy(0.1, Some((300, 600))), "cdp", 0);
    let session = Session { target: Target::Primary, issued: 1000, last: 1000, epoch: 0 };
    let v = rule.set_cookie(&s, &session, 1000, false).unwrap();
    let v = v.to_str().unwrap();
    assert!(v.starts_with("edgesplit-cd=v1.p.1000.1000.0."), "{v}");
    assert!(v.ends_with("; Max-Age=300; Path=/; HttpOnly; SameSite=Lax"), "{v}");
    let late = Session { last: 1400, ..session };
    assert!(
        rule.set_cookie(&s, &late, 1400, true)
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with("; Max-Age=200; Path=/; HttpOnly; SameSite=Lax; Secure")
    );
}

#[test]
fn primary_sessions_are_pinned_too() {
    let s = settings();
    let rule = Rule::compile(&weight_policy(0.15, Some((300, 600))), "cdp", 0);
    let first = rule.decide(&HeaderMap::new(), &s, 10, u32::MAX);
    assert_eq!(first.decision.target, Target::Primary);
    let cookie = s.key.encode("cdp", &first.session.unwrap());
    // A later draw that would say staging does not move a primary session.
    assert_eq!(
        rule.decide(&with_cookie(&cookie), &s, 20, 0).decision,
        Decision { target: Target::Primary, reason: Reason::Sticky }
    );
}

#[test]
fn tampered_foreign_stale_and_malformed_cookies_are_a_fresh_draw() {
    let s = settings();
    let rule = Rule::compile(&weight_policy(0.15, Some((300, 600))), "cdp", 2);
    let good = Session { target: Target::Staging, issued: 100, last: 100, epoch: 2 };
    let cookies = [
        s.key.encode("other-policy", &good),
        s.key.encode("cdp", &Session { epoch: 1, ..good }),
        CookieKey::new(b"another key").encode("cdp", &good),
        s.key.encode("cdp", &good).replace(".s.", ".p."),
        "garbage".to_string(),
        String::new(),
    ];
    for c in cookies {
        let o = rule.decide(&with_cookie(&c), &s, 150, u32::MAX);
        assert_eq!(o.decision, Decision { target: Target::Primary, reason: Reason::WeightDraw }, "{c}");
        assert!(o.session.is_some());
    }
}

#[test]
fn enabling_or_disabling_resets_sessions_through_the_epoch() {
    let s = settings();
    let before = Rule::compile(&weight_policy(0.15, Some((300, 600))), "cdp", 0);
    let o = before.decide(&HeaderMap::new(), &s, 100, 0);
    let cookie = s.key.encode("cdp", &o.session.unwrap());
    // The policy was disabled and enabled again: epoch 0 -> 2.
    let mut disabled = weight_policy(0.15, Some((300, 600)));
    disabled.enabled = false;
    assert_eq!(
        Rule::compile(&disabled, "cdp", 1).decide(&with_cookie(&cookie), &s, 110, 0).decision.reason,
        Reason::Disabled
    );
    let after = Rule::compile(&weight_policy(0.15, Some((300, 600))), "cdp", 2);
    assert_eq!(after.decide(&with_cookie(&cookie), &s, 120, u32::MAX).decision.reason, Reason::WeightDraw);
}

#[test]
fn header_rule_matches_name_case_insensitively_and_value_exactly() {
    let s = settings();
    let policy = PolicyConfig {
        staging_dns_names: vec![],
        enabled: true,
        traffic: Some(TrafficConfig {
            kind: TrafficType::SingleHeader,
            single_weight: None,
            single_header: Some(SingleHeader { header: "AWS-CF-CD-Test".into(), value: "blue".into() }),
        }),
    };
    let rule = Rule::compile(&policy, "h", 0);
    let req = |pairs: &[(&str, &str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        rule.decide(&h, &s, 0, 0).decision
    };
    let staging = Decision { target: Target::Staging, reason: Reason::HeaderMatch };
    let primary = Decision { target: Target::Primary, reason: Reason::HeaderMiss };
    assert_eq!(req(&[("aws-cf-cd-test", "blue")]), staging);
    assert_eq!(req(&[("AWS-CF-CD-TEST", "blue")]), staging);
    assert_eq!(req(&[("aws-cf-cd-test", "green"), ("aws-cf-cd-test", "blue")]), staging);
    assert_eq!(req(&[("aws-cf-cd-test", "Blue")]), primary);
    assert_eq!(req(&[("aws-cf-cd-test", "blue ")]), primary);
    assert_eq!(req(&[("aws-cf-cd-other", "blue")]), primary);
    assert_eq!(req(&[]), primary);
    // Cookies mean nothing to a header rule.
    let mut h = with_cookie("v1.s.1.1.0.AAAAAAAAAAAAAAAAAAAAAA");
    h.insert("x", HeaderValue::from_static("y"));
    assert_eq!(rule.decide(&h, &s, 0, 0), Outcome { decision: primary, session: None });
}

#[test]
fn disabled_and_missing_traffic_config_send_everything_to_primary() {
    let s = settings();
    let mut p = weight_policy(0.15, None);
    p.enabled = false;
    assert_eq!(Rule::compile(&p, "x", 0).decide(&HeaderMap::new(), &s, 0, 0).decision.reason, Reason::Disabled);
    let mut p = weight_policy(0.15, None);
    p.traffic = None;
    assert_eq!(Rule::compile(&p, "x", 0).decide(&HeaderMap::new(), &s, 0, 0).decision.reason, Reason::Disabled);
    assert_eq!(Rule::None.decide(&HeaderMap::new(), &s, 0, 0).decision.reason, Reason::NoPolicy);
}
