//! Fuzz target `origin_response`: what an origin sends back to edgesplit's own HTTP/1.1 client
//! (`edgesplit::proxy::origin`), the one input path there a hostile origin controls.
//!
//! Invariants, checked on every input:
//! 1. `parse_head` never panics, and a head that arrives in two pieces (split anywhere) parses to the
//!    same result as the head whole: the same status, version, fields, framing and keep-alive, or an
//!    error in both cases.
//! 2. A parsed head is consistent: a body read to the close never keeps its connection alive; HEAD, 204
//!    and 304 have no body; `Framing::Length(n)` is what every `Content-Length` value says.
//! 3. The body decoder never panics, never yields an empty data frame, never takes more than a sized
//!    body's length, and yields the same data, trailers, end and error state whether the body's bytes
//!    come whole or in pieces of any size.
//! 4. Any bytes, encoded as chunks of sizes the input chooses (with an extension and a trailer), decode
//!    back to themselves, and the bytes after the body stay in the buffer.
//!
//! Input: byte 0 picks where the head is split and whether the request was HEAD, byte 1 the piece size
//! for the body; the rest is the origin's response.
#![no_main]

use bytes::BytesMut;
use edgesplit::proxy::origin::{Decoder, Framing, Head, Step, parse_head};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Some(&b0), Some(&b1)) = (data.first(), data.get(1)) else { return };
    let wire = &data[2..];
    let head_request = b0 & 0x80 != 0;
    let split = (usize::from(b0 & 0x7f) * wire.len()) / 127;

    // (1) Whole, then in two pieces.
    let mut whole = BytesMut::from(wire);
    let parsed = parse_head(&mut whole, head_request);
    let mut pieces = BytesMut::from(&wire[..split]);
    let mut in_two = parse_head(&mut pieces, head_request);
    pieces.extend_from_slice(&wire[split..]);
    if matches!(in_two, Ok(None)) {
        in_two = parse_head(&mut pieces, head_request);
    }
    match (&parsed, &in_two) {
        (Ok(Some(a)), Ok(Some(b))) => {
            assert_eq!(summary(a), summary(b), "the head split at {split}");
            assert_eq!(whole, pieces, "the rest of the buffer");
        }
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        (a, b) => panic!("whole: {a:?}; in two pieces at {split}: {b:?}"),
    }
    let Ok(Some(head)) = parsed else {
        chunked_round_trip(wire, b1);
        return;
    };

    // (2) Consistency.
    if head.framing == Framing::Close {
        assert!(!head.keep_alive);
    }
    if head_request || matches!(head.parts.status.as_u16(), 204 | 304) {
        assert_eq!(head.framing, Framing::Empty);
    }
    if let Framing::Length(n) = head.framing {
        for v in head.parts.headers.get_all(http::header::CONTENT_LENGTH) {
            for part in v.to_str().unwrap().split(',') {
                assert_eq!(part.trim().parse::<u64>().ok(), Some(n));
            }
        }
    }

    // (3) The body, whole and in pieces.
    let piece = usize::from(b1 % 16) + 1;
    let a = decode(head.framing, &whole, whole.len().max(1));
    let b = decode(head.framing, &whole, piece);
    match (&a, &b) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "pieces of {piece}"),
        (Err(_), Err(_)) => {}
        _ => panic!("whole: {a:?}; in pieces of {piece}: {b:?}"),
    }
    if let (Framing::Length(n), Ok((body, ..))) = (head.framing, &a) {
        assert!(body.len() as u64 <= n);
    }
    chunked_round_trip(wire, b1);
});

type Decoded = (Vec<u8>, Option<HeaderMap>, bool);

fn summary(h: &Head) -> String {
    format!("{:?} {:?} {:?} {:?} {}", h.parts.status, h.parts.version, h.parts.headers, h.framing, h.keep_alive)
}

/// Runs a decoder over `wire` fed `piece` bytes at a time: the data, the trailers, whether it ended.
fn decode(framing: Framing, wire: &[u8], piece: usize) -> Result<Decoded, String> {
    let mut decoder = Decoder::new(framing);
    let (mut buf, mut data, mut trailers, mut fed) = (BytesMut::new(), Vec::new(), None, 0);
    loop {
        match decoder.step(&mut buf).map_err(|e| e.to_string())? {
            Step::Data(d) => {
                assert!(!d.is_empty(), "an empty data frame");
                data.extend_from_slice(&d);
            }
            Step::Trailers(t) => trailers = Some(t),
            Step::End => return Ok((data, trailers, true)),
            Step::More if fed == wire.len() => return Ok((data, trailers, false)),
            Step::More => {
                let next = (fed + piece).min(wire.len());
                buf.extend_from_slice(&wire[fed..next]);
                fed = next;
            }
        }
    }
}

/// (4) `payload` as chunks of sizes drawn from `seed`, then decoded.
fn chunked_round_trip(payload: &[u8], seed: u8) {
    let mut wire = Vec::new();
    let mut rest = payload;
    let mut size = usize::from(seed % 31) + 1;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        wire.extend_from_slice(format!("{:X};n=v\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
        rest = tail;
        size = size * 7 % 31 + 1;
    }
    wire.extend_from_slice(b"0\r\nx-t: 1\r\n\r\nAFTER");
    let mut decoder = Decoder::new(Framing::Chunked);
    let (mut buf, mut data) = (BytesMut::from(&wire[..]), Vec::new());
    loop {
        match decoder.step(&mut buf) {
            Ok(Step::Data(d)) => data.extend_from_slice(&d),
            Ok(Step::Trailers(t)) => assert_eq!(t["x-t"], "1"),
            Ok(Step::End) => break,
            other => panic!("{other:?} in the chunked encoding of {payload:?}"),
        }
    }
    assert_eq!(data, payload);
    assert_eq!(&buf[..], b"AFTER");
}
