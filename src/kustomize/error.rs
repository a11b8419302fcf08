//! The one error of a build: every message names the file (and the field or object) and,
//! where there is one, what to do about it.

use std::io;
use std::path::PathBuf;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}{}: invalid YAML: {message}", file.display(), location(*line, *column))]
    Yaml { file: PathBuf, line: Option<usize>, column: Option<usize>, message: String },
    #[error("{}: field {field:?} is not supported by driftless; see docs/KUSTOMIZE.md", file.display())]
    UnsupportedField { file: PathBuf, field: String },
    #[error("{}: unknown field {field:?}: it is not a kustomization.yaml field (kustomize rejects it too)", file.display())]
    UnknownField { file: PathBuf, field: String },
    #[error("{}: field {field:?}: {message}", file.display())]
    Field { file: PathBuf, field: String, message: String },
    #[error("{}: {message}", file.display())]
    File { file: PathBuf, message: String },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

impl BuildError {
    pub(crate) fn field(file: impl Into<PathBuf>, field: impl Into<String>, message: impl Into<String>) -> Self {
        BuildError::Field { file: file.into(), field: field.into(), message: message.into() }
    }

    pub(crate) fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        BuildError::File { file: file.into(), message: message.into() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> BuildError {
        let path = path.into();
        move |source| BuildError::Io { path, source }
    }
}
