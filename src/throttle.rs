//! Budgets of refused attempts per client: the receiver's unauthenticated webhook calls and
//! the review page's logins. A client may fail a few times at once and one more time per
//! period after that; past its budget it is told to wait (429 with `Retry-After`) before
//! any lookup, so guessing a webhook path or a token costs the API server nothing more.
//!
//! An attempt is spent before it is checked and given back when it succeeds
//! ([`Throttle::attempt`], [`Throttle::forgive`]): concurrent attempts of one client cannot
//! overrun the budget, and a client whose calls verify never runs short.
//!
//! Imports nothing else of the crate; pure over the time handed in, so its arithmetic is
//! tested without sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How many refused attempts a client has at once (`burst`), and how often one comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub burst: u32,
    pub every: Duration,
}

impl Budget {
    /// The debt a client may carry: its whole burst.
    fn allowance(&self) -> Duration {
        self.every.saturating_mul(self.burst.max(1))
    }
}

/// Refused attempts per client (a generic cell rate: each client is the instant its budget
/// is whole again). Holds at most `capacity` clients: a client whose budget is whole is the
/// same as one never seen and is dropped first; when every entry is in debt, the one
/// closest to whole goes. So memory stays bounded whatever a flood of addresses sends
/// (such a flood, from more addresses than `capacity`, is not limited per address: an
/// Ingress or a firewall in front is the place to stop it).
#[derive(Debug)]
pub struct Throttle<K> {
    budget: Budget,
    capacity: usize,
    whole_at: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    pub fn new(budget: Budget, capacity: usize) -> Self {
        Self { budget, capacity: capacity.max(1), whole_at: HashMap::new() }
    }

    /// Spends one attempt of `client` at `now`; `Err` holds how long it must wait first (and
    /// nothing is spent). Give the attempt back with [`Throttle::forgive`] if it succeeds.
    pub fn attempt(&mut self, client: &K, now: Instant) -> Result<(), Duration> {
        let whole_at = self.whole_at.get(client).copied().filter(|t| *t > now).unwrap_or(now);
        let debt = whole_at - now + self.budget.every;
        let allowance = self.budget.allowance();
        if debt > allowance {
            return Err(debt - allowance);
        }
        if !self.whole_at.contains_key(client) {
            self.make_room(now);
        }
        self.whole_at.insert(client.clone(), whole_at + self.budget.every);
        Ok(())
    }

    /// Gives back an attempt of `client` that succeeded.
    pub fn forgive(&mut self, client: &K, now: Instant) {
        if let Some(t) = self.whole_at.get_mut(client) {
            match t.checked_sub(self.budget.every).filter(|back| *back > now) {
                Some(back) => *t = back,
                None => {
                    self.whole_at.remove(client);
                }
            }
        }
    }

    /// Clients currently in debt (entries held).
    pub fn len(&self) -> usize {
        self.whole_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.whole_at.is_empty()
    }

    /// Frees one entry when full: clients whose budget is whole, else the one closest to it.
    fn make_room(&mut self, now: Instant) {
        if self.whole_at.len() < self.capacity {
            return;
        }
        self.whole_at.retain(|_, t| *t > now);
        if self.whole_at.len() < self.capacity {
            return;
        }
        if let Some(k) = self.whole_at.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
            self.whole_at.remove(&k);
        }
    }
}

/// The client an address stands for: an IPv4 address (also when written IPv4-mapped), or an
/// IPv6 /64, the smallest block one host is usually given, so a host cannot escape its
/// budget by cycling through the addresses of its own network.
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client of a request, from the peer address the server recorded
/// (`into_make_service_with_connect_info`). Behind a proxy (an Ingress) that is the proxy:
/// its clients then share one budget. A router served without it (a test calling the router
/// directly) puts every caller under the unspecified address.
pub fn peer(extensions: &axum::http::Extensions) -> IpAddr {
    extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |c| client_of(c.0.ip()))
}

/// The client of a request as an extractor ([`peer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(peer(&parts.extensions)))
    }
}

/// A wait as a `Retry-After` value: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Budget = Budget { burst: 3, every: Duration::from_secs(2) };

    #[test]
    fn a_client_fails_its_burst_then_waits_one_period_per_attempt() {
        let mut t = Throttle::new(BUDGET, 16);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.attempt(&"a", start), Ok(()));
        }
        assert_eq!(t.attempt(&"a", start), Err(Duration::from_secs(2)), "the burst is spent");
        assert_eq!(t.attempt(&"a", start + Duration::from_millis(500)), Err(Duration::from_millis(1500)));
        assert_eq!(t.attempt(&"a", start + Duration::from_secs(2)), Ok(()), "one attempt came back");
        assert!(t.attempt(&"a", start + Duration::from_secs(2)).is_err(), "and only one");
        assert_eq!(t.attempt(&"b", start), Ok(()), "clients are apart");
    }

    #[test]
    fn a_refused_wait_does_not_lengthen_the_wait() {
        let mut t = Throttle::new(BUDGET, 16);
        let start = Instant::now();
        for _ in 0..3 {
            t.attempt(&"a", start).unwrap();
        }
        for _ in 0..100 {
            assert!(t.attempt(&"a", start).is_err());
        }
        assert_eq!(t.attempt(&"a", start + Duration::from_secs(2)), Ok(()), "told to wait 2 s, and 2 s it was");
    }

    #[test]
    fn successes_are_forgiven_so_a_verified_client_never_runs_short() {
        let mut t = Throttle::new(BUDGET, 16);
        let now = Instant::now();
        for _ in 0..50 {
            t.attempt(&"hook", now).unwrap();
            t.forgive(&"hook", now);
        }
        assert!(t.is_empty(), "a forgiven attempt leaves nothing behind");
        t.attempt(&"hook", now).unwrap();
        t.attempt(&"hook", now).unwrap();
        t.forgive(&"hook", now);
        assert_eq!(t.len(), 1);
        t.attempt(&"hook", now).unwrap();
        t.attempt(&"hook", now).unwrap();
        assert!(t.attempt(&"hook", now).is_err(), "one attempt still spent and two more use the burst up");
        t.forgive(&"unknown", now);
    }

    #[test]
    fn the_table_stays_bounded_and_drops_whole_budgets_first() {
        let mut t = Throttle::new(BUDGET, 4);
        let start = Instant::now();
        t.attempt(&0, start).unwrap();
        let later = start + Duration::from_secs(3);
        for _ in 0..3 {
            t.attempt(&1, later).unwrap();
        }
        for k in 2..4 {
            t.attempt(&k, later).unwrap();
        }
        assert_eq!(t.len(), 4);
        // Client 0's budget is whole again: it makes room, and nobody in debt is dropped.
        t.attempt(&4, later).unwrap();
        assert_eq!(t.len(), 4);
        for k in 5..100 {
            t.attempt(&k, later).unwrap();
            assert!(t.len() <= 4);
            assert!(t.attempt(&1, later).is_err(), "the deepest debt is evicted last");
        }
    }

    #[test]
    fn clients_are_addresses_and_ipv6_networks() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_of(v4), v4);
        assert_eq!(client_of("::ffff:192.0.2.7".parse().unwrap()), v4, "IPv4-mapped");
        let a = client_of("2001:db8:1:2:aaaa::1".parse().unwrap());
        assert_eq!(a, client_of("2001:db8:1:2:ffff::2".parse().unwrap()), "one /64");
        assert_ne!(a, client_of("2001:db8:1:3::1".parse().unwrap()));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
