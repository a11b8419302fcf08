//! The controller's Prometheus metrics, in OpenMetrics text (prometheus-client).
//!
//! Why methods instead of public metric families: every label value is chosen here, from
//! closed enums, so the label vocabulary lives in one place and a typo cannot create a new
//! series. Only `kind` is free text; callers pass the kind's name (`Terraform`,
//! `GitRepository`, ...), a small fixed set.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `driftless_reconcile_duration_seconds` | histogram | `kind` |
//! | `driftless_reconcile_total` | counter | `kind`, `result` (`success`, `error`) |
//! | `driftless_runs_total` | counter | `kind`, `operation`, `outcome` |
//! | `driftless_queue_depth` | gauge | `kind` |
//! | `driftless_reconciles_in_flight` | gauge | `kind` |
//! | `driftless_drifted_objects` | gauge | `kind` |

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::dispatch::{Operation, Outcome};

/// The content type of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reconcile duration buckets, in seconds: from a no-op reconcile (milliseconds) to one
/// that waits for a terraform run (minutes).
const DURATION_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0];

/// How a reconcile ended, as the `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    Success,
    Error,
}

impl ReconcileResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
        }
    }
}

/// How a runner run ended, as the `outcome` label: the runner's own [`Outcome`], or why a
/// runner ended without reporting one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunOutcome {
    /// Planned, nothing to change.
    NoChanges,
    /// Planned with changes.
    Planned,
    /// The plan was applied.
    Applied,
    /// The runner reported a failure.
    Failed,
    /// The runner was killed for exceeding its memory limit.
    OomKilled,
    /// The runner's pod was evicted.
    Evicted,
    /// The runner outlived its deadline and was stopped.
    DeadlineExceeded,
    /// The runner ended without a result (e.g. its pod vanished).
    Lost,
}

impl RunOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoChanges => "no-changes",
            Self::Planned => "planned",
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::OomKilled => "oom-killed",
            Self::Evicted => "evicted",
            Self::DeadlineExceeded => "deadline-exceeded",
            Self::Lost => "lost",
        }
    }
}

impl From<Outcome> for RunOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::NoChanges => Self::NoChanges,
            Outcome::Planned => Self::Planned,
            Outcome::Applied => Self::Applied,
            Outcome::Failed => Self::Failed,
        }
    }
}

impl RunOutcome {
    /// How a dispatched run ended, in the metric's words.
    pub fn of(outcome: &Result<crate::dispatch::RunResult, crate::dispatch::DispatchError>) -> Self {
        use crate::dispatch::{DispatchError, RunErrorKind};
        match outcome {
            Ok(r) => RunOutcome::from(r.outcome),
            Err(DispatchError::RunnerEnded { kind: RunErrorKind::RunnerOomKilled, .. }) => RunOutcome::OomKilled,
            Err(DispatchError::RunnerEnded { kind: RunErrorKind::RunnerEvicted, .. }) => RunOutcome::Evicted,
            Err(DispatchError::RunnerEnded { kind: RunErrorKind::RunnerDeadline, .. }) => RunOutcome::DeadlineExceeded,
            Err(DispatchError::RunnerEnded { kind: RunErrorKind::RunnerLost, .. }) => RunOutcome::Lost,
            Err(_) => RunOutcome::Failed,
        }
    }
}

/// Counts every run by operation and outcome (`driftless_runs_total`).
impl crate::dispatch::RunObserver for Metrics {
    fn run_finished(&self, spec: &crate::dispatch::RunSpec, outcome: &Result<crate::dispatch::RunResult, crate::dispatch::DispatchError>) {
        Metrics::run_finished(self, &spec.object.kind, spec.operation, RunOutcome::of(outcome));
    }
}

/// The `operation` label of a run (the RunSpec's own spelling).
pub fn operation_label(operation: Operation) -> &'static str {
    match operation {
        Operation::Plan => "plan",
        Operation::Apply => "apply",
        Operation::DriftCheck => "drift-check",
        Operation::DestroyPlan => "destroy-plan",
        Operation::SaveState => "save-state",
        Operation::SpeculativePlan => "speculative-plan",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    kind: String,
    operation: &'static str,
    outcome: &'static str,
}

type HistogramFamily = Family<KindLabels, Histogram, fn() -> Histogram>;

#[derive(Debug)]
struct Inner {
    registry: Registry,
    reconcile_duration: HistogramFamily,
    reconciles: Family<ReconcileLabels, Counter>,
    runs: Family<RunLabels, Counter>,
    queue_depth: Family<KindLabels, Gauge>,
    in_flight: Family<KindLabels, Gauge>,
    drifted: Family<KindLabels, Gauge>,
}

/// The controller's metrics. Cheap to clone; every clone records into the same registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every driftless metric registered. A metric appears in the
    /// encoded text once it has a series (prometheus-client leaves out empty families).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("driftless");
        let reconcile_duration: HistogramFamily = Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let runs = Family::<RunLabels, Counter>::default();
        let queue_depth = Family::<KindLabels, Gauge>::default();
        let in_flight = Family::<KindLabels, Gauge>::default();
        let drifted = Family::<KindLabels, Gauge>::default();
        registry.register_with_unit("reconcile_duration", "How long reconciles took", Unit::Seconds, reconcile_duration.clone());
        // Counters get their `_total` suffix from the encoder.
        registry.register("reconcile", "Reconciles finished, by result", reconciles.clone());
        registry.register("runs", "Runner runs finished, by operation and outcome", runs.clone());
        registry.register("queue_depth", "Objects waiting for a reconcile worker", queue_depth.clone());
        registry.register("reconciles_in_flight", "Reconciles running now", in_flight.clone());
        registry.register("drifted_objects", "Objects whose last drift check found drift", drifted.clone());
        Self { inner: Arc::new(Inner { registry, reconcile_duration, reconciles, runs, queue_depth, in_flight, drifted }) }
    }

    /// Creates `kind`'s series at zero (gauges, reconcile counters, duration histogram), so
    /// they exist from the first scrape and `rate()` sees the first increment. Call once per
    /// kind the controller runs.
    pub fn init_kind(&self, kind: &str) {
        let labels = KindLabels { kind: kind.to_owned() };
        let inner = &self.inner;
        let _ = inner.reconcile_duration.get_or_create(&labels);
        for result in [ReconcileResult::Success, ReconcileResult::Error] {
            let _ = inner.reconciles.get_or_create(&ReconcileLabels { kind: kind.to_owned(), result: result.as_str() });
        }
        for family in [&inner.queue_depth, &inner.in_flight, &inner.drifted] {
            let _ = family.get_or_create(&labels);
        }
    }

    /// Marks a reconcile of `kind` as started. The returned timer counts it in flight until
    /// it is finished or dropped, then records its duration and result.
    pub fn reconcile_started(&self, kind: &str) -> ReconcileTimer {
        let labels = KindLabels { kind: kind.to_owned() };
        self.inner.in_flight.get_or_create(&labels).inc();
        ReconcileTimer { metrics: self.clone(), labels, started: Instant::now(), result: None }
    }

    /// Records a finished runner run.
    pub fn run_finished(&self, kind: &str, operation: Operation, outcome: RunOutcome) {
        let labels = RunLabels { kind: kind.to_owned(), operation: operation_label(operation), outcome: outcome.as_str() };
        self.inner.runs.get_or_create(&labels).inc();
    }

    /// Sets how many objects of `kind` wait for a worker.
    pub fn set_queue_depth(&self, kind: &str, depth: usize) {
        set_gauge(&self.inner.queue_depth, kind, depth);
    }

    /// Sets how many objects of `kind` are drifted.
    pub fn set_drifted(&self, kind: &str, drifted: usize) {
        set_gauge(&self.inner.drifted, kind, drifted);
    }

    /// The metrics in OpenMetrics text, served with [`OPENMETRICS_CONTENT_TYPE`].
    ///
    /// # Errors
    /// Only when formatting into a `String` fails, which it does not; kept to avoid a panic
    /// path in the encoder's signature.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }
}

fn set_gauge(family: &Family<KindLabels, Gauge>, kind: &str, value: usize) {
    let value = i64::try_from(value).unwrap_or(i64::MAX);
    family.get_or_create(&KindLabels { kind: kind.to_owned() }).set(value);
}

/// A reconcile in progress (see [`Metrics::reconcile_started`]).
///
/// # Guarantees
/// Every started reconcile is counted once in `driftless_reconcile_total` and observed
/// once in `driftless_reconcile_duration_seconds`, also when its future is cancelled or
/// panics: a timer dropped without a verdict counts as `error` (the reconcile did not
/// finish its work).
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: Metrics,
    labels: KindLabels,
    started: Instant,
    result: Option<ReconcileResult>,
}

impl ReconcileTimer {
    /// The reconcile succeeded.
    pub fn succeeded(mut self) {
        self.result = Some(ReconcileResult::Success);
    }

    /// The reconcile failed.
    pub fn failed(mut self) {
        self.result = Some(ReconcileResult::Error);
    }

    /// Records `result`'s verdict: `Ok` is a success, `Err` an error.
    pub fn finish<T, E>(self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.succeeded(),
            Err(_) => self.failed(),
        }
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let inner = &self.metrics.inner;
        inner.reconcile_duration.get_or_create(&self.labels).observe(self.started.elapsed().as_secs_f64());
        inner.in_flight.get_or_create(&self.labels).dec();
        let result = self.result.unwrap_or(ReconcileResult::Error);
        inner.reconciles.get_or_create(&ReconcileLabels { kind: self.labels.kind.clone(), result: result.as_str() }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(metrics: &Metrics) -> String {
        metrics.encode().expect("encoding into a String")
    }

    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|line| line.starts_with(prefix)).collect()
    }

    #[test]
    fn every_metric_has_its_type_help_and_unit() {
        let metrics = Metrics::new();
        // The encoder leaves out families without a series.
        assert_eq!(encoded(&metrics), "# EOF\n");
        metrics.reconcile_started("Terraform").succeeded();
        metrics.run_finished("Terraform", Operation::Plan, RunOutcome::Planned);
        metrics.set_queue_depth("Terraform", 0);
        metrics.set_drifted("Terraform", 0);
        let text = encoded(&metrics);
        for (name, kind) in [
            ("driftless_reconcile_duration_seconds", "histogram"),
            ("driftless_reconcile", "counter"),
            ("driftless_runs", "counter"),
            ("driftless_queue_depth", "gauge"),
            ("driftless_reconciles_in_flight", "gauge"),
            ("driftless_drifted_objects", "gauge"),
        ] {
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name} {kind} in:\n{text}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name} help in:\n{text}");
        }
        assert!(text.contains("# UNIT driftless_reconcile_duration_seconds seconds\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn an_initialized_kind_has_zero_series_from_the_first_scrape() {
        let metrics = Metrics::new();
        metrics.init_kind("Terraform");
        let text = encoded(&metrics);
        for series in [
            "driftless_reconcile_total{kind=\"Terraform\",result=\"success\"} 0\n",
            "driftless_reconcile_total{kind=\"Terraform\",result=\"error\"} 0\n",
            "driftless_reconcile_duration_seconds_count{kind=\"Terraform\"} 0\n",
            "driftless_queue_depth{kind=\"Terraform\"} 0\n",
            "driftless_reconciles_in_flight{kind=\"Terraform\"} 0\n",
            "driftless_drifted_objects{kind=\"Terraform\"} 0\n",
        ] {
            assert!(text.contains(series), "{series} in:\n{text}");
        }
    }

    #[test]
    fn a_finished_reconcile_is_counted_timed_and_leaves_flight() {
        let metrics = Metrics::new();
        let timer = metrics.reconcile_started("Terraform");
        assert!(encoded(&metrics).contains("driftless_reconciles_in_flight{kind=\"Terraform\"} 1\n"));
        timer.succeeded();
        metrics.reconcile_started("Terraform").finish(&Err::<(), _>("boom"));
        let text = encoded(&metrics);
        assert!(text.contains("driftless_reconciles_in_flight{kind=\"Terraform\"} 0\n"), "{text}");
        assert!(text.contains("driftless_reconcile_total{kind=\"Terraform\",result=\"success\"} 1\n"), "{text}");
        assert!(text.contains("driftless_reconcile_total{kind=\"Terraform\",result=\"error\"} 1\n"), "{text}");
        assert!(text.contains("driftless_reconcile_duration_seconds_count{kind=\"Terraform\"} 2\n"), "{text}");
        assert!(text.contains("driftless_reconcile_duration_seconds_bucket{le=\"600.0\",kind=\"Terraform\"} 2\n"), "{text}");
        assert!(text.contains("driftless_reconcile_duration_seconds_bucket{le=\"+Inf\",kind=\"Terraform\"} 2\n"), "{text}");
    }

    #[test]
    fn a_reconcile_dropped_without_verdict_counts_as_error() {
        let metrics = Metrics::new();
        drop(metrics.reconcile_started("GitRepository"));
        let text = encoded(&metrics);
        assert_eq!(lines(&text, "driftless_reconcile_total{"), ["driftless_reconcile_total{kind=\"GitRepository\",result=\"error\"} 1"]);
        assert!(text.contains("driftless_reconciles_in_flight{kind=\"GitRepository\"} 0\n"), "{text}");
    }

    #[test]
    fn runs_are_labelled_with_the_runspec_operation_and_outcome() {
        let metrics = Metrics::new();
        metrics.run_finished("Terraform", Operation::DriftCheck, Outcome::Planned.into());
        metrics.run_finished("Terraform", Operation::Apply, RunOutcome::OomKilled);
        metrics.run_finished("Terraform", Operation::Apply, RunOutcome::OomKilled);
        metrics.run_finished("Terraform", Operation::DestroyPlan, Outcome::NoChanges.into());
        metrics.run_finished("Terraform", Operation::Plan, Outcome::Applied.into());
        let text = encoded(&metrics);
        let mut runs = lines(&text, "driftless_runs_total{");
        runs.sort_unstable();
        assert_eq!(
            runs,
            [
                "driftless_runs_total{kind=\"Terraform\",operation=\"apply\",outcome=\"oom-killed\"} 2",
                "driftless_runs_total{kind=\"Terraform\",operation=\"destroy-plan\",outcome=\"no-changes\"} 1",
                "driftless_runs_total{kind=\"Terraform\",operation=\"drift-check\",outcome=\"planned\"} 1",
                "driftless_runs_total{kind=\"Terraform\",operation=\"plan\",outcome=\"applied\"} 1",
            ]
        );
    }

    #[test]
    fn operation_labels_match_the_runspec_spelling() {
        for operation in [
            Operation::Plan,
            Operation::Apply,
            Operation::DriftCheck,
            Operation::DestroyPlan,
            Operation::SaveState,
            Operation::SpeculativePlan,
        ] {
            let json = serde_json::to_string(&operation).expect("serializes");
            assert_eq!(json, format!("\"{}\"", operation_label(operation)));
        }
        for outcome in [Outcome::NoChanges, Outcome::Planned, Outcome::Applied, Outcome::Failed] {
            let json = serde_json::to_string(&outcome).expect("serializes");
            assert_eq!(json, format!("\"{}\"", RunOutcome::from(outcome).as_str()));
        }
    }

    #[test]
    fn gauges_are_set_not_added() {
        let metrics = Metrics::new();
        metrics.set_queue_depth("Terraform", 7);
        metrics.set_queue_depth("Terraform", 3);
        metrics.set_drifted("Terraform", 2);
        metrics.set_drifted("Kustomization", 0);
        let text = encoded(&metrics);
        assert!(text.contains("driftless_queue_depth{kind=\"Terraform\"} 3\n"), "{text}");
        assert!(text.contains("driftless_drifted_objects{kind=\"Terraform\"} 2\n"), "{text}");
        assert!(text.contains("driftless_drifted_objects{kind=\"Kustomization\"} 0\n"), "{text}");
    }

    #[test]
    fn clones_record_into_one_registry_across_threads() {
        let metrics = Metrics::new();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let metrics = metrics.clone();
                std::thread::spawn(move || metrics.reconcile_started("Terraform").succeeded())
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        assert!(encoded(&metrics).contains("driftless_reconcile_total{kind=\"Terraform\",result=\"success\"} 4\n"));
    }
}
