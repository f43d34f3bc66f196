//! The admin listener (default 127.0.0.1:9901): `/healthz`, `/readyz` and `/metrics`. It ignores the
//! Host header (D7). The AWS-compatible APIs join it in later issues.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What the admin endpoints read.
#[derive(Clone)]
pub struct Admin {
    pub metrics: Arc<Metrics>,
    /// False once shutdown starts, so load balancers stop sending new traffic while we drain.
    pub ready: Arc<AtomicBool>,
}

impl Admin {
    pub fn handle(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        match (get, req.uri().path()) {
            (true, "/healthz") => text(StatusCode::OK, "ok\n".into()),
            (true, "/readyz") if self.ready.load(Relaxed) => text(StatusCode::OK, "ready\n".into()),
            (true, "/readyz") => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into()),
            (true, "/metrics") => {
                let mut r = text(StatusCode::OK, self.metrics.render());
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                r
            }
            (false, "/healthz" | "/readyz" | "/metrics") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into())
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves the admin API until `stop` is cancelled.
pub async fn serve(listener: TcpListener, admin: Admin, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "Admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let admin = admin.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let r = admin.handle(&req);
                async move { Ok::<_, Infallible>(r) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}
