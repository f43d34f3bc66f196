//! Header hygiene in one pass each way: hop-by-hop headers out, forwarding headers in.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop by RFC 9110 7.6.1, plus the de facto `Proxy-*` family and `Keep-Alive`.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    let s = name.as_str();
    matches!(s, "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade")
        || s.starts_with("proxy-")
}

/// Removes hop-by-hop headers and the headers `Connection` names. With `keep_upgrade`, `Upgrade` and
/// `Connection: upgrade` stay (a tunnelled WebSocket handshake). The common case, a request with none of
/// them, costs one scan of the names and no map writes.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let mut doomed: Vec<HeaderName> = headers.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',') {
            if let Ok(name) = HeaderName::from_bytes(token.trim().as_bytes()) {
                doomed.push(name);
            }
        }
    }
    for name in doomed {
        if keep_upgrade && (name == header::UPGRADE || name == header::CONNECTION) {
            continue;
        }
        headers.remove(&name);
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
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers.get_all(header::UPGRADE);
    upgrade.iter().next().is_some()
        && !upgrade
            .iter()
            .any(|v| v.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"h2c")))
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))))
}

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Appends `value` to a comma-separated header, or sets it when absent.
pub fn append_list(headers: &mut HeaderMap, name: &HeaderName, value: &HeaderValue) {
    match headers.get_mut(name) {
        None => {
            headers.insert(name.clone(), value.clone());
        }
        Some(existing) => {
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
