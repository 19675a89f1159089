//! Alertmanager delivers at least once (more than once in HA, again every
//! repeat_interval): a firing alert is acted on once per (fingerprint,
//! startsAt). Bounded: entries expire after `ttl`, past `capacity` the
//! oldest go first, and the order queue never holds more than twice the
//! capacity (forgotten entries are dropped).

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
