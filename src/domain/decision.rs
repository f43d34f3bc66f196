//! What a routing decision is: which pool serves a request, and why. Pure types, shared by the
//! continuous deployment rules, the edge's feature-driven routing, the request path and the metrics.

/// Which origin pool serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Primary,
    Staging,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Primary => "primary",
            Target::Staging => "staging",
        }
    }
}

/// Why a request went where it went; reaches the access log and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NoPolicy = 0,
    Disabled = 1,
    HeaderMatch = 2,
    HeaderMiss = 3,
    Sticky = 4,
    WeightDraw = 5,
    StagingUnavailable = 6,
    /// Feature-driven routing (D9): the feature served a staging variation, or not.
    FeatureStaging = 7,
    FeaturePrimary = 8,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::NoPolicy,
        Reason::Disabled,
        Reason::HeaderMatch,
        Reason::HeaderMiss,
        Reason::Sticky,
        Reason::WeightDraw,
        Reason::StagingUnavailable,
        Reason::FeatureStaging,
        Reason::FeaturePrimary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoPolicy => "no-policy",
            Reason::Disabled => "disabled",
            Reason::HeaderMatch => "header-match",
            Reason::HeaderMiss => "header-miss",
            Reason::Sticky => "sticky",
            Reason::WeightDraw => "weight-draw",
            Reason::StagingUnavailable => "staging-unavailable",
            Reason::FeatureStaging => "feature-staging",
            Reason::FeaturePrimary => "feature-primary",
        }
    }
}

/// The routing decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub target: Target,
    pub reason: Reason,
}
