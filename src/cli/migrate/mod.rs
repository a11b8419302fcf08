//! `driftless migrate PATH...`: rewrites a repository's Flux and tofu-controller objects to
//! `driftless.dev/v1alpha1` in place (`--dry-run`: prints them instead), and lists every
//! field it could not carry over, with the message `driftless apply` would refuse it with.
//!
//! What a document becomes is decided on its value (`convert`), replayed on its lines so
//! comments stay (`edit`), and checked by parsing the result (`file`); this module only
//! finds the files, reads and writes them, and reports.
//!
//! Exit status: 0 when everything carried over; 1 when a field, an annotation or a whole
//! file (one that does not parse, or cannot be written) did not, so CI can run it; 2 for a
//! path that does not exist.

mod convert;
mod edit;
mod file;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use file::{Document, Migrated};

/// `driftless migrate --help`: what it does, what it leaves, and its exit status.
pub const LONG_ABOUT: &str = "Rewrites Flux (source, kustomize and notification toolkit) and tofu-controller (infra.contrib.fluxcd.io) \
objects of the kinds driftless has (GitRepository, Bucket, Kustomization, Terraform, Provider, Alert, Receiver) to \
driftless.dev/v1alpha1, in place.

Every .yaml and .yml file below each PATH is read (hidden directories are skipped). apiVersions change from any version \
the peers served; fields a peer's own upgrade renamed or retired follow it (a Kustomization's patchesStrategicMerge and \
patchesJson6902 become patches and validation goes, as in Flux's v1); references to migrated kinds (sourceRef, \
healthChecks, eventSources, resources) follow them. Only the lines that change are rewritten: comments, order, other \
documents and other kinds stay as they are. A file that does not parse is not changed. A second run changes nothing.

Every field driftless does not carry (checked as `driftless apply` checks it) and every Flux annotation it does not honour \
is listed with what to do instead, and left in the file for you to decide.

Exit status: 0 when everything carried over, 1 when something did not (a field, an annotation, a file), 2 for a path \
that does not exist.";

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Files or directories to migrate.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Change no file: print each file that would change, migrated, to stdout (what changes goes to stderr).
    #[arg(long)]
    dry_run: bool,
}

/// Why `migrate` did not carry everything over.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A path given that cannot be read (a usage error).
    #[error("{path}: {reason}")]
    Path { path: String, reason: String },
    /// Fields or files that did not carry over, each listed on a line of its own before.
    #[error("{0}")]
    Incomplete(String),
}

impl MigrateError {
    /// 2 for a path that is not there (as for any usage error), 1 for what did not carry over.
    pub fn exit_code(&self) -> u8 {
        match self {
            MigrateError::Path { .. } => 2,
            MigrateError::Incomplete(_) => 1,
        }
    }
}

/// What the run saw, for its last line and its exit status.
#[derive(Default)]
struct Tally {
    changed: usize,
    files: usize,
    refused: usize,
    failed_files: usize,
}

/// Runs `migrate`: every file of every path, then a summary.
pub fn run(args: &MigrateArgs) -> Result<(), MigrateError> {
    let mut files = Vec::new();
    for path in &args.paths {
        files.extend(yaml_files(path)?);
    }
    let mut tally = Tally::default();
    let stdout = std::io::stdout();
    for path in &files {
        tally.files += 1;
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("{shown}: not changed: {e}");
                tally.failed_files += 1;
                continue;
            }
        };
        let migrated = match file::migrate(&text) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{shown}: not changed: {e}");
                tally.failed_files += 1;
                continue;
            }
        };
        let changed = migrated.text != text;
        for line in report(&shown, &migrated) {
            match line {
                Line::Done(l) if args.dry_run => eprintln!("{l}"),
                Line::Done(l) => println!("{l}"),
                Line::Refused(l) => {
                    tally.refused += 1;
                    eprintln!("{l}");
                }
            }
        }
        if !changed {
            continue;
        }
        if args.dry_run {
            let mut out = stdout.lock();
            let separator = if migrated.text.starts_with("---") { "" } else { "---\n" };
            let _ = write!(out, "# {shown}\n{separator}{}", migrated.text);
            if !migrated.text.ends_with('\n') {
                let _ = writeln!(out);
            }
        } else if let Err(e) = write_in_place(path, &migrated.text) {
            eprintln!("{shown}: not changed: could not write it: {e}");
            tally.failed_files += 1;
            continue;
        }
        tally.changed += 1;
    }
    let verb = if args.dry_run { "would change" } else { "changed" };
    let summary = format!("{verb} {} of {} files", tally.changed, tally.files);
    if tally.refused == 0 && tally.failed_files == 0 {
        if args.dry_run {
            eprintln!("{summary}");
        } else {
            println!("{summary}");
        }
        return Ok(());
    }
    let mut left = Vec::new();
    if tally.refused > 0 {
        left.push(format!("{} field(s) not carried over", tally.refused));
    }
    if tally.failed_files > 0 {
        left.push(format!("{} file(s) not changed", tally.failed_files));
    }
    Err(MigrateError::Incomplete(format!("{summary}; {} (listed above)", left.join(" and "))))
}

/// A line of the report: what was done (stdout when writing in place), or what was not
/// carried over (stderr).
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Done(String),
    Refused(String),
}

/// The report of one file: its changes per object, then what did not carry over, one line
/// each, naming the file, the object and the field as `driftless apply` does.
fn report(path: &str, migrated: &Migrated) -> Vec<Line> {
    let mut lines = Vec::new();
    for Document { outcome, rewritten } in &migrated.documents {
        let object = &outcome.object;
        if !outcome.changes.is_empty() {
            lines.push(Line::Done(format!("{path}: {object}: {}", outcome.changes.join("; "))));
        }
        if *rewritten {
            lines.push(Line::Done(format!("{path}: {object}: written anew (its lines could not be edited one by one): comments dropped")));
        }
        for note in &outcome.notes {
            lines.push(Line::Done(format!("{path}: {object}: {note}")));
        }
        for refused in &outcome.refused {
            lines.push(Line::Refused(format!("{path}: {object}: {}: {}", refused.field, refused.reason)));
        }
    }
    lines
}

/// The YAML files of a path: the file itself (whatever its name), or every .yaml/.yml below a
/// directory, sorted, without hidden directories (`.git`) and without following symlinks,
/// which could lead outside the repository or in circles.
fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, MigrateError> {
    let problem = |e: std::io::Error| MigrateError::Path { path: path.display().to_string(), reason: e.to_string() };
    let meta = std::fs::metadata(path).map_err(problem)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| MigrateError::Path { path: dir.display().to_string(), reason: e.to_string() })?;
        for entry in entries.flatten() {
            let p = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            match entry.file_type() {
                Ok(t) if t.is_dir() && !hidden => dirs.push(p),
                Ok(t) if t.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml") => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Replaces a file's text through a temporary file beside it, so an interrupted run leaves
/// the old text or the new one, never half; the file keeps its permissions.
fn write_in_place(path: &Path, text: &str) -> std::io::Result<()> {
    let permissions = std::fs::metadata(path)?.permissions();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().set_permissions(permissions)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_file_object_and_field_and_sorts_done_from_refused() {
        let text = "apiVersion: infra.contrib.fluxcd.io/v1alpha2\nkind: Terraform\nmetadata:\n  name: net\n  namespace: infra\n\
                    spec:\n  interval: 1h\n  path: ./\n  sourceRef:\n    kind: GitRepository\n    name: a\n  webhooks:\n    - stage: post-planning\n      url: https://example.com\n";
        let migrated = file::migrate(text).unwrap();
        let lines = report("infra/net.yaml", &migrated);
        assert_eq!(
            lines[0],
            Line::Done("infra/net.yaml: Terraform/infra/net: apiVersion infra.contrib.fluxcd.io/v1alpha2 -> driftless.dev/v1alpha1".into())
        );
        let Line::Refused(refused) = &lines[1] else { panic!("{lines:?}") };
        assert!(refused.starts_with("infra/net.yaml: Terraform/infra/net: spec.webhooks: unknown field: "), "{refused}");
        assert_eq!(lines.len(), 2, "{lines:?}");
    }

    #[test]
    fn yaml_files_skip_hidden_directories_and_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for p in ["a.yaml", "b/c.yml", "b/readme.md", ".git/x.yaml"] {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let found: Vec<PathBuf> =
            yaml_files(dir.path()).unwrap().into_iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf()).collect();
        assert_eq!(found, vec![PathBuf::from("a.yaml"), PathBuf::from("b/c.yml")]);
        assert_eq!(yaml_files(&dir.path().join("nowhere")).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn writing_in_place_keeps_the_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.yaml");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_in_place(&p, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
    }
}
