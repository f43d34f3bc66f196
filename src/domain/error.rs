//! Why a change was refused, in the domain's own terms: each wire protocol maps every [`DomainError`]
//! to its codes, exhaustively (`admin::cloudfront::from_domain`, `admin::evidently::from_domain`), so a
//! new error cannot reach a client unmapped.

use crate::limits::Violation;

/// The kinds of resource the control plane keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Policy,
    Project,
    Feature,
    Launch,
    Experiment,
    Segment,
    /// A distribution of the config file.
    Distribution,
    /// A distribution's guarded rollout.
    Rollout,
    /// Any taggable resource, named by an ARN that names none (TagResource, ListTagsForResource).
    Resource,
}

impl ResourceKind {
    /// The name Evidently's errors give the kind (`resourceType`).
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::Policy => "continuous-deployment-policy",
            ResourceKind::Project => "project",
            ResourceKind::Feature => "feature",
            ResourceKind::Launch => "launch",
            ResourceKind::Experiment => "experiment",
            ResourceKind::Segment => "segment",
            ResourceKind::Distribution => "distribution",
            ResourceKind::Rollout => "rollout",
            ResourceKind::Resource => "resource",
        }
    }

    /// The name's plural, as quotas count.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            ResourceKind::Policy => "continuous-deployment-policies",
            ResourceKind::Project => "projects",
            ResourceKind::Feature => "features",
            ResourceKind::Launch => "launches",
            ResourceKind::Experiment => "experiments",
            ResourceKind::Segment => "segments",
            ResourceKind::Distribution => "distributions",
            ResourceKind::Rollout => "rollouts",
            ResourceKind::Resource => "resources",
        }
    }

    /// The name with a capital, as messages start.
    pub fn title(self) -> String {
        let mut s = self.name().to_string();
        s[..1].make_ascii_uppercase();
        s
    }
}

/// One resource, by the names that identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceId {
    Policy(String),
    Project(String),
    Feature(String, String),
    Launch(String, String),
    Experiment(String, String),
    Segment(String),
    Distribution(String),
    /// A distribution's rollout, by distribution id.
    Rollout(String),
    /// A resource named only by an ARN that is not one of this account's, or names nothing.
    Arn(ResourceKind, String),
}

impl ResourceId {
    pub fn kind(&self) -> ResourceKind {
        match self {
            ResourceId::Policy(_) => ResourceKind::Policy,
            ResourceId::Project(_) => ResourceKind::Project,
            ResourceId::Feature(..) => ResourceKind::Feature,
            ResourceId::Launch(..) => ResourceKind::Launch,
            ResourceId::Experiment(..) => ResourceKind::Experiment,
            ResourceId::Segment(_) => ResourceKind::Segment,
            ResourceId::Distribution(_) => ResourceKind::Distribution,
            ResourceId::Rollout(_) => ResourceKind::Rollout,
            ResourceId::Arn(kind, _) => *kind,
        }
    }
}

/// How far a quota reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    /// All of the kind in the account (projects, segments, policies).
    Account,
    /// All of the kind in one project.
    Project,
    /// Those of the kind running at once in one project.
    Running,
}

/// Why a command was refused. Every variant is mapped by each wire protocol, with no catch-all arm.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainError {
    NotFound(ResourceId),
    /// The name is taken.
    Exists(ResourceId),
    /// The resource's state forbids the change (running, in use, ended); `message` says why.
    Conflict {
        resource: ResourceId,
        message: String,
    },
    /// A field that breaks a rule of the domain; `message` says which and why.
    Invalid {
        field: String,
        message: String,
    },
    /// A member that breaks its shape's constraint in the AWS service model.
    Constraint(Violation),
    Quota {
        kind: ResourceKind,
        scope: QuotaScope,
        limit: usize,
    },
    /// The staging distribution is already another policy's, or the file's.
    StagingInUse {
        name: String,
    },
    /// The policy is named by a distribution in the config file.
    PolicyInUse {
        id: String,
        distribution: String,
    },
    /// A write that must name the version it read did not.
    VersionMissing,
    /// The version named is not the current one.
    VersionMismatch,
}

impl From<Violation> for DomainError {
    fn from(v: Violation) -> DomainError {
        DomainError::Constraint(v)
    }
}

impl DomainError {
    /// A field that breaks a rule.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> DomainError {
        DomainError::Invalid { field: field.into(), message: message.into() }
    }

    /// A required member that is absent.
    pub fn required(field: impl Into<String>) -> DomainError {
        DomainError::invalid(field, "is required")
    }
}

pub(crate) type DomainResult<T> = Result<T, DomainError>;

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self.kind().name();
        match self {
            ResourceId::Policy(n)
            | ResourceId::Project(n)
            | ResourceId::Segment(n)
            | ResourceId::Distribution(n)
            | ResourceId::Rollout(n) => write!(f, "{kind} `{n}`"),
            ResourceId::Feature(p, n) | ResourceId::Launch(p, n) | ResourceId::Experiment(p, n) => {
                write!(f, "{kind} `{p}/{n}`")
            }
            ResourceId::Arn(_, arn) => write!(f, "{kind} `{arn}`"),
        }
    }
}

/// In the domain's words, for logs and the config file's errors; each wire protocol words its own.
impl std::fmt::Display for DomainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DomainError::NotFound(id) => write!(f, "{id} does not exist"),
            DomainError::Exists(id) => write!(f, "{id} already exists"),
            DomainError::Conflict { resource: _, message } => f.write_str(message),
            DomainError::Invalid { field, message } => write!(f, "{field}: {message}"),
            DomainError::Constraint(v) => write!(f, "{v}"),
            DomainError::Quota { kind, scope, limit } => {
                let within = match scope {
                    QuotaScope::Account => "",
                    QuotaScope::Project => " per project",
                    QuotaScope::Running => " running at once per project",
                };
                write!(f, "at most {limit} {}{within}", kind.plural())
            }
            DomainError::StagingInUse { name } => write!(f, "the staging distribution {name} is in use"),
            DomainError::PolicyInUse { id, distribution } => {
                write!(f, "policy {id} is named by distribution {distribution}")
            }
            DomainError::VersionMissing => f.write_str("the version read (If-Match) is missing"),
            DomainError::VersionMismatch => f.write_str("the version read (If-Match) is not the current one"),
        }
    }
}

impl std::error::Error for DomainError {}
