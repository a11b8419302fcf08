//! Leader election over a `coordination.k8s.io/v1` Lease, with client-go's semantics.
//!
//! Why our own: kube-runtime has no leader election, and the controller must not run two
//! reconcilers of one object at once (two runners applying one plan, two writers of one
//! status). This is client-go's `leaderelection` package cut down to what the controller
//! needs: one Lease, a holder identity, optimistic concurrency on the Lease's
//! `resourceVersion`, and the same timing defaults (lease duration 15 s, renew deadline
//! 10 s, retry period 2 s).
//!
//! # Guarantees
//! - Every write is a create or a replace carrying the `resourceVersion` that was read, so
//!   of two candidates racing for one Lease exactly one write succeeds; the loser sees a
//!   conflict and keeps waiting.
//! - A candidate takes over a Lease held by another identity only when the Lease has not
//!   changed for its `leaseDurationSeconds`, measured on the candidate's own monotonic
//!   clock from when it first saw the current record (as client-go does: no comparison of
//!   wall clocks between machines). A newly started candidate therefore waits a whole lease
//!   duration before it takes over a Lease whose holder died.
//! - A leader that cannot renew within the renew deadline (counted from the start of its
//!   last successful renewal) reports the loss. The renew deadline is shorter than the lease
//!   duration, so a cut-off leader stops before any candidate can take over.
//! - A leader that sees another holder in the Lease reports the loss at once. (client-go
//!   keeps retrying until the renew deadline; stopping early is safe and shortens the time
//!   two processes believe they lead.)
//! - [`Leadership::release`] clears the holder (client-go's `ReleaseOnCancel`), so a
//!   waiting candidate takes over on its next retry instead of after expiry.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// client-go's `JitterFactor`: the renew deadline must leave room for more than one retry
/// period plus this much jitter.
const JITTER_FACTOR: f64 = 1.2;

/// Why leader election could not start or a lease could not be released.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The timing cannot give a safe election (see [`LeaseTiming::new`]).
    #[error("invalid lease timing: {0}")]
    InvalidTiming(String),
    /// An empty holder means "free" in a Lease, so it cannot be anyone's identity.
    #[error("leader election needs a non-empty identity")]
    EmptyIdentity,
    /// The API refused to clear the holder on release.
    #[error("releasing lease {lease}: {source}")]
    Release {
        /// `namespace/name` of the Lease.
        lease: String,
        /// The API's error.
        #[source]
        source: kube::Error,
    },
    /// The API did not answer within the renew deadline on release.
    #[error("releasing lease {lease}: no answer within {deadline:?}")]
    ReleaseTimeout {
        /// `namespace/name` of the Lease.
        lease: String,
        /// How long the release waited.
        deadline: Duration,
    },
}

/// How long a lease lasts and how often it is renewed or retried.
///
/// Constructed valid: [`LeaseTiming::new`] checks the relations client-go checks, so an
/// elector never runs with a renew deadline that outlives the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
}

impl Default for LeaseTiming {
    /// client-go's defaults: lease 15 s, renew deadline 10 s, retry period 2 s.
    fn default() -> Self {
        Self { lease_duration: Duration::from_secs(15), renew_deadline: Duration::from_secs(10), retry_period: Duration::from_secs(2) }
    }
}

impl LeaseTiming {
    /// Timing for an elector.
    ///
    /// # Errors
    /// [`LeaderError::InvalidTiming`] unless `lease_duration > renew_deadline > 1.2 *
    /// retry_period > 0` (client-go's rules: the leader gives up before its lease can expire
    /// for others, and gets more than one try before it gives up), and unless the lease
    /// duration is a whole number of seconds (a Lease stores seconds).
    pub fn new(lease_duration: Duration, renew_deadline: Duration, retry_period: Duration) -> Result<Self, LeaderError> {
        if retry_period.is_zero() {
            return Err(LeaderError::InvalidTiming("retry period must be positive".into()));
        }
        if lease_duration <= renew_deadline {
            return Err(LeaderError::InvalidTiming(format!(
                "lease duration {lease_duration:?} must be longer than the renew deadline {renew_deadline:?}"
            )));
        }
        if renew_deadline.as_secs_f64() <= JITTER_FACTOR * retry_period.as_secs_f64() {
            return Err(LeaderError::InvalidTiming(format!(
                "renew deadline {renew_deadline:?} must be longer than {JITTER_FACTOR} times the retry period {retry_period:?}"
            )));
        }
        if lease_duration.subsec_nanos() != 0 || i32::try_from(lease_duration.as_secs()).is_err() {
            return Err(LeaderError::InvalidTiming(format!(
                "lease duration {lease_duration:?} must be a whole number of seconds (a Lease stores seconds)"
            )));
        }
        Ok(Self { lease_duration, renew_deadline, retry_period })
    }

    /// How long a lease lasts without renewal, as written into the Lease.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// How long a leader keeps trying to renew before it reports the loss.
    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
    }

    /// How long to wait between two tries (to acquire or to renew).
    pub fn retry_period(&self) -> Duration {
        self.retry_period
    }

    fn lease_duration_seconds(&self) -> i32 {
        // Checked in `new`.
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// What an elector and its leadership share.
#[derive(Debug)]
struct Shared {
    api: Api<Lease>,
    /// `namespace/name`, for logs and errors.
    lease: String,
    name: String,
    identity: String,
    timing: LeaseTiming,
}

/// A candidate for one Lease.
#[derive(Clone, Debug)]
pub struct LeaderElector {
    shared: Arc<Shared>,
}

impl LeaderElector {
    /// A candidate named `identity` (unique per process, e.g. the pod name) for the Lease
    /// `namespace/lease_name`. Nothing is read or written before [`LeaderElector::acquire`].
    pub fn new(client: Client, namespace: &str, lease_name: impl Into<String>, identity: impl Into<String>, timing: LeaseTiming) -> Self {
        let name = lease_name.into();
        let shared = Shared {
            api: Api::namespaced(client, namespace),
            lease: format!("{namespace}/{name}"),
            name,
            identity: identity.into(),
            timing,
        };
        Self { shared: Arc::new(shared) }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.shared.identity
    }

    /// Waits until this candidate holds the Lease: creates it when missing, takes it over
    /// when its holder is empty or it expired, and otherwise retries every retry period
    /// (plus up to 20 % jitter). The returned [`Leadership`] renews it in the background.
    ///
    /// API errors while waiting are logged and retried, not returned (the API server may be
    /// restarting; RBAC may be fixed while we wait). Cancel-safe: dropping the future while
    /// it waits leaves the Lease as it is (a write that won the race then lapses, since
    /// nobody renews it).
    ///
    /// # Errors
    /// [`LeaderError::EmptyIdentity`] when the identity is empty.
    pub async fn acquire(&self) -> Result<Leadership, LeaderError> {
        let shared = &self.shared;
        if shared.identity.is_empty() {
            return Err(LeaderError::EmptyIdentity);
        }
        let mut observed: Option<Observed> = None;
        loop {
            match try_acquire(shared, &mut observed).await {
                Ok(Attempt::Acquired { lease, started }) => {
                    tracing::info!(lease = %shared.lease, identity = %shared.identity, "acquired leadership");
                    return Ok(Leadership::start(Arc::clone(shared), *lease, started));
                }
                Ok(Attempt::HeldBy(holder)) => {
                    tracing::debug!(lease = %shared.lease, %holder, "lease held by another candidate; waiting");
                }
                Ok(Attempt::LostRace) => {
                    tracing::debug!(lease = %shared.lease, "another candidate wrote the lease first; waiting");
                }
                Err(err) => {
                    tracing::warn!(lease = %shared.lease, error = %err, "acquiring the lease failed; retrying");
                }
            }
            tokio::time::sleep(jittered(shared.timing.retry_period)).await;
        }
    }
}

/// The current record of the Lease and when this candidate first saw it.
struct Observed {
    spec: LeaseSpec,
    at: Instant,
}

enum Attempt {
    /// This candidate holds the Lease; `started` is when the winning request was sent (the
    /// renew deadline counts from there).
    Acquired {
        lease: Box<Lease>,
        started: Instant,
    },
    HeldBy(String),
    LostRace,
}

/// One round of client-go's `tryAcquireOrRenew` for a candidate that does not lead yet.
async fn try_acquire(shared: &Shared, observed: &mut Option<Observed>) -> Result<Attempt, kube::Error> {
    let started = Instant::now();
    let Some(current) = shared.api.get_opt(&shared.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(shared.name.clone()), ..ObjectMeta::default() },
            spec: Some(next_spec(None, &shared.identity, &shared.timing, now())),
        };
        return match shared.api.create(&PostParams::default(), &lease).await {
            Ok(lease) => Ok(Attempt::Acquired { lease: Box::new(lease), started }),
            Err(err) if is_status(&err, 409) => Ok(Attempt::LostRace),
            Err(err) => Err(err),
        };
    };
    let spec = current.spec.clone().unwrap_or_default();
    let seen_at = Instant::now();
    let observed_at = match observed {
        Some(seen) if seen.spec == spec => seen.at,
        _ => {
            *observed = Some(Observed { spec: spec.clone(), at: seen_at });
            seen_at
        }
    };
    if let Some(holder) = held_by_other(&spec, &shared.identity, seen_at.saturating_duration_since(observed_at), &shared.timing) {
        return Ok(Attempt::HeldBy(holder.to_owned()));
    }
    let mut lease = current;
    lease.spec = Some(next_spec(Some(&spec), &shared.identity, &shared.timing, now()));
    match shared.api.replace(&shared.name, &PostParams::default(), &lease).await {
        Ok(lease) => Ok(Attempt::Acquired { lease: Box::new(lease), started }),
        // Someone else wrote first (conflict), or deleted the Lease (next round creates it).
        Err(err) if is_status(&err, 409) || is_status(&err, 404) => Ok(Attempt::LostRace),
        Err(err) => Err(err),
    }
}

/// The holder that keeps `identity` from taking the Lease, if any: a non-empty holder other
/// than `identity` whose record is younger than its lease duration (`unchanged_for` is how
/// long this candidate has seen the same record).
fn held_by_other<'a>(spec: &'a LeaseSpec, identity: &str, unchanged_for: Duration, timing: &LeaseTiming) -> Option<&'a str> {
    let holder = spec.holder_identity.as_deref().filter(|holder| !holder.is_empty())?;
    if holder == identity {
        return None;
    }
    let duration =
        spec.lease_duration_seconds.and_then(|seconds| u64::try_from(seconds).ok()).map_or(timing.lease_duration, Duration::from_secs);
    (unchanged_for < duration).then_some(holder)
}

/// The record `identity` writes to take or renew the Lease whose record is `current`:
/// client-go's rules (acquire time and transitions kept on renewal; acquire time set and
/// transitions incremented when the holder changes). Fields this elector does not manage
/// (`strategy`, `preferredHolder`) are kept.
fn next_spec(current: Option<&LeaseSpec>, identity: &str, timing: &LeaseTiming, now: MicroTime) -> LeaseSpec {
    let (acquire_time, lease_transitions) = match current {
        None => (now.clone(), 0),
        Some(current) if current.holder_identity.as_deref() == Some(identity) => {
            (current.acquire_time.clone().unwrap_or_else(|| now.clone()), current.lease_transitions.unwrap_or(0))
        }
        Some(current) => (now.clone(), current.lease_transitions.unwrap_or(0).saturating_add(1)),
    };
    LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(timing.lease_duration_seconds()),
        acquire_time: Some(acquire_time),
        renew_time: Some(now),
        lease_transitions: Some(lease_transitions),
        ..current.cloned().unwrap_or_default()
    }
}

/// The record a leader writes on release: no holder, a one-second duration (what client-go
/// writes, so candidates of any version see it free), transitions kept.
fn released_spec(current: &LeaseSpec, now: MicroTime) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        ..current.clone()
    }
}

/// Holding the Lease. A background task renews it every retry period until
/// [`Leadership::release`], drop, or loss.
///
/// Dropping a `Leadership` stops the renewal without clearing the holder: the Lease then
/// lapses after its duration, as when the process dies. Prefer [`Leadership::release`] on a
/// graceful shutdown.
#[derive(Debug)]
pub struct Leadership {
    shared: Arc<Shared>,
    lost: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Option<Lease>>>,
}

impl Leadership {
    fn start(shared: Arc<Shared>, lease: Lease, renewed_at: Instant) -> Self {
        let (lost_tx, lost) = watch::channel(false);
        let (stop_tx, stop) = oneshot::channel();
        let task = tokio::spawn(renew_loop(Arc::clone(&shared), lease, renewed_at, lost_tx, stop));
        Self { shared, lost, stop: Some(stop_tx), task: Some(task) }
    }

    /// The identity holding the Lease.
    pub fn identity(&self) -> &str {
        &self.shared.identity
    }

    /// Whether leadership is lost (the lease was taken, or could not be renewed in time, or
    /// the renewal stopped).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow() || self.lost.has_changed().is_err()
    }

    /// Completes when leadership is lost. A lost leader must stop reconciling and exit (as
    /// client-go's `OnStoppedLeading` does): another candidate may already lead. The future
    /// is `'static`, so it can be handed to e.g. `Controller::graceful_shutdown_on`. It also
    /// completes once this `Leadership` is released or dropped (nobody renews any more).
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            // An error means the renew task ended, which also means nobody renews.
            let _ = lost.wait_for(|lost| *lost).await;
        }
    }

    /// Stops renewing and clears the holder, so a waiting candidate takes over at once
    /// (client-go's `ReleaseOnCancel`). Call it on graceful shutdown, after reconciling has
    /// stopped. Does nothing when leadership is already lost.
    ///
    /// # Errors
    /// [`LeaderError::Release`] or [`LeaderError::ReleaseTimeout`] when the holder could
    /// not be cleared within the renew deadline; the Lease then lapses after its duration.
    pub async fn release(mut self) -> Result<(), LeaderError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let last = match self.task.take() {
            Some(task) => task.await.ok().flatten(),
            None => None,
        };
        let Some(lease) = last else {
            tracing::info!(lease = %self.shared.lease, "leadership already lost; nothing to release");
            return Ok(());
        };
        let deadline = self.shared.timing.renew_deadline;
        match tokio::time::timeout(deadline, release_lease(&self.shared, lease)).await {
            Ok(Ok(())) => {
                tracing::info!(lease = %self.shared.lease, identity = %self.shared.identity, "released leadership");
                Ok(())
            }
            Ok(Err(source)) => Err(LeaderError::Release { lease: self.shared.lease.clone(), source }),
            Err(_) => Err(LeaderError::ReleaseTimeout { lease: self.shared.lease.clone(), deadline }),
        }
    }

    /// Stops renewing without releasing, as if the process had crashed: the Lease keeps
    /// this holder until it expires. For tests of takeover after expiry; a controller calls
    /// [`Leadership::release`] instead.
    pub fn abandon(self) {
        drop(self);
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

enum Renewal {
    Renewed(Box<Lease>),
    /// The Lease has another holder, or was deleted.
    Taken(String),
    Failed(kube::Error),
}

/// Renews every retry period; returns the last written Lease when stopped while still
/// leading, `None` after reporting a loss.
async fn renew_loop(
    shared: Arc<Shared>,
    mut lease: Lease,
    mut renewed_at: Instant,
    lost: watch::Sender<bool>,
    mut stop: oneshot::Receiver<()>,
) -> Option<Lease> {
    let timing = shared.timing;
    loop {
        tokio::select! {
            _ = &mut stop => return Some(lease),
            () = tokio::time::sleep(timing.retry_period) => {}
        }
        let deadline = renewed_at + timing.renew_deadline;
        let started = Instant::now();
        let renewal = tokio::select! {
            _ = &mut stop => return Some(lease),
            renewal = tokio::time::timeout_at(deadline, renew_once(&shared, &lease)) => renewal,
        };
        match renewal {
            Ok(Renewal::Renewed(renewed)) => {
                lease = *renewed;
                renewed_at = started;
            }
            Ok(Renewal::Taken(holder)) => {
                tracing::warn!(lease = %shared.lease, %holder, "leadership lost: the lease has another holder");
                let _ = lost.send(true);
                return None;
            }
            Ok(Renewal::Failed(err)) if Instant::now() < deadline => {
                tracing::warn!(lease = %shared.lease, error = %err, "renewing the lease failed; retrying");
            }
            Ok(Renewal::Failed(err)) => {
                tracing::error!(lease = %shared.lease, error = %err, "leadership lost: could not renew within the renew deadline");
                let _ = lost.send(true);
                return None;
            }
            Err(_) => {
                tracing::error!(lease = %shared.lease, deadline = ?timing.renew_deadline, "leadership lost: could not renew within the renew deadline");
                let _ = lost.send(true);
                return None;
            }
        }
    }
}

/// One renewal: a replace with the last written `resourceVersion` (client-go's fast path).
/// On a conflict or a missing Lease, reads it to tell "taken" from "changed by someone
/// else but still ours" (then renews on the fresh version).
async fn renew_once(shared: &Shared, lease: &Lease) -> Renewal {
    let mut next = lease.clone();
    next.spec = Some(next_spec(lease.spec.as_ref(), &shared.identity, &shared.timing, now()));
    match shared.api.replace(&shared.name, &PostParams::default(), &next).await {
        Ok(renewed) => return Renewal::Renewed(Box::new(renewed)),
        Err(err) if is_status(&err, 409) || is_status(&err, 404) => {}
        Err(err) => return Renewal::Failed(err),
    }
    let current = match shared.api.get_opt(&shared.name).await {
        Ok(Some(current)) => current,
        Ok(None) => return Renewal::Taken("(lease deleted)".into()),
        Err(err) => return Renewal::Failed(err),
    };
    let holder = current.spec.as_ref().and_then(|spec| spec.holder_identity.clone()).unwrap_or_default();
    if holder != shared.identity {
        return Renewal::Taken(if holder.is_empty() { "(none)".into() } else { holder });
    }
    let mut next = current;
    next.spec = Some(next_spec(next.spec.as_ref(), &shared.identity, &shared.timing, now()));
    match shared.api.replace(&shared.name, &PostParams::default(), &next).await {
        Ok(renewed) => Renewal::Renewed(Box::new(renewed)),
        Err(err) => Renewal::Failed(err),
    }
}

/// Clears the holder if it is still this identity; a Lease that is gone or has another
/// holder needs nothing.
async fn release_lease(shared: &Shared, mut lease: Lease) -> Result<(), kube::Error> {
    loop {
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(shared.identity.as_str()) {
            return Ok(());
        }
        lease.spec = Some(released_spec(&spec, now()));
        match shared.api.replace(&shared.name, &PostParams::default(), &lease).await {
            Ok(_) => return Ok(()),
            Err(err) if is_status(&err, 404) => return Ok(()),
            Err(err) if is_status(&err, 409) => match shared.api.get_opt(&shared.name).await? {
                Some(current) => lease = current,
                None => return Ok(()),
            },
            Err(err) => return Err(err),
        }
    }
}

fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == code)
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// `period` plus up to 20 % random jitter, so candidates started together do not retry in
/// lockstep. (client-go allows up to 120 %; a smaller jitter keeps the takeover after a
/// release close to one retry period, and the conditional write settles races anyway.)
fn jittered(period: Duration) -> Duration {
    // A randomly keyed hasher is the standard library's source of randomness.
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let fraction = (random % 1_000) as f64 / 1_000.0;
    period.mul_f64(1.0 + 0.2 * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> MicroTime {
        MicroTime(jiff::Timestamp::from_second(second).expect("valid timestamp"))
    }

    fn held(holder: Option<&str>, duration: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: duration,
            acquire_time: Some(at(100)),
            renew_time: Some(at(110)),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn default_timing_is_client_gos() {
        let timing = LeaseTiming::default();
        assert_eq!(timing.lease_duration(), Duration::from_secs(15));
        assert_eq!(timing.renew_deadline(), Duration::from_secs(10));
        assert_eq!(timing.retry_period(), Duration::from_secs(2));
        let checked = LeaseTiming::new(Duration::from_secs(15), Duration::from_secs(10), Duration::from_secs(2));
        assert_eq!(checked.ok(), Some(timing));
    }

    #[test]
    fn timing_that_outlives_the_lease_is_refused() {
        let s = Duration::from_secs;
        assert!(LeaseTiming::new(s(10), s(10), s(2)).is_err(), "renew deadline not shorter than the lease");
        assert!(LeaseTiming::new(s(15), s(2), s(2)).is_err(), "renew deadline leaves no retry");
        assert!(LeaseTiming::new(s(15), s(10), Duration::ZERO).is_err(), "zero retry period");
        assert!(LeaseTiming::new(Duration::from_millis(2500), s(1), Duration::from_millis(200)).is_err(), "fractional seconds");
        assert!(LeaseTiming::new(s(2), Duration::from_millis(1500), Duration::from_millis(250)).is_ok());
    }

    #[test]
    fn a_live_lease_of_another_holder_blocks_until_its_duration_passed_unchanged() {
        let timing = LeaseTiming::default();
        let spec = held(Some("a"), Some(15));
        assert_eq!(held_by_other(&spec, "b", Duration::from_secs(14), &timing), Some("a"));
        assert_eq!(held_by_other(&spec, "b", Duration::from_secs(15), &timing), None);
    }

    #[test]
    fn the_lease_records_duration_wins_over_the_candidates_own() {
        let timing = LeaseTiming::default();
        let spec = held(Some("a"), Some(1));
        assert_eq!(held_by_other(&spec, "b", Duration::from_secs(2), &timing), None);
        let spec = held(Some("a"), None);
        assert_eq!(held_by_other(&spec, "b", Duration::from_secs(14), &timing), Some("a"), "missing duration: ours");
    }

    #[test]
    fn an_empty_holder_or_our_own_identity_is_free_at_once() {
        let timing = LeaseTiming::default();
        assert_eq!(held_by_other(&held(None, Some(15)), "b", Duration::ZERO, &timing), None);
        assert_eq!(held_by_other(&held(Some(""), Some(15)), "b", Duration::ZERO, &timing), None);
        assert_eq!(held_by_other(&held(Some("b"), Some(15)), "b", Duration::ZERO, &timing), None);
    }

    #[test]
    fn a_new_lease_starts_with_no_transitions() {
        let spec = next_spec(None, "a", &LeaseTiming::default(), at(200));
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.acquire_time, Some(at(200)));
        assert_eq!(spec.renew_time, Some(at(200)));
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[test]
    fn renewal_keeps_acquire_time_and_transitions() {
        let spec = next_spec(Some(&held(Some("a"), Some(15))), "a", &LeaseTiming::default(), at(200));
        assert_eq!(spec.acquire_time, Some(at(100)));
        assert_eq!(spec.renew_time, Some(at(200)));
        assert_eq!(spec.lease_transitions, Some(3));
    }

    #[test]
    fn takeover_counts_a_transition_and_resets_acquire_time() {
        for previous in [Some("a"), None] {
            let spec = next_spec(Some(&held(previous, Some(1))), "b", &LeaseTiming::default(), at(200));
            assert_eq!(spec.holder_identity.as_deref(), Some("b"));
            assert_eq!(spec.acquire_time, Some(at(200)));
            assert_eq!(spec.lease_transitions, Some(4), "previous holder {previous:?}");
            assert_eq!(spec.lease_duration_seconds, Some(15));
        }
    }

    #[test]
    fn fields_the_elector_does_not_manage_are_kept() {
        let current = LeaseSpec { strategy: Some("OldestEmulationVersion".into()), ..held(Some("a"), Some(15)) };
        let spec = next_spec(Some(&current), "b", &LeaseTiming::default(), at(200));
        assert_eq!(spec.strategy.as_deref(), Some("OldestEmulationVersion"));
    }

    #[test]
    fn release_clears_the_holder_and_keeps_transitions() {
        let spec = released_spec(&held(Some("a"), Some(15)), at(200));
        assert_eq!(spec.holder_identity, None);
        assert_eq!(spec.lease_duration_seconds, Some(1));
        assert_eq!(spec.lease_transitions, Some(3));
    }

    #[test]
    fn jitter_stays_within_a_fifth_of_the_period() {
        let period = Duration::from_secs(2);
        for _ in 0..100 {
            let wait = jittered(period);
            assert!(wait >= period && wait <= period.mul_f64(1.2), "{wait:?}");
        }
    }
}
