//! The segment pattern language: EventBridge-style JSON patterns matched against an `evaluationContext`.
//!
//! A pattern is compiled once ([`Pattern::parse`], [`Pattern::from_value`]) into a small tree that
//! [`Pattern::matches`] walks without allocating. Compile errors name the offending place
//! (``pattern.Browser[1]: unknown operator `wildcard` ...``) and become `ValidationException` messages.
//!
//! # Language (spec §4.1)
//!
//! A pattern is a non-empty JSON object. Every key must match (AND); context fields the pattern does not
//! name are ignored. A key's value is either
//! * a **nested object**: a sub-pattern matched against the context object at that key, or
//! * a **non-empty array of alternatives** (OR), each one of
//!   * a string, number, `true`, `false` or `null`: equality (`""` is the empty string, `null` a JSON null);
//!   * `{"anything-but": v}` where `v` is a string, a number, or a non-empty array of only strings or
//!     only numbers: any present value not equal to one of them;
//!   * `{"numeric": [op, n]}` with `op` one of `=`, `<`, `<=`, `>`, `>=`, or a range
//!     `{"numeric": [">" | ">=", low, "<" | "<=", high]}` with `low < high`: numbers only;
//!   * `{"exists": true}` (the field is present) or `{"exists": false}` (the field is absent);
//!   * `{"prefix": "s"}`, `{"suffix": "s"}`: strings only, case-sensitive.
//!
//! `"$or": [p1, p2, ...]` (at least two non-empty sub-patterns) may appear at any object level; it holds
//! when any entry matches the same context object, and is ANDed with the level's other keys.
//!
//! Limits, checked at compile time: `parse` takes at most 1024 characters (the `SegmentPattern` length,
//! which the AWS model counts in characters, not bytes); nesting at most 16 levels (the root object is
//! level 1; each nested object, each `$or` entry and each extra segment of a dotted key adds one); at most
//! 256 values in total (each alternative counts one, an `anything-but` list counts its length).
//! Unknown operators, including EventBridge's `wildcard`, `cidr`, `equals-ignore-case`, `contains`,
//! `anything-but` over an operator, and `exact`, are rejected.
//!
//! # Matching (spec §4.2)
//!
//! * Strings and keys compare byte for byte: no case folding, no Unicode normalisation.
//! * Types are strict: `"300"` never matches `300`, `"true"` never matches `true`, `null` is neither
//!   `""` nor a missing field.
//! * **Dotted keys** address nested fields: `{"a.b": [1]}` means `{"a": {"b": [1]}}`. As in EventBridge
//!   (event-ruler compiles both to the path `a.b`), a literal context key containing dots is found too:
//!   every way of grouping the segments into keys is tried (`a`→`b` and `a.b`), and the field matches if
//!   any reading does.
//! * **Arrays** in the context: at the end of a path, the elements (flattened) are the field's values and
//!   the field matches if any of them matches an alternative. On the way to a field, and under a nested
//!   sub-pattern, each element is tried on its own, so the fields of one sub-pattern must all hold in the
//!   same element (event-ruler's "array-consistent" matching).
//! * A field is **absent** when no reading of its path reaches a value: the key is missing, a value on the
//!   way is not an object, or the value is an empty array. An absent field matches only `{"exists": false}`
//!   and nested sub-patterns made only of such conditions. A present field (including `null` and objects)
//!   matches `{"exists": true}`.
//! * A context that is not a JSON object has no fields, so only patterns that require nothing but absence
//!   match it.
//! * `matches` follows the context at most 32 containers deep; anything deeper matches nothing (and does
//!   not count as absent), so a hostile context costs bounded time and stack.
//!
//! # Deviations and choices where AWS is silent
//!
//! * **Number literals.** AWS compares exact numbers by their text (`300`, `300.0` and `3.0e2` differ).
//!   `serde_json` keeps only a number's kind, so here an integer literal never equals a float literal
//!   (`300` ≠ `300.0`), integers compare exactly as integers and floats by `f64` equality: `300.0`,
//!   `3.0e2` and `3e2` are equal, and so are `0.0` and `-0.0`. Integers outside the `i64`/`u64` range are
//!   read as floats. (EventBridge itself also matches numbers numerically; Evidently's guide says not.)
//! * **`numeric`** compares exactly across integers and floats (`9007199254740993 > 9007199254740992.0`),
//!   with no EventBridge ±5e9 range limit or 6-decimal rounding. A range must give its lower bound first
//!   and `low < high`, as in event-ruler; `=` stands alone.
//! * **`anything-but`** is the complement of equality on present values: `{"anything-but": ["Safari"]}`
//!   matches `null`, booleans, numbers and objects too, and `{"anything-but": [300]}` matches `300.0`.
//!   It never matches an absent field.
//! * **`exists: true`** matches objects and `null`; EventBridge's `exists` only sees leaf values (there,
//!   `{"exists": false}` would match a field holding an object).
//! * **`exists: false` under an array** holds when some element lacks the field
//!   (`{"a": {"b": [{"exists": false}]}}` matches `{"a": [{"b": 1}, {}]}`); this keeps dotted and nested
//!   forms equivalent.
//! * **`$or`** must be an array of at least two objects; event-ruler's fallback of treating a malformed
//!   `$or` as an ordinary field name is not kept. Other `$`-keys are ordinary field names.
//! * Empty objects are rejected everywhere (as in event-ruler); `{"prefix": ""}` is accepted and matches
//!   every string. Duplicate keys in the pattern text are not detected: the last one wins.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Number, Value};

/// Longest pattern text [`Pattern::parse`] accepts, in characters.
const MAX_PATTERN_CHARS: usize = match crate::limits::evidently::SEGMENT_PATTERN.max {
    Some(max) => max,
    // The model bounds `SegmentPattern` (1024); this keeps the parser bounded should it ever stop.
    None => 1024,
};
/// Deepest nesting a pattern may have (the root object is level 1).
const MAX_PATTERN_DEPTH: usize = 16;
/// Most values one pattern may list.
const MAX_VALUES: usize = 256;
/// How many containers deep `matches` follows a context.
const MAX_CONTEXT_DEPTH: usize = 32;

/// A compiled segment pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    root: Node,
}

/// Why a pattern was refused: a human-readable message that names the place, e.g.
/// ``pattern.Browser[1]: unknown operator `wildcard` ...``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

impl Pattern {
    /// Parses and compiles the JSON text of a pattern (CreateSegment's `pattern`, TestSegmentPattern's `pattern`).
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        // `len()` bounds the character count from above, so the count is only needed for long texts.
        if text.len() > MAX_PATTERN_CHARS && text.chars().count() > MAX_PATTERN_CHARS {
            return Err(error(&Loc::Root, format_args!("longer than {MAX_PATTERN_CHARS} characters")));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| error(&Loc::Root, format_args!("not valid JSON: {e}")))?;
        Self::from_value(&value)
    }

    /// Compiles an already-parsed JSON value (must be an object).
    pub fn from_value(v: &Value) -> Result<Pattern, PatternError> {
        let Value::Object(obj) = v else {
            return Err(error(&Loc::Root, format_args!("must be a JSON object, found {}", kind(v))));
        };
        let root = Compiler { values: 0 }.node(obj, &Loc::Root, 1)?;
        Ok(Pattern { root })
    }

    /// Whether an evaluation context (a JSON object; anything else matches nothing except patterns that only
    /// require absence) matches.
    pub fn matches(&self, context: &Value) -> bool {
        match context {
            Value::Object(obj) => self.root.matches_object(obj, 0),
            _ => self.root.absent,
        }
    }
}

// === compiled form ===

/// One object level: all `fields` must match, and one of `any_of` (a `$or`) when there is one.
#[derive(Debug, Clone)]
struct Node {
    fields: Box<[Field]>,
    any_of: Box<[Node]>,
    /// Whether this level matches where its object is absent.
    absent: bool,
}

/// A key of the pattern (possibly dotted) and what its value must be.
#[derive(Debug, Clone)]
struct Field {
    key: Box<str>,
    /// Byte offsets of the dots in `key`: segment `i` runs from after dot `i - 1` to dot `i`.
    dots: Box<[usize]>,
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    /// A list of alternatives; `absent` when one of them is `{"exists": false}`.
    Values { alts: Box<[Alt]>, absent: bool },
    /// A nested sub-pattern.
    Nested(Node),
}

/// One alternative of a value list.
#[derive(Debug, Clone)]
enum Alt {
    Equals(Lit),
    AnythingBut(Box<[Lit]>),
    Numeric { low: Option<Bound>, high: Option<Bound> },
    Exists(bool),
    Prefix(Box<str>),
    Suffix(Box<str>),
}

/// A literal JSON scalar.
#[derive(Debug, Clone)]
enum Lit {
    Null,
    Bool(bool),
    Str(Box<str>),
    Num(Num),
}

/// A JSON number, keeping whether it was written as an integer.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

#[derive(Debug, Clone, Copy)]
struct Bound {
    value: Num,
    inclusive: bool,
}

/// The result of reading one field: a value was found and matched, found and did not match, or none found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Match,
    NoMatch,
    Absent,
}

impl Outcome {
    fn of(matched: bool) -> Outcome {
        if matched { Outcome::Match } else { Outcome::NoMatch }
    }

    /// Settles the outcome for a matcher that does (`absent == true`) or does not accept absence.
    fn holds(self, absent: bool) -> bool {
        match self {
            Outcome::Match => true,
            Outcome::NoMatch => false,
            Outcome::Absent => absent,
        }
    }
}

// === matching ===

impl Node {
    /// `obj` sits `depth` containers below the context root.
    fn matches_object(&self, obj: &Map<String, Value>, depth: usize) -> bool {
        self.fields.iter().all(|f| f.matches(obj, depth))
            && (self.any_of.is_empty() || self.any_of.iter().any(|n| n.matches_object(obj, depth)))
    }

    /// Matches the value found at this sub-pattern's key; arrays are tried element by element.
    fn outcome(&self, value: &Value, depth: usize) -> Outcome {
        if depth > MAX_CONTEXT_DEPTH {
            return Outcome::NoMatch;
        }
        match value {
            Value::Object(obj) => Outcome::of(self.matches_object(obj, depth)),
            Value::Array(items) if !items.is_empty() => {
                Outcome::of(items.iter().any(|item| self.outcome(item, depth + 1).holds(self.absent)))
            }
            _ => Outcome::Absent,
        }
    }
}

impl Field {
    fn matches(&self, obj: &Map<String, Value>, depth: usize) -> bool {
        self.lookup(obj, 0, depth).holds(self.matcher.absent())
    }

    /// Reads segments `first..` of the key in `obj` (at `depth`), trying every grouping of them into keys.
    fn lookup(&self, obj: &Map<String, Value>, first: usize, depth: usize) -> Outcome {
        let last_segment = self.dots.len();
        let mut outcome = Outcome::Absent;
        for last in first..=last_segment {
            let Some(value) = self.segments(first, last).and_then(|key| obj.get(key)) else {
                continue;
            };
            let found = if last == last_segment {
                self.matcher.outcome(value, depth + 1)
            } else {
                self.descend(value, last + 1, depth + 1)
            };
            match found {
                Outcome::Match => return Outcome::Match,
                Outcome::NoMatch => outcome = Outcome::NoMatch,
                Outcome::Absent => {}
            }
        }
        outcome
    }

    /// Continues the path at segment `next` inside `value` (at `depth`); arrays are tried element by element.
    fn descend(&self, value: &Value, next: usize, depth: usize) -> Outcome {
        if depth > MAX_CONTEXT_DEPTH {
            return Outcome::NoMatch;
        }
        match value {
            Value::Object(obj) => self.lookup(obj, next, depth),
            Value::Array(items) if !items.is_empty() => {
                let absent = self.matcher.absent();
                Outcome::of(items.iter().any(|item| self.descend(item, next, depth + 1).holds(absent)))
            }
            _ => Outcome::Absent,
        }
    }

    /// The key text of segments `first..=last`, dots included.
    fn segments(&self, first: usize, last: usize) -> Option<&str> {
        let start = match first {
            0 => 0,
            i => self.dots.get(i - 1)? + 1,
        };
        let end = match self.dots.get(last) {
            Some(&dot) => dot,
            None => self.key.len(),
        };
        self.key.get(start..end)
    }
}

impl Matcher {
    /// Whether the matcher accepts an absent field.
    fn absent(&self) -> bool {
        match self {
            Matcher::Values { absent, .. } => *absent,
            Matcher::Nested(node) => node.absent,
        }
    }

    fn outcome(&self, value: &Value, depth: usize) -> Outcome {
        match self {
            Matcher::Values { alts, .. } => values_outcome(alts, value, depth),
            Matcher::Nested(node) => node.outcome(value, depth),
        }
    }
}

/// Matches a field's value against alternatives; arrays are flattened into their elements.
fn values_outcome(alts: &[Alt], value: &Value, depth: usize) -> Outcome {
    if depth > MAX_CONTEXT_DEPTH {
        return Outcome::NoMatch;
    }
    let Value::Array(items) = value else {
        return Outcome::of(alts.iter().any(|alt| alt.matches(value)));
    };
    let mut outcome = Outcome::Absent;
    for item in items {
        match values_outcome(alts, item, depth + 1) {
            Outcome::Match => return Outcome::Match,
            Outcome::NoMatch => outcome = Outcome::NoMatch,
            Outcome::Absent => {}
        }
    }
    outcome
}

impl Alt {
    /// Matches one present value (never an array).
    fn matches(&self, value: &Value) -> bool {
        match self {
            Alt::Equals(lit) => lit.equals(value),
            Alt::AnythingBut(lits) => !lits.iter().any(|lit| lit.equals(value)),
            Alt::Numeric { low, high } => match value {
                Value::Number(n) => Num::of(n).is_some_and(|x| within(x, *low, *high)),
                _ => false,
            },
            Alt::Exists(present) => *present,
            Alt::Prefix(prefix) => matches!(value, Value::String(s) if s.starts_with(&**prefix)),
            Alt::Suffix(suffix) => matches!(value, Value::String(s) if s.ends_with(&**suffix)),
        }
    }
}

impl Lit {
    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Lit::Null, Value::Null) => true,
            (Lit::Bool(a), Value::Bool(b)) => a == b,
            (Lit::Str(a), Value::String(b)) => **a == **b,
            (Lit::Num(a), Value::Number(b)) => Num::of(b).is_some_and(|b| a.same_literal(b)),
            _ => false,
        }
    }
}

impl Num {
    fn of(n: &Number) -> Option<Num> {
        if let Some(u) = n.as_u64() {
            Some(Num::Int(i128::from(u)))
        } else if let Some(i) = n.as_i64() {
            Some(Num::Int(i128::from(i)))
        } else {
            n.as_f64().map(Num::Float)
        }
    }

    /// Exact-match equality: integers with integers, floats with floats, never across.
    fn same_literal(self, other: Num) -> bool {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a == b,
            (Num::Float(a), Num::Float(b)) => a == b,
            _ => false,
        }
    }

    /// Exact numeric order, also between an integer and a float.
    fn compare(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b),
            (Num::Int(a), Num::Float(b)) => compare_int_float(a, b),
            (Num::Float(a), Num::Int(b)) => compare_int_float(b, a).map(Ordering::reverse),
        }
    }
}

/// Orders an integer (within ±2^64) against a float without the rounding of `i as f64`.
fn compare_int_float(i: i128, f: f64) -> Option<Ordering> {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_POW_64 {
        return Some(Ordering::Less);
    }
    if f < -TWO_POW_64 {
        return Some(Ordering::Greater);
    }
    // |floor(f)| <= 2^64, so the conversion is exact, and floor(f) <= f < floor(f) + 1.
    let floor = f.floor();
    match i.cmp(&(floor as i128)) {
        Ordering::Equal if f > floor => Some(Ordering::Less),
        order => Some(order),
    }
}

fn within(x: Num, low: Option<Bound>, high: Option<Bound>) -> bool {
    let above = low.is_none_or(|b| match x.compare(b.value) {
        Some(Ordering::Greater) => true,
        Some(Ordering::Equal) => b.inclusive,
        _ => false,
    });
    let below = high.is_none_or(|b| match x.compare(b.value) {
        Some(Ordering::Less) => true,
        Some(Ordering::Equal) => b.inclusive,
        _ => false,
    });
    above && below
}

// === compiling ===

/// Where an item sits in the pattern; rendered only for error messages.
enum Loc<'a> {
    Root,
    Key(&'a Loc<'a>, &'a str),
    Index(&'a Loc<'a>, usize),
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Root => f.write_str("pattern"),
            Loc::Key(parent, key) if is_plain_key(key) => write!(f, "{parent}.{key}"),
            Loc::Key(parent, key) => write!(f, "{parent}[{key:?}]"),
            Loc::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '$' | ':' | '@'))
}

fn error(loc: &Loc<'_>, message: fmt::Arguments<'_>) -> PatternError {
    PatternError(format!("{loc}: {message}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The operators this language supports, for error messages.
const OPERATORS: &str = "anything-but, numeric, exists, prefix, suffix";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

struct Compiler {
    /// Values listed so far, against [`MAX_VALUES`].
    values: usize,
}

impl Compiler {
    /// Compiles an object of the pattern at nesting level `depth`.
    fn node(&mut self, obj: &Map<String, Value>, loc: &Loc<'_>, depth: usize) -> Result<Node, PatternError> {
        if depth > MAX_PATTERN_DEPTH {
            return Err(error(loc, format_args!("nested deeper than {MAX_PATTERN_DEPTH} levels")));
        }
        if obj.is_empty() {
            return Err(error(loc, format_args!("empty object: a pattern needs at least one field")));
        }
        let mut fields = Vec::with_capacity(obj.len());
        let mut any_of = Vec::new();
        for (key, value) in obj {
            let here = Loc::Key(loc, key);
            if key == "$or" {
                any_of = self.or(value, &here, depth)?;
                continue;
            }
            let dots: Vec<usize> = key.match_indices('.').map(|(at, _)| at).collect();
            // The field's value lives in the object holding its last segment.
            let holder_depth = depth + dots.len();
            let matcher = match value {
                Value::Object(inner) => Matcher::Nested(self.node(inner, &here, holder_depth + 1)?),
                Value::Array(_) if holder_depth > MAX_PATTERN_DEPTH => {
                    return Err(error(&here, format_args!("nested deeper than {MAX_PATTERN_DEPTH} levels")));
                }
                Value::Array(alts) => self.values(alts, &here)?,
                other => {
                    return Err(error(
                        &here,
                        format_args!("expected an array of values or a nested object, found {}", kind(other)),
                    ));
                }
            };
            fields.push(Field { key: key.as_str().into(), dots: dots.into(), matcher });
        }
        let absent =
            fields.iter().all(|f| f.matcher.absent()) && (any_of.is_empty() || any_of.iter().any(|n: &Node| n.absent));
        Ok(Node { fields: fields.into(), any_of: any_of.into(), absent })
    }

    fn or(&mut self, value: &Value, loc: &Loc<'_>, depth: usize) -> Result<Vec<Node>, PatternError> {
        let Value::Array(entries) = value else {
            return Err(error(
                loc,
                format_args!("`$or` takes an array of at least 2 sub-patterns, found {}", kind(value)),
            ));
        };
        if entries.len() < 2 {
            return Err(error(loc, format_args!("`$or` needs at least 2 sub-patterns, found {}", entries.len())));
        }
        let mut nodes = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let here = Loc::Index(loc, index);
            let Value::Object(obj) = entry else {
                return Err(error(&here, format_args!("a `$or` entry must be an object, found {}", kind(entry))));
            };
            nodes.push(self.node(obj, &here, depth + 1)?);
        }
        Ok(nodes)
    }

    fn values(&mut self, alts: &[Value], loc: &Loc<'_>) -> Result<Matcher, PatternError> {
        if alts.is_empty() {
            return Err(error(loc, format_args!("empty array: list at least one value")));
        }
        let mut compiled = Vec::with_capacity(alts.len());
        let mut absent = false;
        for (index, alt) in alts.iter().enumerate() {
            let here = Loc::Index(loc, index);
            let alt = match alt {
                Value::Array(_) => {
                    return Err(error(&here, format_args!("nested arrays are not allowed; list the values directly")));
                }
                Value::Object(op) => self.operator(op, &here)?,
                scalar => Alt::Equals(literal(scalar, &here)?),
            };
            let weight = match &alt {
                Alt::AnythingBut(lits) => lits.len(),
                _ => 1,
            };
            self.count(weight, &here)?;
            absent |= matches!(alt, Alt::Exists(false));
            compiled.push(alt);
        }
        Ok(Matcher::Values { alts: compiled.into(), absent })
    }

    fn count(&mut self, weight: usize, loc: &Loc<'_>) -> Result<(), PatternError> {
        self.values += weight;
        if self.values > MAX_VALUES {
            return Err(error(loc, format_args!("more than {MAX_VALUES} values in the pattern")));
        }
        Ok(())
    }

    fn operator(&mut self, op: &Map<String, Value>, loc: &Loc<'_>) -> Result<Alt, PatternError> {
        let (name, operand) = match op.iter().next() {
            Some(entry) if op.len() == 1 => entry,
            _ => {
                return Err(error(
                    loc,
                    format_args!("an operator object needs exactly one key ({OPERATORS}), found {}", op.len()),
                ));
            }
        };
        let here = Loc::Key(loc, name);
        match name.as_str() {
            "anything-but" => anything_but(operand, &here),
            "numeric" => numeric(operand, &here),
            "exists" => match operand {
                Value::Bool(present) => Ok(Alt::Exists(*present)),
                other => Err(error(&here, format_args!("`exists` takes true or false, found {}", kind(other)))),
            },
            "prefix" => match operand {
                Value::String(s) => Ok(Alt::Prefix(s.as_str().into())),
                other => Err(error(&here, format_args!("`prefix` takes a string, found {}", kind(other)))),
            },
            "suffix" => match operand {
                Value::String(s) => Ok(Alt::Suffix(s.as_str().into())),
                other => Err(error(&here, format_args!("`suffix` takes a string, found {}", kind(other)))),
            },
            other => Err(error(loc, format_args!("unknown operator `{other}` (supported: {OPERATORS})"))),
        }
    }
}

fn literal(v: &Value, loc: &Loc<'_>) -> Result<Lit, PatternError> {
    match v {
        Value::Null => Ok(Lit::Null),
        Value::Bool(b) => Ok(Lit::Bool(*b)),
        Value::String(s) => Ok(Lit::Str(s.as_str().into())),
        Value::Number(n) => number(n, loc).map(Lit::Num),
        other => Err(error(loc, format_args!("expected a string, number, boolean or null, found {}", kind(other)))),
    }
}

fn number(n: &Number, loc: &Loc<'_>) -> Result<Num, PatternError> {
    Num::of(n).ok_or_else(|| error(loc, format_args!("unsupported number {n}")))
}

fn anything_but(operand: &Value, loc: &Loc<'_>) -> Result<Alt, PatternError> {
    let lits = match operand {
        Value::String(_) | Value::Number(_) => vec![literal(operand, loc)?],
        Value::Array(items) => {
            if items.is_empty() {
                return Err(error(loc, format_args!("`anything-but` needs at least one value")));
            }
            let mut lits = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let here = Loc::Index(loc, index);
                if !matches!(item, Value::String(_) | Value::Number(_)) {
                    return Err(error(
                        &here,
                        format_args!("`anything-but` values must be strings or numbers, found {}", kind(item)),
                    ));
                }
                lits.push(literal(item, &here)?);
            }
            if items.iter().any(Value::is_string) && items.iter().any(Value::is_number) {
                return Err(error(loc, format_args!("`anything-but` list mixes strings and numbers")));
            }
            lits
        }
        Value::Object(_) => {
            return Err(error(
                loc,
                format_args!("`anything-but` over an operator (prefix, suffix, ...) is not supported"),
            ));
        }
        other => {
            return Err(error(
                loc,
                format_args!("`anything-but` takes a string, a number or an array of them, found {}", kind(other)),
            ));
        }
    };
    Ok(Alt::AnythingBut(lits.into()))
}

const NUMERIC_SHAPE: &str =
    "`numeric` takes one comparison such as [\">\", 10] or a range such as [\">\", 10, \"<=\", 20]";

fn numeric(operand: &Value, loc: &Loc<'_>) -> Result<Alt, PatternError> {
    let Value::Array(terms) = operand else {
        return Err(error(loc, format_args!("{NUMERIC_SHAPE}, found {}", kind(operand))));
    };
    match terms.as_slice() {
        [op, value] => {
            let op = comparison(op, &Loc::Index(loc, 0))?;
            let value = numeric_operand(value, &Loc::Index(loc, 1))?;
            let (strict, inclusive) = (Some(Bound { value, inclusive: false }), Some(Bound { value, inclusive: true }));
            Ok(match op {
                Op::Eq => Alt::Numeric { low: inclusive, high: inclusive },
                Op::Gt => Alt::Numeric { low: strict, high: None },
                Op::Ge => Alt::Numeric { low: inclusive, high: None },
                Op::Lt => Alt::Numeric { low: None, high: strict },
                Op::Le => Alt::Numeric { low: None, high: inclusive },
            })
        }
        [low_op, low, high_op, high] => {
            let low_op = comparison(low_op, &Loc::Index(loc, 0))?;
            let low_num = numeric_operand(low, &Loc::Index(loc, 1))?;
            let high_op = comparison(high_op, &Loc::Index(loc, 2))?;
            let high_num = numeric_operand(high, &Loc::Index(loc, 3))?;
            if low_op == Op::Eq || high_op == Op::Eq {
                return Err(error(loc, format_args!("`=` cannot be combined with another comparison")));
            }
            if !matches!(low_op, Op::Gt | Op::Ge) {
                return Err(error(loc, format_args!("a range starts with its lower bound (`>` or `>=`)")));
            }
            if !matches!(high_op, Op::Lt | Op::Le) {
                return Err(error(loc, format_args!("a range ends with its upper bound (`<` or `<=`)")));
            }
            if low_num.compare(high_num) != Some(Ordering::Less) {
                return Err(error(loc, format_args!("empty range: lower bound {low} is not below upper bound {high}")));
            }
            Ok(Alt::Numeric {
                low: Some(Bound { value: low_num, inclusive: low_op == Op::Ge }),
                high: Some(Bound { value: high_num, inclusive: high_op == Op::Le }),
            })
        }
        _ => Err(error(loc, format_args!("{NUMERIC_SHAPE}, found {} elements", terms.len()))),
    }
}

fn comparison(op: &Value, loc: &Loc<'_>) -> Result<Op, PatternError> {
    match op.as_str() {
        Some("=") => Ok(Op::Eq),
        Some("<") => Ok(Op::Lt),
        Some("<=") => Ok(Op::Le),
        Some(">") => Ok(Op::Gt),
        Some(">=") => Ok(Op::Ge),
        _ => Err(error(loc, format_args!("unknown numeric operator {op} (use =, <, <=, >, >=)"))),
    }
}

fn numeric_operand(value: &Value, loc: &Loc<'_>) -> Result<Num, PatternError> {
    match value {
        Value::Number(n) => number(n, loc),
        other => Err(error(loc, format_args!("a numeric bound must be a number, found {}", kind(other)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text).unwrap_or_else(|e| panic!("{text} should compile: {e}"))
    }

    /// Whether `pattern` matches the JSON text `context`.
    fn m(pattern_text: &str, context: &str) -> bool {
        let context: Value = serde_json::from_str(context).unwrap();
        pattern(pattern_text).matches(&context)
    }

    /// The compile error for `text`, checked to contain `fragment`.
    fn rejects(text: &str, fragment: &str) -> String {
        match Pattern::parse(text) {
            Ok(_) => panic!("{text} should be rejected"),
            Err(PatternError(message)) => {
                assert!(message.contains(fragment), "{text}: `{message}` lacks `{fragment}`");
                message
            }
        }
    }

    // --- spec §4.1 table, row by row ---

    #[test]
    fn null_row() {
        let p = r#"{"UserID": [null]}"#;
        assert!(m(p, r#"{"UserID": null}"#));
        assert!(!m(p, r#"{"UserID": "null"}"#));
        assert!(!m(p, r#"{"UserID": ""}"#));
        assert!(!m(p, r#"{"UserID": 0}"#));
        assert!(!m(p, r#"{}"#));
    }

    #[test]
    fn empty_string_row() {
        let p = r#"{"LastName": [""]}"#;
        assert!(m(p, r#"{"LastName": ""}"#));
        assert!(!m(p, r#"{"LastName": null}"#));
        assert!(!m(p, r#"{"LastName": " "}"#));
        assert!(!m(p, r#"{}"#));
    }

    #[test]
    fn equals_row() {
        let p = r#"{"Browser": ["Chrome"]}"#;
        assert!(m(p, r#"{"Browser": "Chrome", "Other": 1}"#));
        assert!(!m(p, r#"{"Browser": "chrome"}"#));
        assert!(!m(p, r#"{"Browser": "Chrome "}"#));
        assert!(!m(p, r#"{"Browser": "Chromium"}"#));
        assert!(!m(p, r#"{}"#));
    }

    #[test]
    fn and_row() {
        let p = r#"{"Country": ["France"], "Device": ["Mobile"]}"#;
        assert!(m(p, r#"{"Country": "France", "Device": "Mobile"}"#));
        assert!(!m(p, r#"{"Country": "France", "Device": "Desktop"}"#));
        assert!(!m(p, r#"{"Country": "France"}"#));
        assert!(!m(p, r#"{"Device": "Mobile"}"#));
    }

    #[test]
    fn or_one_attribute_row() {
        let p = r#"{"Browser": ["Chrome", "Firefox"]}"#;
        assert!(m(p, r#"{"Browser": "Chrome"}"#));
        assert!(m(p, r#"{"Browser": "Firefox"}"#));
        assert!(!m(p, r#"{"Browser": "Safari"}"#));
    }

    #[test]
    fn or_across_attributes_row() {
        let p = r#"{"$or": [{"Browser": ["Safari"]}, {"Device": ["Tablet"]}]}"#;
        assert!(m(p, r#"{"Browser": "Safari"}"#));
        assert!(m(p, r#"{"Device": "Tablet"}"#));
        assert!(m(p, r#"{"Browser": "Safari", "Device": "Tablet"}"#));
        assert!(!m(p, r#"{"Browser": "Chrome", "Device": "Phone"}"#));
        assert!(!m(p, r#"{}"#));
    }

    #[test]
    fn not_row() {
        let p = r#"{"Browser": [{"anything-but": ["Safari"]}]}"#;
        assert!(m(p, r#"{"Browser": "Chrome"}"#));
        assert!(m(p, r#"{"Browser": "safari"}"#));
        assert!(!m(p, r#"{"Browser": "Safari"}"#));
        assert!(!m(p, r#"{}"#), "anything-but needs a present value");
        // Complement of equality on present values, whatever their type.
        assert!(m(p, r#"{"Browser": null}"#));
        assert!(m(p, r#"{"Browser": 5}"#));
        assert!(m(p, r#"{"Browser": {"name": "Safari"}}"#));
    }

    #[test]
    fn anything_but_single_values_and_lists() {
        let single = r#"{"State": [{"anything-but": "initializing"}]}"#;
        assert!(m(single, r#"{"State": "running"}"#));
        assert!(!m(single, r#"{"State": "initializing"}"#));
        let numbers = r#"{"Limit": [{"anything-but": [100, 200]}]}"#;
        assert!(m(numbers, r#"{"Limit": 150}"#));
        assert!(!m(numbers, r#"{"Limit": 200}"#));
        assert!(m(numbers, r#"{"Limit": "200"}"#), "strict typing");
        assert!(m(numbers, r#"{"Limit": 200.0}"#), "literal kinds differ, as with equality");
        assert!(!m(r#"{"Limit": [{"anything-but": 7}]}"#, r#"{"Limit": 7}"#));
    }

    #[test]
    fn numeric_equals_row() {
        let p = r#"{"Price": [{"numeric": ["=", 100]}]}"#;
        assert!(m(p, r#"{"Price": 100}"#));
        assert!(m(p, r#"{"Price": 100.0}"#), "numeric compares values, not literals");
        assert!(m(p, r#"{"Price": 1e2}"#));
        assert!(!m(p, r#"{"Price": 100.5}"#));
        assert!(!m(p, r#"{"Price": "100"}"#));
        assert!(!m(p, r#"{}"#));
    }

    #[test]
    fn numeric_range_row_terraform_pattern() {
        let p = r#"{"Price":[{"numeric":[">",10,"<=",20]}]}"#;
        assert!(!m(p, r#"{"Price": 10}"#));
        assert!(m(p, r#"{"Price": 10.5}"#));
        assert!(m(p, r#"{"Price": 15}"#));
        assert!(m(p, r#"{"Price": 20}"#));
        assert!(!m(p, r#"{"Price": 20.01}"#));
        assert!(!m(p, r#"{"Price": "15"}"#));
        assert!(!m(p, r#"{"Price": null}"#));
        assert!(!m(p, r#"{}"#));
    }

    #[test]
    fn numeric_single_comparisons() {
        assert!(m(r#"{"n": [{"numeric": ["<", 0]}]}"#, r#"{"n": -1}"#));
        assert!(!m(r#"{"n": [{"numeric": ["<", 0]}]}"#, r#"{"n": 0}"#));
        assert!(m(r#"{"n": [{"numeric": ["<=", 0]}]}"#, r#"{"n": 0}"#));
        assert!(m(r#"{"n": [{"numeric": [">", -1.5]}]}"#, r#"{"n": -1}"#));
        assert!(!m(r#"{"n": [{"numeric": [">=", 3]}]}"#, r#"{"n": 2.999}"#));
        assert!(m(r#"{"n": [{"numeric": [">=", 0, "<", 1]}]}"#, r#"{"n": 0}"#));
        assert!(!m(r#"{"n": [{"numeric": [">=", 0, "<", 1]}]}"#, r#"{"n": 1}"#));
    }

    #[test]
    fn numeric_is_exact_between_large_integers_and_floats() {
        // 2^53 + 1 is not representable as f64; a float comparison would call it equal to 2^53.
        let p = r#"{"n": [{"numeric": [">", 9007199254740992.0]}]}"#;
        assert!(m(p, r#"{"n": 9007199254740993}"#));
        assert!(!m(p, r#"{"n": 9007199254740992}"#));
        assert!(m(r#"{"n": [{"numeric": ["=", 18446744073709551615]}]}"#, r#"{"n": 18446744073709551615}"#));
        assert!(m(r#"{"n": [{"numeric": ["<", -9223372036854775807]}]}"#, r#"{"n": -9223372036854775808}"#));
        assert!(m(r#"{"n": [{"numeric": [">", 1e300]}]}"#, r#"{"n": 1e301}"#));
        assert!(!m(r#"{"n": [{"numeric": [">", 1e30]}]}"#, r#"{"n": 18446744073709551615}"#));
        assert!(m(r#"{"n": [{"numeric": ["<", -1e30]}]}"#, r#"{"n": -1e31}"#));
    }

    #[test]
    fn exists_row() {
        let present = r#"{"Age": [{"exists": true}]}"#;
        let absent = r#"{"Age": [{"exists": false}]}"#;
        for context in
            [r#"{"Age": 25}"#, r#"{"Age": "x"}"#, r#"{"Age": null}"#, r#"{"Age": {"y": 1}}"#, r#"{"Age": [0]}"#]
        {
            assert!(m(present, context), "{context}");
            assert!(!m(absent, context), "{context}");
        }
        for context in [r#"{}"#, r#"{"age": 25}"#, r#"{"Age": []}"#] {
            assert!(!m(present, context), "{context}");
            assert!(m(absent, context), "{context}");
        }
    }

    #[test]
    fn prefix_row() {
        let p = r#"{"Region": [{"prefix": "us-"}]}"#;
        assert!(m(p, r#"{"Region": "us-east-1"}"#));
        assert!(m(p, r#"{"Region": "us-"}"#));
        assert!(!m(p, r#"{"Region": "US-east-1"}"#));
        assert!(!m(p, r#"{"Region": "eu-us-1"}"#));
        assert!(!m(r#"{"Code": [{"prefix": "3"}]}"#, r#"{"Code": 300}"#));
        assert!(m(r#"{"Region": [{"prefix": "é"}]}"#, r#"{"Region": "été"}"#));
    }

    #[test]
    fn suffix_row() {
        let p = r#"{"Region": [{"suffix": "West"}]}"#;
        assert!(m(p, r#"{"Region": "US-West"}"#));
        assert!(!m(p, r#"{"Region": "US-west"}"#));
        assert!(!m(p, r#"{"Region": "West-US"}"#));
        assert!(!m(p, r#"{}"#));
    }

    #[test]
    fn empty_prefix_matches_any_string() {
        let p = r#"{"s": [{"prefix": ""}]}"#;
        assert!(m(p, r#"{"s": ""}"#));
        assert!(!m(p, r#"{"s": 1}"#));
    }

    // --- user guide examples ---

    #[test]
    fn user_guide_example_browser_and_location() {
        let p = r#"{"Browser":["Chrome","Firefox"],"Location":["US-West"]}"#;
        assert!(m(p, r#"{"Browser": "Firefox", "Location": "US-West"}"#));
        assert!(!m(p, r#"{"Browser": "Firefox", "Location": "US-East"}"#));
        assert!(!m(p, r#"{"Browser": "Safari", "Location": "US-West"}"#));
    }

    #[test]
    fn user_guide_example_anything_but_prefix_exists() {
        let p = r#"{"Browser":[{"anything-but":["Chrome"]}],"Location":[{"prefix":"US"}],"Age":[{"exists":true}]}"#;
        assert!(m(p, r#"{"Browser": "Safari", "Location": "US-West", "Age": 30}"#));
        assert!(!m(p, r#"{"Browser": "Chrome", "Location": "US-West", "Age": 30}"#));
        assert!(!m(p, r#"{"Browser": "Safari", "Location": "EU-West", "Age": 30}"#));
        assert!(!m(p, r#"{"Browser": "Safari", "Location": "US-West"}"#));
    }

    #[test]
    fn user_guide_example_location_and_or() {
        let p = r#"{"Location":["Japan"],"$or":[{"Browser":["Safari"]},{"Device":["Tablet"]}]}"#;
        assert!(m(p, r#"{"Location": "Japan", "Browser": "Safari"}"#));
        assert!(m(p, r#"{"Location": "Japan", "Device": "Tablet"}"#));
        assert!(!m(p, r#"{"Location": "Japan", "Browser": "Chrome"}"#));
        assert!(!m(p, r#"{"Location": "France", "Browser": "Safari"}"#));
    }

    // --- structure ---

    #[test]
    fn nested_objects() {
        let p = r#"{"Location": {"Country": ["United States"], "Zipcode": [98007]}}"#;
        let ug = r#"{"Browser":"Chrome","Location":{"Country":"United States","Zipcode":98007}}"#;
        assert!(m(p, ug));
        assert!(!m(p, r#"{"Location": {"Country": "United States", "Zipcode": 98008}}"#));
        assert!(!m(p, r#"{"Location": "United States"}"#));
        assert!(!m(p, r#"{"Country": "United States", "Zipcode": 98007}"#));
        // A nested sub-pattern that only requires absence matches a missing or non-object parent.
        let absent = r#"{"Location": {"Country": [{"exists": false}]}}"#;
        assert!(m(absent, r#"{}"#));
        assert!(m(absent, r#"{"Location": "Paris"}"#));
        assert!(m(absent, r#"{"Location": {"City": "Paris"}}"#));
        assert!(!m(absent, r#"{"Location": {"Country": "France"}}"#));
    }

    #[test]
    fn or_inside_nested_object_and_nested_or() {
        let p = r#"{"Location": {"$or": [{"Country": ["FR"]}, {"Zip": [75001]}]}}"#;
        assert!(m(p, r#"{"Location": {"Zip": 75001}}"#));
        assert!(!m(p, r#"{"Location": {"Zip": 75002}}"#));
        let nested = r#"{"$or": [{"a": [1]}, {"b": [2], "$or": [{"c": [3]}, {"d": [4]}]}]}"#;
        assert!(m(nested, r#"{"a": 1}"#));
        assert!(m(nested, r#"{"b": 2, "d": 4}"#));
        assert!(!m(nested, r#"{"b": 2}"#));
    }

    #[test]
    fn dotted_keys_address_nested_fields() {
        let p = r#"{"userDetails.userId": [{"exists": true}], "details.score": [{"numeric": [">", 5]}]}"#;
        assert!(m(p, r#"{"userDetails": {"userId": "u1"}, "details": {"score": 7}}"#));
        assert!(!m(p, r#"{"userDetails": {"userId": "u1"}, "details": {"score": 3}}"#));
        assert!(!m(p, r#"{"userDetails": "u1", "details": {"score": 7}}"#));
        // The same path written with literal dotted keys, or mixing both forms, is found too.
        assert!(m(p, r#"{"userDetails.userId": "u1", "details": {"score": 7}}"#));
        assert!(m(r#"{"a.b.c": [1]}"#, r#"{"a": {"b.c": 1}}"#));
        assert!(m(r#"{"a.b.c": [1]}"#, r#"{"a.b": {"c": 1}}"#));
        assert!(m(r#"{"a": {"b.c": [1]}}"#, r#"{"a": {"b": {"c": 1}}}"#));
        // One reading matching is enough; a field is absent only if no reading finds a value.
        assert!(m(r#"{"a.b": [2]}"#, r#"{"a": {"b": 1}, "a.b": 2}"#));
        assert!(!m(r#"{"a.b": [{"exists": false}]}"#, r#"{"a": {}, "a.b": 2}"#));
        assert!(m(r#"{"a.b": [{"exists": false}]}"#, r#"{"a": {}, "a.c": 2}"#));
    }

    #[test]
    fn dotted_and_nested_forms_agree() {
        let contexts = [
            r#"{"a": {"b": 1}}"#,
            r#"{"a": {"b": 2}}"#,
            r#"{"a": {}}"#,
            r#"{"a": 1}"#,
            r#"{}"#,
            r#"{"a": [{"b": 2}, {"b": 1}]}"#,
            r#"{"a": [{"b": 1}, {}]}"#,
            r#"{"a": []}"#,
        ];
        for alts in [r#"[1]"#, r#"[{"exists": true}]"#, r#"[{"exists": false}]"#, r#"[{"anything-but": 1}]"#] {
            let dotted = pattern(&format!(r#"{{"a.b": {alts}}}"#));
            let nested = pattern(&format!(r#"{{"a": {{"b": {alts}}}}}"#));
            for context in contexts {
                let context: Value = serde_json::from_str(context).unwrap();
                assert_eq!(dotted.matches(&context), nested.matches(&context), "{alts} on {context}");
            }
        }
    }

    #[test]
    fn arrays_in_the_context() {
        let p = r#"{"Tags": ["beta"]}"#;
        assert!(m(p, r#"{"Tags": ["alpha", "beta"]}"#));
        assert!(m(p, r#"{"Tags": [["beta"]]}"#));
        assert!(!m(p, r#"{"Tags": ["alpha"]}"#));
        assert!(!m(p, r#"{"Tags": []}"#));
        assert!(m(r#"{"n": [{"numeric": [">", 10]}]}"#, r#"{"n": [1, 2, 30]}"#));
        assert!(m(r#"{"Tags": [{"anything-but": "beta"}]}"#, r#"{"Tags": ["beta", "gamma"]}"#));
        assert!(!m(r#"{"Tags": [{"anything-but": "beta"}]}"#, r#"{"Tags": ["beta"]}"#));
        // Arrays of objects: a nested sub-pattern must hold within one element.
        let employees = r#"{"employees": [{"first": "John", "last": "Doe"}, {"first": "Anna", "last": "Smith"}]}"#;
        assert!(m(r#"{"employees": {"first": ["Anna"]}}"#, employees));
        assert!(m(r#"{"employees": {"first": ["Anna"], "last": ["Smith"]}}"#, employees));
        assert!(!m(r#"{"employees": {"first": ["Anna"], "last": ["Doe"]}}"#, employees));
        assert!(m(r#"{"employees.first": ["Anna"]}"#, employees));
        // exists:false under an array holds when some element lacks the field.
        assert!(m(r#"{"a": {"b": [{"exists": false}]}}"#, r#"{"a": [{"b": 1}, {}]}"#));
        assert!(!m(r#"{"a": {"b": [{"exists": false}]}}"#, r#"{"a": [{"b": 1}]}"#));
    }

    #[test]
    fn null_versus_missing() {
        assert!(m(r#"{"x": [null]}"#, r#"{"x": null}"#));
        assert!(!m(r#"{"x": [null]}"#, r#"{}"#));
        assert!(m(r#"{"x": [{"exists": true}]}"#, r#"{"x": null}"#));
        assert!(!m(r#"{"x": [{"exists": false}]}"#, r#"{"x": null}"#));
        assert!(m(r#"{"x": [null, {"exists": false}]}"#, r#"{}"#));
        assert!(m(r#"{"x": [null, {"exists": false}]}"#, r#"{"x": null}"#));
        assert!(!m(r#"{"x": [null, {"exists": false}]}"#, r#"{"x": 0}"#));
    }

    #[test]
    fn keys_and_values_are_case_sensitive() {
        assert!(!m(r#"{"Browser": ["Chrome"]}"#, r#"{"browser": "Chrome"}"#));
        assert!(!m(r#"{"browser": ["Chrome"]}"#, r#"{"Browser": "Chrome"}"#));
        assert!(!m(r#"{"Browser": ["CHROME"]}"#, r#"{"Browser": "Chrome"}"#));
        // No Unicode normalisation: precomposed é differs from e + combining accent.
        assert!(!m(r#"{"City": ["Montr\u00e9al"]}"#, r#"{"City": "Montre\u0301al"}"#));
    }

    #[test]
    fn strict_typing() {
        assert!(!m(r#"{"n": ["300"]}"#, r#"{"n": 300}"#));
        assert!(!m(r#"{"n": [300]}"#, r#"{"n": "300"}"#));
        assert!(!m(r#"{"b": [true]}"#, r#"{"b": "true"}"#));
        assert!(!m(r#"{"b": ["true"]}"#, r#"{"b": true}"#));
        assert!(m(r#"{"b": [false]}"#, r#"{"b": false}"#));
        assert!(!m(r#"{"b": [false]}"#, r#"{"b": 0}"#));
        assert!(!m(r#"{"n": [{"numeric": ["=", 1]}]}"#, r#"{"n": true}"#));
    }

    #[test]
    fn exact_numbers_compare_by_literal_kind() {
        assert!(m(r#"{"n": [300]}"#, r#"{"n": 300}"#));
        assert!(!m(r#"{"n": [300]}"#, r#"{"n": 300.0}"#));
        assert!(!m(r#"{"n": [300.0]}"#, r#"{"n": 300}"#));
        assert!(!m(r#"{"n": [3.0e2]}"#, r#"{"n": 300}"#));
        assert!(m(r#"{"n": [-5]}"#, r#"{"n": -5}"#));
        assert!(m(r#"{"n": [1.5]}"#, r#"{"n": 1.5}"#));
        assert!(m(r#"{"n": [18446744073709551615]}"#, r#"{"n": 18446744073709551615}"#));
        assert!(!m(r#"{"n": [9007199254740993]}"#, r#"{"n": 9007199254740992}"#));
        // Documented deviation: serde_json does not keep the text of floats.
        assert!(m(r#"{"n": [300.0]}"#, r#"{"n": 3.0e2}"#));
    }

    #[test]
    fn non_object_contexts_match_only_absence() {
        let absence = pattern(r#"{"a": [{"exists": false}], "b": {"c": [{"exists": false}]}}"#);
        let presence = pattern(r#"{"a": [{"exists": true}]}"#);
        let mixed = pattern(r#"{"a": [{"exists": false}], "b": [1]}"#);
        for context in [json!(null), json!("a"), json!(1), json!([{"a": 1}]), json!(true)] {
            assert!(absence.matches(&context), "{context}");
            assert!(!presence.matches(&context), "{context}");
            assert!(!mixed.matches(&context), "{context}");
        }
        let or_absent = pattern(r#"{"$or": [{"a": [1]}, {"b": [{"exists": false}]}]}"#);
        assert!(or_absent.matches(&json!([])));
    }

    #[test]
    fn hostile_contexts_are_bounded() {
        let mut deep = json!("x");
        for _ in 0..200 {
            deep = json!([deep]);
        }
        // Past the depth limit nothing matches, not even absence.
        for p in [r#"{"a": ["x"]}"#, r#"{"a": [{"exists": true}]}"#, r#"{"a": {"c": [{"exists": false}]}}"#] {
            assert!(!pattern(p).matches(&json!({ "a": deep.clone() })), "{p}");
        }
        assert!(!pattern(r#"{"a.e": [{"exists": false}]}"#).matches(&json!({ "a": deep.clone() })));
        // Within the limit, nested arrays are followed.
        let shallow = json!({"a": [[[["x"]]]]});
        assert!(pattern(r#"{"a": ["x"]}"#).matches(&shallow));
        // Many dotted keys that all resolve stay cheap: each reading reaches a distinct context node.
        let dotted = pattern(r#"{"a.a.a.a.a.a.a.a": [1]}"#);
        let mut nested = json!({"a": 1, "a.a": 1, "a.a.a": 1});
        for _ in 0..7 {
            nested = json!({"a": nested.clone(), "a.a": nested.clone()});
        }
        assert!(dotted.matches(&nested));
    }

    #[test]
    fn pattern_can_be_compiled_from_a_value() {
        let p = Pattern::from_value(&json!({"Browser": ["Chrome"]})).unwrap();
        assert!(p.matches(&json!({"Browser": "Chrome"})));
        let e = Pattern::from_value(&json!(["Chrome"])).unwrap_err();
        assert_eq!(e.to_string(), "pattern: must be a JSON object, found an array");
    }

    #[test]
    fn keys_starting_with_dollar_other_than_or_are_fields() {
        assert!(m(r#"{"$and": ["x"]}"#, r#"{"$and": "x"}"#));
    }

    // --- compile-time rejections ---

    #[test]
    fn rejects_non_object_patterns_and_bad_json() {
        rejects(r#"["Browser"]"#, "pattern: must be a JSON object, found an array");
        rejects(r#""Browser""#, "found a string");
        rejects(r#"null"#, "found null");
        rejects(r#"{"Browser": ["Chrome"]"#, "pattern: not valid JSON");
        rejects("", "pattern: not valid JSON");
    }

    #[test]
    fn rejects_empty_arrays_and_objects() {
        rejects(r#"{"Browser": []}"#, "pattern.Browser: empty array");
        rejects(r#"{}"#, "pattern: empty object");
        rejects(r#"{"Location": {}}"#, "pattern.Location: empty object");
        rejects(r#"{"$or": [{}, {"a": [1]}]}"#, "pattern.$or[0]: empty object");
    }

    #[test]
    fn rejects_scalar_field_values_and_nested_arrays() {
        rejects(r#"{"Browser": "Chrome"}"#, "pattern.Browser: expected an array of values or a nested object");
        rejects(r#"{"Age": 5}"#, "found a number");
        rejects(r#"{"Tags": [["a"]]}"#, "pattern.Tags[0]: nested arrays are not allowed");
    }

    #[test]
    fn rejects_unknown_operators() {
        let message = rejects(r#"{"Browser": ["Chrome", {"wildcard": "Chr*"}]}"#, "");
        assert!(message.starts_with("pattern.Browser[1]: unknown operator `wildcard`"), "{message}");
        for op in ["cidr", "equals-ignore-case", "contains", "exact", "anything_but", "Prefix"] {
            rejects(&format!(r#"{{"a": [{{"{op}": "x"}}]}}"#), &format!("pattern.a[0]: unknown operator `{op}`"));
        }
        rejects(r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#, "pattern.a[0]: an operator object needs exactly one key");
        rejects(r#"{"a": [{}]}"#, "found 0");
        rejects(r#"{"we ird": [{"x": 1}]}"#, r#"pattern["we ird"][0]: unknown operator"#);
    }

    #[test]
    fn rejects_wrong_operand_types() {
        rejects(r#"{"a": [{"exists": "true"}]}"#, "pattern.a[0].exists: `exists` takes true or false, found a string");
        rejects(r#"{"a": [{"exists": 1}]}"#, "`exists` takes true or false");
        rejects(r#"{"a": [{"prefix": 1}]}"#, "pattern.a[0].prefix: `prefix` takes a string");
        rejects(r#"{"a": [{"suffix": ["x"]}]}"#, "pattern.a[0].suffix: `suffix` takes a string");
        rejects(r#"{"a": [{"anything-but": true}]}"#, "pattern.a[0].anything-but: `anything-but` takes a string");
        rejects(r#"{"a": [{"anything-but": null}]}"#, "`anything-but` takes a string");
        rejects(r#"{"a": [{"anything-but": []}]}"#, "`anything-but` needs at least one value");
        rejects(r#"{"a": [{"anything-but": ["x", null]}]}"#, "pattern.a[0].anything-but[1]: `anything-but` values");
        rejects(r#"{"a": [{"anything-but": ["x", 1]}]}"#, "mixes strings and numbers");
        rejects(r#"{"a": [{"anything-but": {"prefix": "x"}}]}"#, "`anything-but` over an operator");
    }

    #[test]
    fn rejects_bad_numeric_expressions() {
        rejects(r#"{"a": [{"numeric": 5}]}"#, "pattern.a[0].numeric: `numeric` takes one comparison");
        rejects(r#"{"a": [{"numeric": []}]}"#, "found 0 elements");
        rejects(r#"{"a": [{"numeric": [">"]}]}"#, "found 1 elements");
        rejects(r#"{"a": [{"numeric": [">", 1, "<"]}]}"#, "found 3 elements");
        rejects(r#"{"a": [{"numeric": [">", 1, "<", 5, "<", 6]}]}"#, "found 6 elements");
        rejects(r#"{"a": [{"numeric": ["!=", 5]}]}"#, r#"pattern.a[0].numeric[0]: unknown numeric operator "!=""#);
        rejects(r#"{"a": [{"numeric": ["==", 5]}]}"#, "unknown numeric operator");
        rejects(r#"{"a": [{"numeric": [5, ">"]}]}"#, "unknown numeric operator 5");
        rejects(r#"{"a": [{"numeric": [">", "5"]}]}"#, "pattern.a[0].numeric[1]: a numeric bound must be a number");
        rejects(r#"{"a": [{"numeric": [">", 1, "<=", "5"]}]}"#, "pattern.a[0].numeric[3]: a numeric bound");
        rejects(r#"{"a": [{"numeric": ["=", 1, "<", 5]}]}"#, "`=` cannot be combined");
        rejects(r#"{"a": [{"numeric": ["<", 20, ">", 10]}]}"#, "a range starts with its lower bound");
        rejects(r#"{"a": [{"numeric": [">", 1, ">", 5]}]}"#, "a range ends with its upper bound");
        rejects(
            r#"{"a": [{"numeric": [">", 20, "<", 10]}]}"#,
            "empty range: lower bound 20 is not below upper bound 10",
        );
        rejects(r#"{"a": [{"numeric": [">=", 5, "<=", 5]}]}"#, "empty range");
        rejects(r#"{"a": [{"numeric": [">", 5.0, "<", 5]}]}"#, "empty range");
    }

    #[test]
    fn rejects_bad_or() {
        rejects(r#"{"$or": [{"a": [1]}]}"#, "pattern.$or: `$or` needs at least 2 sub-patterns, found 1");
        rejects(r#"{"$or": []}"#, "found 0");
        rejects(r#"{"$or": {"a": [1]}}"#, "pattern.$or: `$or` takes an array");
        rejects(r#"{"$or": [{"a": [1]}, ["b"]]}"#, "pattern.$or[1]: a `$or` entry must be an object");
        rejects(
            r#"{"x": {"$or": [{"a": [1]}, {"b": [{"wildcard": "*"}]}]}}"#,
            "pattern.x.$or[1].b[0]: unknown operator",
        );
    }

    #[test]
    fn rejects_nesting_deeper_than_16_levels() {
        fn nested(levels: usize) -> String {
            format!("{}{}{}", r#"{"a":"#.repeat(levels - 1), r#"{"a":[1]}"#, "}".repeat(levels - 1))
        }
        let ok = pattern(&nested(16));
        let mut context = json!({"a": 1});
        for _ in 1..16 {
            context = json!({ "a": context });
        }
        assert!(ok.matches(&context));
        rejects(&nested(17), "nested deeper than 16 levels");
        // Dotted segments count as levels.
        let dotted = |segments: usize| format!(r#"{{"{}": [1]}}"#, vec!["a"; segments].join("."));
        pattern(&dotted(16));
        rejects(&dotted(17), "nested deeper than 16 levels");
        rejects(&format!(r#"{{"{}": {{"b": [1]}}}}"#, vec!["a"; 16].join(".")), "nested deeper than 16 levels");
        // So do `$or` entries.
        let mut or = String::from(r#"{"x":[1]}"#);
        for _ in 0..16 {
            or = format!(r#"{{"$or":[{or},{{"y":[2]}}]}}"#);
        }
        rejects(&or, "nested deeper than 16 levels");
        // from_value stops at the limit however deep the value is.
        let mut deep = json!({"a": [1]});
        for _ in 0..1000 {
            deep = json!({ "a": deep });
        }
        assert!(Pattern::from_value(&deep).unwrap_err().0.contains("nested deeper than 16 levels"));
    }

    #[test]
    fn rejects_more_than_256_values() {
        let list = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let ok = pattern(&format!(r#"{{"a": [{}]}}"#, list(256)));
        assert!(ok.matches(&json!({"a": 255})));
        let too_many = serde_json::from_str::<Value>(&format!(r#"{{"a": [{}]}}"#, list(257))).unwrap();
        let e = Pattern::from_value(&too_many).unwrap_err();
        assert_eq!(e.0, "pattern.a[256]: more than 256 values in the pattern");
        // anything-but lists count each value; the total spans all fields.
        let mixed = json!({"a": [{"anything-but": (0..200).collect::<Vec<_>>()}], "b": (0..57).collect::<Vec<_>>()});
        assert!(Pattern::from_value(&mixed).unwrap_err().0.contains("more than 256 values"));
    }

    #[test]
    fn rejects_text_longer_than_1024_characters() {
        let sized = |len: usize| {
            let head = r#"{"a": [""#;
            let tail = r#""]}"#;
            format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
        };
        assert_eq!(sized(1024).len(), 1024);
        pattern(&sized(1024));
        rejects(&sized(1025), "pattern: longer than 1024 characters");
        // The limit counts characters, as the AWS model does, not bytes.
        let accents = format!(r#"{{"a": ["{}"]}}"#, "é".repeat(1000));
        assert!(accents.len() > 1024 && accents.chars().count() <= 1024);
        pattern(&accents);
    }

    #[test]
    fn error_displays_its_message() {
        let e = PatternError("pattern.a: x".into());
        assert_eq!(e.to_string(), "pattern.a: x");
    }
}
