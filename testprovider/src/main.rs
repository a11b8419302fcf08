//! `terraform-provider-drifttest`: a tiny, test-only terraform provider.
//!
//! The hashicorp/null provider never reads anything back, so terraform never
//! reports `resource_drift` for it. driftless's drift tests need the real thing:
//! a resource whose `Read` returns what is *currently* out there. This provider
//! has one resource, `drifttest_file`, that manages a local file and reads the
//! file back on refresh, so an out-of-band edit of the file is real drift as
//! real terraform reports it.
//!
//! Source address: `registry.terraform.io/driftless/drifttest`, version 0.1.0.
//! See `testprovider/README.md` for how a test installs it.
//!
//! Test hooks, read from the environment terraform passes on to the provider:
//! - `DRIFTTEST_FAIL_ON_CONTENT=<s>`: create/update fail with an error
//!   diagnostic, before touching the file, when `content` equals `<s>`; this
//!   simulates terraform failing mid-apply.
//! - `DRIFTTEST_APPLY_DELAY_MS=<n>`: create/update sleep `n` ms before writing,
//!   so a test can interrupt or time out an apply that is in flight.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Block, Description, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostic, Diagnostics, DynamicDataSource, DynamicResource, Provider, Resource, map, serve};

/// Provider type name; tf-provider prefixes resource names with it (`drifttest_file`).
const PROVIDER_NAME: &str = "drifttest";

/// Env var: create/update fail when `content` equals its value.
const FAIL_ON_CONTENT_ENV: &str = "DRIFTTEST_FAIL_ON_CONTENT";

/// Env var: milliseconds create/update wait before writing.
const APPLY_DELAY_ENV: &str = "DRIFTTEST_APPLY_DELAY_MS";

/// Suffix of the side file that holds `sensitive_content`.
///
/// Keeping the sensitive value in its own file lets a test make *sensitive*
/// drift (edit the side file) separately from plain drift (edit the main file).
const SENSITIVE_SUFFIX: &str = ".sensitive";

/// State (and config) of a `drifttest_file`, as terraform sends and receives it.
///
/// Owned strings keep the code free of borrow lifetimes; the values are tiny.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FileState {
    /// Computed: equal to `path`, so terraform has a stable identifier.
    id: Value<String>,
    /// Where the file lives; a change forces replacement (delete + create).
    path: Value<String>,
    /// What the file holds.
    content: Value<String>,
    /// Optional, sensitive: written to `<path>.sensitive` and read back from it.
    sensitive_content: Value<String>,
}

/// The `drifttest_file` resource.
#[derive(Debug, Default, Clone, Copy)]
struct FileResource;

/// Path of the side file that holds `sensitive_content` for the file at `path`.
fn sensitive_path(path: &str) -> PathBuf {
    PathBuf::from(format!("{path}{SENSITIVE_SUFFIX}"))
}

/// Reads a file; `Ok(None)` when it does not exist (that is not an error here:
/// a missing file is exactly the "deleted out of band" drift tests want).
fn read_optional(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Removes a file, treating "already gone" as success so destroy is idempotent.
fn remove_optional(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Writes `contents` to `path`, creating parent directories first.
fn write_with_parents(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents)
}

/// Adds an error diagnostic.
///
/// Builds the [`Diagnostic`] by hand instead of through tf-provider's
/// `Diagnostics::error` & co: those capture a Rust backtrace whenever
/// `RUST_BACKTRACE` is set (as it often is under `cargo test`) and append it to
/// the detail. Terraform prints that detail on stderr, and terraform 1.0.3's
/// crash detector takes a backtrace line starting with `panic::` for a crash of
/// its own, so an intended failure would look like a terraform crash.
fn add_error(
    diags: &mut Diagnostics,
    summary: impl Into<Cow<'static, str>>,
    detail: impl Into<Cow<'static, str>>,
    attribute: AttributePath,
) {
    diags.add_error(Diagnostic { summary: summary.into(), detail: detail.into(), attribute });
}

/// Adds an error diagnostic for a failed file operation on `path`.
fn io_error(diags: &mut Diagnostics, what: &str, path: &Path, err: &std::io::Error) {
    add_error(diags, format!("drifttest: cannot {what} {}", path.display()), err.to_string(), AttributePath::default());
}

impl FileResource {
    /// Writes the main file and the sensitive side file for `state`, as
    /// create and update both do. Returns `None` (with diagnostics) on failure,
    /// including the `DRIFTTEST_FAIL_ON_CONTENT` hook.
    async fn write(&self, diags: &mut Diagnostics, mut state: FileState) -> Option<FileState> {
        let Value::Value(path) = state.path.clone() else {
            add_error(diags, "drifttest: `path` must be known at apply time", "", AttributePath::new("path"));
            return None;
        };
        let content = match &state.content {
            Value::Value(content) => content.clone(),
            _ => {
                add_error(diags, "drifttest: `content` must be known at apply time", "", AttributePath::new("content"));
                return None;
            }
        };

        if let Some(delay) = std::env::var(APPLY_DELAY_ENV).ok().and_then(|v| v.parse::<u64>().ok()) {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if std::env::var(FAIL_ON_CONTENT_ENV).is_ok_and(|fail_on| fail_on == content) {
            add_error(
                diags,
                "drifttest: simulated apply failure",
                format!("content equals ${FAIL_ON_CONTENT_ENV}, so this apply fails on purpose"),
                AttributePath::new("content"),
            );
            return None;
        }

        let file = PathBuf::from(&path);
        if let Err(err) = write_with_parents(&file, &content) {
            io_error(diags, "write", &file, &err);
            return None;
        }
        let side = sensitive_path(&path);
        let side_result = match &state.sensitive_content {
            Value::Value(secret) => write_with_parents(&side, secret),
            // Null: no side file, so that reading back yields null again.
            _ => remove_optional(&side),
        };
        if let Err(err) = side_result {
            io_error(diags, "write", &side, &err);
            return None;
        }

        state.id = Value::Value(path);
        Some(state)
    }
}

#[async_trait]
impl Resource for FileResource {
    type State<'a> = FileState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        let string = |constraint, sensitive, description: &str| Attribute {
            attr_type: AttributeType::String,
            description: Description::plain(description),
            constraint,
            sensitive,
            deprecated: false,
        };
        Some(Schema {
            version: 0,
            block: Block {
                version: 0,
                description: Description::plain("A local file whose current content is read back on refresh (test-only)."),
                attributes: map! {
                    "id" => string(AttributeConstraint::Computed, false, "Same as path."),
                    "path" => string(AttributeConstraint::Required, false,
                        "Path of the file; changing it replaces the resource."),
                    "content" => string(AttributeConstraint::Required, false, "Content of the file."),
                    "sensitive_content" => string(AttributeConstraint::Optional, true,
                        "Sensitive content, kept in `<path>.sensitive`."),
                },
                ..Default::default()
            },
        })
    }

    /// Refresh: report what is on disk now. A missing main file means the
    /// resource is gone (`None`), so terraform drops it and plans a create.
    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let Value::Value(path) = state.path.clone() else {
            return Some((state, private_state));
        };
        let mut state = state;
        let file = PathBuf::from(&path);
        match read_optional(&file) {
            Ok(Some(content)) => state.content = Value::Value(content),
            Ok(None) => return None,
            Err(err) => {
                // Keep the resource (Some) but fail the refresh loudly.
                io_error(diags, "read", &file, &err);
                return Some((state, private_state));
            }
        }
        let side = sensitive_path(&path);
        match read_optional(&side) {
            Ok(secret) => state.sensitive_content = secret.map_or(Value::Null, Value::Value),
            Err(err) => io_error(diags, "read", &side, &err),
        }
        state.id = Value::Value(path);
        Some((state, private_state))
    }

    async fn plan_create<'a>(
        &self,
        _diags: &mut Diagnostics,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut state = proposed_state;
        // id = path; unknown until the path itself is known.
        state.id = match &state.path {
            Value::Value(path) => Value::Value(path.clone()),
            _ => Value::Unknown,
        };
        Some((state, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        _diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let mut state = proposed_state;
        let mut replace = Vec::new();
        if state.path != prior_state.path {
            replace.push(AttributePath::new("path"));
            state.id = match &state.path {
                Value::Value(path) => Value::Value(path.clone()),
                _ => Value::Unknown,
            };
        }
        Some((state, prior_private_state, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(prior_private_state)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let state = self.write(diags, planned_state).await?;
        Some((state, planned_private_state))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        _prior_state: Self::State<'a>,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let state = self.write(diags, planned_state).await?;
        Some((state, planned_private_state))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        _planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let Value::Value(path) = state.path else {
            return Some(());
        };
        for file in [PathBuf::from(&path), sensitive_path(&path)] {
            if let Err(err) = remove_optional(&file) {
                io_error(diags, "remove", &file, &err);
                return None;
            }
        }
        Some(())
    }
}

/// The `drifttest` provider: no configuration, one resource, no data sources.
#[derive(Debug, Default, Clone)]
struct DriftTestProvider;

#[async_trait]
impl Provider for DriftTestProvider {
    type Config<'a> = ValueEmpty;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 0,
            block: Block {
                version: 0,
                description: Description::plain("Test-only provider for driftless drift tests."),
                ..Default::default()
            },
        })
    }

    fn get_resources(&self, _diags: &mut Diagnostics) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(map! { "file" => FileResource })
    }

    fn get_data_sources(&self, _diags: &mut Diagnostics) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(HashMap::new())
    }
}

/// A single-threaded runtime is plenty: terraform sends one request at a time
/// per resource, and the files are tiny.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    serve(PROVIDER_NAME, DriftTestProvider).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_creates_parent_dirs_and_read_sees_current_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a/b/c.txt");
        write_with_parents(&file, "one").expect("write");
        assert_eq!(read_optional(&file).expect("read").as_deref(), Some("one"));
        std::fs::write(&file, "edited").expect("edit");
        assert_eq!(read_optional(&file).expect("read").as_deref(), Some("edited"));
    }

    #[test]
    fn missing_file_reads_as_none_and_removes_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("gone.txt");
        assert_eq!(read_optional(&file).expect("read"), None);
        remove_optional(&file).expect("remove of a missing file is fine");
        write_with_parents(&file, "x").expect("write");
        remove_optional(&file).expect("remove");
        assert!(!file.exists());
    }

    #[test]
    fn sensitive_side_file_sits_next_to_the_file() {
        assert_eq!(sensitive_path("/x/y.txt"), PathBuf::from("/x/y.txt.sensitive"));
    }

    #[test]
    fn error_diagnostics_carry_no_backtrace() {
        let mut diags = Diagnostics::default();
        add_error(&mut diags, "summary", "detail", AttributePath::default());
        assert_eq!(diags.errors.len(), 1);
        assert_eq!(diags.errors[0].detail, "detail");
    }
}
