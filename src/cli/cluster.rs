//! Reaching a cluster: one place that turns `--kubeconfig` / `--context` (or `KUBECONFIG`,
//! `~/.kube/config`, the in-cluster service account) into a client, and the error type of
//! the commands that talk to a cluster (`install`, `check`, and the object verbs without
//! `--store`).

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

/// What went wrong talking to a cluster. Messages name the object and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Nothing tells us which cluster to use.
    #[error("no kube context: pass --kubeconfig, set KUBECONFIG, or use --store DIR for a local store")]
    NoContext,
    /// The kubeconfig exists but cannot be used (unreadable, no such context, bad CA...).
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    /// The client could not be built from an otherwise valid config (TLS setup).
    #[error("cannot build a client for {url}: {source}")]
    Client {
        url: String,
        #[source]
        source: kube::Error,
    },
    /// A request failed; `what` says which object and why we asked.
    #[error("{what}: {}{hint}", api_message(.source))]
    Api {
        what: String,
        hint: &'static str,
        #[source]
        source: kube::Error,
    },
    /// A runner namespace must exist before install: driftless does not own it.
    #[error("runner namespace {0:?} does not exist: create it first (driftless installs into it but does not own it)")]
    MissingRunnerNamespace(String),
    /// A wait gave up.
    #[error("{0}")]
    Timeout(String),
    /// Rendering an object failed (a bug: the objects are built by this program).
    #[error("cannot render {what}: {reason}")]
    Render { what: String, reason: String },
    /// `driftless check` found problems; each was printed on its own line.
    #[error("{failed} of {total} checks failed")]
    ChecksFailed { failed: usize, total: usize },
}

impl ClusterError {
    /// Wraps a failed request; a 403 gets a hint, since missing rights are the usual cause.
    pub fn api(what: impl Into<String>, source: kube::Error) -> Self {
        let forbidden = matches!(&source, kube::Error::Api(status) if status.code == 403);
        let hint = if forbidden { " (run `driftless check --pre` to see which rights are missing)" } else { "" };
        Self::Api { what: what.into(), hint, source }
    }
}

/// One line for a failed request: the API server's own message when there is one (it
/// already names the resource and the user; kube's `Display` adds the whole Status), else
/// the error with its causes ("connection refused" is in a source, not in the top error).
pub fn api_message(error: &kube::Error) -> String {
    if let kube::Error::Api(status) = error {
        return status.message.clone();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The client config for `--kubeconfig` / `--context`. Order, as kubectl: the explicit
/// file, else `KUBECONFIG`, else `~/.kube/config`, else the in-cluster service account
/// (only without `--context`, which names a kubeconfig context).
///
/// # Errors
/// [`ClusterError::NoContext`] when none of those exists; [`ClusterError::Kubeconfig`] when
/// one exists but cannot be used (its error is more useful than "no context").
pub async fn config(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Config, ClusterError> {
    let options = KubeConfigOptions { context: context.map(str::to_owned), ..KubeConfigOptions::default() };
    if let Some(path) = kubeconfig {
        let shown = || path.display().to_string();
        let file = Kubeconfig::read_from(path).map_err(|e| {
            // kube's own message repeats the path.
            let reason = match e {
                KubeconfigError::ReadConfig(io, _) => io.to_string(),
                other => other.to_string(),
            };
            ClusterError::Kubeconfig { path: shown(), reason }
        })?;
        return Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(|e| ClusterError::Kubeconfig { path: shown(), reason: e.to_string() });
    }
    if let Some(shown) = default_kubeconfig() {
        return Config::from_kubeconfig(&options).await.map_err(|e| ClusterError::Kubeconfig { path: shown, reason: e.to_string() });
    }
    if context.is_none()
        && let Ok(config) = Config::incluster()
    {
        return Ok(config);
    }
    Err(ClusterError::NoContext)
}

/// A client for `--kubeconfig` / `--context`; see [`config`] for the lookup order.
///
/// # Errors
/// As [`config`], and when the client cannot be built.
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> super::Result<Client> {
    Ok(connect(config(kubeconfig, context).await?)?)
}

/// A client from a config (no request is made yet).
///
/// # Errors
/// When the TLS setup fails (e.g. an unusable client certificate).
pub fn connect(config: Config) -> Result<Client, ClusterError> {
    let url = config.cluster_url.to_string();
    Client::try_from(config).map_err(|source| ClusterError::Client { url, source })
}

/// Where kube will read a kubeconfig from when none is passed (`KUBECONFIG`, else
/// `~/.kube/config`), if it exists; for error messages and the "no context" decision.
fn default_kubeconfig() -> Option<String> {
    if let Some(paths) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return Some(paths.to_string_lossy().into_owned());
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
    let path = PathBuf::from(home).join(".kube").join("config");
    path.is_file().then(|| path.display().to_string())
}
