//! `edgesplit demo`'s pieces: the embedded config is valid, and its origins answer which side served.
//! (The demo itself binds fixed ports, so this runs the same config on ephemeral ones.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use http::StatusCode;
use tokio::net::TcpListener;

#[tokio::test]
async fn the_demo_config_serves_through_the_demo_origins() {
    let store = tempfile::tempdir().unwrap();
    let mut config = edgesplit::demo::config(store.path()).unwrap();
    assert_eq!(config.listeners[0].addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9901");
    // The admin API checks SigV4 with the documented dev pair test/test.
    let key = config.admin_auth.credentials.clone().expect("the demo's key pair");
    assert_eq!((key.id.as_str(), key.secret.as_str()), ("test", "test"));
    assert_eq!((edgesplit::demo::ACCESS_KEY_ID, edgesplit::demo::SECRET_ACCESS_KEY), ("test", "test"));
    assert_eq!(config.distributions[0].primary.origins[0].authority.as_str(), edgesplit::demo::PRIMARY_ORIGIN);
    assert_eq!(
        config.distributions[0].staging.as_ref().unwrap().origins[0].authority.as_str(),
        edgesplit::demo::STAGING_ORIGIN
    );

    let mut origins = Vec::new();
    for side in ["primary", "staging"] {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        origins.push(l.local_addr().unwrap());
        tokio::spawn(edgesplit::demo::run_origin(l, side));
    }
    config.listeners[0].addr = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.distributions[0].primary.origins[0].authority = origins[0].to_string().parse().unwrap();
    config.distributions[0].staging.as_mut().unwrap().origins[0].authority = origins[1].to_string().parse().unwrap();
    let handle = edgesplit::app::start(config, None, std::future::pending()).await.unwrap();

    let (status, headers, body) = support::get(&format!("http://{}/hello", handle.addr("http").unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-origin"], "primary");
    assert!(body.starts_with("served by: primary\nGET /hello HTTP/1.1\n"), "{body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1\n"), "{body}");
    // The declared banner feature is evaluated at the edge and echoed back.
    let banner = headers["x-evidently-banner"].to_str().unwrap();
    assert!(["classic", "bold"].contains(&banner), "{banner}");
    assert!(body.contains(&format!("x-evidently-banner: {banner}\n")), "{body}");

    // The staging origin says so too (the demo's policy sends traffic there once issue 3 lands).
    let (_, headers, body) = support::get(&format!("http://{}/", origins[1])).await;
    assert_eq!(headers["x-origin"], "staging");
    assert!(body.starts_with("served by: staging\n"));

    // The seeded policy: 10 % sticky. Every response now carries the session cookie.
    let policy = edgesplit::demo::seed_policy(&handle.plane).unwrap();
    assert_eq!(policy.config.staging_dns_names, [edgesplit::demo::STAGING_DNS_NAME]);
    let (status, headers, _) = support::get(&format!("http://{}/", handle.addr("http").unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("edgesplit-cd="))
        .expect("the session cookie");
    assert!(cookie.starts_with("edgesplit-cd=v1."), "{cookie}");
    assert!(cookie.contains("Max-Age=300; Path=/; HttpOnly; SameSite=Lax"), "{cookie}");

    let text = edgesplit::demo::instructions("127.0.0.1:8080", "127.0.0.1:9901", &policy.id);
    assert!(text.contains("curl -si http://127.0.0.1:8080/hello"));
    assert!(text.contains(&format!("Id='{}'", policy.id)));
    assert!(text.contains("access key id      test\n  secret access key  test\n"), "{text}");
    assert_eq!(text.matches("aws_access_key_id='test', aws_secret_access_key='test'").count(), 2, "{text}");
}
