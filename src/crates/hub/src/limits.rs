//! What one hub instance keeps in memory: the per-client rate limiter and the look-up cache
//! of stored facts. Neither is needed by another instance (see the crate documentation).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crowdwall_base::canonical_ip;

use crate::store;

/// Token bucket per client (address, or /64 for IPv6), in this instance's memory.
pub(crate) struct Limiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Limiter {
    pub(crate) fn new(rate: u32, burst: u32) -> Limiter {
        Limiter {
            rate: rate as f64,
            burst: burst.max(rate).max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn allow(&self, ip: IpAddr) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let key = match canonical_ip(ip) {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        };
        let t = Instant::now();
        let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            // bounded memory: forget clients whose bucket has refilled
            let full = Duration::from_secs_f64(self.burst / self.rate);
            m.retain(|_, (_, at)| t.duration_since(*at) < full);
        }
        let e = m.entry(key).or_insert((self.burst, t));
        e.0 = (e.0 + t.duration_since(e.1).as_secs_f64() * self.rate).min(self.burst);
        e.1 = t;
        if e.0 >= 1.0 {
            e.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the store said of recently looked-up addresses (including "never reported"), for
/// `lookup_cache`. Reputation look-ups repeat the same addresses (a bouncer asking about the
/// attacker that keeps knocking, a page reloaded), and a store round trip costs far more than
/// the answer. Only the stored facts are kept: the score, which decays, and whether a listing
/// has run out are computed at every request. Sharded so that look-ups on different worker
/// threads rarely meet on a lock; bounded, and a full shard forgets its stale entries first
/// and everything if that is not enough.
pub(crate) struct LookupCache {
    ttl: Duration,
    per_shard: usize,
    pub(crate) shards: Vec<Mutex<Shard>>,
}

/// Address -> (when the store answered, what it said).
pub(crate) type Shard = HashMap<IpAddr, (Instant, Option<store::AddressInfo>)>;

pub(crate) const CACHE_SHARDS: usize = 16;

impl LookupCache {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> LookupCache {
        LookupCache {
            ttl,
            per_shard: (capacity / CACHE_SHARDS).max(1),
            shards: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    pub(crate) fn shard(&self, ip: IpAddr) -> &Mutex<Shard> {
        let h = match ip {
            IpAddr::V4(a) => u32::from(a) as u64,
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64)
            }
        };
        // the low bits of an address vary the most between neighbours
        &self.shards[(h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % CACHE_SHARDS]
    }

    /// `Some(answer)` while a fresh one is kept.
    pub(crate) fn get(&self, ip: IpAddr) -> Option<Option<store::AddressInfo>> {
        if self.ttl.is_zero() {
            return None;
        }
        let m = self.shard(ip).lock().unwrap_or_else(|p| p.into_inner());
        match m.get(&ip) {
            Some((at, info)) if at.elapsed() < self.ttl => Some(info.clone()),
            _ => None,
        }
    }

    pub(crate) fn put(&self, ip: IpAddr, info: Option<store::AddressInfo>) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut m = self.shard(ip).lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= self.per_shard && !m.contains_key(&ip) {
            let ttl = self.ttl;
            m.retain(|_, (at, _)| now.duration_since(*at) < ttl);
            if m.len() >= self.per_shard {
                m.clear();
            }
        }
        m.insert(ip, (now, info));
    }

    pub(crate) fn forget(&self, ips: impl Iterator<Item = IpAddr>) {
        if self.ttl.is_zero() {
            return;
        }
        for ip in ips {
            self.shard(ip)
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&ip);
        }
    }
}
