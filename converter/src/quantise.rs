//! Storing kernels as f16 or int8 (symmetric, one scale per output unit).
//!
//! Only kernels are converted: biases and norm parameters are a fraction of a percent of the
//! weights and stay f32. A kernel is a sequence of blocks of `rows × units` values (see
//! `alltnn_runtime::kernels::weights`): a locally connected kernel has one block per
//! position, a conv or dense kernel one block.

use std::borrow::Cow;

use alltnn_runtime::format::DType;
use alltnn_runtime::spec::TensorSpec;
use half::f16;

/// One tensor as it will be stored; f32 tensors borrow their values.
pub struct Stored<'a> {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Cow<'a, [u8]>,
}

/// `values` of the tensor `spec` in `dtype` (kernels only; every other tensor stays f32),
/// followed by its scales when int8.
pub fn store<'a>(spec: &TensorSpec, values: &'a [f32], dtype: DType) -> Vec<Stored<'a>> {
    let stored = |name: String, dtype, shape: &[usize], bytes| Stored {
        name,
        dtype,
        shape: shape.to_vec(),
        bytes,
    };
    let name = spec.name();
    let f32_bytes = |v: &'a [f32]| Cow::Borrowed(bytemuck::cast_slice::<f32, u8>(v));
    let Some(units) = spec.unit_shape() else {
        return vec![stored(name, DType::F32, &spec.shape, f32_bytes(values))];
    };
    match dtype {
        DType::F32 => vec![stored(name, DType::F32, &spec.shape, f32_bytes(values))],
        DType::F16 => {
            let halves: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
            let bytes = bytemuck::cast_slice::<f16, u8>(&halves).to_vec();
            vec![stored(name, DType::F16, &spec.shape, Cow::Owned(bytes))]
        }
        DType::I8 => {
            let width = *units.last().expect("a unit axis");
            let blocks = units.iter().product::<usize>() / width.max(1);
            let (q, scales) = quantise_int8(values, width, blocks);
            let scale_name = alltnn_runtime::format::scale_name(&name);
            vec![
                stored(
                    name,
                    DType::I8,
                    &spec.shape,
                    Cow::Owned(bytemuck::cast_slice(&q).to_vec()),
                ),
                stored(
                    scale_name,
                    DType::F32,
                    &units,
                    Cow::Owned(bytemuck::cast_slice(&scales).to_vec()),
                ),
            ]
        }
    }
}

/// Symmetric int8 with one scale per unit: `values` holds `blocks` blocks of `rows × units`;
/// returns `q` and `blocks × units` scales with `scale = max|w| / 127` over the unit's
/// weights and `q = round(w / scale)`, so `|w − q·scale| ≤ scale / 2`. All-zero units get
/// scale 0.
pub fn quantise_int8(values: &[f32], units: usize, blocks: usize) -> (Vec<i8>, Vec<f32>) {
    let block = values.len() / blocks.max(1);
    let mut scales = vec![0.0f32; blocks * units];
    for (chunk, scales) in values
        .chunks(block.max(1))
        .zip(scales.chunks_exact_mut(units.max(1)))
    {
        for row in chunk.chunks_exact(units) {
            for (s, &w) in scales.iter_mut().zip(row) {
                *s = s.max(w.abs());
            }
        }
        scales.iter_mut().for_each(|s| *s /= 127.0);
    }
    let q = values
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let s = scales[(i / block) * units + i % units];
            if s == 0.0 {
                0
            } else {
                (w / s).round().clamp(-127.0, 127.0) as i8
            }
        })
        .collect();
    (q, scales)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alltnn_runtime::kernels::weights::Weights;

    #[test]
    fn int8_round_trip_is_within_half_a_step_of_each_unit() {
        // Two blocks of 3 rows × 2 units.
        let w = [
            0.5, -2.0, 0.25, 1.0, -1.0, 0.0, //
            0.0, 0.0, 3.0, 0.0, -0.3, 0.0,
        ];
        let (q, scales) = quantise_int8(&w, 2, 2);
        assert_eq!(scales, [1.0 / 127.0, 2.0 / 127.0, 3.0 / 127.0, 0.0]);
        assert_eq!((q[1], q[2], q[4]), (-127, 32, -127)); // 0.25 · 127 = 31.75
        let back = Weights::I8 {
            values: &q,
            scales: &scales,
        }
        .to_f32(2);
        for (i, (a, b)) in w.iter().zip(&back).enumerate() {
            let s = scales[(i / 6) * 2 + i % 2];
            assert!((a - b).abs() <= s / 2.0 + 1e-7, "{i}: {a} vs {b}");
        }
        assert_eq!(back[7], 0.0);
    }

    #[test]
    fn int8_is_a_fixed_point_of_its_own_dequantisation() {
        let w: Vec<f32> = (0..24).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1).collect();
        let (q, scales) = quantise_int8(&w, 4, 2);
        let back = Weights::I8 {
            values: &q,
            scales: &scales,
        }
        .to_f32(4);
        let (q2, scales2) = quantise_int8(&back, 4, 2);
        assert_eq!(q2, q);
        for (a, b) in scales2.iter().zip(&scales) {
            assert!((a - b).abs() <= 1e-6 * b, "{a} vs {b}");
        }
    }
}
