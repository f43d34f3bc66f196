//! Evidently resources declared in the config file (GitOps): applied at start by the API's own code,
//! updated by a reload when the declaration changes, errors positioned in the file, and the API and
//! the file coexisting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use serde_json::{Value, json};
use support::*;

const DECLARED: &str = r#"
[[evidently.projects]]
name = "shop"
description = "from the file"

[[evidently.segments]]
name = "chrome"
pattern = '{"Browser":["Chrome"]}'

[[evidently.features]]
project = "shop"
name = "checkout"
variations = [{ name = "old", value = { stringValue = "v1" } }, { name = "new", value = { stringValue = "v2" } }]
defaultVariation = "old"
entityOverrides = { vip = "new" }

[[evidently.launches]]
project = "shop"
name = "ramp"
status = "RUNNING"
groups = [{ name = "control", feature = "checkout", variation = "old" }, { name = "treat", feature = "checkout", variation = "new" }]
[[evidently.launches.scheduledSplitsConfig.steps]]
startTime = 0
groupWeights = { control = 0, treat = 0 }
segmentOverrides = [{ segment = "chrome", evaluationOrder = 1, weights = { treat = 100000 } }]
"#;

async fn evaluate(edge: &Edge, entity: &str, browser: &str) -> Value {
    let body = json!({ "entityId": entity, "evaluationContext": json!({ "Browser": browser }).to_string() });
    admin_json(edge, "POST", "/projects/shop/evaluations/checkout", body).await.1
}

/// A config with a store beside the file (relative paths resolve from the file's folder).
fn config(extra: &str) -> String {
    simple_config("http://127.0.0.1:1", None, &format!("[store]\npath = \"store\"\n{extra}"))
}

#[tokio::test]
async fn declared_resources_are_created_at_start_and_updated_by_a_reload() {
    let text = config(DECLARED);
    let edge = Edge::start(&text).await;

    let (status, p) = admin_json(&edge, "GET", "/projects/shop", json!(null)).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["project"]["description"], "from the file");
    assert_eq!(p["project"]["activeLaunchCount"], 1);
    assert_eq!(evaluate(&edge, "vip", "Firefox").await["reason"], "ENTITY_OVERRIDES_MATCH");
    let chrome = evaluate(&edge, "u1", "Chrome").await;
    assert_eq!((chrome["reason"].as_str(), chrome["variation"].as_str()), (Some("LAUNCH_RULE_MATCH"), Some("new")));
    assert_eq!(evaluate(&edge, "u1", "Firefox").await["reason"], "DEFAULT");

    // The API can change a declared resource; an unchanged file leaves that change alone on reload.
    let (status, _) =
        admin_json(&edge, "PATCH", "/projects/shop/features/checkout", json!({ "defaultVariation": "new" })).await;
    assert_eq!(status, 200);
    edge.reload(&text).await.unwrap();
    assert_eq!(evaluate(&edge, "u1", "Firefox").await["variation"], "new");

    // A changed declaration is applied: a third variation, the override gone (replaced whole).
    let changed = text.replace(
        r#"{ name = "new", value = { stringValue = "v2" } }]"#,
        r#"{ name = "new", value = { stringValue = "v2" } }, { name = "newer", value = { stringValue = "v3" } }]"#,
    );
    let changed = changed.replace("entityOverrides = { vip = \"new\" }\n", "");
    edge.reload(&changed).await.unwrap();
    let (_, f) = admin_json(&edge, "GET", "/projects/shop/features/checkout", json!(null)).await;
    let names: Vec<&str> =
        f["feature"]["variations"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["old", "new", "newer"]);
    assert_eq!(f["feature"]["defaultVariation"], "old");
    assert_eq!(evaluate(&edge, "vip", "Firefox").await["reason"], "DEFAULT");

    // Deleted through the API, a declared resource comes back at the next reload.
    let (status, _) = admin_json(&edge, "DELETE", "/segments/chrome", json!(null)).await;
    assert_eq!(status, 409, "in use by the launch");
    admin_json(&edge, "POST", "/projects/shop/launches/ramp/cancel", json!({})).await;
    admin_json(&edge, "DELETE", "/projects/shop/launches/ramp", json!(null)).await;
    assert_eq!(admin_json(&edge, "GET", "/projects/shop/launches/ramp", json!(null)).await.0, 404);
    edge.reload(&changed.replace("description = \"from the file\"", "description = \"again\"")).await.unwrap();
    assert_eq!(
        admin_json(&edge, "GET", "/projects/shop/launches/ramp", json!(null)).await.1["launch"]["status"],
        "RUNNING"
    );
}

#[tokio::test]
async fn a_bad_declaration_is_rejected_with_its_position_and_the_running_state_stays() {
    let text = config(DECLARED);
    let edge = Edge::start(&text).await;
    let bad = text.replace("defaultVariation = \"old\"", "defaultVariation = \"missing\"");
    let err = edge.reload(&bad).await.unwrap_err();
    let line = bad.lines().position(|l| l.starts_with("project = \"shop\"")).unwrap(); // the feature's table body
    assert!(err.contains(&format!("edgesplit.toml:{line}:")), "{err}");
    assert!(err.contains("[[evidently.features]] `checkout`: ValidationException: defaultVariation"), "{err}");
    assert_eq!(evaluate(&edge, "u1", "Chrome").await["variation"], "new", "the running state is untouched");

    // `edgesplit check` rehearses the declarations too.
    let path = edge.dir.path().join("bad.toml");
    std::fs::write(&path, &bad).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgesplit"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ValidationException: defaultVariation"));
}
