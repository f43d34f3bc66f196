//! edgesplit's own HTTP/1.1 server for the common request, and hyper's for everything else.
//!
//! A request that is HTTP/1.1, in origin form, carries no body (no `Content-Length`, no
//! `Transfer-Encoding`) and asks for nothing special (no `Expect`, `Upgrade` or `TE`, not `CONNECT`) is
//! parsed here with httparse, its field values sharing the read buffer, handed to [`Proxy::handle`], and
//! its response written back in one buffer. The first request that is anything else, a head that does not
//! parse, or one past the limits, hands the connection over to hyper's server with every byte read so far
//! replayed ([`Prefixed`]): hyper then frames bodies, answers 400/414/431, serves HTTP/1.0 and upgrades
//! exactly as it did before this module existed, so every hostile input meets hyper's rules.
//!
//! The response framing follows hyper's (`proto/h1/role.rs`, `Server::encode`): a `Content-Length`
//! field frames the body, else an exact size adds one, else `Transfer-Encoding: chunked`; `HEAD`, 204
//! and 304 carry no body; `Date` is added; a client's `Connection: close` is answered with one.
//!
//! Why (issue 17): hyper's dispatcher, its request parse into a map of its own, its head encoding and the
//! copies between them were about 10 % of the user-space instructions per request; a prototype without
//! them served 5 to 9 % more requests per core (`benches/load/research/README.md`).

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};

use crate::proxy::headers::{field_name, has_token, last_coding_is_chunked};
use crate::proxy::{Activity, ConnInfo, Proxy, ProxyBody};

/// hyper's limit on a request target (its `UriTooLong`, answered 414): longer ones go to hyper.
const MAX_URI_LEN: usize = (u16::MAX - 1) as usize;

/// The most fields a head parsed here may have; one with more goes to hyper, which applies
/// `limits.max_headers`.
pub const MAX_FIELDS: usize = 100;

/// What [`parse`] made of the bytes at the start of a buffer.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // made once per request and matched at once: a box would cost more
pub enum Parsed {
    /// Not a whole head yet (and within the size limit).
    Partial,
    /// A request this module serves; `close` if the client asked for the connection to close after it.
    Ours { req: Request<Incoming>, close: bool },
    /// Anything else: hyper's server takes the connection from here, these bytes included.
    Hyper,
}

/// Parses a request head at the start of `buf`, taking its bytes if it is [`Parsed::Ours`]. Never fails:
/// what this module does not serve, malformed heads included, is hyper's.
pub fn parse(buf: &mut BytesMut, max_head: usize, max_fields: usize) -> Parsed {
    // Where the target and each field lie in the head: httparse borrows the buffer, which is split off and
    // shared once the head is whole.
    let mut at = [[0u32; 4]; MAX_FIELDS];
    let (len, method, target, count) = {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, &mut slots);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() <= max_head => return Parsed::Partial,
            _ => return Parsed::Hyper,
        };
        if len > max_head || req.headers.len() > max_fields || req.version != Some(1) {
            return Parsed::Hyper;
        }
        let (Some(method), Some(path)) = (req.method, req.path) else { return Parsed::Hyper };
        let Ok(method) = Method::from_bytes(method.as_bytes()) else { return Parsed::Hyper };
        if method == Method::CONNECT || !path.starts_with('/') || path.len() > MAX_URI_LEN {
            return Parsed::Hyper;
        }
        let base = buf.as_ptr() as usize;
        for (slot, h) in at.iter_mut().zip(req.headers.iter()) {
            let name = h.name.as_ptr() as usize - base;
            let value = h.value.as_ptr() as usize - base;
            // Below `max_head`, at most 16 MiB, so they fit.
            *slot = [name as u32, (name + h.name.len()) as u32, value as u32, (value + h.value.len()) as u32];
        }
        let target = path.as_ptr() as usize - base;
        (len, method, [target, target + path.len()], req.headers.len())
    };
    let head = buf.split_to(len).freeze();
    match request(&head, method, target, &at[..count]) {
        Some((req, close)) => Parsed::Ours { req, close },
        None => {
            // hyper's after all: it gets the head back, whole, in front of what followed it.
            restore(buf, head);
            Parsed::Hyper
        }
    }
}

/// The request a whole head makes, its field values sharing the head's bytes, and whether it asks to
/// close; `None` if the request is hyper's (a body, an upgrade, an expectation, trailers).
fn request(head: &Bytes, method: Method, target: [usize; 2], fields: &[[u32; 4]]) -> Option<(Request<Incoming>, bool)> {
    let uri = Uri::from_maybe_shared(head.slice(target[0]..target[1])).ok()?;
    let mut close = false;
    let mut headers = HeaderMap::with_capacity(fields.len() + REQUEST_ROOM);
    for [n0, n1, v0, v1] in fields {
        let name = field_name(&head[*n0 as usize..*n1 as usize]).ok()?;
        // httparse checked the value: visible bytes, spaces and tabs.
        let value = HeaderValue::from_maybe_shared(head.slice(*v0 as usize..*v1 as usize)).ok()?;
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || name == header::UPGRADE
            || name == header::TE
        {
            return None;
        }
        if name == header::CONNECTION {
            if has_token(&value, b"upgrade") {
                return None;
            }
            close |= has_token(&value, b"close");
        }
        headers.append(name, value);
    }
    let mut req = Request::new(Incoming::empty());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Some((req, close))
}

/// Room in a request's map for what the proxy adds (`X-Forwarded-*`, `Via`, a decision) without a rehash.
const REQUEST_ROOM: usize = 6;

/// Puts a head split off `buf` back in front of what follows it.
fn restore(buf: &mut BytesMut, head: Bytes) {
    let mut whole = BytesMut::with_capacity(head.len() + buf.len());
    whole.extend_from_slice(&head);
    whole.extend_from_slice(buf);
    *buf = whole;
}

/// How a response's body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body bytes at all (`HEAD`, 204, 304).
    None,
    Length(u64),
    Chunked,
}

/// What [`encode_head`] wrote: how the body goes out, and whether the head says `Connection: close`
/// (asked for, or a field of the response's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    pub framing: Framing,
    pub closes: bool,
}

/// A response whose framing fields contradict each other or its body (hyper refuses to write it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unframeable;

/// What the response's body says of its length (hyper's `BodyLength`, with `Ended` for its `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// Already at its end (`is_end_stream`).
    Ended,
    Known(u64),
    Unknown,
}

/// Writes the status line and the fields of a response to a `HEAD` request or another, and says how its
/// body goes out, as hyper's server does. `close` adds `Connection: close` (unless present).
/// `Err` for a response hyper would refuse to write (bad or disagreeing `Content-Length` fields, or one
/// beside `Transfer-Encoding`).
pub fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    head_request: bool,
    body: BodyLen,
    close: bool,
) -> Result<Encoded, Unframeable> {
    let status = parts.status;
    let no_body = head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let length_allowed = status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED;
    let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>();
    if status == StatusCode::OK && reason.is_none() {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        match reason {
            Some(reason) => out.extend_from_slice(reason.as_bytes()),
            None => out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
    }
    let mut framing = None;
    let (mut wrote_date, mut wrote_close) = (false, false);
    for (name, value) in &parts.headers {
        if *name == header::CONTENT_LENGTH {
            let len = match (body, framing) {
                (_, Some(Framing::Chunked)) => return Err(Unframeable),
                // A body at its end: the field stays only on a response to `HEAD` (the length of what a
                // `GET` would get); otherwise `content-length: 0` is written below.
                (BodyLen::Ended, _) if !head_request => continue,
                (BodyLen::Ended, _) => 0,
                // hyper trusts a body that knows its length, and writes the first field as it is.
                (BodyLen::Known(_), Some(_)) => continue,
                (BodyLen::Known(len), None) => len,
                (BodyLen::Unknown, prev) => {
                    let Some(len) = content_length(value.as_bytes()) else { return Err(Unframeable) };
                    match prev {
                        Some(Framing::Length(prev)) if prev != len => return Err(Unframeable),
                        Some(_) => continue,
                        None => len,
                    }
                }
            };
            framing = Some(Framing::Length(len));
        } else if *name == header::TRANSFER_ENCODING {
            if matches!(framing, Some(Framing::Length(_))) {
                return Err(Unframeable);
            }
            if no_body {
                continue;
            }
            framing = Some(Framing::Chunked);
            out.extend_from_slice(b"transfer-encoding: ");
            out.extend_from_slice(value.as_bytes());
            if !last_coding_is_chunked(value) {
                out.extend_from_slice(b", chunked");
            }
            out.extend_from_slice(b"\r\n");
            continue;
        } else if *name == header::TRAILER && no_body {
            continue;
        } else if *name == header::DATE {
            wrote_date = true;
        } else if *name == header::CONNECTION {
            wrote_close |= has_token(value, b"close");
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let framing = match (framing, body) {
        (Some(f), _) => f,
        (None, BodyLen::Ended | BodyLen::Known(0)) => {
            if length_allowed && !head_request {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
            Framing::Length(0)
        }
        (None, BodyLen::Known(len)) => {
            if length_allowed {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Framing::Length(len)
        }
        (None, BodyLen::Unknown) if no_body => Framing::None,
        (None, BodyLen::Unknown) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Framing::Chunked
        }
    };
    if close && !wrote_close {
        out.extend_from_slice(b"connection: close\r\n");
        wrote_close = true;
    }
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Encoded { framing: if no_body { Framing::None } else { framing }, closes: wrote_close })
}

/// Room for the head [`encode_head`] writes, reserved by [`respond`] with the body's (`encode_head`
/// itself reserves nothing: the buffer is sized once): 64 bytes a field and 64 for the status line and
/// what it adds. An estimate, not a sum of the fields: walking a
/// `HeaderMap` to add up its lengths costs more than the growth it would save (callgrind).
fn head_room(parts: &http::response::Parts) -> usize {
    64 + parts.headers.len() * 64
}

/// The largest body whose length [`respond`] reserves room for beside the head: the common response
/// goes out in one buffer, allocated once.
const BODY_ROOM: u64 = 16 * 1024;

/// A `Content-Length` value: digits only, as hyper reads it.
fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

thread_local! {
    /// The `Date` value for the current second, formatted once per second per worker (as hyper does).
    static DATE: std::cell::RefCell<(u64, [u8; 29])> = const { std::cell::RefCell::new((0, [0; 29])) };
}

fn date(out: &mut Vec<u8>) {
    let now = std::time::SystemTime::now();
    let secs = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            let formatted = httpdate::fmt_http_date(now);
            if formatted.len() == text.len() {
                text.copy_from_slice(formatted.as_bytes());
                *at = secs;
            }
        }
        out.extend_from_slice(text);
    });
}

/// What the connection's own part ended with.
pub(super) enum Ended {
    /// Closed, or finished.
    Done,
    /// hyper's server takes the connection from here, with these bytes read but not yet served.
    Hyper(BytesMut),
}

/// Serves requests on `io` until the client closes, a request asks to close, `closing` is set (between
/// requests), or a request is hyper's ([`Ended::Hyper`]).
pub(super) async fn serve<I>(
    io: &mut I,
    info: &Arc<ConnInfo>,
    proxy: &Arc<Proxy>,
    max_head: usize,
    max_fields: usize,
    closing: &AtomicBool,
) -> Ended
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    // Empty (no allocation) while the connection is idle: each read lands on the stack first.
    let mut buf = BytesMut::new();
    loop {
        // The bytes of `buf` known to hold no line feed: a head is parsed again only once a read brought
        // one (every head ends with one), so a head trickled a byte at a time is not parsed over and over,
        // which would cost the square of its size.
        let mut scanned = 0;
        let (req, close) = loop {
            if buf[scanned..].contains(&b'\n') {
                match parse(&mut buf, max_head, max_fields) {
                    Parsed::Ours { req, close } => break (req, close),
                    Parsed::Hyper => return Ended::Hyper(buf),
                    Parsed::Partial => {}
                }
            }
            scanned = buf.len();
            if buf.len() > max_head {
                // Past the limit with no whole head: hyper's to refuse (431), as it would have.
                return Ended::Hyper(buf);
            }
            match read(io, &mut buf, closing).await {
                Some(Ok(n)) if n > 0 => {}
                // Closed, failed, or told to close while no request was under way.
                _ => return Ended::Done,
            }
        };
        let head_request = req.method() == Method::HEAD;
        // Boxed, as hyper's service does: inline, its few KB would size every idle connection's task.
        // The box is made first so that the future can be built in it, not built and then copied in.
        let Ok(resp) = Pin::from(Box::write(Box::new_uninit(), proxy.clone().handle(info.clone(), req, true))).await;
        let close = close || closing.load(Relaxed);
        match respond(io, resp, head_request, close, &info.activity).await {
            Ok(true) if !close => {}
            _ => {
                let _ = io.shutdown().await;
                return Ended::Done;
            }
        }
        if buf.is_empty() {
            // Let the buffer go while idle (the request's head may still hold it, shared).
            buf = BytesMut::new();
        }
    }
}

/// One read into `buf`, through a buffer on the stack (so an idle connection holds none). `None` if
/// `closing` is set while nothing of a request has come.
async fn read<I: AsyncRead + Unpin>(io: &mut I, buf: &mut BytesMut, closing: &AtomicBool) -> Option<io::Result<usize>> {
    poll_fn(|cx| {
        if buf.is_empty() && closing.load(Relaxed) {
            return Poll::Ready(None);
        }
        let mut stack = [MaybeUninit::<u8>::uninit(); 4096];
        let mut rb = ReadBuf::uninit(&mut stack);
        match Pin::new(&mut *io).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                buf.extend_from_slice(rb.filled());
                Poll::Ready(Some(Ok(rb.filled().len())))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Writes a response: its head with the body's frames that are ready, then each frame as it comes.
/// `Ok(true)` if the connection may carry another request.
async fn respond<I: AsyncWrite + Unpin>(
    io: &mut I,
    resp: Response<ProxyBody>,
    head_request: bool,
    close: bool,
    activity: &Activity,
) -> io::Result<bool> {
    let (parts, mut body) = resp.into_parts();
    let len = match body.size_hint().exact() {
        _ if body.is_end_stream() => BodyLen::Ended,
        Some(len) => BodyLen::Known(len),
        None => BodyLen::Unknown,
    };
    let body_room = match len {
        BodyLen::Known(n) if n <= BODY_ROOM && !head_request => n as usize,
        _ => 0,
    };
    let mut out = Vec::with_capacity(head_room(&parts) + body_room);
    let Ok(Encoded { framing, closes }) = encode_head(&mut out, &parts, head_request, len, close) else {
        // hyper answers 500 for a response it cannot write; so does this.
        tracing::warn!("A response with contradictory framing fields was replaced by a 500");
        drop(body);
        let refusal = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        write_all(io, refusal, activity).await?;
        return Ok(false);
    };
    let keep = !closes;
    drop(parts);
    if framing == Framing::None {
        drop(body);
        write_all(io, &out, activity).await?;
        return Ok(keep);
    }
    let mut sent = 0u64;
    loop {
        // What is ready goes out with what is already waiting; a frame that is not yet there first lets
        // the waiting bytes go (a streamed body must not wait for a buffer to fill).
        let frame = match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !out.is_empty() {
                    write_all(io, &out, activity).await?;
                    out.clear();
                }
                poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        match frame {
            None => break,
            Some(Err(e)) => return Err(io::Error::other(e.to_string())),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                if data.is_empty() {
                    continue;
                }
                sent += data.len() as u64;
                match framing {
                    Framing::Length(len) if sent > len => return Err(io::Error::other("body longer than its length")),
                    Framing::Chunked => {
                        let mut hex = [0u8; 16];
                        out.extend_from_slice(hex_len(data.len(), &mut hex));
                        out.extend_from_slice(b"\r\n");
                        out.extend_from_slice(&data);
                        out.extend_from_slice(b"\r\n");
                    }
                    _ => out.extend_from_slice(&data),
                }
                if out.len() >= 64 * 1024 {
                    write_all(io, &out, activity).await?;
                    out.clear();
                }
            }
        }
    }
    // The body goes before its last bytes do, as in hyper's server: dropping it records the response
    // (metrics, access log, the origin connection back in the pool), which a client that has read the
    // response must then find done.
    drop(body);
    match framing {
        Framing::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        Framing::Length(len) if sent != len => return Err(io::Error::other("body shorter than its length")),
        _ => {}
    }
    if !out.is_empty() {
        write_all(io, &out, activity).await?;
    }
    Ok(keep)
}

/// `n` in lowercase hex, into `buf`.
fn hex_len(n: usize, buf: &mut [u8; 16]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Writes `bytes`, counted by the watchdog as a response waiting for the client until they are taken:
/// a client that stops reading is cut at `timeouts.client_send`, even while the body has nothing new.
async fn write_all<I: AsyncWrite + Unpin>(io: &mut I, bytes: &[u8], activity: &Activity) -> io::Result<()> {
    activity.wait_for_client();
    io.write_all(bytes).await?;
    io.flush().await?;
    activity.client_pulled();
    Ok(())
}

/// A connection handed to hyper: the bytes already read come first, then the socket.
pub(super) struct Prefixed<I> {
    pub prefix: BytesMut,
    pub io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                self.prefix = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderName;

    fn ours(head: &str) -> (Request<Incoming>, bool, BytesMut) {
        let mut buf = BytesMut::from(head);
        match parse(&mut buf, 64 * 1024, 100) {
            Parsed::Ours { req, close } => (req, close, buf),
            other => panic!("{head:?}: {other:?}"),
        }
    }

    fn hyper_s(head: &str) {
        let mut buf = BytesMut::from(head);
        assert!(matches!(parse(&mut buf, 64 * 1024, 100), Parsed::Hyper), "{head:?} should be hyper's");
        assert_eq!(&buf[..], head.as_bytes(), "hyper gets every byte back");
    }

    #[test]
    fn a_bodiless_request_is_ours_and_leaves_what_follows() {
        let (req, close, rest) = ours("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: b=2\r\n\r\nGET /next");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri(), "/a?b=1");
        assert_eq!(req.headers()["host"], "x");
        assert_eq!(req.headers().get_all(header::COOKIE).iter().count(), 2);
        assert!(!close);
        assert_eq!(&rest[..], b"GET /next");
        let (_, close, _) = ours("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(close);
    }

    #[test]
    fn a_partial_head_waits_until_it_passes_the_limit() {
        let mut buf = BytesMut::from("GET / HTTP/1.1\r\nHost: x\r\n");
        assert!(matches!(parse(&mut buf, 64 * 1024, 100), Parsed::Partial));
        let mut buf = BytesMut::from(&[b'a'; 9000][..]);
        buf[..4].copy_from_slice(b"GET ");
        assert!(matches!(parse(&mut buf, 8192, 100), Parsed::Hyper));
    }

    #[test]
    fn everything_else_is_hyper_s_with_its_bytes() {
        hyper_s("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na");
        hyper_s("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        hyper_s("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        hyper_s("GET / HTTP/1.0\r\nHost: x\r\n\r\n");
        hyper_s("GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n");
        hyper_s("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
        hyper_s("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n");
        hyper_s("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        hyper_s("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n");
        hyper_s("GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n");
        hyper_s("GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n");
        hyper_s("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n");
        hyper_s("G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n");
        hyper_s("GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n");
        let many: String = (0..101).map(|i| format!("x-{i}: 1\r\n")).collect();
        hyper_s(&format!("GET / HTTP/1.1\r\n{many}\r\n"));
    }

    fn head(status: u16, fields: &[(&str, &str)], head_request: bool, body: BodyLen, close: bool) -> (String, Framing) {
        let mut resp = Response::new(());
        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
        for (k, v) in fields {
            resp.headers_mut().append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let (parts, ()) = resp.into_parts();
        let mut out = Vec::new();
        let Encoded { framing, closes } = encode_head(&mut out, &parts, head_request, body, close).unwrap();
        assert_eq!(
            closes,
            close || fields.iter().any(|(k, v)| k.eq_ignore_ascii_case("connection") && v.contains("close"))
        );
        let text = String::from_utf8(out).unwrap();
        // The date changes; the rest must not.
        let text = text.lines().filter(|l| !l.starts_with("date: ")).collect::<Vec<_>>().join("\n");
        (text, framing)
    }

    #[test]
    fn responses_are_framed_as_hyper_frames_them() {
        assert_eq!(
            head(200, &[("x", "1")], false, BodyLen::Known(5), false),
            ("HTTP/1.1 200 OK\nx: 1\ncontent-length: 5\n".into(), Framing::Length(5))
        );
        assert_eq!(head(200, &[("content-length", "5")], false, BodyLen::Known(5), false).1, Framing::Length(5));
        assert_eq!(
            head(200, &[], false, BodyLen::Unknown, false),
            ("HTTP/1.1 200 OK\ntransfer-encoding: chunked\n".into(), Framing::Chunked)
        );
        assert_eq!(
            head(200, &[], false, BodyLen::Ended, false),
            ("HTTP/1.1 200 OK\ncontent-length: 0\n".into(), Framing::Length(0))
        );
        // HEAD: the origin's length is kept, no body; none is made up.
        assert_eq!(
            head(200, &[("content-length", "42")], true, BodyLen::Ended, false),
            ("HTTP/1.1 200 OK\ncontent-length: 42\n".into(), Framing::None)
        );
        assert_eq!(head(200, &[], true, BodyLen::Ended, false), ("HTTP/1.1 200 OK\n".into(), Framing::None));
        // A body at its end drops a length field that says otherwise (as hyper does) but for `HEAD`.
        assert_eq!(
            head(200, &[("content-length", "5")], false, BodyLen::Ended, false).0,
            "HTTP/1.1 200 OK\ncontent-length: 0\n"
        );
        assert_eq!(head(204, &[], false, BodyLen::Ended, false), ("HTTP/1.1 204 No Content\n".into(), Framing::None));
        assert_eq!(
            head(304, &[("etag", "\"a\"")], false, BodyLen::Ended, false),
            ("HTTP/1.1 304 Not Modified\netag: \"a\"\n".into(), Framing::None)
        );
        assert_eq!(
            head(200, &[("transfer-encoding", "gzip")], false, BodyLen::Unknown, false),
            ("HTTP/1.1 200 OK\ntransfer-encoding: gzip, chunked\n".into(), Framing::Chunked)
        );
        assert_eq!(
            head(200, &[], false, BodyLen::Known(2), true).0,
            "HTTP/1.1 200 OK\ncontent-length: 2\nconnection: close\n"
        );
        assert_eq!(
            head(200, &[("connection", "close")], false, BodyLen::Known(2), true).0,
            "HTTP/1.1 200 OK\nconnection: close\ncontent-length: 2\n"
        );
        // A present Date is not doubled.
        let mut resp = Response::new(());
        resp.headers_mut().insert(header::DATE, HeaderValue::from_static("x"));
        let mut out = Vec::new();
        encode_head(&mut out, &resp.into_parts().0, false, BodyLen::Ended, false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().matches("date: ").count(), 1);
    }

    #[test]
    fn a_custom_reason_phrase_is_written_back() {
        let mut resp = Response::new(());
        *resp.status_mut() = StatusCode::NOT_FOUND;
        resp.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(b"Nope"));
        let mut out = Vec::new();
        encode_head(&mut out, &resp.into_parts().0, false, BodyLen::Ended, false).unwrap();
        assert!(out.starts_with(b"HTTP/1.1 404 Nope\r\n"));
    }

    #[test]
    fn contradictory_lengths_are_refused() {
        let mut resp = Response::new(());
        resp.headers_mut().append(header::CONTENT_LENGTH, HeaderValue::from_static("1"));
        resp.headers_mut().append(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        assert!(encode_head(&mut Vec::new(), &resp.into_parts().0, false, BodyLen::Unknown, false).is_err());
        let mut resp = Response::new(());
        resp.headers_mut().append(header::CONTENT_LENGTH, HeaderValue::from_static("x"));
        assert!(encode_head(&mut Vec::new(), &resp.into_parts().0, false, BodyLen::Unknown, false).is_err());
    }

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        let mut b = [0u8; 16];
        assert_eq!(hex_len(0, &mut b), b"0");
        assert_eq!(hex_len(255, &mut b), b"ff");
        assert_eq!(hex_len(4096, &mut b), b"1000");
    }
}
