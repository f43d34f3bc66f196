//! Fuzz target `rollout`: the inputs of guarded rollouts (`edgesplit::rollout`, issue 18). A spec, as
//! `PUT /edgesplit/rollouts/{distribution}` reads it (`Spec::from_json`); a stored rollout, as the store and
//! `edgesplit import` read it, then driven through the state machine (`Rollout::apply`); and one instance's
//! counts of a step's window, as a fleet instance reads another's from the database (`SharedWindow`), judged
//! by the guards (`guard::evaluate`).
//!
//! Invariants, checked on every input:
//! 1. `Spec::from_json` never panics; a spec it accepts passes `Spec::check`, and written as JSON it reads
//!    back to the same spec.
//! 2. A stored rollout that reads and passes `Rollout::check` (what the store asks of every rollout it loads)
//!    takes any sequence of actions at any `now_ms` without a panic, and after each one staging's share is
//!    in `[0, 0.15]` when it drives a policy (`[0, 1]` when it drives a launch), the history holds at most `MAX_HISTORY` events and keeps its first, and the rollout still
//!    passes `check` and reads back from its JSON. An accepted action was allowed from the state it found
//!    (pause a running rollout, resume a paused one, abort or roll back an active one, advance or finish a
//!    running one at its own step) and leaves the state it names, recorded as the last event at `now_ms`. An
//!    ended rollout (rolled back, aborted, finished) refuses every action as a conflict.
//! 3. A `SharedWindow` never panics: each arm's `counts()` (`None` exactly when the histogram does not have
//!    `BUCKETS` buckets; errors never above requests; the counts written back to the wire read the same),
//!    merged and subtracted, and judged by `evaluate` with the default guards and a few extreme ones, either
//!    way round, the verdict written as the text a rollback gives.
//!
//! Input: the whole input is the spec (1) and the window (3). Its first JSON value is also read as the stored
//! rollout (2), and the bytes after that value are the actions, 4 bytes each, at most 256: the kind (its value
//! mod 6: pause, resume, abort, advance, finish, roll back); the step the action names (below 0xC0 the
//! rollout's own step, as the driver names it, else 0 to 63: stale, or past the last step); the reason (0
//! none, else a length from 0 to 4000 bytes of one of `x`, ` `, `é`, `€`, perhaps padded with spaces, so that
//! both sides of `MAX_REASON` come up); and the clock (0xFF `u64::MAX`, 0xFE zero, else that many quarter
//! seconds after the last action).
//!
//! Latency buckets are capped at 2^18 each (about 15 million latencies an arm) before they are judged: the
//! latency test's cost grows linearly with the counts (primary's latencies above its quantile, staging's
//! above primary's), so that uncapped counts only find that an evaluation of 10^12 latencies is slow.
//! Requests and errors are not capped (the error-rate test costs the same at any count).
#![no_main]

use edgesplit::rollout::guard::{self, ArmCounts, ErrorRateGuard, GuardConfig, LatencyGuard};
use edgesplit::rollout::{
    Action, MAX_HISTORY, MAX_REASON, POLICY_MAX_WEIGHT, Refused, Rollout, SharedWindow, Spec, State, WireCounts,
};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

const MAX_ACTIONS: usize = 256;
/// The largest latency bucket judged (see the module doc).
const BUCKET_CAP: u64 = 1 << 18;

fuzz_target!(|data: &[u8]| {
    spec(data);
    stored_rollout(data);
    shared_window(data);
});

/// (1) The API's body.
fn spec(data: &[u8]) {
    let Ok(spec) = Spec::from_json(data) else { return };
    assert_eq!(spec.check(), Ok(()), "{spec:?}");
    let written = serde_json::to_vec(&spec).expect("a spec writes");
    let again: Spec = serde_json::from_slice(&written)
        .unwrap_or_else(|e| panic!("{} does not read back: {e}", String::from_utf8_lossy(&written)));
    assert_eq!(again, spec, "round trip through {}", String::from_utf8_lossy(&written));
}

/// (2) A stored rollout, then the actions after it.
fn stored_rollout(data: &[u8]) {
    let mut stream = serde_json::Deserializer::from_slice(data).into_iter::<Rollout>();
    let Some(Ok(mut r)) = stream.next() else { return };
    let actions = &data[stream.byte_offset()..];
    if r.check().is_err() {
        return;
    }
    let mut now = r.updated_ms;
    check_rollout(&r);
    for record in actions.chunks_exact(4).take(MAX_ACTIONS) {
        let action = action(&r, record);
        now = match record[3] {
            0xff => u64::MAX,
            0xfe => 0,
            b => now.saturating_add(u64::from(b) * 250),
        };
        if !r.state.is_active() {
            ended_refuses_everything(&r, now);
        }
        match r.apply(action.clone(), now) {
            Ok(moved) => {
                allowed(&r, &action, &moved);
                assert_eq!(moved.updated_ms, now);
                let last = moved.history.last().expect("an action is recorded");
                assert_eq!((last.at_ms, last.step), (now, moved.step + 1), "{action:?}");
                assert_eq!(last.weight.to_bits(), moved.weight().to_bits(), "{action:?}");
                if let Some(first) = r.history.first() {
                    assert_eq!(moved.history.first(), Some(first), "the first event is kept");
                }
                check_rollout(&moved);
                r = moved;
            }
            Err(Refused::Conflict(message)) => assert!(!message.is_empty()),
            Err(Refused::Invalid(message)) => {
                assert!(r.state.is_active(), "an ended rollout answered Invalid: {message}");
                assert!(!message.is_empty());
            }
        }
    }
}

/// The action a 4-byte record names.
fn action(r: &Rollout, record: &[u8]) -> Action {
    let from = if record[1] < 0xC0 { r.step } else { usize::from(record[1] & 0x3F) };
    let reason = reason(record[2]);
    match record[0] % 6 {
        0 => Action::Pause { reason },
        1 => Action::Resume,
        2 => Action::Abort { reason },
        3 => Action::Advance { from, reference: None },
        4 => Action::Finish { from },
        _ => Action::RollBack { from, reason: reason.unwrap_or_default() },
    }
}

fn reason(b: u8) -> Option<String> {
    if b == 0 {
        return None;
    }
    const LENGTHS: [usize; 8] = [0, 1, 16, 1000, MAX_REASON - 1, MAX_REASON, MAX_REASON + 1, 4000];
    const CHARS: [char; 4] = ['x', ' ', 'é', '€'];
    let c = CHARS[usize::from((b >> 3) & 3)];
    let mut text: String = std::iter::repeat_n(c, LENGTHS[usize::from(b & 7)].div_ceil(c.len_utf8())).collect();
    if b & 0x20 != 0 {
        text = format!("  {text}\n");
    }
    Some(text)
}

/// What holds of every rollout the state machine leaves (and of one the store loads).
fn check_rollout(r: &Rollout) {
    assert_eq!(r.check(), Ok(()), "{r:?}");
    let cap = if r.launch.is_none() { POLICY_MAX_WEIGHT } else { 1.0 };
    let w = r.weight();
    assert!((0.0..=cap).contains(&w), "weight {w} in {r:?}");
    assert!(r.history.len() <= MAX_HISTORY, "{} events", r.history.len());
    assert!(r.bake() <= edgesplit::rollout::MAX_BAKE);
    let _ = (r.baked(0), r.baked(u64::MAX), r.window(), r.policy_enabled(), r.ends_sessions());
    let written = serde_json::to_vec(r).expect("a rollout writes");
    let again: Rollout = serde_json::from_slice(&written)
        .unwrap_or_else(|e| panic!("{} does not read back: {e}", String::from_utf8_lossy(&written)));
    assert_eq!(&again, r, "round trip through {}", String::from_utf8_lossy(&written));
}

/// An accepted action was allowed from `before`, and left the state it names.
fn allowed(before: &Rollout, action: &Action, after: &Rollout) {
    let (s, step) = (before.state, before.step);
    let ok = match action {
        Action::Pause { .. } => s == State::Running && after.state == State::Paused && after.step == step,
        Action::Resume => s == State::Paused && after.state == State::Running && after.step == step,
        Action::Abort { .. } => s.is_active() && after.state == State::Aborted && after.step == step,
        Action::Advance { from, .. } => {
            s == State::Running && *from == step && after.state == State::Running && after.step == step + 1
        }
        Action::Finish { from } => {
            s == State::Running
                && *from == step
                && step + 1 == before.spec.steps.len()
                && after.state == State::Finished
        }
        Action::RollBack { from, .. } => {
            s.is_active() && *from == step && after.state == State::RolledBack && after.step == step
        }
    };
    assert!(ok, "{action:?} took {s:?} at step {step} to {:?} at step {}", after.state, after.step);
    if let Some(reason) = &after.reason {
        let given = matches!(action, Action::Pause { reason: Some(_) } | Action::Abort { reason: Some(_) });
        if given {
            assert!(reason.len() <= MAX_REASON, "a reason of {} bytes was kept", reason.len());
        }
    }
}

/// An ended rollout refuses every action, whatever step it names, as a conflict.
fn ended_refuses_everything(r: &Rollout, now: u64) {
    for from in [r.step, r.step + 1, 0] {
        for action in [
            Action::Pause { reason: None },
            Action::Resume,
            Action::Abort { reason: Some("x".into()) },
            Action::Advance { from, reference: None },
            Action::Finish { from },
            Action::RollBack { from, reason: "breach".into() },
        ] {
            match r.apply(action.clone(), now) {
                Err(Refused::Conflict(_)) => {}
                other => panic!("{:?} rollout took {action:?}: {other:?}", r.state),
            }
        }
    }
}

/// (3) One instance's counts of a window.
fn shared_window(data: &[u8]) {
    let Ok(w) = serde_json::from_slice::<SharedWindow>(data) else { return };
    let mut arms = Vec::with_capacity(2);
    for wire in [&w.primary, &w.staging] {
        let counts = wire.counts();
        assert_eq!(counts.is_some(), wire.latency.len() == guard::BUCKETS, "{wire:?}");
        if let Some(c) = &counts {
            assert!(c.errors <= c.requests, "{c:?}");
            assert_eq!(WireCounts::from(c).counts().as_ref(), Some(c), "counts to the wire and back");
        }
        arms.push(capped(&counts.unwrap_or_default()));
    }
    let (primary, staging) = (&arms[0], &arms[1]);
    let mut merged = primary.clone();
    merged.merge(staging);
    assert!(merged.requests >= primary.requests && merged.errors >= primary.errors);
    let since = merged.since(primary);
    assert!(since.requests <= merged.requests);
    for config in configs() {
        for (p, s) in [(primary, staging), (staging, primary), (&merged, &since)] {
            let verdict = guard::evaluate(&config, p, s);
            assert!(!verdict.to_string().is_empty());
        }
    }
}

/// Every latency bucket at most [`BUCKET_CAP`].
fn capped(c: &ArmCounts) -> ArmCounts {
    let mut buckets = *c.latency.counts();
    for b in &mut buckets {
        *b = (*b).min(BUCKET_CAP);
    }
    ArmCounts { latency: guard::LatencyHistogram::from_counts(buckets), ..c.clone() }
}

/// The default guards, and the extremes `Spec::check` lets through.
fn configs() -> [GuardConfig; 3] {
    let loose = GuardConfig {
        error_rate: Some(ErrorRateGuard { alpha: 0.5, min_requests: 1, margin: 0.0, ceiling: Some(f64::MIN_POSITIVE) }),
        latency: Some(LatencyGuard {
            quantile: f64::MIN_POSITIVE,
            alpha: 0.5,
            min_requests: 1,
            min_slowdown: Duration::ZERO,
            min_slowdown_ratio: 0.0,
            limit: Some(Duration::ZERO),
        }),
    };
    let strict = GuardConfig {
        error_rate: Some(ErrorRateGuard { alpha: 1e-300, min_requests: 1, margin: 0.999_999, ceiling: Some(1.0) }),
        latency: Some(LatencyGuard {
            quantile: 1.0 - f64::EPSILON,
            alpha: 1e-300,
            min_requests: 1,
            min_slowdown: Duration::from_secs(3600),
            min_slowdown_ratio: 1e300,
            limit: Some(Duration::from_secs(3600)),
        }),
    };
    [GuardConfig::default(), loose, strict]
}
