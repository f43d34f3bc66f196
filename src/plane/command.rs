//! Typed commands and the pure state machine that applies them (issue 15): `apply` is a function of the
//! state, the command and [`Fresh`] (the clock and the new ids), with no I/O. It returns the [`Change`]s
//! to commit and what to answer, or a typed [`DomainError`]; [`super::Plane::execute`] is the one writer
//! that locks, applies, commits the changes to the store, then publishes. Each wire protocol maps
//! `DomainError` to its own codes, exhaustively.
//!
//! Today: CloudFront's continuous deployment policies. Evidently's resources still go through their
//! restJson handlers, which write through the plane's older helpers; they move here next.

use crate::cd::model::{PolicyConfig, StoredPolicy};

use super::ControlState;

/// A change to the control state.
#[derive(Debug)]
pub enum Command {
    CreatePolicy {
        config: PolicyConfig,
    },
    /// `if_match` is the ETag the caller read; a write without one is refused.
    UpdatePolicy {
        id: String,
        if_match: Option<String>,
        config: PolicyConfig,
    },
    DeletePolicy {
        id: String,
        if_match: Option<String>,
    },
}

/// What the world gives a command: the time, and ids and versions no one can guess (drawn by the
/// caller, so that `apply` stays pure and its tests can fix them).
#[derive(Debug, Clone)]
pub struct Fresh {
    pub now_ms: u64,
    pub id: String,
    pub etag: String,
}

impl Fresh {
    /// The wall clock and new ids from the OS generator.
    pub fn now() -> Fresh {
        Fresh { now_ms: crate::domain::clock::now_ms(), id: crate::random::uuid(), etag: crate::random::etag() }
    }
}

/// What a command changes, in the order it is committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    PutPolicy(StoredPolicy),
    DeletePolicy(String),
}

/// What a command answers with, once committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Policy(StoredPolicy),
    Deleted,
}

/// The kinds of resource a domain error can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Policy,
}

/// Why a command was refused. Every variant is mapped by each wire protocol, with no catch-all arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainError {
    NotFound {
        kind: ResourceKind,
        id: String,
    },
    /// A field that breaks a rule of the domain; `message` says which and why.
    Invalid {
        field: &'static str,
        message: String,
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
    Quota {
        kind: ResourceKind,
        limit: usize,
    },
    /// A write that must name the version it read did not.
    VersionMissing,
    /// The version named is not the current one.
    VersionMismatch,
}

/// The changes and the answer of one applied command.
#[derive(Debug)]
pub struct Applied {
    pub changes: Vec<Change>,
    pub outcome: Outcome,
}

/// Applies `cmd` to `st`: the changes to commit, or why not. Pure.
pub fn apply(st: &ControlState, cmd: Command, fresh: Fresh) -> Result<Applied, DomainError> {
    match cmd {
        Command::CreatePolicy { config } => {
            let limit = st.config.cd.max_policies;
            if st.policies.len() >= limit {
                return Err(DomainError::Quota { kind: ResourceKind::Policy, limit });
            }
            check_names(st, &config, None)?;
            let p = StoredPolicy { id: fresh.id, etag: fresh.etag, last_modified_ms: fresh.now_ms, config, epoch: 0 };
            Ok(Applied { changes: vec![Change::PutPolicy(p.clone())], outcome: Outcome::Policy(p) })
        }
        Command::UpdatePolicy { id, if_match, config } => {
            let old = current_policy(st, &id, if_match.as_deref())?;
            check_names(st, &config, Some(&id))?;
            let p = StoredPolicy {
                epoch: old.next_epoch(&config),
                id,
                etag: fresh.etag,
                last_modified_ms: fresh.now_ms,
                config,
            };
            Ok(Applied { changes: vec![Change::PutPolicy(p.clone())], outcome: Outcome::Policy(p) })
        }
        Command::DeletePolicy { id, if_match } => {
            current_policy(st, &id, if_match.as_deref())?;
            if let Some(d) = st.config.distributions.iter().find(|d| d.policy_id.as_deref() == Some(id.as_str())) {
                return Err(DomainError::PolicyInUse { id, distribution: d.id.clone() });
            }
            Ok(Applied { changes: vec![Change::DeletePolicy(id)], outcome: Outcome::Deleted })
        }
    }
}

/// The policy `id`, if the caller named its current version.
pub fn current_policy<'a>(
    st: &'a ControlState,
    id: &str,
    if_match: Option<&str>,
) -> Result<&'a StoredPolicy, DomainError> {
    let p = st.policies.get(id).ok_or_else(|| DomainError::NotFound { kind: ResourceKind::Policy, id: id.into() })?;
    match if_match.map(str::trim).filter(|t| !t.is_empty()) {
        None => Err(DomainError::VersionMissing),
        Some(tag) if tag != p.etag => Err(DomainError::VersionMismatch),
        Some(_) => Ok(p),
    }
}

/// The staging names against the distributions and the other policies.
fn check_names(st: &ControlState, config: &PolicyConfig, own_id: Option<&str>) -> Result<(), DomainError> {
    let invalid = |message: String| DomainError::Invalid { field: "StagingDistributionDnsNames", message };
    if config.staging_dns_names.is_empty() {
        return Err(invalid("StagingDistributionDnsNames must name one staging distribution.".into()));
    }
    for (i, name) in config.staging_dns_names.iter().enumerate() {
        if config.staging_dns_names[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(invalid(format!("The staging distribution DNS name {name} is listed twice.")));
        }
        let Some(dist) = st
            .config
            .distributions
            .iter()
            .find(|d| d.staging_dns_name.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(name)))
        else {
            return Err(invalid(format!("No staging distribution has the DNS name {name}.")));
        };
        if let Some(route) = dist.edge.as_ref().and_then(|e| e.route.as_ref()) {
            return Err(invalid(format!(
                "Distribution {} routes by the Evidently feature {}; a policy would have no effect there.",
                dist.id, route.feature
            )));
        }
        let taken_by_policy = st.policies.values().any(|p| {
            Some(p.id.as_str()) != own_id && p.config.staging_dns_names.iter().any(|n| n.eq_ignore_ascii_case(name))
        });
        if taken_by_policy || dist.inline_policy.is_some() {
            return Err(DomainError::StagingInUse { name: name.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cd::model::{SingleWeight, TrafficConfig, TrafficType};

    /// A state from a config file with two distributions whose staging DNS names are `s1.test` and
    /// `s2.test`.
    fn state(max_policies: usize) -> ControlState {
        let mut text = format!(
            "[[listener]]\nname = \"http\"\nlisten = \"127.0.0.1:0\"\n[admin]\nauth = \"none\"\n\
             [continuous_deployment]\nmax_policies = {max_policies}\n"
        );
        for (id, staging) in [("one", "s1.test"), ("two", "s2.test")] {
            text.push_str(&format!(
                "[[distribution]]\nid = \"{id}\"\ndomains = [\"{id}.test\"]\nstaging_dns_name = \"{staging}\"\n\
                 [distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n\
                 [distribution.staging]\norigins = [\"http://127.0.0.1:2\"]\n"
            ));
        }
        let config = crate::config::parse(&text, "t.toml", std::path::Path::new(".")).unwrap();
        ControlState {
            dry_run: false,
            config,
            policies: Default::default(),
            evidently: Default::default(),
            inline_epochs: Default::default(),
            cookie_key: crate::cd::cookie::CookieKey::new(&[1; 32]),
        }
    }

    fn config(names: &[&str], weight: f64, enabled: bool) -> PolicyConfig {
        PolicyConfig {
            staging_dns_names: names.iter().map(|n| n.to_string()).collect(),
            enabled,
            traffic: Some(TrafficConfig {
                kind: TrafficType::SingleWeight,
                single_weight: Some(SingleWeight { weight, stickiness: None }),
                single_header: None,
            }),
        }
    }

    fn fresh(n: u64) -> Fresh {
        Fresh { now_ms: 1_000 * n, id: format!("id{n}"), etag: format!("E{n}") }
    }

    /// Applies and commits `cmd` the way `Plane::execute` does, minus the store.
    fn run(st: &mut ControlState, cmd: Command, n: u64) -> Result<Outcome, DomainError> {
        let applied = apply(st, cmd, fresh(n))?;
        for c in applied.changes {
            st.commit(c);
        }
        Ok(applied.outcome)
    }

    #[test]
    fn create_takes_the_fresh_id_and_version_and_checks_names_and_quota() {
        let mut st = state(2);
        let out = run(&mut st, Command::CreatePolicy { config: config(&["s1.test"], 0.1, true) }, 1).unwrap();
        let Outcome::Policy(p) = out else { panic!("{out:?}") };
        assert_eq!((p.id.as_str(), p.etag.as_str(), p.last_modified_ms, p.epoch), ("id1", "E1", 1000, 0));
        // The same staging distribution again, in any case: in use.
        let again = run(&mut st, Command::CreatePolicy { config: config(&["S1.TEST"], 0.1, true) }, 2);
        assert_eq!(again, Err(DomainError::StagingInUse { name: "S1.TEST".into() }));
        for (names, why) in
            [(&[][..], "one"), (&["nope.test"][..], "No staging"), (&["s2.test", "S2.test"][..], "twice")]
        {
            let e = run(&mut st, Command::CreatePolicy { config: config(names, 0.1, true) }, 3).unwrap_err();
            assert!(matches!(&e, DomainError::Invalid { message, .. } if message.contains(why)), "{e:?}");
        }
        run(&mut st, Command::CreatePolicy { config: config(&["s2.test"], 0.1, true) }, 4).unwrap();
        let full = run(&mut st, Command::CreatePolicy { config: config(&["s2.test"], 0.1, true) }, 5);
        assert_eq!(full, Err(DomainError::Quota { kind: ResourceKind::Policy, limit: 2 }));
    }

    #[test]
    fn update_and_delete_need_the_current_version() {
        let mut st = state(10);
        run(&mut st, Command::CreatePolicy { config: config(&["s1.test"], 0.1, true) }, 1).unwrap();
        let update = |if_match: Option<&str>, enabled| Command::UpdatePolicy {
            id: "id1".into(),
            if_match: if_match.map(str::to_string),
            config: config(&["s1.test"], 0.15, enabled),
        };
        assert_eq!(run(&mut st, update(None, true), 2), Err(DomainError::VersionMissing));
        assert_eq!(run(&mut st, update(Some("  "), true), 2), Err(DomainError::VersionMissing));
        assert_eq!(run(&mut st, update(Some("E9"), true), 2), Err(DomainError::VersionMismatch));
        // Its own staging name is not "in use"; a new version each time; disabling starts a new epoch.
        let Ok(Outcome::Policy(p)) = run(&mut st, update(Some("E1"), true), 2) else { panic!() };
        assert_eq!((p.id.as_str(), p.etag.as_str(), p.epoch), ("id1", "E2", 0));
        let Ok(Outcome::Policy(p)) = run(&mut st, update(Some("E2"), false), 3) else { panic!() };
        assert_eq!((p.etag.as_str(), p.epoch), ("E3", 1));
        let missing = Command::DeletePolicy { id: "nope".into(), if_match: Some("E3".into()) };
        assert_eq!(
            run(&mut st, missing, 4),
            Err(DomainError::NotFound { kind: ResourceKind::Policy, id: "nope".into() })
        );
        let stale = Command::DeletePolicy { id: "id1".into(), if_match: Some("E2".into()) };
        assert_eq!(run(&mut st, stale, 4), Err(DomainError::VersionMismatch));
        let delete = Command::DeletePolicy { id: "id1".into(), if_match: Some("E3".into()) };
        assert_eq!(run(&mut st, delete, 4), Ok(Outcome::Deleted));
        assert!(st.policies.is_empty());
    }

    #[test]
    fn a_policy_a_distribution_names_cannot_be_deleted() {
        let mut st = state(10);
        run(&mut st, Command::CreatePolicy { config: config(&["s1.test"], 0.1, true) }, 1).unwrap();
        st.config.distributions[1].policy_id = Some("id1".into());
        let delete = Command::DeletePolicy { id: "id1".into(), if_match: Some("E1".into()) };
        assert_eq!(
            run(&mut st, delete, 2),
            Err(DomainError::PolicyInUse { id: "id1".into(), distribution: "two".into() })
        );
    }
}
