//! `version` (this CLI's, and on a cluster the installed controller's) and `completion`
//! (shell completion scripts from the command line's own definition, by clap_complete).

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};

use super::cluster::ClusterError;
use super::install::{CONTROLLER, NAME_LABEL};
use super::{CliError, Result};

/// The label `install` puts on the controller's Deployment.
const VERSION_LABEL: &str = "app.kubernetes.io/version";

/// This CLI's version.
pub const CLIENT: &str = env!("CARGO_PKG_VERSION");

#[derive(clap::Args, Debug)]
pub struct VersionArgs {
    /// Only this CLI's version; the cluster is not asked.
    #[arg(long)]
    pub client: bool,
    /// Namespace the controller was installed into (`driftless install -n`).
    #[arg(short = 'n', long, default_value = "driftless-system")]
    pub namespace: String,
}

/// What a controller Deployment says of its version: the label install sets, else the tag of
/// its image, with the image.
pub fn controller_version(deployment: &Deployment) -> String {
    let label = deployment.metadata.labels.as_ref().and_then(|l| l.get(VERSION_LABEL)).cloned();
    let image = deployment.spec.template.spec.as_ref().and_then(|p| p.containers.first()).and_then(|c| c.image.clone());
    let tag = image.as_deref().and_then(|i| i.rsplit_once(':')).map(|(_, t)| t).filter(|t| !t.contains('/')).map(str::to_string);
    let version = label.or(tag).unwrap_or_else(|| "unknown".into());
    match image {
        Some(image) => format!("{version} (image {image})"),
        None => version,
    }
}

/// Prints the client version, and the controller's of the cluster unless `--client`.
///
/// # Errors
/// The cluster could not be reached or read (after the client line is printed).
pub async fn show(args: &VersionArgs, local: bool, client: impl AsyncFnOnce() -> Result<Client>) -> Result<()> {
    println!("client: {CLIENT}");
    if args.client {
        return Ok(());
    }
    if local {
        println!("controller: none (a local store: this CLI reconciles it)");
        return Ok(());
    }
    let client = client().await?;
    let api: Api<Deployment> = Api::namespaced(client, &args.namespace);
    let found =
        api.get_opt(CONTROLLER).await.map_err(|e| ClusterError::api(format!("reading Deployment {}/{CONTROLLER}", args.namespace), e))?;
    match found {
        Some(d) if d.metadata.labels.as_ref().and_then(|l| l.get(NAME_LABEL.0)).is_some_and(|v| v == NAME_LABEL.1) => {
            println!("controller: {}", controller_version(&d));
        }
        _ => println!("controller: not installed in namespace {} (`driftless install`, or -n NAMESPACE where it is)", args.namespace),
    }
    Ok(())
}

/// The shells `completion` writes a script for.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Prints the completion script of `shell` for the whole command line.
pub fn completion(shell: Shell) -> Result<()> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = <super::Cli as clap::CommandFactory>::command();
    let mut out = std::io::stdout();
    clap_complete::generate(shell, &mut command, "driftless", &mut out);
    Ok::<(), CliError>(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(yaml: &str) -> Deployment {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn the_controller_version_is_the_install_label_else_the_image_tag() {
        let labelled = deployment(
            "metadata: {name: driftless-controller, labels: {app.kubernetes.io/version: 0.3.0}}\nspec:\n  selector: {}\n  template:\n    spec:\n      containers: [{name: manager, image: 'registry.example:5000/driftless:0.3.0'}]\n",
        );
        assert_eq!(controller_version(&labelled), "0.3.0 (image registry.example:5000/driftless:0.3.0)");
        let tagged = deployment(
            "metadata: {name: driftless-controller}\nspec:\n  selector: {}\n  template:\n    spec:\n      containers: [{name: manager, image: 'driftless:0.2.1'}]\n",
        );
        assert_eq!(controller_version(&tagged), "0.2.1 (image driftless:0.2.1)");
        let untagged = deployment(
            "metadata: {name: driftless-controller}\nspec:\n  selector: {}\n  template:\n    spec:\n      containers: [{name: manager, image: 'registry.example:5000/driftless'}]\n",
        );
        assert_eq!(controller_version(&untagged), "unknown (image registry.example:5000/driftless)");
    }
}
