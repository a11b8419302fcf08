//! The objects the overview shows, listed once for every caller rather than once per poll.
//!
//! Why: listing is the whole cost of an overview (1,000 objects of a local store are 1,000
//! YAML files to parse, ~150 ms; on a cluster a list of every Terraform and Kustomization
//! from the API server), and every open page polls every 2 s. So one snapshot is shared:
//! while someone is looking, a background task lists again every [`REFRESH`] and requests
//! read the latest snapshot without waiting; after [`IDLE`] without requests it stops. An
//! action invalidates the snapshot, so the page after it lists afresh.
//!
//! Guarantees: a request never sees a snapshot older than [`USABLE`] (it lists itself
//! then, one lister at a time); a refresh that began before an invalidation is discarded,
//! so an action's effect is never hidden by an older list. Object pages and actions read
//! their one object directly, never through the snapshot. Rights are applied per request,
//! after the snapshot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::model::Object;
use super::{App, Host, Problem};
use crate::store::{ObjectStore, StoreError};

/// How often a watched snapshot is listed again.
const REFRESH: Duration = Duration::from_secs(1);
/// How old a snapshot may be and still be shown without listing first.
const USABLE: Duration = Duration::from_secs(5);
/// How long the refresher runs after the last request.
const IDLE: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Latest {
    objects: Option<(Arc<Vec<Object>>, Instant)>,
    /// Bumped by [`Snapshots::invalidate`]; a list started under an older one is dropped.
    generation: u64,
    last_request: Option<Instant>,
}

/// The shared snapshot of one server.
#[derive(Default)]
pub struct Snapshots {
    latest: Mutex<Latest>,
    refreshing: AtomicBool,
    /// One cold list at a time; whoever waited behind it takes its result.
    listing: tokio::sync::Mutex<()>,
}

impl Snapshots {
    fn latest(&self) -> MutexGuard<'_, Latest> {
        // Plain data: a panic while it was held cannot leave it half-written.
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the snapshot: the next request lists afresh (after an action).
    pub fn invalidate(&self) {
        let mut latest = self.latest();
        latest.objects = None;
        latest.generation += 1;
    }

    /// Keeps `objects`, listed under `generation`, unless invalidated since.
    fn keep(&self, objects: Arc<Vec<Object>>, generation: u64) {
        let mut latest = self.latest();
        if latest.generation == generation {
            latest.objects = Some((objects, Instant::now()));
        }
    }

    /// The snapshot if young enough, and the generation a new list would be kept under.
    fn usable(&self, max_age: Duration) -> (Option<Arc<Vec<Object>>>, u64) {
        let latest = self.latest();
        let fresh = latest.objects.as_ref().filter(|(_, at)| at.elapsed() < max_age).map(|(o, _)| o.clone());
        (fresh, latest.generation)
    }
}

/// Every object of the planned kinds, sorted by kind, namespace and name.
async fn list<S: ObjectStore>(store: &S) -> Result<Vec<Object>, StoreError> {
    let mut objects: Vec<Object> = Vec::new();
    for kind in crate::api::Kind::PLANNED {
        crate::with_reconciled_kind!(kind, K => objects.extend(store.list::<K>().await?.into_iter().map(Object::of)), _ => {});
    }
    objects.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
    Ok(objects)
}

/// [`list`] on a blocking thread: a local store reads and parses its files inside its async
/// methods, which would otherwise hold a runtime worker (and the requests queued on it) for
/// the whole list.
async fn list_aside<H: Host>(app: &Arc<App<H>>) -> Result<Vec<Object>, StoreError> {
    let app = app.clone();
    let runtime = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || runtime.block_on(list(app.host.store()))).await {
        Ok(listed) => listed,
        Err(e) => Err(StoreError::Io { path: "the object list".into(), source: std::io::Error::other(e.to_string()) }),
    }
}

/// The objects to show now (before the caller's rights are applied).
pub(crate) async fn objects<H: Host>(app: &Arc<App<H>>) -> Result<Arc<Vec<Object>>, Problem> {
    let snapshots = &app.snapshots;
    snapshots.latest().last_request = Some(Instant::now());
    watch(app);
    if let (Some(objects), _) = snapshots.usable(USABLE) {
        return Ok(objects);
    }
    let _one_lister = snapshots.listing.lock().await;
    let (ready, generation) = snapshots.usable(USABLE);
    if let Some(objects) = ready {
        return Ok(objects);
    }
    let objects = Arc::new(list_aside(app).await.map_err(Problem::store)?);
    snapshots.keep(objects.clone(), generation);
    Ok(objects)
}

/// Starts the refresher unless it runs.
fn watch<H: Host>(app: &Arc<App<H>>) {
    if app.snapshots.refreshing.swap(true, Ordering::AcqRel) {
        return;
    }
    let app = app.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REFRESH).await;
            let snapshots = &app.snapshots;
            let idle = snapshots.latest().last_request.is_none_or(|t| t.elapsed() > IDLE);
            if idle {
                snapshots.refreshing.store(false, Ordering::Release);
                return;
            }
            let generation = snapshots.latest().generation;
            match list_aside(&app).await {
                Ok(objects) => snapshots.keep(Arc::new(objects), generation),
                Err(e) => tracing::warn!("review page: refreshing the object list: {e}"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str) -> Object {
        Object {
            kind: super::super::Kind::Terraform,
            namespace: "default".into(),
            name: name.into(),
            suspended: false,
            annotations: Default::default(),
            status: Default::default(),
        }
    }

    #[test]
    fn a_list_that_began_before_an_invalidation_is_dropped() {
        let s = Snapshots::default();
        let (none, generation) = s.usable(USABLE);
        assert!(none.is_none());
        s.keep(Arc::new(vec![object("a")]), generation);
        let (kept, generation) = s.usable(USABLE);
        assert_eq!(kept.map(|o| o.len()), Some(1));

        s.invalidate();
        assert!(s.usable(USABLE).0.is_none(), "an action forgets the snapshot");
        s.keep(Arc::new(vec![object("old")]), generation);
        assert!(s.usable(USABLE).0.is_none(), "a list from before the action is not kept");
        let (_, now) = s.usable(USABLE);
        s.keep(Arc::new(vec![object("new")]), now);
        assert_eq!(s.usable(USABLE).0.map(|o| o[0].name.clone()).as_deref(), Some("new"));
        assert!(s.usable(Duration::ZERO).0.is_none(), "older than allowed");
    }
}
