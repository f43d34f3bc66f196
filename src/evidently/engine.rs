//! Bucketing and evaluation: which variation of a feature an entity gets, and why.
//!
//! # Bucketing (decision D5: a stable, documented contract)
//!
//! Every random-looking choice is a *bucket*, a number in `[0, 100000)` (the unit of Evidently's weights,
//! thousandths of a percent):
//!
//! ```text
//! bucket(salt, stage, entityId) = (murmur3_x86_32(utf8("{salt}/{stage}/{entityId}"), seed 0) as u64 * 100000) >> 32
//! ```
//!
//! `salt` is the launch's or experiment's `randomizationSalt` (which defaults to its name). The stage keeps the
//! choices independent of each other, so that falling through one rule says nothing about the next:
//!
//! | stage                              | decides                                                           |
//! |------------------------------------|-------------------------------------------------------------------|
//! | `launch`                           | the group of the step's default split (`groupWeights`)            |
//! | `launch-segment-{evaluationOrder}` | the group of one segment override (e.g. `launch-segment-3`)       |
//! | `experiment-sample`                | enrolment: enrolled iff `bucket < samplingRate`                   |
//! | `experiment-treatment`             | the treatment of an enrolled entity                               |
//!
//! Weights are laid out as consecutive half-open ranges in the order the groups (treatments) are defined: with
//! weights `[w0, w1, ...]` group 0 owns `[0, w0)`, group 1 owns `[w0, w0 + w1)`, and so on. A bucket at or past
//! the sum is *unassigned* and falls through to the next rule; a sum above 100000 simply leaves the part of the
//! later ranges past 100000 unreachable. Treatment weights are normalised by their sum instead: the treatment is
//! the range containing `bucket * sum / 100000`, so every enrolled entity gets one; a zero sum enrols nobody.
//!
//! Because enrolment and treatment use separate stages and neither depends on `samplingRate`, raising the
//! sampling rate only adds entities (each enrolled entity keeps its treatment) and lowering it only sends entities
//! back to the default. The golden vectors in the tests below were computed independently (Python's `mmh3`);
//! **changing them, the key layout or the stage names is a breaking change**: it reshuffles every user of every
//! running launch and experiment.
//!
//! # Evaluation (decision D6)
//!
//! [`CompiledFeature::evaluate`] applies, first match wins:
//!
//! 1. entity override → [`EvalReason::EntityOverridesMatch`], details `{}`;
//! 2. `evaluationStrategy = DEFAULT_VARIATION` → the default variation, [`EvalReason::Default`], `{}`;
//! 3. the running launch, using the step in force (the last one with `startTime <= now`; none → the launch
//!    contributes nothing): its segment overrides in ascending `evaluationOrder`, the first whose segment matches
//!    the evaluation context assigning by its weights (stage `launch-segment-{evaluationOrder}`); an unassigned
//!    bucket, or a group of another feature, moves on to the next override and then to the step's default split
//!    (stage `launch`); → [`EvalReason::LaunchRuleMatch`], `{"launch":L,"group":G}`. A default-split bucket that is
//!    unassigned or lands on another feature's group is "not in the launch for this feature";
//! 4. the running experiment, when its segment (if any) matches: enrolment, then treatment (a treatment of another
//!    feature means "not in the experiment") → [`EvalReason::ExperimentRuleMatch`], `{"experiment":E,"treatment":T}`;
//! 5. the default variation → [`EvalReason::Default`], `{}`.
//!
//! Evaluation does not allocate (the details borrow the names; JSON is produced only by [`Details::to_json`]) and
//! never panics: an index from the compiled data that is out of range is treated as "no match".

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::evidently::model::VariableValue;
use crate::evidently::pattern::Pattern;

/// The number of buckets, and the total of a full weight split (100 % in thousandths of a percent).
pub(crate) const BUCKETS: u32 = 100_000;

/// Stage of a launch step's default split.
pub(crate) const STAGE_LAUNCH: &str = "launch";
/// Prefix of a segment override's stage; the override's `evaluationOrder` follows in decimal.
pub(crate) const STAGE_LAUNCH_SEGMENT_PREFIX: &str = "launch-segment-";
/// Stage of experiment enrolment (against `samplingRate`).
pub(crate) const STAGE_EXPERIMENT_SAMPLE: &str = "experiment-sample";
/// Stage of the treatment choice of an enrolled entity.
pub(crate) const STAGE_EXPERIMENT_TREATMENT: &str = "experiment-treatment";

/// A feature with its running launch and experiment, compiled by the control plane for evaluation.
#[derive(Debug, Clone)]
pub struct CompiledFeature {
    pub project_arn: Arc<str>,
    pub feature_arn: Arc<str>,
    pub name: Arc<str>,
    pub variations: Vec<(Arc<str>, VariableValue)>,
    /// Index into `variations`.
    pub default_variation: usize,
    /// `evaluationStrategy == DEFAULT_VARIATION`.
    pub default_only: bool,
    /// entityId → variation index.
    pub overrides: HashMap<String, usize>,
    /// The RUNNING launch that has a group for this feature.
    pub launch: Option<CompiledLaunch>,
    /// The RUNNING experiment that has a treatment for this feature.
    pub experiment: Option<CompiledExperiment>,
}

#[derive(Debug, Clone)]
pub struct CompiledLaunch {
    pub name: Arc<str>,
    pub salt: Arc<str>,
    /// It has metric monitors, so events can be attributed to its groups: only then are its
    /// assignments remembered as exposures.
    pub measured: bool,
    pub groups: Vec<LaunchGroup>,
    /// Ascending `start_ms`.
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct LaunchGroup {
    pub name: Arc<str>,
    /// This feature's variation; `None` when the group targets another feature.
    pub variation: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub start_ms: i64,
    /// One per group, in group order; 0 for groups the step does not name.
    pub weights: Vec<u32>,
    /// Ascending `evaluation_order`.
    pub overrides: Vec<SegmentOverride>,
}

#[derive(Debug, Clone)]
pub struct SegmentOverride {
    pub evaluation_order: i64,
    pub segment: Arc<Pattern>,
    /// One per group, as in [`Step::weights`].
    pub weights: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct CompiledExperiment {
    pub name: Arc<str>,
    pub salt: Arc<str>,
    /// It has metric goals (the API requires one): its assignments are remembered as exposures.
    pub measured: bool,
    /// 0..=100000; enrolled iff `bucket(salt, "experiment-sample", id) < sampling_rate`.
    pub sampling_rate: u32,
    pub segment: Option<Arc<Pattern>>,
    pub treatments: Vec<Treatment>,
}

#[derive(Debug, Clone)]
pub struct Treatment {
    pub name: Arc<str>,
    /// This feature's variation; `None` when the treatment targets another feature.
    pub variation: Option<usize>,
    pub weight: u32,
}

/// Why a variation was served (the `reason` of EvaluateFeature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalReason {
    EntityOverridesMatch,
    LaunchRuleMatch,
    ExperimentRuleMatch,
    Default,
}

impl EvalReason {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            EvalReason::EntityOverridesMatch => "ENTITY_OVERRIDES_MATCH",
            EvalReason::LaunchRuleMatch => "LAUNCH_RULE_MATCH",
            EvalReason::ExperimentRuleMatch => "EXPERIMENT_RULE_MATCH",
            EvalReason::Default => "DEFAULT",
        }
    }
}

/// The `details` of an evaluation, borrowing the launch/experiment and group/treatment names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Details<'a> {
    Empty,
    Launch { launch: &'a str, group: &'a str },
    Experiment { experiment: &'a str, treatment: &'a str },
}

#[derive(Serialize)]
struct LaunchDetails<'a> {
    launch: &'a str,
    group: &'a str,
}

#[derive(Serialize)]
struct ExperimentDetails<'a> {
    experiment: &'a str,
    treatment: &'a str,
}

impl Details<'_> {
    /// The JSON string sent as `details`: `{}`, `{"launch":L,"group":G}` or `{"experiment":E,"treatment":T}`.
    pub fn to_json(&self) -> String {
        let json = match *self {
            Details::Empty => return "{}".to_owned(),
            Details::Launch { launch, group } => serde_json::to_string(&LaunchDetails { launch, group }),
            Details::Experiment { experiment, treatment } => {
                serde_json::to_string(&ExperimentDetails { experiment, treatment })
            }
        };
        // Serialising two strings cannot fail.
        json.unwrap_or_else(|_| "{}".to_owned())
    }
}

/// The result of [`CompiledFeature::evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation<'a> {
    /// Index into [`CompiledFeature::variations`].
    pub variation: usize,
    pub reason: EvalReason,
    pub details: Details<'a>,
}

impl CompiledFeature {
    /// D6 rule order. `context` is the evaluation context (a JSON object, or Null when none was sent); `now_ms` is
    /// unix milliseconds.
    ///
    /// Every returned `variation` other than `default_variation` is checked to be an index into `variations`;
    /// `default_variation` is returned as compiled.
    pub fn evaluate<'a>(&'a self, entity_id: &str, context: &serde_json::Value, now_ms: i64) -> Evaluation<'a> {
        if let Some(&variation) = self.overrides.get(entity_id)
            && variation < self.variations.len()
        {
            return Evaluation { variation, reason: EvalReason::EntityOverridesMatch, details: Details::Empty };
        }
        if !self.default_only {
            if let Some(launch) = &self.launch
                && let Some((variation, group)) = self.evaluate_launch(launch, entity_id, context, now_ms)
            {
                return Evaluation {
                    variation,
                    reason: EvalReason::LaunchRuleMatch,
                    details: Details::Launch { launch: &launch.name, group },
                };
            }
            if let Some(experiment) = &self.experiment
                && let Some((variation, treatment)) = self.evaluate_experiment(experiment, entity_id, context)
            {
                return Evaluation {
                    variation,
                    reason: EvalReason::ExperimentRuleMatch,
                    details: Details::Experiment { experiment: &experiment.name, treatment },
                };
            }
        }
        Evaluation { variation: self.default_variation, reason: EvalReason::Default, details: Details::Empty }
    }

    /// The launch's verdict for this feature: (variation, group name), or `None` when the entity is not in it.
    fn evaluate_launch<'a>(
        &self,
        launch: &'a CompiledLaunch,
        entity_id: &str,
        context: &serde_json::Value,
        now_ms: i64,
    ) -> Option<(usize, &'a str)> {
        // The last step in force; a scan from the end (at most six steps) also copes with an unsorted list.
        let step = launch.steps.iter().rev().find(|step| step.start_ms <= now_ms)?;
        // In the compiled order, which the control plane sorts by ascending evaluation_order.
        for segment_override in &step.overrides {
            if !segment_override.segment.matches(context) {
                continue;
            }
            let stage = SegmentStage::new(segment_override.evaluation_order);
            let bucket = bucket_bytes(&launch.salt, stage.as_bytes(), entity_id);
            if let Some(hit) = self.launch_group(launch, &segment_override.weights, bucket) {
                return Some(hit);
            }
        }
        let bucket = bucket_bytes(&launch.salt, STAGE_LAUNCH.as_bytes(), entity_id);
        self.launch_group(launch, &step.weights, bucket)
    }

    /// The group of `launch` whose range under `weights` holds `bucket`, when it serves a variation of this feature.
    fn launch_group<'a>(&self, launch: &'a CompiledLaunch, weights: &[u32], bucket: u32) -> Option<(usize, &'a str)> {
        let group = launch.groups.get(pick(weights.iter().copied(), u64::from(bucket))?)?;
        let variation = group.variation.filter(|&v| v < self.variations.len())?;
        Some((variation, &group.name))
    }

    /// The experiment's verdict for this feature: (variation, treatment name), or `None` when the entity is not in it.
    fn evaluate_experiment<'a>(
        &self,
        experiment: &'a CompiledExperiment,
        entity_id: &str,
        context: &serde_json::Value,
    ) -> Option<(usize, &'a str)> {
        if let Some(segment) = &experiment.segment
            && !segment.matches(context)
        {
            return None;
        }
        let sum: u64 = experiment.treatments.iter().map(|t| u64::from(t.weight)).sum();
        if sum == 0 {
            return None;
        }
        if bucket_bytes(&experiment.salt, STAGE_EXPERIMENT_SAMPLE.as_bytes(), entity_id) >= experiment.sampling_rate {
            return None;
        }
        let bucket = bucket_bytes(&experiment.salt, STAGE_EXPERIMENT_TREATMENT.as_bytes(), entity_id);
        // bucket < 100000, so the point is < sum and always lands in a range.
        let point = u64::from(bucket) * sum / u64::from(BUCKETS);
        let treatment = experiment.treatments.get(pick(experiment.treatments.iter().map(|t| t.weight), point)?)?;
        let variation = treatment.variation.filter(|&v| v < self.variations.len())?;
        Some((variation, &treatment.name))
    }
}

/// The index of the consecutive range (in definition order) that holds `point`, or `None` at or past the sum.
fn pick(weights: impl IntoIterator<Item = u32>, point: u64) -> Option<usize> {
    let mut end = 0u64;
    for (index, weight) in weights.into_iter().enumerate() {
        end += u64::from(weight);
        if point < end {
            return Some(index);
        }
    }
    None
}

/// `bucket(salt, stage, entityId)` of D5, in `[0, 100000)`. Does not allocate.
pub fn bucket(salt: &str, stage: &str, entity_id: &str) -> u32 {
    bucket_bytes(salt, stage.as_bytes(), entity_id)
}

fn bucket_bytes(salt: &str, stage: &[u8], entity_id: &str) -> u32 {
    let mut hasher = Murmur3::new(0);
    hasher.write(salt.as_bytes());
    hasher.write(b"/");
    hasher.write(stage);
    hasher.write(b"/");
    hasher.write(entity_id.as_bytes());
    scale(hasher.finish())
}

/// Maps a 32-bit hash onto `[0, 100000)`: `(hash * 100000) >> 32`.
fn scale(hash: u32) -> u32 {
    // < 100000 by construction, so the conversion never fails.
    u32::try_from((u64::from(hash) * u64::from(BUCKETS)) >> 32).unwrap_or(BUCKETS - 1)
}

/// `launch-segment-{order}` formatted on the stack.
struct SegmentStage {
    buf: [u8; 40],
    len: usize,
}

impl SegmentStage {
    fn new(order: i64) -> SegmentStage {
        let mut buf = [0u8; 40];
        let prefix = STAGE_LAUNCH_SEGMENT_PREFIX.as_bytes();
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut len = prefix.len();
        if order < 0 {
            buf[len] = b'-';
            len += 1;
        }
        // At most 20 digits (u64::MAX); prefix (15) + sign (1) + 20 fits in 40.
        let mut digits = [0u8; 20];
        let mut count = 0;
        let mut rest = order.unsigned_abs();
        loop {
            digits[count] = b'0' + (rest % 10) as u8;
            count += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        for &digit in digits[..count].iter().rev() {
            buf[len] = digit;
            len += 1;
        }
        SegmentStage { buf, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// MurmurHash3 x86_32 (Austin Appleby's reference `MurmurHash3_x86_32`).
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let mut hasher = Murmur3::new(seed);
    hasher.write(data);
    hasher.finish()
}

/// Streaming MurmurHash3 x86_32: the result of several `write`s equals the hash of their concatenation.
struct Murmur3 {
    h1: u32,
    /// Bytes of an incomplete 4-byte block carried over to the next `write`.
    tail: [u8; 4],
    tail_len: usize,
    /// Total length mod 2^32, as the reference implementation mixes it in.
    len: u32,
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

impl Murmur3 {
    fn new(seed: u32) -> Murmur3 {
        Murmur3 { h1: seed, tail: [0; 4], tail_len: 0, len: 0 }
    }

    fn mix_k1(k1: u32) -> u32 {
        k1.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
    }

    fn block(&mut self, k1: u32) {
        self.h1 ^= Self::mix_k1(k1);
        self.h1 = self.h1.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }

    fn write(&mut self, mut data: &[u8]) {
        // Truncation is intended: the reference hashes `len` as a 32-bit integer.
        self.len = self.len.wrapping_add(data.len() as u32);
        if self.tail_len > 0 {
            let take = (4 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < 4 {
                return;
            }
            self.block(u32::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut blocks = data.chunks_exact(4);
        for block in &mut blocks {
            self.block(u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
        }
        let rest = blocks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    fn finish(mut self) -> u32 {
        if self.tail_len > 0 {
            let mut k1 = 0u32;
            for (i, &byte) in self.tail[..self.tail_len].iter().enumerate() {
                k1 |= u32::from(byte) << (8 * i);
            }
            self.h1 ^= Self::mix_k1(k1);
        }
        let mut h = self.h1 ^ self.len;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^= h >> 16;
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn murmur3_published_vectors() {
        assert_eq!(murmur3_x86_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"", 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur3_x86_32(b"\0\0\0\0", 0), 0x2362_f9de);
        assert_eq!(murmur3_x86_32(b"", 0), 0);
    }

    #[test]
    fn streaming_equals_one_shot_for_every_split() {
        let text = b"0123456789abcdefghijklmnopq\xc3\xbc\xf0\x9f\xa6\x80";
        for len in 0..=text.len() {
            let data = &text[..len];
            let whole = murmur3_x86_32(data, 7);
            for a in 0..=len {
                for b in a..=len {
                    let mut hasher = Murmur3::new(7);
                    hasher.write(&data[..a]);
                    hasher.write(&data[a..b]);
                    hasher.write(&data[b..]);
                    assert_eq!(hasher.finish(), whole, "len {len} split {a} {b}");
                }
            }
        }
    }

    #[test]
    fn bucket_is_the_scaled_hash_of_the_joined_key() {
        for (salt, stage, entity) in [("", "", ""), ("s", "launch", "e"), ("abc", "launch-segment-12", "user-12345")] {
            let key = format!("{salt}/{stage}/{entity}");
            let expected = (u64::from(murmur3_x86_32(key.as_bytes(), 0)) * 100_000) >> 32;
            assert_eq!(u64::from(bucket(salt, stage, entity)), expected);
        }
        assert_eq!(scale(0), 0);
        assert_eq!(scale(u32::MAX), 99_999);
    }

    /// Golden vectors: a change of any of them is a breaking change (D5). Computed independently with Python's
    /// `mmh3` 5.3.1, not with this code:
    ///
    /// ```text
    /// python3 -m venv /tmp/mmh3venv && /tmp/mmh3venv/bin/pip install mmh3
    /// /tmp/mmh3venv/bin/python - <<'EOF'
    /// import mmh3
    /// vectors = [
    ///     ("my-launch", "launch", "user-1"),
    ///     ("my-launch", "launch", "user-2"),
    ///     ("my-launch", "launch-segment-1", "user-1"),
    ///     ("my-launch", "launch-segment-3", "user-1"),
    ///     ("my-launch", "launch-segment--7", "user-1"),
    ///     ("checkout-exp", "experiment-sample", "user-1"),
    ///     ("checkout-exp", "experiment-treatment", "user-1"),
    ///     ("checkout-exp", "experiment-sample", "alice@example.com"),
    ///     ("checkout-exp", "experiment-treatment", "alice@example.com"),
    ///     ("", "launch", "user-1"),
    ///     ("", "experiment-sample", ""),
    ///     ("salt with spaces/and/slashes", "launch", "x"),
    ///     ("launch-\u00fc", "launch", "jos\u00e9"),
    ///     ("exp", "experiment-treatment", "\u7528\u6237-42"),
    ///     ("exp", "experiment-sample", "\U0001f980\U0001f980"),
    ///     ("new-checkout", "launch-segment-100", "0123456789abcdef0123456789abcdef01234"),
    /// ]
    /// for salt, stage, entity in vectors:
    ///     key = f"{salt}/{stage}/{entity}".encode("utf-8")
    ///     h = mmh3.hash(key, 0, signed=False)
    ///     print(repr((salt, stage, entity)), h, (h * 100000) >> 32)
    /// EOF
    /// ```
    #[test]
    fn golden_bucket_vectors() {
        let golden: [(&str, &str, &str, u32, u32); 16] = [
            ("my-launch", "launch", "user-1", 2577086845, 60002),
            ("my-launch", "launch", "user-2", 4009764472, 93359),
            ("my-launch", "launch-segment-1", "user-1", 2255602594, 52517),
            ("my-launch", "launch-segment-3", "user-1", 2509977735, 58439),
            ("my-launch", "launch-segment--7", "user-1", 2066563250, 48115),
            ("checkout-exp", "experiment-sample", "user-1", 3885467985, 90465),
            ("checkout-exp", "experiment-treatment", "user-1", 1161555296, 27044),
            ("checkout-exp", "experiment-sample", "alice@example.com", 444647050, 10352),
            ("checkout-exp", "experiment-treatment", "alice@example.com", 2695735570, 62764),
            ("", "launch", "user-1", 3723081967, 86684),
            ("", "experiment-sample", "", 1100192763, 25615),
            ("salt with spaces/and/slashes", "launch", "x", 2656368034, 61848),
            ("launch-ü", "launch", "josé", 3289068661, 76579),
            ("exp", "experiment-treatment", "用户-42", 2332745497, 54313),
            ("exp", "experiment-sample", "🦀🦀", 302290634, 7038),
            ("new-checkout", "launch-segment-100", "0123456789abcdef0123456789abcdef01234", 1410238541, 32834),
        ];
        for (salt, stage, entity, hash, expected) in golden {
            let key = format!("{salt}/{stage}/{entity}");
            assert_eq!(murmur3_x86_32(key.as_bytes(), 0), hash, "hash of {key:?}");
            assert_eq!(bucket(salt, stage, entity), expected, "bucket of {key:?}");
        }
        // The segment-override stage the engine builds on the stack hashes like the documented string.
        assert_eq!(bucket_bytes("my-launch", SegmentStage::new(1).as_bytes(), "user-1"), 52517);
        assert_eq!(bucket_bytes("my-launch", SegmentStage::new(-7).as_bytes(), "user-1"), 48115);
        assert_eq!(
            bucket_bytes("new-checkout", SegmentStage::new(100).as_bytes(), "0123456789abcdef0123456789abcdef01234"),
            32834
        );
    }

    #[test]
    fn segment_stage_formats_like_format() {
        for order in [0, 1, 3, 9, 10, 100, -1, -7, 1234567890123, i64::MAX, i64::MIN, i64::MIN + 1] {
            let stage = SegmentStage::new(order);
            assert_eq!(stage.as_bytes(), format!("launch-segment-{order}").as_bytes());
        }
    }

    #[test]
    fn reasons_and_details_json() {
        assert_eq!(EvalReason::EntityOverridesMatch.as_str(), "ENTITY_OVERRIDES_MATCH");
        assert_eq!(EvalReason::LaunchRuleMatch.as_str(), "LAUNCH_RULE_MATCH");
        assert_eq!(EvalReason::ExperimentRuleMatch.as_str(), "EXPERIMENT_RULE_MATCH");
        assert_eq!(EvalReason::Default.as_str(), "DEFAULT");

        assert_eq!(Details::Empty.to_json(), "{}");
        assert_eq!(Details::Launch { launch: "L1", group: "G1" }.to_json(), r#"{"launch":"L1","group":"G1"}"#);
        assert_eq!(
            Details::Experiment { experiment: "E1", treatment: "T1" }.to_json(),
            r#"{"experiment":"E1","treatment":"T1"}"#
        );
        let odd = Details::Launch { launch: "a\"b\\c", group: "ü\n🦀" };
        assert_eq!(odd.to_json(), "{\"launch\":\"a\\\"b\\\\c\",\"group\":\"ü\\n🦀\"}");
        let parsed: Value = serde_json::from_str(&odd.to_json()).unwrap();
        assert_eq!(parsed, json!({"launch": "a\"b\\c", "group": "ü\n🦀"}));
    }

    // ---- fixtures ----

    fn pattern(text: &str) -> Arc<Pattern> {
        Arc::new(Pattern::parse(text).unwrap())
    }

    fn chrome() -> Value {
        json!({"Browser": "Chrome"})
    }

    /// Variations: 0 "control" (the default), 1 "v1", 2 "v2", 3 "v3".
    fn feature() -> CompiledFeature {
        let names = ["control", "v1", "v2", "v3"];
        CompiledFeature {
            project_arn: "arn:aws:evidently:us-east-1:123456789012:project/p".into(),
            feature_arn: "arn:aws:evidently:us-east-1:123456789012:project/p/feature/f".into(),
            name: "f".into(),
            variations: names.iter().map(|&n| (Arc::from(n), VariableValue::String(n.to_owned()))).collect(),
            default_variation: 0,
            default_only: false,
            overrides: HashMap::new(),
            launch: None,
            experiment: None,
        }
    }

    fn group(name: &str, variation: Option<usize>) -> LaunchGroup {
        LaunchGroup { name: name.into(), variation }
    }

    fn step(start_ms: i64, weights: &[u32]) -> Step {
        Step { start_ms, weights: weights.to_vec(), overrides: Vec::new() }
    }

    fn launch(groups: Vec<LaunchGroup>, steps: Vec<Step>) -> CompiledLaunch {
        CompiledLaunch { name: "L".into(), salt: "L-salt".into(), measured: true, groups, steps }
    }

    fn treatment(name: &str, variation: Option<usize>, weight: u32) -> Treatment {
        Treatment { name: name.into(), variation, weight }
    }

    fn experiment(sampling_rate: u32, treatments: Vec<Treatment>) -> CompiledExperiment {
        CompiledExperiment {
            name: "E".into(),
            salt: "E-salt".into(),
            measured: true,
            sampling_rate,
            segment: None,
            treatments,
        }
    }

    fn ids(n: usize) -> impl Iterator<Item = String> {
        (0..n).map(|i| format!("user-{i}"))
    }

    const NOW: i64 = 1_700_000_000_000;

    // ---- evaluation ----

    #[test]
    fn no_rules_serves_the_default() {
        let f = feature();
        let e = f.evaluate("anyone", &Value::Null, NOW);
        assert_eq!(e, Evaluation { variation: 0, reason: EvalReason::Default, details: Details::Empty });
    }

    #[test]
    fn launch_split_30_70_is_within_one_percent() {
        let mut f = feature();
        f.launch = Some(launch(vec![group("A", Some(1)), group("B", Some(2))], vec![step(0, &[30_000, 70_000])]));
        let (mut a, mut b) = (0, 0);
        for id in ids(100_000) {
            let e = f.evaluate(&id, &Value::Null, NOW);
            assert_eq!(e.reason, EvalReason::LaunchRuleMatch);
            match e.details {
                Details::Launch { launch: "L", group: "A" } => {
                    assert_eq!(e.variation, 1);
                    a += 1;
                }
                Details::Launch { launch: "L", group: "B" } => {
                    assert_eq!(e.variation, 2);
                    b += 1;
                }
                other => panic!("unexpected details {other:?}"),
            }
        }
        assert_eq!(a + b, 100_000);
        assert!((29_000..=31_000).contains(&a), "group A got {a} of 100000");
    }

    #[test]
    fn unassigned_launch_weight_falls_through_to_the_experiment_then_the_default() {
        let mut f = feature();
        f.launch = Some(launch(vec![group("A", Some(1)), group("B", Some(2))], vec![step(0, &[10_000, 10_000])]));
        f.experiment = Some(experiment(50_000, vec![treatment("T1", Some(3), 1), treatment("T2", Some(0), 1)]));
        let mut seen = [0usize; 3];
        for id in ids(10_000) {
            let e = f.evaluate(&id, &Value::Null, NOW);
            let launch_bucket = bucket("L-salt", "launch", &id);
            let sample_bucket = bucket("E-salt", "experiment-sample", &id);
            if launch_bucket < 10_000 {
                assert_eq!((e.variation, e.details), (1, Details::Launch { launch: "L", group: "A" }));
                seen[0] += 1;
            } else if launch_bucket < 20_000 {
                assert_eq!((e.variation, e.details), (2, Details::Launch { launch: "L", group: "B" }));
                seen[0] += 1;
            } else if sample_bucket < 50_000 {
                assert_eq!(e.reason, EvalReason::ExperimentRuleMatch);
                let t = bucket("E-salt", "experiment-treatment", &id);
                let expected = if t < 50_000 { (3, "T1") } else { (0, "T2") };
                assert_eq!(
                    (e.variation, e.details),
                    (expected.0, Details::Experiment { experiment: "E", treatment: expected.1 })
                );
                seen[1] += 1;
            } else {
                assert_eq!(e, Evaluation { variation: 0, reason: EvalReason::Default, details: Details::Empty });
                seen[2] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 1000), "{seen:?}");
    }

    #[test]
    fn segment_overrides_in_order_with_fall_through() {
        let mut f = feature();
        let mut s = step(0, &[100_000, 0, 0, 0]);
        s.overrides = vec![
            // Never matches Chrome: skipped without consuming anything.
            SegmentOverride {
                evaluation_order: 0,
                segment: pattern(r#"{"Browser":["Firefox"]}"#),
                weights: vec![0, 0, 100_000, 0],
            },
            // B (v2) for 40 %; the rest is unassigned and moves on.
            SegmentOverride {
                evaluation_order: 1,
                segment: pattern(r#"{"Browser":["Chrome"]}"#),
                weights: vec![0, 40_000, 0, 0],
            },
            // "Other" (another feature's group) for 50 %, then C (v3) for 30 %, then unassigned.
            SegmentOverride {
                evaluation_order: 3,
                segment: pattern(r#"{"Browser":["Chrome"]}"#),
                weights: vec![0, 0, 50_000, 30_000],
            },
        ];
        f.launch = Some(launch(
            vec![group("A", Some(1)), group("B", Some(2)), group("Other", None), group("C", Some(3))],
            vec![s],
        ));

        let mut seen = [0usize; 3];
        for id in ids(10_000) {
            let e = f.evaluate(&id, &chrome(), NOW);
            assert_eq!(e.reason, EvalReason::LaunchRuleMatch);
            let first = bucket("L-salt", "launch-segment-1", &id);
            let second = bucket("L-salt", "launch-segment-3", &id);
            let expected = if first < 40_000 {
                seen[0] += 1;
                (2, "B")
            } else if (50_000..80_000).contains(&second) {
                seen[1] += 1;
                (3, "C")
            } else {
                // Other feature's group or unassigned: the step's default split (A takes everything).
                seen[2] += 1;
                (1, "A")
            };
            assert_eq!(
                (e.variation, e.details),
                (expected.0, Details::Launch { launch: "L", group: expected.1 }),
                "{id}"
            );

            // No segment matches: the default split.
            for context in [Value::Null, json!({"Browser": "Safari"})] {
                let e = f.evaluate(&id, &context, NOW);
                assert_eq!((e.variation, e.details), (1, Details::Launch { launch: "L", group: "A" }));
            }
        }
        assert!(seen.iter().all(|&n| n > 1000), "{seen:?}");

        // A Firefox context hits the first override, whose only group is "Other": falls through to A.
        let e = f.evaluate("user-1", &json!({"Browser": "Firefox"}), NOW);
        assert_eq!(e.details, Details::Launch { launch: "L", group: "A" });
    }

    #[test]
    fn first_matching_override_wins() {
        let mut f = feature();
        let mut s = step(0, &[]);
        s.overrides = vec![
            SegmentOverride {
                evaluation_order: 2,
                segment: pattern(r#"{"Browser":["Chrome"]}"#),
                weights: vec![100_000, 0],
            },
            SegmentOverride {
                evaluation_order: 5,
                segment: pattern(r#"{"Browser":["Chrome"]}"#),
                weights: vec![0, 100_000],
            },
        ];
        f.launch = Some(launch(vec![group("A", Some(1)), group("B", Some(2))], vec![s]));
        for id in ids(1000) {
            assert_eq!(f.evaluate(&id, &chrome(), NOW).details, Details::Launch { launch: "L", group: "A" });
            // No default split in the step: outside the segment, the launch contributes nothing.
            assert_eq!(f.evaluate(&id, &Value::Null, NOW).reason, EvalReason::Default);
        }
    }

    #[test]
    fn step_in_force_is_the_last_started() {
        let mut f = feature();
        f.launch = Some(launch(
            vec![group("A", Some(1)), group("B", Some(2))],
            vec![step(1_000, &[100_000, 0]), step(2_000, &[0, 100_000])],
        ));
        let group_at = |now: i64| match f.evaluate("user-7", &Value::Null, now) {
            Evaluation { reason: EvalReason::LaunchRuleMatch, details: Details::Launch { group, .. }, .. } => {
                Some(group)
            }
            Evaluation { reason: EvalReason::Default, variation: 0, details: Details::Empty } => None,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(group_at(i64::MIN), None);
        assert_eq!(group_at(999), None);
        assert_eq!(group_at(1_000), Some("A"));
        assert_eq!(group_at(1_999), Some("A"));
        assert_eq!(group_at(2_000), Some("B"));
        assert_eq!(group_at(i64::MAX), Some("B"));
    }

    #[test]
    fn no_step_in_force_leaves_the_traffic_to_the_experiment() {
        let mut f = feature();
        f.launch = Some(launch(vec![group("A", Some(1))], vec![step(NOW + 1, &[100_000])]));
        f.experiment = Some(experiment(100_000, vec![treatment("T", Some(2), 100_000)]));
        let e = f.evaluate("user-1", &Value::Null, NOW);
        assert_eq!((e.variation, e.details), (2, Details::Experiment { experiment: "E", treatment: "T" }));
        let e = f.evaluate("user-1", &Value::Null, NOW + 1);
        assert_eq!((e.variation, e.details), (1, Details::Launch { launch: "L", group: "A" }));
    }

    #[test]
    fn multi_feature_launch_groups_of_other_features_are_not_in_the_launch() {
        let mut f = feature();
        f.launch = Some(launch(
            vec![group("F-on", Some(1)), group("G-on", None), group("F-off", Some(0))],
            vec![step(0, &[30_000, 30_000, 40_000])],
        ));
        f.experiment = Some(experiment(100_000, vec![treatment("T", Some(3), 5)]));
        let mut seen = [0usize; 3];
        for id in ids(10_000) {
            let e = f.evaluate(&id, &Value::Null, NOW);
            let b = bucket("L-salt", "launch", &id);
            if b < 30_000 {
                assert_eq!((e.variation, e.details), (1, Details::Launch { launch: "L", group: "F-on" }));
                seen[0] += 1;
            } else if b < 60_000 {
                assert_eq!((e.variation, e.details), (3, Details::Experiment { experiment: "E", treatment: "T" }));
                seen[1] += 1;
            } else {
                assert_eq!((e.variation, e.details), (0, Details::Launch { launch: "L", group: "F-off" }));
                seen[2] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 2000), "{seen:?}");
    }

    #[test]
    fn default_variation_strategy_serves_the_default_except_overrides() {
        let mut f = feature();
        f.default_variation = 2;
        f.default_only = true;
        f.overrides.insert("vip".to_owned(), 3);
        f.launch = Some(launch(vec![group("A", Some(1))], vec![step(0, &[100_000])]));
        f.experiment = Some(experiment(100_000, vec![treatment("T", Some(1), 1)]));
        for id in ids(1000) {
            assert_eq!(
                f.evaluate(&id, &chrome(), NOW),
                Evaluation { variation: 2, reason: EvalReason::Default, details: Details::Empty }
            );
        }
        assert_eq!(
            f.evaluate("vip", &chrome(), NOW),
            Evaluation { variation: 3, reason: EvalReason::EntityOverridesMatch, details: Details::Empty }
        );
        // With ALL_RULES the launch takes everyone but the override.
        f.default_only = false;
        assert_eq!(f.evaluate("user-1", &Value::Null, NOW).reason, EvalReason::LaunchRuleMatch);
        assert_eq!(f.evaluate("vip", &Value::Null, NOW).reason, EvalReason::EntityOverridesMatch);
    }

    #[test]
    fn overrides_beat_launch_and_experiment() {
        let mut f = feature();
        f.overrides.insert("user-1".to_owned(), 0);
        f.launch = Some(launch(vec![group("A", Some(1))], vec![step(0, &[100_000])]));
        assert_eq!(
            f.evaluate("user-1", &Value::Null, NOW),
            Evaluation { variation: 0, reason: EvalReason::EntityOverridesMatch, details: Details::Empty }
        );
        assert_eq!(f.evaluate("user-2", &Value::Null, NOW).reason, EvalReason::LaunchRuleMatch);
    }

    #[test]
    fn experiment_segment_sampling_and_zero_weights() {
        let mut f = feature();
        let mut exp = experiment(100_000, vec![treatment("T1", Some(1), 1), treatment("T2", Some(2), 3)]);
        exp.segment = Some(pattern(r#"{"Browser":["Chrome"]}"#));
        f.experiment = Some(exp);
        let (mut t1, mut t2) = (0, 0);
        for id in ids(10_000) {
            // Outside the segment (or without a context): not in the experiment.
            assert_eq!(f.evaluate(&id, &Value::Null, NOW).reason, EvalReason::Default);
            assert_eq!(f.evaluate(&id, &json!({"Browser": "Safari"}), NOW).reason, EvalReason::Default);
            let e = f.evaluate(&id, &chrome(), NOW);
            let point = u64::from(bucket("E-salt", "experiment-treatment", &id)) * 4 / 100_000;
            match e.details {
                Details::Experiment { experiment: "E", treatment: "T1" } => {
                    assert_eq!((e.variation, point), (1, 0));
                    t1 += 1;
                }
                Details::Experiment { experiment: "E", treatment: "T2" } => {
                    assert_eq!(e.variation, 2);
                    assert!(point >= 1);
                    t2 += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // Weights 1:3, normalised.
        assert!((2_300..=2_700).contains(&t1), "T1 {t1} T2 {t2}");

        // Sampling rate 0, or all weights 0: nobody is enrolled.
        if let Some(exp) = f.experiment.as_mut() {
            exp.sampling_rate = 0;
        }
        assert!(ids(1000).all(|id| f.evaluate(&id, &chrome(), NOW).reason == EvalReason::Default));
        if let Some(exp) = f.experiment.as_mut() {
            exp.sampling_rate = 100_000;
            exp.treatments.iter_mut().for_each(|t| t.weight = 0);
        }
        assert!(ids(1000).all(|id| f.evaluate(&id, &chrome(), NOW).reason == EvalReason::Default));
    }

    #[test]
    fn experiment_treatment_of_another_feature_serves_the_default() {
        let mut f = feature();
        f.experiment =
            Some(experiment(100_000, vec![treatment("Mine", Some(1), 50_000), treatment("Theirs", None, 50_000)]));
        let mut seen = [0usize; 2];
        for id in ids(2000) {
            let e = f.evaluate(&id, &Value::Null, NOW);
            if bucket("E-salt", "experiment-treatment", &id) < 50_000 {
                assert_eq!((e.variation, e.details), (1, Details::Experiment { experiment: "E", treatment: "Mine" }));
                seen[0] += 1;
            } else {
                assert_eq!(e, Evaluation { variation: 0, reason: EvalReason::Default, details: Details::Empty });
                seen[1] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 500), "{seen:?}");
    }

    #[test]
    fn ramp_keeps_treatments() {
        let treatments = || {
            vec![
                treatment("control", Some(0), 50_000),
                treatment("t1", Some(1), 25_000),
                treatment("t2", Some(2), 25_000),
            ]
        };
        let mut low = feature();
        low.experiment = Some(experiment(20_000, treatments()));
        let mut high = feature();
        high.experiment = Some(experiment(50_000, treatments()));
        let (mut enrolled_low, mut enrolled_high) = (0, 0);
        for id in ids(10_000) {
            let at_low = low.evaluate(&id, &Value::Null, NOW);
            let at_high = high.evaluate(&id, &Value::Null, NOW);
            if at_low.reason == EvalReason::ExperimentRuleMatch {
                enrolled_low += 1;
                // Raising the rate never changes an enrolled entity's treatment.
                assert_eq!(at_high, at_low, "{id}");
            } else {
                assert_eq!(at_low, Evaluation { variation: 0, reason: EvalReason::Default, details: Details::Empty });
            }
            if at_high.reason == EvalReason::ExperimentRuleMatch {
                enrolled_high += 1;
            }
            // Lowering the rate: either the same treatment or back to the default.
            assert!(at_low == at_high || at_low.reason == EvalReason::Default, "{id}: {at_high:?} became {at_low:?}");
        }
        assert!((1_800..=2_200).contains(&enrolled_low), "{enrolled_low}");
        assert!((4_700..=5_300).contains(&enrolled_high), "{enrolled_high}");
    }

    #[test]
    fn weight_sums_above_100000_starve_later_groups() {
        let mut f = feature();
        f.launch = Some(launch(
            vec![group("A", Some(1)), group("B", Some(2)), group("C", Some(3))],
            vec![step(0, &[60_000, 70_000, 50_000])],
        ));
        for id in ids(5000) {
            let e = f.evaluate(&id, &Value::Null, NOW);
            let expected = if bucket("L-salt", "launch", &id) < 60_000 { "A" } else { "B" };
            assert_eq!(e.details, Details::Launch { launch: "L", group: expected });
        }
        // Huge weights do not overflow.
        f.launch = Some(launch(vec![group("A", Some(1)), group("B", Some(2))], vec![step(0, &[u32::MAX, u32::MAX])]));
        f.experiment =
            Some(experiment(u32::MAX, vec![treatment("T1", Some(1), u32::MAX), treatment("T2", Some(2), u32::MAX)]));
        assert_eq!(f.evaluate("user-1", &Value::Null, NOW).details, Details::Launch { launch: "L", group: "A" });
        f.launch = None;
        assert_eq!(f.evaluate("user-1", &Value::Null, NOW).reason, EvalReason::ExperimentRuleMatch);
    }

    #[test]
    fn out_of_range_indices_are_no_match() {
        let mut f = feature();
        f.overrides.insert("user-1".to_owned(), 99);
        // More weights than groups, and a group whose variation does not exist.
        f.launch = Some(launch(vec![group("A", Some(42))], vec![step(0, &[50_000, 50_000])]));
        f.experiment = Some(experiment(100_000, vec![treatment("T", Some(17), 1)]));
        for id in ids(1000) {
            assert_eq!(
                f.evaluate(&id, &Value::Null, NOW),
                Evaluation { variation: 0, reason: EvalReason::Default, details: Details::Empty }
            );
        }
        // Fewer weights than groups: the missing ones weigh 0.
        f.launch = Some(launch(vec![group("A", Some(1)), group("B", Some(2))], vec![step(0, &[100_000])]));
        assert!(
            ids(1000)
                .all(|id| f.evaluate(&id, &Value::Null, NOW).details == Details::Launch { launch: "L", group: "A" })
        );
        // No groups, no steps.
        f.launch = Some(launch(Vec::new(), vec![step(0, &[100_000])]));
        assert_eq!(f.evaluate("user-2", &Value::Null, NOW).reason, EvalReason::Default);
        f.launch = Some(launch(Vec::new(), Vec::new()));
        f.experiment = Some(experiment(100_000, Vec::new()));
        assert_eq!(f.evaluate("user-2", &Value::Null, NOW).reason, EvalReason::Default);
    }
}
