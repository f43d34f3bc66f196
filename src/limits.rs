//! Input constraints taken from the AWS service models, never copied by hand.
//!
//! `build.rs` reads `models/evidently/2021-02-01/service-2.json` and
//! `models/cloudfront/2020-05-31/service-2.json` (botocore 1.42.50, see `models/README.md`) and writes one
//! constant per shape that carries a constraint trait, named after the shape: `TagKey` is
//! [`evidently::TAG_KEY`], `SplitWeight` is [`evidently::SPLIT_WEIGHT`], `ContinuousDeploymentPolicyType`
//! is [`cloudfront::CONTINUOUS_DEPLOYMENT_POLICY_TYPE`]. Each module's `ALL` lists them. A handler checks
//! a member with its shape's constant and the member's name, and gets a [`Violation`] that reads as AWS's
//! `ValidationException` message does:
//!
//! ```
//! use edgesplit::limits::evidently::{PROJECT_NAME, TAG_KEY};
//! assert!(TAG_KEY.check("tags", "env2").is_ok());
//! let v = PROJECT_NAME.check("name", "bad name!").unwrap_err();
//! assert_eq!(
//!     v.to_string(),
//!     "Value 'bad name!' at 'name' failed to satisfy constraint: \
//!      Member must satisfy regular expression pattern: ^[-a-zA-Z0-9._]*$"
//! );
//! ```
//!
//! # What a constraint means here
//!
//! * **length** (`min`/`max` on a string, list, map or blob): Unicode scalar values (`char`s) of a string,
//!   as Smithy's `length` trait defines it; entries of a list or map; bytes of a blob. Inclusive.
//! * **range** (`min`/`max` on a number): inclusive; NaN is outside every range.
//! * **enum**: one of the listed values, exactly (case-sensitive).
//! * **pattern**: the **whole** value must match. Smithy's `pattern` trait is a search (not implicitly
//!   anchored), but AWS's services validate the whole value, and their models are written for that: a
//!   Lambda function name `CDK Lambda Cron Example` is refused with `Member must satisfy regular
//!   expression pattern: (arn:...)?...([a-zA-Z0-9-_\.]+)...` although `CDK` alone matches it
//!   (aws-samples/aws-cdk-examples#88), and Evidently's `AppConfigResourceId` is just `[a-z0-9]{4,7}`,
//!   with no length trait, which as a search would accept any value holding four lowercase letters.
//!   So `ProjectRef`'s `(^[a-zA-Z0-9._-]*$)|(arn:...:project/[a-zA-Z0-9._-]*)` accepts a name or a
//!   project ARN, and refuses `arn:...:project/shop/feature/f`, which a search would accept.
//! * **dialect**: patterns are ECMA 262, as Smithy specifies; `build.rs` translates them to the `regex`
//!   crate with ECMA's meaning: `.` is anything but a line terminator (so `Description`'s `.*` refuses a
//!   newline, as AWS's validator does), `\d` and `\w` are ASCII, `\s` is ECMA's white space; `\p{..}`
//!   (CloudFront's tag patterns) is Unicode's general category. `regex` has no lookaround, so the one
//!   these models use, `TagKey`'s leading `^(?!aws:)`, is checked as "does not start with `aws:`" before
//!   the rest is matched; any other lookaround, a backreference or a word boundary fails the build.
//!
//! Each pattern is compiled once, on first use (a `LazyLock` per shape), never per request. A pattern the
//! build accepted always compiles (the unit tests compile them all); if one ever did not, its check would
//! refuse every value rather than accept them.
//!
//! Where edgesplit's rule is deliberately stricter than the model (an experiment's 2 treatments, 50 tags
//! per resource, the 40 KB of entity overrides), the handler checks the model's constant first and its own
//! rule after, with a comment saying why.
//!
//! Pure: no I/O, and nothing from the rest of the crate.

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;

/// Evidently 2021-02-01 (`models/evidently/2021-02-01/service-2.json`).
pub mod evidently {
    include!(concat!(env!("OUT_DIR"), "/limits_evidently.rs"));
}

/// CloudFront 2020-05-31 (`models/cloudfront/2020-05-31/service-2.json`). Its continuous deployment shapes
/// carry one constraint, the `Type` enum; the weight and TTL bounds are documentation, not traits (see
/// `cd::model`).
pub mod cloudfront {
    include!(concat!(env!("OUT_DIR"), "/limits_cloudfront.rs"));
}

/// A string shape: length, pattern, enum.
#[derive(Debug, Clone, Copy)]
pub struct Text {
    /// The shape's name in the model.
    pub shape: &'static str,
    /// Fewest `char`s.
    pub min: Option<usize>,
    /// Most `char`s.
    pub max: Option<usize>,
    pub pattern: Option<Pattern>,
    /// The enum's values; empty when the shape has no enum.
    pub values: &'static [&'static str],
}

/// A model pattern, compiled on first use.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    /// As the model writes it (and as AWS quotes it in its messages).
    source: &'static str,
    /// From a leading `^(?!lit)`: the value must not start with `lit`.
    not_prefix: Option<&'static str>,
    matcher: Matcher,
}

/// How a pattern is matched.
#[derive(Debug, Clone, Copy)]
enum Matcher {
    /// `.*`, the models' commonest pattern: no line terminator, found without a regex (the entity id
    /// the edge checks per request is an `EntityId`, `.*`).
    AnyLine,
    /// The translated, anchored pattern; `None` if it failed to compile (never, see the module doc).
    Regex(fn() -> Option<&'static Regex>),
}

/// A number shape: inclusive bounds.
#[derive(Debug, Clone, Copy)]
pub struct Range<T> {
    pub shape: &'static str,
    pub min: Option<T>,
    pub max: Option<T>,
}

/// A list, map or blob shape: inclusive bounds on its entries (bytes for a blob).
#[derive(Debug, Clone, Copy)]
pub struct Count {
    pub shape: &'static str,
    pub min: Option<usize>,
    pub max: Option<usize>,
}

/// Any constrained shape, for tables (`evidently::ALL`, `cloudfront::ALL`).
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Text(&'static Text),
    Int(&'static Range<i64>),
    Float(&'static Range<f64>),
    Count(&'static Count),
}

/// A value that breaks its shape's constraint.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The member, as the caller named it (`name`, `groups[0].feature`, `tags`).
    pub member: String,
    /// The shape whose constraint failed.
    pub shape: &'static str,
    pub value: Shown,
    pub constraint: Constraint,
    pub part: Part,
}

/// The offending value, as a message shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Shown {
    /// A string, cut to 100 `char`s, control characters escaped.
    Text(String),
    Number(String),
    /// A list's or a map's number of entries (a blob's bytes).
    Entries(usize),
}

/// The constraint broken.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    MinLength(usize),
    MaxLength(usize),
    Pattern(&'static str),
    OneOf(&'static [&'static str]),
    AtLeast(String),
    AtMost(String),
}

/// Which part of the member broke it: the value itself, or a key or value of a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Whole,
    MapKey,
    MapValue,
}

/// Longest part of a string value a message repeats.
const SHOWN_CHARS: usize = 100;

impl Pattern {
    /// The pattern as the model writes it.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// Whether the whole of `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        if self.not_prefix.is_some_and(|p| value.starts_with(p)) {
            return false;
        }
        match self.matcher {
            Matcher::AnyLine => !has_line_terminator(value),
            Matcher::Regex(regex) => regex().is_some_and(|re| re.is_match(value)),
        }
    }

    /// Whether the translated pattern compiled (always, for a model the build accepted).
    pub fn compiles(&self) -> bool {
        match self.matcher {
            Matcher::AnyLine => true,
            Matcher::Regex(regex) => regex().is_some(),
        }
    }
}

/// Whether `s` holds an ECMA line terminator (what `.` does not match): `\n`, `\r`, U+2028, U+2029.
fn has_line_terminator(s: &str) -> bool {
    // `<[u8]>::contains` is core's word-at-a-time memchr: three times faster than a byte loop here.
    let b = s.as_bytes();
    b.contains(&b'\n') || b.contains(&b'\r') || (!s.is_ascii() && s.contains(['\u{2028}', '\u{2029}']))
}

impl Text {
    /// Checks `value`, the member `member`: length, then enum, then pattern.
    pub fn check(&self, member: &str, value: &str) -> Result<(), Violation> {
        let fail = |constraint| Err(Violation::new(member, self.shape, Shown::text(value), constraint));
        // A string has at most as many chars as bytes, and at least a quarter as many: count only when
        // the bytes do not decide (they always do for ASCII within bounds, the common case).
        let bytes = value.len();
        if let Some(min) = self.min
            && (bytes < min || (bytes < min.saturating_mul(4) && value.chars().count() < min))
        {
            return fail(Constraint::MinLength(min));
        }
        if let Some(max) = self.max
            && bytes > max
            && value.chars().count() > max
        {
            return fail(Constraint::MaxLength(max));
        }
        if !self.values.is_empty() && !self.values.contains(&value) {
            return fail(Constraint::OneOf(self.values));
        }
        if let Some(p) = &self.pattern
            && !p.matches(value)
        {
            return fail(Constraint::Pattern(p.source));
        }
        Ok(())
    }

    /// Checks a key of the map `member`.
    pub(crate) fn check_key(&self, member: &str, key: &str) -> Result<(), Violation> {
        self.check(member, key).map_err(|v| v.part(Part::MapKey))
    }

    /// Checks a value of the map `member`.
    pub(crate) fn check_map_value(&self, member: &str, value: &str) -> Result<(), Violation> {
        self.check(member, value).map_err(|v| v.part(Part::MapValue))
    }
}

impl<T: PartialOrd + Copy + fmt::Display> Range<T> {
    /// Checks `value`, the member `member`.
    pub fn check(&self, member: &str, value: T) -> Result<(), Violation> {
        let fail = |constraint| Err(Violation::new(member, self.shape, Shown::Number(value.to_string()), constraint));
        if let Some(min) = self.min
            && matches!(value.partial_cmp(&min), Some(Ordering::Less) | None)
        {
            return fail(Constraint::AtLeast(min.to_string()));
        }
        if let Some(max) = self.max
            && matches!(value.partial_cmp(&max), Some(Ordering::Greater) | None)
        {
            return fail(Constraint::AtMost(max.to_string()));
        }
        Ok(())
    }

    /// Checks a value of the map `member`.
    #[cfg(test)]
    pub(crate) fn check_map_value(&self, member: &str, value: T) -> Result<(), Violation> {
        self.check(member, value).map_err(|v| v.part(Part::MapValue))
    }
}

impl Count {
    /// Checks that the member `member` has `entries` entries.
    pub fn check(&self, member: &str, entries: usize) -> Result<(), Violation> {
        let fail = |constraint| Err(Violation::new(member, self.shape, Shown::Entries(entries), constraint));
        if let Some(min) = self.min
            && entries < min
        {
            return fail(Constraint::MinLength(min));
        }
        if let Some(max) = self.max
            && entries > max
        {
            return fail(Constraint::MaxLength(max));
        }
        Ok(())
    }
}

impl Limit {
    /// The shape's name in the model.
    pub fn shape(&self) -> &'static str {
        match self {
            Limit::Text(t) => t.shape,
            Limit::Int(r) => r.shape,
            Limit::Float(r) => r.shape,
            Limit::Count(c) => c.shape,
        }
    }
}

impl Violation {
    fn new(member: &str, shape: &'static str, value: Shown, constraint: Constraint) -> Violation {
        Violation { member: member.to_string(), shape, value, constraint, part: Part::Whole }
    }

    fn part(mut self, part: Part) -> Violation {
        self.part = part;
        self
    }

    /// What the member must satisfy, in AWS's words: `Member must have length less than or equal to
    /// 127`, or `Map keys must satisfy constraint: [Member must ...]` for a map's keys. A
    /// `ValidationException`'s `fieldList` message.
    pub(crate) fn requirement(&self) -> String {
        match self.part {
            Part::Whole => self.constraint.to_string(),
            Part::MapKey => format!("Map keys must satisfy constraint: [{}]", self.constraint),
            Part::MapValue => format!("Map value must satisfy constraint: [{}]", self.constraint),
        }
    }
}

impl Shown {
    fn text(value: &str) -> Shown {
        let mut out = String::new();
        for c in value.chars().take(SHOWN_CHARS) {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        if value.chars().nth(SHOWN_CHARS).is_some() {
            out.push_str("...");
        }
        Shown::Text(out)
    }
}

/// AWS's wording: `Value 'x' at 'name' failed to satisfy constraint: Member must ...`.
impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Shown::Text(s) | Shown::Number(s) => write!(f, "Value '{s}'")?,
            Shown::Entries(n) => write!(f, "Value with {n} entries")?,
        }
        write!(f, " at '{}' failed to satisfy constraint: {}", self.member, self.requirement())
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::MinLength(n) => write!(f, "Member must have length greater than or equal to {n}"),
            Constraint::MaxLength(n) => write!(f, "Member must have length less than or equal to {n}"),
            Constraint::Pattern(p) => write!(f, "Member must satisfy regular expression pattern: {p}"),
            Constraint::OneOf(values) => write!(f, "Member must satisfy enum value set: [{}]", values.join(", ")),
            Constraint::AtLeast(n) => write!(f, "Member must have value greater than or equal to {n}"),
            Constraint::AtMost(n) => write!(f, "Member must have value less than or equal to {n}"),
        }
    }
}

impl std::error::Error for Violation {}

#[cfg(test)]
mod tests {
    use super::evidently as ev;
    use super::*;

    fn ok(t: &Text, v: &str) -> bool {
        t.check("m", v).is_ok()
    }

    #[test]
    fn every_pattern_of_both_models_compiles() {
        for (name, limit) in evidently::ALL.iter().chain(cloudfront::ALL) {
            assert_eq!(*name, limit.shape());
            if let Limit::Text(Text { pattern: Some(p), .. }) = limit {
                assert!(p.compiles(), "{name}: {}", p.source());
            }
        }
    }

    #[test]
    fn tag_keys_follow_the_model_not_a_hand_copy() {
        // Regression: `+-=` in `[a-zA-Z+-=._:/]` is a range (0x2B-0x3D), which holds the digits; a
        // hand-copy read it as three characters and refused `env2`.
        for key in ["env2", "team", "a:b/c", "x=y", "k+1", "a.b_c-d", "0", "AWS:upper-case-is-allowed", "aws"] {
            assert!(ok(&ev::TAG_KEY, key), "{key}");
        }
        for key in ["aws:x", "aws:", "", "has space", "naïve", "a@b", "tab\there", &"k".repeat(129)] {
            assert!(!ok(&ev::TAG_KEY, key), "{key}");
        }
        assert!(ok(&ev::TAG_KEY, &"k".repeat(128)));
        let v = ev::TAG_KEY.check_key("tags", "aws:x").unwrap_err();
        assert_eq!(
            v.to_string(),
            "Value 'aws:x' at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: \
             [Member must satisfy regular expression pattern: ^(?!aws:)[a-zA-Z+-=._:/]+$]"
        );
        assert!(ok(&ev::TAG_VALUE, ""));
        assert!(ok(&ev::TAG_VALUE, "any text, even\nthis"));
        assert!(!ok(&ev::TAG_VALUE, &"v".repeat(257)));
    }

    #[test]
    fn names_are_the_model_pattern_and_length() {
        for t in [&ev::PROJECT_NAME, &ev::FEATURE_NAME, &ev::LAUNCH_NAME, &ev::EXPERIMENT_NAME, &ev::VARIATION_NAME] {
            assert!(ok(t, "a"));
            assert!(ok(t, "Shop-2.0_beta"));
            assert!(ok(t, &"n".repeat(127)));
            assert!(!ok(t, &"n".repeat(128)), "{}", t.shape);
            assert!(!ok(t, ""));
            assert!(!ok(t, "bad name!"));
            assert!(!ok(t, "a/b"));
        }
        assert!(ok(&ev::SEGMENT_NAME, &"s".repeat(64)));
        assert!(!ok(&ev::SEGMENT_NAME, &"s".repeat(65)));
        let v = ev::PROJECT_NAME.check("name", &"p".repeat(128)).unwrap_err();
        assert_eq!((v.member.as_str(), v.shape), ("name", "ProjectName"));
        assert_eq!(v.constraint, Constraint::MaxLength(127));
        assert!(
            v.to_string().ends_with(
                "' at 'name' failed to satisfy constraint: Member must have length less than or equal to 127"
            )
        );
        assert!(v.to_string().starts_with(&format!("Value '{}...'", "p".repeat(100))), "{v}");
    }

    #[test]
    fn patterns_match_the_whole_value() {
        let base = "arn:aws:evidently:us-east-1:123456789012";
        // ProjectRef: `(^[a-zA-Z0-9._-]*$)|(arn:[^:]*:[^:]*:[^:]*:[^:]*:project/[a-zA-Z0-9._-]*)`
        assert!(ok(&ev::PROJECT_REF, "shop"));
        assert!(ok(&ev::PROJECT_REF, &format!("{base}:project/shop")));
        // As a search, the ARN alternative would find `...:project/shop` at the start of these.
        assert!(!ok(&ev::PROJECT_REF, &format!("{base}:project/shop/feature/f")));
        assert!(!ok(&ev::PROJECT_REF, &format!("{base}:project/shop!")));
        assert!(!ok(&ev::PROJECT_REF, &format!("x{base}:project/shop")));
        assert!(!ok(&ev::PROJECT_REF, "shop/../other"));
        // SegmentRef likewise.
        assert!(ok(&ev::SEGMENT_REF, &format!("{base}:segment/beta-users")));
        assert!(!ok(&ev::SEGMENT_REF, &format!("{base}:segment/a/b")));
        // Arn: `arn:[^:]*:[^:]*:[^:]*:[^:]*:.*` must start with `arn:`.
        assert!(ok(&ev::ARN, &format!("{base}:project/shop")));
        assert!(!ok(&ev::ARN, &format!("see {base}:project/shop")));
        // AppConfigResourceId `[a-z0-9]{4,7}` has no length trait: only full matching bounds it.
        assert!(ok(&ev::APP_CONFIG_RESOURCE_ID, "abc1234"));
        assert!(!ok(&ev::APP_CONFIG_RESOURCE_ID, "abc12345"));
        assert!(!ok(&ev::APP_CONFIG_RESOURCE_ID, "abc"));
        assert!(!ok(&ev::APP_CONFIG_RESOURCE_ID, "ABCD-abcd"));
        // Uuid: fixed layout.
        assert!(ok(&ev::UUID, "0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!ok(&ev::UUID, "0F8FAD5B-D9CB-469F-A165-70867728950E"));
        // S3 bucket and prefix.
        assert!(ok(&ev::S3_BUCKET_SAFE_NAME, "my-bucket-1"));
        assert!(!ok(&ev::S3_BUCKET_SAFE_NAME, "-bucket"));
        assert!(ok(&ev::S3_PREFIX_SAFE_NAME, "logs/2024/(a)*'!"));
        assert!(!ok(&ev::S3_PREFIX_SAFE_NAME, "logs 2024"));
    }

    #[test]
    fn ecma_dot_and_space() {
        // `.*` (Description, EntityId, RandomizationSalt, ...): anything but a line terminator.
        for v in ["", "plain", "ünïcødé ✓", "tab\tis fine", "\u{85}"] {
            assert!(ok(&ev::DESCRIPTION, v), "{v:?}");
        }
        for v in ["two\nlines", "cr\r", "ls\u{2028}", "ps\u{2029}"] {
            assert!(!ok(&ev::DESCRIPTION, v), "{v:?}");
        }
        assert!(!ok(&ev::DESCRIPTION, &"d".repeat(161)));
        assert!(ok(&ev::DESCRIPTION, &"é".repeat(160)), "length counts chars, not bytes");
        // `^[\S]+$` (metric names): no ECMA white space, U+FEFF included, U+0085 not.
        assert!(ok(&ev::CW_DIMENSION_SAFE_NAME, "clicks.total"));
        assert!(ok(&ev::CW_DIMENSION_SAFE_NAME, "a\u{85}b"));
        for v in ["two words", "tab\t", "nbsp\u{a0}", "bom\u{feff}", "ideo\u{3000}"] {
            assert!(!ok(&ev::CW_DIMENSION_SAFE_NAME, v), "{v:?}");
        }
        // `\d` is ASCII (CloudFront's region pattern `[a-z]{2}-[a-z]+-\d`).
        let region = &cloudfront::ORIGIN_SHIELD_REGION;
        assert!(ok(region, "us-east-1"));
        assert!(!ok(region, "us-east-\u{663}"));
        // `\p{L}` and friends (CloudFront tags).
        assert!(ok(&cloudfront::TAG_KEY, "naïve Key-1:@"));
        assert!(!ok(&cloudfront::TAG_KEY, "semi;colon"));
    }

    #[test]
    fn any_line_is_the_translated_dot_star() {
        // What build.rs would compile for `.*`.
        let re = Regex::new(r"^(?:[^\n\r\x{2028}\x{2029}]*)$").unwrap();
        let Some(p) = ev::DESCRIPTION.pattern else { panic!("Description has a pattern") };
        assert!(matches!(p.matcher, Matcher::AnyLine));
        for v in ["", "a", "a b\tc", "é\u{85}\u{2027}\u{202a}", "\n", "x\ry", "\u{2028}", "end\u{2029}", "\0"] {
            assert_eq!(p.matches(v), re.is_match(v), "{v:?}");
        }
    }

    #[test]
    fn lengths_count_chars_whatever_the_bytes() {
        let t = Text { shape: "T", min: Some(3), max: Some(4), pattern: None, values: &[] };
        for (v, fits) in [("ab", false), ("abc", true), ("abcd", true), ("abcde", false)] {
            assert_eq!(t.check("m", v).is_ok(), fits, "{v}");
        }
        // 😀 is 4 bytes, é 2: two emoji are 8 bytes but 2 chars (too few), four are 16 bytes but 4 chars.
        for (v, fits) in [("😀😀", false), ("😀😀😀", true), ("éééé", true), ("😀😀😀😀", true), ("ééééé", false)]
        {
            assert_eq!(t.check("m", v).is_ok(), fits, "{v}");
        }
    }

    #[test]
    fn enums_ranges_and_counts() {
        assert!(ok(&ev::FEATURE_EVALUATION_STRATEGY, "ALL_RULES"));
        let v = ev::FEATURE_EVALUATION_STRATEGY.check("evaluationStrategy", "all_rules").unwrap_err();
        assert_eq!(
            v.to_string(),
            "Value 'all_rules' at 'evaluationStrategy' failed to satisfy constraint: \
             Member must satisfy enum value set: [ALL_RULES, DEFAULT_VARIATION]"
        );
        assert_eq!(cloudfront::CONTINUOUS_DEPLOYMENT_POLICY_TYPE.values, ["SingleWeight", "SingleHeader"]);

        assert!(ev::SPLIT_WEIGHT.check("w", 0).is_ok());
        assert!(ev::SPLIT_WEIGHT.check("w", 100_000).is_ok());
        let v = ev::SPLIT_WEIGHT.check("samplingRate", 100_001).unwrap_err();
        assert_eq!(
            v.to_string(),
            "Value '100001' at 'samplingRate' failed to satisfy constraint: Member must have value less than or equal to 100000"
        );
        assert!(ev::SPLIT_WEIGHT.check_map_value("weights", -1).unwrap_err().requirement().starts_with("Map value"));
        let long = &ev::VARIABLE_VALUE_LONG_VALUE_LONG;
        assert!(long.check("v", 9_007_199_254_740_991).is_ok() && long.check("v", -9_007_199_254_740_991).is_ok());
        assert!(long.check("v", 9_007_199_254_740_992).is_err() && long.check("v", i64::MIN).is_err());
        assert!(ev::RESULTS_PERIOD.check("period", 299).is_err() && ev::RESULTS_PERIOD.check("period", 90_000).is_ok());
        assert_eq!((ev::MAX_PROJECTS.min, ev::MAX_PROJECTS.max), (Some(1), Some(50)));
        assert_eq!((ev::MAX_FEATURES.min, ev::MAX_FEATURES.max), (Some(1), Some(100)));

        let rate = &cloudfront::SAMPLING_RATE;
        assert!(rate.check("SamplingRate", 100.0).is_ok() && rate.check("SamplingRate", 0.0).is_ok());
        assert!(rate.check("SamplingRate", 100.5).is_err() && rate.check("SamplingRate", -0.1).is_err());
        assert!(rate.check("SamplingRate", f64::NAN).is_err(), "NaN is outside every range");

        assert!(ev::EVALUATION_REQUESTS_LIST.check("requests", 1).is_ok());
        assert!(ev::EVALUATION_REQUESTS_LIST.check("requests", 0).is_err());
        let v = ev::EVALUATION_REQUESTS_LIST.check("requests", 21).unwrap_err();
        assert_eq!(
            v.to_string(),
            "Value with 21 entries at 'requests' failed to satisfy constraint: Member must have length less than or equal to 20"
        );
        assert_eq!((ev::ENTITY_OVERRIDE_MAP.min, ev::ENTITY_OVERRIDE_MAP.max), (Some(0), Some(2500)));
    }

    #[test]
    fn messages_show_a_bounded_escaped_value() {
        let v = ev::ENTITY_ID.check("entityId", &format!("{}\n", "e".repeat(600))).unwrap_err();
        let shown = v.to_string();
        assert!(shown.len() < 300, "{shown}");
        assert!(shown.starts_with(&format!("Value '{}...' at 'entityId'", "e".repeat(100))), "{shown}");
        let v = ev::DESCRIPTION.check("description", "a\nb").unwrap_err();
        assert!(v.to_string().starts_with(r"Value 'a\nb' at 'description'"), "{v}");
        assert_eq!(v.requirement(), "Member must satisfy regular expression pattern: .*");
    }
}
