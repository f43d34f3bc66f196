//! edgesplit's own HTTP/1.1 client towards origins, for the common exchange: a request with no body on
//! a pooled connection. It runs inside the request's future: the head goes out in one write, the
//! response head is parsed with `httparse` into `http` parts that share the read buffer, and the body is
//! read from the socket as the client takes it. No connection task, no channel, no second task's wake-up
//! (issue 17: hyper's origin connection task cost 13.4k instructions per request). Requests with a body
//! and upgrades stay on hyper's client, which sends an upload while it reads an early answer.
//!
//! The framing rules are hyper's client's (RFC 9112 6.3), so an origin that worked through hyper works
//! here: 1xx heads are skipped; HEAD, 204 and 304 have no body; `Transfer-Encoding` ending in `chunked`
//! is chunked, any other is read to the close (and is an error on HTTP/1.0); otherwise
//! `Content-Length` (every value equal), otherwise read to the close. The limits are hyper's defaults:
//! a head of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields, chunk extensions of at most 16 KiB.
//! Two choices go beyond hyper: a response with both `Transfer-Encoding` and `Content-Length` is read
//! as chunked, loses its `Content-Length` and closes its connection afterwards (RFC 9112 6.1: such a
//! message may be an attempt at response splitting), and a `101` to a request that asked for no upgrade
//! is an error (502) instead of a response the client never asked for.
//!
//! [`parse_head`] and [`Decoder`] are pure functions of a buffer, fuzzed by `fuzz/fuzz_targets/
//! origin_response.rs`.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::headers::{field_name, has_token, last_coding_is_chunked};

/// Largest response head accepted, 1xx heads before it included: hyper's default read buffer limit
/// (8 KiB + 100 × 4 KiB), so that what hyper's client accepted is accepted here.
pub const MAX_HEAD: usize = 8192 + 4096 * 100;
/// Most fields in a response head or a trailer section (hyper's default).
pub const MAX_HEADERS: usize = 100;
/// Fields a response's map has room for beyond the origin's (see [`parse_head`]).
const RESPONSE_ROOM: usize = 4;
/// Longest chunk-size line, extensions included (hyper's limit on chunk extensions).
const MAX_CHUNK_LINE: usize = 16 * 1024;
/// Largest trailer section.
const MAX_TRAILERS: usize = 16 * 1024;
/// What the read buffer grows by when it is full (hyper's first buffer size), and the most it grows by
/// when reads keep filling it (a large body is read in fewer, larger reads).
const READ_CHUNK: usize = 8192;
const MAX_READ_CHUNK: usize = 64 * 1024;

/// A connection to an origin, plain or TLS.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be written.
    #[error("writing the request: {0}")]
    Write(io::Error),
    /// The origin closed (or reset) the connection before the first byte of a response.
    #[error("the origin closed the connection before answering{}", .0.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Closed(Option<io::Error>),
    #[error("reading the response: {0}")]
    Read(io::Error),
    #[error("the origin closed the connection in the middle of a response head")]
    Truncated,
    #[error("invalid response head: {0}")]
    Head(#[from] HeadError),
}

impl Error {
    /// Whether the request may be sent again on a new connection when this one was reused: nothing of a
    /// response came, so the origin most likely closed the idle connection as the request went out.
    pub fn before_response(&self) -> bool {
        matches!(self, Error::Write(_) | Error::Closed(_))
    }
}

/// A response head that breaks HTTP/1.1 (or one of the limits above).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("{0}")]
    Syntax(httparse::Error),
    #[error("status code below 100")]
    Status,
    #[error("head larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("101 Switching Protocols to a request that asked for no upgrade")]
    UnexpectedSwitch,
    #[error("Transfer-Encoding in an HTTP/1.0 response")]
    TransferEncodingOnHttp10,
    #[error("invalid Content-Length")]
    ContentLength,
}

/// A response body that breaks HTTP/1.1, or ends early.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("invalid chunk size line")]
    ChunkSize,
    #[error("chunk size line longer than {MAX_CHUNK_LINE} bytes")]
    ChunkLineTooLong,
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("invalid trailer section")]
    Trailers,
    #[error("the origin closed the connection before the body's end")]
    Truncated,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// None at all: HEAD, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Read until the origin closes.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub parts: http::response::Parts,
    pub framing: Framing,
    /// Whether the connection may carry another request once the body has been read.
    pub keep_alive: bool,
}

/// A pooled connection to an origin: the stream, what was read from it and not yet used, and the buffer
/// request heads are written from (both keep their capacity from one request to the next).
pub struct Conn {
    io: Stream,
    buf: BytesMut,
    out: Vec<u8>,
    /// What the buffer grows by next: doubled while reads fill it, back to [`READ_CHUNK`] per response.
    chunk: usize,
}

impl Conn {
    pub fn new(io: Stream) -> Conn {
        Conn { io, buf: BytesMut::new(), out: Vec::new(), chunk: READ_CHUNK }
    }

    /// The stream, to hand to hyper's client (for a request with a body); `None` if bytes are pending.
    pub fn into_io(self) -> Option<Stream> {
        self.buf.is_empty().then_some(self.io)
    }

    /// Whether an idle connection can carry another request: the origin has sent nothing since the last
    /// response (neither a close nor stray bytes). This costs no system call unless the socket became
    /// readable while idle: tokio then reads, and anything but "would block" disqualifies it.
    pub fn is_reusable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(&mut self.io).poll_read(&mut cx, &mut probe).is_pending()
    }

    /// Lets go of buffers grown past their usual size by a large body or head, before the connection
    /// idles in the pool.
    pub fn shrink(&mut self) {
        if self.buf.capacity() > 2 * READ_CHUNK {
            self.buf = BytesMut::new();
        }
        if self.out.capacity() > 2 * READ_CHUNK {
            self.out = Vec::new();
        }
    }

    /// Whether the last response left nothing unread behind it (bytes past a body's end mean the origin
    /// does not frame its responses as it says: the connection must not carry another request).
    pub fn is_clean(&self) -> bool {
        self.buf.is_empty()
    }

    /// Sends a request with no body (`target` in origin form, `Host` among `headers`) and reads the
    /// response head. The body, if any, is read after with [`Conn::poll_body`] (or is already in the
    /// buffer: see [`Conn::take_whole`]).
    pub async fn request(&mut self, method: &Method, target: &str, headers: &HeaderMap) -> Result<Head, Error> {
        self.out.clear();
        self.chunk = READ_CHUNK;
        encode_head(&mut self.out, method, target, headers);
        self.io.write_all(&self.out).await.map_err(Error::Write)?;
        self.io.flush().await.map_err(Error::Write)?;
        let head_request = method == Method::HEAD;
        let mut got = false;
        loop {
            if !self.buf.is_empty() {
                got = true;
                if let Some(head) = parse_head(&mut self.buf, head_request)? {
                    return Ok(head);
                }
            }
            let before = self.buf.len();
            self.reserve();
            let n = match tokio::io::AsyncReadExt::read_buf(&mut self.io, &mut self.buf).await {
                Ok(n) => n,
                Err(e) if got => return Err(Error::Read(e)),
                Err(e) => return Err(Error::Closed(Some(e))),
            };
            if n == 0 {
                return Err(if got { Error::Truncated } else { Error::Closed(None) });
            }
            // A head ends with a line feed: parse again only once one came (a head trickled a byte at a
            // time is then not parsed over and over), looking only at what each read brought.
            let mut scanned = before;
            while !self.buf[scanned..].contains(&b'\n') {
                scanned = self.buf.len();
                self.reserve();
                match tokio::io::AsyncReadExt::read_buf(&mut self.io, &mut self.buf).await {
                    Ok(0) => return Err(Error::Truncated),
                    Ok(_) => {}
                    Err(e) => return Err(Error::Read(e)),
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(HeadError::TooLarge.into());
                }
            }
        }
    }

    /// The whole body if it already is in the buffer (or there is none): the connection is then free.
    pub fn take_whole(&mut self, framing: Framing) -> Option<Bytes> {
        match framing {
            Framing::Empty => Some(Bytes::new()),
            Framing::Length(n) if self.buf.len() as u64 >= n => Some(self.buf.split_to(n as usize).freeze()),
            _ => None,
        }
    }

    /// The next frame of the body `decoder` is reading. `Ready(None)` at its end.
    pub fn poll_body(
        &mut self,
        decoder: &mut Decoder,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        loop {
            match decoder.step(&mut self.buf) {
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Step::Trailers(trailers)) => return Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::More) => {}
                Err(e) => return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, e)))),
            }
            let spare = self.reserve();
            let n = ready!(tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf))?;
            if n == spare {
                self.chunk = (self.chunk * 2).min(MAX_READ_CHUNK);
            }
            if n == 0 {
                return Poll::Ready(match decoder.at_close() {
                    Ok(()) => None,
                    Err(e) => Some(Err(io::Error::new(io::ErrorKind::UnexpectedEof, e))),
                });
            }
        }
    }

    /// Makes room for a read; returns the room.
    fn reserve(&mut self) -> usize {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 8 {
            self.buf.reserve(self.chunk);
        }
        self.buf.capacity() - self.buf.len()
    }
}

/// Writes a request head: request line, the fields as they are (minus `Transfer-Encoding`: the request
/// has no body, as hyper's client does), the blank line.
pub fn encode_head(out: &mut Vec<u8>, method: &Method, target: &str, headers: &HeaderMap) {
    out.reserve(target.len() + 32 + headers.len() * 32);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Parses the response head at the start of `buf`, skipping (and consuming) 1xx heads before it.
/// `Ok(None)` until a whole head is there. The head's bytes leave `buf`; its field values share them.
pub fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, HeadError> {
    loop {
        // Where each field's name and value lie in the head (httparse borrows the buffer, which is split
        // off and shared once the head is whole).
        let mut at = [[0u32; 4]; MAX_HEADERS];
        let (len, code, version, reason, count) = {
            let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            let parsed =
                httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
            let len = match parsed {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(HeadError::TooLarge),
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => return Err(HeadError::Syntax(e)),
            };
            if len > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            let base = buf.as_ptr() as usize;
            for (slot, h) in at.iter_mut().zip(resp.headers.iter()) {
                let name = h.name.as_ptr() as usize - base;
                let value = h.value.as_ptr() as usize - base;
                // Below MAX_HEAD, so they fit.
                *slot = [name as u32, (name + h.name.len()) as u32, value as u32, (value + h.value.len()) as u32];
            }
            let (code, version, reason) =
                (resp.code.unwrap_or(0), resp.version.unwrap_or(1), resp.reason.unwrap_or(""));
            let status = StatusCode::from_u16(code).map_err(|_| HeadError::Status)?;
            // Only a reason phrase other than the status code's own is kept (hyper writes it back).
            let reason = (Some(reason) != status.canonical_reason()).then(|| Bytes::copy_from_slice(reason.as_bytes()));
            (len, status, version, reason, resp.headers.len())
        };
        let head = buf.split_to(len).freeze();
        match code.as_u16() {
            101 => return Err(HeadError::UnexpectedSwitch),
            100..=199 if buf.is_empty() => return Ok(None),
            100..=199 => continue,
            _ => {}
        }
        // Room for what the proxy adds to a response (Via, up to two Set-Cookie, Cache-Control, an echoed
        // decision) without the map growing, which rehashes it: about 1,000 instructions a response.
        let mut headers = HeaderMap::with_capacity(count + RESPONSE_ROOM);
        let http10 = version == 0;
        let mut keep_alive = !http10;
        let mut close = false;
        let (mut te, mut cl) = (false, false);
        // Every `Content-Length` field's value, folded as it is met: `None` once one is bad or disagrees.
        let mut length = Some(None);
        for [n0, n1, v0, v1] in &at[..count] {
            // httparse checked both: names are tokens, values are visible bytes, spaces and tabs.
            let name = field_name(&head[*n0 as usize..*n1 as usize])
                .map_err(|_| HeadError::Syntax(httparse::Error::HeaderName))?;
            let value = HeaderValue::from_maybe_shared(head.slice(*v0 as usize..*v1 as usize))
                .map_err(|_| HeadError::Syntax(httparse::Error::HeaderValue))?;
            if name == header::CONNECTION {
                // Once any line asks to close, a later `keep-alive` does not undo it.
                if close || has_token(&value, b"close") {
                    close = true;
                    keep_alive = false;
                } else if http10 {
                    keep_alive |= has_token(&value, b"keep-alive");
                }
                // Hop-by-hop, stripped before the response goes on: a line that names no other header
                // (`keep-alive`, `close`: nearly every origin's) is not kept only to be removed.
                if names_only_keep_alive_or_close(&value) {
                    continue;
                }
            } else if name == header::TRANSFER_ENCODING {
                te = true;
            } else if name == header::CONTENT_LENGTH {
                cl = true;
                length = length.and_then(|l| fold_length(l, value.as_bytes()));
            }
            headers.append(name, value);
        }
        let framing = match code.as_u16() {
            204 | 304 => Framing::Empty,
            _ if head_request => Framing::Empty,
            _ if te && http10 => return Err(HeadError::TransferEncodingOnHttp10),
            _ if te && is_chunked(&headers) => Framing::Chunked,
            _ if te => Framing::Close,
            _ if cl => Framing::Length(length.flatten().ok_or(HeadError::ContentLength)?),
            _ => Framing::Close,
        };
        if te && cl && framing != Framing::Empty {
            // Both: the length is not the body's (RFC 9112 6.3), and such a response may be an attempt at
            // response splitting; it is read as chunked, and its connection closed afterwards.
            headers.remove(header::CONTENT_LENGTH);
            keep_alive = false;
        }
        if framing == Framing::Close {
            keep_alive = false;
        }
        let mut parts = http::Response::new(()).into_parts().0;
        parts.status = code;
        // The origin's version decided the framing and keep-alive above; the response edgesplit sends on
        // is its own, HTTP/1.1 (RFC 9110 6.2: a proxy sends its own version), so that an HTTP/1.0 origin
        // does not close the client's connection.
        parts.version = Version::HTTP_11;
        parts.headers = headers;
        if let Some(reason) = reason
            && let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason)
        {
            parts.extensions.insert(reason);
        }
        return Ok(Some(Head { parts, framing, keep_alive }));
    }
}

/// Whether every token of a `Connection` value is `keep-alive` or `close`.
fn names_only_keep_alive_or_close(value: &HeaderValue) -> bool {
    value.as_bytes().split(|&b| b == b',').all(|t| {
        let t = t.trim_ascii();
        t.is_empty() || t.eq_ignore_ascii_case(b"keep-alive") || t.eq_ignore_ascii_case(b"close")
    })
}

/// Whether the last transfer coding is `chunked`.
fn is_chunked(headers: &HeaderMap) -> bool {
    headers.get_all(header::TRANSFER_ENCODING).iter().next_back().is_some_and(last_coding_is_chunked)
}

/// `length` (what the earlier `Content-Length` fields agreed on) with one more field's `value` (a
/// comma-separated list too) folded in; `None` if the value is bad or disagrees.
fn fold_length(mut length: Option<u64>, value: &[u8]) -> Option<Option<u64>> {
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    Some(length)
}

/// What [`Decoder::step`] found in the buffer.
#[derive(Debug, PartialEq)]
pub enum Step {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
    /// More bytes are needed.
    More,
}

/// Reads a response body out of a buffer as it fills.
#[derive(Debug, Clone)]
pub struct Decoder(State);

#[derive(Debug, Clone, Copy)]
enum State {
    Length(u64),
    Close,
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Done,
}

impl Decoder {
    pub fn new(framing: Framing) -> Decoder {
        Decoder(match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        })
    }

    /// Takes the next piece of the body from the front of `buf`.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, BodyError> {
        loop {
            match self.0 {
                State::Done => return Ok(Step::End),
                State::Close if buf.is_empty() => return Ok(Step::More),
                State::Close => return Ok(Step::Data(buf.split().freeze())),
                State::Length(n) | State::ChunkData(n) if buf.is_empty() => {
                    let _ = n;
                    return Ok(Step::More);
                }
                State::Length(n) => {
                    let take = n.min(buf.len() as u64);
                    self.0 = if take == n { State::Done } else { State::Length(n - take) };
                    return Ok(Step::Data(buf.split_to(take as usize).freeze()));
                }
                State::ChunkData(n) => {
                    let take = n.min(buf.len() as u64);
                    self.0 = if take == n { State::ChunkEnd } else { State::ChunkData(n - take) };
                    return Ok(Step::Data(buf.split_to(take as usize).freeze()));
                }
                State::ChunkSize => {
                    let (len, size) = match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete(found)) => found,
                        Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                            return Err(BodyError::ChunkLineTooLong);
                        }
                        Ok(httparse::Status::Partial) => return Ok(Step::More),
                        Err(_) => return Err(BodyError::ChunkSize),
                    };
                    // At least one digit, and no bare line feed in an extension (httparse lets both by).
                    if !buf[0].is_ascii_hexdigit() || buf[..len - 2].contains(&b'\n') {
                        return Err(BodyError::ChunkSize);
                    }
                    if len > MAX_CHUNK_LINE {
                        return Err(BodyError::ChunkLineTooLong);
                    }
                    buf.advance(len);
                    self.0 = if size == 0 { State::Trailers } else { State::ChunkData(size) };
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(BodyError::ChunkEnd);
                    }
                    buf.advance(2);
                    self.0 = State::ChunkSize;
                }
                State::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        self.0 = State::Done;
                        return Ok(Step::End);
                    }
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if buf.len() > MAX_TRAILERS {
                            return Err(BodyError::Trailers);
                        }
                        return Ok(Step::More);
                    };
                    if end + 4 > MAX_TRAILERS {
                        return Err(BodyError::Trailers);
                    }
                    let section = buf.split_to(end + 4).freeze();
                    self.0 = State::Done;
                    return Ok(Step::Trailers(trailers(&section)?));
                }
            }
        }
    }

    /// The origin closed the connection: the body's end if it is read to the close (or done).
    pub fn at_close(&mut self) -> Result<(), BodyError> {
        match self.0 {
            State::Close | State::Done => {
                self.0 = State::Done;
                Ok(())
            }
            _ => Err(BodyError::Truncated),
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.0, State::Done)
    }

    /// What is known of the rest of the body's length.
    pub fn size_hint(&self) -> SizeHint {
        match self.0 {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// A trailer section's fields (`section` ends with its blank line).
fn trailers(section: &Bytes) -> Result<HeaderMap, BodyError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Ok(httparse::Status::Complete((_, fields))) = httparse::parse_headers(section, &mut fields) else {
        return Err(BodyError::Trailers);
    };
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name = HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| BodyError::Trailers)?;
        let value = HeaderValue::from_maybe_shared(section.slice_ref(f.value)).map_err(|_| BodyError::Trailers)?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests;
