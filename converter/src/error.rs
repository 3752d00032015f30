//! Errors of the converter; each names the file it concerns.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot read HDF5: {message}")]
    Hdf5 { path: PathBuf, message: String },
    /// The file reads, but its layers or shapes do not describe a model we can build.
    #[error("{path}: {message}")]
    Layout { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Hparams { path: PathBuf, message: String },
    #[error("{path}: invalid spec file: {message}")]
    SpecFile { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Format {
        path: PathBuf,
        source: alltnn_runtime::FormatError,
    },
}

impl ConvertError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ConvertError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn layout(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ConvertError::Layout {
            path: path.into(),
            message: message.into(),
        }
    }
}
