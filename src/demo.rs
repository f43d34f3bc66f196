//! `edgesplit demo`: two built-in origins (primary, staging) that say which side served and echo the
//! request they saw, edgesplit in front of them on its embedded `config/demo.toml`, and a store in a
//! temporary folder. Nothing to install, nothing to write.

use std::convert::Infallible;
use std::fmt::Write;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::cd::model::{PolicyConfig, SingleWeight, Stickiness, StoredPolicy, TrafficConfig, TrafficType};
use crate::config::{self, Config, ConfigErrors};
use crate::plane::Plane;

/// The demo's configuration, as shipped in `config/demo.toml`.
pub(crate) const DEMO_TOML: &str = include_str!("../config/demo.toml");

/// Where the demo's origins listen (they must match `config/demo.toml`).
pub const PRIMARY_ORIGIN: &str = "127.0.0.1:18081";
pub const STAGING_ORIGIN: &str = "127.0.0.1:18082";

/// The admin API key pair written in `config/demo.toml`: fixed, public, for 127.0.0.1 only.
pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";

/// The demo config with its store in `store_dir`.
pub fn config(store_dir: &Path) -> Result<Config, ConfigErrors> {
    let mut c = config::parse_to_run(DEMO_TOML, "demo.toml", Path::new("."))?;
    c.store_path = Some(store_dir.to_path_buf());
    Ok(c)
}

/// Where the demo's pieces listen.
#[derive(Debug, Clone, Copy)]
pub struct Origins {
    pub primary: SocketAddr,
    pub staging: SocketAddr,
}

/// `edgesplit demo --ephemeral-ports`: the listeners and the admin listener on 127.0.0.1 port 0, and the
/// origins `config/demo.toml` names (127.0.0.1:18081 and :18082) replaced by `origins`.
pub fn use_ephemeral_ports(config: &mut Config, origins: Origins) {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    for l in &mut config.listeners {
        l.addr = any;
    }
    config.admin_listen = any;
    let pools = config.distributions.iter_mut().flat_map(|d| std::iter::once(&mut d.primary).chain(d.staging.as_mut()));
    for pool in pools {
        for origin in &mut pool.origins {
            let to = match origin.authority.as_str() {
                PRIMARY_ORIGIN => origins.primary,
                STAGING_ORIGIN => origins.staging,
                _ => continue,
            };
            if let Ok(a) = to.to_string().parse() {
                origin.authority = a;
            }
        }
    }
}

/// The whole demo: binds and starts both origins (on [`PRIMARY_ORIGIN`] and [`STAGING_ORIGIN`], or on
/// free ports with `ephemeral_ports`), starts edgesplit on `config`, seeds the policy, prints what to
/// try, and runs until `stop` resolves and the drain is over. The store folder is removed at the end.
pub async fn run(
    mut config: Config,
    ephemeral_ports: bool,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let mut bound = Vec::new();
    for (addr, side) in [(PRIMARY_ORIGIN, "primary"), (STAGING_ORIGIN, "staging")] {
        let addr = if ephemeral_ports { "127.0.0.1:0" } else { addr };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot bind the demo's {side} origin on {addr}: {e}"))?;
        bound.push(listener.local_addr().map_err(|e| e.to_string())?);
        tokio::spawn(run_origin(listener, side));
    }
    let origins = Origins { primary: bound[0], staging: bound[1] };
    if ephemeral_ports {
        use_ephemeral_ports(&mut config, origins);
    }
    let store: Option<PathBuf> = config.store_path.clone();
    let handle = crate::app::start(config, None, stop).await.map_err(|e| e.to_string())?;
    let policy = seed_policy(&handle.plane)?;
    let proxy = handle.addr("http").map_or_else(|| "127.0.0.1:8080".to_string(), |a| a.to_string());
    let admin = handle.admin_addr.to_string();
    let exe = std::env::current_exe().map_or_else(|_| "edgesplit".to_string(), |p| p.display().to_string());
    println!("{}", instructions(&proxy, &admin, &policy.id, origins, &exe));
    handle.wait().await;
    if let Some(store) = store {
        let _ = std::fs::remove_dir_all(store);
    }
    Ok(())
}

/// The staging DNS name of the demo's distribution (what CloudFront policies list).
pub const STAGING_DNS_NAME: &str = "staging.demo.local";

/// Seeds the demo's policy through the same path as `CreateContinuousDeploymentPolicy`: 10 % of
/// sessions to staging, sticky for 300 s idle / 600 s at most. boto3 sees it in the list.
pub fn seed_policy(plane: &Plane) -> Result<StoredPolicy, String> {
    let config = PolicyConfig {
        staging_dns_names: vec![STAGING_DNS_NAME.to_string()],
        enabled: true,
        traffic: Some(TrafficConfig {
            kind: TrafficType::SingleWeight,
            single_weight: Some(SingleWeight {
                weight: 0.1,
                stickiness: Some(Stickiness { idle_ttl: 300, maximum_ttl: 600 }),
            }),
            single_header: None,
        }),
    };
    match plane.execute(crate::plane::command::Command::CreatePolicy { config }) {
        Ok(crate::plane::command::Outcome::Policy(p)) => Ok(p),
        Ok(other) => Err(format!("creating the demo's policy answered {other:?}")),
        Err(e) => Err(format!("cannot create the demo's policy: {e:?}")),
    }
}

/// An origin that answers every request with `200`, an `x-origin: <side>` header and a plain-text body
/// naming the side and echoing the request line and headers it received.
pub async fn run_origin(listener: TcpListener, side: &'static str) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| async move { Ok::<_, Infallible>(echo(side, &req)) });
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn echo(side: &str, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut body = format!("served by: {side}\n{} {} {:?}\n", req.method(), req.uri(), req.version());
    for (name, value) in req.headers() {
        let _ = writeln!(body, "{name}: {}", String::from_utf8_lossy(value.as_bytes()));
    }
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert("x-origin", header::HeaderValue::from_static(if side == "staging" { "staging" } else { "primary" }));
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// What the demo prints once it is up. `exe` is how to call this binary (for `install-models`).
pub fn instructions(proxy: &str, admin: &str, policy_id: &str, origins: Origins, exe: &str) -> String {
    let Origins { primary, staging } = origins;
    // Lines at column 0, so the block pastes into a Python prompt as it is.
    let boto3 = [
        "import boto3, botocore".to_string(),
        format!("cf = boto3.client('cloudfront', endpoint_url='http://{admin}', region_name='us-east-1',"),
        format!("    aws_access_key_id='{ACCESS_KEY_ID}', aws_secret_access_key='{SECRET_ACCESS_KEY}')"),
        "print(cf.list_continuous_deployment_policies()['ContinuousDeploymentPolicyList'])".to_string(),
        format!("got = cf.get_continuous_deployment_policy_config(Id='{policy_id}')"),
        "cfg = got['ContinuousDeploymentPolicyConfig']; cfg['TrafficConfig']['SingleWeightConfig']['Weight'] = 0.15"
            .to_string(),
        format!(
            "cf.update_continuous_deployment_policy(Id='{policy_id}', IfMatch=got['ETag'], ContinuousDeploymentPolicyConfig=cfg)"
        ),
        format!("ev = boto3.client('evidently', endpoint_url='http://{admin}', region_name='us-east-1',"),
        format!("    aws_access_key_id='{ACCESS_KEY_ID}', aws_secret_access_key='{SECRET_ACCESS_KEY}',"),
        "    config=botocore.config.Config(inject_host_prefix=False))".to_string(),
        "print(ev.evaluate_feature(project='demo', feature='banner', entityId='someone')['variation'])".to_string(),
    ]
    .join("\n");
    format!(
        "\nedgesplit demo is running.\n\
         \n  proxy  http://{proxy}   (primary origin {primary}, staging origin {staging})\n  admin  http://{admin}\n\
         \nA continuous deployment policy sends 10 % of sessions to staging, sticky for 300 s (policy {policy_id}).\n\
         \nTry:\n\
         \n  curl -si http://{proxy}/hello                        # note the edgesplit-cd cookie\n\
         \n  for i in $(seq 200); do curl -s http://{proxy}/ | head -1; done | sort | uniq -c   # new session each time\n\
         \n  curl -si http://{proxy}/ | grep -i x-evidently-banner   # the Evidently decision, 50/50 per browser\n\
         \n  curl -s --http2-prior-knowledge http://{proxy}/over-h2\n\
         \n  curl -s http://{admin}/metrics | grep -E 'edgesplit_(requests|routing_decisions)_total'\n\
         \n  curl -s --aws-sigv4 'aws:amz:us-east-1:evidently' --user {ACCESS_KEY_ID}:{SECRET_ACCESS_KEY} http://{admin}/projects   # curl 7.75+\n\
         \nThe admin API checks AWS SigV4 signatures. The demo's key pair is fixed and public:\n\
         \n  access key id      {ACCESS_KEY_ID}\n  secret access key  {SECRET_ACCESS_KEY}\n\
         \nboto3 with it, ready to paste into python3 (CloudFront is signed for us-east-1; Evidently takes any region).\n\
         boto3 1.42.50 with botocore 1.42.50 has Evidently built in; any later botocore needs its model, once:\n\
         \n  {exe} install-models\n\
         \n{boto3}\n\
         \nCtrl-C drains and stops.\n"
    )
}
