//! The stickiness cookie (D3): `v1.<p|s>.<issued>.<last seen>.<epoch>.<mac>`, the mac a 128-bit
//! truncated HMAC-SHA256 over the policy id and the fields, base64url. Anything that does not verify is
//! simply no session: a tampered, foreign, stale or malformed cookie is a new draw, never an error.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use http::header::{self, HeaderMap, HeaderValue};
use sha2::Sha256;

use crate::domain::Target;

type HmacSha256 = Hmac<Sha256>;

const TAG_LEN: usize = 16;

/// The signing key, keyed once: each use clones the prepared HMAC state.
#[derive(Clone)]
pub struct CookieKey {
    keyed: HmacSha256,
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

/// What a cookie says about a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub target: Target,
    pub issued: u64,
    pub last: u64,
    pub epoch: u64,
}

impl CookieKey {
    pub fn new(key: &[u8]) -> CookieKey {
        // HMAC takes keys of any length; this cannot fail.
        let keyed = HmacSha256::new_from_slice(key).unwrap_or_else(|_| HmacSha256::new(&Default::default()));
        CookieKey { keyed }
    }

    fn mac(&self, policy_id: &str, payload: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(policy_id.as_bytes());
        mac.update(b"|");
        mac.update(payload.as_bytes());
        mac
    }

    /// The cookie value for `s`.
    pub fn encode(&self, policy_id: &str, s: &Session) -> String {
        let mut value = String::with_capacity(64);
        self.encode_into(policy_id, s, &mut value);
        value
    }

    /// Appends the cookie value for `s` to `out` (the request path builds the whole `Set-Cookie` line in
    /// one buffer).
    pub(crate) fn encode_into(&self, policy_id: &str, s: &Session, out: &mut String) {
        let start = out.len();
        let side = match s.target {
            Target::Primary => 'p',
            Target::Staging => 's',
        };
        // By hand rather than `write!`: this runs for every response that sets the cookie.
        let mut n = itoa::Buffer::new();
        out.push_str("v1.");
        out.push(side);
        for field in [s.issued, s.last, s.epoch] {
            out.push('.');
            out.push_str(n.format(field));
        }
        let tag = self.mac(policy_id, &out[start..]).finalize().into_bytes();
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&tag[..TAG_LEN], out);
    }

    /// The session a cookie value carries, if its mac verifies for `policy_id`. Expiry and epoch are
    /// the caller's to judge.
    pub fn verify(&self, policy_id: &str, value: &str) -> Option<Session> {
        let (payload, tag) = value.rsplit_once('.')?;
        let mut fields = payload.split('.');
        if fields.next()? != "v1" {
            return None;
        }
        let target = match fields.next()? {
            "p" => Target::Primary,
            "s" => Target::Staging,
            _ => return None,
        };
        let issued = fields.next()?.parse().ok()?;
        let last = fields.next()?.parse().ok()?;
        let epoch = fields.next()?.parse().ok()?;
        if fields.next().is_some() || tag.len() > 32 {
            return None;
        }
        let mut tag_bytes = [0u8; 24];
        let n = URL_SAFE_NO_PAD.decode_slice(tag, &mut tag_bytes).ok()?;
        if n != TAG_LEN {
            return None;
        }
        self.mac(policy_id, payload).verify_truncated_left(&tag_bytes[..TAG_LEN]).ok()?;
        Some(Session { target, issued, last, epoch })
    }
}

/// A `name=value` pair of a `Cookie` line, split and trimmed (`value` is `None` without a `=`). Bytes, not
/// text: a line may carry other cookies in UTF-8 (obs-text), which must not hide or drop ours.
fn pair(p: &[u8]) -> (&[u8], Option<&[u8]>) {
    let p = p.trim_ascii();
    match p.iter().position(|&b| b == b'=') {
        Some(i) => (p[..i].trim_ascii(), Some(p[i + 1..].trim_ascii())),
        None => (p, None),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one).
/// The one place a `Set-Cookie` value is written (the session cookie here, the entity cookie at the
/// edge): `name=VALUE; Max-Age=N; Path=/; HttpOnly; SameSite=Lax[; Secure]`, `value` writing VALUE, in one
/// buffer that becomes the header's without a copy.
pub fn set_cookie(name: &str, max_age: u64, secure: bool, value: impl FnOnce(&mut String)) -> Option<HeaderValue> {
    let mut line = String::with_capacity(128);
    line.push_str(name);
    line.push('=');
    value(&mut line);
    line.push_str("; Max-Age=");
    line.push_str(itoa::Buffer::new().format(max_age));
    line.push_str("; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        line.push_str("; Secure");
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(line)).ok()
}

pub fn find<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().find_map(|line| {
        line.as_bytes().split(|&b| b == b';').find_map(|p| match pair(p) {
            (k, Some(v)) if k == name.as_bytes() => std::str::from_utf8(v).ok(),
            _ => None,
        })
    })
}

/// Removes cookie `name` from the `Cookie` headers, in every form an origin framework might parse as
/// ours: any case (`EDGESPLIT-CD=`), and after a comma (`a=1, edgesplit-cd=…`, the RFC 2965 style some
/// parsers still split on). What is left goes out as one `Cookie` line joined with `; `, which is also
/// how HTTP/2's cookie crumbs must reach an HTTP/1.1 origin (RFC 9113 8.2.3). Costs a case-insensitive
/// substring check when the cookie is absent and there is a single line.
pub fn strip(headers: &mut HeaderMap, name: &str) {
    let name = name.as_bytes();
    let mut lines = headers.get_all(header::COOKIE).iter();
    let Some(first) = lines.next() else { return };
    let crumbs = lines.next().is_some();
    let ours = |line: &HeaderValue| line.as_bytes().windows(name.len()).any(|w| w.eq_ignore_ascii_case(name));
    let present = if crumbs { headers.get_all(header::COOKIE).iter().any(ours) } else { ours(first) };
    if !present && !crumbs {
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for line in headers.get_all(header::COOKIE) {
        for p in line.as_bytes().split(|&b| b == b';').map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()) {
            if !present {
                push_pair(&mut joined, p);
                continue;
            }
            if pair(p).0.eq_ignore_ascii_case(name) {
                continue;
            }
            if !p.contains(&b',') {
                push_pair(&mut joined, p);
                continue;
            }
            // Commas inside other cookies' values stay as they are; only a comma-separated piece named
            // like ours goes.
            let kept: Vec<&[u8]> =
                p.split(|&b| b == b',').filter(|piece| !pair(piece).0.eq_ignore_ascii_case(name)).collect();
            let kept = kept.join(&b","[..]);
            let kept = kept.trim_ascii();
            if !kept.is_empty() {
                push_pair(&mut joined, kept);
            }
        }
    }
    headers.remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_bytes(&joined)
        && !joined.is_empty()
    {
        headers.insert(header::COOKIE, v);
    }
}

/// Appends one cookie pair to a `Cookie` line being built.
fn push_pair(line: &mut Vec<u8>, pair: &[u8]) {
    if !line.is_empty() {
        line.extend_from_slice(b"; ");
    }
    line.extend_from_slice(pair);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CookieKey {
        CookieKey::new(b"0123456789abcdef0123456789abcdef")
    }

    const S: Session = Session { target: Target::Staging, issued: 1_700_000_000, last: 1_700_000_100, epoch: 3 };

    #[test]
    fn golden_cookie_value() {
        // Changing this value breaks every session in the field: a breaking change. Computed independently:
        // python3 -c "import hmac,hashlib,base64; print(base64.urlsafe_b64encode(hmac.new(
        //   b'0123456789abcdef0123456789abcdef', b'cdp-1|v1.s.1700000000.1700000100.3', hashlib.sha256).digest()[:16]))"
        assert_eq!(key().encode("cdp-1", &S), "v1.s.1700000000.1700000100.3.UiwP4yacJic8FI8d6-5pYg");
    }

    #[test]
    fn round_trip_and_rejections() {
        let k = key();
        let v = k.encode("cdp-1", &S);
        assert_eq!(k.verify("cdp-1", &v), Some(S));
        // Foreign policy, other key, tampered fields or mac, malformed: no session.
        assert_eq!(k.verify("cdp-2", &v), None);
        assert_eq!(CookieKey::new(b"other").verify("cdp-1", &v), None);
        assert_eq!(k.verify("cdp-1", &v.replace("v1.s.", "v1.p.")), None);
        let mut chars: Vec<char> = v.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        assert_eq!(k.verify("cdp-1", &chars.into_iter().collect::<String>()), None);
        for bad in [
            "",
            "v1",
            "v1.s.1.2.3",
            "v2.s.1.2.3.AAAA",
            "v1.x.1.2.3.AAAAAAAAAAAAAAAAAAAAAA",
            "v1.s.a.2.3.AAAAAAAAAAAAAAAAAAAAAA",
            ".....",
        ] {
            assert_eq!(k.verify("cdp-1", bad), None, "{bad}");
        }
    }

    fn cookies(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(header::COOKIE, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn find_and_strip() {
        let mut h = cookies(&["a=1; edgesplit-cd=v1.x; b=2", "c=3"]);
        assert_eq!(find(&h, "edgesplit-cd"), Some("v1.x"));
        assert_eq!(find(&h, "c"), Some("3"));
        strip(&mut h, "edgesplit-cd");
        let left: Vec<_> = h.get_all(header::COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect();
        assert_eq!(left, ["a=1; b=2; c=3"], "what is left goes out as one line");
        let mut h = cookies(&["edgesplit-cd=v1"]);
        strip(&mut h, "edgesplit-cd");
        assert!(h.get(header::COOKIE).is_none());
        let mut h = cookies(&["xedgesplit-cd=1"]);
        strip(&mut h, "edgesplit-cd");
        assert_eq!(h.get(header::COOKIE).unwrap(), "xedgesplit-cd=1");
    }

    #[test]
    fn other_cookies_in_utf8_neither_hide_nor_lose_anything() {
        // Regression: lines that were not visible ASCII were skipped by `find` (no session, a new entity
        // id on every request) and dropped whole by `strip` (the origin lost the other cookies).
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_bytes(b"name=caf\xc3\xa9; edgesplit-cd=v1.x").unwrap());
        h.append(header::COOKIE, HeaderValue::from_bytes(b"other=\xff").unwrap());
        assert_eq!(find(&h, "edgesplit-cd"), Some("v1.x"));
        assert_eq!(find(&h, "other"), None, "a value that is not UTF-8 is no value");
        strip(&mut h, "edgesplit-cd");
        let left: Vec<&[u8]> = h.get_all(header::COOKIE).iter().map(HeaderValue::as_bytes).collect();
        assert_eq!(left, [&b"name=caf\xc3\xa9; other=\xff"[..]]);
    }

    #[test]
    fn spaces_around_the_equals_sign_name_the_same_cookie() {
        let mut h = cookies(&["a=1; edgesplit-cd = v1.x ; edgesplit-cd; b=2"]);
        assert_eq!(find(&h, "edgesplit-cd"), Some("v1.x"));
        strip(&mut h, "edgesplit-cd");
        assert_eq!(h.get(header::COOKIE).unwrap(), "a=1; b=2");
    }

    #[test]
    fn every_form_an_origin_might_parse_as_ours_is_stripped() {
        for (line, left) in [
            ("a=1, edgesplit-cd=v1.x", Some("a=1")),
            ("a=1,edgesplit-cd=v1.x, b=2", Some("a=1, b=2")),
            ("EDGESPLIT-CD=v1.x; b=2", Some("b=2")),
            ("a=1; Edgesplit-Cd=v1.x", Some("a=1")),
            ("edgesplit-cd=v1.x, EDGESPLIT-CD=v1.y", None),
            // A comma inside another cookie's value is left alone.
            ("list=a,b,c; edgesplit-cd=v1.x", Some("list=a,b,c")),
        ] {
            let mut h = cookies(&[line]);
            strip(&mut h, "edgesplit-cd");
            assert_eq!(h.get(header::COOKIE).map(|v| v.to_str().unwrap()), left, "{line}");
        }
    }

    #[test]
    fn http2_cookie_crumbs_become_one_line() {
        // RFC 9113 8.2.3: crumbs are joined with "; " for an HTTP/1.1 hop, ours or not.
        let mut h = cookies(&["a=1", "b=2", "c=3"]);
        strip(&mut h, "edgesplit-cd");
        let left: Vec<_> = h.get_all(header::COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect();
        assert_eq!(left, ["a=1; b=2; c=3"]);
        // One line without our cookie is not touched (and costs no allocation).
        let mut h = cookies(&["a=1;b=2"]);
        strip(&mut h, "edgesplit-cd");
        assert_eq!(h.get(header::COOKIE).unwrap(), "a=1;b=2");
    }
}
