//! The upstream clients: HTTP/1.1 origins through [`super::pool`], HTTP/2 origins (prior knowledge on
//! `http://`, ALPN `h2` on `https://`) through hyper-util's client. Rebuilt only when `[upstream]` or the upstream timeouts change,
//! so a routing reload keeps the warm connection pools.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Release};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::pool::H1Pool;
use crate::config::{Timeouts, UpstreamConfig};

pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, UpBody>;

/// A request body towards an origin: the client's stream, or nothing (a bodiless request sent again
/// to primary after staging refused the connection).
pub enum UpBody {
    Client(Incoming),
    /// The client's stream, with a flag set once it has been handed over whole: the origin connection
    /// may serve another request only then (see [`super::pool`]). Only requests with a body pay for it.
    Watched(Incoming, Arc<AtomicBool>),
    Empty,
}

impl UpBody {
    /// The client's body; watched (with the flag to give the pool) unless it is already over.
    pub fn client(body: Incoming) -> (UpBody, Option<Arc<AtomicBool>>) {
        if body.is_end_stream() {
            return (UpBody::Client(body), None);
        }
        let done = Arc::new(AtomicBool::new(false));
        (UpBody::Watched(body, done.clone()), Some(done))
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpBody::Client(b) => Pin::new(b).poll_frame(cx),
            UpBody::Watched(b, done) => {
                let polled = Pin::new(&mut *b).poll_frame(cx);
                if matches!(polled, Poll::Ready(None)) || b.is_end_stream() {
                    done.store(true, Release);
                }
                polled
            }
            UpBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Client(b) => b.is_end_stream(),
            UpBody::Watched(b, done) => {
                let end = b.is_end_stream();
                if end {
                    done.store(true, Release);
                }
                end
            }
            UpBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Client(b) | UpBody::Watched(b, _) => b.size_hint(),
            UpBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The upstream clients: our own per-worker pool for HTTP/1.1 origins ([`H1Pool`]), and for HTTP/2
/// origins one hyper-util client per worker thread, each made on first use there, so that its pooled
/// connections run on that worker's runtime (a request and its origin connection never wake each other
/// across threads). Slot 0 serves threads that are not workers (tests, the admin API).
pub struct Clients {
    pub h1: H1Pool,
    h2: Box<[OnceLock<HttpClient>]>,
    tls: rustls::ClientConfig,
    pool_max_idle_per_host: usize,
    /// What they were built from, to know when a reload must rebuild them.
    pub built_from: (UpstreamConfig, Timeouts),
}

impl Clients {
    /// Fails only if the TLS settings towards origins cannot be loaded (`ca_file`).
    pub fn build(upstream: &UpstreamConfig, timeouts: &Timeouts) -> Result<Clients, String> {
        let tls = crate::tls::client_config(upstream.ca_file.as_deref())?;
        let h1 = H1Pool::new(
            &tls,
            timeouts.upstream_connect,
            timeouts.upstream_idle,
            upstream.pool_max_idle_per_host,
            upstream.max_connections_per_origin,
        );
        let h2 = (0..=super::worker::MAX_WORKERS).map(|_| OnceLock::new()).collect();
        Ok(Clients {
            h1,
            h2,
            tls,
            pool_max_idle_per_host: upstream.pool_max_idle_per_host,
            built_from: (upstream.clone(), *timeouts),
        })
    }

    /// This thread's HTTP/2 client.
    pub fn h2(&self) -> &HttpClient {
        let slot = super::worker::worker_index().map_or(0, |i| (i + 1).min(self.h2.len() - 1));
        self.h2[slot].get_or_init(|| h2_client(&self.tls, self.pool_max_idle_per_host, &self.built_from.1))
    }
}

fn h2_client(tls: &rustls::ClientConfig, pool_max_idle_per_host: usize, timeouts: &Timeouts) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(timeouts.upstream_connect));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    let connector =
        HttpsConnectorBuilder::new().with_tls_config(tls.clone()).https_or_http().enable_http2().wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(timeouts.upstream_idle)
        .pool_max_idle_per_host(pool_max_idle_per_host)
        // edgesplit always writes Host itself (the client's, or the pool's override).
        .set_host(false)
        .http2_only(true)
        .build(connector)
}
