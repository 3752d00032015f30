//! Int8 activations for int8 models ("W8A8"): each layer's input is quantised per image to
//! bytes, and the kernels multiply bytes by int8 weights in integers ([`block::accumulate_q8`],
//! `vpdpbusd` on AVX-512-VNNI and AVX-VNNI), four times the multiply-adds per instruction of the
//! f32 path.
//!
//! An input `x` of image `b` becomes `a = round(x / s_b)` in `[-127, 127]` with `s_b = max|x| /
//! 127` over the image's whole layer input, stored as the byte `a + 128` (VNNI multiplies
//! unsigned by signed bytes). A unit's sum is then `Σ (a + 128)·q = Σ a·q + 128·Σ q`: the second
//! term, fixed per unit, is computed once when the kernel is packed and subtracted, so the
//! result `s_b · scale_unit · Σ a·q + bias` carries only the rounding of `a`.
//!
//! [`block::accumulate_q8`]: super::block::accumulate_q8

use alloc::vec;
use alloc::vec::Vec;

use super::local::{LocalShape, Sharing};

/// What an activation byte adds to `a`.
pub const ZERO_POINT: i32 = 128;

/// The most rows a block may have: `Σ a·q` over them stays within `i32` (|a|, |q| ≤ 127), so
/// the wrapping integer sums come out exact.
pub const MAX_BLOCK_ROWS: usize = (i32::MAX / (127 * 127)) as usize;

/// An int8 kernel in the layout [`super::block::accumulate_q8`] reads: for every block, patch
/// row `ky` and group `g` of four consecutive inputs of that row (the row's last group padded
/// with zero weights), one word per unit holding the four int8 weights.
#[derive(Clone, Debug)]
pub struct Packed {
    words: Vec<u32>,
    /// `ZERO_POINT · Σ_j q[j, unit]` for every block's units.
    offsets: Vec<i32>,
    scales: Vec<f32>,
    /// Groups per patch row.
    groups: usize,
    rows: usize,
    width: usize,
}

impl Packed {
    /// Packs `blocks` blocks of `rows × row_len` block rows × `width` units (int8 values and
    /// one scale per unit, as stored). Panics unless the sizes agree.
    pub fn new(
        values: &[i8],
        scales: &[f32],
        blocks: usize,
        rows: usize,
        row_len: usize,
        width: usize,
    ) -> Packed {
        let block_len = rows * row_len * width;
        assert!(values.len() >= blocks * block_len && scales.len() >= blocks * width);
        let groups = row_len.div_ceil(4);
        let packed_len = rows * groups * width;
        let mut words = vec![0u32; blocks * packed_len];
        let mut offsets = vec![0i32; blocks * width];
        for block in 0..blocks {
            let q = &values[block * block_len..][..block_len];
            let words = &mut words[block * packed_len..][..packed_len];
            let offsets = &mut offsets[block * width..][..width];
            for ky in 0..rows {
                for i in 0..row_len {
                    let src = &q[(ky * row_len + i) * width..][..width];
                    let dst = &mut words[(ky * groups + i / 4) * width..][..width];
                    let shift = 8 * (i % 4);
                    for ((word, offset), &q) in dst.iter_mut().zip(offsets.iter_mut()).zip(src) {
                        *word |= u32::from(q as u8) << shift;
                        *offset += ZERO_POINT * i32::from(q);
                    }
                }
            }
        }
        Packed {
            words,
            offsets,
            scales: scales[..blocks * width].to_vec(),
            groups,
            rows,
            width,
        }
    }

    /// Packs the int8 kernel of a locally connected or conv layer.
    pub fn for_layer(
        values: &[i8],
        scales: &[f32],
        shape: &LocalShape,
        sharing: Sharing,
    ) -> Packed {
        let blocks = match sharing {
            Sharing::PerPosition => shape.positions(),
            Sharing::Shared => 1,
        };
        let row_len = shape.kernel * shape.input[2];
        Packed::new(
            values,
            scales,
            blocks,
            shape.kernel,
            row_len,
            shape.output[2],
        )
    }

    pub fn blocks(&self) -> usize {
        self.offsets.len() / self.width.max(1)
    }

    /// Groups per patch row.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Block `index`: its words, per-unit offsets and per-unit weight scales.
    pub fn block(&self, index: usize) -> (&[u32], &[i32], &[f32]) {
        let len = self.rows * self.groups * self.width;
        (
            &self.words[index * len..][..len],
            &self.offsets[index * self.width..][..self.width],
            &self.scales[index * self.width..][..self.width],
        )
    }
}

/// A batch's layer input quantised by [`quantise`]: image `b`'s bytes start at `b · stride`.
#[derive(Clone, Copy, Debug)]
pub struct QuantisedInputs<'a> {
    pub bytes: &'a [u8],
    /// One per image.
    pub scales: &'a [f32],
    pub stride: usize,
}

/// Bytes from one image's quantised input to the next: whole cache lines, an odd number of
/// them, so that the same row of different images falls in different L1 sets. (With a stride
/// that is a multiple of 4 KiB, as a 24 × 24 × 64 input is, the sixteen images of a tile would
/// compete for the ways of one set.)
pub fn image_stride(per_image: usize) -> usize {
    (per_image.div_ceil(64) | 1) * 64
}

/// Quantises `x`, images of `per_image` values, into `bytes`, image `b` at `b ·`
/// [`image_stride`]`(per_image)`, and the images' scales into `scales` (with the `parallel`
/// feature, images on all threads). An image of zeros gets scale 0; one holding NaN or ±∞ gets
/// NaN, so its outputs are NaN as in the f32 path.
pub fn quantise(x: &[f32], per_image: usize, bytes: &mut [u8], scales: &mut [f32]) {
    let images = x.len() / per_image.max(1);
    let stride = image_stride(per_image);
    let (bytes, scales) = (&mut bytes[..images * stride], &mut scales[..images]);
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        x.par_chunks_exact(per_image)
            .zip(bytes.par_chunks_exact_mut(stride))
            .zip(scales.par_iter_mut())
            .for_each(|((x, bytes), scale)| *scale = quantise_image(x, bytes));
    }
    #[cfg(not(feature = "parallel"))]
    for ((x, bytes), scale) in x
        .chunks_exact(per_image)
        .zip(bytes.chunks_exact_mut(stride))
        .zip(scales)
    {
        *scale = quantise_image(x, bytes);
    }
}

/// One image of [`quantise`] into the start of `bytes`; returns its scale.
fn quantise_image(x: &[f32], bytes: &mut [u8]) -> f32 {
    let bytes = &mut bytes[..x.len()];
    // Sixteen lanes of maxima, and of `v · 0`, which is NaN exactly for NaN and ±∞: written so
    // that the compiler vectorises them.
    const LANES: usize = 16;
    let (mut max, mut bad) = ([0f32; LANES], [0f32; LANES]);
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for ((m, b), &v) in max.iter_mut().zip(&mut bad).zip(chunk) {
            *m = if v.abs() > *m { v.abs() } else { *m };
            *b += v * 0.0;
        }
    }
    for (&v, (m, b)) in rest.iter().zip(max.iter_mut().zip(&mut bad)) {
        *m = if v.abs() > *m { v.abs() } else { *m };
        *b += v * 0.0;
    }
    let max = max.iter().fold(0f32, |a, &m| a.max(m));
    if bad.iter().any(|&b| b != 0.0) {
        bytes.fill(ZERO_POINT as u8);
        return f32::NAN;
    }
    if max == 0.0 {
        bytes.fill(ZERO_POINT as u8);
        return 0.0;
    }
    let inv = 127.0 / max;
    for (b, &v) in bytes.iter_mut().zip(x) {
        *b = (nearest(v * inv) as i32 + ZERO_POINT) as u8;
    }
    max / 127.0
}

/// `y` rounded to the nearest integer (ties to even) for `|y| ≤ 2²²`: adding and removing
/// 1.5·2²³ leaves no fraction bits, and unlike `libm::roundf` it vectorises.
#[inline]
fn nearest(y: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    (y + SHIFT) - SHIFT
}

/// `s_x · scale · (sum − offset) + bias` for one image's units: the integer sums (held in the
/// outputs' 32-bit slots) become the layer's f32 outputs.
pub fn dequantise(
    out: &mut [f32],
    input_scale: f32,
    offsets: &[i32],
    scales: &[f32],
    bias: Option<&[f32]>,
) {
    let units = out.iter_mut().zip(offsets).zip(scales);
    for (i, ((o, &offset), &scale)) in units.enumerate() {
        let sum = (o.to_bits() as i32).wrapping_sub(offset);
        *o = sum as f32 * (input_scale * scale) + bias.map_or(0.0, |b| b[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantised_inputs_are_within_half_a_step() {
        let x = [0.5, -1.0, 0.25, 0.0, 2.0, -0.7, 1e-4, 0.0];
        let (mut bytes, mut scales) = ([0u8; 192], [0f32; 2]);
        assert_eq!(image_stride(4), 64);
        quantise(&x, 4, &mut bytes, &mut scales);
        assert_eq!(scales, [1.0 / 127.0, 2.0 / 127.0]);
        for (i, &v) in x.iter().enumerate() {
            let b = bytes[i / 4 * 64 + i % 4];
            let back = (i32::from(b) - ZERO_POINT) as f32 * scales[i / 4];
            assert!(
                (back - v).abs() <= 0.5 * scales[i / 4] * 1.0001,
                "{v} → {back}"
            );
        }
        // The largest magnitude maps to ±127 exactly.
        assert_eq!(bytes[1], 1);
        assert_eq!(bytes[64], 255);
    }

    #[test]
    fn zero_and_non_finite_images() {
        let x = [0.0, 0.0, 1.0, f32::NAN, f32::INFINITY, 0.0];
        let (mut bytes, mut scales) = ([0u8; 192], [1f32; 3]);
        quantise(&x, 2, &mut bytes, &mut scales);
        assert_eq!(scales[0], 0.0);
        assert!(scales[1].is_nan() && scales[2].is_nan());
        for b in 0..3 {
            assert_eq!(bytes[64 * b..][..2], [128; 2]);
        }
    }

    #[test]
    fn image_strides_are_odd_line_counts() {
        for (per_image, stride) in [
            (1, 64),
            (64, 64),
            (65, 192),
            (36_864, 36_928),
            (67_500, 67_520),
        ] {
            assert_eq!(image_stride(per_image), stride, "{per_image}");
        }
    }

    #[test]
    fn packing_groups_four_rows_and_pads_the_last() {
        // Two blocks, 2 patch rows × 5 inputs × 3 units; q = distinct small values.
        let (blocks, rows, row_len, width) = (2, 2, 5, 3);
        let values: Vec<i8> = (0..blocks * rows * row_len * width)
            .map(|i| (i as i32 % 251 - 125) as i8)
            .collect();
        let scales: Vec<f32> = (0..blocks * width).map(|i| i as f32).collect();
        let p = Packed::new(&values, &scales, blocks, rows, row_len, width);
        assert_eq!(p.groups(), 2);
        for block in 0..blocks {
            let (words, offsets, s) = p.block(block);
            assert_eq!(s, &scales[block * width..][..width]);
            for c in 0..width {
                let q =
                    |ky: usize, i: usize| values[((block * rows + ky) * row_len + i) * width + c];
                let mut sum = 0;
                for ky in 0..rows {
                    for g in 0..2 {
                        let bytes = words[(ky * 2 + g) * width + c].to_le_bytes();
                        for (r, &byte) in bytes.iter().enumerate() {
                            let i = 4 * g + r;
                            let want = if i < row_len { q(ky, i) } else { 0 };
                            assert_eq!(byte as i8, want, "block {block} ky {ky} i {i} c {c}");
                        }
                    }
                    sum += (0..row_len).map(|i| i32::from(q(ky, i))).sum::<i32>();
                }
                assert_eq!(offsets[c], ZERO_POINT * sum);
            }
        }
    }

    #[test]
    fn dequantise_removes_the_offset_and_scales() {
        let mut out = [
            f32::from_bits(300i32 as u32),
            f32::from_bits((-50i32) as u32),
        ];
        dequantise(&mut out, 0.5, &[100, -10], &[2.0, 4.0], Some(&[1.0, -1.0]));
        assert_eq!(out, [0.5 * 2.0 * 200.0 + 1.0, 0.5 * 4.0 * -40.0 - 1.0]);
    }
}
