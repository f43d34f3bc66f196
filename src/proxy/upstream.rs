//! The pooled upstream clients: one for HTTP/1.1 origins, one for HTTP/2 origins (prior knowledge on
//! `http://`, ALPN `h2` on `https://`). Rebuilt only when `[upstream]` or the upstream timeouts change,
//! so a routing reload keeps the warm connection pools.

use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{Timeouts, UpstreamConfig, UpstreamProtocol};

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Incoming>;

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
