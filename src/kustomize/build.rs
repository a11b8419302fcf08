//! `kustomize build`, for the fields driftless supports (docs/KUSTOMIZE.md).
//!
//! A kustomization is built in kustomize v5.5's order: its resources (files, and nested
//! kustomizations built the same way), then its generators, then its components, then its
//! transformers (patchesStrategicMerge, patches, namespace, prefix and suffix, labels,
//! annotations, patchesJson6902, replicas, images, replacements). A component is built the
//! same way, but over the objects of the kustomization that lists it instead of its own: its
//! resources join them, its generators may merge into theirs, and its transformers see them
//! all. At the top only: generated names get their hash, name references follow renamed
//! objects, `config.kubernetes.io/local-config` objects are dropped, annotations are written
//! back as strings, and the objects are sorted as `kubectl kustomize` sorts them (kind order
//! first, unless `sortOptions` says `fifo`).
//!
//! A directory without a kustomization file is built as if it had one listing every
//! `*.yaml`, `*.yml` and `*.json` file below it, in sorted path order, and every
//! subdirectory that holds a kustomization (not descending into it), as Flux does.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::fieldspec::{self, FieldSpec};
use super::kustomization::{self, Kustomization, SortOptions};
use super::loader::{Dir, ReadFilter};
use super::resource::{self, Behavior, Resource};
use super::{BuildError, generator, nameref, patch, replacement, transform, yaml};

/// Builds the kustomization (or plain directory) at `dir`. Files may come from anywhere on
/// this machine, as with `kustomize build --load-restrictor LoadRestrictionsNone` (what
/// Flux uses); to confine a build to a source artifact, use [`build_in`].
///
/// # Errors
/// See [`BuildError`]: every error names the file and, where it applies, the field.
pub fn build(dir: &Path) -> Result<Vec<Value>, BuildError> {
    build_in(Path::new("/"), dir)
}

/// Builds `dir`, refusing any file outside `root` (the unpacked artifact).
///
/// # Errors
/// See [`BuildError`].
pub fn build_in(root: &Path, dir: &Path) -> Result<Vec<Value>, BuildError> {
    build_in_with_components(root, dir, &[])
}

/// Builds `dir` inside `root` as [`build_in`], with `components` (paths relative to `dir`)
/// appended to the `components` of its kustomization: what Flux's kustomize-controller does
/// for a Kustomization's `spec.components`, in the kustomization it writes for the path (or
/// generates, for a directory without one).
///
/// # Errors
/// See [`BuildError`].
pub fn build_in_with_components(root: &Path, dir: &Path, components: &[String]) -> Result<Vec<Value>, BuildError> {
    build_filtered(root, dir, components, None)
}

/// Builds as [`build_in_with_components`], with every file read passed through `filter`
/// first (a Kustomization's SOPS decryption).
///
/// # Errors
/// See [`BuildError`]; a filter's error is the error of the file it refused.
pub fn build_filtered(
    root: &Path,
    dir: &Path,
    components: &[String],
    filter: Option<std::sync::Arc<dyn ReadFilter>>,
) -> Result<Vec<Value>, BuildError> {
    let mut top = Dir::new(root, dir).map_err(|m| BuildError::file(dir, m))?;
    top.filter = filter;
    let mut stack = Vec::new();
    let (mut resources, sort) = accumulate(&top, &mut stack, Some(components))?;
    add_hashes(&mut resources);
    let file = top.show("kustomization.yaml");
    nameref::fix(&mut resources).map_err(|m| BuildError::file(&file, format!("name reference: {m}")))?;
    resources.retain(|r| r.annotation("config.kubernetes.io/local-config").is_none_or(|v| v == "false"));
    for r in &mut resources {
        r.annotations_to_strings();
    }
    sort_resources(&mut resources, sort.as_ref()).map_err(|m| BuildError::field(&file, "sortOptions", m))?;
    Ok(resources.into_iter().map(|r| r.object).collect())
}

/// Generated ConfigMaps and Secrets get their content hash, over their final content.
fn add_hashes(resources: &mut [Resource]) {
    for r in resources.iter_mut().filter(|r| r.needs_hash) {
        let hash = generator::content_hash(&r.object);
        r.store_previous_id();
        let name = format!("{}-{hash}", r.name());
        r.set_name(&name);
    }
}

fn sort_resources(resources: &mut [Resource], options: Option<&SortOptions>) -> Result<(), String> {
    let defaults = || {
        (
            resource::DEFAULT_ORDER_FIRST.iter().map(|s| s.to_string()).collect(),
            resource::DEFAULT_ORDER_LAST.iter().map(|s| s.to_string()).collect(),
        )
    };
    let (first, last): (Vec<String>, Vec<String>) = match options {
        None => defaults(),
        Some(o) => match o.order.as_str() {
            "fifo" if o.legacy_sort_options.is_some() => return Err("legacySortOptions is set but the order is fifo, not legacy".into()),
            "fifo" => return Ok(()),
            "legacy" => o.legacy_sort_options.as_ref().map(|l| (l.order_first.clone(), l.order_last.clone())).unwrap_or_else(defaults),
            other => return Err(format!("order {other:?} must be legacy or fifo")),
        },
    };
    resources.sort_by(|a, b| resource::legacy_order(&a.cur_id(), &b.cur_id(), &first, &last));
    Ok(())
}

/// How deep kustomizations may include one another: deeper is refused with an error, never
/// a stack that overflows and aborts the controller for every tenant.
pub const MAX_DEPTH: usize = 64;

/// The objects of one kustomization, transformed by it; and its sortOptions. `top` holds
/// the components the caller adds to the top kustomization (`None` below the top).
fn accumulate(dir: &Dir, stack: &mut Vec<PathBuf>, top: Option<&[String]>) -> Result<(Vec<Resource>, Option<SortOptions>), BuildError> {
    check_nesting(dir, stack)?;
    let (mut k, file) = match load_kustomization(dir)? {
        Some(found) => found,
        None if top.is_some() => (plain_directory(dir)?, dir.show("")),
        None => {
            return Err(BuildError::file(
                &dir.shown,
                format!("a directory in resources needs a kustomization file ({})", kustomization::FILE_NAMES.join(", ")),
            ));
        }
    };
    if top.is_none() && k.is_component() {
        return Err(BuildError::file(&file, "is a Component (kind: Component); list its directory under `components`, not `resources`"));
    }
    k.components.extend(top.unwrap_or_default().iter().cloned());
    let mut resources: Vec<Resource> = Vec::new();
    run(&mut resources, &k, dir, &file, stack)?;
    Ok((resources, k.sort_options))
}

/// Refuses a kustomization (or component) that includes itself, or nests too deep.
fn check_nesting(dir: &Dir, stack: &[PathBuf]) -> Result<(), BuildError> {
    if stack.contains(&dir.path) {
        return Err(BuildError::file(&dir.shown, "kustomizations include each other in a cycle"));
    }
    if stack.len() >= MAX_DEPTH {
        return Err(BuildError::file(&dir.shown, format!("kustomizations nest deeper than {MAX_DEPTH} levels; flatten the layout")));
    }
    Ok(())
}

/// The kustomization file of `dir`, read and checked, with its path as the user wrote it.
fn load_kustomization(dir: &Dir) -> Result<Option<(Kustomization, PathBuf)>, BuildError> {
    let Some(path) = kustomization::find(&dir.path)? else { return Ok(None) };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let shown = dir.show(&name);
    let k = kustomization::load(&path).map_err(|e| reshow(e, &path, &shown))?;
    Ok(Some((k, shown)))
}

/// Runs one kustomization (or component) over `resources`: adds its resources, runs its
/// generators, its components, then its transformers, in kustomize v5.5's order (generators
/// before components, so a component's generator may merge into the kustomization's).
fn run(resources: &mut Vec<Resource>, k: &Kustomization, dir: &Dir, file: &Path, stack: &mut Vec<PathBuf>) -> Result<(), BuildError> {
    stack.push(dir.path.clone());
    for entry in &k.resources {
        let path = dir.resolve(entry).map_err(|m| BuildError::field(file, "resources", m))?;
        let loaded = if path.is_dir() {
            let child = dir.child(entry).map_err(|m| BuildError::field(file, "resources", m))?;
            accumulate(&child, stack, None)?.0
        } else {
            load_file(dir, entry)?
        };
        for r in loaded {
            append(resources, r, file)?;
        }
    }
    generate(resources, k, dir, file)?;
    for entry in &k.components {
        component(resources, entry, dir, file, stack)?;
    }
    stack.pop();
    transform(resources, k, dir, file)
}

/// Applies the component at `entry` (a directory relative to `dir`) to `resources`.
fn component(resources: &mut Vec<Resource>, entry: &str, dir: &Dir, file: &Path, stack: &mut Vec<PathBuf>) -> Result<(), BuildError> {
    let err = |m: String| BuildError::field(file, "components", m);
    let path = dir.resolve(entry).map_err(err)?;
    if !path.is_dir() {
        return Err(err(format!("{entry:?} is not a directory; a component is a directory with a kustomization.yaml of kind: Component")));
    }
    let child = dir.child(entry).map_err(err)?;
    check_nesting(&child, stack)?;
    let Some((k, child_file)) = load_kustomization(&child)? else {
        return Err(err(format!(
            "{entry:?} has no kustomization file ({}); a component needs one with kind: Component",
            kustomization::FILE_NAMES.join(", ")
        )));
    };
    if !k.is_component() {
        return Err(BuildError::file(
            &child_file,
            format!("is listed in `components` of {} but is a {}; a component must have kind: Component", file.display(), k.kind),
        ));
    }
    run(resources, &k, &child, &child_file, stack)
}

/// Errors carry the path as the user wrote it.
fn reshow(e: BuildError, path: &Path, shown: &Path) -> BuildError {
    let fix = |f: PathBuf| if f == path { shown.to_path_buf() } else { f };
    match e {
        BuildError::Yaml { file, line, column, message } => BuildError::Yaml { file: fix(file), line, column, message },
        BuildError::UnsupportedField { file, field } => BuildError::UnsupportedField { file: fix(file), field },
        BuildError::UnknownField { file, field } => BuildError::UnknownField { file: fix(file), field },
        BuildError::Field { file, field, message } => BuildError::Field { file: fix(file), field, message },
        BuildError::File { file, message } => BuildError::File { file: fix(file), message },
        BuildError::Io { path: p, source } => BuildError::Io { path: fix(p), source },
    }
}

fn append(resources: &mut Vec<Resource>, r: Resource, file: &Path) -> Result<(), BuildError> {
    let id = r.cur_id();
    if let Some(other) = resources.iter().find(|o| o.cur_id().equals(&id)) {
        return Err(BuildError::field(
            file,
            "resources",
            format!(
                "{} is defined twice (in {} and in {}); an object may appear once",
                id.describe(),
                other.origin.display(),
                r.origin.display()
            ),
        ));
    }
    resources.push(r);
    Ok(())
}

/// The objects of one manifest file: every document, `*List` kinds unpacked (their items
/// after the file's other documents, as kustomize orders them).
fn load_file(dir: &Dir, entry: &str) -> Result<Vec<Resource>, BuildError> {
    let shown = dir.show(entry);
    let text = dir.read_text(entry).map_err(|m| BuildError::file(&shown, m))?;
    let mut queue: std::collections::VecDeque<Value> = yaml::parse_documents(&text, &shown)?.into();
    let mut out = Vec::new();
    let mut n = 0usize;
    while let Some(doc) = queue.pop_front() {
        n += 1;
        let Some(map) = doc.as_object() else {
            return Err(BuildError::file(
                &shown,
                format!("document {n} is not a Kubernetes object (a map with apiVersion, kind and metadata)"),
            ));
        };
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind.is_empty() {
            return Err(BuildError::file(&shown, format!("document {n} has no kind")));
        }
        if kind.ends_with("List") {
            match map.get("items") {
                Some(Value::Array(items)) => {
                    queue.extend(items.iter().cloned());
                    continue;
                }
                Some(Value::Null) => continue,
                Some(_) => return Err(BuildError::file(&shown, format!("document {n}: items of a {kind} must be a list"))),
                None => {}
            }
        }
        if resource::str_at(&doc, &["metadata", "name"]).is_empty() && !kind.ends_with("List") {
            return Err(BuildError::file(&shown, format!("document {n} ({kind}) has no metadata.name")));
        }
        out.push(Resource::new(doc, shown.clone()));
    }
    Ok(out)
}

/// The kustomization Flux would generate for a directory without one.
fn plain_directory(dir: &Dir) -> Result<Kustomization, BuildError> {
    fn scan(path: &Path, rel: &Path, out: &mut Vec<String>) -> Result<(), BuildError> {
        let mut entries: Vec<_> =
            std::fs::read_dir(path).map_err(BuildError::io(path))?.collect::<Result<_, _>>().map_err(BuildError::io(path))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let r = rel.join(e.file_name());
            let meta = std::fs::symlink_metadata(&p).map_err(BuildError::io(&p))?;
            if meta.is_dir() {
                if kustomization::find(&p)?.is_some() {
                    out.push(r.to_string_lossy().into_owned());
                } else {
                    scan(&p, &r, out)?;
                }
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml" | "json")) {
                out.push(r.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }
    let mut resources = Vec::new();
    scan(&dir.path, Path::new(""), &mut resources)?;
    Ok(Kustomization { resources, ..Default::default() })
}

fn generate(resources: &mut Vec<Resource>, k: &Kustomization, dir: &Dir, file: &Path) -> Result<(), BuildError> {
    let entries = k
        .config_map_generator
        .iter()
        .map(|g| (generator::Kind::ConfigMap, g, "configMapGenerator"))
        .chain(k.secret_generator.iter().map(|g| (generator::Kind::Secret, g, "secretGenerator")));
    for (kind, args, field) in entries {
        let new = generator::generate(kind, args, k.generator_options.as_ref(), dir, file)?;
        absorb(resources, new).map_err(|m| BuildError::field(file, field, m))?;
    }
    Ok(())
}

/// Adds a generated object, or merges it into (or lets it replace) the object it names.
fn absorb(resources: &mut Vec<Resource>, mut new: Resource) -> Result<(), String> {
    let id = new.cur_id();
    let matching: Vec<usize> = resources.iter().enumerate().filter(|(_, r)| r.all_ids().any(|i| i.equals(&id))).map(|(i, _)| i).collect();
    match (matching.as_slice(), new.behavior) {
        ([], Behavior::Create) => {
            resources.push(new);
            Ok(())
        }
        ([], _) => Err(format!("{}: there is no such object to merge into or replace; use behavior: create", id.describe())),
        ([i], Behavior::Create) => {
            Err(format!("{} already exists (from {}); use behavior: merge or replace", id.describe(), resources[*i].origin.display()))
        }
        ([i], behavior) => {
            let old = &resources[*i];
            for field in ["labels", "annotations"] {
                let mut merged = old.string_map(field);
                merged.extend(new.string_map(field));
                if !merged.is_empty() {
                    new.object["metadata"][field] = Value::Object(merged);
                }
            }
            if behavior == Behavior::Merge {
                for field in ["data", "binaryData"] {
                    let mut merged = old.object.get(field).and_then(Value::as_object).cloned().unwrap_or_default();
                    if let Some(m) = new.object.get(field).and_then(Value::as_object) {
                        merged.extend(m.clone());
                    }
                    if !merged.is_empty() {
                        new.object[field] = Value::Object(merged);
                    }
                }
            }
            new.set_name(old.name());
            new.set_namespace(old.namespace());
            new.prev_ids = old.prev_ids.clone();
            new.prefixes = old.prefixes.clone();
            new.suffixes = old.suffixes.clone();
            resources[*i] = new;
            Ok(())
        }
        (many, _) => Err(format!("{} objects could take the generated {}", many.len(), id.describe())),
    }
}

fn transform(resources: &mut Vec<Resource>, k: &Kustomization, dir: &Dir, file: &Path) -> Result<(), BuildError> {
    let field_err = |field: &'static str| move |m: String| BuildError::field(file, field, m);
    for entry in &k.patches_strategic_merge {
        patch::apply_strategic_merge_entry(resources, entry, dir, file)?;
    }
    for entry in &k.patches {
        patch::apply_entry(resources, entry, "patches", dir, file)?;
    }
    if !k.namespace.is_empty() {
        transform::namespace(resources, &k.namespace).map_err(field_err("namespace"))?;
    }
    transform::prefix_suffix(resources, &k.name_prefix, &k.name_suffix);
    for label in &k.labels {
        let mut specs: Vec<FieldSpec> =
            label.fields.iter().map(|f| FieldSpec::new(&f.group, &f.version, &f.kind, &f.path, f.create)).collect();
        if label.include_selectors {
            specs.extend(fieldspec::common_labels());
        } else {
            if label.include_templates {
                specs.extend(fieldspec::template_labels());
            }
            specs.push(FieldSpec::new("", "", "", "metadata/labels", true));
        }
        transform::string_map(resources, &label.pairs, &specs).map_err(field_err("labels"))?;
    }
    transform::string_map(resources, &k.common_labels, &fieldspec::common_labels()).map_err(field_err("commonLabels"))?;
    transform::string_map(resources, &k.common_annotations, &fieldspec::common_annotations()).map_err(field_err("commonAnnotations"))?;
    for entry in &k.patches_json6902 {
        patch::apply_entry(resources, entry, "patchesJson6902", dir, file)?;
    }
    for r in &k.replicas {
        transform::replicas(resources, &r.name, r.count).map_err(field_err("replicas"))?;
    }
    for image in &k.images {
        let rule = transform::ImageRule::new(&image.name, &image.new_name, &image.new_tag, &image.tag_suffix, &image.digest)
            .map_err(field_err("images"))?;
        transform::images(resources, &rule).map_err(field_err("images"))?;
    }
    if !k.replacements.is_empty() {
        let replacements = replacement::load(&k.replacements, dir, file)?;
        replacement::apply(resources, &replacements).map_err(field_err("replacements"))?;
    }
    resources.retain(|r| !r.is_empty());
    Ok(())
}
