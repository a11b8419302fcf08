//! `driftless build PATH [--substitute NAME=VALUE]...`: the manifests a Kustomization would
//! apply, built offline and printed as multi-document YAML, like `flux build` or
//! `kustomize build`. Needs no store and no cluster. SOPS-encrypted files are decrypted with
//! the keys of `--decryption-key-file` and `SOPS_AGE_KEY_FILE`, as a Kustomization's
//! `spec.decryption` would.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::kustomization::decrypt::{Decryptor, KeySource};
use crate::kustomize::{self as manifests, BuildError, SubstituteError};
use crate::sops::Keys;

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// A directory with a kustomization.yaml, or a plain directory of manifests.
    pub path: PathBuf,
    /// postBuild substitution: replace ${NAME} with VALUE (repeatable). Without any,
    /// no substitution runs, as with a Kustomization that has no postBuild.
    #[arg(long = "substitute", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub substitute: Vec<(String, String)>,
    /// A key that decrypts SOPS-encrypted files of the build: an age key file
    /// (`AGE-SECRET-KEY-1...` lines) or an armored OpenPGP private key (repeatable). The
    /// age key file `SOPS_AGE_KEY_FILE` names is used too.
    #[arg(long = "decryption-key-file", value_name = "FILE")]
    pub decryption_key_files: Vec<PathBuf>,
}

/// Why `build` failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildCommandError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Substitute(#[from] SubstituteError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("decryption key file {path}: {message}")]
    Key { path: String, message: String },
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} must be NAME=VALUE"))
}

/// Builds, substitutes when asked, and prints.
///
/// # Errors
/// The build or the substitution fails, or stdout cannot be written.
pub fn run(args: &BuildArgs) -> Result<(), BuildCommandError> {
    let keys = keys(args)?;
    let decryptor = Decryptor::new(keys, KeySource::Cli);
    let filter: std::sync::Arc<dyn manifests::ReadFilter> = decryptor.clone();
    let mut objects = manifests::build_filtered(Path::new("/"), &args.path, &[], Some(filter))?;
    if !args.substitute.is_empty() {
        let vars: BTreeMap<String, String> = args.substitute.iter().cloned().collect();
        objects = manifests::substitute(objects, &vars)?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(manifests::to_yaml_stream(&objects).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The keys of `--decryption-key-file` and `SOPS_AGE_KEY_FILE`; `None` when there are none
/// (an encrypted file then fails the build, naming these flags).
fn keys(args: &BuildArgs) -> Result<Option<Keys>, BuildCommandError> {
    let mut files = args.decryption_key_files.clone();
    if let Some(f) = std::env::var_os("SOPS_AGE_KEY_FILE").filter(|f| !f.is_empty()) {
        files.push(PathBuf::from(f));
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut keys = Keys::default();
    for f in &files {
        let shown = f.display().to_string();
        let bad = |message: String| BuildCommandError::Key { path: shown.clone(), message };
        let text = std::fs::read_to_string(f).map_err(|e| bad(e.to_string()))?;
        let added =
            if text.contains("-----BEGIN PGP PRIVATE KEY BLOCK-----") { keys.add_pgp(&shown, &text) } else { keys.add_age(&shown, &text) };
        added.map_err(|e| bad(e.to_string()))?;
    }
    Ok(Some(keys))
}
