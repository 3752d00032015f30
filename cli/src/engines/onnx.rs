//! What the ONNX engines share: choosing the graph outputs, checking their sizes against the
//! spec, and serving them as a [`Backend`].

use std::path::Path;

use alltnn_converter::onnx;
use alltnn_runtime::ModelSpec;
use anyhow::{bail, Context, Result};

#[cfg(feature = "ort")]
use super::ort;
#[cfg(feature = "tract")]
use super::tract;
use super::{is_onnx, Backend, EngineKind};
use crate::weights::{self, LoadOptions};

/// A serialized ONNX model with what `infer` needs to know about it.
pub struct OnnxModel {
    pub bytes: Vec<u8>,
    pub spec: ModelSpec,
    pub class_names: Vec<String>,
}

impl OnnxModel {
    /// A `.onnx` file as it is, or any other model file exported in memory (with the `relu_<l>`
    /// outputs when `activations`).
    pub fn load(path: &Path, activations: bool) -> Result<OnnxModel> {
        if is_onnx(path) {
            let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
            let spec = onnx::read_spec(path, &bytes)?;
            return Ok(OnnxModel {
                bytes,
                spec,
                class_names: Vec::new(),
            });
        }
        let model = weights::load(path, &LoadOptions::default())?;
        let class_names = if path.extension().is_some_and(|e| e == "tnn") {
            let mapped = weights::map(path)?;
            weights::verified(&mapped, path)?.class_names().to_vec()
        } else {
            Vec::new()
        };
        let bytes =
            onnx::export(&model, activations).with_context(|| format!("{}", path.display()))?;
        Ok(OnnxModel {
            bytes,
            spec: model.spec,
            class_names,
        })
    }

    /// Runs this model in tract or onnxruntime; with `activations`, the graph must output every
    /// layer's `relu_<l>`.
    pub fn backend(&self, kind: EngineKind, activations: bool) -> Result<Box<dyn Backend>> {
        match kind {
            #[cfg(feature = "tract")]
            EngineKind::Tract => open_backend(self, activations, tract::Tract::new),
            #[cfg(feature = "ort")]
            EngineKind::Ort => open_backend(self, activations, ort::Ort::new),
            _ => {
                kind.prepare()?;
                bail!("the native engine runs .tnn models, not ONNX graphs")
            }
        }
    }
}

/// A loaded ONNX graph in one of the ONNX engines.
pub trait OnnxSession {
    /// Runs NHWC `input` of `shape`; returns the graph's first output, then the `relu_<l>`
    /// outputs the session was made for, as flat values.
    fn run(&mut self, input: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>>;
}

/// Positions in `outputs` (the graph's output names, in order) of its first output and of
/// each of `relu`.
pub fn select_outputs(outputs: &[String], relu: &[String]) -> Result<Vec<usize>> {
    if outputs.is_empty() {
        bail!("the ONNX graph has no outputs");
    }
    let mut positions = vec![0];
    for name in relu {
        match outputs.iter().position(|o| o == name) {
            Some(i) => positions.push(i),
            None => bail!(
                "the ONNX graph has no output {name}: for --activations, export it with \
                 `alltnn convert MODEL -o model.onnx --activations`"
            ),
        }
    }
    Ok(positions)
}

/// `model` in the engine that `open` loads it into (from the graph bytes and the names of the
/// `relu_<l>` outputs to return).
fn open_backend<S: OnnxSession + 'static>(
    model: &OnnxModel,
    activations: bool,
    open: fn(&[u8], &[String]) -> Result<S>,
) -> Result<Box<dyn Backend>> {
    let spec = &model.spec;
    let geometry = spec.geometry()?;
    let relu: Vec<String> = match activations {
        true => (0..geometry.len()).map(|l| format!("relu_{l}")).collect(),
        false => Vec::new(),
    };
    let mut lengths = vec![spec.readout.classes as usize];
    if activations {
        lengths.extend(geometry.iter().map(|g| g.output_len()));
    }
    Ok(Box::new(OnnxBackend {
        session: open(&model.bytes, &relu)?,
        shape: [
            spec.input.height as usize,
            spec.input.width as usize,
            spec.input.channels as usize,
        ],
        lengths,
        outputs: Vec::new(),
    }))
}

struct OnnxBackend<S> {
    session: S,
    /// Input (H, W, C).
    shape: [usize; 3],
    /// Values per image of each output: the model output, then every `relu_<l>`.
    lengths: Vec<usize>,
    outputs: Vec<Vec<f32>>,
}

impl<S: OnnxSession> Backend for OnnxBackend<S> {
    fn run(&mut self, input: &[f32]) -> Result<&[f32]> {
        let [h, w, c] = self.shape;
        let images = input.len() / (h * w * c);
        let outputs = self.session.run(input, [images, h, w, c])?;
        // The spec of a `.onnx` file comes from its metadata, which could disagree with its graph.
        for (i, (values, per_image)) in outputs.iter().zip(&self.lengths).enumerate() {
            if values.len() != images * per_image {
                let what = match i {
                    0 => "the model output".to_string(),
                    l => format!("relu_{}", l - 1),
                };
                bail!(
                    "the ONNX graph's {what} holds {} values for {images} images, its spec \
                     says {}",
                    values.len(),
                    images * per_image
                );
            }
        }
        self.outputs = outputs;
        Ok(&self.outputs[0])
    }

    fn activation(&self, l: usize) -> &[f32] {
        &self.outputs[1 + l]
    }

    fn normalized(&self, _: usize) -> Option<&[f32]> {
        None
    }
}
