//! The forward pass: a [`Model`] borrows its weights (from a `.tnn` buffer or any `&[f32]`), an
//! [`Engine`] holds the activation buffers for one batch size in one arena, allocated once or
//! lent by the caller.
//!
//! After [`Engine::run`] every block's activation output and norm output stay available
//! ([`Engine::activation`], [`Engine::normalized`]) — the post-ReLU and post-norm activations
//! that the analyses and the energy measurement read.

use core::ops::Range;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::error::{FormatError, RunError};
use crate::format::TnnFile;
use crate::kernels::quantised::{self, Packed, QuantisedInputs};
use crate::kernels::weights::Weights;
use crate::kernels::{self, dense, local, norm, pool};
use crate::spec::{
    LayerGeometry, LayerKind, LayerSpec, ModelSpec, Norm, OutputActivation, TensorOwner,
    TensorRole, TensorSpec,
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

    /// Inputs of the readout: the last block's flattened output.
    fn readout_n_in(&self) -> usize {
        self.geometry.last().map_or(0, |g| g.pooled_len())
    }

    pub fn readout(&self) -> (Weights<'a>, Option<&'a [f32]>) {
        (self.readout_kernel, self.readout_bias)
    }

    /// Class names stored with the model (empty if none).
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
}

/// Where one block's buffers lie in the arena: activation, norm output and pooled output,
/// contiguous and in that order (a buffer the layer does not need is empty).
struct Block {
    activation: Range<usize>,
    normalized: Range<usize>,
    pooled: Range<usize>,
}

/// Lengths of a block's (activation, norm, pooled) buffers for `capacity` images.
fn block_lens(layer: &LayerSpec, g: &LayerGeometry, capacity: usize) -> [usize; 3] {
    let norm = match layer.norm {
        Norm::None => 0,
        _ => capacity * g.output_len(),
    };
    let pooled = if layer.pool_after {
        capacity * g.pooled_len()
    } else {
        0
    };
    [capacity * g.output_len(), norm, pooled]
}

/// The engine's one buffer: allocated by [`Engine::new`], or lent by the caller of
/// [`Engine::in_arena`] (static memory on targets without an allocator).
enum Arena<'m> {
    Owned(Vec<f32>),
    Borrowed(&'m mut [f32]),
}

impl Arena<'_> {
    fn get(&self) -> &[f32] {
        match self {
            Arena::Owned(v) => v,
            Arena::Borrowed(s) => s,
        }
    }

    fn get_mut(&mut self) -> &mut [f32] {
        match self {
            Arena::Owned(v) => v,
            Arena::Borrowed(s) => s,
        }
    }
}

/// Runs a model on batches of up to `capacity` images. All buffers are slices of one arena of
/// [`Engine::arena_len`] values, allocated by [`Engine::new`] or lent to [`Engine::in_arena`];
/// [`Engine::run`] allocates nothing.
pub struct Engine<'m, 'a> {
    model: &'m Model<'a>,
    capacity: usize,
    batch: usize,
    blocks: Vec<Block>,
    /// The logits; the outputs fill the rest of the arena.
    logits: Range<usize>,
    arena: Arena<'m>,
    /// Set by [`Engine::with_int8_activations`].
    quantised: Option<Quantised>,
}

/// What an engine with int8 activations keeps: every kernel packed for
/// [`kernels::block::accumulate_q8`], and the buffer of the current layer's quantised input.
struct Quantised {
    layers: Vec<Packed>,
    readout: Packed,
    input: InputBuffer,
}

/// A layer input of a batch, quantised: the bytes, with 3 to spare ([`local::forward_q8`]), and
/// one scale per image.
struct InputBuffer {
    bytes: Vec<u8>,
    scales: Vec<f32>,
}

impl InputBuffer {
    /// Quantises `x`, images of `per_image` values, into this buffer.
    fn quantise(&mut self, x: &[f32], per_image: usize) -> QuantisedInputs<'_> {
        quantised::quantise(x, per_image, &mut self.bytes, &mut self.scales);
        QuantisedInputs {
            bytes: &self.bytes,
            scales: &self.scales,
            stride: quantised::image_stride(per_image),
        }
    }
}

impl<'m, 'a> Engine<'m, 'a> {
    pub fn new(model: &'m Model<'a>, capacity: usize) -> Result<Self, RunError> {
        let len = Engine::arena_len(model, capacity);
        Engine::with_arena(model, capacity, Arena::Owned(vec![0.0; len]))
    }

    /// An engine whose buffers are the first [`Engine::arena_len`] values of `arena`, which
    /// it zeroes; no allocation but a few bytes of bookkeeping per layer.
    pub fn in_arena(
        model: &'m Model<'a>,
        capacity: usize,
        arena: &'m mut [f32],
    ) -> Result<Self, RunError> {
        let (needed, found) = (Engine::arena_len(model, capacity), arena.len());
        let Some(used) = arena.get_mut(..needed) else {
            return Err(RunError::ArenaTooSmall { needed, found });
        };
        used.fill(0.0);
        Engine::with_arena(model, capacity, Arena::Borrowed(used))
    }

    /// The number of `f32` values an engine for batches of up to `capacity` images needs:
    /// every block's activation, norm and pooled outputs, the logits and the outputs (the
    /// kernels need no scratch).
    pub fn arena_len(model: &Model<'_>, capacity: usize) -> usize {
        let blocks: usize = model
            .spec
            .layers
            .iter()
            .zip(&model.geometry)
            .map(|(layer, g)| block_lens(layer, g, capacity).iter().sum::<usize>())
            .sum();
        blocks + 2 * capacity * model.spec.readout.classes as usize
    }

    fn with_arena(
        model: &'m Model<'a>,
        capacity: usize,
        arena: Arena<'m>,
    ) -> Result<Self, RunError> {
        if capacity == 0 {
            return Err(RunError::EmptyBatch);
        }
        let mut start = 0;
        let mut take = |len: usize| {
            start += len;
            start - len..start
        };
        let blocks = model
            .spec
            .layers
            .iter()
            .zip(&model.geometry)
            .map(|(layer, g)| {
                let [act, norm, pooled] = block_lens(layer, g, capacity);
                Block {
                    activation: take(act),
                    normalized: take(norm),
                    pooled: take(pooled),
                }
            })
            .collect();
        let classes = model.spec.readout.classes as usize;
        let logits = take(capacity * classes);
        Ok(Engine {
            model,
            capacity,
            batch: 0,
            blocks,
            logits,
            arena,
            quantised: None,
        })
    }

    /// This engine with int8 activations: every layer's input (and the readout's) is quantised
    /// per image to 8 bits and multiplied by the int8 weights in integers (see
    /// [`kernels::quantised`]), which AVX-512-VNNI and AVX-VNNI do four multiply-adds per lane at
    /// a time; on other CPUs the integer kernel is the scalar reference (slower than the default
    /// path).
    /// Needs a model whose kernels are all int8; packs them, allocating about the int8 model's
    /// size again.
    pub fn with_int8_activations(mut self) -> Result<Self, RunError> {
        let model = self.model;
        let mut layers = Vec::with_capacity(model.layers.len());
        let mut largest_input = model.readout_n_in();
        for (l, (layer, g)) in model.spec.layers.iter().zip(&model.geometry).enumerate() {
            let shape = layer_shape(layer, g);
            let name = format!("layer {l}");
            layers.push(pack(model.layers[l].kernel, &shape, sharing(layer), name)?);
            largest_input = largest_input.max(g.input_len());
        }
        let classes = model.spec.readout.classes as usize;
        let readout = pack(
            model.readout_kernel,
            &dense::shape(model.readout_n_in(), classes),
            local::Sharing::PerPosition,
            "readout".into(),
        )?;
        self.quantised = Some(Quantised {
            layers,
            readout,
            input: InputBuffer {
                bytes: vec![0; self.capacity * quantised::image_stride(largest_input) + 3],
                scales: vec![0.0; self.capacity],
            },
        });
        Ok(self)
    }

    /// Whether [`Engine::with_int8_activations`] made this engine.
    pub fn int8_activations(&self) -> bool {
        self.quantised.is_some()
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
        self.run_observed(input, |_| {})
    }

    /// [`run`](Self::run), calling `observe(stage)` as each stage finishes (for profiling: the
    /// runtime has no clock of its own).
    pub fn run_observed(
        &mut self,
        input: &[f32],
        mut observe: impl FnMut(Stage),
    ) -> Result<&[f32], RunError> {
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
        let arena = self.arena.get_mut();
        for (l, block) in self.blocks.iter().enumerate() {
            let (done, rest) = arena.split_at_mut(block.activation.start);
            let x: &[f32] = match l.checked_sub(1) {
                None => input,
                Some(p) => &done[block_output(&self.blocks[p], &model.spec.layers[p])],
            };
            let (activation, rest) = rest.split_at_mut(block.activation.len());
            let (normalized, rest) = rest.split_at_mut(block.normalized.len());
            let bufs = BlockBuffers {
                activation,
                normalized,
                pooled: &mut rest[..block.pooled.len()],
            };
            let n_in = batch * model.geometry[l].input_len();
            let quantised = self.quantised.as_mut();
            run_block(model, l, &x[..n_in], batch, bufs, quantised, &mut observe);
            observe(Stage::Layer(l));
        }
        let last = self.blocks.len() - 1;
        let g = &model.geometry[last];
        let (done, rest) = arena.split_at_mut(self.logits.start);
        let x = &done[block_output(&self.blocks[last], &model.spec.layers[last])];
        let n_in = g.pooled_len();
        let classes = model.spec.readout.classes as usize;
        let (logits, outputs) = rest.split_at_mut(self.logits.len());
        let logits = &mut logits[..batch * classes];
        let x = &x[..batch * n_in];
        match self.quantised.as_mut() {
            Some(q) => {
                let input = q.input.quantise(x, n_in);
                let bias = model.readout_bias;
                dense::forward_q8(&q.readout, bias, (n_in, classes), batch, input, logits);
            }
            None => dense::forward(
                model.readout_kernel,
                model.readout_bias,
                n_in,
                classes,
                batch,
                x,
                logits,
            ),
        }
        let out = &mut outputs[..batch * classes];
        out.copy_from_slice(logits);
        if model.spec.output == OutputActivation::Softmax {
            kernels::softmax_rows(out, classes);
        }
        observe(Stage::Readout);
        Ok(out)
    }

    /// Output of layer `l`'s activation (post-ReLU), `batch × H × W × C`.
    pub fn activation(&self, l: usize) -> &[f32] {
        let start = self.blocks[l].activation.start;
        &self.arena.get()[start..start + self.batch * self.model.geometry[l].output_len()]
    }

    /// Output of layer `l`'s norm (before pooling); `None` if the layer has no norm.
    pub fn normalized(&self, l: usize) -> Option<&[f32]> {
        let b = &self.blocks[l];
        (!b.normalized.is_empty()).then(|| {
            let len = self.batch * self.model.geometry[l].output_len();
            &self.arena.get()[b.normalized.start..b.normalized.start + len]
        })
    }

    /// What layer `l + 1` (or the readout) receives: the block output after pooling.
    pub fn block_output(&self, l: usize) -> &[f32] {
        let g = &self.model.geometry[l];
        let start = block_output(&self.blocks[l], &self.model.spec.layers[l]).start;
        &self.arena.get()[start..start + self.batch * g.pooled_len()]
    }

    /// Readout before the output activation, `batch × classes`.
    pub fn logits(&self) -> &[f32] {
        let len = self.batch * self.model.spec.readout.classes as usize;
        &self.arena.get()[self.logits.start..self.logits.start + len]
    }
}

/// A block's buffers, borrowed from the arena for one layer's run.
struct BlockBuffers<'b> {
    activation: &'b mut [f32],
    normalized: &'b mut [f32],
    pooled: &'b mut [f32],
}

fn block_output(block: &Block, layer: &LayerSpec) -> Range<usize> {
    if layer.pool_after {
        block.pooled.clone()
    } else if layer.norm_first || layer.norm == Norm::None {
        block.activation.clone()
    } else {
        block.normalized.clone()
    }
}

/// What [`Engine::run_observed`] reports as done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Layer `l`'s locally connected or conv kernel (with its bias).
    Kernel(usize),
    /// The rest of layer `l`: activation, norm and pooling.
    Layer(usize),
    /// The readout and the output activation.
    Readout,
}

fn run_block(
    model: &Model<'_>,
    l: usize,
    x: &[f32],
    batch: usize,
    block: BlockBuffers<'_>,
    mut quantised: Option<&mut Quantised>,
    observe: &mut impl FnMut(Stage),
) {
    let layer = &model.spec.layers[l];
    let g = &model.geometry[l];
    let w = &model.layers[l];
    let shape = layer_shape(layer, g);
    let sharing = sharing(layer);
    let mut kernel = |out: &mut [f32]| match quantised.as_deref_mut() {
        Some(q) => {
            let input = q.input.quantise(x, g.input_len());
            local::forward_q8(&shape, &q.layers[l], w.bias, batch, input, out);
        }
        None => local::forward(&shape, sharing, w.kernel, w.bias, batch, x, out),
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
    let act = &mut block.activation[..n_out];
    let normed = &mut block.normalized[..if has_norm { n_out } else { 0 }];
    // Activation and norm, position by position: pieces of whole positions on all threads.
    let piece = kernels::piece_len(n_out / channels, channels);
    if layer.norm_first && has_norm {
        kernel(normed);
        observe(Stage::Kernel(l));
        kernels::zip_pieces(normed, piece, act, piece, |normed, act| {
            // Position by position, while its values are in L1.
            let positions = normed
                .chunks_exact_mut(channels)
                .zip(act.chunks_exact_mut(channels));
            for (normed, act) in positions {
                normalize(normed);
                act.copy_from_slice(normed);
                kernels::activate(act, layer.activation);
            }
        });
    } else {
        kernel(act);
        observe(Stage::Kernel(l));
        if has_norm {
            kernels::zip_pieces(act, piece, normed, piece, |act, normed| {
                let positions = act
                    .chunks_exact_mut(channels)
                    .zip(normed.chunks_exact_mut(channels));
                for (act, normed) in positions {
                    kernels::activate(act, layer.activation);
                    normed.copy_from_slice(act);
                    normalize(normed);
                }
            });
        } else {
            kernels::activate(act, layer.activation);
        }
    }
    if layer.pool_after {
        let src = if layer.norm_first || !has_norm {
            act
        } else {
            normed
        };
        let pooled = &mut block.pooled[..batch * g.pooled_len()];
        kernels::zip_pieces(src, g.output_len(), pooled, g.pooled_len(), |image, out| {
            pool::max_pool_2x2(image, 1, g.output, out)
        });
    }
}

/// The kernel shape of one layer.
pub(crate) fn layer_shape(layer: &LayerSpec, g: &LayerGeometry) -> local::LocalShape {
    local::LocalShape {
        input: g.input,
        kernel: layer.kernel as usize,
        stride: layer.stride as usize,
        output: g.output,
    }
}

/// Whether a layer's kernel holds a block per position or one shared block.
pub(crate) fn sharing(layer: &LayerSpec) -> local::Sharing {
    match layer.kind {
        LayerKind::LocallyConnected => local::Sharing::PerPosition,
        LayerKind::Conv => local::Sharing::Shared,
    }
}

/// Packs an int8 kernel for [`Engine::with_int8_activations`].
fn pack(
    kernel: Weights<'_>,
    shape: &local::LocalShape,
    sharing: local::Sharing,
    name: String,
) -> Result<Packed, RunError> {
    let Weights::I8 { values, scales } = kernel else {
        return Err(RunError::Int8ActivationsNeedInt8 {
            kernel: name,
            dtype: kernel.dtype().name(),
        });
    };
    let rows = shape.patch_len();
    if rows > quantised::MAX_BLOCK_ROWS {
        return Err(RunError::BlockTooLong {
            kernel: name,
            rows,
            max: quantised::MAX_BLOCK_ROWS,
        });
    }
    Ok(Packed::for_layer(values, scales, shape, sharing))
}
