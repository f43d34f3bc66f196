//! Evidently's resources as stored and as sent on the wire (restJson1, 2021-02-01).

use serde::{Deserialize, Serialize};

/// `VariableValue`: a tagged union with exactly one member set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VariableValue {
    #[serde(rename = "boolValue")]
    Bool(bool),
    #[serde(rename = "longValue")]
    Long(i64),
    #[serde(rename = "doubleValue")]
    Double(f64),
    #[serde(rename = "stringValue")]
    String(String),
}

impl VariableValue {
    /// `VariationValueType`.
    pub fn value_type(&self) -> &'static str {
        match self {
            VariableValue::Bool(_) => "BOOLEAN",
            VariableValue::Long(_) => "LONG",
            VariableValue::Double(_) => "DOUBLE",
            VariableValue::String(_) => "STRING",
        }
    }
}
