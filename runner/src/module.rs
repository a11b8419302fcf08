//! Reads a root module's `variable` and `backend` blocks with hcl-rs, so a wrong or missing
//! variable is a clear error before terraform starts (terraform's own message comes late
//! and names no field of ours).

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("module path {0:?} does not exist in the source artifact")]
    Missing(String),
    #[error("module path {0:?} holds no .tf files")]
    Empty(String),
    #[error("{file}: invalid HCL: {message}")]
    Parse { file: String, message: String },
    #[error("cannot read {file}: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file} is larger than {} MiB; driftless reads no module file that large", MAX_FILE_BYTES >> 20)]
    TooLarge { file: String },
    #[error("{file} is not UTF-8 text (byte {at}); terraform reads only UTF-8")]
    NotText { file: String, at: usize },
}

/// The largest `.tf` file read: far beyond any hand-written module, and a bound on what one
/// file of an artifact can make the runner hold in memory.
pub const MAX_FILE_BYTES: u64 = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableDecl {
    pub required: bool,
    pub sensitive: bool,
}

#[derive(Debug, Default)]
pub struct ModuleInfo {
    pub variables: BTreeMap<String, VariableDecl>,
    /// The backend type the module declares (`terraform { backend "s3" {} }`), if any.
    pub backend: Option<String>,
}

/// Parses every `*.tf` file of the module directory (not subdirectories: nested modules
/// are terraform's business).
pub fn inspect(dir: &Path, display_path: &str) -> Result<ModuleInfo, ModuleError> {
    if !dir.is_dir() {
        return Err(ModuleError::Missing(display_path.to_string()));
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| ModuleError::Io { file: display_path.to_string(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tf") || p.to_string_lossy().ends_with(".tf.json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ModuleError::Empty(display_path.to_string()));
    }
    let mut info = ModuleInfo::default();
    for file in files {
        let name = format!("{}/{}", display_path.trim_end_matches('/'), file.file_name().map(|f| f.to_string_lossy()).unwrap_or_default());
        if file.to_string_lossy().ends_with(".tf.json") {
            // JSON syntax: terraform validates it; variables declared there are taken on trust.
            continue;
        }
        let text = read_bounded(&file).map_err(|e| match e {
            Read::TooLarge => ModuleError::TooLarge { file: name.clone() },
            Read::NotText(at) => ModuleError::NotText { file: name.clone(), at },
            Read::Io(source) => ModuleError::Io { file: name.clone(), source },
        })?;
        let body: hcl::Body = hcl::from_str(&text).map_err(|e| ModuleError::Parse { file: name.clone(), message: e.to_string() })?;
        for block in body.blocks() {
            match block.identifier() {
                "variable" => {
                    let Some(label) = block.labels().first() else { continue };
                    let attr = |key: &str| block.body().attributes().find(|a| a.key() == key).map(|a| a.expr().clone());
                    let sensitive = matches!(attr("sensitive"), Some(hcl::Expression::Bool(true)));
                    info.variables.insert(label.as_str().to_string(), VariableDecl { required: attr("default").is_none(), sensitive });
                }
                "terraform" => {
                    for inner in block.body().blocks() {
                        if inner.identifier() == "backend" {
                            info.backend = inner.labels().first().map(|l| l.as_str().to_string());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(info)
}

enum Read {
    TooLarge,
    NotText(usize),
    Io(std::io::Error),
}

/// The file's text, if it is at most [`MAX_FILE_BYTES`] (checked while reading, so a file
/// that grows meanwhile is not read past the limit either).
fn read_bounded(path: &Path) -> Result<String, Read> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(Read::Io)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(Read::Io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Read::TooLarge);
    }
    String::from_utf8(bytes).map_err(|e| Read::NotText(e.utf8_error().valid_up_to()))
}

/// A file's text under the same bounds as a module's files (tfvars files of the artifact).
pub fn read_text(path: &Path) -> Result<String, String> {
    read_bounded(path).map_err(|e| match e {
        Read::TooLarge => format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
        Read::NotText(at) => format!("not UTF-8 text (byte {at})"),
        Read::Io(e) => e.to_string(),
    })
}

/// Names given but not declared, and required ones not given.
pub fn check_variables<'a>(info: &ModuleInfo, given: impl IntoIterator<Item = &'a str>) -> (Vec<String>, Vec<String>) {
    let given: Vec<&str> = given.into_iter().collect();
    let unknown = given.iter().filter(|g| !info.variables.contains_key(**g)).map(|s| s.to_string()).collect();
    let missing = info
        .variables
        .iter()
        .filter(|(name, decl)| decl.required && !given.contains(&name.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    (unknown, missing)
}

/// `missing` without the variables terraform reads from the environment (`TF_VAR_<name>`,
/// e.g. from a runner pod's `envFrom`): terraform has a value for those.
pub fn without_environment_values(missing: Vec<String>, is_set: impl Fn(&str) -> bool) -> Vec<String> {
    missing.into_iter().filter(|name| !is_set(&format!("TF_VAR_{name}"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_set_in_the_environment_is_not_missing() {
        let missing = vec!["greeting".to_string(), "region".to_string()];
        assert_eq!(without_environment_values(missing, |n| n == "TF_VAR_greeting"), vec!["region".to_string()]);
    }

    #[test]
    fn variables_and_backend_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.tf"),
            r#"
terraform {
  backend "s3" {}
}
variable "region" {}
variable "size" {
  default = 3
}
variable "token" {
  sensitive = true
}
"#,
        )
        .unwrap();
        let info = inspect(dir.path(), "infra").unwrap();
        assert_eq!(info.backend.as_deref(), Some("s3"));
        assert!(info.variables["token"].sensitive);
        let (unknown, missing) = check_variables(&info, ["region", "colour"]);
        assert_eq!(unknown, vec!["colour"]);
        assert_eq!(missing, vec!["token"]);
    }

    #[test]
    fn a_file_past_the_size_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("huge.tf")).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = inspect(dir.path(), "infra").unwrap_err().to_string();
        assert!(err.starts_with("infra/huge.tf is larger than 8 MiB"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_utf8_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.tf"), b"variable \"a\" {}\n\xff\xfe").unwrap();
        let err = inspect(dir.path(), "infra").unwrap_err().to_string();
        assert_eq!(err, "infra/main.tf is not UTF-8 text (byte 16); terraform reads only UTF-8");
    }

    /// Found by tests/fuzz_inputs.rs: hcl-rs refuses a number no f64 holds, which terraform
    /// (arbitrary precision) accepts. It stays a parse error naming the file, not a panic.
    #[test]
    fn a_number_beyond_f64_is_a_parse_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.tf"), "variable \"a\" {\n  default = [1e99999]\n}\n").unwrap();
        let err = inspect(dir.path(), "infra").unwrap_err().to_string();
        assert!(err.starts_with("infra/main.tf: invalid HCL"), "{err}");
    }

    #[test]
    fn invalid_hcl_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("broken.tf"), "resource \"x\" {").unwrap();
        let err = inspect(dir.path(), "infra").unwrap_err().to_string();
        assert!(err.starts_with("infra/broken.tf: invalid HCL"), "{err}");
    }
}
