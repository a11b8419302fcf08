//! Finding the control-plane binaries built by `scripts/build-control-plane.sh`, and the
//! CI rule for tests whose tools are missing: fail in CI, skip (with a reason) elsewhere.

use std::path::{Path, PathBuf};

/// Environment variable naming the project's tools directory (default `<repo>/.tools`, as
/// for `scripts/setup-tools.sh`); the control plane is in its `k8s/` subdirectory.
pub const TOOLS_ENV: &str = "DRIFTLESS_TOOLS";

/// Errors finding tools.
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    /// A control-plane binary is not in the tools directory.
    #[error("{name} not found in {dir} (run scripts/build-control-plane.sh; it builds into ${TOOLS_ENV}/k8s, default <repo>/.tools/k8s)")]
    MissingBinary {
        /// The binary's name.
        name: &'static str,
        /// The directory searched.
        dir: PathBuf,
    },
    /// kubectl is not on PATH.
    #[error("kubectl not found on PATH")]
    MissingKubectl,
}

/// Paths of the three control-plane binaries.
#[derive(Debug, Clone)]
pub struct ControlPlaneBinaries {
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub kube_controller_manager: PathBuf,
}

/// The repository root: testkit is always built from its place in the workspace.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// The control-plane directory: `$DRIFTLESS_TOOLS/k8s` (relative to the repository root
/// unless absolute), else `<repo>/.tools/k8s`.
pub fn tools_dir() -> PathBuf {
    let root = match std::env::var_os(TOOLS_ENV) {
        // A relative path is taken from the repository root, as the build script does.
        Some(dir) if !dir.is_empty() => repo_root().join(dir),
        _ => repo_root().join(".tools"),
    };
    root.join("k8s")
}

impl ControlPlaneBinaries {
    /// Looks the binaries up in [`tools_dir`].
    pub fn find() -> Result<Self, ToolsError> {
        Self::find_in(&tools_dir())
    }

    /// Looks the binaries up in `dir`.
    pub fn find_in(dir: &Path) -> Result<Self, ToolsError> {
        let get = |name: &'static str| {
            let path = dir.join(name);
            if path.is_file() { Ok(path) } else { Err(ToolsError::MissingBinary { name, dir: dir.to_path_buf() }) }
        };
        Ok(Self { etcd: get("etcd")?, kube_apiserver: get("kube-apiserver")?, kube_controller_manager: get("kube-controller-manager")? })
    }
}

/// `kubectl` from PATH.
pub fn kubectl() -> Result<PathBuf, ToolsError> {
    which::which("kubectl").map_err(|_| ToolsError::MissingKubectl)
}

/// True when running in CI (`CI=true`), where missing tools must fail tests.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Decides what a test does when a tool it needs is missing: in CI it panics (the test
/// fails, never silently passes); on a developer machine it prints why and returns, so the
/// caller can skip.
///
/// # Panics
/// In CI, always.
pub fn skip_or_fail(reason: &dyn std::fmt::Display) {
    if in_ci() {
        panic!("CI=true and a required tool is missing: {reason}");
    }
    eprintln!("SKIPPED (not in CI): {reason}");
}
