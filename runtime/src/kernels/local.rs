//! Locally connected and convolutional layers (valid padding), one kernel for both: a conv is a
//! locally connected layer whose positions all share one weight block.
//!
//! Weights use the Keras layout: a locally connected kernel is `(positions, patch, filters)` with
//! the patch ordered `(ky, kx, c_in)`, a conv kernel `(k, k, c_in, filters)` — the same
//! `(patch, filters)` block once. For every output position the patches of the whole batch are
//! gathered first, so each weight is read once per batch.

/// Sizes of one locally connected or conv layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalShape {
    /// Input (H, W, C).
    pub input: [usize; 3],
    pub kernel: usize,
    pub stride: usize,
    /// Output (H, W, filters).
    pub output: [usize; 3],
}

impl LocalShape {
    pub fn patch_len(&self) -> usize {
        self.kernel * self.kernel * self.input[2]
    }
    pub fn positions(&self) -> usize {
        self.output[0] * self.output[1]
    }
}

use super::weights::Weights;

/// Whether the kernel holds one weight block per position or one shared block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    PerPosition,
    Shared,
}

/// Copies the `(ky, kx, c)` patch of one image under output position `(r, q)` into `dst`.
pub fn gather_patch(shape: &LocalShape, image: &[f32], r: usize, q: usize, dst: &mut [f32]) {
    let [_, w, c] = shape.input;
    let row_len = shape.kernel * c;
    for ky in 0..shape.kernel {
        let y = r * shape.stride + ky;
        let start = (y * w + q * shape.stride) * c;
        dst[ky * row_len..(ky + 1) * row_len].copy_from_slice(&image[start..start + row_len]);
    }
}

/// `out = layer(input)` for `batch` images: `input` is `batch × H × W × C`, `out` is
/// `batch × OH × OW × F`; `scratch` holds at least `batch × patch + F` values.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    shape: &LocalShape,
    sharing: Sharing,
    kernel: Weights<'_>,
    bias: Option<&[f32]>,
    batch: usize,
    input: &[f32],
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let k = shape.patch_len();
    let f = shape.output[2];
    let in_len: usize = shape.input.iter().product();
    let out_len = shape.positions() * f;
    let (patches, row) = scratch.split_at_mut(batch * k);
    for p in 0..shape.positions() {
        let (r, q) = (p / shape.output[1], p % shape.output[1]);
        let (weights, bias) = match sharing {
            Sharing::PerPosition => (kernel.block(p, k * f, f), bias.map(|b| &b[p * f..][..f])),
            Sharing::Shared => (kernel.block(0, k * f, f), bias.map(|b| &b[..f])),
        };
        // Int8 sums are scaled before the bias is added, so they start from zero.
        let start = if weights.is_quantised() { None } else { bias };
        for b in 0..batch {
            gather_patch(
                shape,
                &input[b * in_len..(b + 1) * in_len],
                r,
                q,
                &mut patches[b * k..(b + 1) * k],
            );
            let o = &mut out[b * out_len + p * f..][..f];
            match start {
                Some(bias) => o.copy_from_slice(bias),
                None => o.fill(0.0),
            }
        }
        for j in 0..k {
            // Post-ReLU inputs are often exactly zero: skipping them saves the row.
            if (0..batch).all(|b| patches[b * k + j] == 0.0) {
                continue;
            }
            let w_row = weights.values(j * f..(j + 1) * f, row);
            for b in 0..batch {
                let x = patches[b * k + j];
                if x == 0.0 {
                    continue;
                }
                let o = &mut out[b * out_len + p * f..][..f];
                for (o, &w) in o.iter_mut().zip(w_row) {
                    *o += x * w;
                }
            }
        }
        if weights.is_quantised() {
            for b in 0..batch {
                weights.finish_units(&mut out[b * out_len + p * f..][..f], bias);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// The textbook definition, index by index.
    fn naive(
        shape: &LocalShape,
        sharing: Sharing,
        kernel: &[f32],
        bias: &[f32],
        batch: usize,
        input: &[f32],
    ) -> Vec<f32> {
        let [h, w, c] = shape.input;
        let [oh, ow, f] = shape.output;
        let k = shape.kernel;
        let mut out = vec![0.0; batch * oh * ow * f];
        for b in 0..batch {
            for r in 0..oh {
                for q in 0..ow {
                    let p = r * ow + q;
                    for fi in 0..f {
                        let mut acc = match sharing {
                            Sharing::PerPosition => bias[p * f + fi],
                            Sharing::Shared => bias[fi],
                        };
                        for ky in 0..k {
                            for kx in 0..k {
                                for ci in 0..c {
                                    let x = input[((b * h + r * shape.stride + ky) * w
                                        + q * shape.stride
                                        + kx)
                                        * c
                                        + ci];
                                    let j = (ky * k + kx) * c + ci;
                                    let wv = match sharing {
                                        Sharing::PerPosition => {
                                            kernel[(p * k * k * c + j) * f + fi]
                                        }
                                        Sharing::Shared => kernel[j * f + fi],
                                    };
                                    acc += x * wv;
                                }
                            }
                        }
                        out[((b * oh + r) * ow + q) * f + fi] = acc;
                    }
                }
            }
        }
        out
    }

    fn random_case(
        seed: &mut u64,
        (h, w, c, k, s, f, batch): (usize, usize, usize, usize, usize, usize, usize),
    ) -> (LocalShape, Vec<f32>) {
        let shape = LocalShape {
            input: [h, w, c],
            kernel: k,
            stride: s,
            output: [(h - k) / s + 1, (w - k) / s + 1, f],
        };
        let input = (0..batch * h * w * c)
            .map(|i| if i % 5 == 0 { 0.0 } else { lcg(seed) })
            .collect();
        (shape, input)
    }

    const CASES: [(usize, usize, usize, usize, usize, usize, usize); 3] = [
        (9, 7, 3, 3, 2, 5, 3),
        (6, 6, 2, 2, 1, 4, 1),
        (5, 8, 1, 5, 3, 2, 2),
    ];

    /// Runs `forward` with `kernel` and compares with the naive definition over its f32 values.
    fn check(
        shape: &LocalShape,
        sharing: Sharing,
        kernel: Weights<'_>,
        bias: &[f32],
        batch: usize,
        input: &[f32],
    ) {
        let [oh, ow, f] = shape.output;
        let mut scratch = vec![0.0; batch * shape.patch_len() + f];
        let mut out = vec![f32::NAN; batch * oh * ow * f];
        forward(
            shape,
            sharing,
            kernel,
            Some(bias),
            batch,
            input,
            &mut scratch,
            &mut out,
        );
        let want = naive(shape, sharing, &kernel.to_f32(f), bias, batch, input);
        for (a, b) in out.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn matches_the_naive_definition_for_every_weight_type() {
        let mut seed = 7;
        for case in CASES {
            let batch = case.6;
            let (shape, input) = random_case(&mut seed, case);
            let [oh, ow, f] = shape.output;
            for sharing in [Sharing::PerPosition, Sharing::Shared] {
                let blocks = if sharing == Sharing::PerPosition {
                    oh * ow
                } else {
                    1
                };
                let len = blocks * shape.patch_len() * f;
                let kernel: Vec<f32> = (0..len).map(|_| lcg(&mut seed)).collect();
                let bias: Vec<f32> = (0..blocks * f).map(|_| lcg(&mut seed)).collect();
                check(&shape, sharing, Weights::F32(&kernel), &bias, batch, &input);
                let halves: Vec<half::f16> =
                    kernel.iter().map(|&v| half::f16::from_f32(v)).collect();
                check(&shape, sharing, Weights::F16(&halves), &bias, batch, &input);
                let q: Vec<i8> = kernel.iter().map(|&v| (v * 127.0) as i8).collect();
                let scales: Vec<f32> = (0..blocks * f).map(|_| lcg(&mut seed).abs()).collect();
                let int8 = Weights::I8 {
                    values: &q,
                    scales: &scales,
                };
                check(&shape, sharing, int8, &bias, batch, &input);
            }
        }
    }
}
