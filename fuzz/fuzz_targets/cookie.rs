//! Fuzz target `cookie`: the continuous-deployment stickiness cookie (`edgesplit::cd::cookie`).
//!
//! Invariants, checked on every input:
//! 1. `CookieKey::verify` never panics, whatever the value, key or policy id.
//! 2. Only canonical cookies verify: a value that verifies under the seeds' key and policy is, byte for
//!    byte, `encode` of the session it yields. The seeds are real cookies, so a mutated seed that still
//!    verifies must be unchanged (or the fuzzer forged an HMAC).
//! 3. `encode` then `verify` round-trips any session, under any key and policy id, and another policy
//!    id does not accept the cookie.
//! 4. Changing any one byte of a valid cookie (to any other ASCII byte) never verifies; the only change
//!    that "verifies to the same session" is no change at all.
//! 5. `find` and `strip` on the input as `Cookie` header lines (any bytes a header value may hold) never
//!    panic; `find(name)` is the first `name=value` pair whose value is text; after `strip(name)`, no
//!    pair, nor comma-separated piece of a pair, is named `name` in any case, every other cookie of every
//!    line is kept, in order, and what is left is at most one line (several lines are joined with `; `,
//!    as HTTP/2's cookie crumbs must be for an HTTP/1.1 hop); one line without `name` is left as it is.
//!
//! Input: the whole input is tried as a cookie value (2) and as `Cookie` lines split on `\n` (5); the
//! same bytes are also read as a session, a key and a policy id (3, 4).
#![no_main]

use edgesplit::cd::cookie::{CookieKey, Session, find, strip};
use edgesplit::domain::Target;
use http::header::{COOKIE, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// The key and policy id the seed cookies in `corpus/cookie` were encoded with (the unit tests' golden key).
const SEED_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const SEED_POLICY: &str = "cdp-1";
const COOKIE_NAME: &str = "edgesplit-cd";

/// Reads fixed-size values off the front of the input, zero-padded when it runs out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        first
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |acc, _| (acc << 8) | u64::from(self.byte()))
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

fuzz_target!(|data: &[u8]| {
    let seed_key = CookieKey::new(SEED_KEY);
    if let Ok(text) = std::str::from_utf8(data) {
        // (1, 2) Any text: no panic; whatever verifies is canonical.
        if let Some(session) = seed_key.verify(SEED_POLICY, text) {
            assert_eq!(seed_key.encode(SEED_POLICY, &session), text, "a non-canonical cookie verified");
        }
    }
    cookie_headers(data);
    round_trip_and_tamper(data);
});

/// (3, 4) A session, key and policy id read from the input.
fn round_trip_and_tamper(data: &[u8]) {
    let mut r = Reader(data);
    let target = if r.byte() & 1 == 0 { Target::Primary } else { Target::Staging };
    let session = Session { target, issued: r.u64(), last: r.u64(), epoch: r.u64() };
    let key_len = usize::from(r.byte() % 65);
    let key = CookieKey::new(r.take(key_len));
    let policy_len = usize::from(r.byte() % 40);
    let policy = String::from_utf8_lossy(r.take(policy_len)).into_owned();
    let flip = r.byte();

    if let Ok(text) = std::str::from_utf8(data) {
        // (1) Also under a key and policy id of the fuzzer's choosing.
        let _ = key.verify(&policy, text);
    }

    let cookie = key.encode(&policy, &session);
    assert!(cookie.is_ascii(), "{cookie:?}");
    assert_eq!(key.verify(&policy, &cookie), Some(session), "round trip of {cookie:?}");
    let other_policy = format!("{policy}x");
    assert_eq!(key.verify(&other_policy, &cookie), None, "{cookie:?} verified for another policy");

    // Every position, changed to another ASCII byte (7-bit XOR with a non-zero mask keeps it ASCII).
    let mask = 1 + flip % 127;
    let mut bytes = cookie.clone().into_bytes();
    for i in 0..bytes.len() {
        let original = bytes[i];
        bytes[i] = original ^ mask;
        let Ok(changed) = std::str::from_utf8(&bytes) else { unreachable!("ASCII stays UTF-8") };
        assert_eq!(key.verify(&policy, changed), None, "{changed:?} (byte {i} of {cookie:?}) verified");
        bytes[i] = original;
    }
}

/// A `name=value` pair of a `Cookie` line: name and value trimmed, `None` without a `=`.
fn split_pair(p: &[u8]) -> (&[u8], Option<&[u8]>) {
    match p.iter().position(|&b| b == b'=') {
        Some(i) => (p[..i].trim_ascii(), Some(p[i + 1..].trim_ascii())),
        None => (p.trim_ascii(), None),
    }
}

/// The non-empty trimmed pairs of one `Cookie` line.
fn pairs(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&b| b == b';').map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()).collect()
}

/// (5) The input as `Cookie` header lines.
fn cookie_headers(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, v);
        }
    }
    // The default name, and the first pair's name (so that the fuzzer hits present cookies easily).
    let first = headers.iter().flat_map(|(_, v)| pairs(v.as_bytes())).next().map(|p| split_pair(p).0);
    let first = first.and_then(|n| std::str::from_utf8(n).ok()).filter(|n| !n.is_empty());
    for name in std::iter::once(COOKIE_NAME).chain(first) {
        check_find_and_strip(&headers, name);
    }
}

fn check_find_and_strip(headers: &HeaderMap, name: &str) {
    let lines: Vec<&[u8]> = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes).collect();

    // find: the first `name=value` pair, in header order, whose value is text.
    let expected = lines.iter().flat_map(|l| pairs(l)).find_map(|p| match split_pair(p) {
        (k, Some(v)) if k == name.as_bytes() => std::str::from_utf8(v).ok(),
        _ => None,
    });
    assert_eq!(find(headers, name), expected, "find({name:?}) in {lines:?}");

    // strip: every pair (or comma-separated piece of one) named `name` in any case goes, everything else
    // stays, in order, on one line.
    let mut stripped = headers.clone();
    strip(&mut stripped, name);
    assert_eq!(find(&stripped, name), None, "find({name:?}) after strip");
    let ours = |piece: &[u8]| split_pair(piece).0.eq_ignore_ascii_case(name.as_bytes());
    let present = lines.iter().any(|l| l.windows(name.len()).any(|w| w.eq_ignore_ascii_case(name.as_bytes())));
    let kept: Vec<&[u8]> = stripped.get_all(COOKIE).iter().map(HeaderValue::as_bytes).collect();
    if !present && lines.len() == 1 {
        assert_eq!(kept, lines, "strip({name:?}) changed a line without it");
        return;
    }
    assert!(kept.len() <= 1, "strip({name:?}) left {} lines", kept.len());
    let expected: Vec<Vec<u8>> = lines
        .iter()
        .flat_map(|l| pairs(l))
        .filter_map(|p| {
            if !present {
                return Some(p.to_vec());
            }
            if ours(p) {
                return None;
            }
            let pieces: Vec<&[u8]> = p.split(|&b| b == b',').filter(|piece| !ours(piece)).collect();
            let joined = pieces.join(&b","[..]);
            let joined = joined.trim_ascii();
            (!joined.is_empty()).then(|| joined.to_vec())
        })
        .collect();
    let actual: Vec<Vec<u8>> = kept.iter().flat_map(|l| pairs(l)).map(<[u8]>::to_vec).collect();
    for p in &actual {
        assert!(!ours(p), "strip({name:?}) left {p:?}");
        for piece in p.split(|&b| b == b',') {
            assert!(!ours(piece), "strip({name:?}) left {piece:?}");
        }
    }
    assert_eq!(actual, expected, "strip({name:?}) of {lines:?}");
}
