//! Guards Evidently evaluation on the request path (D6, target well under 200 ns): an entity-override hit,
//! a launch whose step has six segment overrides that all miss before the default split, and a running
//! experiment's sampling and treatment draw.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use edgesplit::evidently::engine::{
    CompiledExperiment, CompiledFeature, CompiledLaunch, LaunchGroup, SegmentOverride, Step, Treatment,
};
use edgesplit::evidently::model::VariableValue;
use edgesplit::evidently::pattern::Pattern;
use serde_json::json;

fn feature(launch: Option<CompiledLaunch>, experiment: Option<CompiledExperiment>) -> CompiledFeature {
    CompiledFeature {
        project_arn: "arn:aws:evidently:us-east-1:000000000000:project/shop".into(),
        feature_arn: "arn:aws:evidently:us-east-1:000000000000:project/shop/feature/checkout".into(),
        name: "checkout".into(),
        variations: vec![("old".into(), VariableValue::Bool(false)), ("new".into(), VariableValue::Bool(true))],
        default_variation: 0,
        default_only: false,
        overrides: (0..2500).map(|i| (format!("entity-{i}"), 1)).collect::<HashMap<_, _>>(),
        launch,
        experiment,
    }
}

fn bench(c: &mut Criterion) {
    let ctx = json!({ "Browser": "Firefox/133", "Country": "FR", "Plan": "free", "Age": 37 });

    let overrides = feature(None, None);
    c.bench_function("evaluate: entity override hit (2500 overrides)", |b| {
        b.iter(|| overrides.evaluate(std::hint::black_box("entity-1234"), &ctx, 1_000))
    });

    let segment = |p: &str| Arc::new(Pattern::parse(p).unwrap());
    let launch = CompiledLaunch {
        name: "ramp".into(),
        salt: "ramp".into(),
        measured: true,
        groups: vec![
            LaunchGroup { name: "a".into(), variation: Some(0) },
            LaunchGroup { name: "b".into(), variation: Some(1) },
        ],
        steps: vec![Step {
            start_ms: 0,
            weights: vec![50_000, 50_000],
            overrides: (1..=6)
                .map(|i| SegmentOverride {
                    evaluation_order: i,
                    segment: segment(&format!(r#"{{"Browser":[{{"prefix":"Chrome/{i}"}}],"Country":["US"]}}"#)),
                    weights: vec![0, 100_000],
                })
                .collect(),
        }],
    };
    let with_launch = feature(Some(launch), None);
    c.bench_function("evaluate: launch, 6 segment overrides missing, default split", |b| {
        b.iter(|| with_launch.evaluate(std::hint::black_box("user-42"), &ctx, 1_000))
    });

    let experiment = CompiledExperiment {
        name: "pricing".into(),
        salt: "pricing".into(),
        measured: true,
        sampling_rate: 100_000,
        segment: Some(segment(r#"{"Plan":["free"]}"#)),
        treatments: vec![
            Treatment { name: "control".into(), variation: Some(0), weight: 50_000 },
            Treatment { name: "up".into(), variation: Some(1), weight: 50_000 },
        ],
    };
    let with_experiment = feature(None, Some(experiment));
    c.bench_function("evaluate: experiment with a segment, sample + treatment", |b| {
        b.iter(|| with_experiment.evaluate(std::hint::black_box("user-42"), &ctx, 1_000))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
