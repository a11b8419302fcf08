//! `push artifact` and `pull artifact`, as `flux push artifact` and `flux pull artifact`:
//! a directory (or one file) goes to a registry as a gzipped tarball in Flux's media types
//! with its source and revision as annotations, and comes back unpacked. What either tool
//! pushes, the other pulls, and an OCIRepository of either reads it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::{CliError, Result};
use crate::source::oci::{self, Credentials, PushMetadata, Registry, Repository, media};

#[derive(clap::Subcommand, Debug)]
pub enum PushCommand {
    /// Push a directory (or a file) to oci://REPOSITORY:TAG as a Flux artifact.
    Artifact(PushArgs),
}

#[derive(clap::Subcommand, Debug)]
pub enum PullCommand {
    /// Pull oci://REPOSITORY:TAG (or @sha256:...) and unpack its layer into --output.
    Artifact(PullArgs),
}

/// How to reach the registry, as Flux's flags name it.
#[derive(clap::Args, Debug)]
pub struct RegistryArgs {
    /// `user:password` for the registry (Flux's `--creds`); also DRIFTLESS_OCI_CREDS.
    #[arg(long, env = "DRIFTLESS_OCI_CREDS", hide_env_values = true)]
    pub creds: Option<String>,
    /// Plain HTTP to the registry (Flux's `--insecure-registry`).
    #[arg(long)]
    pub insecure_registry: bool,
    /// A PEM file of CAs to trust besides the system's.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    #[arg(long, default_value = "2m", value_parser = super::parse_timeout)]
    pub timeout: Duration,
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// oci://HOST/REPOSITORY:TAG
    pub url: String,
    /// The directory (or file) to push.
    #[arg(long)]
    pub path: PathBuf,
    /// Where the content comes from, e.g. the Git URL (annotation org.opencontainers.image.source).
    #[arg(long)]
    pub source: String,
    /// Its revision, e.g. `main@sha1:<commit>` (annotation org.opencontainers.image.revision).
    #[arg(long)]
    pub revision: String,
    /// More annotations, `key=value`, repeatable.
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// gitignore-style patterns of paths left out, comma-separated, as Flux's `--ignore-paths`.
    #[arg(long, value_delimiter = ',')]
    pub ignore_paths: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// oci://HOST/REPOSITORY:TAG or oci://HOST/REPOSITORY@sha256:...
    pub url: String,
    /// The directory to unpack into (created when missing).
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// The layer to unpack, by media type; the first layer when unset.
    #[arg(long)]
    pub media_type: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

fn connect(repository: &Repository, args: &RegistryArgs) -> Result<Registry> {
    let credentials = match &args.creds {
        None => None,
        Some(pair) => Some(Credentials::parse_pair(pair).ok_or_else(|| usage("--creds: give user:password"))?),
    };
    let ca = match &args.ca_file {
        None => None,
        Some(path) => {
            Some(std::fs::read_to_string(path).map_err(|e| CliError::File { path: path.display().to_string(), reason: e.to_string() })?)
        }
    };
    let tls = crate::tls::client_config(crate::tls::TlsKeys { ca_cert: ca.as_deref(), ..Default::default() })
        .map_err(|e| usage(format!("--ca-file: {e}")))?;
    Ok(Registry::new(&repository.registry, args.insecure_registry, tls, credentials, args.timeout))
}

/// Pushes `args.path` and prints the pushed digest reference.
pub async fn push(args: &PushArgs) -> Result<()> {
    let (repository, reference) = oci::reference::split(&args.url).map_err(usage)?;
    let tag = match reference {
        Some(tag) if !tag.starts_with("sha256:") => tag,
        _ => return Err(usage(format!("{}: give the tag to push to, oci://HOST/REPOSITORY:TAG", args.url))),
    };
    let mut annotations = std::collections::BTreeMap::new();
    for pair in &args.annotations {
        let (k, v) = pair.split_once('=').ok_or_else(|| usage(format!("--annotations {pair:?}: give key=value")))?;
        annotations.insert(k.to_string(), v.to_string());
    }
    let layer = archive(&args.path, &args.ignore_paths)?;
    let registry = connect(&repository, &args.registry)?;
    let meta = PushMetadata { source: Some(args.source.clone()), revision: Some(args.revision.clone()), created: None, annotations };
    let digest = oci::push(&registry, &repository, &tag, layer, &meta).await.map_err(usage)?;
    eprintln!("pushed {}:{tag}", repository.url());
    println!("{}@{digest}", repository.url());
    Ok(())
}

/// The gzipped tarball of a directory (or of a directory holding one file), made with the
/// artifact store's deterministic writer: the same tree gives the same layer digest.
fn archive(path: &Path, ignore: &[String]) -> Result<Bytes> {
    let file_error = |e: &dyn std::fmt::Display| CliError::File { path: path.display().to_string(), reason: e.to_string() };
    let meta = std::fs::metadata(path).map_err(|e| file_error(&e))?;
    let staging = tempfile::tempdir().map_err(|e| file_error(&e))?;
    let dir = if meta.is_dir() {
        path.to_path_buf()
    } else {
        let name = path.file_name().ok_or_else(|| file_error(&"names no file"))?;
        std::fs::copy(path, staging.path().join(name)).map_err(|e| file_error(&e))?;
        staging.path().to_path_buf()
    };
    let store_dir = tempfile::tempdir().map_err(|e| file_error(&e))?;
    let store = crate::source::ArtifactStore::new(store_dir.path());
    let ignore = (!ignore.is_empty()).then(|| ignore.join("\n"));
    let stored = store.archive_dir("push", "cli", "artifact", &dir, ignore.as_deref()).map_err(|e| file_error(&e))?;
    let bytes = std::fs::read(store.local_path(&stored.path).map_err(|e| file_error(&e))?).map_err(|e| file_error(&e))?;
    Ok(Bytes::from(bytes))
}

/// Pulls the artifact and unpacks its layer into `args.output`.
pub async fn pull(args: &PullArgs) -> Result<()> {
    let (repository, reference) = oci::reference::split(&args.url).map_err(usage)?;
    let reference = reference.unwrap_or_else(|| oci::reference::DEFAULT_TAG.to_string());
    let registry = connect(&repository, &args.registry)?;
    let digest = registry.resolve(&repository, &reference).await.map_err(usage)?;
    let manifest = registry.manifest(&repository, &digest).await.map_err(usage)?;
    let layer = oci::select_layer(&manifest, &repository.url(), args.media_type.as_deref()).map_err(usage)?;
    if !layer.media_type.ends_with("tar+gzip") && layer.media_type != media::FLUX_CONTENT {
        eprintln!("warning: layer of media type {} is unpacked as a gzipped tarball", layer.media_type);
    }
    let work = tempfile::tempdir().map_err(|e| usage(format!("a temporary directory: {e}")))?;
    let blob = work.path().join("layer.tar.gz");
    registry.blob_to_file(&repository, &layer.digest, &blob, crate::source::artifact::DEFAULT_MAX_SIZE).await.map_err(usage)?;
    let file = std::fs::File::open(&blob).map_err(|e| usage(format!("{}: {e}", blob.display())))?;
    std::fs::create_dir_all(&args.output).map_err(|e| CliError::File { path: args.output.display().to_string(), reason: e.to_string() })?;
    crate::source::unpack_verified(std::io::BufReader::new(file), &layer.digest, &args.output).map_err(usage)?;
    let revision = manifest.annotations.get(oci::annotation::REVISION).map(|r| format!(" (revision {r})")).unwrap_or_default();
    eprintln!("pulled {}@{digest}{revision} into {}", repository.url(), args.output.display());
    Ok(())
}
