//! One file: its documents migrated ([`convert`](super::convert)) and written back line by
//! line ([`edit`](super::edit)); a document whose lines cannot be edited safely is written
//! anew from its migrated value, and says so. A file that does not parse is not changed.

use serde_json::Value;

use super::convert::{self, Outcome};
use super::edit;

/// A file's migrated text and what happened to each of its documents.
#[derive(Debug)]
pub struct Migrated {
    pub text: String,
    pub documents: Vec<Document>,
}

/// One document of a file.
#[derive(Debug)]
pub struct Document {
    pub outcome: Outcome,
    /// Written anew from its value: its comments and formatting were not kept.
    pub rewritten: bool,
}

/// Why a file was not changed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("its documents could not be told apart by their `---` lines (a document that starts on its `---` line?)")]
    Split,
    #[error("{object} could not be written as YAML: {reason}")]
    Write { object: String, reason: String },
}

/// Migrates the text of one file. Nothing changes in a file without objects to migrate, so
/// a second run changes nothing.
pub fn migrate(text: &str) -> Result<Migrated, FileError> {
    let values = documents(text)?;
    let outcomes: Vec<Option<Outcome>> = values.iter().map(|v| serde_json::to_value(v).ok().map(|json| convert::convert(&json))).collect();
    let mut documents = Vec::new();
    if outcomes.iter().flatten().all(|o| o.edits.is_empty()) {
        documents.extend(outcomes.into_iter().flatten().map(|outcome| Document { outcome, rewritten: false }));
        return Ok(Migrated { text: text.to_string(), documents });
    }
    let segments = segments(text)?;
    let bodies: Vec<usize> = segments.iter().enumerate().filter(|(_, s)| s.value.is_some()).map(|(i, _)| i).collect();
    let split: Vec<&serde_yaml::Value> = bodies.iter().filter_map(|&i| segments[i].value.as_ref()).collect();
    if split != values.iter().collect::<Vec<_>>() {
        return Err(FileError::Split);
    }
    let mut out = String::with_capacity(text.len());
    let mut next = bodies.iter().zip(outcomes).peekable();
    for (i, segment) in segments.iter().enumerate() {
        out.push_str(segment.head);
        let outcome = match next.peek() {
            Some((at, _)) if **at == i => next.next().and_then(|(_, o)| o),
            _ => None,
        };
        let Some(outcome) = outcome else {
            out.push_str(segment.body);
            continue;
        };
        let (body, rewritten) = if outcome.edits.is_empty() {
            (segment.body.to_string(), false)
        } else {
            match edit::apply(segment.body, &outcome.edits).filter(|edited| parses_to(edited, &outcome.value)) {
                Some(edited) => (edited, false),
                None => (anew(segment.body, &outcome)?, true),
            }
        };
        out.push_str(&body);
        documents.push(Document { outcome, rewritten });
    }
    Ok(Migrated { text: out, documents })
}

/// The file's documents, empty ones left out.
fn documents(text: &str) -> Result<Vec<serde_yaml::Value>, FileError> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).map_err(|e| FileError::Yaml(e.to_string()))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// A document's text: the `---` line that starts it (empty for the first), and its body.
struct Segment<'a> {
    head: &'a str,
    body: &'a str,
    /// The body parsed; `None` when it holds no YAML.
    value: Option<serde_yaml::Value>,
}

/// The file cut at its `---` lines.
fn segments(text: &str) -> Result<Vec<Segment<'_>>, FileError> {
    let mut cuts = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") {
            let after = bare[3..].trim();
            if !after.is_empty() && !after.starts_with('#') {
                return Err(FileError::Split);
            }
            cuts.push((offset, offset + line.len()));
        }
        offset += line.len();
    }
    let mut out = Vec::new();
    let mut head = (0, 0);
    for (start, end) in cuts.into_iter().chain([(text.len(), text.len())]) {
        let body = &text[head.1..start];
        let value = if body.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
            let value: serde_yaml::Value = serde_yaml::from_str(body).map_err(|_| FileError::Split)?;
            (!value.is_null()).then_some(value)
        } else {
            None
        };
        out.push(Segment { head: &text[head.0..head.1], body, value });
        head = (start, end);
    }
    Ok(out)
}

/// Whether `text` parses to `expected` (patch texts compared by what they parse to: an
/// edited patch keeps its author's layout, the migrated value has serde's).
fn parses_to(text: &str, expected: &Value) -> bool {
    let Ok(parsed) = serde_yaml::from_str::<serde_yaml::Value>(text) else { return false };
    let Ok(parsed) = serde_json::to_value(parsed) else { return false };
    comparable(parsed) == comparable(expected.clone())
}

fn comparable(mut value: Value) -> Value {
    if let Some(patches) = value.pointer_mut("/spec/patches").and_then(Value::as_array_mut) {
        for patch in patches.iter_mut().filter_map(|p| p.get_mut("patch")) {
            if let Some(parsed) = patch.as_str().and_then(|t| serde_yaml::from_str::<serde_yaml::Value>(t).ok()) {
                *patch = serde_json::to_value(parsed).unwrap_or(Value::Null);
            }
        }
    }
    value
}

/// A document written anew from its migrated value, after the comments that opened it.
fn anew(body: &str, outcome: &Outcome) -> Result<String, FileError> {
    let yaml =
        serde_yaml::to_string(&outcome.value).map_err(|e| FileError::Write { object: outcome.object.clone(), reason: e.to_string() })?;
    let opening: String = body.split_inclusive('\n').take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#')).collect();
    Ok(format!("{opening}{yaml}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FILE: &str = "\
# Flux's objects of the app
---
apiVersion: source.toolkit.fluxcd.io/v1beta2 # Flux
kind: GitRepository
metadata:
  name: app
spec:
  url: https://example.com/app.git
  interval: 1m
  gitImplementation: go-git
  ref:
    branch: main
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # not Flux's
  annotations:
    kustomize.toolkit.fluxcd.io/prune: disabled
spec:
  replicas: 1
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
patchesStrategicMerge:
  - patch.yaml
";

    #[test]
    fn only_the_lines_of_what_migrates_change() {
        let migrated = migrate(FILE).unwrap();
        let expected = FILE
            .replace("apiVersion: source.toolkit.fluxcd.io/v1beta2 # Flux", "apiVersion: driftless.dev/v1alpha1 # Flux")
            .replace("  gitImplementation: go-git\n", "");
        assert_eq!(migrated.text, expected);
        assert_eq!(migrated.documents.len(), 3);
        let git = &migrated.documents[0];
        assert_eq!(git.outcome.object, "GitRepository/default/app");
        assert!(!git.rewritten);
        assert!(git.outcome.changes.iter().any(|c| c.starts_with("spec.gitImplementation removed")), "{:?}", git.outcome.changes);
        assert!(migrated.documents.iter().all(|d| d.outcome.refused.is_empty()));
    }

    #[test]
    fn a_second_run_changes_nothing() {
        let once = migrate(FILE).unwrap().text;
        let twice = migrate(&once).unwrap();
        assert_eq!(twice.text, once);
        assert!(twice.documents.iter().all(|d| d.outcome.edits.is_empty()));
    }

    #[test]
    fn a_file_that_does_not_parse_is_an_error() {
        assert!(matches!(migrate("apiVersion: source.toolkit.fluxcd.io/v1\nkind: [GitRepository\n"), Err(FileError::Yaml(_))));
    }

    #[test]
    fn a_file_without_objects_to_migrate_is_returned_as_it_is_even_when_it_cannot_be_cut() {
        let text = "--- {apiVersion: v1, kind: ConfigMap}\n--- # two\nkind: Secret\n";
        assert_eq!(migrate(text).unwrap().text, text);
        let flux = "--- {apiVersion: source.toolkit.fluxcd.io/v1, kind: GitRepository, metadata: {name: a}}\n";
        assert!(matches!(migrate(flux), Err(FileError::Split)));
    }

    #[test]
    fn a_document_in_flow_style_is_written_anew_and_says_so() {
        let text = "# keep me\n{apiVersion: kustomize.toolkit.fluxcd.io/v1beta2, kind: Kustomization, metadata: {name: a},\n \
                    spec: {interval: 1m, prune: true, sourceRef: {kind: GitRepository, name: a},\n \
                    patchesStrategicMerge: [{apiVersion: v1, kind: ConfigMap, metadata: {name: c}}]}}\n---\nkind: Other\n";
        let migrated = migrate(text).unwrap();
        assert!(migrated.documents[0].rewritten);
        assert!(migrated.text.starts_with("# keep me\n"), "{}", migrated.text);
        assert!(migrated.text.ends_with("---\nkind: Other\n"), "{}", migrated.text);
        let docs = documents(&migrated.text).unwrap();
        let json = serde_json::to_value(&docs[0]).unwrap();
        assert_eq!(json["apiVersion"], "driftless.dev/v1alpha1");
        assert_eq!(json["spec"]["patches"][0]["patch"].as_str().map(|p| p.contains("kind: ConfigMap")), Some(true));
        assert_eq!(migrate(&migrated.text).unwrap().text, migrated.text, "idempotent too");
    }

    #[test]
    fn a_kustomization_of_flux_v1beta2_keeps_its_comments_through_the_fold() {
        let text = "\
apiVersion: kustomize.toolkit.fluxcd.io/v1beta2
kind: Kustomization
metadata:
  name: apps
spec:
  interval: 10m # every ten minutes
  sourceRef:
    kind: GitRepository
    name: app
  prune: true
  validation: client
  # two replicas in staging
  patchesStrategicMerge:
    - apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: web
      spec:
        replicas: 2 # not 3
";
        let migrated = migrate(text).unwrap();
        assert!(!migrated.documents[0].rewritten, "{}", migrated.text);
        assert_eq!(
            migrated.text,
            "\
apiVersion: driftless.dev/v1alpha1
kind: Kustomization
metadata:
  name: apps
spec:
  interval: 10m # every ten minutes
  sourceRef:
    kind: GitRepository
    name: app
  prune: true
  # two replicas in staging
  patches:
    - patch: |
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          replicas: 2 # not 3
"
        );
    }

    /// A file of every shape the line edits handle, to be mangled.
    const MANY: &str = "\
apiVersion: kustomize.toolkit.fluxcd.io/v1beta2
kind: Kustomization
metadata:
  name: a
spec:
  interval: 1m
  prune: true
  validation: client
  sourceRef:
    apiVersion: source.toolkit.fluxcd.io/v1
    kind: GitRepository
    name: a
  healthChecks:
  - apiVersion: kustomize.toolkit.fluxcd.io/v1
    kind: Kustomization
    name: b
  patches:
    - patch: |
        kept
  patchesStrategicMerge:
    # one
    - apiVersion: v1
      kind: ConfigMap
      metadata: {name: c}
  patchesJson6902:
  - target: {kind: ConfigMap}
    patch:
    - {op: add, path: /data/a, value: b}
---
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: GitRepository
metadata: {name: a}
spec:
  gitImplementation: go-git
  interval: 1m
  accessFrom: {namespaceSelectors: []}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
";

    #[test]
    fn every_shape_of_the_mangled_file_is_edited_by_its_lines() {
        let migrated = migrate(MANY).unwrap();
        assert!(migrated.documents.iter().all(|d| !d.rewritten), "{}", migrated.text);
        assert!(migrated.text.contains("    # one\n    - patch: |\n        apiVersion: v1\n"), "{}", migrated.text);
        assert!(!migrated.text.contains("gitImplementation") && !migrated.text.contains("accessFrom"), "{}", migrated.text);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Whatever the lines look like: an error and the file unchanged, or a text in which
        /// every migrated document is exactly its migrated value, every other document is as
        /// it was, and a second run changes nothing.
        #[test]
        fn a_mangled_file_migrates_exactly_or_not_at_all(cuts in proptest::collection::vec((0usize..64, 0u8..5), 0..6)) {
            let mut lines: Vec<String> = MANY.lines().map(str::to_string).collect();
            for (at, op) in cuts {
                let at = at % lines.len().max(1);
                match op {
                    0 if lines.len() > 1 => { lines.remove(at); }
                    1 => lines[at].insert_str(0, "  "),
                    2 => { let l = lines[at].trim_start_matches(' ').to_string(); lines[at] = l; }
                    3 => { let l = lines[at].clone(); lines.insert(at, l); }
                    _ => lines[at].push_str(" # note"),
                }
            }
            let text = lines.join("\n") + "\n";
            let Ok(migrated) = migrate(&text) else { return Ok(()) };
            let before = documents(&text).unwrap();
            let after = documents(&migrated.text).expect("what migrate writes parses");
            prop_assert_eq!(before.len(), after.len());
            for (b, a) in before.iter().zip(&after) {
                let (b, a) = (serde_json::to_value(b).unwrap(), serde_json::to_value(a).unwrap());
                prop_assert_eq!(comparable(a), comparable(convert::convert(&b).value));
            }
            prop_assert_eq!(migrate(&migrated.text).unwrap().text, migrated.text.clone());
        }
    }
}
