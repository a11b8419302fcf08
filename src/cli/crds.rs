use super::{CliError, Result};

/// `driftless crds DIR`: one YAML per CRD, the files a test compares with the types.
pub fn write(dir: &str) -> Result<()> {
    for crd in crate::api::crds() {
        let yaml = serde_yaml::to_string(&crd).map_err(|e| CliError::Usage(format!("cannot render CRD: {e}")))?;
        if dir == "-" {
            println!("---\n{yaml}");
            continue;
        }
        let name = crd.metadata.name.clone().unwrap_or_default();
        let path = std::path::Path::new(dir).join(format!("{name}.yaml"));
        std::fs::create_dir_all(dir).map_err(|e| CliError::File { path: dir.into(), reason: e.to_string() })?;
        std::fs::write(&path, yaml).map_err(|e| CliError::File { path: path.display().to_string(), reason: e.to_string() })?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
