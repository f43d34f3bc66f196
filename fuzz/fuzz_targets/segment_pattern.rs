//! Fuzz target `segment_pattern`: Evidently segment patterns (`edgesplit::evidently::pattern`).
//!
//! Invariants, checked on every input:
//! 1. `Pattern::parse`, `Pattern::from_value` and `Pattern::matches` never panic.
//! 2. Bounded size and time: a text longer than 1024 characters is refused, and compiling and matching
//!    finish quickly whatever the pattern and context (scripts/fuzz.sh runs libFuzzer with `-timeout`,
//!    so a slow input is reported as a failure).
//! 3. `parse(text)` and `from_value(&serde_json::from_str(text))` agree on acceptance (the text limit
//!    aside).
//! 4. `matches` is deterministic: the same answer twice, and from a clone of the pattern.
//!
//! Input: the first line is the pattern text, the rest the evaluation context (JSON; when it is not
//! JSON, the pattern's own value and the raw text as a JSON string are used as contexts instead).
#![no_main]

use edgesplit::evidently::pattern::Pattern;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MAX_PATTERN_CHARS: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern_text, context_text) = text.split_once('\n').unwrap_or((text, ""));

    let parsed = Pattern::parse(pattern_text);
    let too_long = pattern_text.chars().count() > MAX_PATTERN_CHARS;
    if too_long {
        assert!(parsed.is_err(), "a pattern of {} characters was accepted", pattern_text.chars().count());
    }
    let pattern_value: Option<Value> = serde_json::from_str(pattern_text).ok();
    if let Some(v) = &pattern_value {
        let from_value = Pattern::from_value(v);
        if !too_long {
            assert_eq!(
                parsed.as_ref().map(|_| ()).map_err(|e| e.0.clone()),
                from_value.as_ref().map(|_| ()).map_err(|e| e.0.clone()),
                "parse and from_value disagree on {pattern_text:?}"
            );
        }
    } else {
        assert!(parsed.is_err(), "text that is not JSON was accepted: {pattern_text:?}");
    }
    let Ok(pattern) = parsed else { return };

    let mut contexts: Vec<Value> = Vec::new();
    match serde_json::from_str::<Value>(context_text) {
        Ok(v) => contexts.push(v),
        Err(_) => contexts.push(Value::String(context_text.to_string())),
    }
    contexts.extend(pattern_value);
    let clone = pattern.clone();
    for context in &contexts {
        let first = pattern.matches(context);
        assert_eq!(pattern.matches(context), first, "matches is not deterministic on {context}");
        assert_eq!(clone.matches(context), first, "a clone disagrees on {context}");
    }
});
