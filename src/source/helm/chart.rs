//! Chart archives: read a chart's `Chart.yaml`, stage a chart directory the way `helm
//! package` lays it out (`<name>/...`, `.helmignore` honoured, local `file://`
//! dependencies packaged into `charts/`), and merge values files. Blocking file work: run
//! it in `spawn_blocking`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use super::HelmError;

/// How deep local `file://` dependencies may nest (a chart depending on itself would loop).
const MAX_DEPENDENCY_DEPTH: usize = 10;
/// The most a Chart.yaml or values file may be.
const SMALL_FILE_LIMIT: u64 = 4 << 20;

/// The parts of `Chart.yaml` driftless reads.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChartMeta {
    pub name: String,
    #[serde(deserialize_with = "text")]
    pub version: String,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Dependency {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
}

fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("version must be text, not {other:?}"))),
    }
}

impl ChartMeta {
    /// Reads a `Chart.yaml`; `at` names it in messages.
    ///
    /// # Errors
    /// [`HelmError::InvalidChart`] when it is not YAML, lacks `name` or `version`, or the
    /// version is not semver (Helm refuses such charts too).
    pub fn parse(text: &[u8], at: &str) -> Result<Self, HelmError> {
        let invalid = |detail: String| HelmError::InvalidChart { chart: at.to_string(), detail };
        let meta: ChartMeta = serde_yaml::from_slice(text).map_err(|e| invalid(format!("Chart.yaml: {e}")))?;
        if meta.name.is_empty() || meta.name.contains(['/', '\\']) || meta.name.starts_with('.') {
            return Err(invalid(format!("Chart.yaml: name {:?} is not a chart name", meta.name)));
        }
        if semver::Version::parse(meta.version.trim_start_matches('v')).is_err() {
            return Err(invalid(format!("Chart.yaml: version {:?} is not semver", meta.version)));
        }
        Ok(meta)
    }
}

/// The `Chart.yaml` of a chart archive (the first `<dir>/Chart.yaml` entry).
///
/// # Errors
/// [`HelmError::InvalidChart`] when it is no gzipped tarball or holds no Chart.yaml.
pub fn archive_meta(archive: &Path, at: &str) -> Result<ChartMeta, HelmError> {
    let invalid = |detail: String| HelmError::InvalidChart { chart: at.to_string(), detail };
    let file = fs::File::open(archive).map_err(|e| invalid(e.to_string()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let entries = tar.entries().map_err(|e| invalid(format!("not a chart archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("not a chart archive: {e}")))?;
        let path = entry.path().map_err(|e| invalid(e.to_string()))?.into_owned();
        let parts: Vec<_> = path.components().collect();
        if parts.len() == 2 && path.file_name().is_some_and(|n| n == "Chart.yaml") {
            let mut text = Vec::new();
            entry.by_ref().take(SMALL_FILE_LIMIT).read_to_end(&mut text).map_err(|e| invalid(e.to_string()))?;
            return ChartMeta::parse(&text, at);
        }
    }
    Err(invalid("not a chart archive: it has no <chart>/Chart.yaml".into()))
}

/// Copies the chart in `chart_dir` (inside the unpacked source `root`) to `dest/<name>/`
/// as `helm package` would pack it: files `.helmignore` leaves out are left out, and a
/// dependency with a `file://` repository that `charts/` does not hold already is staged
/// into `charts/<dependency>/`. Returns the chart's metadata.
///
/// # Errors
/// [`HelmError::InvalidChart`] for a chart without Chart.yaml, a dependency that is neither
/// vendored in `charts/` nor local, a local dependency outside the source, or links that
/// leave the source.
pub fn stage(root: &Path, chart_dir: &Path, dest: &Path, at: &str) -> Result<ChartMeta, HelmError> {
    stage_at_depth(root, chart_dir, dest, at, 0)
}

fn stage_at_depth(root: &Path, chart_dir: &Path, dest: &Path, at: &str, depth: usize) -> Result<ChartMeta, HelmError> {
    let invalid = |detail: String| HelmError::InvalidChart { chart: at.to_string(), detail };
    if depth > MAX_DEPENDENCY_DEPTH {
        return Err(invalid(format!("local dependencies nest deeper than {MAX_DEPENDENCY_DEPTH} levels (a cycle?)")));
    }
    let chart_dir = inside(root, chart_dir).map_err(&invalid)?;
    let chart_yaml = chart_dir.join("Chart.yaml");
    let text = read_small(&chart_yaml).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => invalid("the directory has no Chart.yaml; fix spec.chart".into()),
        _ => invalid(format!("Chart.yaml: {e}")),
    })?;
    let meta = ChartMeta::parse(&text, at)?;
    let target = dest.join(&meta.name);
    let ignore = helmignore(&chart_dir)?;
    copy_tree(root, &chart_dir, &target, &ignore, Path::new("")).map_err(invalid)?;
    for dependency in &meta.dependencies {
        if vendored(&target.join("charts"), &dependency.name) {
            continue;
        }
        match dependency.repository.as_deref().and_then(|r| r.strip_prefix("file://")) {
            Some(local) => {
                let sub = chart_dir.join(local);
                stage_at_depth(root, &sub, &target.join("charts"), at, depth + 1)?;
            }
            None => {
                return Err(HelmError::Dependency {
                    chart: at.to_string(),
                    detail: format!(
                        "dependency {:?} ({}) is not in charts/; vendor it (helm dependency build) and commit charts/",
                        dependency.name,
                        dependency.repository.as_deref().unwrap_or("no repository"),
                    ),
                });
            }
        }
    }
    Ok(meta)
}

/// Whether `charts/` holds the dependency `name`, as a directory or an archive.
fn vendored(charts: &Path, name: &str) -> bool {
    charts.join(name).join("Chart.yaml").is_file()
        || fs::read_dir(charts).into_iter().flatten().flatten().any(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.strip_prefix(&format!("{name}-")).is_some_and(|rest| rest.ends_with(".tgz"))
        })
}

/// `path` made canonical and checked to lie inside `root` (a chart path or a link in a
/// source must not reach outside it).
fn inside(root: &Path, path: &Path) -> Result<PathBuf, String> {
    let root = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
    let real = path.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "the chart directory does not exist in the source; fix spec.chart".to_string(),
        _ => e.to_string(),
    })?;
    if !real.starts_with(&root) {
        return Err("the chart path leads outside the source artifact".into());
    }
    Ok(real)
}

fn helmignore(chart_dir: &Path) -> Result<ignore::gitignore::Gitignore, HelmError> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(chart_dir);
    let file = chart_dir.join(".helmignore");
    if file.is_file()
        && let Some(e) = builder.add(&file)
    {
        return Err(HelmError::InvalidChart { chart: chart_dir.display().to_string(), detail: format!(".helmignore: {e}") });
    }
    builder.build().map_err(|e| HelmError::InvalidChart { chart: chart_dir.display().to_string(), detail: format!(".helmignore: {e}") })
}

fn copy_tree(root: &Path, from: &Path, to: &Path, ignore: &ignore::gitignore::Gitignore, rel: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut entries: Vec<_> = fs::read_dir(from).map_err(|e| e.to_string())?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let rel = rel.join(&name);
        let source = entry.path();
        // Links are followed as helm package follows them, but only within the source.
        let real = inside(root, &source).map_err(|_| format!("{} is a link leading outside the source", rel.display()))?;
        let is_dir = real.is_dir();
        if ignore.matched(&rel, is_dir).is_ignore() {
            continue;
        }
        if is_dir {
            copy_tree(root, &real, &to.join(&name), ignore, &rel)?;
        } else {
            fs::copy(&real, to.join(&name)).map_err(|e| format!("{}: {e}", rel.display()))?;
        }
    }
    Ok(())
}

fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    fs::File::open(path)?.take(SMALL_FILE_LIMIT).read_to_end(&mut text)?;
    Ok(text)
}

/// Merges values documents in order, later ones winning: maps merge key by key, any other
/// value replaces (Helm's rule for `-f a.yaml -f b.yaml`). `files` are (name, text).
///
/// # Errors
/// [`HelmError::InvalidValues`] naming the file that is not a YAML map.
pub fn merge_values(files: &[(String, Vec<u8>)]) -> Result<Value, HelmError> {
    let mut merged = Value::Mapping(Default::default());
    for (name, text) in files {
        let value: Value =
            serde_yaml::from_slice(text).map_err(|e| HelmError::InvalidValues { file: name.clone(), detail: e.to_string() })?;
        match value {
            Value::Null => {}
            Value::Mapping(_) => merge_into(&mut merged, value),
            _ => return Err(HelmError::InvalidValues { file: name.clone(), detail: "it is not a map of values".into() }),
        }
    }
    Ok(merged)
}

fn merge_into(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_mapping() && value.is_mapping() => merge_into(existing, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Reads the values file `file` of a chart or source tree under `root` (it must stay in
/// it); `None` when it does not exist.
///
/// # Errors
/// [`HelmError::InvalidValues`] for a path that leaves the tree or cannot be read.
pub fn read_values_file(root: &Path, file: &str) -> Result<Option<Vec<u8>>, HelmError> {
    let invalid = |detail: String| HelmError::InvalidValues { file: file.to_string(), detail };
    let path = root.join(file.trim_start_matches("./"));
    if !path.exists() {
        return Ok(None);
    }
    let real = inside(root, &path).map_err(|_| invalid("the path leads outside the chart's source".into()))?;
    read_small(&real).map(Some).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let path = dir.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }

    #[test]
    fn values_merge_maps_key_by_key_and_later_files_win() {
        let files = vec![
            ("a.yaml".to_string(), b"image: {repo: a, tag: '1'}\nlist: [1, 2]\nkeep: yes\n".to_vec()),
            ("b.yaml".to_string(), b"image: {tag: '2'}\nlist: [3]\n".to_vec()),
        ];
        let merged = merge_values(&files).unwrap();
        assert_eq!(merged, serde_yaml::from_str::<Value>("image: {repo: a, tag: '2'}\nlist: [3]\nkeep: yes\n").unwrap());
        let err = merge_values(&[("c.yaml".into(), b"- a\n".to_vec())]).unwrap_err().to_string();
        assert!(err.contains("c.yaml") && err.contains("not a map"), "{err}");
        let err = merge_values(&[("d.yaml".into(), b"a: [\n".to_vec())]).unwrap_err().to_string();
        assert!(err.contains("d.yaml"), "{err}");
    }

    #[test]
    fn a_chart_is_staged_under_its_name_with_helmignore_and_local_dependencies() {
        let src = tempfile::tempdir().unwrap();
        write(
            src.path(),
            &[
                (
                    "charts/app/Chart.yaml",
                    "apiVersion: v2\nname: app\nversion: 1.2.3\ndependencies:\n- name: lib\n  version: 0.1.0\n  repository: file://../lib\n",
                ),
                ("charts/app/values.yaml", "a: 1\n"),
                ("charts/app/templates/cm.yaml", "kind: ConfigMap\n"),
                ("charts/app/.helmignore", "*.md\n"),
                ("charts/app/NOTES.md", "x\n"),
                ("charts/lib/Chart.yaml", "apiVersion: v2\nname: lib\nversion: 0.1.0\n"),
            ],
        );
        let dest = tempfile::tempdir().unwrap();
        let meta = stage(src.path(), &src.path().join("charts/app"), dest.path(), "ns/app").unwrap();
        assert_eq!((meta.name.as_str(), meta.version.as_str()), ("app", "1.2.3"));
        assert!(dest.path().join("app/templates/cm.yaml").is_file());
        assert!(!dest.path().join("app/NOTES.md").exists(), ".helmignore applies");
        assert!(dest.path().join("app/charts/lib/Chart.yaml").is_file(), "the local dependency is staged");
    }

    #[test]
    fn charts_that_cannot_be_packaged_say_why() {
        let src = tempfile::tempdir().unwrap();
        write(
            src.path(),
            &[
                (
                    "remote/Chart.yaml",
                    "apiVersion: v2\nname: remote\nversion: 1.0.0\ndependencies:\n- name: redis\n  repository: https://charts.example\n",
                ),
                ("badver/Chart.yaml", "apiVersion: v2\nname: badver\nversion: one\n"),
            ],
        );
        let dest = tempfile::tempdir().unwrap();
        let err = |dir: &str| stage(src.path(), &src.path().join(dir), dest.path(), "ns/c").unwrap_err().to_string();
        let e = err("remote");
        assert!(e.contains("\"redis\"") && e.contains("helm dependency build"), "{e}");
        assert!(err("badver").contains("not semver"));
        assert!(err("missing").contains("fix spec.chart"));
        let e = err("..");
        assert!(e.contains("outside"), "{e}");
    }
}
