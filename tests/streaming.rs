//! Bodies stream through edgesplit in both directions without being buffered: 1 GiB up and 1 GiB down
//! with the process's memory flat. Alone in its own test binary so that no other test moves the RSS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use support::*;

fn empty() -> Body {
    Empty::new().map_err(|n| match n {}).boxed()
}

/// Memory the whole test process holds now (proxy, origin and client together).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const GIB: u64 = 1 << 30;
const CHUNK: usize = 256 * 1024;

fn generated(total: u64) -> Body {
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let stream = futures_util::stream::iter(
        (0..total / CHUNK as u64).map(move |_| Ok::<_, hyper::Error>(Frame::data(chunk.clone()))),
    );
    StreamBody::new(stream).boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_streams_up_and_down_with_flat_memory() {
    let origin = Origin::start(|req: Request<Incoming>| async move {
        if req.method() == http::Method::POST {
            let mut body = req.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(d) = frame.unwrap().into_data() {
                    n += d.len() as u64;
                }
            }
            Response::new(full(n.to_string()))
        } else {
            Response::new(generated(GIB))
        }
    })
    .await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let client = http1_client();

    // Warm up buffers and pools with 64 MiB each way, then take the baseline.
    assert_eq!(upload(&client, &edge, 64 << 20).await, 64 << 20);
    assert_eq!(download(&client, &edge, &mut 0).await, GIB);
    let baseline = rss_kib();

    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(), Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    assert_eq!(upload(&client, &edge, GIB).await, GIB);
    let mut samples = 0;
    assert_eq!(download(&client, &edge, &mut samples).await, GIB);
    sampler.abort();
    let grown_mib = peak.load(Relaxed).saturating_sub(baseline) / 1024;
    eprintln!("baseline {} MiB, peak growth {grown_mib} MiB", baseline / 1024);
    assert!(grown_mib < 48, "memory grew by {grown_mib} MiB while streaming 1 GiB each way");
}

async fn upload(client: &Client<HttpConnector, Body>, edge: &Edge, total: u64) -> u64 {
    let up = Request::post(edge.url("http", "/up")).body(generated(total)).unwrap();
    let (status, _, body) = send(client, up).await;
    assert_eq!(status, StatusCode::OK);
    body.parse().unwrap()
}

async fn download(client: &Client<HttpConnector, Body>, edge: &Edge, frames: &mut u64) -> u64 {
    let resp = client.request(Request::get(edge.url("http", "/down")).body(empty()).unwrap()).await.unwrap();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            n += d.len() as u64;
            *frames += 1;
        }
    }
    n
}
