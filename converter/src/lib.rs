//! `alltnn-converter`: brings models into the `.tnn` format.
//!
//! * [`keras`]: Keras 2 HDF5 weight files as written by `model.save_weights` — the original
//!   All-TNN checkpoints (`ckpt_epNNN.h5`) — with the architecture inferred from layer names and
//!   weight shapes, or taken from an explicit spec.
//! * [`model_dir`]: an original model directory (`hparams.pickle` +
//!   `training_checkpoints/ckpt_epNNN.h5`).
//! * [`spec_file`]: JSON model specs (`models/*.json`).
//! * [`tnn`]: writing `.tnn` files atomically, kernels in f32, f16 or int8 ([`quantise`]).

pub mod error;
pub mod keras;
pub mod model_dir;
pub mod onnx;
pub mod quantise;
pub mod spec_file;
pub mod tnn;

pub use error::ConvertError;

/// One weight tensor under its canonical name (`layer0.kernel`, …), Keras layout, f32.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A model read from any source: its spec and every tensor the spec requires.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedModel {
    pub spec: alltnn_runtime::ModelSpec,
    pub tensors: Vec<NamedTensor>,
}

impl ImportedModel {
    pub fn tensor(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
