//! Replays a document's [`Edit`]s on its text, line by line, so comments, key order, quoting
//! and blank lines stay as a person wrote them: a YAML parser and emitter would drop every
//! comment of the file.
//!
//! It reads block-style YAML only, and only as far as the edits need: a mapping's keys are
//! the lines at its indentation, a key's value runs until a line that is not indented deeper
//! (or is not an item of its list). Anything else (a flow mapping on the path, a quoted key, a
//! value on the line after its key) gives `None`, and the caller writes the document anew.
//! The caller also parses the result and compares it with the migrated value, so a text this
//! reading gets wrong is never written.

use super::convert::{Edit, Step};

/// The text of `body` (one YAML document) with `edits` applied; `None` when the text is not
/// shaped so that a line-based edit is safe.
pub fn apply(body: &str, edits: &[Edit]) -> Option<String> {
    let mut doc = Lines::new(body);
    // Sets change one line each and no structure: first, so the line ranges below hold.
    for edit in edits {
        if let Edit::Set { path, from, to } = edit {
            doc.set(path, from, to)?;
        }
    }
    let mut splices = Vec::new();
    for edit in edits {
        match edit {
            Edit::Set { .. } => {}
            Edit::Remove { path } => {
                let entry = doc.locate(path)?;
                splices.push(Splice { start: entry.line, end: entry.value_end, with: Vec::new() });
            }
            Edit::FoldPatches => splices.extend(doc.fold_patches()?),
        }
    }
    doc.splice(splices)?;
    Some(doc.render())
}

/// Lines `start..end` replaced by `with`.
#[derive(Debug)]
struct Splice {
    start: usize,
    end: usize,
    with: Vec<String>,
}

/// Lines `from..to` holding the entries of one mapping (or the items of one list) whose keys
/// (or dashes) are at column `col`. For a mapping that is a list item, `from` is the item's
/// line and its first key follows the dash.
#[derive(Clone, Copy, Debug)]
struct Block {
    from: usize,
    to: usize,
    col: usize,
}

/// One key of a mapping: its line, its column, and where its value ends (exclusive, before
/// the comments and blank lines that follow it).
#[derive(Clone, Copy, Debug)]
struct Entry {
    line: usize,
    col: usize,
    /// Where the text after `key:` starts on the key's line.
    rest: usize,
    value_end: usize,
}

/// One list: its items' line ranges and the column of their dashes; no items for `[]`.
struct Seq {
    items: Vec<(usize, usize)>,
    col: usize,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// A line that holds YAML, not only a comment or nothing.
fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

fn is_item_at(line: &str, col: usize) -> bool {
    indent(line) == col && (line[col..] == *"-" || line[col..].starts_with("- "))
}

/// The value text after a key's colon, without its comment (a `#` after a space, outside
/// quotes); empty when the value is on the lines below.
fn inline_value(rest: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in rest.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'') && (prev.is_whitespace() || "[{,".contains(prev)) => quote = Some(c),
            None if c == '#' && prev.is_whitespace() => return rest[..i].trim(),
            None => {}
        }
        prev = c;
    }
    rest.trim()
}

/// `line` with its first `from` columns re-indented to `to` (a comment less indented moves
/// with it); `None` for YAML that is less indented than `from`.
fn reindent(line: &str, from: usize, to: usize) -> Option<String> {
    if line.trim().is_empty() {
        return Some(String::new());
    }
    if indent(line) >= from {
        return Some(format!("{}{}", " ".repeat(to), &line[from..]));
    }
    if line.trim_start().starts_with('#') {
        return Some(format!("{}{}", " ".repeat(to), line.trim_start()));
    }
    None
}

struct Lines {
    lines: Vec<String>,
    eol: &'static str,
    trailing_newline: bool,
}

impl Lines {
    fn new(body: &str) -> Lines {
        Lines {
            lines: body.lines().map(str::to_string).collect(),
            eol: if body.contains("\r\n") { "\r\n" } else { "\n" },
            trailing_newline: body.ends_with('\n'),
        }
    }

    fn render(&self) -> String {
        let mut out = self.lines.join(self.eol);
        if self.trailing_newline && !self.lines.is_empty() {
            out.push_str(self.eol);
        }
        out
    }

    fn first_content(&self, from: usize, to: usize) -> Option<usize> {
        (from..to).find(|&i| is_content(&self.lines[i]))
    }

    fn top(&self) -> Option<Block> {
        let from = self.first_content(0, self.lines.len())?;
        Some(Block { from, to: self.lines.len(), col: indent(&self.lines[from]) })
    }

    /// The key `name` of the mapping `block`.
    fn find_key(&self, block: Block, name: &str) -> Option<Entry> {
        (block.from..block.to).find_map(|i| {
            let line = &self.lines[i];
            let prefix = line.get(..block.col)?;
            let at_level = prefix.trim_start_matches(' ').is_empty() || (i == block.from && prefix.trim() == "-" && prefix.ends_with(' '));
            let after = line[block.col..].strip_prefix(name)?.strip_prefix(':')?;
            if !at_level || !(after.is_empty() || after.starts_with(' ')) {
                return None;
            }
            Some(self.entry(i, block.col, block.col + name.len() + 1, block.to))
        })
    }

    fn entry(&self, line: usize, col: usize, rest: usize, to: usize) -> Entry {
        let end = (line + 1..to)
            .find(|&j| {
                let l = &self.lines[j];
                is_content(l) && (indent(l) < col || (indent(l) == col && !is_item_at(l, col)))
            })
            .unwrap_or(to);
        let value_end = (line..end).rev().find(|&j| is_content(&self.lines[j])).map_or(line + 1, |j| j + 1);
        Entry { line, col, rest, value_end }
    }

    fn rest(&self, e: &Entry) -> &str {
        &self.lines[e.line][e.rest..]
    }

    /// The block an entry's value holds, when it is on the lines below its key.
    fn child(&self, e: &Entry) -> Option<Block> {
        if !inline_value(self.rest(e)).is_empty() {
            return None;
        }
        let from = self.first_content(e.line + 1, e.value_end)?;
        Some(Block { from, to: e.value_end, col: indent(&self.lines[from]) })
    }

    /// An entry's value as a list: `[]` (or nothing) inline, or block items.
    fn seq(&self, e: &Entry) -> Option<Seq> {
        let empty = Seq { items: Vec::new(), col: e.col + 2 };
        match inline_value(self.rest(e)) {
            "" if self.first_content(e.line + 1, e.value_end).is_none() => return Some(empty),
            "" => {}
            "[]" | "null" | "~" => return Some(empty),
            _ => return None,
        }
        let block = self.child(e)?;
        self.items(block).map(|items| Seq { items, col: block.col })
    }

    /// The item ranges of a list block; `None` when the block is not a list. An item keeps the
    /// comments before the next one; the last ends with the block.
    fn items(&self, block: Block) -> Option<Vec<(usize, usize)>> {
        if !is_item_at(&self.lines[block.from], block.col) {
            return None;
        }
        let starts: Vec<usize> = (block.from..block.to).filter(|&i| is_item_at(&self.lines[i], block.col)).collect();
        Some(starts.iter().enumerate().map(|(n, &s)| (s, starts.get(n + 1).copied().unwrap_or(block.to))).collect())
    }

    /// The mapping an item holds.
    fn item_block(&self, (start, end): (usize, usize), dash: usize) -> Option<Block> {
        let after = &self.lines[start][dash + 1..];
        if after.trim().is_empty() {
            let from = self.first_content(start + 1, end)?;
            return Some(Block { from, to: end, col: indent(&self.lines[from]) });
        }
        Some(Block { from: start, to: end, col: dash + 1 + (after.len() - after.trim_start().len()) })
    }

    /// The entry at the end of `path` (which ends with a key).
    fn locate(&self, path: &[Step]) -> Option<Entry> {
        let mut block = self.top()?;
        let mut found = None;
        for (n, step) in path.iter().enumerate() {
            match step {
                Step::Key(name) => {
                    let e = self.find_key(block, name)?;
                    if n + 1 < path.len() {
                        block = self.child(&e)?;
                    }
                    found = Some(e);
                }
                Step::Index(i) => {
                    let item = *self.items(block)?.get(*i)?;
                    block = self.item_block(item, block.col)?;
                    found = None;
                }
            }
        }
        found
    }

    /// The scalar `from` at `path` becomes `to`, in the quotes it had. A path through a flow
    /// mapping (`sourceRef: {kind: ..., apiVersion: ...}`) is found by its value, when the
    /// value is nowhere else in the document.
    fn set(&mut self, path: &[Step], from: &str, to: &str) -> Option<()> {
        if let Some(e) = self.locate(path) {
            let rest = self.rest(&e);
            let value = inline_value(rest);
            let replacement = match value.chars().next()? {
                q @ ('"' | '\'') if value.len() >= 2 && value.ends_with(q) && value[1..value.len() - 1] == *from => format!("{q}{to}{q}"),
                _ if value == from => to.to_string(),
                _ => return None,
            };
            let (at, len) = (e.rest + rest.find(value)?, value.len());
            self.lines[e.line].replace_range(at..at + len, &replacement);
            return Some(());
        }
        let mut hits = self.lines.iter().enumerate().filter(|(_, l)| l.contains(from));
        let (i, _) = hits.next()?;
        if hits.next().is_some() || self.lines[i].matches(from).count() != 1 {
            return None;
        }
        self.lines[i] = self.lines[i].replacen(from, to, 1);
        Some(())
    }

    /// A list item's value as text at column 0 (a patch for `patches[].patch`).
    fn item_text(&self, (start, end): (usize, usize), dash: usize) -> Option<Vec<String>> {
        let block = self.item_block((start, end), dash)?;
        let mut first = self.lines[block.from].clone();
        if block.from == start {
            first.replace_range(dash..dash + 1, " ");
        }
        let mut text = vec![reindent(&first, block.col, 0)?];
        for line in &self.lines[block.from + 1..end] {
            text.push(reindent(line, block.col, 0)?);
        }
        while text.last().is_some_and(|l| l.trim().is_empty()) {
            text.pop();
        }
        Some(text)
    }

    /// `patch: |` after `key_prefix` (which ends at the key's column), with the text below it.
    fn patch_entry(key_prefix: String, text: &[String]) -> Vec<String> {
        let content = " ".repeat(key_prefix.len() + 2);
        let mut out = vec![format!("{key_prefix}patch: |")];
        out.extend(text.iter().map(|l| if l.is_empty() { String::new() } else { format!("{content}{l}") }));
        out
    }

    /// A strategic merge patch item as a `patches` entry at dash column `col`.
    fn strategic_entry(&self, item: (usize, usize), dash: usize, col: usize) -> Option<Vec<String>> {
        let text = self.item_text(item, dash)?;
        Some(Self::patch_entry(format!("{}- ", " ".repeat(col)), &text))
    }

    /// A `patchesJson6902` item as a `patches` entry at dash column `col`: its lines as they
    /// are (the target keeps its comments), the operations under `patch` made a text.
    fn json6902_entry(&self, item: (usize, usize), dash: usize, col: usize) -> Option<Vec<String>> {
        let block = self.item_block(item, dash)?;
        let patch = self.find_key(block, "patch")?;
        let ops: Vec<String> = match inline_value(self.rest(&patch)) {
            "" => {
                let ops = self.child(&patch)?;
                let mut text = Vec::new();
                for line in &self.lines[ops.from..patch.value_end] {
                    text.push(reindent(line, ops.col, 0)?);
                }
                text
            }
            flow => vec![flow.to_string()],
        };
        let mut out = Vec::new();
        for i in item.0..item.1 {
            if i == patch.line {
                let moved = reindent(&self.lines[i], dash, col)?;
                let key_col = patch.col.checked_sub(dash)? + col;
                out.extend(Self::patch_entry(moved.get(..key_col)?.to_string(), &ops));
            } else if i > patch.line && i < patch.value_end {
                continue;
            } else {
                out.push(reindent(&self.lines[i], dash, col)?);
            }
        }
        while out.last().is_some_and(|l| l.trim().is_empty()) {
            out.pop();
        }
        Some(out)
    }

    /// The comments between a list's key and its first item, moved to column `col`.
    fn leading_comments(&self, e: &Entry, seq: &Seq, col: usize) -> Option<Vec<String>> {
        let first = seq.items.first().map_or(e.line + 1, |i| i.0);
        self.lines[e.line + 1..first].iter().filter(|l| !l.trim().is_empty()).map(|l| reindent(l, seq.col, col)).collect()
    }

    /// The splices that fold `spec.patchesStrategicMerge` and `spec.patchesJson6902` into
    /// `spec.patches` (see [`Edit::FoldPatches`] for the order).
    fn fold_patches(&self) -> Option<Vec<Splice>> {
        let spec = self.child(&self.find_key(self.top()?, "spec")?)?;
        let strategic = self.find_key(spec, "patchesStrategicMerge");
        let json6902 = self.find_key(spec, "patchesJson6902");
        let patches = self.find_key(spec, "patches");
        // Absent: Some(None); present but not a list this reading understands: None.
        let seq = |e: &Option<Entry>| match e {
            None => Some(None),
            Some(e) => self.seq(e).map(Some),
        };
        let (s_seq, j_seq, p_seq) = (seq(&strategic)?, seq(&json6902)?, seq(&patches)?);
        let col = [&p_seq, &s_seq, &j_seq].into_iter().flatten().find(|s| !s.items.is_empty()).map_or(spec.col + 2, |s| s.col);
        let mut front = Vec::new();
        if let (Some(e), Some(s)) = (&strategic, &s_seq) {
            front.extend(self.leading_comments(e, s, col)?);
            for &item in &s.items {
                front.extend(self.strategic_entry(item, s.col, col)?);
            }
        }
        let mut back = Vec::new();
        if let (Some(e), Some(j)) = (&json6902, &j_seq) {
            back.extend(self.leading_comments(e, j, col)?);
            for &item in &j.items {
                back.extend(self.json6902_entry(item, j.col, col)?);
            }
        }
        let mut splices = Vec::new();
        let header = || format!("{}patches:", " ".repeat(spec.col));
        match (&patches, &p_seq) {
            (Some(p), Some(seq)) if !seq.items.is_empty() => {
                splices.push(Splice { start: seq.items[0].0, end: seq.items[0].0, with: front });
                splices.push(Splice { start: p.value_end, end: p.value_end, with: back });
            }
            (Some(p), Some(_)) if !(front.is_empty() && back.is_empty()) => {
                let mut with = vec![header()];
                with.extend(front);
                with.extend(back);
                splices.push(Splice { start: p.line, end: p.value_end, with });
            }
            (Some(_), _) => {}
            (None, _) => {
                if !(front.is_empty() && back.is_empty()) {
                    let at = [&strategic, &json6902].into_iter().flatten().map(|e| e.line).min()?;
                    let mut with = vec![header()];
                    with.extend(front);
                    with.extend(back);
                    splices.push(Splice { start: at, end: at, with });
                }
            }
        }
        for e in [strategic, json6902].into_iter().flatten() {
            splices.push(Splice { start: e.line, end: e.value_end, with: Vec::new() });
        }
        Some(splices)
    }

    /// Applies splices that do not overlap, from the bottom up so earlier lines keep their
    /// numbers; `None` when two overlap.
    fn splice(&mut self, mut splices: Vec<Splice>) -> Option<()> {
        splices.sort_by_key(|s| (s.start, s.end));
        if splices.windows(2).any(|w| w[0].end > w[1].start) {
            return None;
        }
        for s in splices.into_iter().rev() {
            self.lines.splice(s.start..s.end, s.with);
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Step {
        Step::Key(k.into())
    }

    fn set(path: Vec<Step>, from: &str, to: &str) -> Edit {
        Edit::Set { path, from: from.into(), to: to.into() }
    }

    #[test]
    fn an_api_version_changes_and_comments_quotes_and_spacing_stay() {
        let body = "# the app\napiVersion: \"source.toolkit.fluxcd.io/v1\"   # Flux's\nkind: GitRepository\nmetadata:\n  name: app\n";
        let out = apply(body, &[set(vec![key("apiVersion")], "source.toolkit.fluxcd.io/v1", "driftless.dev/v1alpha1")]).unwrap();
        assert_eq!(out, body.replace("source.toolkit.fluxcd.io/v1", "driftless.dev/v1alpha1"));
    }

    #[test]
    fn a_value_that_is_not_the_one_expected_is_not_overwritten() {
        let body = "apiVersion: v1\nkind: ConfigMap\n";
        assert_eq!(apply(body, &[set(vec![key("apiVersion")], "source.toolkit.fluxcd.io/v1", "x")]), None);
    }

    #[test]
    fn a_nested_reference_is_found_by_indentation_also_in_list_items() {
        let body = "\
kind: Kustomization
spec:
  sourceRef:
    kind: GitRepository
    apiVersion: source.toolkit.fluxcd.io/v1 # the source
  healthChecks:
  - apiVersion: helm.toolkit.fluxcd.io/v2
    kind: HelmRelease
  -   kind: Kustomization
      apiVersion: kustomize.toolkit.fluxcd.io/v1
";
        let out = apply(
            body,
            &[
                set(vec![key("spec"), key("sourceRef"), key("apiVersion")], "source.toolkit.fluxcd.io/v1", "driftless.dev/v1alpha1"),
                set(
                    vec![key("spec"), key("healthChecks"), Step::Index(1), key("apiVersion")],
                    "kustomize.toolkit.fluxcd.io/v1",
                    "driftless.dev/v1alpha1",
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            body.replace("source.toolkit.fluxcd.io/v1 #", "driftless.dev/v1alpha1 #")
                .replace("apiVersion: kustomize.toolkit.fluxcd.io/v1", "apiVersion: driftless.dev/v1alpha1")
        );
    }

    #[test]
    fn a_reference_in_a_flow_mapping_is_found_by_its_unique_value() {
        let body = "spec:\n  sourceRef: {kind: GitRepository, name: a, apiVersion: source.toolkit.fluxcd.io/v1}\n";
        let out = apply(
            body,
            &[set(vec![key("spec"), key("sourceRef"), key("apiVersion")], "source.toolkit.fluxcd.io/v1", "driftless.dev/v1alpha1")],
        );
        assert_eq!(out.unwrap(), body.replace("source.toolkit.fluxcd.io/v1", "driftless.dev/v1alpha1"));
    }

    #[test]
    fn a_removed_field_goes_with_its_value_and_the_comments_after_it_stay() {
        let body = "spec:\n  interval: 1m\n  validation:\n    client\n  # prune what left Git\n  prune: true\n";
        let out = apply(body, &[Edit::Remove { path: vec![key("spec"), key("validation")] }]).unwrap();
        assert_eq!(out, "spec:\n  interval: 1m\n  # prune what left Git\n  prune: true\n");
    }

    #[test]
    fn a_key_in_a_block_scalar_or_a_deeper_mapping_is_not_taken_for_the_one_sought() {
        let body = "spec:\n  ignore: |\n    validation: x\n  postBuild:\n    validation: y\n  validation: client\n";
        let out = apply(body, &[Edit::Remove { path: vec![key("spec"), key("validation")] }]).unwrap();
        assert_eq!(out, "spec:\n  ignore: |\n    validation: x\n  postBuild:\n    validation: y\n");
    }

    #[test]
    fn strategic_merge_patches_become_patch_texts_keeping_their_comments() {
        let body = "\
spec:
  interval: 1m
  patchesStrategicMerge:
    # fewer replicas
    - apiVersion: apps/v1
      kind: Deployment   # web
      metadata:
        name: web
      spec:
        replicas: 2
    - {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
  prune: true
";
        let out = apply(body, &[Edit::FoldPatches]).unwrap();
        assert_eq!(
            out,
            "\
spec:
  interval: 1m
  patches:
    # fewer replicas
    - patch: |
        apiVersion: apps/v1
        kind: Deployment   # web
        metadata:
          name: web
        spec:
          replicas: 2
    - patch: |
        {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
  prune: true
"
        );
    }

    #[test]
    fn json6902_patches_keep_their_target_and_go_after_existing_patches() {
        let body = "\
spec:
  patchesJson6902:
  - target:
      kind: Deployment # only web
      name: web
    patch:
    - op: replace
      path: /spec/replicas
      value: 3
  - patch: [{op: remove, path: /spec/paused}]
    target: {kind: Deployment}
  patches:
    - patch: |
        kept
";
        let out = apply(body, &[Edit::FoldPatches]).unwrap();
        assert_eq!(
            out,
            "\
spec:
  patches:
    - patch: |
        kept
    - target:
        kind: Deployment # only web
        name: web
      patch: |
        - op: replace
          path: /spec/replicas
          value: 3
    - patch: |
        [{op: remove, path: /spec/paused}]
      target: {kind: Deployment}
"
        );
    }

    #[test]
    fn empty_deprecated_patch_fields_only_go() {
        let body = "spec:\n  patchesStrategicMerge: []\n  patchesJson6902:\n  prune: true\n";
        assert_eq!(apply(body, &[Edit::FoldPatches]).unwrap(), "spec:\n  prune: true\n");
    }

    #[test]
    fn flow_style_patches_are_left_to_the_caller() {
        let body = "spec: {patchesStrategicMerge: [{kind: ConfigMap}]}\n";
        assert_eq!(apply(body, &[Edit::FoldPatches]), None);
    }

    #[test]
    fn windows_line_endings_stay() {
        let body = "apiVersion: infra.contrib.fluxcd.io/v1alpha2\r\nkind: Terraform\r\n";
        let out = apply(body, &[set(vec![key("apiVersion")], "infra.contrib.fluxcd.io/v1alpha2", "driftless.dev/v1alpha1")]).unwrap();
        assert_eq!(out, "apiVersion: driftless.dev/v1alpha1\r\nkind: Terraform\r\n");
    }
}
