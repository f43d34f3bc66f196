//! The response body edgesplit hands to hyper: the origin's stream or a short synthetic body, plus the
//! bookkeeping that must run when the response is finished (metrics, the access log line, the
//! connection's in-flight count). No boxing: one enum, one allocation-free drop hook.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::Finish;
use super::pool::{Lease, OwnBody, Streamed};

/// Why a response body failed: hyper's client or ours (boxed only when it happens).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// An origin's response body, from hyper's client (with its connection's lease) or ours.
pub enum Upstream {
    Hyper(Incoming, Option<Lease>),
    Own(OwnBody),
}

pub struct ProxyBody {
    kind: Kind,
    finish: Option<Finish>,
    /// The origin connection, back to the pool once the body has ended.
    lease: Option<Lease>,
    /// The body said it was over (a chunked body's length stays unknown to the end).
    ended: bool,
    /// Counted in the connection's [`super::Activity::waiting`]: made or last polled with a frame, and
    /// not polled since. A client that stops reading leaves it so, and the watchdog aborts the
    /// connection after `timeouts.client_send`.
    waiting: bool,
    /// The origin's silence: armed when an origin body has nothing to give, disarmed when it gives a
    /// frame; when it fires (`timeouts.upstream_read`) the response is cut short. Made on the first
    /// wait only, so a body that comes with its head never has one.
    stall: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

enum Kind {
    Upstream(Incoming),
    /// Read by our own client from its connection (boxed: most bodies come whole with their head).
    Own(Box<Streamed>),
    Full(Option<Bytes>),
}

impl ProxyBody {
    pub fn upstream(body: Upstream, finish: Finish) -> Self {
        let (kind, lease) = match body {
            Upstream::Hyper(body, lease) => (Kind::Upstream(body), lease),
            Upstream::Own(OwnBody::Whole(bytes)) => (Kind::Full(Some(bytes).filter(|b| !b.is_empty())), None),
            Upstream::Own(OwnBody::Streamed(body)) => (Kind::Own(body), None),
        };
        let mut b =
            ProxyBody { kind, finish: Some(finish), lease, ended: false, waiting: false, stall: None, armed: false };
        b.wait_for_client();
        b
    }

    pub fn full(bytes: Bytes, finish: Option<Finish>) -> Self {
        let kind = Kind::Full(Some(bytes).filter(|b| !b.is_empty()));
        let mut b = ProxyBody { kind, finish, lease: None, ended: false, waiting: false, stall: None, armed: false };
        b.wait_for_client();
        b
    }

    /// The origin has nothing to give: waits at most `timeouts.upstream_read` since its last frame, then
    /// cuts the response short (the origin connection, not returned, closes).
    fn origin_silent(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let Some(finish) = &mut self.finish else { return Poll::Pending };
        let limit = finish.state.snapshot.timeouts.upstream_read;
        let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if !self.armed {
            stall.as_mut().reset(Instant::now() + limit);
            self.armed = true;
        }
        if stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        finish.body_error = true;
        self.kind = Kind::Full(None);
        self.lease = None;
        tracing::warn!(timeout = ?limit, "Upstream body stalled; response cut short");
        Poll::Ready(Some(Err(format!("the origin sent nothing for {limit:?} (timeouts.upstream_read)").into())))
    }

    /// Starts waiting for the client to take the next frame (or the first).
    fn wait_for_client(&mut self) {
        if let Some(f) = &self.finish {
            f.conn.activity.wait_for_client();
            self.waiting = true;
        }
    }
}

impl Drop for ProxyBody {
    /// A connection whose response was read to the end can serve the next request; one cut short cannot
    /// (dropping its lease closes it).
    fn drop(&mut self) {
        if let (true, Some(f)) = (self.waiting, &self.finish) {
            f.conn.activity.stop_waiting();
        }
        if let (Some(lease), Kind::Upstream(body)) = (self.lease.take(), &self.kind)
            && (self.ended || body.is_end_stream())
        {
            lease.release();
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let (true, Some(f)) = (this.waiting, &this.finish) {
            f.conn.activity.client_pulled();
            this.waiting = false;
        }
        let polled: Poll<Option<Result<Frame<Bytes>, BodyError>>> = match &mut this.kind {
            Kind::Upstream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Kind::Own(body) => Pin::new(body.as_mut()).poll_frame(cx).map_err(Into::into),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        };
        let polled = match polled {
            Poll::Pending => this.origin_silent(cx),
            ready => {
                this.armed = false;
                ready
            }
        };
        if let (Poll::Ready(Some(Ok(frame))), Some(finish)) = (&polled, &mut this.finish)
            && let Some(data) = frame.data_ref()
        {
            finish.bytes += data.len() as u64;
        }
        if let (Poll::Ready(Some(Err(_))), Some(finish)) = (&polled, &mut this.finish) {
            finish.body_error = true;
        }
        match &polled {
            Poll::Ready(None) => this.ended = true,
            Poll::Ready(Some(Ok(_))) => this.wait_for_client(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Own(body) => body.is_end_stream(),
            Kind::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(body) => body.size_hint(),
            Kind::Own(body) => body.size_hint(),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
