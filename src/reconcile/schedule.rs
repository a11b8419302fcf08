//! The one scheduler: when each object is due, how failures back off, and whom a change
//! wakes. Pure (time is passed in), so the local loop and the controller are thin drivers:
//! the local loop keeps a [`Schedule`]; the controller hands [`delay`]s to kube-runtime's
//! queue and wakes [`dependents`] through it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::{Kind, ObjectRef, Reconciled};

/// The longest wait ever scheduled: a larger interval (the API accepts any number of hours)
/// must not overflow a clock and take the controller down for every tenant.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

/// What one reconcile asks of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requeue {
    /// When to come back; `None`: only when the object changes (it is gone).
    pub after: Option<Duration>,
    /// The object became Ready or has a new artifact: whoever reads or waits for it goes now.
    pub wake_dependents: bool,
    /// The object is failing: `after` is its retry interval, doubled per consecutive failure.
    pub failing: bool,
}

impl Requeue {
    /// The object is gone: nothing to schedule.
    pub const GONE: Requeue = Requeue { after: None, wake_dependents: false, failing: false };
}

/// The wait before retry number `failures` (1 = first): the retry interval doubled per
/// consecutive failure, never more than the larger of the two intervals.
pub fn retry_delay(failures: u32, retry: Duration, interval: Duration) -> Duration {
    let cap = interval.max(retry);
    retry.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(cap)
}

/// The delay after a reconcile that ended with `requeue`, given how many failures in a row
/// (this one included) the object has had: the backoff when failing, else what the
/// reconcile asked; never more than [`MAX_DELAY`].
pub fn delay(requeue: &Requeue, failures: u32, interval: Duration) -> Option<Duration> {
    let after = requeue.after?;
    let after = if requeue.failing { retry_delay(failures.max(1), after, interval) } else { after };
    Some(after.min(MAX_DELAY))
}

/// What the scheduler reads of an object to find whom its changes wake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refs {
    pub object: ObjectRef,
    /// The source whose artifact it reads.
    pub source: Option<ObjectRef>,
    /// What it depends on, and the GitRepositories it includes (whose new artifacts wake
    /// it as a dependency's readiness does).
    pub depends_on: Vec<ObjectRef>,
}

impl Refs {
    pub fn of<K: Reconciled>(object: &K) -> Refs {
        let own = object.namespace_or_default();
        let source = object.source_ref().and_then(|r| {
            let kind = Kind::from_api(&r.kind)?;
            Some(ObjectRef::new(kind, r.namespace.clone().unwrap_or_else(|| own.clone()), r.name.clone()))
        });
        let depends_on: Vec<ObjectRef> = object
            .depends_on()
            .iter()
            .filter_map(|d| {
                // A dependency without a kind is of the depending object's own kind.
                let kind = match d.kind.as_deref() {
                    None => K::KIND,
                    Some(k) => Kind::from_api(k)?,
                };
                Some(ObjectRef::new(kind, d.namespace.clone().unwrap_or_else(|| own.clone()), d.name.clone()))
            })
            .collect();
        let mut depends_on = depends_on;
        depends_on.extend(object.included().into_iter().map(|name| ObjectRef::new(Kind::GitRepository, own.clone(), name)));
        Refs { object: object.reference(), source, depends_on }
    }
}

/// The objects that read `changed` as their source or depend on it, of every kind.
pub fn dependents<'a>(changed: &ObjectRef, all: impl IntoIterator<Item = &'a Refs>) -> Vec<ObjectRef> {
    all.into_iter().filter(|r| r.source.as_ref() == Some(changed) || r.depends_on.contains(changed)).map(|r| r.object.clone()).collect()
}

/// Due times and failure counts of a set of objects.
#[derive(Debug, Default)]
pub struct Schedule {
    due: HashMap<ObjectRef, Instant>,
    failures: HashMap<ObjectRef, u32>,
    seen: HashMap<ObjectRef, String>,
}

impl Schedule {
    /// Notes what `object` looks like now (what a user can change: spec, annotations,
    /// deletion): a new object or a change makes it due at once. The local loop's watch.
    pub fn observe(&mut self, object: &ObjectRef, fingerprint: String, now: Instant) {
        if self.seen.get(object) != Some(&fingerprint) {
            self.due.insert(object.clone(), now);
            self.seen.insert(object.clone(), fingerprint);
        }
    }

    /// Forgets the objects that are gone.
    pub fn retain(&mut self, live: impl Fn(&ObjectRef) -> bool) {
        self.due.retain(|k, _| live(k));
        self.seen.retain(|k, _| live(k));
        self.failures.retain(|k, _| live(k));
    }

    /// A reconcile of `object` began: it is no longer waiting.
    pub fn started(&mut self, object: &ObjectRef) {
        self.due.remove(object);
    }

    /// A reconcile of `object` ended with `requeue`: counts the failure (or clears the
    /// count) and returns the delay until it is due again (`None`: not again).
    pub fn finished(&mut self, object: &ObjectRef, requeue: &Requeue, interval: Duration, now: Instant) -> Option<Duration> {
        let failures = if requeue.failing {
            let n = self.failures.entry(object.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        } else {
            self.failures.remove(object);
            0
        };
        let after = delay(requeue, failures, interval);
        match after.and_then(|a| now.checked_add(a)) {
            Some(at) => {
                self.due.insert(object.clone(), at);
            }
            None => {
                self.due.remove(object);
            }
        }
        after
    }

    /// Makes `object` due now (its source has a new artifact, a dependency became Ready).
    pub fn wake(&mut self, object: &ObjectRef, now: Instant) {
        self.due.insert(object.clone(), now);
    }

    /// The objects due at `now`, sources first (the others read their artifacts), then by
    /// kind, namespace and name.
    pub fn due(&self, now: Instant) -> Vec<ObjectRef> {
        let mut due: Vec<ObjectRef> = self.due.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        due.sort_by(|a, b| (!a.kind.is_source(), a).cmp(&(!b.kind.is_source(), b)));
        due
    }

    /// When the next object is due.
    pub fn next(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// How many objects of `kind` are due but not started.
    pub fn overdue(&self, kind: Kind, now: Instant) -> usize {
        self.due.iter().filter(|(k, at)| k.kind == kind && **at <= now).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: Kind, name: &str) -> ObjectRef {
        ObjectRef::new(kind, "ns", name)
    }

    const FAILING: Requeue = Requeue { after: Some(Duration::from_secs(30)), wake_dependents: false, failing: true };

    #[test]
    fn retries_back_off_exponentially_up_to_the_interval() {
        let (retry, interval) = (Duration::from_secs(30), Duration::from_secs(600));
        let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n, retry, interval).as_secs()).collect();
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(retry_delay(1000, retry, interval), interval, "no overflow after many failures");
        assert_eq!(retry_delay(3, Duration::from_secs(900), Duration::from_secs(60)), Duration::from_secs(900), "retry above interval");
    }

    #[test]
    fn a_failing_object_backs_off_and_a_success_resets_it() {
        let mut s = Schedule::default();
        let now = Instant::now();
        let tf = obj(Kind::Terraform, "a");
        let interval = Duration::from_secs(600);
        let delays: Vec<u64> = (0..3).filter_map(|_| s.finished(&tf, &FAILING, interval, now)).map(|d| d.as_secs()).collect();
        assert_eq!(delays, vec![30, 60, 120]);
        let ok = Requeue { after: Some(interval), wake_dependents: false, failing: false };
        assert_eq!(s.finished(&tf, &ok, interval, now), Some(interval));
        assert_eq!(s.finished(&tf, &FAILING, interval, now), Some(Duration::from_secs(30)), "back to the first retry");
    }

    #[test]
    fn a_huge_interval_is_capped_instead_of_overflowing_the_clock() {
        let mut s = Schedule::default();
        // `interval: 3000000000000000h`, which the CRD pattern accepts.
        let huge = Duration::from_secs(3_000_000_000_000_000 * 3600);
        let requeue = Requeue { after: Some(huge), wake_dependents: false, failing: false };
        let now = Instant::now();
        assert_eq!(s.finished(&obj(Kind::GitRepository, "g"), &requeue, huge, now), Some(MAX_DELAY));
        assert!(s.next().is_some_and(|at| at > now));
        let failing = Requeue { failing: true, ..requeue };
        assert_eq!(delay(&failing, u32::MAX, Duration::MAX), Some(MAX_DELAY));
    }

    #[test]
    fn a_gone_object_is_not_scheduled_again() {
        let mut s = Schedule::default();
        let now = Instant::now();
        let ks = obj(Kind::Kustomization, "k");
        s.wake(&ks, now);
        assert_eq!(s.finished(&ks, &Requeue::GONE, Duration::from_secs(60), now), None);
        assert_eq!(s.next(), None);
    }

    #[test]
    fn sources_are_due_before_the_objects_that_read_them() {
        let mut s = Schedule::default();
        let now = Instant::now();
        for o in [obj(Kind::Terraform, "a"), obj(Kind::Kustomization, "b"), obj(Kind::Bucket, "c"), obj(Kind::GitRepository, "d")] {
            s.observe(&o, "v1".into(), now);
        }
        let kinds: Vec<Kind> = s.due(now).into_iter().map(|o| o.kind).collect();
        assert_eq!(kinds, vec![Kind::GitRepository, Kind::Bucket, Kind::Terraform, Kind::Kustomization]);
        for o in s.due(now) {
            s.started(&o);
        }
        s.observe(&obj(Kind::Terraform, "a"), "v1".into(), now);
        assert!(s.due(now).is_empty(), "unchanged: not due again");
        s.observe(&obj(Kind::Terraform, "a"), "v2".into(), now);
        assert_eq!(s.due(now), vec![obj(Kind::Terraform, "a")], "a user's change: due at once");
    }

    #[test]
    fn dependents_are_woken_across_kinds_by_kind_and_namespace() {
        let git = obj(Kind::GitRepository, "repo");
        let tf = obj(Kind::Terraform, "net");
        let reader = Refs { object: obj(Kind::Kustomization, "apps"), source: Some(git.clone()), depends_on: vec![tf.clone()] };
        let same_name_other_kind =
            Refs { object: obj(Kind::Terraform, "other"), source: None, depends_on: vec![obj(Kind::Kustomization, "net")] };
        let other_namespace =
            Refs { object: obj(Kind::Terraform, "x"), source: Some(ObjectRef::new(Kind::GitRepository, "b", "repo")), depends_on: vec![] };
        let all = [reader.clone(), same_name_other_kind, other_namespace];
        assert_eq!(dependents(&git, &all), vec![reader.object.clone()]);
        assert_eq!(dependents(&tf, &all), vec![reader.object.clone()], "a Terraform named net is not the Kustomization net");
    }

    #[test]
    fn a_dependency_without_a_kind_is_of_the_depending_kind() {
        let t: crate::api::Terraform = serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform",
            "metadata": { "name": "app", "namespace": "team" },
            "spec": { "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "1h",
                      "dependsOn": [ { "name": "net" }, { "kind": "Kustomization", "name": "crds", "namespace": "infra" } ] }
        }))
        .expect("terraform");
        let refs = Refs::of(&t);
        assert_eq!(refs.source, Some(ObjectRef::new(Kind::GitRepository, "team", "repo")));
        assert_eq!(
            refs.depends_on,
            vec![ObjectRef::new(Kind::Terraform, "team", "net"), ObjectRef::new(Kind::Kustomization, "infra", "crds")]
        );
    }

    #[test]
    fn a_new_artifact_of_an_included_repository_wakes_the_includer() {
        let app: crate::api::GitRepository = serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "GitRepository",
            "metadata": { "name": "app", "namespace": "team" },
            "spec": { "url": "https://example.com/app.git", "interval": "1h", "include": [ { "repository": { "name": "lib" } } ] }
        }))
        .expect("gitrepository");
        let refs = Refs::of(&app);
        let lib = ObjectRef::new(Kind::GitRepository, "team", "lib");
        assert_eq!(refs.depends_on, vec![lib.clone()]);
        assert_eq!(dependents(&lib, std::slice::from_ref(&refs)), vec![refs.object.clone()]);
    }
}
