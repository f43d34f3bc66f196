//! The response body edgesplit hands to hyper: the origin's stream or a short synthetic body, plus the
//! bookkeeping that must run when the response is finished (metrics, the access log line, the
//! connection's in-flight count). No boxing: one enum, one allocation-free drop hook.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::Finish;

pub struct ProxyBody {
    kind: Kind,
    finish: Option<Finish>,
}

enum Kind {
    Upstream(Incoming),
    Full(Option<Bytes>),
}

impl ProxyBody {
    pub fn upstream(body: Incoming, finish: Finish) -> Self {
        ProxyBody { kind: Kind::Upstream(body), finish: Some(finish) }
    }

    pub fn full(bytes: Bytes, finish: Option<Finish>) -> Self {
        ProxyBody { kind: Kind::Full(Some(bytes).filter(|b| !b.is_empty())), finish }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Upstream(body) => Pin::new(body).poll_frame(cx),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        };
        if let (Poll::Ready(Some(Ok(frame))), Some(finish)) = (&polled, &mut this.finish)
            && let Some(data) = frame.data_ref()
        {
            finish.bytes += data.len() as u64;
        }
        if let (Poll::Ready(Some(Err(_))), Some(finish)) = (&polled, &mut this.finish) {
            finish.body_error = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(body) => body.size_hint(),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
