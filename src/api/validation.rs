//! Validation beyond the CRD schema: every error names the object, the field and the fix.

use std::fmt;

use super::ForceUnlockMode;
use super::{Bucket, DriftMode, GitRepository, HelmChart, HelmRepository, HelmRepositoryType, Kind, OciRepository, Terraform};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.sourceRef.kind`.
    pub field: String,
    pub reason: String,
}

/// All problems of one object, so a user fixes them in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// `Kind/namespace/name`.
    pub object: String,
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is invalid: ", self.object)?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.reason)?;
        }
        Ok(())
    }
}

pub trait Validate {
    fn validate(&self) -> Result<(), ValidationError>;
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.0.push(FieldError { field: field.to_string(), reason: reason.into() });
    }

    fn finish(self, kind: &str, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Result<(), ValidationError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let object = format!("{kind}/{}/{}", meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or("<unnamed>"));
        Err(ValidationError { object, errors: self.0 })
    }

    /// A duration the spec holds: at most a year (larger ones would be a timer that never
    /// comes, or overflow a clock), and positive when it is an interval.
    fn duration(&mut self, field: &str, value: Option<&super::Duration>, interval: bool) {
        let Some(d) = value else { return };
        if let Err(why) = d.within_bounds() {
            self.add(field, why);
        } else if interval && d.as_std().is_zero() {
            self.add(field, "must be greater than zero");
        }
    }

    fn check_name(&mut self, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
        match meta.name.as_deref() {
            None | Some("") => self.add("metadata.name", "required"),
            Some(n) if !is_dns_label(n) => {
                self.add("metadata.name", format!("{n:?} must be lowercase letters, digits and '-', at most 63 characters"))
            }
            _ => {}
        }
        if let Some(ns) = meta.namespace.as_deref()
            && !is_dns_label(ns)
        {
            self.add("metadata.namespace", format!("{ns:?} must be lowercase letters, digits and '-'"));
        }
    }
}

/// RFC 1123 label: what Kubernetes accepts as a namespace or most object names.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A Kubernetes object name (RFC 1123 subdomain), as for Secret names.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A relative path that stays where it starts: no leading `/`, no `..`, not empty.
fn is_inner_path(path: &str) -> bool {
    let trimmed = path.trim_start_matches("./");
    !trimmed.is_empty() && !path.starts_with('/') && !path.split('/').any(|p| p == "..")
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether a GitRepository's ref checks out a tag, by Flux's precedence (commit, name,
/// semver, tag, branch).
fn names_a_tag(reference: Option<&super::GitRepositoryRef>) -> bool {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
    let Some(r) = reference else { return false };
    if set(&r.commit) {
        return false;
    }
    if set(&r.name) {
        return r.name.as_deref().is_some_and(|n| n.trim().starts_with("refs/tags/"));
    }
    set(&r.semver) || set(&r.tag)
}

impl Validate for GitRepository {
    fn validate(&self) -> Result<(), ValidationError> {
        let mut e = Errors::default();
        e.check_name(&self.metadata);
        let url = self.spec.url.as_str();
        let scheme_ok = ["file://", "http://", "https://", "ssh://"].iter().any(|s| url.starts_with(s));
        if !scheme_ok {
            e.add("spec.url", format!("{url:?} must start with file://, http://, https:// or ssh://"));
        }
        if let Some(r) = &self.spec.reference {
            if let Some(c) = &r.commit
                && (c.len() != 40 || !c.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                e.add("spec.ref.commit", format!("{c:?} must be a full 40-character commit SHA"));
            }
            if let Some(range) = &r.semver
                && let Err(err) = semver::VersionReq::parse(range)
            {
                e.add("spec.ref.semver", format!("{range:?} is not a semver range: {err}"));
            }
            for (field, value) in [("spec.ref.branch", &r.branch), ("spec.ref.tag", &r.tag)] {
                if value.as_deref().is_some_and(|v| v.trim().is_empty() || v.contains("..")) {
                    e.add(field, "must be a non-empty ref name without '..'");
                }
            }
        }
        if let Some(patterns) = &self.spec.ignore {
            let mut builder = ignore::gitignore::GitignoreBuilder::new("/");
            for (i, line) in patterns.lines().enumerate() {
                if let Err(err) = builder.add_line(None, line) {
                    e.add("spec.ignore", format!("line {}: {err}", i + 1));
                }
            }
        }
        if self.spec.proxy_secret_ref.is_some() && !(url.starts_with("http://") || url.starts_with("https://")) {
            e.add("spec.proxySecretRef", "a proxy is used for http(s) URLs only; remove it or use an http(s) URL");
        }
        for (i, include) in self.spec.include.iter().enumerate() {
            if include.repository.name.trim().is_empty() {
                e.add(&format!("spec.include[{i}].repository.name"), "must name a GitRepository of this namespace");
            }
            if include.repository.name == self.metadata.name.as_deref().unwrap_or_default() {
                e.add(&format!("spec.include[{i}].repository.name"), "a GitRepository cannot include itself");
            }
            for (field, path) in [("fromPath", include.from_path.as_deref()), ("toPath", include.to_path.as_deref())] {
                if let Some(path) = path
                    && (path.starts_with('/') || path.split('/').any(|p| p == ".."))
                {
                    e.add(
                        &format!("spec.include[{i}].{field}"),
                        format!("{path:?} must be a path relative to the artifact's root, without '..'"),
                    );
                }
            }
        }
        if let Some(verify) = &self.spec.verification {
            if !is_dns_subdomain(&verify.secret_ref.name) {
                e.add("spec.verify.secretRef.name", "must name a Secret of this namespace holding the OpenPGP public keys");
            }
            if verify.mode.verifies_tag() && !names_a_tag(self.spec.reference.as_ref()) {
                e.add(
                    "spec.verify.mode",
                    format!(
                        "{} verifies a signed tag object, and spec.ref names no tag; set ref.tag, ref.semver or ref.name (refs/tags/...), or use mode HEAD",
                        verify.mode
                    ),
                );
            }
        }
        e.duration("spec.interval", Some(&self.spec.interval), true);
        e.duration("spec.timeout", self.spec.timeout.as_ref(), false);
        e.finish("GitRepository", &self.metadata)
    }
}

/// An S3 endpoint: `host[:port]`, or a URL whose scheme is http(s). Plain HTTP only when
/// the object says it accepts it.
fn check_endpoint(e: &mut Errors, field: &str, endpoint: &str, allow_http: bool, how_to_allow: &str) {
    let (scheme, rest) = match endpoint.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, endpoint),
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
        e.add(field, format!("{endpoint:?} must be host[:port] or an http(s) URL without credentials"));
    }
    match scheme {
        None | Some("https") => {}
        Some("http") if allow_http => {}
        Some("http") => e.add(field, format!("{endpoint:?} is plain HTTP; {how_to_allow}")),
        Some(other) => e.add(field, format!("scheme {other:?} is not http or https")),
    }
}

fn check_bucket_name(e: &mut Errors, field: &str, name: &str) {
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        e.add(field, format!("{name:?} is not an S3 bucket name (3-63 lowercase letters, digits, '-' and '.')"));
    }
}

impl Validate for Bucket {
    fn validate(&self) -> Result<(), ValidationError> {
        let mut e = Errors::default();
        e.check_name(&self.metadata);
        let spec = &self.spec;
        if spec.provider != "generic" {
            e.add("spec.provider", format!("{:?} is not supported yet; use \"generic\" (static or ambient credentials)", spec.provider));
        }
        check_bucket_name(&mut e, "spec.bucketName", &spec.bucket_name);
        check_endpoint(&mut e, "spec.endpoint", &spec.endpoint, spec.insecure, "set spec.insecure: true to allow it");
        if let Some(r) = &spec.secret_ref
            && !is_dns_subdomain(&r.name)
        {
            e.add("spec.secretRef.name", format!("{:?} is not a Secret name", r.name));
        }
        if let Some(patterns) = &spec.ignore {
            let mut builder = ignore::gitignore::GitignoreBuilder::new("/");
            for (i, line) in patterns.lines().enumerate() {
                if let Err(err) = builder.add_line(None, line) {
                    e.add("spec.ignore", format!("line {}: {err}", i + 1));
                }
            }
        }
        e.duration("spec.interval", Some(&spec.interval), true);
        e.duration("spec.timeout", spec.timeout.as_ref(), false);
        e.finish("Bucket", &self.metadata)
    }
}

impl Validate for OciRepository {
    fn validate(&self) -> Result<(), ValidationError> {
        let mut e = Errors::default();
        e.check_name(&self.metadata);
        let spec = &self.spec;
        if let Err(err) = crate::source::oci::Repository::parse(&spec.url) {
            e.add("spec.url", err.to_string());
        }
        if let Err(err) = crate::source::oci::Selector::from_spec(spec.reference.as_ref()) {
            e.add("spec.ref", err.to_string());
        }
        if spec.provider != "generic" {
            e.add(
                "spec.provider",
                format!("{:?} (cloud workload identity) is not supported yet; use \"generic\" with spec.secretRef", spec.provider),
            );
        }
        for (field, reference) in [("spec.secretRef.name", &spec.secret_ref), ("spec.certSecretRef.name", &spec.cert_secret_ref)] {
            if let Some(r) = reference
                && !is_dns_subdomain(&r.name)
            {
                e.add(field, format!("{:?} is not a Secret name", r.name));
            }
        }
        if spec.insecure && spec.cert_secret_ref.is_some() {
            e.add("spec.certSecretRef", "TLS keys with spec.insecure (plain HTTP) would never be used; remove one of them".to_string());
        }
        if let Some(patterns) = &spec.ignore {
            let mut builder = ignore::gitignore::GitignoreBuilder::new("/");
            for (i, line) in patterns.lines().enumerate() {
                if let Err(err) = builder.add_line(None, line) {
                    e.add("spec.ignore", format!("line {}: {err}", i + 1));
                }
            }
        }
        e.duration("spec.interval", Some(&spec.interval), true);
        e.duration("spec.timeout", spec.timeout.as_ref(), false);
        e.finish("OCIRepository", &self.metadata)
    }
}

impl Validate for HelmRepository {
    fn validate(&self) -> Result<(), ValidationError> {
        let mut e = Errors::default();
        e.check_name(&self.metadata);
        let spec = &self.spec;
        let url = spec.url.as_str();
        match spec.repository_type {
            HelmRepositoryType::Default if url.starts_with("oci://") => {
                e.add("spec.url", "an oci:// URL is an OCI registry: set spec.type: oci".to_string());
            }
            HelmRepositoryType::Default if !(url.starts_with("http://") || url.starts_with("https://")) => {
                e.add("spec.url", format!("{url:?} must start with http:// or https:// (or oci:// with spec.type: oci)"));
            }
            HelmRepositoryType::Oci => {
                if let Err(err) = crate::source::oci::Repository::parse(url) {
                    e.add("spec.url", err.to_string());
                }
                if spec.pass_credentials {
                    e.add(
                        "spec.passCredentials",
                        "applies to HTTP repositories only (an OCI registry has no chart URLs on other hosts)".to_string(),
                    );
                }
            }
            HelmRepositoryType::Default => {
                if spec.insecure {
                    e.add(
                        "spec.insecure",
                        "applies to spec.type: oci only; an HTTP repository is plain HTTP when its URL is http://".to_string(),
                    );
                }
            }
        }
        if spec.provider != "generic" {
            e.add(
                "spec.provider",
                format!("{:?} (cloud workload identity) is not supported yet; use \"generic\" with spec.secretRef", spec.provider),
            );
        }
        for (field, reference) in [("spec.secretRef.name", &spec.secret_ref), ("spec.certSecretRef.name", &spec.cert_secret_ref)] {
            if let Some(r) = reference
                && !is_dns_subdomain(&r.name)
            {
                e.add(field, format!("{:?} is not a Secret name", r.name));
            }
        }
        if spec.insecure && spec.cert_secret_ref.is_some() {
            e.add("spec.certSecretRef", "TLS keys with spec.insecure (plain HTTP) would never be used; remove one of them".to_string());
        }
        e.duration("spec.interval", spec.interval.as_ref(), true);
        e.duration("spec.timeout", spec.timeout.as_ref(), false);
        e.finish("HelmRepository", &self.metadata)
    }
}

impl Validate for HelmChart {
    fn validate(&self) -> Result<(), ValidationError> {
        let mut e = Errors::default();
        e.check_name(&self.metadata);
        let spec = &self.spec;
        let source = &spec.source_ref;
        let kind = Kind::from_api(&source.kind).filter(|k| Kind::CHART_SOURCES.contains(k));
        match kind {
            None => e.add("spec.sourceRef.kind", format!("{:?} cannot hold charts; use {}", source.kind, Kind::list(&Kind::CHART_SOURCES))),
            Some(Kind::HelmRepository) => {
                // Flux's pattern of a chart name in a repository.
                let ok = !spec.chart.is_empty()
                    && spec.chart.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'/' | b'.' | b'_'))
                    && !spec.chart.contains("..");
                if !ok {
                    e.add("spec.chart", format!("{:?} is not a chart name in a repository (lowercase letters, digits and -)", spec.chart));
                }
                let exact = semver::Version::parse(spec.version.trim_start_matches('v')).is_ok();
                if !exact
                    && spec.version != "*"
                    && !spec.version.is_empty()
                    && let Err(err) = crate::source::semver::Range::parse(&spec.version)
                {
                    e.add("spec.version", err.to_string());
                }
            }
            Some(_) => {
                if !is_inner_path(&spec.chart) {
                    e.add("spec.chart", format!("{:?} must be a relative path to the chart in the source, without ..", spec.chart));
                }
            }
        }
        if !is_dns_subdomain(&source.name) {
            e.add("spec.sourceRef.name", "must name the source object");
        }
        if source.namespace.is_some() {
            e.add("spec.sourceRef.namespace", "a HelmChart reads sources of its own namespace only (as in Flux); remove it".to_string());
        }
        for (i, file) in spec.values_files.iter().enumerate() {
            if !is_inner_path(file) {
                e.add(&format!("spec.valuesFiles[{i}]"), format!("{file:?} must be a relative path without .."));
            }
        }
        e.duration("spec.interval", Some(&spec.interval), true);
        e.finish("HelmChart", &self.metadata)
    }
}

impl Validate for Terraform {
    fn validate(&self) -> Result<(), ValidationError> {
        let mut e = Errors::default();
        e.check_name(&self.metadata);
        let spec = &self.spec;
        if !Kind::from_api(&spec.source_ref.kind).is_some_and(|k| Kind::TREE_SOURCES.contains(&k)) {
            e.add(
                "spec.sourceRef.kind",
                format!("{:?} is not a source kind; use {}", spec.source_ref.kind, Kind::list(&Kind::TREE_SOURCES)),
            );
        }
        if !is_dns_subdomain(&spec.source_ref.name) {
            e.add("spec.sourceRef.name", "must name the source object");
        }
        if spec.path.starts_with('/') || spec.path.split('/').any(|p| p == "..") {
            e.add("spec.path", format!("{:?} must be a relative path inside the source", spec.path));
        }
        match spec.approve_plan.as_deref().map(str::trim) {
            Some("disable") if spec.destroy || spec.force => e.add(
                "spec.approvePlan",
                "\"disable\" only checks for drift and never applies: it cannot go with spec.destroy or spec.force",
            ),
            Some("disable") => {}
            Some(approve) if !(approve.is_empty() || approve == "auto" || approve.starts_with("plan-")) => {
                e.add("spec.approvePlan", format!("{approve:?} must be \"auto\", a plan id (plan-...) or its start, or empty"))
            }
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, v) in spec.vars.iter().enumerate() {
            if !is_identifier(&v.name) {
                e.add(&format!("spec.vars[{i}].name"), format!("{:?} is not a Terraform variable name", v.name));
            } else if !seen.insert(v.name.as_str()) || (v.name == "values" && spec.values.is_some()) {
                e.add(&format!("spec.vars[{i}].name"), format!("{:?} is set twice", v.name));
            }
            match (&v.value, &v.value_from) {
                (Some(_), Some(_)) => e.add(&format!("spec.vars[{i}]"), "set either value or valueFrom, not both"),
                (None, None) => e.add(&format!("spec.vars[{i}]"), "set value or valueFrom"),
                (None, Some(from)) => match (&from.secret_key_ref, &from.config_map_key_ref) {
                    (Some(r), None) | (None, Some(r)) => {
                        let which = if from.secret_key_ref.is_some() { "secretKeyRef" } else { "configMapKeyRef" };
                        if !is_dns_subdomain(&r.name) {
                            e.add(&format!("spec.vars[{i}].valueFrom.{which}.name"), format!("{:?} is not an object name", r.name));
                        }
                        if r.key.is_empty() {
                            e.add(&format!("spec.vars[{i}].valueFrom.{which}.key"), "must name a key");
                        }
                    }
                    _ => e.add(&format!("spec.vars[{i}].valueFrom"), "set exactly one of secretKeyRef and configMapKeyRef"),
                },
                (Some(_), None) => {}
            }
        }
        if let Some(values) = &spec.values
            && !values.is_object()
        {
            e.add("spec.values", "must be an object (it becomes the variable \"values\")");
        }
        for (i, t) in spec.targets.iter().enumerate() {
            if t.trim().is_empty() || t.starts_with('-') {
                e.add(&format!("spec.targets[{i}]"), format!("{t:?} is not a resource address"));
            }
        }
        if let Some(pod) = spec.runner_pod_template.as_ref().and_then(|t| t.spec.as_ref()) {
            e.0.extend(super::runner_pod::check(pod));
        }
        if let Some(tfstate) = &spec.tfstate {
            let id = tfstate.lock_identifier.as_deref().map(str::trim).unwrap_or_default();
            match tfstate.force_unlock.unwrap_or_default() {
                ForceUnlockMode::Yes if id.is_empty() => e.add(
                    "spec.tfstate.lockIdentifier",
                    "forceUnlock: yes breaks the lock with this id; set it to the id in status.lock.id (or use forceUnlock: auto)",
                ),
                ForceUnlockMode::Yes | ForceUnlockMode::Auto
                    if spec.backend_config.as_ref().is_some_and(|b| b.custom_configuration.is_some()) =>
                {
                    e.add(
                        "spec.tfstate.forceUnlock",
                        "the module's own backend (spec.backendConfig.customConfiguration) keeps its locks where driftless cannot break them; use terraform force-unlock there",
                    )
                }
                _ => {}
            }
        }
        if spec.parallelism < 0 {
            e.add("spec.parallelism", "must be 0 (terraform's default) or more");
        }
        if spec.disable_drift_detection
            && let Some(mode) = spec.drift.as_ref().and_then(|d| d.mode).filter(|m| *m != DriftMode::Disabled)
        {
            let mode = if mode == DriftMode::Correct { "correct" } else { "detect" };
            e.add("spec.disableDriftDetection", format!("contradicts spec.drift.mode: {mode}; set one of them"));
        }
        for (i, r) in spec.vars_from.iter().enumerate() {
            if !matches!(r.kind.as_str(), "Secret" | "ConfigMap") {
                e.add(&format!("spec.varsFrom[{i}].kind"), format!("{:?} must be Secret or ConfigMap", r.kind));
            }
            if !is_dns_subdomain(&r.name) {
                e.add(&format!("spec.varsFrom[{i}].name"), format!("{:?} is not an object name", r.name));
            }
        }
        for (i, path) in spec.tf_vars_files.iter().enumerate() {
            if !is_inner_path(path) {
                e.add(&format!("spec.tfVarsFiles[{i}]"), format!("{path:?} must be a relative path of a file inside the source"));
            }
        }
        for (i, m) in spec.file_mappings.iter().enumerate() {
            if !is_dns_subdomain(&m.secret_ref.name) {
                e.add(&format!("spec.fileMappings[{i}].secretRef.name"), format!("{:?} is not a Secret name", m.secret_ref.name));
            }
            if m.secret_ref.key.is_empty() {
                e.add(&format!("spec.fileMappings[{i}].secretRef.key"), "must name a key of the Secret");
            }
            if !is_inner_path(&m.path) {
                e.add(
                    &format!("spec.fileMappings[{i}].path"),
                    format!("{:?} must be a relative path that stays inside its location", m.path),
                );
            }
        }
        let mut aliases = std::collections::BTreeSet::new();
        for (i, r) in spec.read_inputs_from_secrets.iter().enumerate() {
            if !is_dns_subdomain(&r.name) {
                e.add(&format!("spec.readInputsFromSecrets[{i}].name"), format!("{:?} is not a Secret name", r.name));
            }
            // What a `${{ .as.key }}` reference can name: no '-', which Go's templates read as
            // a minus.
            if !is_identifier(&r.alias) || r.alias.contains('-') {
                e.add(
                    &format!("spec.readInputsFromSecrets[{i}].as"),
                    format!("{:?} must be a name of letters, digits and '_' such as vpc_outputs", r.alias),
                );
            } else if !aliases.insert(r.alias.as_str()) {
                e.add(&format!("spec.readInputsFromSecrets[{i}].as"), format!("{:?} is used twice", r.alias));
            }
        }
        for (i, r) in spec.backend_configs_from.iter().enumerate() {
            if !matches!(r.kind.as_str(), "Secret" | "ConfigMap") {
                e.add(&format!("spec.backendConfigsFrom[{i}].kind"), format!("{:?} must be Secret or ConfigMap", r.kind));
            }
            if !is_dns_subdomain(&r.name) {
                e.add(&format!("spec.backendConfigsFrom[{i}].name"), format!("{:?} is not an object name", r.name));
            }
        }
        if let Some(r) = &spec.cli_config_secret_ref
            && !is_dns_subdomain(&r.name)
        {
            e.add("spec.cliConfigSecretRef.name", format!("{:?} is not a Secret name", r.name));
        }
        if let Some(b) = &spec.backend_config
            && b.disable
        {
            if b.custom_configuration.is_some() || b.s3.is_some() {
                e.add(
                    "spec.backendConfig.disable",
                    "writes no backend at all: it cannot go with customConfiguration or s3; set one of them",
                );
            }
            if !b.labels.is_empty() || b.secret_suffix.is_some() {
                e.add(
                    "spec.backendConfig.disable",
                    "writes no backend at all: secretSuffix and labels of the state Secret mean nothing with it",
                );
            }
        }
        if spec.workspace.is_empty() || !spec.workspace.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            e.add("spec.workspace", format!("{:?} must be letters, digits, '-', '_' or '.'", spec.workspace));
        }
        for (i, d) in spec.depends_on.iter().enumerate() {
            let kind = d.kind.as_deref().unwrap_or("Terraform");
            if !matches!(kind, "Terraform" | "Kustomization") {
                e.add(&format!("spec.dependsOn[{i}].kind"), format!("{kind:?} must be Terraform or Kustomization"));
            }
            let same_ns = d.namespace.as_deref().unwrap_or(self.metadata.namespace.as_deref().unwrap_or("default"))
                == self.metadata.namespace.as_deref().unwrap_or("default");
            if kind == "Terraform" && same_ns && Some(d.name.as_str()) == self.metadata.name.as_deref() {
                e.add(&format!("spec.dependsOn[{i}]"), "an object cannot depend on itself");
            }
        }
        if let Some(w) = &spec.write_outputs_to_secret
            && !is_dns_subdomain(&w.name)
        {
            e.add("spec.writeOutputsToSecret.name", format!("{:?} is not a Secret name", w.name));
        }
        if let Some(custom) = spec.backend_config.as_ref().and_then(|b| b.custom_configuration.as_deref())
            && let Err(err) = hcl::parse(custom)
        {
            e.add("spec.backendConfig.customConfiguration", format!("not valid HCL: {err}"));
        }
        if let Some(s3) = spec.backend_config.as_ref().and_then(|b| b.s3.as_ref()) {
            check_bucket_name(&mut e, "spec.backendConfig.s3.bucket", &s3.bucket);
            if let Some(endpoint) = &s3.endpoint {
                // An explicit http:// URL is the user's choice (a server on the same host or
                // network); a bare host gets https.
                check_endpoint(&mut e, "spec.backendConfig.s3.endpoint", endpoint, true, "");
            }
            if let Some(r) = &s3.secret_ref
                && !is_dns_subdomain(&r.name)
            {
                e.add("spec.backendConfig.s3.secretRef.name", format!("{:?} is not a Secret name", r.name));
            }
            if spec.backend_config.as_ref().is_some_and(|b| b.custom_configuration.is_some()) {
                e.add("spec.backendConfig", "set either s3 or customConfiguration, not both");
            }
        }
        if let Some(drift) = &spec.drift
            && drift.mode != Some(DriftMode::Disabled)
        {
            for (i, rule) in drift.ignore.iter().enumerate() {
                if let Err(err) = globset::Glob::new(&rule.address) {
                    e.add(&format!("spec.drift.ignore[{i}].address"), format!("not a glob: {err}"));
                }
            }
        }
        for (i, check) in spec.health_checks.iter().enumerate() {
            check_health_check(&mut e, &format!("spec.healthChecks[{i}]"), check, spec.write_outputs_to_secret.is_some());
        }
        e.duration("spec.interval", Some(&spec.interval), true);
        e.duration("spec.retryInterval", spec.retry_interval.as_ref(), true);
        e.duration("spec.drift.interval", spec.drift.as_ref().and_then(|d| d.interval.as_ref()), true);
        e.finish("Terraform", &self.metadata)
    }
}

/// One of a Terraform's `spec.healthChecks`: a name, the target its type reads (and not the
/// other's), outputs named as tofu-controller names them (`${{ .name }}`, from the Secret of
/// `spec.writeOutputsToSecret`), and a target without outputs well formed already.
fn check_health_check(e: &mut Errors, at: &str, check: &super::HealthCheck, writes_outputs: bool) {
    if check.name.trim().is_empty() || check.name.len() > 253 {
        e.add(&format!("{at}.name"), "must name the check (1 to 253 characters)");
    }
    let kind = check.type_.as_str();
    let (field, target) = check.target();
    let other = match check.type_ {
        super::HealthCheckType::Http => ("address", check.address.as_deref()),
        super::HealthCheckType::Tcp => ("url", check.url.as_deref()),
    };
    if other.1.is_some_and(|t| !t.is_empty()) {
        e.add(&format!("{at}.{}", other.0), format!("type {kind} reads {field}, not {}: remove it", other.0));
    }
    match target.filter(|t| !t.trim().is_empty()) {
        None => e.add(&format!("{at}.{field}"), format!("required when type is {kind}")),
        Some(text) if super::bare_go_action(text).is_some() => e.add(
            &format!("{at}.{field}"),
            format!("{text:?}: name outputs as ${{{{ .name }}}}, as tofu-controller's health checks do; {{{{ .name }}}} without the $ is taken as text there"),
        ),
        Some(text) if text.contains("${{") => {
            if !writes_outputs {
                e.add(
                    &format!("{at}.{field}"),
                    "names outputs, which health checks read from the Secret of spec.writeOutputsToSecret (as tofu-controller's do): set spec.writeOutputsToSecret",
                );
            }
        }
        Some(text) => {
            if let Err(why) = check.type_.parse_target(text) {
                e.add(&format!("{at}.{field}"), why);
            }
        }
    }
    e.duration(&format!("{at}.timeout"), check.timeout.as_ref(), true);
}

impl Validate for super::Kustomization {
    fn validate(&self) -> Result<(), ValidationError> {
        let mut e = Errors::default();
        e.check_name(&self.metadata);
        let spec = &self.spec;
        if !Kind::from_api(&spec.source_ref.kind).is_some_and(|k| Kind::TREE_SOURCES.contains(&k)) {
            e.add(
                "spec.sourceRef.kind",
                format!("{:?} is not a source kind; use {}", spec.source_ref.kind, Kind::list(&Kind::TREE_SOURCES)),
            );
        }
        if !is_dns_subdomain(&spec.source_ref.name) {
            e.add("spec.sourceRef.name", "must name the source object");
        }
        if let Some(path) = &spec.path
            && (path.starts_with('/') || path.split('/').any(|p| p == ".."))
        {
            e.add("spec.path", format!("{path:?} must be a relative path inside the source"));
        }
        if let Some(approve) = spec.approve_plan.as_deref()
            && !(approve.is_empty() || approve == "auto" || approve.starts_with("plan-"))
        {
            e.add("spec.approvePlan", format!("{approve:?} must be \"auto\", a plan id (plan-...), or empty"));
        }
        if let Some(ns) = &spec.target_namespace
            && !is_dns_label(ns)
        {
            e.add("spec.targetNamespace", format!("{ns:?} is not a namespace name"));
        }
        for (i, d) in spec.depends_on.iter().enumerate() {
            let kind = d.kind.as_deref().unwrap_or("Kustomization");
            if !matches!(kind, "Terraform" | "Kustomization") {
                e.add(&format!("spec.dependsOn[{i}].kind"), format!("{kind:?} must be Terraform or Kustomization"));
            }
        }
        for (i, r) in spec.post_build.iter().flat_map(|p| p.substitute_from.iter()).enumerate() {
            if !matches!(r.kind.as_str(), "Secret" | "ConfigMap") {
                e.add(&format!("spec.postBuild.substituteFrom[{i}].kind"), format!("{:?} must be Secret or ConfigMap", r.kind));
            }
        }
        let mut checked = std::collections::BTreeSet::new();
        for (i, check) in spec.health_check_exprs.iter().enumerate() {
            let at = format!("spec.healthCheckExprs[{i}]");
            if check.api_version.is_empty() {
                e.add(&format!("{at}.apiVersion"), "must name the apiVersion of the objects it checks");
            }
            if check.current.trim().is_empty() {
                e.add(&format!("{at}.current"), "must be set: the expression that is true when an object is healthy");
            }
            for (field, expr) in check.expressions().into_iter().filter(|(_, expr)| !expr.trim().is_empty()) {
                if let Err(err) = super::parse_cel(expr) {
                    e.add(&format!("{at}.{field}"), format!("not a CEL expression: {err}"));
                }
            }
            if !checked.insert((check.group().to_string(), check.kind.clone().unwrap_or_default())) {
                e.add(&at, "another entry checks the same group and kind");
            }
        }
        e.duration("spec.interval", Some(&spec.interval), true);
        e.duration("spec.retryInterval", spec.retry_interval.as_ref(), true);
        e.duration("spec.timeout", spec.timeout.as_ref(), false);
        e.duration("spec.drift.interval", spec.drift.as_ref().and_then(|d| d.interval.as_ref()), true);
        e.finish("Kustomization", &self.metadata)
    }
}

// Providers, Alerts and Receivers are checked by their status, as Flux does: a bad one is
// stored and says why in its Ready condition (`driftless get providers`), so it can be fixed
// in place.
impl Validate for super::Provider {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl Validate for super::Alert {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl Validate for super::Receiver {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}
