//! The pooled upstream clients: one for HTTP/1.1 origins, one for HTTP/2 origins (prior knowledge on
//! `http://`, ALPN `h2` on `https://`). Rebuilt only when `[upstream]` or the upstream timeouts change,
//! so a routing reload keeps the warm connection pools.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{Timeouts, UpstreamConfig, UpstreamProtocol};

pub type HttpClient = Client<HttpsConnector<HttpConnector>, UpBody>;

/// A request body towards an origin: the client's stream, or nothing (a bodiless request sent again
/// to primary after staging refused the connection).
pub enum UpBody {
    Client(Incoming),
    Empty,
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpBody::Client(b) => Pin::new(b).poll_frame(cx),
            UpBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Client(b) => b.is_end_stream(),
            UpBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Client(b) => b.size_hint(),
            UpBody::Empty => SizeHint::with_exact(0),
        }
    }
}

pub struct Clients {
    h1: HttpClient,
    h2: HttpClient,
    /// What they were built from, to know when a reload must rebuild them.
    pub built_from: (UpstreamConfig, Timeouts),
}

impl Clients {
    pub fn build(upstream: &UpstreamConfig, timeouts: &Timeouts) -> Result<Clients, String> {
        let h1 = client(upstream, timeouts, UpstreamProtocol::Http1)?;
        let h2 = client(upstream, timeouts, UpstreamProtocol::Http2)?;
        Ok(Clients { h1, h2, built_from: (upstream.clone(), *timeouts) })
    }

    pub fn get(&self, protocol: UpstreamProtocol) -> &HttpClient {
        match protocol {
            UpstreamProtocol::Http1 => &self.h1,
            UpstreamProtocol::Http2 => &self.h2,
        }
    }
}

fn client(upstream: &UpstreamConfig, timeouts: &Timeouts, protocol: UpstreamProtocol) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(timeouts.upstream_connect));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    let tls = crate::tls::client_config(upstream.ca_file.as_deref())?;
    let builder = HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
    let connector = match protocol {
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
        UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
    };
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(timeouts.upstream_idle)
        .pool_max_idle_per_host(upstream.pool_max_idle_per_host)
        // edgesplit always writes Host itself (the client's, or the pool's override).
        .set_host(false);
    if protocol == UpstreamProtocol::Http2 {
        b.http2_only(true);
    }
    Ok(b.build(connector))
}
