//! The forward pass: a [`Model`] borrows its weights (from a `.tnn` buffer or any `&[f32]`), an
//! [`Engine`] owns the activation buffers for one batch size, allocated once.
//!
//! After [`Engine::run`] every block's activation output and norm output stay available
//! ([`Engine::activation`], [`Engine::normalized`]) — the post-ReLU and post-norm activations
//! that the analyses and the energy measurement read.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::error::{FormatError, RunError};
use crate::format::TnnFile;
use crate::kernels::weights::Weights;
use crate::kernels::{self, dense, local, norm, pool};
use crate::spec::{
    LayerGeometry, LayerKind, ModelSpec, Norm, OutputActivation, TensorOwner, TensorRole,
    TensorSpec,
};

/// Weights of one block.
#[derive(Clone, Debug)]
pub struct LayerWeights<'a> {
    pub kernel: Weights<'a>,
    pub bias: Option<&'a [f32]>,
    pub gamma: Option<&'a [f32]>,
    pub beta: Option<&'a [f32]>,
    pub moving_mean: Option<&'a [f32]>,
    pub moving_variance: Option<&'a [f32]>,
}

/// A model ready to run: spec, derived sizes and borrowed weights.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    spec: ModelSpec,
    geometry: Vec<LayerGeometry>,
    layers: Vec<LayerWeights<'a>>,
    readout_kernel: Weights<'a>,
    readout_bias: Option<&'a [f32]>,
    class_names: Vec<String>,
}

impl<'a> Model<'a> {
    /// A model over the tensors of a parsed `.tnn` file (zero-copy; kernels stay in their
    /// stored type).
    pub fn from_file(file: &TnnFile<'a>) -> Result<Model<'a>, FormatError> {
        let mut model = Model::from_weights(file.spec().clone(), |t| match t.role {
            TensorRole::Kernel => file.weights(&t.name()),
            _ => file.tensor_f32(&t.name()).map(Weights::F32),
        })?;
        model.class_names = file.class_names().to_vec();
        Ok(model)
    }

    /// A model over f32 tensors found by `lookup`, which is given each tensor the spec requires
    /// and returns its values in the Keras layout (see [`ModelSpec::tensors`]).
    pub fn from_tensors(
        spec: ModelSpec,
        mut lookup: impl FnMut(&TensorSpec) -> Result<&'a [f32], FormatError>,
    ) -> Result<Model<'a>, FormatError> {
        Model::from_weights(spec, |t| lookup(t).map(Weights::F32))
    }

    /// Like [`Model::from_tensors`], with kernels in any stored type; every other tensor must
    /// be f32.
    pub fn from_weights(
        spec: ModelSpec,
        mut lookup: impl FnMut(&TensorSpec) -> Result<Weights<'a>, FormatError>,
    ) -> Result<Model<'a>, FormatError> {
        let geometry = spec.geometry()?;
        let mut layers: Vec<LayerWeights<'a>> = (0..spec.layers.len())
            .map(|_| LayerWeights {
                kernel: Weights::F32(&[]),
                bias: None,
                gamma: None,
                beta: None,
                moving_mean: None,
                moving_variance: None,
            })
            .collect();
        let (mut readout_kernel, mut readout_bias) = (Weights::F32(&[]), None);
        for t in spec.tensors()? {
            let weights = lookup(&t)?;
            let scales_fit = match (weights, t.unit_shape()) {
                (Weights::I8 { scales, .. }, Some(units)) => {
                    scales.len() == units.iter().product::<usize>()
                }
                _ => true,
            };
            if weights.len() != t.len() || !scales_fit {
                return Err(FormatError::ShapeMismatch {
                    name: t.name(),
                    expected: t.shape.clone(),
                    found: vec![weights.len()],
                });
            }
            if t.role == TensorRole::Kernel {
                match t.owner {
                    TensorOwner::Layer(l) => layers[l].kernel = weights,
                    TensorOwner::Readout => readout_kernel = weights,
                }
                continue;
            }
            let Weights::F32(values) = weights else {
                return Err(FormatError::WrongDtype {
                    name: t.name(),
                    found: weights.dtype().name(),
                    allowed: "only kernels may be f16 or int8",
                });
            };
            match t.owner {
                TensorOwner::Layer(l) => {
                    let w = &mut layers[l];
                    match t.role {
                        TensorRole::Bias => w.bias = Some(values),
                        TensorRole::Gamma => w.gamma = Some(values),
                        TensorRole::Beta => w.beta = Some(values),
                        TensorRole::MovingMean => w.moving_mean = Some(values),
                        TensorRole::MovingVariance => w.moving_variance = Some(values),
                        TensorRole::Kernel => unreachable!("kernels are handled above"),
                    }
                }
                TensorOwner::Readout => readout_bias = Some(values),
            }
        }
        Ok(Model {
            spec,
            geometry,
            layers,
            readout_kernel,
            readout_bias,
            class_names: Vec::new(),
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn geometry(&self) -> &[LayerGeometry] {
        &self.geometry
    }

    pub fn layer_weights(&self, l: usize) -> &LayerWeights<'a> {
        &self.layers[l]
    }

    pub fn readout(&self) -> (Weights<'a>, Option<&'a [f32]>) {
        (self.readout_kernel, self.readout_bias)
    }

    /// Class names stored with the model (empty if none).
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
}

/// Buffers of one block.
struct Block {
    activation: Vec<f32>,
    normalized: Vec<f32>,
    pooled: Vec<f32>,
}

/// Runs a model on batches of up to `capacity` images. All buffers are allocated by
/// [`Engine::new`]; [`Engine::run`] allocates nothing.
pub struct Engine<'m, 'a> {
    model: &'m Model<'a>,
    capacity: usize,
    batch: usize,
    blocks: Vec<Block>,
    logits: Vec<f32>,
    outputs: Vec<f32>,
}

impl<'m, 'a> Engine<'m, 'a> {
    pub fn new(model: &'m Model<'a>, capacity: usize) -> Result<Self, RunError> {
        if capacity == 0 {
            return Err(RunError::EmptyBatch);
        }
        let blocks = model
            .spec
            .layers
            .iter()
            .zip(&model.geometry)
            .map(|(layer, g)| Block {
                activation: vec![0.0; capacity * g.output_len()],
                normalized: match layer.norm {
                    Norm::None => Vec::new(),
                    _ => vec![0.0; capacity * g.output_len()],
                },
                pooled: if layer.pool_after {
                    vec![0.0; capacity * g.pooled_len()]
                } else {
                    Vec::new()
                },
            })
            .collect();
        let classes = model.spec.readout.classes as usize;
        Ok(Engine {
            model,
            capacity,
            batch: 0,
            blocks,
            logits: vec![0.0; capacity * classes],
            outputs: vec![0.0; capacity * classes],
        })
    }

    pub fn model(&self) -> &'m Model<'a> {
        self.model
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of images of the last run.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs `input` (NHWC, preprocessed, 1 to `capacity` images) and returns the model output
    /// (softmax probabilities unless the spec says linear), `batch × classes`.
    pub fn run(&mut self, input: &[f32]) -> Result<&[f32], RunError> {
        let per_image = self.model.spec.input_len();
        let batch = input.len() / per_image.max(1);
        if batch == 0 || batch * per_image != input.len() {
            return Err(RunError::InputLength {
                expected: batch.max(1) * per_image,
                found: input.len(),
                batch: batch.max(1),
                per_image,
            });
        }
        if batch > self.capacity {
            return Err(RunError::BatchTooLarge {
                found: batch,
                capacity: self.capacity,
            });
        }
        self.batch = batch;
        let model = self.model;
        for l in 0..self.blocks.len() {
            let (done, rest) = self.blocks.split_at_mut(l);
            let x: &[f32] = match done.last() {
                None => input,
                Some(prev) => block_output(prev, &model.spec.layers[l - 1]),
            };
            let g = &model.geometry[l];
            let n_in = batch * g.input_len();
            run_block(model, l, &x[..n_in], batch, &mut rest[0]);
        }
        let last = self.blocks.len() - 1;
        let g = &model.geometry[last];
        let x = block_output(&self.blocks[last], &model.spec.layers[last]);
        let n_in = g.pooled_len();
        let classes = model.spec.readout.classes as usize;
        let logits = &mut self.logits[..batch * classes];
        dense::forward(
            model.readout_kernel,
            model.readout_bias,
            n_in,
            classes,
            batch,
            &x[..batch * n_in],
            logits,
        );
        let out = &mut self.outputs[..batch * classes];
        out.copy_from_slice(logits);
        if model.spec.output == OutputActivation::Softmax {
            kernels::softmax_rows(out, classes);
        }
        Ok(out)
    }

    /// Output of layer `l`'s activation (post-ReLU), `batch × H × W × C`.
    pub fn activation(&self, l: usize) -> &[f32] {
        &self.blocks[l].activation[..self.batch * self.model.geometry[l].output_len()]
    }

    /// Output of layer `l`'s norm (before pooling); `None` if the layer has no norm.
    pub fn normalized(&self, l: usize) -> Option<&[f32]> {
        let b = &self.blocks[l];
        (!b.normalized.is_empty())
            .then(|| &b.normalized[..self.batch * self.model.geometry[l].output_len()])
    }

    /// What layer `l + 1` (or the readout) receives: the block output after pooling.
    pub fn block_output(&self, l: usize) -> &[f32] {
        let g = &self.model.geometry[l];
        &block_output(&self.blocks[l], &self.model.spec.layers[l])[..self.batch * g.pooled_len()]
    }

    /// Readout before the output activation, `batch × classes`.
    pub fn logits(&self) -> &[f32] {
        &self.logits[..self.batch * self.model.spec.readout.classes as usize]
    }
}

fn block_output<'b>(block: &'b Block, layer: &crate::spec::LayerSpec) -> &'b [f32] {
    if layer.pool_after {
        &block.pooled
    } else if layer.norm_first || layer.norm == Norm::None {
        &block.activation
    } else {
        &block.normalized
    }
}

fn run_block(model: &Model<'_>, l: usize, x: &[f32], batch: usize, block: &mut Block) {
    let layer = &model.spec.layers[l];
    let g = &model.geometry[l];
    let w = &model.layers[l];
    let shape = local::LocalShape {
        input: g.input,
        kernel: layer.kernel as usize,
        stride: layer.stride as usize,
        output: g.output,
    };
    let sharing = match layer.kind {
        LayerKind::LocallyConnected => local::Sharing::PerPosition,
        LayerKind::Conv => local::Sharing::Shared,
    };
    let n_out = batch * g.output_len();
    let channels = g.output[2];
    let normalize = |buf: &mut [f32]| match layer.norm {
        Norm::None => {}
        Norm::LayerNorm(p) => norm::layer_norm(buf, channels, p.epsilon, w.gamma, w.beta),
        Norm::BatchNorm(p) => norm::batch_norm(
            buf,
            p.epsilon,
            w.moving_mean.unwrap_or(&[]),
            w.moving_variance.unwrap_or(&[]),
            w.gamma,
            w.beta,
        ),
    };
    let has_norm = layer.norm != Norm::None;
    if layer.norm_first && has_norm {
        let normed = &mut block.normalized[..n_out];
        local::forward(&shape, sharing, w.kernel, w.bias, batch, x, normed);
        normalize(normed);
        let act = &mut block.activation[..n_out];
        act.copy_from_slice(normed);
        kernels::activate(act, layer.activation);
    } else {
        let act = &mut block.activation[..n_out];
        local::forward(&shape, sharing, w.kernel, w.bias, batch, x, act);
        kernels::activate(act, layer.activation);
        if has_norm {
            let normed = &mut block.normalized[..n_out];
            normed.copy_from_slice(act);
            normalize(normed);
        }
    }
    if layer.pool_after {
        let src = if layer.norm_first || !has_norm {
            &block.activation
        } else {
            &block.normalized
        };
        pool::max_pool_2x2(
            &src[..n_out],
            batch,
            g.output,
            &mut block.pooled[..batch * g.pooled_len()],
        );
    }
}
