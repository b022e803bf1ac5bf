//! Which workloads get series of their own.
//!
//! The per-workload metrics ([`names::PER_WORKLOAD`]) are labelled with the namespace and the
//! workload an alert named. Those come from the network: in an assumed-healthy simulated
//! cluster any name is a workload, and even a real cluster has as many workloads as anyone may
//! create. So at most `cap` (namespace, workload) pairs have series of their own at a time.
//! Beyond it, counters and histograms are counted under [`names::OTHER_WORKLOAD`] for both
//! labels, and gauges (a current value, which cannot be summed from last writes) are not
//! exported; `/v1/status` and the custom-metrics API still answer for every workload. A pair
//! that has not been touched for `ttl` gives its place back, and the exporter drops its series
//! after the same idle time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::names::{self, label};

/// Pairs with series of their own by default.
pub const DEFAULT_CAP: usize = 256;
/// A pair untouched this long gives its place back (and its series expire).
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
/// Expired pairs are looked for at most this often when the table is full.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Whether a pair has series of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Its own series.
    Own,
    /// Counted under [`names::OTHER_WORKLOAD`].
    Other,
}

#[derive(Debug, Default)]
struct Table {
    /// namespace → workload → last touched.
    pairs: HashMap<String, HashMap<String, Instant>>,
    len: usize,
    last_sweep: Option<Instant>,
}

/// The bounded set of (namespace, workload) pairs with series of their own.
#[derive(Debug)]
pub struct WorkloadSlots {
    cap: usize,
    ttl: Duration,
    table: Mutex<Table>,
}

impl Default for WorkloadSlots {
    fn default() -> Self {
        WorkloadSlots::new(DEFAULT_CAP, DEFAULT_TTL)
    }
}

impl WorkloadSlots {
    /// At most `cap` pairs at a time; a pair untouched for `ttl` gives its place back.
    pub fn new(cap: usize, ttl: Duration) -> Self {
        WorkloadSlots {
            cap,
            ttl,
            table: Mutex::new(Table::default()),
        }
    }

    /// The idle time after which a pair (and its series) expires.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Pairs holding a place now (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.lock().len
    }

    /// True when no pair holds a place.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Touch `(namespace, workload)` at `now`: [`Slot::Own`] when it holds a place (or takes a
    /// free one), [`Slot::Other`] when the table is full of pairs touched within `ttl`.
    pub fn touch(&self, namespace: &str, workload: &str, now: Instant) -> Slot {
        let mut t = self.lock();
        if let Some(at) = t.pairs.get_mut(namespace).and_then(|w| w.get_mut(workload)) {
            *at = now;
            return Slot::Own;
        }
        if t.len >= self.cap
            && t.last_sweep
                .is_none_or(|s| now.duration_since(s) >= SWEEP_EVERY)
        {
            t.last_sweep = Some(now);
            let ttl = self.ttl;
            let mut removed = 0;
            t.pairs.retain(|_, workloads| {
                let before = workloads.len();
                workloads.retain(|_, at| now.duration_since(*at) < ttl);
                removed += before - workloads.len();
                !workloads.is_empty()
            });
            t.len -= removed;
        }
        if t.len >= self.cap {
            return Slot::Other;
        }
        t.pairs
            .entry(namespace.to_owned())
            .or_default()
            .insert(workload.to_owned(), now);
        t.len += 1;
        Slot::Own
    }
}

/// The namespace and workload label values of a metric key, when it has both.
pub(crate) fn workload_labels(key: &metrics::Key) -> Option<(&str, &str)> {
    let mut ns = None;
    let mut wl = None;
    for l in key.labels() {
        match l.key() {
            label::NAMESPACE => ns = Some(l.value()),
            label::WORKLOAD => wl = Some(l.value()),
            _ => {}
        }
    }
    Some((ns?, wl?))
}

/// `key` with its namespace and workload labels replaced by [`names::OTHER_WORKLOAD`].
pub(crate) fn other_key(key: &metrics::Key) -> metrics::Key {
    let labels: Vec<metrics::Label> = key
        .labels()
        .map(|l| match l.key() {
            label::NAMESPACE => {
                metrics::Label::from_static_parts(label::NAMESPACE, names::OTHER_WORKLOAD)
            }
            label::WORKLOAD => {
                metrics::Label::from_static_parts(label::WORKLOAD, names::OTHER_WORKLOAD)
            }
            _ => l.clone(),
        })
        .collect();
    metrics::Key::from_parts(key.name().to_owned(), labels)
}

/// True for the metrics whose label sets [`WorkloadSlots`] bounds.
pub(crate) fn is_per_workload(name: &str) -> bool {
    names::PER_WORKLOAD.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_beyond_the_cap_are_other_until_an_idle_pair_gives_its_place_back() {
        let slots = WorkloadSlots::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(slots.touch("shop", "web", t0), Slot::Own);
        assert_eq!(slots.touch("shop", "api", t0), Slot::Own);
        assert_eq!(slots.touch("evil", "x1", t0), Slot::Other);
        // Touching keeps a place.
        let t1 = t0 + Duration::from_secs(45);
        assert_eq!(slots.touch("shop", "web", t1), Slot::Own);
        assert_eq!(slots.touch("evil", "x2", t1), Slot::Other);
        // `api` has been idle for 60 s: its place goes to the next new pair; `web` keeps its own.
        let t2 = t0 + Duration::from_secs(61);
        assert_eq!(slots.touch("evil", "x3", t2), Slot::Own);
        assert_eq!(slots.touch("shop", "web", t2), Slot::Own);
        assert_eq!(slots.touch("shop", "api", t2), Slot::Other);
        assert_eq!(slots.len(), 2);
    }

    #[test]
    fn a_flood_of_new_pairs_sweeps_at_most_once_a_second() {
        let slots = WorkloadSlots::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(slots.touch("a", "a", t0), Slot::Own);
        // Full: swept at 9.6 s, `a` is still fresh.
        assert_eq!(slots.touch("b", "b", at(9_600)), Slot::Other);
        // `a` expired at 10 s, but the last sweep was 0.5 s ago: no new sweep yet.
        for i in 0..100 {
            assert_eq!(slots.touch("b", &i.to_string(), at(10_100)), Slot::Other);
        }
        // A second after the last sweep, `a` is swept out and the place is free.
        assert_eq!(slots.touch("c", "c", at(10_700)), Slot::Own);
        assert_eq!(slots.len(), 1);
    }

    #[test]
    fn keys_are_read_and_rewritten_by_their_workload_labels() {
        let key = metrics::Key::from_parts(
            names::REAPINGS_TOTAL,
            vec![
                metrics::Label::new(label::NAMESPACE, "shop"),
                metrics::Label::new(label::WORKLOAD, "web"),
                metrics::Label::new(label::ACTION, "delete"),
            ],
        );
        assert_eq!(workload_labels(&key), Some(("shop", "web")));
        let other = other_key(&key);
        assert_eq!(other.name(), names::REAPINGS_TOTAL);
        let labels: Vec<(&str, &str)> = other.labels().map(|l| (l.key(), l.value())).collect();
        assert_eq!(
            labels,
            vec![
                (label::NAMESPACE, names::OTHER_WORKLOAD),
                (label::WORKLOAD, names::OTHER_WORKLOAD),
                (label::ACTION, "delete"),
            ]
        );
        assert!(is_per_workload(names::ATTACK_PRESSURE));
        assert!(!is_per_workload(names::ALERTS_TOTAL));
    }
}
