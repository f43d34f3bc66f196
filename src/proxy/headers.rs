//! Header hygiene in one pass each way: hop-by-hop headers out, forwarding headers in.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop by RFC 9110 7.6.1, plus the de facto `Keep-Alive`; header `i` is bit `1 << i` in the set
/// [`strip_hop_by_hop`] gathers in one scan of a map. The `Proxy-*` family is one more bit.
static HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
const CONNECTION: u8 = 1 << 0;
const UPGRADE: u8 = 1 << 5;
const PROXY_ANY: u8 = 1 << 6;

/// The table as a `match`, which compiles to a length switch: this runs for every header of every request
/// and response (a test keeps the two in step).
fn hop_bit(name: &str) -> u8 {
    match name {
        "connection" => 1 << 0,
        "keep-alive" => 1 << 1,
        "te" => 1 << 2,
        "trailer" => 1 << 3,
        "transfer-encoding" => 1 << 4,
        "upgrade" => 1 << 5,
        _ if name.starts_with("proxy-") => PROXY_ANY,
        _ => 0,
    }
}

/// A field name read off the wire, as `HeaderName::from_bytes` makes it. The names nearly every request
/// and response carry are matched first as they are usually spelt (`Content-Type`, `content-type`): a
/// `match`, compiled to a length switch and fixed-size compares, about 20 instructions, where
/// `from_bytes` folds the case byte by byte and then looks the name up, about 150 (issue 17, callgrind).
pub(crate) fn field_name(raw: &[u8]) -> Result<HeaderName, header::InvalidHeaderName> {
    use header::*;
    Ok(match raw {
        b"Host" | b"host" => HOST,
        b"Date" | b"date" => DATE,
        b"Vary" | b"vary" => VARY,
        b"ETag" | b"Etag" | b"etag" => ETAG,
        b"Accept" | b"accept" => ACCEPT,
        b"Cookie" | b"cookie" => COOKIE,
        b"Server" | b"server" => SERVER,
        b"Expires" | b"expires" => EXPIRES,
        b"Referer" | b"referer" => REFERER,
        b"Location" | b"location" => LOCATION,
        b"Connection" | b"connection" => CONNECTION,
        b"Set-Cookie" | b"set-cookie" => SET_COOKIE,
        b"User-Agent" | b"user-agent" => USER_AGENT,
        b"Content-Type" | b"content-type" => CONTENT_TYPE,
        b"Accept-Ranges" | b"accept-ranges" => ACCEPT_RANGES,
        b"Cache-Control" | b"cache-control" => CACHE_CONTROL,
        b"Last-Modified" | b"last-modified" => LAST_MODIFIED,
        b"Authorization" | b"authorization" => AUTHORIZATION,
        b"Content-Length" | b"content-length" => CONTENT_LENGTH,
        b"Accept-Encoding" | b"accept-encoding" => ACCEPT_ENCODING,
        b"Accept-Language" | b"accept-language" => ACCEPT_LANGUAGE,
        b"Content-Encoding" | b"content-encoding" => CONTENT_ENCODING,
        b"Transfer-Encoding" | b"transfer-encoding" => TRANSFER_ENCODING,
        _ => return HeaderName::from_bytes(raw),
    })
}

/// Whether a `Connection` token, in any case, names a header [`hop_bit`] knows.
fn names_hop_by_hop(token: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| token.eq_ignore_ascii_case(h.as_str()))
        || token.as_bytes().get(..6).is_some_and(|p| p.eq_ignore_ascii_case(b"proxy-"))
}

/// Removes hop-by-hop headers and the headers `Connection` names. With `keep_upgrade`, `Upgrade` and
/// `Connection: upgrade` stay (a tunnelled WebSocket handshake).
///
/// This runs twice per request, so the common cases stay cheap: no hop-by-hop header costs one scan of
/// the names; `Connection: keep-alive` (most origins, most browsers) adds one removal. Nothing is
/// allocated unless a `Proxy-*` header or a second `Connection` line shows up.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let found = headers.keys().fold(0, |found, name| found | hop_bit(name.as_str()));
    if found == 0 {
        return;
    }
    if found & CONNECTION != 0 {
        // Values are shared buffers: these clones are reference counts.
        let first = headers.get(header::CONNECTION).cloned();
        let more: Vec<HeaderValue> = headers.get_all(header::CONNECTION).iter().skip(1).cloned().collect();
        for value in first.iter().chain(&more) {
            for token in value.as_bytes().split(|&b| b == b',') {
                let Ok(token) = std::str::from_utf8(token.trim_ascii()) else { continue };
                // The fixed hop-by-hop names go below (or stay, for an upgrade); a `&str` key is looked up
                // without building a HeaderName, case-insensitively, and an invalid one finds nothing.
                if !token.is_empty() && !names_hop_by_hop(token) {
                    headers.remove(token);
                }
            }
        }
    }
    let kept = if keep_upgrade { CONNECTION | UPGRADE } else { 0 };
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if found & (1 << i) & !kept != 0 {
            headers.remove(name);
        }
    }
    if found & PROXY_ANY != 0 {
        let proxy: Vec<HeaderName> = headers.keys().filter(|n| n.as_str().starts_with("proxy-")).cloned().collect();
        for name in proxy {
            headers.remove(name);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether a request asks to switch protocols (`Connection: upgrade` with an `Upgrade` header).
///
/// `Upgrade: h2c` never counts (its hop-by-hop headers are then stripped like any others): a tunnel to an
/// origin that accepted it would carry later requests past routing and header hygiene (h2c smuggling),
/// and RFC 9113 dropped that upgrade anyway. Clients speak h2c to edgesplit with prior knowledge.
pub(crate) fn wants_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers.get_all(header::UPGRADE);
    upgrade.iter().next().is_some()
        && !upgrade.iter().any(|v| has_token(v, b"h2c"))
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))))
}

/// Whether a comma-separated field value holds `token` (case-insensitively).
pub(crate) fn has_token(value: &HeaderValue, token: &[u8]) -> bool {
    value.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether the last transfer coding a `Transfer-Encoding` value lists is `chunked`.
pub(crate) fn last_coding_is_chunked(value: &HeaderValue) -> bool {
    value.as_bytes().rsplit(|&b| b == b',').next().is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Appends `value` to a comma-separated header, or sets it when absent.
pub(crate) fn append_list(headers: &mut HeaderMap, name: &HeaderName, value: &HeaderValue) {
    // One lookup either way.
    match headers.entry(name) {
        header::Entry::Vacant(slot) => {
            slot.insert(value.clone());
        }
        header::Entry::Occupied(mut slot) => {
            let existing = slot.get_mut();
            let mut joined = Vec::with_capacity(existing.len() + 2 + value.len());
            joined.extend_from_slice(existing.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(value.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                *existing = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn keeps_upgrade_for_tunnels() {
        let mut h = map(&[("connection", "Upgrade, keep-alive"), ("upgrade", "websocket"), ("keep-alive", "1")]);
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert!(h.get("keep-alive").is_none());
    }

    #[test]
    fn connection_tokens_in_any_case_and_lists_over_lines() {
        let mut h = map(&[
            ("connection", "Keep-Alive, X-One"),
            ("connection", " x-TWO ,close,,"),
            ("Keep-Alive", "timeout=5"),
            ("x-one", "1"),
            ("x-two", "2"),
            ("close", "reserved name"),
            ("proxy-authenticate", "Basic"),
            ("transfer-encoding", "chunked"),
            ("accept", "*/*"),
            ("x-three", "3"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["accept", "x-three"]);
    }

    #[test]
    fn a_connection_token_that_is_no_header_name_is_ignored() {
        let mut h = map(&[("connection", "bad name, x-gone, a@b"), ("x-gone", "1"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn field_names_are_what_from_bytes_makes() {
        let spelt = "Host Date Vary ETag Etag Accept Cookie Server Expires Referer Location Connection Set-Cookie \
                     User-Agent Content-Type Accept-Ranges Cache-Control Last-Modified Authorization Content-Length \
                     Accept-Encoding Accept-Language Content-Encoding Transfer-Encoding X-Custom x-custom CONTENT-TYPE";
        for name in spelt.split_whitespace() {
            for raw in [name.to_string(), name.to_ascii_lowercase()] {
                assert_eq!(
                    field_name(raw.as_bytes()).unwrap(),
                    HeaderName::from_bytes(raw.as_bytes()).unwrap(),
                    "{raw}"
                );
            }
        }
        assert!(field_name(b"bad name").is_err());
        assert!(field_name(b"").is_err());
    }

    #[test]
    fn bits_match_the_table() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_bit(name.as_str()), 1 << i, "{name}");
        }
        assert_eq!((hop_bit("connection"), hop_bit("upgrade")), (CONNECTION, UPGRADE));
        assert_eq!(hop_bit("proxy-authorization"), PROXY_ANY);
        assert_eq!(hop_bit("accept"), 0);
    }

    #[test]
    fn nothing_to_strip_leaves_map_alone() {
        let mut h = map(&[("accept", "*/*"), ("host", "a")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 2);
        assert!(!wants_upgrade(&h));
    }

    #[test]
    fn append_list_joins() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        append_list(&mut h, &X_FORWARDED_FOR, &HeaderValue::from_static("127.0.0.1"));
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.1");
        let mut h = HeaderMap::new();
        append_list(&mut h, &X_FORWARDED_FOR, &HeaderValue::from_static("127.0.0.1"));
        assert_eq!(h.get("x-forwarded-for").unwrap(), "127.0.0.1");
    }
}
