//! `edgesplit rollout list|status|start|pause|resume|abort`: the operator's client for guarded rollouts
//! (issue 18). Each subcommand is one call to the admin API's `/edgesplit/rollouts` endpoints, JSON over
//! HTTP/1.1, signed with SigV4 for the service `edgesplit` the way botocore signs a restJson call, so the
//! server checks it like any boto3 call. The answer is printed as a short report, or as the server's
//! JSON with `--json` (for scripts).
//!
//! Where it calls: `--endpoint`, else the admin listener of `--config`'s file (an unspecified address
//! such as `0.0.0.0` means loopback), else `http://127.0.0.1:9901`. The key it signs with:
//! `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, else the file's `[admin]` pair, else none (a server
//! with `auth = "none"` needs none). The region is `AWS_REGION`, `AWS_DEFAULT_REGION` or `us-east-1`:
//! the server accepts any.
//!
//! Exit codes: 0 done; 1 the API refused (`edgesplit: <__type>: <message>`), or no answer from the
//! endpoint; 2 bad usage or a bad config file. Every call gives up after 10 s, so a script never hangs
//! on a stuck listener.

use std::fmt::{self, Write as _};
use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::admin::sigv4::{self, Signed};
use crate::config::{self, AccessKey};

/// Where the admin listener is when nothing says otherwise (the default `[admin] listen`).
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9901";

/// The SigV4 service name of edgesplit's own API.
const SERVICE: &str = "edgesplit";

/// How long a connection may take, and the whole call with it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read: a rollout with its history is a few KB, a list of them a few hundred.
const ANSWER_CAP: usize = 8 * 1024 * 1024;

/// The largest spec file read.
const SPEC_CAP: u64 = 1024 * 1024;

/// How many history events `status` shows, the latest.
const HISTORY_SHOWN: usize = 10;

/// How much of a reason `list` shows.
const LIST_REASON_CHARS: usize = 60;

/// `edgesplit rollout`: where to call, how to print, and the subcommand.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// Call the admin listener this config file names, signing with its `[admin]` key pair.
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The admin listener, http://HOST:PORT; wins over --config. Default http://127.0.0.1:9901.
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Print the server's JSON answer instead of the report.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Action,
}

/// One call to the rollout API.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// One line per rollout: distribution, state, step, staging share, reason.
    List,
    /// One rollout in full: step and bake, guards per arm, verdict, reason, recent history.
    Status {
        /// The distribution id.
        #[arg(value_name = "DIST")]
        distribution: String,
    },
    /// Start a rollout on a distribution, from a spec file or from --steps.
    #[command(group(ArgGroup::new("spec").required(true).args(["file", "steps"])))]
    Start {
        /// The distribution id.
        #[arg(value_name = "DIST")]
        distribution: String,
        /// The spec as JSON (steps, at_end, guards), sent as it is; `-` reads standard input.
        #[arg(long, value_name = "SPEC.json")]
        file: Option<PathBuf>,
        /// The steps, comma-separated SHARE%:BAKE pairs, e.g. 1%:30s,5%:1m,15%:2m.
        #[arg(long, value_name = "STEPS")]
        steps: Option<String>,
        /// What to do after the last step: keep its share (hold, the default) or disable the policy.
        #[arg(long, value_enum, value_name = "WHAT")]
        at_end: Option<AtEnd>,
    },
    /// Stop advancing; the current share stays, and the guards still roll back on a breach.
    Pause {
        /// The distribution id.
        #[arg(value_name = "DIST")]
        distribution: String,
        /// Why, kept in the rollout's history.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Go on from where a pause stopped.
    Resume {
        /// The distribution id.
        #[arg(value_name = "DIST")]
        distribution: String,
    },
    /// End the rollout and send all traffic back to primary.
    Abort {
        /// The distribution id.
        #[arg(value_name = "DIST")]
        distribution: String,
        /// Why, kept in the rollout's history.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

/// What a rollout does after its last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AtEnd {
    Hold,
    Disable,
}

impl AtEnd {
    fn as_str(self) -> &'static str {
        match self {
            AtEnd::Hold => "hold",
            AtEnd::Disable => "disable",
        }
    }
}

/// Runs one `edgesplit rollout` subcommand: prints the answer on standard output, or the reason it
/// failed on standard error, and says which exit code that is.
pub fn run(args: RolloutArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgesplit: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let env = Environment::from_process();
    match rt.block_on(execute(&args, &env, Timeouts::DEFAULT)) {
        Ok(out) => {
            if let Some(warning) = out.warning {
                eprintln!("edgesplit: {warning}");
            }
            print!("{}", out.text);
            ExitCode::SUCCESS
        }
        Err(Error::Config(errors)) => {
            eprintln!("{errors}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("edgesplit: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Why a subcommand failed.
#[derive(Debug, PartialEq)]
enum Error {
    /// Bad arguments: a `--steps` that does not parse, an unreadable spec file, a bad endpoint (exit 2).
    Usage(String),
    /// The config file's problems, each as `FILE:LINE:COL: message` (exit 2).
    Config(String),
    /// The API answered with an error (exit 1).
    Refused { kind: String, message: String },
    /// No connection to the endpoint (exit 1).
    Connect { endpoint: String, why: String },
    /// The call failed or timed out after connecting, or the answer cannot be read (exit 1).
    Call(String),
}

impl Error {
    fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) => 2,
            Error::Refused { .. } | Error::Connect { .. } | Error::Call(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Config(m) | Error::Call(m) => f.write_str(m),
            Error::Refused { kind, message } => write!(f, "{kind}: {message}"),
            Error::Connect { endpoint, why } => write!(f, "cannot connect to the admin API at {endpoint}: {why}"),
        }
    }
}

/// What the environment says about signing, read once so tests can pass their own.
#[derive(Debug, Clone, Default)]
struct Environment {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, when both are set.
    key: Option<AccessKey>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    region: Option<String>,
}

impl Environment {
    fn from_process() -> Environment {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let key = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some(AccessKey { id, secret }),
            _ => None,
        };
        Environment { key, region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) }
    }
}

/// The bounds on one call; tests shorten them.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    connect: Duration,
    call: Duration,
}

impl Timeouts {
    const DEFAULT: Timeouts = Timeouts { connect: CONNECT_TIMEOUT, call: CALL_TIMEOUT };
}

/// Where to call and how to sign.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    /// `HOST` or `HOST:PORT` as sent in `Host` (and signed).
    authority: String,
    /// The host to connect to, without IPv6 brackets.
    host: String,
    port: u16,
    key: Option<AccessKey>,
    region: String,
}

impl Target {
    /// The endpoint, for messages.
    fn url(&self) -> String {
        format!("http://{}", self.authority)
    }
}

/// Picks the endpoint and the key: `--endpoint` over the config file over the default; the
/// environment's key over the file's.
fn target(endpoint: Option<&str>, config: Option<&config::Config>, env: &Environment) -> Result<Target, Error> {
    let (authority, host, port) = match (endpoint, config) {
        (Some(url), _) => parse_endpoint(url)?,
        (None, Some(c)) => {
            let addr = c.admin_listen;
            if addr.port() == 0 {
                return Err(Error::Usage(format!(
                    "the config's admin listener is on {addr}, a port chosen at start: pass --endpoint"
                )));
            }
            let ip = match addr.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            let addr = SocketAddr::new(ip, addr.port());
            (addr.to_string(), ip.to_string(), addr.port())
        }
        (None, None) => parse_endpoint(DEFAULT_ENDPOINT)?,
    };
    let key = env.key.clone().or_else(|| config.and_then(|c| c.admin_auth.credentials.clone()));
    let region = env.region.clone().unwrap_or_else(|| "us-east-1".into());
    Ok(Target { authority, host, port, key, region })
}

/// `http://HOST[:PORT][/]`, or `HOST:PORT` alone: the authority as given, the host to connect to, the
/// port. Only plain HTTP: the admin listener has no TLS.
fn parse_endpoint(url: &str) -> Result<(String, String, u16), Error> {
    let bad = |why: &str| Error::Usage(format!("--endpoint {url:?}: {why}"));
    let full = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
    let uri: http::Uri = full.parse().map_err(|_| bad("not a URL like http://127.0.0.1:9901"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(bad("the admin listener speaks plain HTTP: use http://")),
        _ => return Err(bad("not an http:// URL")),
    }
    let Some(authority) = uri.authority() else { return Err(bad("no host")) };
    if authority.as_str().contains('@') {
        return Err(bad("user information in the URL is not used: credentials come from the environment"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("give the listener only, without a path"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    // `http::Uri` takes `h:x` with no port at all; a port that is given must be one.
    let port = match authority.as_str().strip_prefix(authority.host()) {
        Some("") => 80,
        _ => authority.port_u16().filter(|p| *p != 0).ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
    };
    Ok((authority.as_str().to_string(), host.to_string(), port))
}

/// One API call, ready to send.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    method: Method,
    /// The path, each segment percent-encoded.
    path: String,
    body: Vec<u8>,
}

/// The call a subcommand makes.
fn plan(action: &Action) -> Result<Call, Error> {
    let one = |distribution: &str, suffix: &str| -> Result<String, Error> {
        if distribution.is_empty() {
            return Err(Error::Usage("the distribution id is empty".into()));
        }
        Ok(format!("/edgesplit/rollouts/{}{suffix}", encode_segment(distribution)))
    };
    let reason_body = |reason: &Option<String>| {
        let mut body = Map::new();
        if let Some(r) = reason {
            body.insert("reason".into(), Value::String(r.clone()));
        }
        Value::Object(body).to_string().into_bytes()
    };
    Ok(match action {
        Action::List => Call { method: Method::GET, path: "/edgesplit/rollouts".into(), body: Vec::new() },
        Action::Status { distribution } => Call { method: Method::GET, path: one(distribution, "")?, body: Vec::new() },
        Action::Start { distribution, file, steps, at_end } => {
            let path = one(distribution, "")?;
            let spec = match (file, steps) {
                (Some(file), None) => spec_from_file(file, *at_end)?,
                (None, Some(steps)) => spec_from_steps(steps, at_end.unwrap_or(AtEnd::Hold))?,
                _ => return Err(Error::Usage("give either --file or --steps".into())),
            };
            Call { method: Method::PUT, path, body: spec.to_string().into_bytes() }
        }
        Action::Pause { distribution, reason } => {
            Call { method: Method::POST, path: one(distribution, "/pause")?, body: reason_body(reason) }
        }
        Action::Resume { distribution } => {
            Call { method: Method::POST, path: one(distribution, "/resume")?, body: reason_body(&None) }
        }
        Action::Abort { distribution, reason } => {
            Call { method: Method::POST, path: one(distribution, "/abort")?, body: reason_body(reason) }
        }
    })
}

/// Percent-encodes everything but `A-Z a-z 0-9 - _ . ~`, so an id is always one path segment.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The spec from `--steps`: `{"steps": [{"weight": 0.01, "bake": "30s"}, ...], "at_end": "hold"}`.
fn spec_from_steps(text: &str, at_end: AtEnd) -> Result<Value, Error> {
    let mut steps = Vec::new();
    for (i, item) in text.split(',').enumerate() {
        let n = i + 1;
        let item = item.trim();
        let bad = |why: String| Error::Usage(format!("--steps: step {n} ({item:?}): {why}"));
        if item.is_empty() {
            return Err(Error::Usage(format!("--steps: step {n} is empty; write SHARE%:BAKE pairs like 1%:30s,5%:1m")));
        }
        let Some((share, bake)) = item.split_once(':') else {
            return Err(bad("wants SHARE%:BAKE, like 5%:1m".into()));
        };
        let weight = parse_share(share.trim()).map_err(bad)?;
        let bake = bake.trim();
        if let Err(e) = humantime::parse_duration(bake) {
            return Err(bad(format!("{bake:?} is not a duration like 30s, 2m or 1h 30m ({e})")));
        }
        let mut step = Map::new();
        step.insert("weight".into(), Value::from(weight));
        step.insert("bake".into(), Value::String(bake.to_string()));
        steps.push(Value::Object(step));
    }
    let mut spec = Map::new();
    spec.insert("steps".into(), Value::Array(steps));
    spec.insert("at_end".into(), Value::String(at_end.as_str().into()));
    Ok(Value::Object(spec))
}

/// `5%`, `0.5%`, `.5%` to the fraction (0.05, 0.005): above 0 and at most 100 %. The decimal point is
/// moved in the text, so `0.1%` is exactly the double nearest 0.001, not 0.1 / 100.
fn parse_share(share: &str) -> Result<f64, String> {
    let Some(number) = share.strip_suffix('%').map(str::trim) else {
        return Err(format!("the share {share:?} needs a % sign, like 5%"));
    };
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let dots = number.chars().filter(|c| *c == '.').count();
    if digits == 0 || dots > 1 || digits + dots != number.len() {
        return Err(format!("the share {share:?} is not a percentage like 5% or 0.5%"));
    }
    let number = number.trim_end_matches('.');
    let weight: f64 = format!("0{number}e-2").parse().map_err(|_| format!("the share {share:?} is not a number"))?;
    if !(weight > 0.0 && weight <= 1.0) {
        return Err(format!("the share {share:?} must be above 0% and at most 100%"));
    }
    Ok(weight)
}

/// The spec from `--file` (or standard input for `-`), sent as it is but for `at_end` when
/// `--at-end` is given.
fn spec_from_file(path: &Path, at_end: Option<AtEnd>) -> Result<Value, Error> {
    let name = path.display();
    let bytes = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(SPEC_CAP + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Usage(format!("cannot read the spec from standard input: {e}")))?;
        if bytes.len() as u64 > SPEC_CAP {
            return Err(Error::Usage(format!("the spec on standard input is larger than {SPEC_CAP} bytes")));
        }
        bytes
    } else {
        crate::files::read(path, SPEC_CAP).map_err(|e| Error::Usage(e.to_string()))?
    };
    let spec: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Usage(format!("{name}: not JSON: {e}")))?;
    let Value::Object(mut spec) = spec else {
        return Err(Error::Usage(format!("{name}: the spec must be a JSON object, like {{\"steps\": [...]}}")));
    };
    if let Some(at_end) = at_end {
        spec.insert("at_end".into(), Value::String(at_end.as_str().into()));
    }
    Ok(Value::Object(spec))
}

/// What a successful subcommand prints.
#[derive(Debug)]
struct Output {
    text: String,
    /// Said on standard error: the answer was printed as JSON because it could not be read as a report.
    warning: Option<String>,
}

/// Runs a subcommand: the config file, the call, the report.
async fn execute(args: &RolloutArgs, env: &Environment, timeouts: Timeouts) -> Result<Output, Error> {
    let call = plan(&args.action)?;
    let config = match &args.config {
        Some(path) => Some(config::load(path).map_err(|e| Error::Config(e.to_string()))?),
        None => None,
    };
    let target = target(args.endpoint.as_deref(), config.as_ref(), env)?;
    let answer = send(&target, &call, SystemTime::now(), timeouts).await?;
    let value = decode(&target, answer)?;
    if args.json {
        let text = serde_json::to_string_pretty(&value).map_err(|e| Error::Call(e.to_string()))?;
        return Ok(Output { text: text + "\n", warning: None });
    }
    let now_ms = epoch_ms(SystemTime::now());
    let report = match &args.action {
        Action::List => Rollouts::deserialize(&value).map(|list| format_list(&list.rollouts)),
        _ => Rollout::deserialize(&value).map(|r| format_status(&r, now_ms)),
    };
    Ok(match report {
        Ok(text) => Output { text, warning: None },
        Err(e) => Output {
            text: serde_json::to_string_pretty(&value).unwrap_or_default() + "\n",
            warning: Some(format!("the answer is not the rollout this client knows ({e}); here it is as JSON")),
        },
    })
}

/// The request for `call`: `Host`, and when there is a key, `X-Amz-Date` and the SigV4 `Authorization`.
fn request(target: &Target, call: &Call, now: SystemTime) -> Result<Request<Full<Bytes>>, Error> {
    let mut headers = HeaderMap::new();
    let value = |v: &str, what: &str| {
        HeaderValue::from_str(v).map_err(|_| Error::Usage(format!("{what} cannot be sent in an HTTP header")))
    };
    headers.insert(header::HOST, value(&target.authority, "the endpoint's host")?);
    if !call.body.is_empty() {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Some(key) = &target.key {
        headers.insert("x-amz-date", value(&sigv4::format_amz_date(now), "the date")?);
        let signed = Signed {
            method: call.method.as_str(),
            path: &call.path,
            query: None,
            headers: &headers,
            authority: Some(&target.authority),
            body: &call.body,
        };
        let authorization = sigv4::authorization(&signed, key, &target.region, SERVICE, true);
        headers.insert(header::AUTHORIZATION, value(&authorization, "the access key id or region")?);
    }
    // Not signed (botocore leaves it out too): a proxy in between may rewrite it.
    headers.insert(header::USER_AGENT, HeaderValue::from_static(concat!("edgesplit/", env!("CARGO_PKG_VERSION"))));
    let mut builder = Request::builder().method(call.method.clone()).uri(call.path.as_str());
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    builder.body(Full::new(Bytes::from(call.body.clone()))).map_err(|e| Error::Usage(e.to_string()))
}

/// The answer to one call, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Sends `call` on a new connection and reads the answer: within `timeouts.connect` to connect, and
/// `timeouts.call` for all of it.
async fn send(target: &Target, call: &Call, now: SystemTime, timeouts: Timeouts) -> Result<Answer, Error> {
    let request = request(target, call, now)?;
    let endpoint = target.url();
    let exchange = async {
        let connect = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
        let stream = match tokio::time::timeout(timeouts.connect, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Error::Connect { endpoint: endpoint.clone(), why: e.to_string() }),
            Err(_) => {
                let why = format!("no connection within {}", humantime::format_duration(timeouts.connect));
                return Err(Error::Connect { endpoint: endpoint.clone(), why });
            }
        };
        let broken = |e: &dyn fmt::Display| Error::Call(format!("the call to {endpoint} failed: {e}"));
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| broken(&e))?;
        let driver = tokio::spawn(connection);
        let answer = async {
            let response = sender.send_request(request).await.map_err(|e| broken(&e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, ANSWER_CAP).collect().await.map_err(|e| broken(&e))?.to_bytes();
            Ok(Answer { status: parts.status, headers: parts.headers, body })
        }
        .await;
        driver.abort();
        answer
    };
    match tokio::time::timeout(timeouts.call, exchange).await {
        Ok(answer) => answer,
        Err(_) => {
            Err(Error::Call(format!("no answer from {endpoint} within {}", humantime::format_duration(timeouts.call))))
        }
    }
}

/// A 2xx answer's JSON, or the API's refusal as [`Error::Refused`].
fn decode(target: &Target, answer: Answer) -> Result<Value, Error> {
    if answer.status.is_success() {
        return serde_json::from_slice(&answer.body).map_err(|e| {
            Error::Call(format!("{} answered {} with a body that is not JSON: {e}", target.url(), answer.status))
        });
    }
    match refusal(&answer) {
        // The listener's own 404 (plain text), not the API's: no rollout endpoints at that address.
        Error::Refused { kind, message } if answer.status == StatusCode::NOT_FOUND && kind.starts_with("HTTP ") => {
            let message = format!("{message} (is {} an edgesplit with rollouts?)", target.url());
            Err(Error::Refused { kind, message })
        }
        e => Err(e),
    }
}

/// The error an answer carries: `__type` (without any `namespace#`) and `message` from the JSON body,
/// else the `x-amzn-errortype` header, else the HTTP status.
fn refusal(answer: &Answer) -> Error {
    let body: Option<Map<String, Value>> = serde_json::from_slice(&answer.body).ok();
    let field = |names: &[&str]| {
        names.iter().find_map(|n| body.as_ref()?.get(*n)?.as_str().map(str::to_string)).filter(|s| !s.is_empty())
    };
    let header = answer.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_string);
    let kind = field(&["__type", "code", "Code"]).or(header).map(|t| {
        let t = t.rsplit_once('#').map_or(t.as_str(), |(_, name)| name);
        t.split(':').next().unwrap_or(t).to_string()
    });
    let kind = kind.unwrap_or_else(|| format!("HTTP {}", answer.status));
    let message = field(&["message", "Message"]).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&answer.body);
        let text = text.trim();
        if text.is_empty() {
            answer.status.canonical_reason().unwrap_or("no message").to_string()
        } else {
            clip(text, 200)
        }
    });
    Error::Refused { kind, message }
}

/// The rollout list as the API answers it.
#[derive(Debug, Deserialize)]
struct Rollouts {
    #[serde(default)]
    rollouts: Vec<Rollout>,
}

/// The fields of a rollout the report shows; the others are ignored, and a missing one is shown as
/// missing rather than refused, so the client keeps working as the server adds fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Rollout {
    distribution: String,
    id: Option<String>,
    policy_id: Option<String>,
    /// `project/launch`, when the rollout drives a launch instead of a policy.
    launch: Option<String>,
    state: Option<String>,
    step: Option<u64>,
    steps: Option<u64>,
    weight: Option<f64>,
    started_ms: Option<u64>,
    step_started_ms: Option<u64>,
    reason: Option<String>,
    spec: Option<SpecView>,
    guards: Option<Guards>,
    history: Vec<Event>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SpecView {
    steps: Vec<StepView>,
    at_end: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StepView {
    weight: Option<f64>,
    bake: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Guards {
    window_ms: Option<u64>,
    primary: Option<Arm>,
    staging: Option<Arm>,
    verdict: Option<String>,
    detail: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Arm {
    requests: Option<u64>,
    errors: Option<u64>,
    error_rate: Option<f64>,
    p99_ms: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Event {
    at_ms: Option<u64>,
    event: String,
    step: Option<u64>,
    weight: Option<f64>,
    detail: Option<String>,
}

/// `list`: a header and one aligned line per rollout.
fn format_list(rollouts: &[Rollout]) -> String {
    if rollouts.is_empty() {
        return "no rollouts\n".into();
    }
    let mut rows = vec![["DISTRIBUTION", "STATE", "STEP", "WEIGHT", "REASON"].map(String::from)];
    for r in rollouts {
        rows.push([
            r.distribution.clone(),
            r.state.clone().unwrap_or_else(|| "?".into()),
            step_of(r),
            r.weight.map_or_else(|| "?".into(), percent),
            r.reason.as_deref().map_or_else(String::new, |t| clip(t, LIST_REASON_CHARS)),
        ]);
    }
    let mut widths = [0; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let _ = write!(line, "{cell:<w$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `2/3`.
fn step_of(r: &Rollout) -> String {
    let n = |v: Option<u64>| v.map_or_else(|| "?".into(), |v| v.to_string());
    format!("{}/{}", n(r.step), n(r.steps))
}

/// `status` (and what start, pause, resume and abort print): the rollout as a readable block.
fn format_status(r: &Rollout, now_ms: u64) -> String {
    let mut out = String::new();
    let state = r.state.as_deref().unwrap_or("?");
    let n = |v: Option<u64>| v.map_or_else(|| "?".into(), |v| v.to_string());
    let _ = write!(out, "{}: {state}, step {} of {}", r.distribution, n(r.step), n(r.steps));
    if let Some(w) = r.weight {
        let _ = write!(out, ", {} to staging", percent(w));
    }
    out.push('\n');
    let line = |out: &mut String, label: &str, text: &str| {
        let _ = writeln!(out, "{}", format!("  {label:<10} {text}").trim_end());
    };

    let spec = r.spec.as_ref();
    let current = r.step.and_then(|s| spec?.steps.get(usize::try_from(s).ok()?.checked_sub(1)?));
    let bake = current.and_then(|s| s.bake.as_deref());
    if matches!(state, "running" | "paused")
        && let Some(since) = r.step_started_ms
    {
        let elapsed = ago(now_ms, since);
        let text = match bake {
            Some(bake) => format!("{elapsed}, bake {bake}"),
            None => elapsed,
        };
        line(&mut out, "in step", &text);
    }
    if let Some(spec) = spec.filter(|s| !s.steps.is_empty()) {
        let steps: Vec<String> = spec
            .steps
            .iter()
            .map(|s| {
                let w = s.weight.map_or_else(|| "?".into(), percent);
                format!("{w} for {}", s.bake.as_deref().unwrap_or("?"))
            })
            .collect();
        let end = spec.at_end.as_deref().unwrap_or("hold");
        line(&mut out, "steps", &format!("{}, then {end}", steps.join(", ")));
    }

    if let Some(g) = &r.guards {
        let mut text = g.verdict.clone().unwrap_or_else(|| "?".into());
        if let Some(window) = g.window_ms {
            let _ = write!(text, " over the last {}", seconds(window));
        }
        if let Some(detail) = g.detail.as_deref().filter(|d| !d.is_empty()) {
            let _ = write!(text, ": {detail}");
        }
        line(&mut out, "guards", &text);
        for (name, arm) in [("primary", &g.primary), ("staging", &g.staging)] {
            let Some(arm) = arm else { continue };
            let mut text = format!("{} requests, {} errors", n(arm.requests), n(arm.errors));
            if let Some(rate) = arm.error_rate {
                let _ = write!(text, " ({})", percent(rate));
            }
            let _ =
                write!(text, ", p99 {}", arm.p99_ms.map_or_else(|| "-".into(), |ms| format!("{} ms", decimal(ms, 1))));
            line(&mut out, &format!("  {name}"), &text);
        }
    }
    if let Some(reason) = r.reason.as_deref().filter(|t| !t.is_empty()) {
        line(&mut out, "reason", reason);
    }
    let mut about = Vec::new();
    if let Some(id) = &r.id {
        about.push(id.clone());
    }
    if let Some(policy) = r.policy_id.as_ref().filter(|p| !p.is_empty()) {
        about.push(format!("policy {policy}"));
    }
    if let Some(launch) = &r.launch {
        about.push(format!("launch {launch}"));
    }
    if let Some(started) = r.started_ms {
        about.push(format!("started {} ({} ago)", timestamp(started), ago(now_ms, started)));
    }
    if !about.is_empty() {
        line(&mut out, "rollout", &about.join(", "));
    }

    if !r.history.is_empty() {
        let skip = r.history.len().saturating_sub(HISTORY_SHOWN);
        let title = if skip > 0 { format!("the last {HISTORY_SHOWN} of {}", r.history.len()) } else { String::new() };
        line(&mut out, "history", &title);
        let width = r.history[skip..].iter().map(|e| e.event.chars().count()).max().unwrap_or(0);
        for e in &r.history[skip..] {
            let mut text = format!("{:<width$}", e.event);
            if let Some(step) = e.step {
                let _ = write!(text, "  step {step}");
            }
            if let Some(w) = e.weight {
                let _ = write!(text, "  {}", percent(w));
            }
            if let Some(detail) = e.detail.as_deref().filter(|d| !d.is_empty()) {
                let _ = write!(text, "  {detail}");
            }
            let at = e.at_ms.map_or_else(|| "?".into(), timestamp);
            let _ = writeln!(out, "    {at}  {}", text.trim_end());
        }
    }
    out
}

/// A fraction as a percentage with at most two decimals: `0.05` is `5%`, `0.005` is `0.5%`.
fn percent(fraction: f64) -> String {
    if !fraction.is_finite() {
        return "?".into();
    }
    if fraction > 0.0 && fraction < 0.00005 {
        return "<0.01%".into();
    }
    format!("{}%", decimal(fraction * 100.0, 2))
}

/// `x` with at most `places` decimals, trailing zeros dropped.
fn decimal(x: f64, places: usize) -> String {
    let mut s = format!("{x:.places$}");
    if s.contains('.') {
        s.truncate(s.trim_end_matches('0').trim_end_matches('.').len());
    }
    if s == "-0" { "0".into() } else { s }
}

/// Milliseconds as whole seconds, in humantime's words (`1m 30s`).
fn seconds(ms: u64) -> String {
    humantime::format_duration(Duration::from_secs(ms.saturating_add(500) / 1000)).to_string()
}

/// How long ago `then_ms` was.
fn ago(now_ms: u64, then_ms: u64) -> String {
    seconds(now_ms.saturating_sub(then_ms))
}

/// Epoch milliseconds as RFC 3339 UTC, to the second.
fn timestamp(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `text` on one line, at most `chars` characters, with `…` when cut.
fn clip(text: &str, chars: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= chars {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use clap::Parser;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use serde_json::json;
    use tokio::net::TcpListener;

    use super::*;

    /// `edgesplit rollout ...` as main.rs wires it.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, Subcommand)]
    enum Top {
        Rollout(RolloutArgs),
    }

    fn args(line: &[&str]) -> RolloutArgs {
        let all = ["edgesplit", "rollout"].iter().chain(line).copied();
        let Top::Rollout(args) = Cli::try_parse_from(all).unwrap().command;
        args
    }

    fn key() -> AccessKey {
        AccessKey { id: "AKID".into(), secret: "s3cret".into() }
    }

    fn config_text(admin: &str) -> String {
        format!(
            "[[listener]]\nname = \"http\"\nlisten = \"127.0.0.1:0\"\n\n[admin]\n{admin}\n\n\
             [[distribution]]\nid = \"web\"\ndomains = [\"*\"]\n[distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n"
        )
    }

    fn parsed_config(admin: &str) -> config::Config {
        config::parse_to_run(&config_text(admin), "t.toml", Path::new(".")).unwrap()
    }

    #[test]
    fn steps_become_the_spec() {
        let spec = spec_from_steps("1%:30s,5%:1m,15%:2m", AtEnd::Hold).unwrap();
        assert_eq!(
            spec,
            json!({"steps": [{"weight": 0.01, "bake": "30s"}, {"weight": 0.05, "bake": "1m"}, {"weight": 0.15, "bake": "2m"}],
                   "at_end": "hold"})
        );
        let spec = spec_from_steps(" 0.5% : 1h 30m , .1%:10s,100%:5s", AtEnd::Disable).unwrap();
        assert_eq!(
            spec,
            json!({"steps": [{"weight": 0.005, "bake": "1h 30m"}, {"weight": 0.001, "bake": "10s"}, {"weight": 1.0, "bake": "5s"}],
                   "at_end": "disable"})
        );
    }

    #[test]
    fn bad_steps_are_refused_with_the_step_and_the_reason() {
        for (text, says) in [
            ("", "step 1 is empty"),
            ("1%:30s,", "step 2 is empty"),
            ("1%:30s,,5%:1m", "step 2 is empty"),
            ("5:1m", "needs a % sign"),
            ("5%", "wants SHARE%:BAKE"),
            ("0%:1m", "above 0% and at most 100%"),
            ("0.0%:1m", "above 0% and at most 100%"),
            ("101%:1m", "above 0% and at most 100%"),
            ("-1%:1m", "not a percentage"),
            ("1e1%:1m", "not a percentage"),
            ("1.2.3%:1m", "not a percentage"),
            ("inf%:1m", "not a percentage"),
            ("%:1m", "not a percentage"),
            ("abc%:1m", "not a percentage"),
            ("1%:soon", "\"soon\" is not a duration"),
            ("1%:", "\"\" is not a duration"),
            ("1%:30s,5%:1x", "step 2 (\"5%:1x\")"),
        ] {
            let e = spec_from_steps(text, AtEnd::Hold).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{text}");
            assert!(e.to_string().contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn clap_wants_one_of_file_and_steps_and_takes_options_anywhere() {
        let parse = |line: &[&str]| {
            let all = ["edgesplit", "rollout"].iter().chain(line).copied();
            Cli::try_parse_from(all).map(|_| ())
        };
        assert!(parse(&["start", "shop"]).is_err());
        assert!(parse(&["start", "shop", "--file", "a.json", "--steps", "1%:1s"]).is_err());
        assert!(parse(&["start", "shop", "--steps", "1%:1s", "--at-end", "sometime"]).is_err());
        let a = args(&["start", "shop", "--steps", "1%:1s", "--at-end", "disable", "--json", "--endpoint", "h:1"]);
        assert!(a.json);
        assert_eq!(a.endpoint.as_deref(), Some("h:1"));
        assert!(matches!(a.action, Action::Start { at_end: Some(AtEnd::Disable), .. }));
        let a = args(&["--config", "x.toml", "list"]);
        assert_eq!(a.config, Some(PathBuf::from("x.toml")));
    }

    #[test]
    fn each_subcommand_is_one_call() {
        let call = |line: &[&str]| plan(&args(line).action).unwrap();
        assert_eq!(call(&["list"]), Call { method: Method::GET, path: "/edgesplit/rollouts".into(), body: vec![] });
        assert_eq!(call(&["status", "shop"]).path, "/edgesplit/rollouts/shop");
        assert_eq!(call(&["status", "a/b c%"]).path, "/edgesplit/rollouts/a%2Fb%20c%25");
        let pause = call(&["pause", "shop", "--reason", "lunch"]);
        assert_eq!((pause.method, pause.path.as_str()), (Method::POST, "/edgesplit/rollouts/shop/pause"));
        assert_eq!(serde_json::from_slice::<Value>(&pause.body).unwrap(), json!({"reason": "lunch"}));
        assert_eq!(call(&["resume", "shop"]).body, b"{}");
        assert_eq!(call(&["abort", "shop"]).path, "/edgesplit/rollouts/shop/abort");
        let start = call(&["start", "shop", "--steps", "1%:30s"]);
        assert_eq!(start.method, Method::PUT);
        assert_eq!(
            serde_json::from_slice::<Value>(&start.body).unwrap(),
            json!({"steps": [{"weight": 0.01, "bake": "30s"}], "at_end": "hold"})
        );
        assert_eq!(plan(&args(&["status", ""]).action).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn a_spec_file_is_sent_as_it_is_but_for_at_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spec.json");
        let spec = json!({"steps": [{"weight": 0.01, "bake": "30s"}], "guards": {"max_error_rate": 0.05}});
        std::fs::write(&path, spec.to_string()).unwrap();
        assert_eq!(spec_from_file(&path, None).unwrap(), spec);
        let mut with_end = spec.clone();
        with_end["at_end"] = json!("disable");
        assert_eq!(spec_from_file(&path, Some(AtEnd::Disable)).unwrap(), with_end);

        std::fs::write(&path, "[1, 2]").unwrap();
        assert!(spec_from_file(&path, None).unwrap_err().to_string().contains("must be a JSON object"));
        std::fs::write(&path, "{").unwrap();
        assert!(spec_from_file(&path, None).unwrap_err().to_string().contains("not JSON"));
        let missing = spec_from_file(&dir.path().join("nope.json"), None).unwrap_err();
        assert_eq!(missing.exit_code(), 2);
        assert!(missing.to_string().contains("nope.json"), "{missing}");
    }

    #[test]
    fn the_endpoint_comes_from_the_flag_then_the_file_then_the_default() {
        let env = Environment::default();
        let t = target(None, None, &env).unwrap();
        assert_eq!((t.authority.as_str(), t.host.as_str(), t.port), ("127.0.0.1:9901", "127.0.0.1", 9901));
        assert_eq!(t.region, "us-east-1");

        let c = parsed_config("listen = \"0.0.0.0:9911\"\nauth = \"none\"");
        assert_eq!(target(None, Some(&c), &env).unwrap().authority, "127.0.0.1:9911");
        let c6 = parsed_config("listen = \"[::]:9911\"\nauth = \"none\"");
        let t = target(None, Some(&c6), &env).unwrap();
        assert_eq!((t.authority.as_str(), t.host.as_str()), ("[::1]:9911", "::1"));
        let t = target(Some("http://admin.internal:7000/"), Some(&c), &env).unwrap();
        assert_eq!((t.authority.as_str(), t.host.as_str(), t.port), ("admin.internal:7000", "admin.internal", 7000));
        let t = target(Some("[::1]:7000"), None, &env).unwrap();
        assert_eq!((t.authority.as_str(), t.host.as_str(), t.port), ("[::1]:7000", "::1", 7000));
        assert_eq!(target(Some("http://h"), None, &env).unwrap().port, 80);

        for (bad, says) in [
            ("https://h:1", "plain HTTP"),
            ("ftp://h:1", "not an http:// URL"),
            ("http://h:1/admin", "without a path"),
            ("http://u:p@h:1", "user information"),
            ("http://", "not a URL"),
            ("h:notaport", "the port is not a number"),
            ("h:0", "the port is not a number"),
            ("h:", "the port is not a number"),
        ] {
            let e = target(Some(bad), None, &env).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
        let c0 = parsed_config("listen = \"127.0.0.1:0\"\nauth = \"none\"");
        assert!(target(None, Some(&c0), &env).unwrap_err().to_string().contains("pass --endpoint"));
    }

    #[test]
    fn the_environments_key_wins_over_the_files() {
        let c = parsed_config("listen = \"127.0.0.1:9901\"\naccess_key_id = \"FILEKEY\"\nsecret_access_key = \"f\"");
        let none = Environment::default();
        assert_eq!(target(None, Some(&c), &none).unwrap().key.unwrap().id, "FILEKEY");
        let env = Environment { key: Some(key()), region: Some("eu-west-1".into()) };
        let t = target(None, Some(&c), &env).unwrap();
        assert_eq!((t.key.unwrap().id.as_str(), t.region.as_str()), ("AKID", "eu-west-1"));
        assert_eq!(target(None, None, &none).unwrap().key, None);
    }

    #[test]
    fn refusals_read_type_and_message() {
        let answer = |status: u16, headers: &[(&str, &str)], body: &str| {
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
            }
            refusal(&Answer {
                status: StatusCode::from_u16(status).unwrap(),
                headers: h,
                body: Bytes::from(body.to_string()),
            })
        };
        let refused = |kind: &str, message: &str| Error::Refused { kind: kind.into(), message: message.into() };
        assert_eq!(
            answer(404, &[], r#"{"__type": "ResourceNotFoundException", "message": "no rollout for shop"}"#),
            refused("ResourceNotFoundException", "no rollout for shop")
        );
        assert_eq!(
            answer(
                409,
                &[],
                r#"{"__type": "com.amazonaws.edgesplit#ConflictException", "Message": "already running"}"#
            ),
            refused("ConflictException", "already running")
        );
        assert_eq!(
            answer(403, &[("x-amzn-errortype", "AccessDeniedException:http://internal")], r#"{"message": "nope"}"#),
            refused("AccessDeniedException", "nope")
        );
        assert_eq!(answer(502, &[], "bad\ngateway"), refused("HTTP 502 Bad Gateway", "bad gateway"));
        assert_eq!(answer(503, &[], ""), refused("HTTP 503 Service Unavailable", "Service Unavailable"));
        assert_eq!(refused("ValidationException", "x").to_string(), "ValidationException: x");
    }

    fn full_rollout() -> Value {
        json!({
            "distribution": "shop", "id": "7d0c", "policy_id": "E123", "state": "running",
            "step": 2, "steps": 3, "weight": 0.05,
            "started_ms": 1_733_400_000_000_u64, "step_started_ms": 1_733_400_030_000_u64, "updated_ms": 1_733_400_060_000_u64,
            "reason": null,
            "spec": {"steps": [{"weight": 0.01, "bake": "30s"}, {"weight": 0.05, "bake": "1m"}, {"weight": 0.15, "bake": "2m"}],
                     "at_end": "hold", "guards": {"anything": true}},
            "guards": {"window_ms": 12000,
                       "primary": {"requests": 1200, "errors": 3, "error_rate": 0.0025, "p99_ms": 12.5},
                       "staging": {"requests": 130, "errors": 0, "error_rate": 0.0, "p99_ms": null},
                       "verdict": "need_more", "detail": "staging has 130 of the 200 requests needed"},
            "history": [
                {"at_ms": 1_733_400_000_000_u64, "event": "started", "step": 1, "weight": 0.01, "detail": null},
                {"at_ms": 1_733_400_030_000_u64, "event": "advanced", "step": 2, "weight": 0.05, "detail": "guards passed"}
            ],
            "something_new": [1, 2, 3]
        })
    }

    #[test]
    fn status_reads_as_a_block() {
        let r = Rollout::deserialize(&full_rollout()).unwrap();
        let text = format_status(&r, 1_733_400_072_000);
        assert_eq!(
            text,
            "shop: running, step 2 of 3, 5% to staging\n\
             \x20 in step    42s, bake 1m\n\
             \x20 steps      1% for 30s, 5% for 1m, 15% for 2m, then hold\n\
             \x20 guards     need_more over the last 12s: staging has 130 of the 200 requests needed\n\
             \x20   primary  1200 requests, 3 errors (0.25%), p99 12.5 ms\n\
             \x20   staging  130 requests, 0 errors (0%), p99 -\n\
             \x20 rollout    7d0c, policy E123, started 2024-12-05T12:00:00Z (1m 12s ago)\n\
             \x20 history\n\
             \x20   2024-12-05T12:00:00Z  started   step 1  1%\n\
             \x20   2024-12-05T12:00:30Z  advanced  step 2  5%  guards passed\n"
        );
    }

    #[test]
    fn a_finished_or_sparse_rollout_still_reads() {
        let mut v = full_rollout();
        v["state"] = json!("rolled_back");
        v["weight"] = json!(0.0);
        v["reason"] = json!("staging error rate 4.1% against primary 0.3% (p = 0.0004): breach");
        v["history"] = json!(
            (0..14)
                .map(|i| json!({"at_ms": 1_733_400_000_000_u64 + i * 1000, "event": "advanced", "step": i}))
                .collect::<Vec<_>>()
        );
        let text = format_status(&Rollout::deserialize(&v).unwrap(), 1_733_400_072_000);
        assert!(text.starts_with("shop: rolled_back, step 2 of 3, 0% to staging\n"), "{text}");
        assert!(!text.contains("in step"), "{text}");
        assert!(text.contains("  reason     staging error rate 4.1%"), "{text}");
        assert!(text.contains("history    the last 10 of 14\n"), "{text}");
        assert_eq!(text.lines().filter(|l| l.contains("advanced")).count(), 10);
        assert!(text.ends_with("2024-12-05T12:00:13Z  advanced  step 13\n"), "{text}");

        let sparse = Rollout::deserialize(&json!({"distribution": "x"})).unwrap();
        assert_eq!(format_status(&sparse, 0), "x: ?, step ? of ?\n");
    }

    #[test]
    fn list_is_one_aligned_line_per_rollout() {
        let mut shop = full_rollout();
        shop["reason"] =
            json!("a reason that goes on and on and on, well past the sixty characters a list line has room for");
        let list = json!({"rollouts": [shop, {"distribution": "blog-eu", "state": "finished", "step": 3, "steps": 3, "weight": 0.005}]});
        let text = format_list(&Rollouts::deserialize(&list).unwrap().rollouts);
        assert_eq!(
            text,
            "DISTRIBUTION  STATE     STEP  WEIGHT  REASON\n\
             shop          running   2/3   5%      a reason that goes on and on and on, well past the sixty ch…\n\
             blog-eu       finished  3/3   0.5%\n"
        );
        assert_eq!(format_list(&[]), "no rollouts\n");
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(percent(0.01), "1%");
        assert_eq!(percent(0.05), "5%");
        assert_eq!(percent(0.15), "15%");
        assert_eq!(percent(0.005), "0.5%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.00001), "<0.01%");
        assert_eq!(percent(-0.0), "0%");
        assert_eq!(percent(f64::NAN), "?");
        assert_eq!(seconds(90_400), "1m 30s");
        assert_eq!(clip("ab\ncd", 10), "ab cd");
        assert_eq!(clip("abcdef", 4), "abc…");
    }

    /// What the test server saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    /// A one-shot admin API on 127.0.0.1:0 that records each request, checks its signature the way the
    /// admin listener does when it is signed, and answers `status` with `body`.
    async fn server(status: u16, body: Value) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, body) = (log.clone(), body.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (log, body) = (log.clone(), body.clone());
                        async move {
                            let (parts, incoming) = req.into_parts();
                            let bytes = incoming.collect().await.unwrap().to_bytes().to_vec();
                            log.lock().unwrap().push(Seen {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_string(),
                                headers: parts.headers,
                                body: bytes,
                            });
                            let response = http::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body.to_string())))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, seen)
    }

    /// The admin listener's own check of a request the client sent.
    fn verify(seen: &Seen) -> Result<String, sigv4::Denied> {
        let signed = Signed {
            method: &seen.method,
            path: &seen.path,
            query: None,
            headers: &seen.headers,
            authority: None,
            body: &seen.body,
        };
        let scope = sigv4::Scope { service: "edgesplit", region: None, double_encode: true };
        let keys = [key()];
        sigv4::verify(&signed, &scope, &keys, SystemTime::now()).map(str::to_string)
    }

    fn signed_env() -> Environment {
        Environment { key: Some(key()), region: Some("eu-central-1".into()) }
    }

    #[tokio::test]
    async fn status_is_a_signed_get_and_prints_the_block() {
        let (addr, seen) = server(200, full_rollout()).await;
        let a = args(&["--endpoint", &format!("http://{addr}"), "status", "shop/eu"]);
        let out = execute(&a, &signed_env(), Timeouts::DEFAULT).await.unwrap();
        assert!(out.text.starts_with("shop: running, step 2 of 3, 5% to staging\n"), "{}", out.text);
        assert!(out.warning.is_none());
        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!((seen.method.as_str(), seen.path.as_str()), ("GET", "/edgesplit/rollouts/shop%2Feu"));
        assert_eq!(seen.headers["host"], addr.to_string().as_str());
        assert!(seen.body.is_empty());
        let auth = seen.headers["authorization"].to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"), "{auth}");
        assert!(
            auth.contains("/eu-central-1/edgesplit/aws4_request, SignedHeaders=host;x-amz-date, Signature="),
            "{auth}"
        );
        assert_eq!(verify(&seen).unwrap(), "AKID");
    }

    #[tokio::test]
    async fn start_puts_the_spec_signed_with_its_payload_and_json_prints_the_answer() {
        let (addr, seen) = server(201, full_rollout()).await;
        let endpoint = addr.to_string();
        let a = args(&["start", "shop", "--steps", "1%:30s,5%:1m", "--endpoint", &endpoint, "--json"]);
        let out = execute(&a, &signed_env(), Timeouts::DEFAULT).await.unwrap();
        assert_eq!(serde_json::from_str::<Value>(&out.text).unwrap(), full_rollout());
        assert!(out.text.contains("\n  \"distribution\": \"shop\""), "not pretty: {}", out.text);
        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!((seen.method.as_str(), seen.path.as_str()), ("PUT", "/edgesplit/rollouts/shop"));
        assert_eq!(seen.headers["content-type"], "application/json");
        assert_eq!(
            serde_json::from_slice::<Value>(&seen.body).unwrap(),
            json!({"steps": [{"weight": 0.01, "bake": "30s"}, {"weight": 0.05, "bake": "1m"}], "at_end": "hold"})
        );
        let auth = seen.headers["authorization"].to_str().unwrap();
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date,"), "{auth}");
        assert_eq!(verify(&seen).unwrap(), "AKID");

        // A body changed after signing no longer verifies: the signature covers the payload.
        let mut tampered = seen.clone();
        tampered.body = br#"{"steps":[{"weight":1.0,"bake":"1s"}]}"#.to_vec();
        assert_eq!(verify(&tampered).unwrap_err(), sigv4::Denied::Signature);
    }

    #[tokio::test]
    async fn without_a_key_the_call_goes_unsigned() {
        let (addr, seen) = server(200, full_rollout()).await;
        let a = args(&["--endpoint", &addr.to_string(), "abort", "shop", "--reason", "bad deploy"]);
        execute(&a, &Environment::default(), Timeouts::DEFAULT).await.unwrap();
        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/edgesplit/rollouts/shop/abort"));
        assert!(!seen.headers.contains_key("authorization"));
        assert!(!seen.headers.contains_key("x-amz-date"));
        assert_eq!(serde_json::from_slice::<Value>(&seen.body).unwrap(), json!({"reason": "bad deploy"}));
    }

    #[tokio::test]
    async fn the_config_file_gives_endpoint_and_key() {
        let (addr, seen) = server(200, json!({"rollouts": []})).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edgesplit.toml");
        let admin = format!("listen = \"{addr}\"\naccess_key_id = \"AKID\"\nsecret_access_key = \"s3cret\"");
        std::fs::write(&path, config_text(&admin)).unwrap();
        let a = args(&["list", "--config", path.to_str().unwrap()]);
        let out = execute(&a, &Environment::default(), Timeouts::DEFAULT).await.unwrap();
        assert_eq!(out.text, "no rollouts\n");
        assert_eq!(verify(&seen.lock().unwrap()[0]).unwrap(), "AKID");

        std::fs::write(&path, "[admin]\nlisten = 3\n").unwrap();
        let e = execute(&a, &Environment::default(), Timeouts::DEFAULT).await.unwrap_err();
        assert!(matches!(&e, Error::Config(text) if text.contains("edgesplit.toml:")), "{e:?}");
        assert_eq!(e.exit_code(), 2);
    }

    #[tokio::test]
    async fn refusals_and_odd_answers() {
        let (addr, _) =
            server(404, json!({"__type": "ResourceNotFoundException", "message": "no rollout for shop"})).await;
        let a = args(&["--endpoint", &addr.to_string(), "status", "shop"]);
        let e = execute(&a, &signed_env(), Timeouts::DEFAULT).await.unwrap_err();
        assert_eq!(e.to_string(), "ResourceNotFoundException: no rollout for shop");
        assert_eq!(e.exit_code(), 1);

        // An admin listener without the rollout API answers its plain-text 404.
        let (addr, _) = server(404, json!("not found")).await;
        let a = args(&["--endpoint", &addr.to_string(), "list"]);
        let e = execute(&a, &signed_env(), Timeouts::DEFAULT).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("HTTP 404 Not Found: \"not found\" (is http://{addr} an edgesplit with rollouts?)")
        );

        // A 200 the report cannot read is printed as JSON, with a word on standard error.
        let (addr, _) = server(200, json!({"distribution": 5})).await;
        let a = args(&["--endpoint", &addr.to_string(), "status", "shop"]);
        let out = execute(&a, &signed_env(), Timeouts::DEFAULT).await.unwrap();
        assert_eq!(serde_json::from_str::<Value>(&out.text).unwrap(), json!({"distribution": 5}));
        assert!(out.warning.unwrap().contains("here it is as JSON"));
    }

    #[tokio::test]
    async fn no_listener_or_a_silent_one_fails_within_the_bound() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let a = args(&["--endpoint", &addr.to_string(), "list"]);
        let e = execute(&a, &signed_env(), Timeouts::DEFAULT).await.unwrap_err();
        assert!(matches!(&e, Error::Connect { endpoint, .. } if *endpoint == format!("http://{addr}")), "{e:?}");
        assert!(e.to_string().starts_with(&format!("cannot connect to the admin API at http://{addr}: ")), "{e}");
        assert_eq!(e.exit_code(), 1);

        // Accepts, never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let a = args(&["--endpoint", &addr.to_string(), "list"]);
        let short = Timeouts { connect: Duration::from_millis(300), call: Duration::from_millis(300) };
        let started = std::time::Instant::now();
        let e = execute(&a, &signed_env(), short).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(e, Error::Call(format!("no answer from http://{addr} within 300ms")));
        drop(silent);
    }
}
