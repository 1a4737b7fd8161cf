//! Scaling bookkeeping, free of I/O: which instance takes a request, when a request starts a new instance, which
//! instances are idle long enough to stop, how many are missing for `min_instances`.
//!
//! Starting instances count toward `max_instances` from the moment they are planned, so no interleaving of
//! requests can exceed it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::spawn::Proc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Planned or spawned, not yet listening. Counts toward `max_instances`, takes no request.
    Starting,
    Ready,
}

/// One instance of a revision, as the scaler sees it.
pub(crate) struct Slot {
    pub(crate) id: String,
    pub(crate) phase: Phase,
    pub(crate) in_flight: u32,
    /// When the last request ended (or the instance became ready).
    pub(crate) last_used: Instant,
    pub(crate) addr: Option<SocketAddr>,
    /// The instance's network namespace, when it runs in a sandbox (`addr` is inside it).
    pub(crate) netns: Option<Arc<network::netns::Netns>>,
    pub(crate) proc: Option<Arc<Proc>>,
}

impl Slot {
    pub(crate) fn starting(id: String, now: Instant) -> Slot {
        Slot { id, phase: Phase::Starting, in_flight: 0, last_used: now, addr: None, netns: None, proc: None }
    }
}

/// The ready instance with a free slot and the fewest requests in flight (the earliest such on ties).
pub(crate) fn pick(slots: &[Slot], concurrency: u32) -> Option<usize> {
    slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.phase == Phase::Ready && s.in_flight < concurrency)
        .min_by_key(|(i, s)| (s.in_flight, *i))
        .map(|(i, _)| i)
}

/// Whether a request that found no free slot should start an instance: only below `max_instances`, and only when
/// the instances already starting cannot absorb every waiting request (`waiting` includes the asking one).
pub(crate) fn should_start(slots: &[Slot], concurrency: u32, max_instances: u32, waiting: usize) -> bool {
    if slots.len() >= max_instances as usize {
        return false;
    }
    let starting = slots.iter().filter(|s| s.phase == Phase::Starting).count();
    (starting as u64) * u64::from(concurrency) < waiting as u64
}

/// Indices of ready instances with nothing in flight for at least `idle_timeout`, oldest first, without going below
/// `min_instances` instances in total.
pub(crate) fn idle_victims(slots: &[Slot], now: Instant, idle_timeout: Duration, min_instances: u32) -> Vec<usize> {
    let spare = slots.len().saturating_sub(min_instances as usize);
    let mut idle: Vec<usize> = (0..slots.len())
        .filter(|&i| {
            let s = &slots[i];
            s.phase == Phase::Ready && s.in_flight == 0 && now.saturating_duration_since(s.last_used) >= idle_timeout
        })
        .collect();
    idle.sort_by_key(|&i| slots[i].last_used);
    idle.truncate(spare);
    idle
}

/// How many instances to start so that `min_instances` exist (starting ones count).
pub(crate) fn missing_for_min(slots: &[Slot], min_instances: u32) -> usize {
    (min_instances as usize).saturating_sub(slots.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(id: &str, in_flight: u32, idle_for: Duration, now: Instant) -> Slot {
        Slot {
            id: id.into(),
            phase: Phase::Ready,
            in_flight,
            last_used: now - idle_for,
            addr: None,
            netns: None,
            proc: None,
        }
    }

    #[test]
    fn pick_prefers_the_least_loaded_ready_instance_with_room() {
        let now = Instant::now();
        let z = Duration::ZERO;
        let slots =
            vec![ready("a", 2, z, now), Slot::starting("s".into(), now), ready("b", 1, z, now), ready("c", 1, z, now)];
        assert_eq!(pick(&slots, 3), Some(2), "fewest in flight, earliest on ties, never a starting one");
        assert_eq!(pick(&slots, 1), None, "every ready instance is full");
        assert_eq!(pick(&[Slot::starting("s".into(), now)], 5), None);
        assert_eq!(pick(&[], 5), None);
    }

    #[test]
    fn should_start_never_exceeds_max_instances() {
        let now = Instant::now();
        let z = Duration::ZERO;
        let full = vec![ready("a", 1, z, now), Slot::starting("s".into(), now)];
        // The table reads: (slots, concurrency, max, waiting) → start?
        assert!(!should_start(&full, 1, 2, 10), "at max: queue");
        assert!(should_start(&full, 1, 3, 2), "one starting instance with concurrency 1 cannot absorb two waiters");
        assert!(!should_start(&full, 1, 3, 1), "the starting instance absorbs the one waiter");
        assert!(!should_start(&full, 80, 3, 50), "concurrency 80 absorbs 50 waiters");
        assert!(should_start(&[], 1, 1, 1), "scale from zero");
        assert!(!should_start(&[], 1, 0, 1), "max 0 never starts");
    }

    #[test]
    fn idle_victims_respect_the_timeout_in_flight_and_min_instances() {
        let now = Instant::now();
        let idle = Duration::from_secs(10);
        let slots = vec![
            ready("busy", 1, Duration::from_secs(60), now),
            ready("old", 0, Duration::from_secs(50), now),
            ready("fresh", 0, Duration::from_secs(1), now),
            ready("older", 0, Duration::from_secs(55), now),
            Slot::starting("s".into(), now - Duration::from_secs(100)),
        ];
        assert_eq!(idle_victims(&slots, now, idle, 0), vec![3, 1], "oldest idle first; busy, fresh, starting stay");
        assert_eq!(idle_victims(&slots, now, idle, 4), vec![3], "five instances, min four: one may go");
        assert!(idle_victims(&slots, now, idle, 5).is_empty());
    }

    #[test]
    fn missing_for_min_counts_starting_instances() {
        let now = Instant::now();
        let slots = vec![Slot::starting("s".into(), now), ready("a", 0, Duration::ZERO, now)];
        assert_eq!(missing_for_min(&slots, 3), 1);
        assert_eq!(missing_for_min(&slots, 2), 0);
        assert_eq!(missing_for_min(&slots, 0), 0);
    }
}
