//! `alltnn-trainer`: trains All-TNNs, LCNs and CNN controls with the original's spatial loss,
//! on candle (CPU by default, CUDA with the `cuda` feature).
//!
//! * [`model`]: the network of a [`alltnn_runtime::ModelSpec`] as candle variables;
//! * [`spatial_loss`]: the topographic objective (DESIGN.md "Spatial loss");
//! * [`data`]: datasets, the original's preprocessing and augmentation, a background loader;
//! * [`optim`], [`schedule`]: Keras-exact Adam and SGD, alpha and learning-rate schedules;
//! * [`checkpoint`]: safetensors checkpoints with the spec and the training state;
//! * [`train`]: the training loop.

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod model;
pub mod optim;
pub mod schedule;
pub mod spatial_loss;
pub mod train;

pub use candle_core::Device;
pub use error::TrainError;
