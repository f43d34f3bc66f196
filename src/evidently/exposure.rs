//! Exposures: which treatment of which running experiment (or group of which running launch with metric
//! monitors) an entity was served, and when, whether the evaluation came from the API or from the proxy.
//! Events arriving later (PutProjectEvents, issue 6) are attributed to the entity's latest assignment
//! within the hour (spec 5.1), so this memory only needs the last hour, and is bounded besides.
//!
//! The request path only `try_send`s into a bounded channel (no lock); one task owns the memory and
//! evicts. Under overload, exposures are dropped and counted rather than slowing requests down.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::engine::{CompiledFeature, Details};

/// Which kind of rule served the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    Experiment,
    Launch,
}

/// One evaluation that put an entity in an experiment's treatment or a launch's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    pub project: Arc<str>,
    pub kind: RuleKind,
    /// The experiment's or the launch's name.
    pub rule: Arc<str>,
    /// The treatment or group.
    pub arm: Arc<str>,
    pub entity: Arc<str>,
    /// Unix milliseconds.
    pub at_ms: i64,
}

impl Exposure {
    /// The exposure `feature`'s evaluation implies, if a launch or an experiment served it and events
    /// can be attributed to that rule (it has metric monitors or goals): nothing would ever read the
    /// others, and remembering one costs about a microsecond of CPU per request.
    pub fn of(
        project: &Arc<str>,
        feature: &CompiledFeature,
        details: &Details<'_>,
        entity: &str,
        at_ms: i64,
    ) -> Option<Exposure> {
        let (kind, rule, arm) = match *details {
            Details::Experiment { experiment, treatment }
                if feature.experiment.as_ref().is_some_and(|x| x.measured) =>
            {
                (RuleKind::Experiment, experiment, treatment)
            }
            Details::Launch { launch, group } if feature.launch.as_ref().is_some_and(|l| l.measured) => {
                (RuleKind::Launch, launch, group)
            }
            _ => return None,
        };
        Some(Exposure {
            project: project.clone(),
            kind,
            rule: rule.into(),
            arm: arm.into(),
            entity: entity.into(),
            at_ms,
        })
    }
}

/// The latest assignment of an entity by one experiment or launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub kind: RuleKind,
    pub rule: Arc<str>,
    pub arm: Arc<str>,
    pub at_ms: i64,
}

/// (project, entity): both shared, so the eviction queue's copy of a key costs two reference counts.
type Key = (Arc<str>, Arc<str>);

#[derive(Default)]
struct Memory {
    /// (project, entity) -> latest assignment per experiment.
    by_entity: HashMap<Key, Vec<Assignment>>,
    /// Insertion order, for eviction: (key, at_ms).
    order: VecDeque<(Key, i64)>,
}

/// How often the queue is moved into the memory; the queue holds far more than a tick's worth.
const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

pub struct ExposureLog {
    tx: mpsc::Sender<Exposure>,
    rx: Mutex<Option<mpsc::Receiver<Exposure>>>,
    memory: Mutex<Memory>,
    window_ms: i64,
    capacity: usize,
    pub recorded: AtomicU64,
    pub dropped: AtomicU64,
    /// Drain passes `run` has finished; what `settle` waits on.
    passes: AtomicU64,
    /// In a fleet: exposures drained here, waiting to be written to the shared store (bounded).
    outbox: Mutex<Vec<Exposure>>,
    share: std::sync::atomic::AtomicBool,
    /// Exposures the outbox had no room for, or the store refused: never shared with the fleet.
    pub unshared: AtomicU64,
}

/// Most exposures waiting for the shared store; past it they are dropped (and counted).
const OUTBOX_CAP: usize = 64 * 1024;

impl ExposureLog {
    /// A log that remembers `window_ms` of assignments, at most `capacity` of them.
    pub fn new(window_ms: i64, capacity: usize) -> ExposureLog {
        let (tx, rx) = mpsc::channel(64 * 1024);
        ExposureLog {
            tx,
            rx: Mutex::new(Some(rx)),
            memory: Mutex::new(Memory::default()),
            window_ms,
            capacity,
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            passes: AtomicU64::new(0),
            outbox: Mutex::new(Vec::new()),
            share: std::sync::atomic::AtomicBool::new(false),
            unshared: AtomicU64::new(0),
        }
    }

    /// Records an exposure without waiting; a full queue drops it (and counts).
    pub fn record(&self, e: Exposure) {
        if self.capacity == 0 {
            return;
        }
        if self.tx.try_send(e).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Waits (blocking, up to `max_wait`) until what was queued before the call has been drained, so
    /// that events put right after an evaluation find it: the queue is empty, or two drain passes have
    /// finished since the call (the second began after it, and a pass takes all that was queued when it
    /// began). Under a steady stream of exposures that is about two ticks, where waiting for an empty
    /// queue took the whole `max_wait`. False if `max_wait` passed first. Called off the async workers
    /// and without the plane's lock, before attributing events.
    pub(crate) fn settle(&self, max_wait: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + max_wait;
        let first = self.passes.load(Acquire);
        loop {
            if self.tx.capacity() == self.tx.max_capacity() || self.passes.load(Acquire) >= first + 2 {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Moves queued exposures into the memory until the log is dropped. Run it once, on the runtime.
    ///
    /// It drains the queue on a short tick rather than waiting on it: a waiting receiver would be woken,
    /// across threads, by nearly every request that records an exposure.
    pub async fn run(self: Arc<Self>) {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut rx) = rx else { return };
        let mut tick = tokio::time::interval(DRAIN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // One pass takes what is queued now; what arrives meanwhile is the next pass's, so a pass
            // ends even under a steady stream, and `settle` can count passes.
            for _ in 0..rx.len() {
                match rx.try_recv() {
                    Ok(e) => self.insert(e),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            self.passes.fetch_add(1, Release);
        }
    }

    /// From now on, every exposure drained here is also kept for [`ExposureLog::take_shared`] (a fleet
    /// store shares them with the other instances).
    pub fn share(&self) {
        self.share.store(true, Relaxed);
    }

    /// The exposures drained since the last call, to write to the shared store.
    pub fn take_shared(&self) -> Vec<Exposure> {
        std::mem::take(&mut *self.outbox.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts one exposure in the memory and evicts what is out of the window or over capacity.
    pub fn insert(&self, e: Exposure) {
        if self.share.load(Relaxed) {
            let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
            if outbox.len() < OUTBOX_CAP {
                outbox.push(e.clone());
            } else {
                self.unshared.fetch_add(1, Relaxed);
            }
        }
        self.remember(e);
    }

    /// Puts an exposure another instance made (read from the shared store) in the memory.
    pub fn insert_shared(&self, e: Exposure) {
        self.remember(e);
    }

    fn remember(&self, e: Exposure) {
        let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let key: Key = (e.project.clone(), e.entity);
        // Most entities hold one assignment: room for one, where a first push would make room for 4.
        let list = m.by_entity.entry(key.clone()).or_insert_with(|| Vec::with_capacity(1));
        match list.iter_mut().find(|a| a.kind == e.kind && a.rule == e.rule) {
            Some(a) => {
                a.arm = e.arm;
                a.at_ms = e.at_ms;
            }
            None => list.push(Assignment { kind: e.kind, rule: e.rule, arm: e.arm, at_ms: e.at_ms }),
        }
        m.order.push_back((key, e.at_ms));
        self.recorded.fetch_add(1, Relaxed);
        let oldest_allowed = e.at_ms - self.window_ms;
        while let Some(&(_, at)) = m.order.front() {
            if at >= oldest_allowed && m.order.len() <= self.capacity {
                break;
            }
            let Some((k, at)) = m.order.pop_front() else { break };
            // Forget assignments no newer than the evicted entry (a newer one has its own entry). One
            // lookup for both the trim and the removal.
            if let Entry::Occupied(mut list) = m.by_entity.entry(k) {
                list.get_mut().retain(|a| a.at_ms > at);
                if list.get().is_empty() {
                    list.remove();
                }
            }
        }
    }

    /// The entity's assignments made within the window before `now_ms`.
    pub fn latest(&self, project: &str, entity: &str, now_ms: i64) -> Vec<Assignment> {
        let m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let key: Key = (project.into(), entity.into());
        m.by_entity
            .get(&key)
            .map(|l| l.iter().filter(|a| a.at_ms <= now_ms && now_ms - a.at_ms <= self.window_ms).cloned().collect())
            .unwrap_or_default()
    }

    /// How many (entity, time) entries the memory holds.
    pub fn len(&self) -> usize {
        self.memory.lock().unwrap_or_else(|p| p.into_inner()).order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(entity: &str, experiment: &str, treatment: &str, at_ms: i64) -> Exposure {
        Exposure {
            project: "p".into(),
            kind: RuleKind::Experiment,
            rule: experiment.into(),
            arm: treatment.into(),
            entity: entity.into(),
            at_ms,
        }
    }

    #[test]
    fn keeps_the_latest_assignment_per_experiment_within_the_hour() {
        let log = ExposureLog::new(3_600_000, 1000);
        log.insert(e("u1", "exp", "control", 1_000));
        log.insert(e("u1", "exp", "treat", 2_000));
        log.insert(e("u1", "other", "a", 2_500));
        let got = log.latest("p", "u1", 3_000);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            Assignment { kind: RuleKind::Experiment, rule: "exp".into(), arm: "treat".into(), at_ms: 2_000 }
        );
        assert!(log.latest("p", "u1", 2_000 + 3_600_001).iter().all(|a| a.rule.as_ref() == "other"));
        assert!(log.latest("p", "u2", 3_000).is_empty());
        assert!(log.latest("q", "u1", 3_000).is_empty());
    }

    #[test]
    fn memory_is_bounded_by_the_window_and_the_capacity() {
        let log = ExposureLog::new(1_000, 100);
        for i in 0..10_000 {
            log.insert(e(&format!("u{i}"), "exp", "t", i));
        }
        assert!(log.len() <= 100, "{}", log.len());
        // Everything older than the window is gone even under capacity.
        let log = ExposureLog::new(1_000, 1_000_000);
        for i in 0..10_000 {
            log.insert(e(&format!("u{i}"), "exp", "t", i * 10));
        }
        assert!(log.len() <= 101, "{}", log.len());
        assert!(log.latest("p", "u0", 99_990).is_empty());
        assert_eq!(log.latest("p", "u9999", 99_990).len(), 1);
    }

    #[tokio::test]
    async fn record_goes_through_the_queue() {
        let log = Arc::new(ExposureLog::new(3_600_000, 1000));
        let task = tokio::spawn(log.clone().run());
        log.record(e("u1", "exp", "t", 5));
        for _ in 0..100 {
            if !log.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(log.latest("p", "u1", 10).len(), 1);
        task.abort();
    }

    #[test]
    fn settle_returns_once_what_was_queued_before_is_drained_even_under_a_steady_stream() {
        // Before, settle waited for an empty queue, which a steady stream of exposures never leaves: every
        // PutProjectEvents then waited the whole 500 ms.
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let log = Arc::new(ExposureLog::new(3_600_000, 1_000_000));
        rt.spawn(log.clone().run());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stream = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Relaxed) {
                    i += 1;
                    log.record(e(&format!("s{i}"), "exp", "t", 1));
                    std::thread::sleep(std::time::Duration::from_micros(20));
                }
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        for round in 0..5 {
            let entity = format!("marker{round}");
            log.record(e(&entity, "exp", "t", 2));
            assert!(log.settle(std::time::Duration::from_secs(30)), "settle timed out under a steady stream");
            assert_eq!(log.latest("p", &entity, 2).len(), 1, "an exposure queued before settle was not drained");
        }
        stop.store(true, Relaxed);
        stream.join().unwrap();
        // Nothing drains a log whose `run` is not running: settle gives up at its bound.
        let idle = ExposureLog::new(3_600_000, 10);
        idle.record(e("u", "exp", "t", 1));
        assert!(!idle.settle(std::time::Duration::from_millis(20)));
        assert!(ExposureLog::new(3_600_000, 10).settle(std::time::Duration::ZERO), "an empty queue is settled");
    }
}
