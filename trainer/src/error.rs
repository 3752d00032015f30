//! Errors of the trainer; those about files and data name the file.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Bad or inconsistent data: a missing split, a label out of range, an unreadable image.
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{0}")]
    Spec(#[from] alltnn_runtime::SpecError),
    #[error("{0}")]
    Config(String),
}

impl TrainError {
    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TrainError::Data {
            path: path.into(),
            message: message.into(),
        }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, TrainError>;
