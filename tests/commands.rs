//! The fuzz target `commands` without libFuzzer: the same interpreter and invariants
//! (`support/command_driver.rs`), run on the seed corpus and on 300 programs from a fixed-seed
//! generator, each on a fresh plane. Asserts that the programs got somewhere: every kind of command
//! succeeded, every kind of refusal happened, every quota was reached, and launches and experiments ran
//! side by side, so that the invariants were checked on states where they could break.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

#[path = "support/command_driver.rs"]
mod driver;

use driver::{Kind, MAX_COMMANDS, RECORD, TABLE, Tally};

const RUNS: usize = 300;

/// Every quota, as `Tally::quotas` names them.
const QUOTAS: [&str; 7] = [
    "project/Account",
    "segment/Account",
    "feature/Project",
    "launch/Project",
    "experiment/Project",
    "launch/Running",
    "experiment/Running",
];

/// What a third of the programs start with: projects `p0` and `p1`, features `f0`, `f1` and `f2` of
/// `p0` (its quota) and `f0` of `p1`, each with variations `a` and `b`, and the segment `s0`. One record a line: the
/// kind's index in the table, then its arguments (see `driver::command`).
const SETUP: &[&[u8]] = &[
    &[0, 0],       // CreateProject p0
    &[0, 1],       // CreateProject p1
    &[4, 0, 0, 3], // CreateFeature p0 f0, variations a and b
    &[4, 0, 1, 3], // CreateFeature p0 f1, variations a and b
    &[4, 0, 2, 3], // CreateFeature p0 f2, variations a and b
    &[4, 1, 0, 3], // CreateFeature p1 f0, variations a and b
    &[7, 0, 0],    // CreateSegment s0 {"Browser":["Chrome"]}
];

/// What another third start with: [`SETUP`], then launches and experiments of `p0`, `l0` and `x0` on
/// `f0` (running), `l1` and `x1` on `f1` (not started; both use `s0`), so that random commands start,
/// stop, update and delete them, and fill the quotas.
const LIVE: &[&[u8]] = &[
    &[9, 0, 0, 0, 0, 1, 0, 1],          // CreateLaunch p0 l0: g0 f0 a, g1 f0 b
    &[9, 0, 1, 1, 0, 1, 1, 1, 2, 0, 0], // CreateLaunch p0 l1: g0 f1 a, g1 f1 b, a step, s0 overrides
    &[14, 0, 0, 0, 0, 1],               // CreateExperiment p0 x0: t0 f0 a, t1 f0 b
    &[14, 0, 1, 1, 0, 1, 1, 1],         // CreateExperiment p0 x1: t0 f1 a, t1 f1 b, s0, even weights
    &[12, 0, 0],                        // StartLaunch p0 l0
    &[17, 0, 0, 0],                     // StartExperiment p0 x0, analysis in an hour
];

/// xorshift64*: a fixed sequence, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A program of `n` records: each kind as likely as the table makes it, and arguments that are
    /// mostly 0 (half of them) or 1 (a quarter), the first names and choices, so that commands meet:
    /// uniform bytes seldom build a feature, a launch on it and a start of that launch in one program.
    fn program(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * RECORD);
        for _ in 0..n {
            out.push(self.next() as u8);
            for _ in 1..RECORD {
                let r = self.next();
                out.push(match r % 4 {
                    0 | 1 => 0,
                    2 => 1,
                    _ => (r >> 8) as u8,
                });
            }
        }
        out
    }
}

#[test]
fn random_programs_keep_the_invariants_and_reach_every_rule() {
    let mut rng = Rng(0x5eed_c0de_0015_0002);
    let mut tally = Tally::default();
    for run in 0..RUNS {
        let prelude: Vec<&[u8]> = match run % 3 {
            0 => Vec::new(),
            1 => SETUP.to_vec(),
            _ => SETUP.iter().chain(LIVE).copied().collect(),
        };
        let mut program = Vec::new();
        for record in prelude {
            program.extend(record);
            program.resize(program.len() + RECORD - record.len(), 0);
        }
        let records = MAX_COMMANDS - program.len() / RECORD - (rng.next() % 8) as usize;
        program.extend(rng.program(records));
        driver::run(&driver::plane(), &program, &mut tally);
    }
    eprintln!("{tally:#?}");

    assert!(tally.commands > RUNS * 15, "too few commands ran: {}", tally.commands);
    let every_kind: std::collections::BTreeSet<Kind> = TABLE.into_iter().collect();
    let never: Vec<&Kind> = every_kind.iter().filter(|k| !tally.ok.contains_key(k)).collect();
    assert!(never.is_empty(), "these kinds never succeeded: {never:?}");
    for class in ["not found", "exists", "conflict", "quota", "invalid", "constraint"] {
        assert!(tally.refused.get(class).copied().unwrap_or(0) > 0, "no command was refused as {class}");
    }
    for quota in ["project/Account", "segment/Account", "feature/Project"] {
        assert!(tally.quotas.contains(quota), "the quota {quota} was never reached: {:?}", tally.quotas);
    }
    assert_eq!(tally.most_running, (2, 2), "two launches and two experiments never ran at once in a project");
    assert_eq!(tally.refused.get("store"), None);
}

/// The seeds of the fuzz target (`fuzz/corpus/commands`) are programs that get somewhere: between
/// them they reach every quota and D6's refusals (a start on a feature that a running launch, or
/// experiment, serves), which random programs seldom do.
#[test]
fn the_seed_corpus_reaches_the_quotas_and_d6() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/commands");
    let mut all = Tally::default();
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let mut tally = Tally::default();
        driver::run(&driver::plane(), &std::fs::read(&path).unwrap(), &mut tally);
        eprintln!("{}: {tally:#?}", path.display());
        assert!(tally.commands >= 8, "{}: only {} commands", path.display(), tally.commands);
        assert!(!tally.ok.is_empty() && !tally.refused.is_empty(), "{}: {tally:#?}", path.display());
        all.merge(tally);
        seeds += 1;
    }
    assert!(seeds >= 3, "too few seeds in {}", dir.display());
    for quota in QUOTAS {
        assert!(all.quotas.contains(quota), "no seed reaches the quota {quota}: {:?}", all.quotas);
    }
    for start in [Kind::StartLaunch, Kind::StartExperiment] {
        assert!(all.refused_by_kind.contains_key(&(start, "conflict")), "no seed has a {start:?} refused by D6");
    }
    assert_eq!(all.most_running, (2, 2));
}

/// Regression, found by this target: a time with 17 significant digits (a client's
/// `analysisCompleteTime` or step `startTime` in full double precision) was stored as written but read
/// back (`Resource::from_stored`, as `Plane::new` does after a restart) one unit in the last place
/// off, as serde_json was built without its `float_roundtrip` feature.
#[test]
fn stored_times_read_back_exactly() {
    use edgesplit::evidently::model::{Project, Resource};
    let t = 1_796_470_602.507_242_7_f64;
    let project = Resource::Project(Project {
        name: "p0".into(),
        description: None,
        created_time: t,
        last_updated_time: t,
        app_config_resource: None,
        data_delivery: None,
        tags: Default::default(),
    });
    assert_eq!(Resource::from_stored(&project.key(), &project.to_json()), Some(project));
}
