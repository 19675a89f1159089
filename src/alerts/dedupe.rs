//! Alertmanager delivers at least once (more than once in HA, again every
//! repeat_interval): a firing alert is acted on once per (fingerprint,
//! startsAt). Bounded: entries expire after `ttl`, past `capacity` the
//! oldest go first, and the order queue never holds more than twice the
//! capacity (forgotten entries are dropped).
//!
//! `BlockedNodes` is the same idea for a node found blocked: said once per set
//! of blockers, however many alerts name it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

pub type Key = (String, DateTime<Utc>);

pub struct Dedupe {
    seen: HashMap<Key, Instant>,
    order: VecDeque<(Key, Instant)>,
    ttl: Duration,
    capacity: usize,
}

impl Dedupe {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            order: VecDeque::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// True the first time `key` is seen within the ttl; records it.
    pub fn first(&mut self, key: Key, now: Instant) -> bool {
        self.expire(now);
        if self.seen.contains_key(&key) {
            return false;
        }
        while self.seen.len() >= self.capacity {
            match self.order.pop_front() {
                // A forgotten entry (its key perhaps seen again since) frees nothing.
                Some((old, at)) => {
                    if self.seen.get(&old) == Some(&at) {
                        self.seen.remove(&old);
                    }
                }
                None => break,
            }
        }
        self.seen.insert(key.clone(), now);
        self.order.push_back((key, now));
        // Forgotten keys stay in the queue until they reach its front; a full
        // intake queue forgets every retry. Drop them before the queue grows
        // past twice the capacity (amortised: at most once per `capacity` calls).
        if self.order.len() > 2 * self.capacity {
            let seen = &self.seen;
            self.order.retain(|(k, at)| seen.get(k) == Some(at));
        }
        true
    }

    /// Forgets `key`: its delivery was not queued, the retry must count.
    pub fn forget(&mut self, key: &Key) {
        self.seen.remove(key);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Entries of the order queue (the live ones and those not yet dropped).
    pub fn remembered(&self) -> usize {
        self.order.len()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            let stale = now.duration_since(*at) > self.ttl;
            let forgotten = self.seen.get(key) != Some(at);
            if !stale && !forgotten {
                break;
            }
            if stale && !forgotten {
                self.seen.remove(key);
            }
            self.order.pop_front();
        }
    }
}

/// Nodes an alert asked to drain that hold blocking pods: each is said blocked
/// once (a warning, Slack, an Event) per set of blockers. Every alert that
/// names it again — Alertmanager's repeats, the alert firing anew, another
/// alert for the node — finds it blocked by the same pods and is a repeat,
/// said again only after `ttl`. Other blockers, or the node free in between,
/// make it news. Bounded: past `capacity` nodes the stalest entry goes.
pub struct BlockedNodes {
    said: HashMap<String, (Vec<String>, Instant)>,
    ttl: Duration,
    capacity: usize,
}

impl BlockedNodes {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            said: HashMap::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// True when `node` blocked by `blockers` (in any order) is news: not
    /// said, said with other blockers, or said more than the ttl ago; records it.
    pub fn first(&mut self, node: &str, blockers: &[String], now: Instant) -> bool {
        let mut blockers = blockers.to_vec();
        blockers.sort();
        if let Some((said, at)) = self.said.get(node) {
            if *said == blockers && now.duration_since(*at) <= self.ttl {
                return false;
            }
        }
        if !self.said.contains_key(node) && self.said.len() >= self.capacity {
            let ttl = self.ttl;
            self.said
                .retain(|_, (_, at)| now.duration_since(*at) <= ttl);
            let stalest = self
                .said
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(n, _)| n.clone());
            if let (true, Some(n)) = (self.said.len() >= self.capacity, stalest) {
                self.said.remove(&n);
            }
        }
        self.said.insert(node.to_string(), (blockers, now));
        true
    }

    /// `node` holds no blocker now: its next block is news.
    pub fn forget(&mut self, node: &str) {
        self.said.remove(node);
    }

    pub fn len(&self) -> usize {
        self.said.len()
    }

    pub fn is_empty(&self) -> bool {
        self.said.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_blocked_node_is_said_once_per_set_of_blockers() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let dnd = "ns/keep (karpenter.sh/do-not-disrupt: \"true\")";
        let bare = "ns/debug (no controller: a bare pod would not come back)";
        // (what happens, node, blockers, seconds after t0, said?)
        let steps: Vec<(&str, &str, Vec<String>, u64, bool)> = vec![
            ("found blocked", "n1", pods(&[dnd]), 0, true),
            ("the alert again", "n1", pods(&[dnd]), 1, false),
            ("another node, same pod name", "n2", pods(&[dnd]), 1, true),
            ("a second blocker", "n1", pods(&[dnd, bare]), 2, true),
            (
                "the same two, other order",
                "n1",
                pods(&[bare, dnd]),
                3,
                false,
            ),
            ("one blocker left", "n1", pods(&[bare]), 4, true),
            ("within the ttl", "n1", pods(&[bare]), 64, false),
            ("past the ttl: a reminder", "n1", pods(&[bare]), 65, true),
        ];
        let mut b = BlockedNodes::new(ttl, 100);
        for (what, node, blockers, at, said) in steps {
            let now = t0 + Duration::from_secs(at);
            assert_eq!(b.first(node, &blockers, now), said, "{what}");
        }
        // Free in between (the pod left and came back): news again.
        b.forget("n1");
        assert!(b.first("n1", &pods(&[bare]), t0 + Duration::from_secs(66)));
    }

    #[test]
    fn the_blocked_memory_is_bounded() {
        let t0 = Instant::now();
        let mut b = BlockedNodes::new(Duration::from_secs(60), 3);
        for i in 0..10u64 {
            let now = t0 + Duration::from_secs(i);
            assert!(b.first(&format!("n{i}"), &pods(&["ns/p"]), now));
            assert!(b.len() <= 3, "{} remembered for a capacity of 3", b.len());
        }
        // The latest are kept: still repeats.
        assert!(!b.first("n9", &pods(&["ns/p"]), t0 + Duration::from_secs(10)));
    }
}
