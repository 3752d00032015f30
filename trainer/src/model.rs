//! The network of a [`ModelSpec`] as candle variables, with the original's semantics
//! (DESIGN.md "Architecture semantics"): per block a valid-padded locally connected (or conv)
//! layer → activation → norm (or norm → activation with `norm_first`) → optional 2×2 max pool
//! (stride 2, valid); then flatten in NHWC order and a dense readout giving logits. The softmax
//! is left to the caller's cross-entropy.
//!
//! Weights keep the Keras layout of [`ModelSpec::tensors`], so checkpoints, the converter and
//! the spatial loss read them without reshuffling. Patches are gathered with `index_select` on
//! precomputed indices — `Tensor::unfold`'s backward is broken in candle — and LayerNorm is
//! built from plain ops, because `candle_nn::LayerNorm`'s fused path drops gradients
//! (candle#2977).

use alltnn_runtime::spec::{
    Activation, LayerGeometry, LayerKind, LayerSpec, Norm, NormParams, TensorOwner, TensorRole,
    TensorSpec,
};
use alltnn_runtime::ModelSpec;
use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, TrainError};

/// Keras' BatchNormalization default: `moving = moving·0.99 + batch·0.01`.
const BATCH_NORM_MOMENTUM: f64 = 0.99;

/// A named tensor outside candle: canonical name, Keras-layout shape, f32 values.
pub type TensorData = (String, Vec<usize>, Vec<f32>);

/// One weight tensor of the model.
pub struct Param {
    /// Canonical name (`layer0.kernel`, `readout.bias`, …).
    pub name: String,
    pub var: Var,
    /// False for BatchNorm's moving statistics, which the forward pass updates itself.
    pub trainable: bool,
}

/// Where the tensors of one block sit in [`TnnModel::params`], and its patch indices.
#[derive(Clone)]
struct Block {
    spec: LayerSpec,
    geometry: LayerGeometry,
    kernel: usize,
    bias: Option<usize>,
    gamma: Option<usize>,
    beta: Option<usize>,
    moving_mean: Option<usize>,
    moving_variance: Option<usize>,
    /// Rows of the `(H·W·C, B)` input to gather: `(position, patch)` order for a locally
    /// connected layer, `(patch, position)` for a conv layer (see [`Block::layer`]).
    patch_index: Tensor,
}

/// An All-TNN, LCN or CNN control as candle variables.
pub struct TnnModel {
    spec: ModelSpec,
    params: Vec<Param>,
    blocks: Vec<Block>,
    readout_kernel: usize,
    readout_bias: Option<usize>,
    dtype: DType,
    device: Device,
}

/// What one forward pass computed.
pub struct Forward {
    /// Readout before the softmax, `(B, classes)`.
    pub logits: Tensor,
    /// Per layer, the output of its activation (post-ReLU), NHWC, before pooling.
    pub activations: Vec<Tensor>,
    /// Per layer, the output of its norm (before pooling); `None` without a norm.
    pub normalized: Vec<Option<Tensor>>,
}

impl TnnModel {
    /// Keras-default initialisation, seeded and reproducible: Glorot-uniform kernels with the
    /// fans Keras computes from the kernel shape (for a locally connected kernel
    /// `(P, K, F)` that is `fan_in = P·K`, `fan_out = P·F`, since Keras treats every leading
    /// axis as receptive field), zero biases, gamma 1, beta 0, moving mean 0 and variance 1.
    /// The values are drawn on the CPU from a ChaCha8 stream seeded with `seed`, so every
    /// device (and dtype) starts from the same numbers.
    pub fn init(spec: &ModelSpec, seed: u64, device: &Device) -> Result<TnnModel> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tensors = spec
            .tensors()?
            .into_iter()
            .map(|t| {
                let values = initial_values(&t, &mut rng);
                (t.name(), t.shape, values)
            })
            .collect::<Vec<_>>();
        TnnModel::from_tensors(spec, &tensors, device)
    }

    /// From named f32 tensors in the canonical names and Keras layout. Every tensor of
    /// `spec.tensors()` is required with its exact shape; unknown or repeated names are refused.
    pub fn from_tensors(
        spec: &ModelSpec,
        tensors: &[TensorData],
        device: &Device,
    ) -> Result<TnnModel> {
        let wanted = spec.tensors()?;
        check_names(&wanted, tensors)?;
        let params = wanted
            .iter()
            .map(|t| make_param(t, tensors, device))
            .collect::<Result<Vec<_>>>()?;
        let geometry = spec.geometry()?;
        let blocks = spec
            .layers
            .iter()
            .zip(&geometry)
            .enumerate()
            .map(|(l, (layer, g))| Block::new(l, *layer, *g, &wanted, device))
            .collect::<Result<Vec<_>>>()?;
        let readout = |role| position_of(&wanted, TensorOwner::Readout, role);
        let readout_kernel =
            readout(TensorRole::Kernel).ok_or_else(|| missing("readout.kernel"))?;
        Ok(TnnModel {
            spec: spec.clone(),
            params,
            blocks,
            readout_kernel,
            readout_bias: readout(TensorRole::Bias),
            dtype: DType::F32,
            device: device.clone(),
        })
    }

    /// The same model with every tensor (and the computation) in `dtype`, as fresh variables;
    /// F64 serves finite-difference gradient checks.
    pub fn to_dtype(&self, dtype: DType) -> Result<TnnModel> {
        let params = self
            .params
            .iter()
            .map(|p| {
                Ok(Param {
                    name: p.name.clone(),
                    var: Var::from_tensor(&p.var.as_tensor().to_dtype(dtype)?)?,
                    trainable: p.trainable,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TnnModel {
            spec: self.spec.clone(),
            params,
            blocks: self.blocks.clone(),
            readout_kernel: self.readout_kernel,
            readout_bias: self.readout_bias,
            dtype,
            device: self.device.clone(),
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every tensor in `spec.tensors()` order; moving statistics have `trainable = false`.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn trainable_vars(&self) -> Vec<Var> {
        self.params
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.var.clone())
            .collect()
    }

    /// `x`: `(B, H, W, C)`, preprocessed (converted to the model's dtype if needed). With
    /// `train`, BatchNorm normalises with the batch statistics and updates its moving
    /// statistics; LayerNorm is the same either way.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Forward> {
        self.check_input(x)?;
        let mut x = x.to_dtype(self.dtype)?;
        let mut activations = Vec::with_capacity(self.blocks.len());
        let mut normalized = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let out = self.block_forward(block, &x, train)?;
            x = if block.spec.pool_after {
                max_pool_2x2(&out.output)?
            } else {
                out.output
            };
            activations.push(out.activation);
            normalized.push(out.normalized);
        }
        let logits = self.readout(&x)?;
        Ok(Forward {
            logits,
            activations,
            normalized,
        })
    }

    /// Every tensor (moving statistics included) as `(name, shape, values)` in canonical names
    /// and Keras layout, f32.
    pub fn export(&self) -> Result<Vec<TensorData>> {
        self.params
            .iter()
            .map(|p| {
                let t = p.var.as_tensor();
                let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                Ok((p.name.clone(), t.dims().to_vec(), values))
            })
            .collect()
    }

    /// The kernel of layer `l` in Keras layout: `(P, K, F)` locally connected, `(k, k, C, F)`
    /// conv.
    ///
    /// # Panics
    /// If `l` is not a layer of the spec.
    pub fn layer_kernel(&self, l: usize) -> &Tensor {
        self.tensor(self.blocks[l].kernel)
    }

    /// The bias of layer `l` (`(OH, OW, F)` locally connected, `(F)` conv), if it has one.
    ///
    /// # Panics
    /// If `l` is not a layer of the spec.
    pub fn layer_bias(&self, l: usize) -> Option<&Tensor> {
        self.blocks[l].bias.map(|i| self.tensor(i))
    }

    fn tensor(&self, i: usize) -> &Tensor {
        self.params[i].var.as_tensor()
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let i = &self.spec.input;
        let want = [i.height as usize, i.width as usize, i.channels as usize];
        match x.dims() {
            [_, h, w, c] if [*h, *w, *c] == want => Ok(()),
            dims => Err(TrainError::Config(format!(
                "model input must be (batch, {}, {}, {}), got {dims:?}",
                want[0], want[1], want[2]
            ))),
        }
    }

    fn block_forward(&self, block: &Block, x: &Tensor, train: bool) -> Result<BlockOutput> {
        let z = self.layer(block, x)?;
        let act = |t: &Tensor| activation(t, block.spec.activation);
        if block.spec.norm == Norm::None {
            let a = act(&z)?;
            return Ok(BlockOutput::new(a.clone(), None, a));
        }
        if block.spec.norm_first {
            let n = self.norm(block, &z, train)?;
            let a = act(&n)?;
            Ok(BlockOutput::new(a.clone(), Some(n), a))
        } else {
            let a = act(&z)?;
            let n = self.norm(block, &a, train)?;
            Ok(BlockOutput::new(a, Some(n.clone()), n))
        }
    }

    /// The locally connected or conv layer, bias included: `(B, OH, OW, F)`.
    fn layer(&self, block: &Block, x: &Tensor) -> Result<Tensor> {
        let g = &block.geometry;
        let (batch, positions, patch) = (x.dim(0)?, g.positions(), g.patch);
        let [oh, ow, filters] = g.output;
        // The input as (H·W·C, B): gathering whole rows copies B contiguous values per index,
        // and the gathered rows already have the layout the matmul needs.
        let columns = x.reshape((batch, g.input_len()))?.t()?.contiguous()?;
        let gathered = columns.index_select(&block.patch_index, 0)?;
        let kernel = self.tensor(block.kernel);
        let out = match block.spec.kind {
            // (P, B, K) × (P, K, F) → (P, B, F): one small matmul per position.
            LayerKind::LocallyConnected => gathered
                .reshape((positions, patch, batch))?
                .transpose(1, 2)?
                .matmul(kernel)?,
            // (P·B, K) × (K, F): one matmul for all positions, as the kernel is shared.
            LayerKind::Conv => gathered
                .reshape((patch, positions * batch))?
                .t()?
                .matmul(&kernel.reshape((patch, filters))?)?
                .reshape((positions, batch, filters))?,
        };
        let out = out
            .transpose(0, 1)?
            .contiguous()?
            .reshape((batch, oh, ow, filters))?;
        match block.bias {
            Some(b) => Ok(out.broadcast_add(self.tensor(b))?),
            None => Ok(out),
        }
    }

    fn norm(&self, block: &Block, x: &Tensor, train: bool) -> Result<Tensor> {
        match block.spec.norm {
            Norm::None => Ok(x.clone()),
            Norm::LayerNorm(p) => {
                let xhat = layer_norm(x, p.epsilon)?;
                self.scale_and_shift(block, &xhat)
            }
            Norm::BatchNorm(p) => {
                let xhat = self.batch_norm(block, x, p, train)?;
                self.scale_and_shift(block, &xhat)
            }
        }
    }

    /// `x̂·gamma + beta`, each where the norm has it.
    fn scale_and_shift(&self, block: &Block, xhat: &Tensor) -> Result<Tensor> {
        let scaled = match block.gamma {
            Some(g) => xhat.broadcast_mul(self.tensor(g))?,
            None => xhat.clone(),
        };
        match block.beta {
            Some(b) => Ok(scaled.broadcast_add(self.tensor(b))?),
            None => Ok(scaled),
        }
    }

    /// Keras BatchNormalization over (B, H, W) per channel, without gamma/beta. Training
    /// normalises with the biased batch variance and moves the statistics towards the batch's
    /// (Keras also stores the biased variance).
    fn batch_norm(&self, block: &Block, x: &Tensor, p: NormParams, train: bool) -> Result<Tensor> {
        let (Some(mm), Some(mv)) = (block.moving_mean, block.moving_variance) else {
            return Err(missing("BatchNorm moving statistics"));
        };
        let (mean, variance) = if train {
            let mean = x.mean_keepdim((0, 1, 2))?;
            let variance = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim((0, 1, 2))?;
            self.update_moving(mm, &mean)?;
            self.update_moving(mv, &variance)?;
            (mean, variance)
        } else {
            (self.tensor(mm).clone(), self.tensor(mv).clone())
        };
        let std = (variance + f64::from(p.epsilon))?.sqrt()?;
        Ok(x.broadcast_sub(&mean)?.broadcast_div(&std)?)
    }

    /// `moving ← moving·momentum + batch·(1 − momentum)`, outside the gradient graph.
    fn update_moving(&self, i: usize, batch: &Tensor) -> Result<()> {
        let var = &self.params[i].var;
        let batch = batch.detach().flatten_all()?;
        let moved = (var.as_tensor().affine(BATCH_NORM_MOMENTUM, 0.0)?
            + batch.affine(1.0 - BATCH_NORM_MOMENTUM, 0.0)?)?;
        Ok(var.set(&moved)?)
    }

    /// Flatten (NHWC order) and the dense layer.
    fn readout(&self, x: &Tensor) -> Result<Tensor> {
        let flat = x.flatten_from(1)?;
        let logits = flat.matmul(self.tensor(self.readout_kernel))?;
        match self.readout_bias {
            Some(b) => Ok(logits.broadcast_add(self.tensor(b))?),
            None => Ok(logits),
        }
    }
}

/// A block's activation and norm outputs, and what goes on to the pooling.
struct BlockOutput {
    activation: Tensor,
    normalized: Option<Tensor>,
    output: Tensor,
}

impl BlockOutput {
    fn new(activation: Tensor, normalized: Option<Tensor>, output: Tensor) -> BlockOutput {
        BlockOutput {
            activation,
            normalized,
            output,
        }
    }
}

impl Block {
    fn new(
        l: usize,
        spec: LayerSpec,
        geometry: LayerGeometry,
        tensors: &[TensorSpec],
        device: &Device,
    ) -> Result<Block> {
        let find = |role| position_of(tensors, TensorOwner::Layer(l), role);
        let kernel =
            find(TensorRole::Kernel).ok_or_else(|| missing(&format!("layer{l}.kernel")))?;
        let index = patch_index(&geometry, spec.stride as usize, spec.kernel as usize);
        let index = match spec.kind {
            LayerKind::LocallyConnected => index,
            LayerKind::Conv => transpose(&index, geometry.positions(), geometry.patch),
        };
        let len = index.len();
        Ok(Block {
            spec,
            geometry,
            kernel,
            bias: find(TensorRole::Bias),
            gamma: find(TensorRole::Gamma),
            beta: find(TensorRole::Beta),
            moving_mean: find(TensorRole::MovingMean),
            moving_variance: find(TensorRole::MovingVariance),
            patch_index: Tensor::from_vec(index, len, device)?,
        })
    }
}

/// Flat HWC input index of every patch element, ordered (position, ky, kx, c_in) — the order
/// of the middle axis of Keras' locally connected kernel and of a flattened conv kernel.
fn patch_index(g: &LayerGeometry, stride: usize, kernel: usize) -> Vec<u32> {
    let [_, in_w, in_c] = g.input;
    let [oh, ow, _] = g.output;
    let mut index = Vec::with_capacity(g.positions() * g.patch);
    for oy in 0..oh {
        for ox in 0..ow {
            for ky in 0..kernel {
                for kx in 0..kernel {
                    let base = ((oy * stride + ky) * in_w + ox * stride + kx) * in_c;
                    index.extend((base..base + in_c).map(|i| i as u32));
                }
            }
        }
    }
    index
}

/// A row-major `(rows, cols)` matrix as `(cols, rows)`.
fn transpose(m: &[u32], rows: usize, cols: usize) -> Vec<u32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| m[r * cols + c]))
        .collect()
}

fn activation(x: &Tensor, a: Activation) -> Result<Tensor> {
    match a {
        Activation::Relu => Ok(x.relu()?),
        Activation::Linear => Ok(x.clone()),
    }
}

/// Keras LayerNormalization over the channels (last axis) without gamma/beta:
/// `(x − mean) / sqrt(var + ε)`, biased variance.
fn layer_norm(x: &Tensor, epsilon: f32) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let std = (variance + f64::from(epsilon))?.sqrt()?;
    Ok(centred.broadcast_div(&std)?)
}

/// 2×2 max pool, stride 2, valid padding, on NHWC: an odd last row or column is dropped. The
/// gradient goes to the first maximum of each window (in (dy, dx) order), as in TensorFlow:
/// candle's `max` backward would hand it to every tied element, which double-counts the
/// windows of dead units (after LayerNorm they all hold beta).
fn max_pool_2x2(x: &Tensor) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let (ph, pw) = (h / 2, w / 2);
    let windows = x
        .narrow(1, 0, ph * 2)?
        .narrow(2, 0, pw * 2)?
        .reshape((b, ph, 2, pw, 2, c))?
        .permute((0, 1, 3, 5, 2, 4))?
        .reshape((b, ph, pw, c, 4))?;
    let first_max = windows.detach().argmax_keepdim(4)?;
    Ok(windows.gather(&first_max, 4)?.squeeze(4)?)
}

/// Keras' `_compute_fans`: the last two axes are (in, out), every other axis is receptive field.
fn keras_fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [leading @ .., fan_in, fan_out] => {
            let receptive: usize = leading.iter().product();
            (fan_in * receptive, fan_out * receptive)
        }
    }
}

/// Keras' initial values of one tensor; kernels draw from `rng`.
fn initial_values(t: &TensorSpec, rng: &mut ChaCha8Rng) -> Vec<f32> {
    match t.role {
        TensorRole::Kernel => {
            let (fan_in, fan_out) = keras_fans(&t.shape);
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            (0..t.len())
                .map(|_| limit * (2.0 * rng.random::<f32>() - 1.0))
                .collect()
        }
        TensorRole::Gamma | TensorRole::MovingVariance => vec![1.0; t.len()],
        TensorRole::Bias | TensorRole::Beta | TensorRole::MovingMean => vec![0.0; t.len()],
    }
}

/// Refuses unknown and repeated names, so a mismatched checkpoint fails loudly.
fn check_names(wanted: &[TensorSpec], tensors: &[TensorData]) -> Result<()> {
    let names: Vec<String> = wanted.iter().map(TensorSpec::name).collect();
    for (i, (name, _, _)) in tensors.iter().enumerate() {
        if !names.contains(name) {
            return Err(TrainError::Config(format!(
                "tensor {name} is not part of the model spec (expected {})",
                names.join(", ")
            )));
        }
        if tensors[..i].iter().any(|(other, _, _)| other == name) {
            return Err(TrainError::Config(format!("tensor {name} given twice")));
        }
    }
    Ok(())
}

fn make_param(t: &TensorSpec, tensors: &[TensorData], device: &Device) -> Result<Param> {
    let name = t.name();
    let (_, shape, values) = tensors
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| missing(&name))?;
    if *shape != t.shape || values.len() != t.len() {
        return Err(TrainError::Config(format!(
            "tensor {name}: expected shape {:?}, got {shape:?} with {} values",
            t.shape,
            values.len()
        )));
    }
    let trainable = !matches!(t.role, TensorRole::MovingMean | TensorRole::MovingVariance);
    Ok(Param {
        var: Var::from_slice(values, t.shape.as_slice(), device)?,
        name,
        trainable,
    })
}

fn position_of(tensors: &[TensorSpec], owner: TensorOwner, role: TensorRole) -> Option<usize> {
    tensors
        .iter()
        .position(|t| t.owner == owner && t.role == role)
}

fn missing(name: &str) -> TrainError {
    TrainError::Config(format!("tensor {name} is missing"))
}

#[cfg(test)]
mod tests {
    use alltnn_runtime::spec::{InputSpec, OutputActivation, Preprocess, ReadoutSpec};
    use candle_core::backprop::GradStore;

    use super::*;
    use crate::spatial_loss::{SpatialConfig, SpatialLoss};

    /// 9×9×2 input; layer 0 (4 filters, 3×3) gives 7×7, pooled to 3×3 (an odd size, cropped);
    /// layer 1 (6 filters, 2×2) gives 2×2; 3 classes.
    fn tiny_spec(kind: LayerKind, norm: Norm) -> ModelSpec {
        let layer = |filters, kernel, pool_after| LayerSpec {
            kind,
            filters,
            kernel,
            stride: 1,
            bias: true,
            activation: Activation::Relu,
            norm,
            norm_first: false,
            pool_after,
        };
        ModelSpec {
            input: InputSpec {
                height: 9,
                width: 9,
                channels: 2,
                preprocess: Preprocess::SignedUnit,
            },
            layers: vec![layer(4, 3, true), layer(6, 2, false)],
            readout: ReadoutSpec {
                classes: 3,
                bias: true,
            },
            output: OutputActivation::Softmax,
        }
    }

    fn layer_norm_spec() -> ModelSpec {
        tiny_spec(
            LayerKind::LocallyConnected,
            Norm::LayerNorm(NormParams::default()),
        )
    }

    fn uniform(rng: &mut ChaCha8Rng, n: usize, low: f32, high: f32) -> Vec<f32> {
        (0..n)
            .map(|_| low + (high - low) * rng.random::<f32>())
            .collect()
    }

    /// Keras' initialisation, then random biases, gammas and betas (zeros and ones would hide
    /// their gradients' mistakes).
    fn random_model(spec: &ModelSpec, seed: u64) -> TnnModel {
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 1000);
        let tensors: Vec<_> = TnnModel::init(spec, seed, &Device::Cpu)
            .unwrap()
            .export()
            .unwrap()
            .into_iter()
            .map(|(name, shape, values)| {
                let n = values.len();
                let values = match name.rsplit('.').next() {
                    Some("gamma" | "moving_variance") => uniform(&mut rng, n, 0.5, 1.5),
                    Some("bias" | "beta" | "moving_mean") => uniform(&mut rng, n, -0.3, 0.3),
                    _ => values,
                };
                (name, shape, values)
            })
            .collect();
        TnnModel::from_tensors(spec, &tensors, &Device::Cpu).unwrap()
    }

    fn batch(spec: &ModelSpec, n: usize) -> (Tensor, Tensor) {
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let i = &spec.input;
        let len = n * spec.input_len();
        let x = Tensor::from_vec(
            uniform(&mut rng, len, -1.0, 1.0),
            (n, i.height as usize, i.width as usize, i.channels as usize),
            &Device::Cpu,
        )
        .unwrap();
        let labels: Vec<u32> = (0..n as u32).map(|k| k % spec.readout.classes).collect();
        (x, Tensor::new(labels, &Device::Cpu).unwrap())
    }

    /// Mean cross-entropy + 10 · Σ spatial distances.
    fn loss(
        model: &TnnModel,
        spatial: &SpatialLoss,
        x: &Tensor,
        y: &Tensor,
        train: bool,
    ) -> Tensor {
        let logits = model.forward(x, train).unwrap().logits;
        let mut loss = candle_nn::loss::cross_entropy(&logits, y).unwrap();
        for d in spatial.distances(model).unwrap().into_iter().flatten() {
            loss = (loss + (d * 10.0).unwrap()).unwrap();
        }
        loss
    }

    fn grad_values(grads: &GradStore, p: &Param) -> Vec<f64> {
        let g = grads
            .get(p.var.as_tensor())
            .unwrap_or_else(|| panic!("{}: no gradient", p.name));
        g.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn every_trainable_parameter_gets_a_gradient() {
        let specs = [
            layer_norm_spec(),
            tiny_spec(
                LayerKind::LocallyConnected,
                Norm::BatchNorm(NormParams::default()),
            ),
            tiny_spec(LayerKind::Conv, Norm::LayerNorm(NormParams::default())),
        ];
        for spec in specs {
            let model = random_model(&spec, 1);
            let spatial = SpatialLoss::new(&spec, SpatialConfig::default(), &Device::Cpu).unwrap();
            let (x, y) = batch(&spec, 5);
            let grads = loss(&model, &spatial, &x, &y, true).backward().unwrap();
            for p in model.params().iter().filter(|p| p.trainable) {
                let g = grad_values(&grads, p);
                assert!(g.iter().all(|v| v.is_finite()), "{}: {g:?}", p.name);
                let nonzero = g.iter().filter(|v| **v != 0.0).count();
                assert!(
                    nonzero > 0,
                    "{} ({:?}): zero gradient",
                    p.name,
                    spec.layers[0].norm
                );
            }
        }
    }

    /// Central differences in f64 against backprop on a sample of every trainable tensor;
    /// returns the worst relative error.
    fn gradient_check(spec: &ModelSpec, train: bool) -> f64 {
        let model = random_model(spec, 2).to_dtype(DType::F64).unwrap();
        let spatial = SpatialLoss::new(spec, SpatialConfig::default(), &Device::Cpu).unwrap();
        let (x, y) = batch(spec, 4);
        let eval = |m: &TnnModel| loss(m, &spatial, &x, &y, train).to_scalar::<f64>().unwrap();
        let grads = loss(&model, &spatial, &x, &y, train).backward().unwrap();
        let h = 1e-6;
        let mut worst = 0.0f64;
        for p in model.params().iter().filter(|p| p.trainable) {
            let analytic = grad_values(&grads, p);
            let original = p
                .var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let set = |values: &[f64]| {
                let t = Tensor::from_slice(values, p.var.dims(), &Device::Cpu).unwrap();
                p.var.set(&t).unwrap();
            };
            let n = original.len();
            for i in [0, n / 3, n / 2, 2 * n / 3, n - 1] {
                let mut v = original.clone();
                v[i] = original[i] + h;
                set(&v);
                let up = eval(&model);
                v[i] = original[i] - h;
                set(&v);
                let down = eval(&model);
                set(&original);
                let numeric = (up - down) / (2.0 * h);
                let scale = analytic[i].abs().max(numeric.abs()).max(1e-6);
                let relative = (analytic[i] - numeric).abs() / scale;
                assert!(
                    relative < 1e-3,
                    "{}[{i}]: backprop {} vs finite differences {numeric}",
                    p.name,
                    analytic[i]
                );
                worst = worst.max(relative);
            }
        }
        worst
    }

    #[test]
    fn gradients_match_finite_differences() {
        let batch_norm = Norm::BatchNorm(NormParams::default());
        let conv = tiny_spec(LayerKind::Conv, Norm::LayerNorm(NormParams::default()));
        let cases = [
            ("locally connected, LayerNorm", layer_norm_spec(), false),
            // Training mode: normalised with the batch statistics.
            (
                "locally connected, BatchNorm",
                tiny_spec(LayerKind::LocallyConnected, batch_norm),
                true,
            ),
            ("conv, LayerNorm", conv, false),
        ];
        for (what, spec, train) in cases {
            let worst = gradient_check(&spec, train);
            eprintln!("gradient check, {what}: worst relative error {worst:.2e}");
        }
    }

    #[test]
    fn batch_norm_moves_its_statistics_only_in_training() {
        let spec = tiny_spec(
            LayerKind::LocallyConnected,
            Norm::BatchNorm(NormParams::default()),
        );
        let model = TnnModel::init(&spec, 3, &Device::Cpu).unwrap();
        let (x, _) = batch(&spec, 4);
        let moving = |m: &TnnModel| m.export().unwrap()[5].2.clone();
        assert_eq!(model.export().unwrap()[5].0, "layer0.norm.moving_variance");
        model.forward(&x, false).unwrap();
        assert_eq!(moving(&model), vec![1.0; 4]);
        let out = model.forward(&x, true).unwrap();
        // moving = 0.99 · 1 + 0.01 · biased batch variance of the ReLU output.
        let relu = &out.activations[0];
        let var = relu
            .broadcast_sub(&relu.mean_keepdim((0, 1, 2)).unwrap())
            .unwrap();
        let var: Vec<f32> = var
            .sqr()
            .unwrap()
            .mean((0, 1, 2))
            .unwrap()
            .to_vec1()
            .unwrap();
        for (got, v) in moving(&model).iter().zip(var) {
            assert!((got - (0.99 + 0.01 * v)).abs() < 1e-6, "{got} vs {v}");
        }
    }

    #[test]
    fn init_is_seeded_and_follows_keras_glorot_fans() {
        let spec = layer_norm_spec();
        let a = TnnModel::init(&spec, 5, &Device::Cpu)
            .unwrap()
            .export()
            .unwrap();
        let b = TnnModel::init(&spec, 5, &Device::Cpu)
            .unwrap()
            .export()
            .unwrap();
        let c = TnnModel::init(&spec, 6, &Device::Cpu)
            .unwrap()
            .export()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a[0].2, c[0].2);
        for (name, shape, values) in &a {
            let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            if name.ends_with("kernel") {
                // Layer 0: (49, 18, 4), fans 49·18 and 49·4 as Keras computes them.
                let (fan_in, fan_out) = keras_fans(shape);
                let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
                assert!(
                    max <= limit && max > 0.9 * limit,
                    "{name}: {max} vs {limit}"
                );
            } else if name.ends_with("gamma") {
                assert!(values.iter().all(|&v| v == 1.0), "{name}");
            } else {
                assert_eq!(max, 0.0, "{name}");
            }
        }
        assert_eq!(keras_fans(&[49, 18, 4]), (49 * 18, 49 * 4));
        assert_eq!(keras_fans(&[3, 3, 2, 4]), (18, 36));
        assert_eq!(keras_fans(&[24, 3]), (24, 3));
    }

    #[test]
    fn from_tensors_refuses_missing_misshapen_and_unknown_tensors() {
        let spec = layer_norm_spec();
        let good = TnnModel::init(&spec, 1, &Device::Cpu)
            .unwrap()
            .export()
            .unwrap();
        let error = |tensors: &[TensorData]| {
            let result = TnnModel::from_tensors(&spec, tensors, &Device::Cpu);
            result.err().expect("refused").to_string()
        };
        assert!(error(&good[1..]).contains("layer0.kernel is missing"));
        let mut misshapen = good.clone();
        misshapen[1].1 = vec![7, 7, 4, 1];
        assert!(error(&misshapen).contains("expected shape"));
        let mut unknown = good.clone();
        unknown.push(("layer9.kernel".into(), vec![1], vec![0.0]));
        assert!(error(&unknown).contains("not part of the model spec"));
        let mut twice = good.clone();
        twice.push(good[0].clone());
        assert!(error(&twice).contains("given twice"));
    }

    #[test]
    fn export_round_trips_and_forward_checks_the_input() {
        let spec = tiny_spec(LayerKind::Conv, Norm::BatchNorm(NormParams::default()));
        let model = random_model(&spec, 4);
        let again = TnnModel::from_tensors(&spec, &model.export().unwrap(), &Device::Cpu).unwrap();
        let (x, _) = batch(&spec, 2);
        let logits = |m: &TnnModel| {
            m.forward(&x, false)
                .unwrap()
                .logits
                .to_vec2::<f32>()
                .unwrap()
        };
        assert_eq!(logits(&model), logits(&again));
        let wrong = Tensor::zeros((2, 9, 8, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(model.forward(&wrong, false).is_err());
    }

    #[test]
    fn max_pool_crops_and_routes_the_gradient_to_the_first_maximum() {
        let values: Vec<f32> = (0..25).map(|v| v as f32).collect();
        let x = Var::from_vec(values, (1, 5, 5, 1), &Device::Cpu).unwrap();
        let pooled = max_pool_2x2(x.as_tensor()).unwrap();
        let flat = pooled.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat, [6.0, 8.0, 16.0, 18.0]);
        let hot = |x: &Var, pooled: &Tensor| -> Vec<usize> {
            let grads = pooled.sum_all().unwrap().backward().unwrap();
            let g = grads.get(x).unwrap().flatten_all().unwrap();
            let g: Vec<f32> = g.to_vec1().unwrap();
            (0..g.len()).filter(|&i| g[i] != 0.0).collect()
        };
        assert_eq!(hot(&x, &pooled), [6, 8, 16, 18]);
        // Ties (a window of dead units): only the first element gets the gradient.
        let ties = Var::zeros((1, 4, 4, 1), DType::F32, &Device::Cpu).unwrap();
        let pooled = max_pool_2x2(ties.as_tensor()).unwrap();
        assert_eq!(hot(&ties, &pooled), [0, 2, 8, 10]);
    }

    /// Forward and backward time of the paper's All-TNN for a batch of 64 (random init), for
    /// the cross-entropy alone, the spatial loss alone and both:
    /// `cargo test -p alltnn-trainer --lib paper_alltnn_step_time -- --ignored --nocapture`.
    #[test]
    #[ignore = "a timing: a minute of CPU and about 4 GB of memory"]
    fn paper_alltnn_step_time() {
        let spec = ModelSpec::paper_alltnn();
        let started = std::time::Instant::now();
        let model = TnnModel::init(&spec, 0, &Device::Cpu).unwrap();
        let spatial = SpatialLoss::new(&spec, SpatialConfig::default(), &Device::Cpu).unwrap();
        eprintln!("init and spatial indices: {:.2?}", started.elapsed());
        let (x, y) = batch(&spec, 64);
        let cross_entropy = || {
            let logits = model.forward(&x, true).unwrap().logits;
            candle_nn::loss::cross_entropy(&logits, &y).unwrap()
        };
        let spatial_only = || {
            let distances = spatial.distances(&model).unwrap();
            let distances: Vec<Tensor> = distances.into_iter().flatten().collect();
            Tensor::stack(&distances, 0).unwrap().sum_all().unwrap()
        };
        let both = || loss(&model, &spatial, &x, &y, true);
        let parts: [(&str, &dyn Fn() -> Tensor); 3] = [
            ("cross-entropy", &cross_entropy),
            ("spatial", &spatial_only),
            ("both", &both),
        ];
        for (what, f) in parts {
            let started = std::time::Instant::now();
            let loss = f();
            let forward = started.elapsed();
            loss.backward().unwrap();
            eprintln!(
                "{what}: forward {forward:.2?}, forward + backward {:.2?}",
                started.elapsed()
            );
        }
    }
}
