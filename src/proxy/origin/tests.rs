//! The origin client's codec: response heads and their framing (hyper's client rules), bodies through
//! the decoder, fed whole and a byte at a time.

use super::*;

fn head(bytes: &[u8], head_request: bool) -> Result<Option<Head>, HeadError> {
    parse_head(&mut BytesMut::from(bytes), head_request)
}

fn framing(bytes: &str) -> (Framing, bool) {
    let h = head(bytes.as_bytes(), false).unwrap().unwrap();
    (h.framing, h.keep_alive)
}

#[test]
fn heads_are_parsed_with_their_fields_and_the_rest_of_the_buffer_stays() {
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello"[..]);
    let h = parse_head(&mut buf, false).unwrap().unwrap();
    assert_eq!(h.parts.status, StatusCode::OK);
    assert_eq!(h.parts.version, Version::HTTP_11);
    assert_eq!(h.parts.headers.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
    assert!(h.parts.extensions.get::<hyper::ext::ReasonPhrase>().is_none());
    assert_eq!((h.framing, h.keep_alive), (Framing::Length(5), true));
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn a_partial_head_is_none_and_leaves_the_buffer_alone() {
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Le"[..]);
    assert!(parse_head(&mut buf, false).unwrap().is_none());
    assert_eq!(buf.len(), 27);
}

#[test]
fn informational_heads_are_skipped() {
    let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"[..]);
    assert!(parse_head(&mut buf, false).unwrap().is_none());
    assert!(buf.is_empty(), "both 1xx heads consumed");
    buf.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(parse_head(&mut buf, false).unwrap().unwrap().parts.status, StatusCode::NO_CONTENT);
}

#[test]
fn a_reason_phrase_of_its_own_is_kept() {
    let h = head(b"HTTP/1.1 200 Fine Thanks\r\ncontent-length: 0\r\n\r\n", false).unwrap().unwrap();
    assert_eq!(h.parts.extensions.get::<hyper::ext::ReasonPhrase>().unwrap().as_bytes(), b"Fine Thanks");
}

#[test]
fn framing_follows_hypers_client_rules() {
    let cases: &[(&str, (Framing, bool))] = &[
        ("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n", (Framing::Length(12), true)),
        ("HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\ncontent-length: 7\r\n\r\n", (Framing::Length(7), true)),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", (Framing::Chunked, true)),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n", (Framing::Chunked, true)),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n", (Framing::Close, false)),
        ("HTTP/1.1 200 OK\r\n\r\n", (Framing::Close, false)),
        ("HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n", (Framing::Empty, true)),
        ("HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n", (Framing::Empty, true)),
        ("HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\n", (Framing::Length(3), false)),
        (
            "HTTP/1.1 200 OK\r\nconnection: close\r\nconnection: keep-alive\r\ncontent-length: 3\r\n\r\n",
            (Framing::Length(3), false),
        ),
        ("HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\n", (Framing::Length(3), false)),
        ("HTTP/1.0 200 OK\r\ncontent-length: 3\r\nConnection: Keep-Alive\r\n\r\n", (Framing::Length(3), true)),
        // Both: chunked wins, and the connection is not reused.
        ("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n", (Framing::Chunked, false)),
    ];
    for (text, want) in cases {
        assert_eq!(framing(text), *want, "{text:?}");
    }
    let h =
        head(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n", false).unwrap().unwrap();
    assert!(!h.parts.headers.contains_key(header::CONTENT_LENGTH), "a length that is not the body's goes");
    let h = head(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n", true).unwrap().unwrap();
    assert_eq!((h.framing, h.parts.headers["content-length"].as_bytes()), (Framing::Empty, &b"1000"[..]));
}

#[test]
fn a_connection_line_naming_only_keep_alive_or_close_is_not_kept_one_naming_a_header_is() {
    let h = head(
        b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nconnection: close, keep-alive\r\ncontent-length: 0\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert!(!h.parts.headers.contains_key(header::CONNECTION));
    assert!(!h.keep_alive, "the close still counts");
    // The proxy strips what it names (and the line itself) before the response goes on.
    let h =
        head(b"HTTP/1.1 200 OK\r\nconnection: keep-alive, x-secret\r\nx-secret: 1\r\ncontent-length: 0\r\n\r\n", false)
            .unwrap()
            .unwrap();
    assert_eq!(h.parts.headers["connection"], "keep-alive, x-secret");
    assert!(h.keep_alive);
}

#[test]
fn malformed_heads_are_errors() {
    let cases: &[(&[u8], HeadError)] = &[
        (b"garbage\r\n\r\n", HeadError::Syntax(httparse::Error::Version)),
        (b"HTTP/1.1 abc OK\r\n\r\n", HeadError::Syntax(httparse::Error::Status)),
        (b"HTTP/1.1 099 Low\r\n\r\n", HeadError::Status),
        (b"HTTP/1.1 200 OK\r\ncontent-length: abc\r\n\r\n", HeadError::ContentLength),
        (b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n", HeadError::ContentLength),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n", HeadError::ContentLength),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n", HeadError::ContentLength),
        (b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", HeadError::TransferEncodingOnHttp10),
        (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n", HeadError::UnexpectedSwitch),
        (b"HTTP/1.1 200 OK\r\nbad header: x\r\n\r\n", HeadError::Syntax(httparse::Error::HeaderName)),
        (b"HTTP/1.1 200 OK\r\nfolded: a\r\n b\r\n\r\n", HeadError::Syntax(httparse::Error::HeaderName)),
    ];
    for (bytes, want) in cases {
        assert_eq!(head(bytes, false).unwrap_err(), *want, "{:?}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn the_head_limits_are_hypers() {
    let mut many = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..MAX_HEADERS {
        many.push_str(&format!("x-{i}: v\r\n"));
    }
    assert!(head(format!("{many}\r\n").as_bytes(), false).unwrap().is_some(), "{MAX_HEADERS} fields pass");
    many.push_str("x-last: v\r\n\r\n");
    assert_eq!(head(many.as_bytes(), false).unwrap_err(), HeadError::Syntax(httparse::Error::TooManyHeaders));
    let big = format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(head(big.as_bytes(), false).unwrap_err(), HeadError::TooLarge, "partial and too large");
    assert_eq!(head(format!("{big}\r\n").as_bytes(), false).unwrap_err(), HeadError::TooLarge, "whole and too large");
}

#[test]
fn request_heads_are_written_as_hyper_writes_them() {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("example.test"));
    headers.append("x-d", HeaderValue::from_static("1"));
    headers.append("x-d", HeaderValue::from_static("2"));
    headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    let mut out = b"left over".to_vec();
    out.clear();
    encode_head(&mut out, &Method::GET, "/a?b=c", &headers);
    assert_eq!(out, b"GET /a?b=c HTTP/1.1\r\nhost: example.test\r\nx-d: 1\r\nx-d: 2\r\n\r\n");
}

/// Runs `decoder` over `wire` fed in pieces of `step` bytes: the data, the trailers, and whether it ended.
fn decode(
    framing: Framing,
    wire: &[u8],
    step: usize,
) -> Result<(Vec<u8>, Option<HeaderMap>, bool, BytesMut), BodyError> {
    let mut decoder = Decoder::new(framing);
    let (mut buf, mut data, mut trailers) = (BytesMut::new(), Vec::new(), None);
    let mut fed = 0;
    loop {
        match decoder.step(&mut buf)? {
            Step::Data(d) => {
                assert!(!d.is_empty(), "no empty data frames");
                data.extend_from_slice(&d);
            }
            Step::Trailers(t) => trailers = Some(t),
            Step::End => return Ok((data, trailers, true, buf)),
            Step::More if fed == wire.len() => return Ok((data, trailers, false, buf)),
            Step::More => {
                let next = (fed + step).min(wire.len());
                buf.extend_from_slice(&wire[fed..next]);
                fed = next;
            }
        }
    }
}

#[test]
fn chunked_bodies_decode_whole_and_byte_by_byte() {
    let wire = b"5;ext=1\r\nhello\r\nA \r\n, world!!!\r\n0\r\nx-sum: abc\r\nx-n: 1\r\n\r\nNEXT";
    for step in [1, 2, 3, 7, wire.len()] {
        let (data, trailers, ended, rest) = decode(Framing::Chunked, wire, step).unwrap();
        assert_eq!(data, b"hello, world!!!", "step {step}");
        let trailers = trailers.unwrap();
        assert_eq!((trailers["x-sum"].as_bytes(), trailers["x-n"].as_bytes()), (&b"abc"[..], &b"1"[..]));
        assert!(ended, "step {step}");
        let _ = rest; // what follows the body stays in the buffer, read no further than needed
    }
    let (_, _, _, rest) = decode(Framing::Chunked, wire, wire.len()).unwrap();
    assert_eq!(&rest[..], b"NEXT");
    let (data, trailers, ended, _) = decode(Framing::Chunked, b"3\r\nabc\r\n0\r\n\r\n", 1).unwrap();
    assert_eq!((data, trailers.is_none(), ended), (b"abc".to_vec(), true, true));
}

#[test]
fn malformed_chunked_bodies_are_errors() {
    let cases: &[(&[u8], BodyError)] = &[
        (b"zz\r\n", BodyError::ChunkSize),
        (b"\r\n", BodyError::ChunkSize),
        (b";ext\r\n", BodyError::ChunkSize),
        (b"fffffffffffffffff\r\n", BodyError::ChunkSize),
        (b"3;a\nb\r\nabc\r\n", BodyError::ChunkSize),
        (b"3\r\nabcXY", BodyError::ChunkEnd),
        (b"0\r\nnot a field\r\n\r\n", BodyError::Trailers),
    ];
    for (wire, want) in cases {
        for step in [1, wire.len()] {
            assert_eq!(decode(Framing::Chunked, wire, step).unwrap_err(), *want, "{:?}", String::from_utf8_lossy(wire));
        }
    }
    let long = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
    assert_eq!(decode(Framing::Chunked, long.as_bytes(), long.len()).unwrap_err(), BodyError::ChunkLineTooLong);
    assert_eq!(
        decode(Framing::Chunked, &long.as_bytes()[..long.len() - 2], 4096).unwrap_err(),
        BodyError::ChunkLineTooLong
    );
}

#[test]
fn sized_and_close_delimited_bodies() {
    let (data, _, ended, rest) = decode(Framing::Length(5), b"helloEXTRA", 3).unwrap();
    assert_eq!((data, ended), (b"hello".to_vec(), true));
    assert!(b"EXTRA".starts_with(&rest), "no more than the length is taken: {rest:?}");
    let (data, _, ended, _) = decode(Framing::Length(5), b"hel", 1).unwrap();
    assert_eq!((data, ended), (b"hel".to_vec(), false));
    let (data, _, ended, _) = decode(Framing::Close, b"all of it", 4).unwrap();
    assert_eq!((data, ended), (b"all of it".to_vec(), false), "ends only at the close");
    assert!(decode(Framing::Empty, b"ignored", 7).unwrap().2);
}

#[test]
fn a_close_ends_only_a_close_delimited_body() {
    for (framing, ok) in
        [(Framing::Close, true), (Framing::Length(3), false), (Framing::Chunked, false), (Framing::Empty, true)]
    {
        assert_eq!(Decoder::new(framing).at_close().is_ok(), ok, "{framing:?}");
    }
    assert_eq!(Decoder::new(Framing::Length(3)).size_hint().exact(), Some(3));
    assert_eq!(Decoder::new(Framing::Chunked).size_hint().exact(), None);
}
