//! Kernel weights as stored: f32, f16, or int8 with one symmetric scale per output unit.
//!
//! A unit is one output value of a block: `(position, filter)` of a locally connected layer,
//! a filter of a conv layer, a class of the readout. Every kernel ends in its unit axis
//! (Keras layout), so a kernel is a sequence of blocks, each a `(rows, units)` matrix sharing
//! one row of scales; int8 values are `round(w / scale)` with `scale = max|w| / 127` over the
//! unit's weights, so `w ≈ q · scale`.

use alloc::vec::Vec;
use half::f16;

use crate::format::DType;

/// Turns int8 unit sums `Σ x·q` into `scale · Σ x·q + bias`.
pub fn apply_scales(sums: &mut [f32], scales: &[f32], bias: Option<&[f32]>) {
    match bias {
        Some(bias) => {
            for ((o, &s), &b) in sums.iter_mut().zip(scales).zip(bias) {
                *o = *o * s + b;
            }
        }
        None => {
            for (o, &s) in sums.iter_mut().zip(scales) {
                *o *= s;
            }
        }
    }
}

/// Borrowed kernel weights in one of the stored types.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    /// `scales` holds one value per unit: `blocks × units` values.
    I8 {
        values: &'a [i8],
        scales: &'a [f32],
    },
}

impl<'a> Weights<'a> {
    pub fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::F16(w) => w.len(),
            Weights::I8 { values, .. } => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> DType {
        match self {
            Weights::F32(_) => DType::F32,
            Weights::F16(_) => DType::F16,
            Weights::I8 { .. } => DType::I8,
        }
    }

    /// Block `index` of `len` values whose units are `units` wide.
    pub fn block(&self, index: usize, len: usize, units: usize) -> Weights<'a> {
        let values = index * len..(index + 1) * len;
        match *self {
            Weights::F32(w) => Weights::F32(&w[values]),
            Weights::F16(w) => Weights::F16(&w[values]),
            Weights::I8 { values: v, scales } => Weights::I8 {
                values: &v[values],
                scales: &scales[index * units..(index + 1) * units],
            },
        }
    }

    /// The per-unit scales of int8 weights.
    pub fn scales(&self) -> Option<&'a [f32]> {
        match self {
            Weights::I8 { scales, .. } => Some(scales),
            _ => None,
        }
    }

    /// All values as f32 (dequantised), for a kernel whose unit axis is `units` wide.
    pub fn to_f32(&self, units: usize) -> Vec<f32> {
        match self {
            Weights::F32(w) => w.to_vec(),
            Weights::F16(w) => w.iter().map(|h| h.to_f32()).collect(),
            Weights::I8 { values, scales } => {
                let blocks = scales.len() / units.max(1);
                let block = values.len() / blocks.max(1);
                values
                    .iter()
                    .enumerate()
                    .map(|(i, &q)| f32::from(q) * scales[(i / block) * units + i % units])
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_dequantises_with_the_scale_of_each_unit() {
        // Two blocks of 2 rows × 2 units.
        let q = [1, -2, 3, 4, 5, 6, -7, 8];
        let scales = [0.5, 1.0, 0.25, 2.0];
        let w = Weights::I8 {
            values: &q,
            scales: &scales,
        };
        assert_eq!(w.to_f32(2), [0.5, -2.0, 1.5, 4.0, 1.25, 12.0, -1.75, 16.0]);
        let second = w.block(1, 4, 2);
        assert_eq!(second.scales(), Some(&[0.25, 2.0][..]));
        let mut sums = [2.0, 1.0];
        apply_scales(&mut sums, second.scales().unwrap(), Some(&[1.0, 0.0]));
        assert_eq!(sums, [1.5, 2.0]);
    }
}
