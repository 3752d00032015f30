//! The original's per-unit energy (DESIGN.md "Energy"), accumulated while inference runs, in
//! memory that does not grow with the number of stimuli.
//!
//! For unit `u` of a layer and one stimulus:
//! * postsynaptic `E_post = |a_u|`, `a` the layer's output after its activation (post-ReLU);
//! * presynaptic `E_pre = Σ_k |w_k|·|x_k|`: the layer with absolute weights and no bias applied to
//!   the absolute value of its actual input (the previous block's output after norm and
//!   pooling; the preprocessed image for layer 0);
//! * `E = E_post / 3 + 2·E_pre / 3`.
//!
//! Totals are kept per unit and summed over stimuli in f64. The meter also counts the
//! multiply-accumulates whose input is non-zero — the event-driven view of the same layers.

use alloc::vec;
use alloc::vec::Vec;

use crate::engine::{self, Engine, Model};
use crate::kernels::local::{self, LocalShape};
use crate::kernels::weights::Weights;
use crate::spec::LayerKind;

/// Per-unit energy sums of one layer, `H × W × C` (row-major, like its activation).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerEnergy {
    pub post: Vec<f64>,
    pub pre: Vec<f64>,
    /// Multiply-accumulates with a non-zero input, summed over stimuli.
    pub nonzero_macs: u64,
}

impl LayerEnergy {
    /// Per-unit total `E_post / 3 + 2·E_pre / 3`.
    pub fn totals(&self) -> Vec<f64> {
        self.post
            .iter()
            .zip(&self.pre)
            .map(|(p, q)| p / 3.0 + 2.0 * q / 3.0)
            .collect()
    }

    pub fn post_sum(&self) -> f64 {
        self.post.iter().sum()
    }

    pub fn pre_sum(&self) -> f64 {
        self.pre.iter().sum()
    }

    pub fn total(&self) -> f64 {
        self.post_sum() / 3.0 + 2.0 * self.pre_sum() / 3.0
    }
}

/// Accumulates energy over the batches an [`Engine`] runs.
pub struct EnergyMeter {
    /// `|W|` of every layer, derived once; the model itself is never changed.
    abs_kernels: Vec<Vec<f32>>,
    layers: Vec<LayerEnergy>,
    stimuli: u64,
    abs_input: Vec<f32>,
    pre_out: Vec<f32>,
    patch: Vec<f32>,
}

impl EnergyMeter {
    /// A meter for `model` and batches of up to `capacity` images.
    pub fn new(model: &Model<'_>, capacity: usize) -> EnergyMeter {
        let geometry = model.geometry();
        let abs_kernels = geometry
            .iter()
            .enumerate()
            .map(|(l, g)| {
                let mut w = model.layer_weights(l).kernel.to_f32(g.output[2]);
                w.iter_mut().for_each(|w| *w = w.abs());
                w
            })
            .collect();
        let layers = geometry
            .iter()
            .map(|g| LayerEnergy {
                post: vec![0.0; g.output_len()],
                pre: vec![0.0; g.output_len()],
                nonzero_macs: 0,
            })
            .collect();
        let max =
            |f: fn(&crate::spec::LayerGeometry) -> usize| geometry.iter().map(f).max().unwrap_or(0);
        EnergyMeter {
            abs_kernels,
            layers,
            stimuli: 0,
            abs_input: vec![0.0; capacity * max(|g| g.input_len())],
            pre_out: vec![0.0; capacity * max(|g| g.output_len())],
            patch: vec![0.0; max(|g| g.patch)],
        }
    }

    /// Adds the energy of the batch `engine` has just run on `input` (the same preprocessed
    /// values passed to [`Engine::run`]).
    pub fn accumulate(&mut self, engine: &Engine<'_, '_>, input: &[f32]) {
        let model = engine.model();
        let batch = engine.batch();
        for (l, g) in model.geometry().iter().enumerate() {
            let layer = &model.spec().layers[l];
            let x = if l == 0 {
                input
            } else {
                engine.block_output(l - 1)
            };
            let n_in = batch * g.input_len();
            let abs_x = &mut self.abs_input[..n_in];
            for (a, v) in abs_x.iter_mut().zip(&x[..n_in]) {
                *a = v.abs();
            }
            let (shape, sharing) = (engine::layer_shape(layer, g), engine::sharing(layer));
            let n_out = batch * g.output_len();
            let pre_out = &mut self.pre_out[..n_out];
            local::forward(
                &shape,
                sharing,
                Weights::F32(&self.abs_kernels[l]),
                None,
                batch,
                abs_x,
                pre_out,
            );
            let energy = &mut self.layers[l];
            energy.nonzero_macs += nonzero_macs(&shape, batch, abs_x, &mut self.patch[..g.patch]);
            let act = engine.activation(l);
            for b in 0..batch {
                let unit = b * g.output_len()..(b + 1) * g.output_len();
                for ((post, pre), (&a, &p)) in energy
                    .post
                    .iter_mut()
                    .zip(energy.pre.iter_mut())
                    .zip(act[unit.clone()].iter().zip(&pre_out[unit]))
                {
                    *post += a.abs() as f64;
                    *pre += p as f64;
                }
            }
        }
        self.stimuli += batch as u64;
    }

    /// Stimuli accumulated so far.
    pub fn stimuli(&self) -> u64 {
        self.stimuli
    }

    pub fn layers(&self) -> &[LayerEnergy] {
        &self.layers
    }
}

/// Multiply-accumulates of a layer whose input value is non-zero, over a batch.
fn nonzero_macs(shape: &LocalShape, batch: usize, input: &[f32], patch: &mut [f32]) -> u64 {
    let in_len: usize = shape.input.iter().product();
    let mut count = 0u64;
    for b in 0..batch {
        let image = &input[b * in_len..(b + 1) * in_len];
        for p in 0..shape.positions() {
            local::gather_patch(
                shape,
                image,
                p / shape.output[1],
                p % shape.output[1],
                patch,
            );
            count += patch.iter().filter(|&&x| x != 0.0).count() as u64;
        }
    }
    count * shape.output[2] as u64
}

/// Per-layer energy totals `Σ E_post / 3 + 2·Σ E_pre / 3` (over units and images) of the batch
/// `engine` has just run on `input`, into `totals` (one value per layer), without allocating:
/// the form for targets that cannot hold an [`EnergyMeter`]'s per-unit sums and `|W|` copies.
/// Sums run in f64 in another order than the meter's, so they agree with its
/// [`LayerEnergy::total`] to rounding.
pub fn batch_totals(engine: &Engine<'_, '_>, input: &[f32], totals: &mut [f64]) {
    let model = engine.model();
    let batch = engine.batch();
    for ((l, g), total) in model.geometry().iter().enumerate().zip(totals.iter_mut()) {
        let layer = &model.spec().layers[l];
        let x = if l == 0 {
            &input[..batch * g.input_len()]
        } else {
            engine.block_output(l - 1)
        };
        let post: f64 = engine.activation(l).iter().map(|a| a.abs() as f64).sum();
        let ([_, w, c], [_, ow, f]) = (g.input, g.output);
        let (k, stride) = (layer.kernel as usize, layer.stride as usize);
        let kernel = model.layer_weights(l).kernel;
        let mut pre = 0.0;
        for p in 0..ow * g.output[0] {
            let (r, q) = (p / ow, p % ow);
            let block = match layer.kind {
                LayerKind::LocallyConnected => kernel.block(p, g.patch * f, f),
                LayerKind::Conv => kernel.block(0, g.patch * f, f),
            };
            for j in 0..g.patch {
                let (ky, kx, ci) = (j / (k * c), j / c % k, j % c);
                let at = ((r * stride + ky) * w + q * stride + kx) * c + ci;
                let abs_x: f64 = x[at..]
                    .iter()
                    .step_by(g.input_len())
                    .map(|v| v.abs() as f64)
                    .sum();
                if abs_x != 0.0 {
                    pre += abs_x * abs_row_sum(block, j, f);
                }
            }
        }
        *total = post / 3.0 + 2.0 * pre / 3.0;
    }
}

/// `Σ_u |w[row, u]|` of a weight block whose units are `units` wide, dequantised.
fn abs_row_sum(block: Weights<'_>, row: usize, units: usize) -> f64 {
    let span = row * units..(row + 1) * units;
    match block {
        Weights::F32(v) => v[span].iter().map(|w| w.abs() as f64).sum(),
        Weights::F16(v) => v[span].iter().map(|w| w.to_f32().abs() as f64).sum(),
        Weights::I8 { values, scales } => values[span]
            .iter()
            .zip(scales)
            .map(|(&q, &s)| (f32::from(q) * s).abs() as f64)
            .sum(),
    }
}
