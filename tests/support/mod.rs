//! Test harness: real origins and a real edgesplit on 127.0.0.1 port 0, and the clients that talk to
//! them. Tests read as scenarios: start origins, start the edge on a config naming them, send requests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cloudfront;
pub mod postgres;
pub mod process;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use edgesplit::app::{self, Handle};

pub type Body = BoxBody<Bytes, hyper::Error>;
type HandlerFn = dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// Aborts a task when dropped, so origins die with their test.
pub struct TaskGuard(pub tokio::task::JoinHandle<()>);
impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A real origin server (HTTP/1.1 and h2c, upgrades allowed) on 127.0.0.1:0.
pub struct Origin {
    pub addr: SocketAddr,
    _task: TaskGuard,
}

impl Origin {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn start<F, Fut>(handler: F) -> Origin
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        Origin::serve(None, handler).await
    }

    /// The accept loop both kinds of origin share; with `tls`, each connection is a TLS handshake first.
    async fn serve<F, Fut>(tls: Option<tokio_rustls::TlsAcceptor>, handler: F) -> Origin
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: Arc<HandlerFn> = Arc::new(move |req| Box::pin(handler(req)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (handler, tls) = (handler.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let fut = handler(req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = match tls {
                        None => builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls) => builder.serve_connection(TokioIo::new(tls), svc).await,
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Origin { addr, _task: TaskGuard(task) }
    }

    /// Answers `name`, the request line and every header it received, one per line, and sends back a few
    /// hop-by-hop headers of its own (which the proxy must strip).
    pub async fn echo(name: &'static str) -> Origin {
        Origin::start(move |req: Request<Incoming>| async move {
            let mut text = format!("{name}\n{} {}\n", req.method(), req.uri());
            for (k, v) in req.headers() {
                text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
            }
            Response::builder()
                .header("x-origin", name)
                .header("connection", "x-res-drop")
                .header("x-res-drop", "1")
                .header("keep-alive", "timeout=5")
                .header("proxy-x", "1")
                .body(full(text))
                .unwrap()
        })
        .await
    }
}

/// A port with nothing listening (bound, then closed).
pub async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// edgesplit itself, in-process, on a config file written to a temporary folder.
pub struct Edge {
    pub handle: Handle,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Edge {
    /// Starts edgesplit on `toml`. Listeners and admin should use port 0.
    pub async fn start(toml: &str) -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("edgesplit.toml");
        std::fs::write(&config_path, toml).unwrap();
        let config = edgesplit::config::load(&config_path).unwrap_or_else(|e| panic!("bad test config:\n{e}"));
        let handle = app::start(config, Some(config_path.clone()), std::future::pending()).await.unwrap();
        Edge { handle, dir, config_path }
    }

    /// The bound address of listener `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.handle.addr(name).unwrap_or_else(|| panic!("no listener {name}"))
    }

    pub fn url(&self, listener: &str, path: &str) -> String {
        format!("http://{}{path}", self.addr(listener))
    }

    /// Rewrites the config file and reloads it.
    pub async fn reload(&self, toml: &str) -> Result<(), String> {
        std::fs::write(&self.config_path, toml).unwrap();
        self.handle.reload().await
    }

    pub async fn metrics(&self) -> String {
        get(&format!("http://{}/metrics", self.handle.admin_addr)).await.2
    }
}

/// A one-listener, one-distribution config: listener `http` on port 0, admin on port 0 with
/// `auth = "none"` (so tests call the admin API unsigned; `tests/admin_auth.rs` covers SigV4), the primary
/// pool on `primary` (and staging on `staging` if given), plus `extra` TOML appended verbatim.
pub fn simple_config(primary: &str, staging: Option<&str>, extra: &str) -> String {
    let staging = staging.map_or(String::new(), |s| format!("[distribution.staging]\norigins = [\"{s}\"]\n"));
    format!(
        "[[listener]]\nname = \"http\"\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\n\n\
         [log]\nlevel = \"warn\"\n\n\
         [[distribution]]\nid = \"web\"\ndomains = [\"*\"]\n[distribution.primary]\norigins = [\"{primary}\"]\n{staging}\n{extra}"
    )
}

pub fn http1_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2c_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).http2_only(true).build_http()
}

/// GET over HTTP/1.1: status, headers, body as text.
pub async fn get(url: &str) -> (StatusCode, http::HeaderMap, String) {
    send(&http1_client(), Request::get(url).body(Empty::new().map_err(|n| match n {}).boxed()).unwrap()).await
}

pub async fn send(client: &Client<HttpConnector, Body>, req: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

/// Writes raw bytes to `addr` and reads until the server closes or `wait` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A self-signed certificate and key for `names`, written as PEM files into `dir`.
pub fn cert_files(dir: &std::path::Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf, rcgen::Certificate) {
    let ck = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, ck.cert)
}

impl Origin {
    /// Like [`Origin::start`], behind TLS with the given PEM certificate and key (ALPN h2, http/1.1).
    pub async fn start_tls<F, Fut>(cert: &std::path::Path, key: &std::path::Path, handler: F) -> Origin
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let server_config = edgesplit::tls::server_config(&[(cert.to_path_buf(), key.to_path_buf())]).unwrap();
        Origin::serve(Some(tokio_rustls::TlsAcceptor::from(server_config)), handler).await
    }
}

/// GET with extra request headers.
pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(&http1_client(), req.body(Empty::new().map_err(|n| match n {}).boxed()).unwrap()).await
}

/// A JSON call to the admin API: status and parsed body (`Null` when it is not JSON).
pub async fn admin_json(edge: &Edge, method: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", edge.handle.admin_addr))
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap();
    let resp = http1_client().request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}
