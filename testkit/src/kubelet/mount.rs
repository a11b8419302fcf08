//! Volumes and environment for the fake kubelet: Secrets, ConfigMaps, downward API and
//! service-account tokens materialized as files in a per-pod temp dir, and container
//! environments resolved the way the kubelet resolves them.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, ObjectFieldSelector, Pod, Secret, ServiceAccount,
};
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt as _};

use super::expand::{expand, safe_join};

/// Why a pod's volumes or a container's environment could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A referenced object or key does not exist (yet): the kubelet keeps retrying, and
    /// reports `CreateContainerConfigError` (env) or stays `ContainerCreating` (volumes).
    #[error("{0}")]
    Missing(String),
    /// Writing the files failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The API refused a read.
    #[error("reading {what}: {source}")]
    Api {
        /// What was read.
        what: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

type Result<T, E = MountError> = std::result::Result<T, E>;

/// Reads (and caches, for one preparation pass) the Secrets and ConfigMaps a pod uses.
pub struct Objects {
    client: Client,
    namespace: String,
    secrets: HashMap<String, Option<Secret>>,
    config_maps: HashMap<String, Option<ConfigMap>>,
    /// The last service-account token requested for the pod, for its kubeconfig.
    pub token: Option<String>,
}

impl Objects {
    /// A cache for `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        Self { client, namespace: namespace.to_owned(), secrets: HashMap::new(), config_maps: HashMap::new(), token: None }
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let found = api.get_opt(name).await.map_err(|source| MountError::Api { what: format!("secret {name}"), source })?;
            self.secrets.insert(name.to_owned(), found);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }

    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            let found = api.get_opt(name).await.map_err(|source| MountError::Api { what: format!("configmap {name}"), source })?;
            self.config_maps.insert(name.to_owned(), found);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    /// A Secret's data as bytes.
    async fn secret_data(&mut self, name: &str, optional: bool) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        match self.secret(name).await? {
            Some(secret) => Ok(Some(secret.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect())),
            None if optional => Ok(None),
            None => Err(MountError::Missing(format!("secret \"{name}\" not found"))),
        }
    }

    /// A ConfigMap's data and binaryData as bytes.
    async fn config_map_data(&mut self, name: &str, optional: bool) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        match self.config_map(name).await? {
            Some(cm) => {
                let mut data: BTreeMap<String, Vec<u8>> =
                    cm.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                data.extend(cm.binary_data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                Ok(Some(data))
            }
            None if optional => Ok(None),
            None => Err(MountError::Missing(format!("configmap \"{name}\" not found"))),
        }
    }

    /// A fresh token for the pod's service account, bound to the pod.
    async fn service_account_token(&mut self, pod: &Pod, audience: Option<&str>, expiration: Option<i64>) -> Result<String> {
        let sa = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".to_owned());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace);
        // Built as JSON, not as k8s-openapi's TokenRequest: its fields differ between the
        // Kubernetes versions the workspace may select.
        let mut spec = serde_json::json!({
            "boundObjectRef": { "apiVersion": "v1", "kind": "Pod", "name": pod.name_any(), "uid": pod.uid() },
        });
        if let Some(audience) = audience {
            spec["audiences"] = serde_json::json!([audience]);
        }
        if let Some(expiration) = expiration {
            spec["expirationSeconds"] = expiration.into();
        }
        let request = serde_json::json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec });
        let answer: serde_json::Value =
            api.create_subresource("token", &sa, &PostParams::default(), &request).await.map_err(|source| match &source {
                kube::Error::Api(status) if status.code == 404 => MountError::Missing(format!("serviceaccount \"{sa}\" not found")),
                _ => MountError::Api { what: format!("token for serviceaccount {sa}"), source },
            })?;
        let token = answer["status"]["token"].as_str().unwrap_or_default().to_owned();
        self.token = Some(token.clone());
        Ok(token)
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: Option<i32>) -> Result<()> {
    let err = |source| MountError::Io { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(path, bytes).map_err(err)?;
    if let Some(mode) = mode.and_then(|m| u32::try_from(m).ok()) {
        // Keep files readable by the owner whatever the mode says: the process runs as us.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o400)).map_err(err)?;
    }
    Ok(())
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| MountError::Io { path: path.to_path_buf(), source })
}

/// Writes `data` into `dir`: every key, or only `items` (key -> path) when given.
fn write_keys(
    dir: &Path,
    what: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<()> {
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                match data.get(&item.key) {
                    Some(bytes) => write_file(&safe_join(dir, &item.path), bytes, item.mode.or(default_mode))?,
                    None if optional => {}
                    None => return Err(MountError::Missing(format!("key \"{}\" not found in {what}", item.key))),
                }
            }
        }
        _ => {
            for (key, bytes) in data {
                write_file(&safe_join(dir, key), bytes, default_mode)?;
            }
        }
    }
    Ok(())
}

/// The value of a downward-API field path (`metadata.name`, `metadata.labels['x']`, ...).
pub fn field_value(pod: &Pod, node_name: &str, field_path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<String> {
        let key = field_path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key).cloned()).unwrap_or_default())
    };
    let render = |map: Option<&BTreeMap<String, String>>| {
        map.map(|m| m.iter().map(|(k, v)| format!("{k}=\"{v}\"\n")).collect::<String>()).unwrap_or_default()
    };
    match field_path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "metadata.labels" => Some(render(meta.labels.as_ref())),
        "metadata.annotations" => Some(render(meta.annotations.as_ref())),
        "spec.nodeName" => Some(node_name.to_owned()),
        "spec.serviceAccountName" => {
            Some(pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into()))
        }
        "status.hostIP" | "status.podIP" | "status.hostIPs" | "status.podIPs" => Some("127.0.0.1".to_owned()),
        _ => keyed("metadata.labels['", meta.labels.as_ref()).or_else(|| keyed("metadata.annotations['", meta.annotations.as_ref())),
    }
}

fn field_ref_value(pod: &Pod, node: &str, field: &ObjectFieldSelector) -> Result<String> {
    field_value(pod, node, &field.field_path).ok_or_else(|| MountError::Missing(format!("unsupported fieldRef {:?}", field.field_path)))
}

fn write_downward(dir: &Path, pod: &Pod, node: &str, items: &[DownwardAPIVolumeFile], mode: Option<i32>) -> Result<()> {
    for item in items {
        let value = match &item.field_ref {
            Some(field) => field_ref_value(pod, node, field)?,
            // resourceFieldRef: no resource accounting here; report zero.
            None => "0".to_owned(),
        };
        write_file(&safe_join(dir, &item.path), value.as_bytes(), item.mode.or(mode))?;
    }
    Ok(())
}

/// Materializes every volume of `pod` under `volumes_dir/<name>` and returns the host
/// directory of each. `hostPath` volumes are the host path itself (this is a local
/// process); volume kinds with no meaning here (PVCs, CSI, ...) become empty dirs.
pub async fn materialize_volumes(objects: &mut Objects, pod: &Pod, node: &str, volumes_dir: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut dirs = HashMap::new();
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default();
    for volume in volumes {
        if let Some(host) = &volume.host_path {
            dirs.insert(volume.name.clone(), PathBuf::from(&host.path));
            continue;
        }
        let dir = safe_join(volumes_dir, &volume.name);
        create_dir(&dir)?;
        if let Some(src) = &volume.secret {
            let name = src.secret_name.clone().unwrap_or_default();
            let optional = src.optional.unwrap_or(false);
            if let Some(data) = objects.secret_data(&name, optional).await? {
                write_keys(&dir, &format!("secret \"{name}\""), &data, src.items.as_ref(), src.default_mode, optional)?;
            }
        } else if let Some(src) = &volume.config_map {
            let name = src.name.clone();
            let optional = src.optional.unwrap_or(false);
            if let Some(data) = objects.config_map_data(&name, optional).await? {
                write_keys(&dir, &format!("configmap \"{name}\""), &data, src.items.as_ref(), src.default_mode, optional)?;
            }
        } else if let Some(src) = &volume.downward_api {
            write_downward(&dir, pod, node, src.items.as_deref().unwrap_or_default(), src.default_mode)?;
        } else if let Some(src) = &volume.projected {
            for source in src.sources.as_deref().unwrap_or_default() {
                if let Some(s) = &source.secret {
                    let name = s.name.clone();
                    let optional = s.optional.unwrap_or(false);
                    if let Some(data) = objects.secret_data(&name, optional).await? {
                        write_keys(&dir, &format!("secret \"{name}\""), &data, s.items.as_ref(), src.default_mode, optional)?;
                    }
                }
                if let Some(s) = &source.config_map {
                    let name = s.name.clone();
                    let optional = s.optional.unwrap_or(false);
                    if let Some(data) = objects.config_map_data(&name, optional).await? {
                        write_keys(&dir, &format!("configmap \"{name}\""), &data, s.items.as_ref(), src.default_mode, optional)?;
                    }
                }
                if let Some(s) = &source.downward_api {
                    write_downward(&dir, pod, node, s.items.as_deref().unwrap_or_default(), src.default_mode)?;
                }
                if let Some(s) = &source.service_account_token {
                    let token = objects.service_account_token(pod, s.audience.as_deref(), s.expiration_seconds).await?;
                    write_file(&safe_join(&dir, &s.path), token.as_bytes(), src.default_mode)?;
                }
            }
        }
        // emptyDir and everything else: the empty directory.
        dirs.insert(volume.name.clone(), dir);
    }
    Ok(dirs)
}

/// The container's environment: `base` (PATH, HOME, service variables), then `envFrom`,
/// then `env` with `$(VAR)` references expanded against what came before, as the kubelet
/// does.
pub async fn container_env(
    objects: &mut Objects,
    pod: &Pod,
    node: &str,
    container: &Container,
    base: Vec<(String, String)>,
) -> Result<Vec<(String, String)>> {
    let mut order: Vec<String> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    let set = |order: &mut Vec<String>, vars: &mut HashMap<String, String>, k: String, v: String| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    for (k, v) in base {
        set(&mut order, &mut vars, k, v);
    }
    for from in container.env_from.as_deref().unwrap_or_default() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &from.secret_ref {
            objects.secret_data(&r.name, r.optional.unwrap_or(false)).await?
        } else if let Some(r) = &from.config_map_ref {
            objects.config_map_data(&r.name, r.optional.unwrap_or(false)).await?
        } else {
            None
        };
        for (k, v) in data.unwrap_or_default() {
            set(&mut order, &mut vars, format!("{prefix}{k}"), String::from_utf8_lossy(&v).into_owned());
        }
    }
    for env in container.env.as_deref().unwrap_or_default() {
        let value = if let Some(value) = &env.value {
            Some(expand(value, &vars))
        } else if let Some(from) = &env.value_from {
            if let Some(r) = &from.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                match objects.secret_data(&r.name, optional).await? {
                    Some(data) => match data.get(&r.key) {
                        Some(v) => Some(String::from_utf8_lossy(v).into_owned()),
                        None if optional => None,
                        None => {
                            return Err(MountError::Missing(format!(
                                "couldn't find key {} in Secret {}/{}",
                                r.key,
                                pod.namespace().unwrap_or_default(),
                                r.name
                            )));
                        }
                    },
                    None => None,
                }
            } else if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                match objects.config_map_data(&r.name, optional).await? {
                    Some(data) => match data.get(&r.key) {
                        Some(v) => Some(String::from_utf8_lossy(v).into_owned()),
                        None if optional => None,
                        None => {
                            return Err(MountError::Missing(format!(
                                "couldn't find key {} in ConfigMap {}/{}",
                                r.key,
                                pod.namespace().unwrap_or_default(),
                                r.name
                            )));
                        }
                    },
                    None => None,
                }
            } else if let Some(field) = &from.field_ref {
                Some(field_ref_value(pod, node, field)?)
            } else {
                // resourceFieldRef: no resource accounting in the fake kubelet.
                Some("0".to_owned())
            }
        } else {
            Some(String::new())
        };
        if let Some(value) = value {
            set(&mut order, &mut vars, env.name.clone(), value);
        }
    }
    Ok(order.into_iter().filter_map(|k| vars.remove(&k).map(|v| (k, v))).collect())
}
