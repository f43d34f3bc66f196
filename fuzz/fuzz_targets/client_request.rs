//! Fuzz target `client_request`: what a client sends edgesplit's own HTTP/1.1 server
//! (`edgesplit::server::h1`), which decides for each request head whether to serve it or to hand the
//! connection to hyper's server, and the response heads it writes.
//!
//! Invariants, checked on every input:
//! 1. `parse` never panics, and a head that arrives in two pieces (split anywhere) ends the same as the
//!    head whole: the same request (method, target, fields, `close`) and the same bytes left after it, or
//!    hyper's in both cases.
//! 2. A head that is hyper's leaves the buffer exactly as it was: hyper gets every byte.
//! 3. A request it serves is HTTP/1.1 in origin form, not `CONNECT`, with no field that frames a body or
//!    asks for more (`Content-Length`, `Transfer-Encoding`, `Expect`, `Upgrade`, `TE`), and the buffer
//!    keeps exactly the bytes after its head.
//! 4. `encode_head` never panics, and what it writes for a response carrying the request's fields is one
//!    whole, valid HTTP/1.1 response head (httparse reads it back, to its last byte), and it says the
//!    connection closes exactly when that head has a `Connection: close` field.
//!
//! Input: byte 0 picks where the head is split; the rest is the client's bytes.
#![no_main]

use bytes::BytesMut;
use edgesplit::server::h1::{BodyLen, Parsed, encode_head, parse};
use http::header;
use libfuzzer_sys::fuzz_target;

const MAX_HEAD: usize = 8192;

fuzz_target!(|data: &[u8]| {
    let Some(&b0) = data.first() else { return };
    let wire = &data[1..];
    let split = (usize::from(b0) * wire.len()) / 255;

    // (1) and (2): whole, then in two pieces.
    let mut whole = BytesMut::from(wire);
    let parsed = parse(&mut whole, MAX_HEAD, 100);
    if matches!(parsed, Parsed::Hyper | Parsed::Partial) {
        assert_eq!(&whole[..], wire, "hyper's head lost bytes");
    }
    let mut pieces = BytesMut::from(&wire[..split]);
    let mut in_two = parse(&mut pieces, MAX_HEAD, 100);
    pieces.extend_from_slice(&wire[split..]);
    if matches!(in_two, Parsed::Partial) {
        in_two = parse(&mut pieces, MAX_HEAD, 100);
    }
    match (&parsed, &in_two) {
        (Parsed::Ours { req: a, close: ca }, Parsed::Ours { req: b, close: cb }) => {
            assert_eq!((a.method(), a.uri(), a.headers(), ca), (b.method(), b.uri(), b.headers(), cb));
            assert_eq!(whole, pieces, "the bytes after the head");
        }
        // A head cut short can be hyper's for its first piece alone (past the size limit), or wait for more.
        (Parsed::Hyper, Parsed::Hyper) | (Parsed::Partial, Parsed::Partial) => {}
        (Parsed::Hyper, Parsed::Partial) | (Parsed::Partial, Parsed::Hyper) => {}
        (a, b) => panic!("whole: {a:?}; in two pieces at {split}: {b:?}"),
    }

    // (3)
    let Parsed::Ours { req, close } = parsed else { return };
    assert_eq!(req.version(), http::Version::HTTP_11);
    assert_ne!(req.method(), http::Method::CONNECT);
    assert!(req.uri().path().starts_with('/') && req.uri().authority().is_none());
    for name in [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::EXPECT, header::UPGRADE, header::TE] {
        assert!(!req.headers().contains_key(&name), "{name} on a request served without hyper");
    }
    assert!(wire.ends_with(&whole), "the bytes after the head");

    // (4): a response carrying the request's fields (bad framing fields included), every framing case.
    let (parts, ()) = {
        let mut resp = http::Response::new(());
        *resp.headers_mut() = req.headers().clone();
        *resp.status_mut() = http::StatusCode::from_u16(100 + u16::from(b0) % 500).unwrap_or_default();
        resp.into_parts()
    };
    for body in [BodyLen::Ended, BodyLen::Known(u64::from(b0)), BodyLen::Unknown] {
        for head_request in [false, true] {
            let mut out = Vec::new();
            let Ok(encoded) = encode_head(&mut out, &parts, head_request, body, close) else { continue };
            let mut fields = vec![httparse::EMPTY_HEADER; req.headers().len() + 8];
            let mut resp = httparse::Response::new(&mut fields);
            match resp.parse(&out) {
                Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len(), "{:?}", String::from_utf8_lossy(&out)),
                other => panic!("{other:?}: {:?}", String::from_utf8_lossy(&out)),
            }
            // The connection is kept exactly when the written head does not say `close`.
            let says_close = resp.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("connection")
                    && h.value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            });
            assert_eq!(encoded.closes, says_close, "{:?}", String::from_utf8_lossy(&out));
        }
    }
});
