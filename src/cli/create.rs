//! `create source git|bucket|oci|helm`, `create kustomization`, `create terraform` and
//! `create secret git|oci`: an object from flags, as `flux create` makes it (the same flag
//! names and defaults), stored through the one `apply` path (so it is validated as a file
//! would be), or printed as YAML with `--export` (which needs no store or cluster).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::{CliError, Result};
use crate::api::{GROUP, VERSION};

#[derive(Subcommand, Debug)]
pub enum CreateCommand {
    /// A source: `create source git|bucket|oci|helm NAME ...`.
    #[command(subcommand)]
    Source(SourceCommand),
    /// A Kustomization applying a path of a source.
    Kustomization(KustomizationArgs),
    /// A Terraform planning (and applying) a module of a source.
    Terraform(TerraformArgs),
    /// A Secret for a source: `create secret git|oci NAME ...`.
    #[command(subcommand)]
    Secret(SecretCommand),
}

#[derive(Subcommand, Debug)]
pub enum SourceCommand {
    /// A GitRepository.
    Git(GitArgs),
    /// A Bucket (S3-compatible).
    Bucket(BucketArgs),
    /// An OCIRepository.
    Oci(OciArgs),
    /// A HelmRepository (an `oci://` URL makes one of `type: oci`).
    Helm(HelmArgs),
}

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Credentials of a Git server: user and password, a bearer token, or an SSH key.
    Git(GitSecretArgs),
    /// Registry credentials as a `kubernetes.io/dockerconfigjson` Secret.
    Oci(OciSecretArgs),
}

/// What every `create` takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    pub name: String,
    /// Namespace (default: the kube context's namespace; `default` on a local store).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// Labels of the object, `key=value` (repeat the flag for more).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Print the object as YAML instead of creating it.
    #[arg(long)]
    pub export: bool,
}

#[derive(Args, Debug)]
pub struct GitArgs {
    #[command(flatten)]
    pub common: Common,
    /// The repository: https://, http://, ssh:// (or file:// on a local store).
    #[arg(long)]
    pub url: String,
    /// The branch to follow (Flux's default, master, when no ref flag is given).
    #[arg(long, conflicts_with_all = ["tag", "tag_semver", "commit"])]
    pub branch: Option<String>,
    #[arg(long, conflicts_with_all = ["tag_semver", "commit"])]
    pub tag: Option<String>,
    /// A semver range of tags.
    #[arg(long, conflicts_with = "commit")]
    pub tag_semver: Option<String>,
    /// A full commit SHA.
    #[arg(long)]
    pub commit: Option<String>,
    /// A Secret with the credentials (`create secret git`).
    #[arg(long)]
    pub secret_ref: Option<String>,
    /// gitignore-style patterns of paths left out (repeat for more).
    #[arg(long)]
    pub ignore_paths: Vec<String>,
    #[arg(long, default_value = "1m")]
    pub interval: String,
}

#[derive(Args, Debug)]
pub struct BucketArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub bucket_name: String,
    /// `host[:port]` of the S3-compatible server.
    #[arg(long)]
    pub endpoint: String,
    #[arg(long, default_value = "generic")]
    pub provider: String,
    #[arg(long)]
    pub region: Option<String>,
    /// Plain HTTP.
    #[arg(long)]
    pub insecure: bool,
    /// A Secret with `accesskey` and `secretkey`.
    #[arg(long)]
    pub secret_ref: Option<String>,
    #[arg(long)]
    pub ignore_paths: Vec<String>,
    #[arg(long, default_value = "1m")]
    pub interval: String,
}

#[derive(Args, Debug)]
pub struct OciArgs {
    #[command(flatten)]
    pub common: Common,
    /// `oci://host/repository`.
    #[arg(long)]
    pub url: String,
    #[arg(long, conflicts_with_all = ["tag_semver", "digest"], required_unless_present_any = ["tag_semver", "digest"])]
    pub tag: Option<String>,
    #[arg(long, conflicts_with = "digest")]
    pub tag_semver: Option<String>,
    #[arg(long)]
    pub digest: Option<String>,
    /// A `kubernetes.io/dockerconfigjson` Secret (`create secret oci`).
    #[arg(long)]
    pub secret_ref: Option<String>,
    /// Plain HTTP to the registry.
    #[arg(long)]
    pub insecure: bool,
    #[arg(long)]
    pub ignore_paths: Vec<String>,
    #[arg(long, default_value = "1m")]
    pub interval: String,
}

#[derive(Args, Debug)]
pub struct HelmArgs {
    #[command(flatten)]
    pub common: Common,
    /// `https://...` (an index.yaml) or `oci://host/path`.
    #[arg(long)]
    pub url: String,
    /// A Secret with `username` and `password`.
    #[arg(long)]
    pub secret_ref: Option<String>,
    /// Send the credentials to chart URLs on other hosts too.
    #[arg(long)]
    pub pass_credentials: bool,
    #[arg(long, default_value = "1m")]
    pub interval: String,
}

#[derive(Args, Debug)]
pub struct KustomizationArgs {
    #[command(flatten)]
    pub common: Common,
    /// `[Kind/]NAME[.NAMESPACE]` of the source; the kind defaults to GitRepository.
    #[arg(long)]
    pub source: String,
    /// The path in the source.
    #[arg(long, default_value = "./")]
    pub path: String,
    /// Delete what the source no longer holds.
    #[arg(long)]
    pub prune: bool,
    /// Wait for the applied objects to be ready.
    #[arg(long)]
    pub wait: bool,
    #[arg(long)]
    pub target_namespace: Option<String>,
    /// The ServiceAccount to apply as.
    #[arg(long)]
    pub service_account: Option<String>,
    /// `[NAMESPACE/]NAME` of a Kustomization to wait for (repeat for more).
    #[arg(long)]
    pub depends_on: Vec<String>,
    #[arg(long, default_value = "1m")]
    pub interval: String,
}

#[derive(Args, Debug)]
pub struct TerraformArgs {
    #[command(flatten)]
    pub common: Common,
    /// `[Kind/]NAME[.NAMESPACE]` of the source; the kind defaults to GitRepository.
    #[arg(long)]
    pub source: String,
    /// The module's path in the source.
    #[arg(long, default_value = "./")]
    pub path: String,
    /// `auto` applies every plan; without it every plan waits for `driftless approve`.
    #[arg(long)]
    pub approve_plan: Option<String>,
    /// `[NAMESPACE/]NAME` of a Terraform to wait for (repeat for more).
    #[arg(long)]
    pub depends_on: Vec<String>,
    #[arg(long, default_value = "1m")]
    pub interval: String,
}

#[derive(Args, Debug)]
pub struct GitSecretArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, requires = "password", conflicts_with_all = ["bearer_token", "private_key_file"])]
    pub username: Option<String>,
    #[arg(long, requires = "username")]
    pub password: Option<String>,
    #[arg(long, conflicts_with = "private_key_file")]
    pub bearer_token: Option<String>,
    /// An SSH private key (PEM or OpenSSH format); needs --known-hosts-file.
    #[arg(long, requires = "known_hosts_file")]
    pub private_key_file: Option<PathBuf>,
    /// The server's host keys, as `ssh-keyscan` prints them.
    #[arg(long)]
    pub known_hosts_file: Option<PathBuf>,
    /// A CA certificate (PEM) the https server's certificate is checked against.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct OciSecretArgs {
    #[command(flatten)]
    pub common: Common,
    /// The registry `host[:port]` (an `oci://` URL is taken too).
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub password: String,
}

impl CreateCommand {
    pub fn common(&self) -> &Common {
        match self {
            CreateCommand::Source(SourceCommand::Git(a)) => &a.common,
            CreateCommand::Source(SourceCommand::Bucket(a)) => &a.common,
            CreateCommand::Source(SourceCommand::Oci(a)) => &a.common,
            CreateCommand::Source(SourceCommand::Helm(a)) => &a.common,
            CreateCommand::Kustomization(a) => &a.common,
            CreateCommand::Terraform(a) => &a.common,
            CreateCommand::Secret(SecretCommand::Git(a)) => &a.common,
            CreateCommand::Secret(SecretCommand::Oci(a)) => &a.common,
        }
    }

    /// The object the command makes, in `namespace`. Pure but for reading key files.
    ///
    /// # Errors
    /// A usage error naming the flag: a label that is not `key=value`, a source that does
    /// not read, a file that cannot be read.
    pub fn object(&self, namespace: &str) -> Result<Value> {
        let common = self.common();
        let (kind, spec_or_data) = match self {
            CreateCommand::Source(SourceCommand::Git(a)) => ("GitRepository", git(a)),
            CreateCommand::Source(SourceCommand::Bucket(a)) => ("Bucket", bucket(a)),
            CreateCommand::Source(SourceCommand::Oci(a)) => ("OCIRepository", oci(a)),
            CreateCommand::Source(SourceCommand::Helm(a)) => ("HelmRepository", helm(a)),
            CreateCommand::Kustomization(a) => ("Kustomization", kustomization(a)?),
            CreateCommand::Terraform(a) => ("Terraform", terraform(a)?),
            CreateCommand::Secret(SecretCommand::Git(a)) => ("Secret", git_secret(a)?),
            CreateCommand::Secret(SecretCommand::Oci(a)) => ("Secret", oci_secret(a)),
        };
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(common.name));
        metadata.insert("namespace".into(), json!(namespace));
        let labels = labels(&common.labels)?;
        if !labels.is_empty() {
            metadata.insert("labels".into(), json!(labels));
        }
        let mut object = Map::new();
        let api_version = if kind == "Secret" { "v1".to_string() } else { format!("{GROUP}/{VERSION}") };
        object.insert("apiVersion".into(), json!(api_version));
        object.insert("kind".into(), json!(kind));
        object.insert("metadata".into(), Value::Object(metadata));
        match spec_or_data {
            Body::Spec(spec) => {
                object.insert("spec".into(), spec);
            }
            Body::Secret { type_, string_data } => {
                if let Some(t) = type_ {
                    object.insert("type".into(), json!(t));
                }
                object.insert("stringData".into(), json!(string_data));
            }
        }
        Ok(Value::Object(object))
    }
}

enum Body {
    Spec(Value),
    Secret { type_: Option<&'static str>, string_data: BTreeMap<String, String> },
}

fn labels(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| CliError::Usage(format!("--label {p:?}: write it as key=value")))
        })
        .collect()
}

/// Inserts `key: value` when the value is set.
fn put(spec: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        spec.insert(key.into(), v);
    }
}

fn secret_ref(name: &Option<String>) -> Option<Value> {
    name.as_ref().map(|n| json!({"name": n}))
}

fn ignore(paths: &[String]) -> Option<Value> {
    (!paths.is_empty()).then(|| json!(paths.join("\n")))
}

fn git(a: &GitArgs) -> Body {
    let reference = if let Some(c) = &a.commit {
        json!({"commit": c})
    } else if let Some(s) = &a.tag_semver {
        json!({"semver": s})
    } else if let Some(t) = &a.tag {
        json!({"tag": t})
    } else {
        json!({"branch": a.branch.clone().unwrap_or_else(|| "master".into())})
    };
    let mut spec = Map::new();
    spec.insert("url".into(), json!(a.url));
    spec.insert("ref".into(), reference);
    spec.insert("interval".into(), json!(a.interval));
    put(&mut spec, "secretRef", secret_ref(&a.secret_ref));
    put(&mut spec, "ignore", ignore(&a.ignore_paths));
    Body::Spec(Value::Object(spec))
}

fn bucket(a: &BucketArgs) -> Body {
    let mut spec = Map::new();
    spec.insert("bucketName".into(), json!(a.bucket_name));
    spec.insert("endpoint".into(), json!(a.endpoint));
    spec.insert("provider".into(), json!(a.provider));
    put(&mut spec, "region", a.region.as_ref().map(|r| json!(r)));
    if a.insecure {
        spec.insert("insecure".into(), json!(true));
    }
    spec.insert("interval".into(), json!(a.interval));
    put(&mut spec, "secretRef", secret_ref(&a.secret_ref));
    put(&mut spec, "ignore", ignore(&a.ignore_paths));
    Body::Spec(Value::Object(spec))
}

fn oci(a: &OciArgs) -> Body {
    let reference = if let Some(d) = &a.digest {
        json!({"digest": d})
    } else if let Some(s) = &a.tag_semver {
        json!({"semver": s})
    } else {
        json!({"tag": a.tag})
    };
    let mut spec = Map::new();
    spec.insert("url".into(), json!(a.url));
    spec.insert("ref".into(), reference);
    spec.insert("interval".into(), json!(a.interval));
    if a.insecure {
        spec.insert("insecure".into(), json!(true));
    }
    put(&mut spec, "secretRef", secret_ref(&a.secret_ref));
    put(&mut spec, "ignore", ignore(&a.ignore_paths));
    Body::Spec(Value::Object(spec))
}

fn helm(a: &HelmArgs) -> Body {
    let mut spec = Map::new();
    if a.url.starts_with("oci://") {
        spec.insert("type".into(), json!("oci"));
    }
    spec.insert("url".into(), json!(a.url));
    spec.insert("interval".into(), json!(a.interval));
    put(&mut spec, "secretRef", secret_ref(&a.secret_ref));
    if a.pass_credentials {
        spec.insert("passCredentials".into(), json!(true));
    }
    Body::Spec(Value::Object(spec))
}

/// `[Kind/]NAME[.NAMESPACE]` as `flux create --source` takes it.
fn source_ref(source: &str) -> Result<Value> {
    let (kind, rest) = match source.split_once('/') {
        Some((kind, rest)) => (kind, rest),
        None => ("GitRepository", source),
    };
    let kind = crate::api::Kind::from_user(kind).filter(|k| crate::api::Kind::TREE_SOURCES.contains(k)).ok_or_else(|| {
        CliError::Usage(format!(
            "--source {source:?}: {kind:?} is not a source kind; use {}",
            crate::api::Kind::list(&crate::api::Kind::TREE_SOURCES)
        ))
    })?;
    let (name, namespace) = match rest.split_once('.') {
        Some((name, ns)) => (name, Some(ns)),
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(CliError::Usage(format!("--source {source:?}: name the source, e.g. GitRepository/app")));
    }
    let mut reference = json!({"kind": kind.as_str(), "name": name});
    if let Some(ns) = namespace {
        reference["namespace"] = json!(ns);
    }
    Ok(reference)
}

fn depends_on(entries: &[String]) -> Option<Value> {
    let list: Vec<Value> = entries
        .iter()
        .map(|d| match d.split_once('/') {
            Some((ns, name)) => json!({"name": name, "namespace": ns}),
            None => json!({"name": d}),
        })
        .collect();
    (!list.is_empty()).then(|| json!(list))
}

fn kustomization(a: &KustomizationArgs) -> Result<Body> {
    let mut spec = Map::new();
    spec.insert("sourceRef".into(), source_ref(&a.source)?);
    spec.insert("path".into(), json!(a.path));
    spec.insert("prune".into(), json!(a.prune));
    spec.insert("interval".into(), json!(a.interval));
    if a.wait {
        spec.insert("wait".into(), json!(true));
    }
    put(&mut spec, "targetNamespace", a.target_namespace.as_ref().map(|n| json!(n)));
    put(&mut spec, "serviceAccountName", a.service_account.as_ref().map(|n| json!(n)));
    put(&mut spec, "dependsOn", depends_on(&a.depends_on));
    Ok(Body::Spec(Value::Object(spec)))
}

fn terraform(a: &TerraformArgs) -> Result<Body> {
    let mut spec = Map::new();
    spec.insert("sourceRef".into(), source_ref(&a.source)?);
    spec.insert("path".into(), json!(a.path));
    spec.insert("interval".into(), json!(a.interval));
    put(&mut spec, "approvePlan", a.approve_plan.as_ref().map(|n| json!(n)));
    put(&mut spec, "dependsOn", depends_on(&a.depends_on));
    Ok(Body::Spec(Value::Object(spec)))
}

fn read(flag: &str, path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| CliError::File { path: path.display().to_string(), reason: format!("{flag}: {e}") })
}

fn git_secret(a: &GitSecretArgs) -> Result<Body> {
    let mut data = BTreeMap::new();
    if let (Some(u), Some(p)) = (&a.username, &a.password) {
        data.insert("username".into(), u.clone());
        data.insert("password".into(), p.clone());
    }
    if let Some(t) = &a.bearer_token {
        data.insert("bearerToken".into(), t.clone());
    }
    if let Some(key) = &a.private_key_file {
        data.insert("identity".into(), read("--private-key-file", key)?);
    }
    if let Some(hosts) = &a.known_hosts_file {
        data.insert("known_hosts".into(), read("--known-hosts-file", hosts)?);
    }
    if let Some(ca) = &a.ca_file {
        data.insert("ca.crt".into(), read("--ca-file", ca)?);
    }
    if data.is_empty() {
        return Err(CliError::Usage(
            "create secret git: give --username and --password, --bearer-token, or --private-key-file with --known-hosts-file".into(),
        ));
    }
    Ok(Body::Secret { type_: None, string_data: data })
}

fn oci_secret(a: &OciSecretArgs) -> Body {
    use base64::Engine as _;
    let host = a.url.trim_start_matches("oci://").split('/').next().unwrap_or_default().to_string();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", a.username, a.password));
    let config = json!({"auths": {host: {"username": a.username, "password": a.password, "auth": auth}}});
    let data = BTreeMap::from([(".dockerconfigjson".to_string(), config.to_string())]);
    Body::Secret { type_: Some("kubernetes.io/dockerconfigjson"), string_data: data }
}

/// The YAML `--export` prints.
///
/// # Errors
/// Only if the object cannot be written as YAML.
pub fn to_yaml(object: &Value) -> Result<String> {
    serde_yaml::to_string(object).map(|y| format!("---\n{y}")).map_err(|e| CliError::Usage(format!("cannot print the object: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(subcommand)]
        create: CreateCommand,
    }

    fn object(args: &[&str]) -> Result<Value> {
        let mut all = vec!["create"];
        all.extend_from_slice(args);
        Wrapper::try_parse_from(all).map_err(|e| CliError::Usage(e.to_string()))?.create.object("team")
    }

    #[test]
    fn sources_take_flux_s_flags_and_defaults() {
        let git = object(&["source", "git", "app", "--url", "https://g/x", "--label", "tier=web"]).unwrap();
        assert_eq!(git["spec"], json!({"url": "https://g/x", "ref": {"branch": "master"}, "interval": "1m"}));
        assert_eq!(git["metadata"], json!({"name": "app", "namespace": "team", "labels": {"tier": "web"}}));
        let semver = object(&["source", "git", "app", "--url", "https://g/x", "--tag-semver", ">=1.0.0"]).unwrap();
        assert_eq!(semver["spec"]["ref"], json!({"semver": ">=1.0.0"}));
        let helm = object(&["source", "helm", "charts", "--url", "oci://r.example/charts"]).unwrap();
        assert_eq!(helm["spec"]["type"], "oci");
        assert!(object(&["source", "oci", "a", "--url", "oci://r/a"]).is_err(), "an OCI source needs a tag, semver or digest");
        assert!(object(&["source", "git", "a", "--url", "u", "--branch", "b", "--tag", "t"]).is_err());
    }

    #[test]
    fn sources_of_consumers_read_as_flux_writes_them() {
        let ks = object(&["kustomization", "app", "--source", "OCIRepository/app.flux-system", "--prune", "--depends-on", "infra/base"])
            .unwrap();
        assert_eq!(ks["spec"]["sourceRef"], json!({"kind": "OCIRepository", "name": "app", "namespace": "flux-system"}));
        assert_eq!(ks["spec"]["dependsOn"], json!([{"name": "base", "namespace": "infra"}]));
        assert_eq!(ks["spec"]["prune"], true);
        let tf = object(&["terraform", "net", "--source", "net", "--approve-plan", "auto"]).unwrap();
        assert_eq!(tf["spec"]["sourceRef"], json!({"kind": "GitRepository", "name": "net"}));
        let err = object(&["kustomization", "app", "--source", "HelmChart/x"]).unwrap_err().to_string();
        assert!(err.contains("HelmChart") && err.contains("OCIRepository"), "{err}");
        assert!(object(&["kustomization", "app", "--source", "x", "--label", "novalue"]).unwrap_err().to_string().contains("key=value"));
    }

    #[test]
    fn an_oci_secret_is_a_docker_config_for_the_registry_host() {
        let s = object(&["secret", "oci", "creds", "--url", "oci://r.example:5000/charts", "--username", "u", "--password", "p"]).unwrap();
        assert_eq!(s["type"], "kubernetes.io/dockerconfigjson");
        let config: Value = serde_json::from_str(s["stringData"][".dockerconfigjson"].as_str().unwrap()).unwrap();
        assert_eq!(config["auths"]["r.example:5000"]["auth"], "dTpw");
        assert!(object(&["secret", "git", "g"]).unwrap_err().to_string().contains("--username"));
    }
}
