//! The error shapes Evidently's model declares, and which one each domain error is: one list, one
//! exhaustive map ([`EvCode::of`]), used by the restJson API (`admin::evidently`, which adds the
//! messages and fields) and by the config file's declarations (whose errors name the exception the
//! API would have answered).

use http::StatusCode;

use crate::domain::error::DomainError;

/// Every error shape Evidently's model declares; the one place a status is picked (a test holds both
/// to the model's `httpStatusCode`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvCode {
    Validation,
    AccessDenied,
    ResourceNotFound,
    Conflict,
    ServiceQuotaExceeded,
    Throttling,
    InternalServer,
    ServiceUnavailable,
    /// No operation has this method and path: a `ValidationException` (as edgesplit has always
    /// answered, and the hostile-path tests hold), with the 404 that says what happened.
    UnknownOperation,
    /// A body past the admin listener's 1 MiB: a `ValidationException`, answered 413 as AWS's front
    /// door answers an oversized request.
    TooLarge,
}

impl EvCode {
    pub const ALL: [EvCode; 10] = [
        EvCode::Validation,
        EvCode::AccessDenied,
        EvCode::ResourceNotFound,
        EvCode::Conflict,
        EvCode::ServiceQuotaExceeded,
        EvCode::Throttling,
        EvCode::InternalServer,
        EvCode::ServiceUnavailable,
        EvCode::UnknownOperation,
        EvCode::TooLarge,
    ];

    /// The shape's name: `X-Amzn-ErrorType` and `__type`.
    pub fn name(self) -> &'static str {
        match self {
            EvCode::Validation | EvCode::TooLarge | EvCode::UnknownOperation => "ValidationException",
            EvCode::AccessDenied => "AccessDeniedException",
            EvCode::ResourceNotFound => "ResourceNotFoundException",
            EvCode::Conflict => "ConflictException",
            EvCode::ServiceQuotaExceeded => "ServiceQuotaExceededException",
            EvCode::Throttling => "ThrottlingException",
            EvCode::InternalServer => "InternalServerException",
            EvCode::ServiceUnavailable => "ServiceUnavailableException",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            EvCode::Validation => StatusCode::BAD_REQUEST,
            EvCode::AccessDenied => StatusCode::FORBIDDEN,
            EvCode::ResourceNotFound => StatusCode::NOT_FOUND,
            EvCode::Conflict => StatusCode::CONFLICT,
            EvCode::ServiceQuotaExceeded => StatusCode::PAYMENT_REQUIRED,
            EvCode::Throttling => StatusCode::TOO_MANY_REQUESTS,
            EvCode::InternalServer => StatusCode::INTERNAL_SERVER_ERROR,
            EvCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            EvCode::UnknownOperation => StatusCode::NOT_FOUND,
            EvCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

impl EvCode {
    /// The shape a domain error is answered with. No catch-all arm: a new domain error does not compile
    /// until it is placed here.
    pub fn of(e: &DomainError) -> EvCode {
        match e {
            DomainError::NotFound(_) => EvCode::ResourceNotFound,
            DomainError::Exists(_) | DomainError::Conflict { .. } => EvCode::Conflict,
            DomainError::Invalid { .. } | DomainError::Constraint(_) => EvCode::Validation,
            DomainError::Quota { .. } => EvCode::ServiceQuotaExceeded,
            // CloudFront's policies only; should one reach Evidently, it conflicts with what is there.
            DomainError::StagingInUse { .. }
            | DomainError::PolicyInUse { .. }
            | DomainError::VersionMissing
            | DomainError::VersionMismatch => EvCode::Conflict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn error_codes_are_the_models_shapes_with_their_statuses() {
        let model: Value =
            serde_json::from_str(include_str!("../../models/evidently/2021-02-01/service-2.json")).unwrap();
        let shapes = model["shapes"].as_object().unwrap();
        let declared: std::collections::BTreeMap<&str, u64> = shapes
            .iter()
            .filter(|(_, s)| s.get("exception").is_some())
            .map(|(n, s)| (n.as_str(), s["error"]["httpStatusCode"].as_u64().unwrap()))
            .collect();
        let ours: std::collections::BTreeMap<&str, u64> = EvCode::ALL
            .iter()
            .filter(|c| !matches!(c, EvCode::UnknownOperation | EvCode::TooLarge))
            .map(|c| (c.name(), u64::from(c.status().as_u16())))
            .collect();
        assert_eq!(ours, declared);
    }
}
