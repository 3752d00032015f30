//! A hardware view of a model's energy: operations and bytes moved per stimulus, priced with a
//! table of per-operation energies.
//!
//! The cost model, per layer and stimulus at batch 1:
//! * `macs` = positions × patch length × filters (dense; the readout is in × out);
//! * `weight_bytes` = every weight of the layer (kernel, bias, norm) read once from DRAM — no
//!   reuse across stimuli, which is what a locally connected layer forces (each weight is used
//!   once per stimulus) and what batch-1 inference of any layer does;
//! * `activation_bytes` = the layer's input read once and its output written once, 4 bytes per
//!   value, from on-chip SRAM;
//! * energy = macs · E_mac + weight_bytes · E_dram + activation_bytes · E_sram.
//!
//! The sparsity-aware ("event-driven") estimate counts only MACs whose input is non-zero, and —
//! for locally connected layers, whose weights are used once each — only the weights those MACs
//! read; conv and readout weights are still read whole.

use crate::format::DType;
use crate::spec::{LayerKind, ModelSpec, TensorOwner};

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// Energies per operation in picojoules.
///
/// Defaults: Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm at 0.9 V — f32 multiply
/// 3.7 pJ + add 0.9 pJ; f16 multiply 1.1 + add 0.4; int8 multiply 0.2 + int32 accumulate 0.1;
/// a 32-bit read from an 8 KB SRAM 5 pJ (1.25 pJ per byte) and from DRAM 640 pJ (160 pJ per byte).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct EnergyTable {
    pub mac_f32_pj: f64,
    pub mac_f16_pj: f64,
    pub mac_int8_pj: f64,
    pub sram_pj_per_byte: f64,
    pub dram_pj_per_byte: f64,
}

impl Default for EnergyTable {
    fn default() -> Self {
        EnergyTable {
            mac_f32_pj: 3.7 + 0.9,
            mac_f16_pj: 1.1 + 0.4,
            mac_int8_pj: 0.2 + 0.1,
            sram_pj_per_byte: 5.0 / 4.0,
            dram_pj_per_byte: 640.0 / 4.0,
        }
    }
}

impl EnergyTable {
    /// Energy of one MAC with kernels stored as `weights`.
    pub fn mac_pj(&self, weights: DType) -> f64 {
        match weights {
            DType::F32 => self.mac_f32_pj,
            DType::F16 => self.mac_f16_pj,
            DType::I8 => self.mac_int8_pj,
        }
    }
}

/// Operations and bytes of one layer for one stimulus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LayerCost {
    pub macs: u64,
    pub weights: u64,
    pub weight_bytes: u64,
    pub activation_bytes: u64,
    /// Weights used once each per stimulus (locally connected), so that skipping a MAC also
    /// skips its weight read.
    pub weights_follow_macs: bool,
}

impl LayerCost {
    /// Energy in picojoules.
    pub fn energy_pj(&self, table: &EnergyTable, weights: DType) -> f64 {
        self.macs as f64 * table.mac_pj(weights)
            + self.weight_bytes as f64 * table.dram_pj_per_byte
            + self.activation_bytes as f64 * table.sram_pj_per_byte
    }

    /// Energy in picojoules when only `nonzero_macs` (per stimulus, may be fractional as a mean)
    /// are performed.
    pub fn sparse_energy_pj(&self, table: &EnergyTable, weights: DType, nonzero_macs: f64) -> f64 {
        let weight_bytes = if self.weights_follow_macs && self.macs > 0 {
            // Kernel weights read in proportion to the MACs done; bias and norm in full.
            let size = weights.size() as u64;
            let other_bytes = self.weight_bytes - self.macs * size;
            nonzero_macs * size as f64 + other_bytes as f64
        } else {
            self.weight_bytes as f64
        };
        nonzero_macs * table.mac_pj(weights)
            + weight_bytes * table.dram_pj_per_byte
            + self.activation_bytes as f64 * table.sram_pj_per_byte
    }
}

/// Costs of every layer, then of the readout (last element), per stimulus.
pub fn layer_costs(
    spec: &ModelSpec,
    weights: DType,
) -> Result<alloc::vec::Vec<LayerCost>, crate::SpecError> {
    let geometry = spec.geometry()?;
    let tensors = spec.tensors()?;
    let count = |owner: TensorOwner| {
        tensors
            .iter()
            .filter(|t| t.owner == owner)
            .map(|t| t.len() as u64)
            .sum::<u64>()
    };
    // Only kernels take the storage type; int8 kernels add an f32 scale per unit.
    let bytes = |owner: TensorOwner| {
        tensors
            .iter()
            .filter(|t| t.owner == owner)
            .map(|t| match t.unit_shape() {
                Some(units) => {
                    let scales = match weights {
                        DType::I8 => 4 * units.iter().product::<usize>(),
                        _ => 0,
                    };
                    (t.len() * weights.size() + scales) as u64
                }
                None => 4 * t.len() as u64,
            })
            .sum::<u64>()
    };
    let mut costs: alloc::vec::Vec<LayerCost> = spec
        .layers
        .iter()
        .zip(&geometry)
        .enumerate()
        .map(|(l, (layer, g))| {
            let n = count(TensorOwner::Layer(l));
            LayerCost {
                macs: (g.positions() * g.patch * g.output[2]) as u64,
                weights: n,
                weight_bytes: bytes(TensorOwner::Layer(l)),
                activation_bytes: 4 * (g.input_len() + g.output_len()) as u64,
                weights_follow_macs: layer.kind == LayerKind::LocallyConnected,
            }
        })
        .collect();
    let n_in = geometry.last().map_or(0, |g| g.pooled_len()) as u64;
    let classes = spec.readout.classes as u64;
    let n = count(TensorOwner::Readout);
    costs.push(LayerCost {
        macs: n_in * classes,
        weights: n,
        weight_bytes: bytes(TensorOwner::Readout),
        activation_bytes: 4 * (n_in + classes),
        weights_follow_macs: false,
    });
    Ok(costs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{
        Activation, InputSpec, LayerSpec, Norm, NormParams, OutputActivation, Preprocess,
        ReadoutSpec,
    };
    use alloc::vec;

    /// 5×5×2 input, one locally connected layer (3 filters, kernel 3, stride 2: 2×2 output),
    /// LayerNorm, no pool, readout to 4 classes.
    fn hand_countable(kind: LayerKind) -> ModelSpec {
        ModelSpec {
            input: InputSpec {
                height: 5,
                width: 5,
                channels: 2,
                preprocess: Preprocess::SignedUnit,
            },
            layers: vec![LayerSpec {
                kind,
                filters: 3,
                kernel: 3,
                stride: 2,
                bias: true,
                activation: Activation::Relu,
                norm: Norm::LayerNorm(NormParams::default()),
                norm_first: false,
                pool_after: false,
            }],
            readout: ReadoutSpec {
                classes: 4,
                bias: true,
            },
            output: OutputActivation::Softmax,
        }
    }

    #[test]
    fn locally_connected_costs_by_hand() {
        let costs = layer_costs(&hand_countable(LayerKind::LocallyConnected), DType::F32).unwrap();
        // 4 positions × 18-long patches × 3 filters = 216 MACs; weights 216 + bias 12 + γ, β 6.
        assert_eq!(
            costs[0],
            LayerCost {
                macs: 216,
                weights: 234,
                weight_bytes: 936,
                activation_bytes: 4 * (50 + 12),
                weights_follow_macs: true
            }
        );
        // Readout: 12 inputs × 4 classes, 48 + 4 weights.
        assert_eq!(
            costs[1],
            LayerCost {
                macs: 48,
                weights: 52,
                weight_bytes: 208,
                activation_bytes: 4 * 16,
                weights_follow_macs: false
            }
        );
        let t = EnergyTable::default();
        let e = costs[0].energy_pj(&t, DType::F32);
        assert!((e - (216.0 * 4.6 + 936.0 * 160.0 + 248.0 * 1.25)).abs() < 1e-9);
        // Half the MACs skipped: half the kernel bytes, bias and norm still read.
        let s = costs[0].sparse_energy_pj(&t, DType::F32, 108.0);
        assert!((s - (108.0 * 4.6 + (432.0 + 72.0) * 160.0 + 248.0 * 1.25)).abs() < 1e-9);
    }

    #[test]
    fn conv_costs_by_hand() {
        let costs = layer_costs(&hand_countable(LayerKind::Conv), DType::I8).unwrap();
        // Same MACs; shared kernel 18·3 = 54 bytes with 3 f32 scales, bias 3 and γ, β 6 in f32.
        assert_eq!(
            costs[0],
            LayerCost {
                macs: 216,
                weights: 63,
                weight_bytes: 54 + 4 * (3 + 3 + 6),
                activation_bytes: 248,
                weights_follow_macs: false
            }
        );
        let t = EnergyTable::default();
        let s = costs[0].sparse_energy_pj(&t, DType::I8, 100.0);
        assert!((s - (100.0 * 0.3 + 102.0 * 160.0 + 248.0 * 1.25)).abs() < 1e-9);
    }

    #[test]
    fn paper_alltnn_macs_equal_its_kernel_weights() {
        let spec = ModelSpec::paper_alltnn();
        let costs = layer_costs(&spec, DType::F32).unwrap();
        let macs: u64 = costs.iter().map(|c| c.macs).sum();
        let bytes: u64 = costs.iter().map(|c| c.weight_bytes).sum();
        assert_eq!(bytes, 4 * 108_481_437);
        // Every kernel weight of a locally connected layer is one MAC per stimulus.
        let kernels: u64 = spec
            .tensors()
            .unwrap()
            .iter()
            .filter(|t| t.role == crate::spec::TensorRole::Kernel)
            .map(|t| t.len() as u64)
            .sum();
        assert_eq!(macs, kernels);
    }
}
