//! `edgesplit demo`: two built-in origins (primary, staging) that say which side served and echo the
//! request they saw, edgesplit in front of them on its embedded `config/demo.toml`, and a store in a
//! temporary folder. Nothing to install, nothing to write.

use std::convert::Infallible;
use std::fmt::Write;
use std::path::Path;

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
pub const DEMO_TOML: &str = include_str!("../config/demo.toml");

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
    crate::admin::cloudfront::create(plane, config).map_err(|e| format!("{}: {}", e.code, e.message))
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

/// What the demo prints once it is up.
pub fn instructions(proxy: &str, admin: &str, policy_id: &str) -> String {
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
         \n  proxy  http://{proxy}   (primary origin {PRIMARY_ORIGIN}, staging origin {STAGING_ORIGIN})\n  admin  http://{admin}\n\
         \nA continuous deployment policy sends 10 % of sessions to staging, sticky for 300 s (policy {policy_id}).\n\
         \nTry:\n\
         \n  curl -si http://{proxy}/hello                        # note the edgesplit-cd cookie\n\
         \n  for i in $(seq 200); do curl -s http://{proxy}/ | head -1; done | sort | uniq -c   # new session each time\n\
         \n  curl -si http://{proxy}/ | grep -i x-evidently-banner   # the Evidently decision, 50/50 per browser\n\
         \n  curl -s --http2-prior-knowledge http://{proxy}/over-h2\n\
         \n  curl -s http://{admin}/metrics | grep -E 'edgesplit_(requests|routing_decisions)_total'\n\
         \nThe admin API checks AWS SigV4 signatures. The demo's key pair is fixed and public:\n\
         \n  access key id      {ACCESS_KEY_ID}\n  secret access key  {SECRET_ACCESS_KEY}\n\
         \nboto3 with it, ready to paste into python3 (CloudFront is signed for us-east-1; Evidently takes any region):\n\
         \n{boto3}\n\
         \nCtrl-C drains and stops.\n"
    )
}
