//! What a run writes into its workspace besides the module before `init`, from the Terraform
//! object's tofu-controller fields: the files of `fileMappings`, the CLI configuration of
//! `cliConfigSecretRef`, the backend settings of `backendConfigsFrom`, and the `.tfvars`
//! files of `tfVarsFiles` found in the artifact.
//!
//! Every path comes from a user and every artifact may hold symlinks: nothing here writes or
//! reads outside the directory it was meant for (a path is relative, has no `..`, and no part
//! of it that exists is a symlink).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use driftless_core::contract::{FileLocation, RunFile, RunVariable};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{field} {path:?}: {why}")]
    BadPath { field: &'static str, path: String, why: &'static str },
    #[error("spec.tfVarsFiles: {path:?} is not a file in the source artifact")]
    NoVarFile { path: String },
    #[error("spec.tfVarsFiles: {path}: {why}")]
    BadVarFile { path: String, why: String },
    #[error("spec.backendConfigsFrom: {key:?} is not a backend setting name (letters, digits, '_' and '-', starting with a letter or '_')")]
    BadBackendKey { key: String },
    #[error("cannot write {what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(
        "{path} is encrypted by SOPS and spec.decryption is not set: terraform would read its ciphertext as the values; set spec.decryption.secretRef to a Secret with the age (*.agekey) or PGP (*.asc) key that opens it"
    )]
    Encrypted { path: String },
}

/// `rel` under `root`, when it is relative, has no `..` and no existing part of it under
/// `root` is a symlink (an artifact's link could point anywhere).
pub fn contained(root: &Path, rel: &str, field: &'static str) -> Result<PathBuf, WorkspaceError> {
    let bad = |why| WorkspaceError::BadPath { field, path: rel.to_string(), why };
    let path = Path::new(rel);
    if rel.is_empty() {
        return Err(bad("is empty"));
    }
    let mut out = root.to_path_buf();
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("may not contain '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(bad("must be relative")),
        }
        if out.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(bad("goes through a symbolic link"));
        }
    }
    if out == root {
        return Err(bad("names no file"));
    }
    Ok(out)
}

/// The home directory terraform gets when a file mapping asks for `home`: the run's own, so
/// a run on a workstation never writes into its user's home.
pub fn home_dir(workdir: &Path) -> PathBuf {
    workdir.join("home")
}

/// Writes `files` (mode 0600: they came from Secrets) under the module directory or `home`.
pub fn write_files(files: &[RunFile], module_dir: &Path, home: &Path) -> Result<(), WorkspaceError> {
    for file in files {
        let root = match file.location {
            FileLocation::Home => home,
            FileLocation::Workspace => module_dir,
            // Written over the source by `write_source_files`, before anything reads it.
            FileLocation::Source => continue,
        };
        std::fs::create_dir_all(root).map_err(|source| WorkspaceError::Io { what: "the home directory".into(), source })?;
        let target = contained(root, &file.path, "spec.fileMappings[].path")?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|source| WorkspaceError::Io { what: file.path.clone(), source })?;
        }
        // The directories just made are plain ones; look again, as one may have been a link.
        let target = contained(root, &file.path, "spec.fileMappings[].path")?;
        write_private(&target, &file.content).map_err(|source| WorkspaceError::Io { what: file.path.clone(), source })?;
    }
    Ok(())
}

/// Writes the decrypted var files over their encrypted form in the unpacked source `src`.
pub fn write_source_files(files: &[RunFile], src: &Path) -> Result<(), WorkspaceError> {
    for file in files.iter().filter(|f| f.location == FileLocation::Source) {
        let target = contained(src, file.path.trim_start_matches("./"), "a decrypted var file")?;
        write_private(&target, &file.content).map_err(|source| WorkspaceError::Io { what: file.path.clone(), source })?;
    }
    Ok(())
}

/// The var files terraform reads from `module_dir` by itself (`terraform.tfvars`,
/// `*.auto.tfvars` and their `.json` forms), by name.
pub fn auto_var_files(module_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(module_dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(driftless_core::engine::is_auto_var_file))
        .collect();
    found.sort();
    found
}

/// Whether `bytes` is a file encrypted by sops (its values, or the whole of it as a binary
/// file, are `ENC[...]` with sops metadata beside them).
pub fn is_sops_encrypted(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.contains("ENC[AES256_GCM,") && (text.contains("\"sops\"") || text.contains("sops:") || text.contains("sops_mac="))
}

/// The values a decrypted var file sets, as JSON (`.json` by its name, else HCL), for the
/// scrubber; `None` when it does not parse (terraform will say so, scrubbed of its text).
pub fn var_file_values(path: &str, content: &[u8]) -> Option<serde_json::Value> {
    let text = std::str::from_utf8(content).ok()?;
    if path.ends_with(".json") { serde_json::from_str(text).ok() } else { hcl::from_str(text).ok() }
}

/// Writes `bytes` to `path` readable by the runner's user only, replacing a plain file.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).custom_flags(nix::libc::O_NOFOLLOW).open(path)?;
    file.write_all(bytes)
}

/// The `-var-file` paths of `spec.tfVarsFiles`, inside the artifact's root, each a file.
pub fn var_files(src: &Path, files: &[String]) -> Result<Vec<PathBuf>, WorkspaceError> {
    files
        .iter()
        .map(|rel| {
            let path = contained(src, rel.trim_start_matches("./"), "spec.tfVarsFiles[]")?;
            if !path.is_file() {
                return Err(WorkspaceError::NoVarFile { path: rel.clone() });
            }
            Ok(path)
        })
        .collect()
}

/// The variables a `.tfvars` (HCL) or `.tfvars.json` file sets, so a required variable it
/// sets is not reported missing.
pub fn var_file_names(path: &Path, shown: &str) -> Result<BTreeSet<String>, WorkspaceError> {
    let bad = |why: String| WorkspaceError::BadVarFile { path: shown.to_string(), why };
    let text = crate::module::read_text(path).map_err(bad)?;
    if shown.ends_with(".json") {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let object = value.as_object().ok_or_else(|| bad("must be a JSON object of variable values".into()))?;
        return Ok(object.keys().cloned().collect());
    }
    let body: hcl::Body = hcl::from_str(&text).map_err(|e| bad(format!("invalid HCL: {e}")))?;
    Ok(body.attributes().map(|a| a.key().to_string()).collect())
}

/// The `-backend-config` file of `backendConfigsFrom`: one `key = "value"` per setting, each
/// value a literal string (terraform converts it to the setting's type, as it does the
/// `key=value` form). A file, not arguments: a Secret's value does not belong in a process's
/// command line.
pub fn backend_config(settings: &[RunVariable]) -> Result<String, WorkspaceError> {
    let mut out = String::new();
    for s in settings {
        let valid_start = s.name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !valid_start || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(WorkspaceError::BadBackendKey { key: s.name.clone() });
        }
        let value = match &s.value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("{} = \"{}\"\n", s.name, hcl_string(&value)));
    }
    Ok(out)
}

/// `text` as the inside of an HCL quoted string that evaluates to exactly `text`: escapes,
/// and template sequences doubled so `${` and `%{` stay literal.
fn hcl_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_stay_inside_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(contained(root, "a/b.txt", "f").unwrap(), root.join("a/b.txt"));
        assert_eq!(contained(root, "./a", "f").unwrap(), root.join("a"));
        for bad in ["../x", "a/../../x", "/etc/passwd", "", "."] {
            assert!(contained(root, bad, "f").is_err(), "{bad}");
        }
        std::os::unix::fs::symlink("/tmp", root.join("link")).unwrap();
        let e = contained(root, "link/x", "spec.fileMappings[].path").unwrap_err();
        assert_eq!(e.to_string(), "spec.fileMappings[].path \"link/x\": goes through a symbolic link");
        assert!(contained(root, "link", "f").is_err(), "a link as the file itself");
    }

    #[test]
    fn mapped_files_are_written_private_under_their_location() {
        let dir = tempfile::tempdir().unwrap();
        let (module, home) = (dir.path().join("m"), dir.path().join("home"));
        std::fs::create_dir(&module).unwrap();
        let files = [
            RunFile { location: FileLocation::Home, path: ".aws/credentials".into(), content: b"[default]\n".to_vec() },
            RunFile { location: FileLocation::Workspace, path: "secret.auto.tfvars".into(), content: vec![0, 1, 2] },
        ];
        write_files(&files, &module, &home).unwrap();
        assert_eq!(std::fs::read(home.join(".aws/credentials")).unwrap(), b"[default]\n");
        assert_eq!(std::fs::read(module.join("secret.auto.tfvars")).unwrap(), vec![0, 1, 2]);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(module.join("secret.auto.tfvars")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    #[test]
    fn backend_settings_are_literal_strings() {
        let settings = [
            RunVariable { name: "path".into(), value: json!("a \"q\" \\ ${x} %{y} $z\nend"), sensitive: false },
            RunVariable { name: "skip_x".into(), value: json!(true), sensitive: true },
        ];
        let text = backend_config(&settings).unwrap();
        assert_eq!(text, "path = \"a \\\"q\\\" \\\\ $${x} %%{y} $z\\nend\"\nskip_x = \"true\"\n");
        // What terraform reads back is the value itself.
        let body: hcl::Body = hcl::from_str(&text).unwrap();
        let path = body.attributes().find(|a| a.key() == "path").unwrap().expr().clone();
        let value = hcl::eval::Evaluate::evaluate(&path, &hcl::eval::Context::new()).unwrap();
        assert_eq!(value, hcl::Value::from("a \"q\" \\ ${x} %{y} $z\nend"));
        let bad = [RunVariable { name: "a b".into(), value: json!("x"), sensitive: false }];
        assert!(matches!(backend_config(&bad), Err(WorkspaceError::BadBackendKey { .. })));
    }

    #[test]
    fn var_files_must_be_files_of_the_artifact_and_say_what_they_set() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("env")).unwrap();
        std::fs::write(dir.path().join("env/prod.tfvars"), "region = \"eu\"\ncount = 2\n").unwrap();
        std::fs::write(dir.path().join("env/prod.tfvars.json"), r#"{"size": "xl"}"#).unwrap();
        let found = var_files(dir.path(), &["env/prod.tfvars".into(), "./env/prod.tfvars.json".into()]).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(var_file_names(&found[0], "env/prod.tfvars").unwrap(), BTreeSet::from(["count".into(), "region".into()]));
        assert_eq!(var_file_names(&found[1], "env/prod.tfvars.json").unwrap(), BTreeSet::from(["size".into()]));
        assert!(matches!(var_files(dir.path(), &["env".into()]), Err(WorkspaceError::NoVarFile { .. })));
        assert!(matches!(var_files(dir.path(), &["missing.tfvars".into()]), Err(WorkspaceError::NoVarFile { .. })));
        assert!(var_files(dir.path(), &["../x.tfvars".into()]).is_err());
    }
}
