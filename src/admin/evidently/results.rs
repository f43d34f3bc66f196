//! GetExperimentResults on the wire: the query decoded, the results computed by
//! [`Plane::experiment_results`] (off the async workers, unlocked), and encoded.

use serde_json::{Value, json};

use super::*;
use crate::evidently::model::Experiment;

pub fn get(plane: &Plane, project: &str, name: &str, call: &EvCall) -> EvResult<Value> {
    // The experiment first: a missing one answers 404 whatever the body.
    crate::plane::evidently::find::<Experiment>(&plane.lock().evidently, project, name)?;
    let query = call.json::<input::ResultsBody>()?.decode()?;
    let r = plane.experiment_results(project, name, query).map_err(|e| match Failure::from(e) {
        Failure::Store(e) => {
            tracing::error!(error = %e, "Store read failed");
            EvError::new(EvCode::ServiceUnavailable, "The results could not be read.").into()
        }
        other => other,
    })?;
    let metric = &r.metric;
    let data: Vec<Value> = r
        .series
        .iter()
        .map(
            |s| json!({ "metricName": metric, "treatmentName": s.treatment, "resultStat": s.stat, "values": s.values }),
        )
        .collect();
    let reports: Vec<Value> = r
        .reports
        .iter()
        .map(|x| json!({ "metricName": metric, "treatmentName": x.treatment, "reportName": x.name, "content": x.content }))
        .collect();
    let mut out = json!({ "resultsData": data, "timestamps": r.timestamps, "reports": reports });
    if let Some(d) = r.details {
        out["details"] = json!(d);
    }
    Ok(out)
}
