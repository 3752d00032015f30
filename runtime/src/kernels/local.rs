//! Locally connected and convolutional layers (valid padding), one kernel for both: a conv is a
//! locally connected layer whose positions all share one weight block.
//!
//! Weights use the Keras layout: a locally connected kernel is `(positions, patch, filters)` with
//! the patch ordered `(ky, kx, c_in)`, a conv kernel `(k, k, c_in, filters)` — the same
//! `(patch, filters)` block once. Each position's block is one [`block::accumulate`] over
//! the input in place, so each weight is read once per batch.

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

    /// Where the patch of output position `p` lies in a batch of inputs `data` laid out as
    /// `(H, W, C)` images `batch_stride` apart, each patch row `row_len` block rows long.
    fn patch<'a, X>(
        &self,
        p: usize,
        data: &'a [X],
        batch_stride: usize,
        row_len: usize,
    ) -> Inputs<'a, X> {
        let [_, w, c] = self.input;
        let (r, q) = (p / self.output[1], p % self.output[1]);
        Inputs {
            data,
            base: (r * self.stride * w + q * self.stride) * c,
            batch_stride,
            rows: self.kernel,
            row_stride: w * c,
            row_len,
        }
    }
}

/// Image `b`'s columns `cols` of position `p` in the `batch × positions × F` outputs at `out`.
///
/// # Safety
/// They lie inside the outputs, and no one else accesses them while the slice lives.
unsafe fn columns<'o>(
    out: *mut f32,
    shape: &LocalShape,
    (b, p): (usize, usize),
    cols: &Range<usize>,
) -> &'o mut [f32] {
    let f = shape.output[2];
    let at = (b * shape.positions() + p) * f + cols.start;
    // SAFETY: the caller's.
    unsafe { core::slice::from_raw_parts_mut(out.add(at), cols.len()) }
}

use core::ops::Range;

use super::block::{self, Inputs};
use super::quantised::{self, Packed, QuantisedInputs};
use super::weights::{apply_scales, Weights};

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
/// `batch × OH × OW × F`. With the `parallel` feature, positions (or, for layers with few
/// positions, column ranges) are shared among rayon's threads; every output is computed the
/// same way whatever the thread count.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    shape: &LocalShape,
    sharing: Sharing,
    kernel: Weights<'_>,
    bias: Option<&[f32]>,
    batch: usize,
    input: &[f32],
    out: &mut [f32],
) {
    let layer = Layer {
        shape,
        sharing,
        kernel,
        bias,
        batch,
        input,
    };
    assert!(input.len() >= batch * shape.input.iter().product::<usize>());
    assert!(bias.is_none_or(|b| b.len() >= layer.blocks() * shape.output[2]));
    assert!(kernel.len() >= layer.blocks() * shape.patch_len() * shape.output[2]);
    // SAFETY: sizes checked above and by `each_position`, which hands out disjoint parts.
    each_position(shape, batch, out, |p, cols, out| unsafe {
        layer.position(p, cols, out)
    });
}

/// [`forward`] with int8 activations: `input` is the layer input quantised per image
/// ([`quantised::quantise`]; its bytes must extend 3 past the last image, which the last group of
/// a patch row may read) and `kernel` the layer's int8 kernel packed for it.
pub fn forward_q8(
    shape: &LocalShape,
    kernel: &Packed,
    bias: Option<&[f32]>,
    batch: usize,
    input: QuantisedInputs<'_>,
    out: &mut [f32],
) {
    let blocks = kernel.blocks();
    let in_len = shape.input.iter().product::<usize>();
    assert!(input.stride >= in_len && input.scales.len() >= batch);
    assert!(input.bytes.len() >= batch.saturating_sub(1) * input.stride + in_len + 3);
    assert!(bias.is_none_or(|b| b.len() >= blocks * shape.output[2]));
    assert!(blocks == 1 || blocks == shape.positions());
    assert_eq!(
        kernel.groups(),
        (shape.kernel * shape.input[2]).div_ceil(4),
        "kernel packed for another shape"
    );
    let (f, out_len) = (shape.output[2], shape.positions() * shape.output[2]);
    let position = |p: usize, cols: Range<usize>, out: *mut f32| {
        let block = if blocks == 1 { 0 } else { p };
        let (words, offsets, scales) = kernel.block(block);
        let inputs = shape.patch(p, input.bytes, input.stride, kernel.groups());
        // SAFETY: these columns of this position belong to this call (`each_position`).
        let outputs = |b: usize| unsafe { columns(out, shape, (b, p), &cols) };
        for b in 0..batch {
            // The integer sums start from zero (the bits of 0.0).
            outputs(b).fill(0.0);
        }
        block::check(
            words.len(),
            f,
            &cols,
            &inputs,
            batch,
            batch * out_len - p * f,
            out_len,
        );
        // SAFETY: bounds checked; exclusive access as above.
        unsafe {
            block::accumulate_q8_unchecked(
                words,
                f,
                cols.clone(),
                inputs,
                batch,
                out.add(p * f).cast(),
                out_len,
            )
        };
        let bias = bias.map(|b| &b[block * f..][cols.clone()]);
        for (b, &s) in input.scales[..batch].iter().enumerate() {
            let (offsets, scales) = (&offsets[cols.clone()], &scales[cols.clone()]);
            quantised::dequantise(outputs(b), s, offsets, scales, bias);
        }
    };
    each_position(shape, batch, out, position);
}

/// Runs `position(p, cols, out)` over every output position `p` (all `cols` of it, or on several
/// threads column ranges of it), with `out` the start of `out`'s `batch × positions × F` values;
/// each call may write only its columns of its position, in every image.
fn each_position(
    shape: &LocalShape,
    batch: usize,
    out: &mut [f32],
    position: impl Fn(usize, Range<usize>, *mut f32) + Sync,
) {
    let (positions, f) = (shape.positions(), shape.output[2]);
    assert!(out.len() >= batch * positions * f);
    #[cfg(feature = "parallel")]
    if let Some(tasks) = parallel::tasks(positions, f, batch * positions * shape.patch_len() * f) {
        let out = parallel::SharedOut(out.as_mut_ptr());
        parallel::run(tasks, |(ps, cols)| {
            for p in ps {
                // Tasks cover disjoint (position, column) ranges of `out`, which is borrowed
                // exclusively for the whole parallel run.
                position(p, cols.clone(), out.get());
            }
        });
        return;
    }
    for p in 0..positions {
        position(p, 0..f, out.as_mut_ptr());
    }
}

struct Layer<'s, 'w> {
    shape: &'s LocalShape,
    sharing: Sharing,
    kernel: Weights<'w>,
    bias: Option<&'s [f32]>,
    batch: usize,
    input: &'s [f32],
}

impl Layer<'_, '_> {
    fn blocks(&self) -> usize {
        match self.sharing {
            Sharing::PerPosition => self.shape.positions(),
            Sharing::Shared => 1,
        }
    }

    /// Columns `cols` of output position `p` for the whole batch.
    ///
    /// # Safety
    /// `out` holds `batch × positions × F` values that no one else accesses in these columns
    /// of this position meanwhile; the layer's buffers fit its shape.
    unsafe fn position(&self, p: usize, cols: Range<usize>, out: *mut f32) {
        let shape = self.shape;
        let (k, f) = (shape.patch_len(), shape.output[2]);
        let in_len = shape.input.iter().product::<usize>();
        let out_len = shape.positions() * f;
        let block = match self.sharing {
            Sharing::PerPosition => p,
            Sharing::Shared => 0,
        };
        let weights = self.kernel.block(block, k * f, f);
        let bias = self.bias.map(|b| &b[block * f..][cols.clone()]);
        let scales = weights.scales().map(|s| &s[cols.clone()]);
        for b in 0..self.batch {
            // SAFETY: these columns of this position belong to this call (caller's promise).
            let o = unsafe { columns(out, shape, (b, p), &cols) };
            // Int8 sums are scaled before the bias is added, so they start from zero.
            match (bias, scales) {
                (Some(bias), None) => o.copy_from_slice(bias),
                _ => o.fill(0.0),
            }
        }
        let inputs = shape.patch(p, self.input, in_len, shape.kernel * shape.input[2]);
        let out_len_total = self.batch * out_len - p * f;
        block::check(
            weights.len(),
            f,
            &cols,
            &inputs,
            self.batch,
            out_len_total,
            out_len,
        );
        // SAFETY: bounds checked; exclusive access promised by the caller.
        unsafe {
            block::accumulate_unchecked(
                weights,
                f,
                cols.clone(),
                inputs,
                self.batch,
                out.add(p * f),
                out_len,
            )
        };
        if let Some(scales) = scales {
            for b in 0..self.batch {
                // SAFETY: as above.
                apply_scales(unsafe { columns(out, shape, (b, p), &cols) }, scales, bias);
            }
        }
    }
}

#[cfg(feature = "parallel")]
mod parallel {
    use core::ops::Range;
    use rayon::prelude::*;

    /// The output buffer, shared by tasks that write disjoint parts of it.
    #[derive(Clone, Copy)]
    pub struct SharedOut(pub *mut f32);
    // SAFETY: tasks write disjoint ranges (see `super::forward`).
    unsafe impl Send for SharedOut {}
    unsafe impl Sync for SharedOut {}
    impl SharedOut {
        pub fn get(self) -> *mut f32 {
            self.0
        }
    }

    /// Tasks of (positions, columns), about four per thread; `None` when one thread would do
    /// (one thread, or under ~64k multiply-adds in all).
    pub fn tasks(
        positions: usize,
        f: usize,
        macs: usize,
    ) -> Option<alloc::vec::Vec<(Range<usize>, Range<usize>)>> {
        let threads = rayon::current_num_threads();
        if threads < 2 || macs < 1 << 16 {
            return None;
        }
        let want = 4 * threads;
        if positions >= want {
            let chunk = positions.div_ceil(want);
            return Some(
                (0..positions)
                    .step_by(chunk)
                    .map(|p| (p..(p + chunk).min(positions), 0..f))
                    .collect(),
            );
        }
        // Few positions (the last layers): split columns, in whole cache lines.
        let per = want.div_ceil(positions);
        let width = f.div_ceil(per).next_multiple_of(16);
        Some(
            (0..positions)
                .flat_map(|p| {
                    (0..f)
                        .step_by(width)
                        .map(move |c| (p..p + 1, c..(c + width).min(f)))
                })
                .collect(),
        )
    }

    pub fn run(
        tasks: alloc::vec::Vec<(Range<usize>, Range<usize>)>,
        work: impl Fn((Range<usize>, Range<usize>)) + Sync + Send,
    ) {
        tasks.into_par_iter().for_each(work);
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
        let mut out = vec![f32::NAN; batch * oh * ow * f];
        forward(shape, sharing, kernel, Some(bias), batch, input, &mut out);
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
