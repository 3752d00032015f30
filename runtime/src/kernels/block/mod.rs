//! The inner product of every layer: `out[b, c] += Σ_j x[b, j] · w[j, c]` over one weight block
//! (a locally connected position, a conv layer, the readout), for a batch and a range of
//! output columns. Inputs are read in place, without gathering patches: a patch is a few
//! contiguous runs of the input image (one per kernel row).
//!
//! Implementations, picked once per process ([`isa`]): the portable scalar reference, on
//! x86-64 AVX2+FMA and AVX-512 kernels, and on AArch64 a NEON kernel; the SIMD ones convert f16
//! and int8 weights in registers and keep a tile of outputs × batch in registers while the block
//! streams by, so each weight is loaded once per four images. Within one output the sum runs
//! over `j` in order in every implementation, so results do not depend on tiling or thread
//! count; the SIMD paths differ from the scalar one only by fused multiply-add rounding.
//!
//! [`accumulate_q8`] is the same product for int8 activations, in integers: the scalar reference,
//! and with AVX-512-VNNI or AVX-VNNI the same tiles over `vpdpbusd`; all give the same bits.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod tiles;
#[cfg(target_arch = "x86_64")]
mod x86;

use core::ops::Range;
use core::sync::atomic::{AtomicU8, Ordering};

use half::f16;

use super::weights::Weights;

/// Instruction sets the kernels can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    /// AVX2 with FMA and F16C.
    Avx2,
    /// AVX2 as above and AVX-VNNI (CPUs with VNNI but without AVX-512): the AVX2 kernels, and
    /// int8 × int8 products for quantised activations ([`accumulate_q8`]) eight lanes at a time.
    Avx2Vnni,
    /// AVX-512 F/BW/VL with FMA and F16C.
    Avx512,
    /// AVX-512 as above and VNNI: the same kernels, and int8 × int8 products for quantised
    /// activations ([`accumulate_q8`]); without it those run on the scalar reference.
    Avx512Vnni,
    /// AArch64 Advanced SIMD.
    Neon,
}

impl Isa {
    /// Every instruction set, scalar first.
    pub const ALL: [Isa; 6] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::Avx2Vnni,
        Isa::Avx512,
        Isa::Avx512Vnni,
        Isa::Neon,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx2Vnni => "avx2vnni",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Neon => "neon",
        }
    }

    /// The best this CPU supports: the first of AVX-512 with VNNI, AVX-512, AVX2 with VNNI,
    /// AVX2, NEON that it has, else scalar.
    pub fn best() -> Isa {
        [
            Isa::Avx512Vnni,
            Isa::Avx512,
            Isa::Avx2Vnni,
            Isa::Avx2,
            Isa::Neon,
        ]
        .into_iter()
        .find(|isa| isa.is_supported())
        .unwrap_or(Isa::Scalar)
    }

    /// Whether this CPU can run it. With `std` x86 features are detected at run time; without,
    /// only what the build targets (`-C target-feature`/`target-cpu`) counts.
    pub fn is_supported(self) -> bool {
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        macro_rules! has {
            ($($f:tt),*) => { $(std::is_x86_feature_detected!($f))&&* };
        }
        #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
        macro_rules! has {
            ($($f:tt),*) => { [$(cfg!(target_feature = $f)),*].into_iter().all(|on| on) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        macro_rules! has {
            ($($f:tt),*) => {
                false
            };
        }
        let avx2 = || has!("avx2", "fma", "f16c");
        let avx512 = || avx2() && has!("avx512f", "avx512bw", "avx512vl");
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => avx2(),
            Isa::Avx2Vnni => avx2() && has!("avxvnni"),
            Isa::Avx512 => avx512(),
            Isa::Avx512Vnni => avx512() && has!("avx512vnni"),
            // Every AArch64 Linux target has NEON; a soft-float one does not.
            Isa::Neon => cfg!(all(target_arch = "aarch64", target_feature = "neon")),
        }
    }

    fn code(self) -> u8 {
        match self {
            Isa::Scalar => 1,
            Isa::Avx2 => 2,
            Isa::Avx512 => 3,
            Isa::Neon => 4,
            Isa::Avx512Vnni => 5,
            Isa::Avx2Vnni => 6,
        }
    }
}

static SELECTED: AtomicU8 = AtomicU8::new(0);

/// The instruction set in use: [`Isa::best`] unless [`set_isa`] chose another (with `std`,
/// the environment variable `ALLTNN_ISA=scalar|avx2|avx2vnni|avx512|avx512vnni|neon` does the
/// same at first use).
pub fn isa() -> Isa {
    let code = SELECTED.load(Ordering::Relaxed);
    if let Some(isa) = Isa::ALL.into_iter().find(|isa| isa.code() == code) {
        return isa;
    }
    let chosen = from_env().unwrap_or_else(Isa::best);
    SELECTED.store(chosen.code(), Ordering::Relaxed);
    chosen
}

#[cfg(feature = "std")]
fn from_env() -> Option<Isa> {
    let wanted = std::env::var("ALLTNN_ISA").ok()?;
    let isa = Isa::ALL.into_iter().find(|i| i.name() == wanted)?;
    set_isa(isa).ok()
}

#[cfg(not(feature = "std"))]
fn from_env() -> Option<Isa> {
    None
}

/// Selects the instruction set; refuses one this CPU lacks (returns the best there is).
pub fn set_isa(isa: Isa) -> Result<Isa, Isa> {
    if !isa.is_supported() {
        return Err(Isa::best());
    }
    SELECTED.store(isa.code(), Ordering::Relaxed);
    Ok(isa)
}

/// Where a batch's inputs for one block are: `x[b, j]`, `j = row · row_len + i`, is
/// `data[base + b · batch_stride + row · row_stride + i]`. For quantised inputs (`u8`, see
/// [`accumulate_q8`]) `x[b, j]` is a group of four bytes and the row's `i`-th group starts at
/// byte `4i`.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a, X = f32> {
    pub data: &'a [X],
    pub base: usize,
    pub batch_stride: usize,
    pub rows: usize,
    pub row_stride: usize,
    pub row_len: usize,
}

/// An input element type: f32 values, or bytes read in groups of four.
pub trait Input: Copy {
    /// Elements per block row index.
    const PER_INDEX: usize;
}

impl Input for f32 {
    const PER_INDEX: usize = 1;
}

impl Input for u8 {
    const PER_INDEX: usize = 4;
}

impl<X: Input> Inputs<'_, X> {
    fn len(&self) -> usize {
        self.rows * self.row_len
    }

    /// One past the last element read for `batch` images.
    fn end(&self, batch: usize) -> usize {
        self.base
            + (batch - 1) * self.batch_stride
            + (self.rows - 1) * self.row_stride
            + self.row_len * X::PER_INDEX
    }
}

/// `out[b · out_stride + c] += Σ_j x[b, j] · w[j · width + c]` for `c` in `cols` and `b <
/// batch`, with `w` the `k × width` block (`k = rows · row_len`). Int8 weights contribute
/// `x · q`; their scales are applied by [`super::weights::apply_scales`].
pub fn accumulate(
    w: Weights<'_>,
    width: usize,
    cols: Range<usize>,
    x: Inputs<'_>,
    batch: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    check(w.len(), width, &cols, &x, batch, out.len(), out_stride);
    // SAFETY: `out` is borrowed exclusively and `check` bounds every index.
    unsafe { accumulate_unchecked(w, width, cols, x, batch, out.as_mut_ptr(), out_stride) }
}

/// Panics unless every index [`accumulate`] or [`accumulate_q8`] touches lies inside its
/// buffers (`w_len` weights, `out_len` outputs).
pub(crate) fn check<X: Input>(
    w_len: usize,
    width: usize,
    cols: &Range<usize>,
    x: &Inputs<'_, X>,
    batch: usize,
    out_len: usize,
    out_stride: usize,
) {
    if batch == 0 || cols.is_empty() || x.len() == 0 {
        return;
    }
    assert!(
        cols.end <= width && w_len >= x.len() * width,
        "weight block too small"
    );
    assert!(x.end(batch) <= x.data.len(), "inputs out of range");
    assert!(
        (batch - 1) * out_stride + cols.end <= out_len,
        "outputs out of range"
    );
}

/// [`accumulate`] into raw output rows, so that threads can fill disjoint columns or
/// positions of the same buffer.
///
/// # Safety
/// [`check`] must hold for a buffer of `out_len` values at `out`, and no one else may access
/// the outputs this call writes while it runs.
pub(crate) unsafe fn accumulate_unchecked(
    w: Weights<'_>,
    width: usize,
    cols: Range<usize>,
    x: Inputs<'_>,
    batch: usize,
    out: *mut f32,
    out_stride: usize,
) {
    // SAFETY: the caller's bounds; `isa()` only reports what the CPU supports.
    unsafe { accumulate_with(isa(), w, width, cols, x, batch, out, out_stride) }
}

/// [`accumulate_unchecked`] with the instruction set `isa`.
///
/// # Safety
/// As [`accumulate_unchecked`], and this CPU must support `isa`.
#[allow(clippy::too_many_arguments)]
// Elsewhere every `isa` is the scalar one.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(unused_variables)
)]
unsafe fn accumulate_with(
    isa: Isa,
    w: Weights<'_>,
    width: usize,
    cols: Range<usize>,
    x: Inputs<'_>,
    batch: usize,
    out: *mut f32,
    out_stride: usize,
) {
    if batch == 0 || cols.is_empty() || x.len() == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Scalar {
        // SAFETY: forwarded from the caller.
        unsafe { x86::accumulate(isa, w, width, cols, x, batch, out, out_stride) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if isa == Isa::Neon {
        // SAFETY: forwarded from the caller.
        unsafe { neon::accumulate(w, width, cols, x, batch, out, out_stride) };
        return;
    }
    match w {
        Weights::F32(v) => scalar(v, |w| w, width, cols, x, batch, out, out_stride),
        Weights::F16(v) => scalar(v, f16::to_f32, width, cols, x, batch, out, out_stride),
        Weights::I8 { values, .. } => {
            scalar(values, f32::from, width, cols, x, batch, out, out_stride)
        }
    }
}

/// The reference: row by row, skipping zero inputs (post-ReLU inputs often are).
#[allow(clippy::too_many_arguments)]
fn scalar<T: Copy>(
    w: &[T],
    decode: impl Fn(T) -> f32,
    width: usize,
    cols: Range<usize>,
    x: Inputs<'_>,
    batch: usize,
    out: *mut f32,
    out_stride: usize,
) {
    for row in 0..x.rows {
        for i in 0..x.row_len {
            let j = row * x.row_len + i;
            let w_row = &w[j * width + cols.start..j * width + cols.end];
            for b in 0..batch {
                let xv = x.data[x.base + b * x.batch_stride + row * x.row_stride + i];
                if xv == 0.0 {
                    continue;
                }
                // SAFETY: bounds from `check`; these outputs belong to this call alone.
                let o = unsafe {
                    core::slice::from_raw_parts_mut(
                        out.add(b * out_stride + cols.start),
                        cols.len(),
                    )
                };
                for (o, &w) in o.iter_mut().zip(w_row) {
                    *o += xv * decode(w);
                }
            }
        }
    }
}

/// The integer product of quantised inputs and int8 weights: `out[b · out_stride + c] += Σ_j
/// x[b, j] · w[j · width + c]` in wrapping `i32` arithmetic, where an input `x[b, j]` is a group
/// of four unsigned bytes (see [`Inputs`]), a weight word `w[j · width + c]` holds the four signed
/// bytes of the same four block rows for column `c` (byte `r` in bits `8r..8r + 8`), and the
/// product of two groups is the sum of their four byte products — the AVX-512-VNNI `vpdpbusd`
/// operation. Integer sums are exact, so every instruction set, tiling and thread count gives
/// the same bits.
#[allow(clippy::too_many_arguments)]
pub fn accumulate_q8(
    w: &[u32],
    width: usize,
    cols: Range<usize>,
    x: Inputs<'_, u8>,
    batch: usize,
    out: &mut [i32],
    out_stride: usize,
) {
    check(w.len(), width, &cols, &x, batch, out.len(), out_stride);
    // SAFETY: `out` is borrowed exclusively and `check` bounds every index.
    unsafe { accumulate_q8_unchecked(w, width, cols, x, batch, out.as_mut_ptr(), out_stride) }
}

/// [`accumulate_q8`] into raw output rows (see [`accumulate_unchecked`]).
///
/// # Safety
/// As [`accumulate_unchecked`].
pub(crate) unsafe fn accumulate_q8_unchecked(
    w: &[u32],
    width: usize,
    cols: Range<usize>,
    x: Inputs<'_, u8>,
    batch: usize,
    out: *mut i32,
    out_stride: usize,
) {
    // SAFETY: the caller's bounds; `isa()` only reports what the CPU supports.
    unsafe { accumulate_q8_with(isa(), w, width, cols, x, batch, out, out_stride) }
}

/// [`accumulate_q8_unchecked`] with the instruction set `isa`.
///
/// # Safety
/// As [`accumulate_unchecked`], and this CPU must support `isa`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
unsafe fn accumulate_q8_with(
    isa: Isa,
    w: &[u32],
    width: usize,
    cols: Range<usize>,
    x: Inputs<'_, u8>,
    batch: usize,
    out: *mut i32,
    out_stride: usize,
) {
    if batch == 0 || cols.is_empty() || x.len() == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx512Vnni | Isa::Avx2Vnni) {
        // SAFETY: forwarded from the caller.
        unsafe { x86::accumulate_q8(isa, w, width, cols, x, batch, out, out_stride) };
        return;
    }
    for row in 0..x.rows {
        for i in 0..x.row_len {
            let j = row * x.row_len + i;
            let w_row = &w[j * width + cols.start..j * width + cols.end];
            for b in 0..batch {
                let at = x.base + b * x.batch_stride + row * x.row_stride + 4 * i;
                let xv = &x.data[at..at + 4];
                // SAFETY: bounds from `check`; these outputs belong to this call alone.
                let o = unsafe {
                    core::slice::from_raw_parts_mut(
                        out.add(b * out_stride + cols.start),
                        cols.len(),
                    )
                };
                for (o, &w) in o.iter_mut().zip(w_row) {
                    let dot = w
                        .to_le_bytes()
                        .iter()
                        .zip(xv)
                        .map(|(&w, &x)| i32::from(w as i8) * i32::from(x))
                        .sum::<i32>();
                    *o = o.wrapping_add(dot);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// Every instruction set this CPU has, scalar first.
    fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        isa: Isa,
        w: Weights<'_>,
        width: usize,
        cols: Range<usize>,
        x: Inputs<'_>,
        batch: usize,
        out: &mut [f32],
        out_stride: usize,
    ) {
        check(w.len(), width, &cols, &x, batch, out.len(), out_stride);
        // SAFETY: bounds checked; `available` lists only what this CPU supports.
        unsafe { accumulate_with(isa, w, width, cols, x, batch, out.as_mut_ptr(), out_stride) }
    }

    proptest! {
        /// Random block shapes, column ranges (tails included), batch sizes, strides and
        /// weight types: every instruction set matches an f64 evaluation of the definition
        /// within 1e-5 of the sum of |terms|, and leaves other outputs untouched.
        #[test]
        fn every_isa_matches_the_definition(
            rows in 1usize..4, row_len in 1usize..30, gap in 0usize..4, width in 1usize..90,
            batch in 1usize..21, col_a in 0usize..90, col_b in 0usize..90, dtype in 0u8..3,
            seed in any::<u64>(),
        ) {
            let cols = col_a.min(col_b) % width..(col_a.max(col_b) % width + 1).max(col_a.min(col_b) % width + 1);
            let mut state = seed | 1;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            };
            let k = rows * row_len;
            let row_stride = row_len + gap;
            let batch_stride = rows * row_stride + 3;
            let data: Vec<f32> = (0..batch * batch_stride + 5)
                .map(|i| if i % 4 == 0 { 0.0 } else { next() })
                .collect();
            let x = Inputs { data: &data, base: 2, batch_stride, rows, row_stride, row_len };
            let raw: Vec<f32> = (0..k * width).map(|_| next()).collect();
            let halves: Vec<f16> = raw.iter().map(|&v| f16::from_f32(v)).collect();
            let q: Vec<i8> = raw.iter().map(|&v| (v * 127.0) as i8).collect();
            let (w, values): (Weights, Vec<f32>) = match dtype {
                0 => (Weights::F32(&raw), raw.clone()),
                1 => (Weights::F16(&halves), halves.iter().map(|h| h.to_f32()).collect()),
                _ => (Weights::I8 { values: &q, scales: &[] }, q.iter().map(|&v| f32::from(v)).collect()),
            };
            let out_stride = width + 7;
            let init: Vec<f32> = (0..batch * out_stride).map(|_| next()).collect();
            for isa in available() {
                let mut out = init.clone();
                run(isa, w, width, cols.clone(), x, batch, &mut out, out_stride);
                for b in 0..batch {
                    for c in 0..out_stride {
                        let got = out[b * out_stride + c];
                        let start = init[b * out_stride + c];
                        if !cols.contains(&c) {
                            prop_assert_eq!(got, start);
                            continue;
                        }
                        let (mut want, mut size) = (start as f64, start.abs() as f64);
                        for row in 0..rows {
                            for i in 0..row_len {
                                let xv = data[2 + b * batch_stride + row * row_stride + i] as f64;
                                let wv = values[(row * row_len + i) * width + c] as f64;
                                want += xv * wv;
                                size += (xv * wv).abs();
                            }
                        }
                        prop_assert!(
                            (got as f64 - want).abs() <= 1e-5 * (1.0 + size),
                            "{:?} b {} c {}: {} vs {}", isa, b, c, got, want
                        );
                    }
                }
            }
        }
    }

    proptest! {
        /// Random block shapes, column ranges, batch sizes and strides: every instruction set
        /// gives exactly the integer sums of the definition (wrapping `i32`), inputs over the
        /// whole byte range and weights over the whole int8 range, and leaves other outputs
        /// untouched.
        #[test]
        fn every_isa_gives_the_exact_quantised_sums(
            rows in 1usize..4, row_len in 1usize..20, gap in 0usize..9, width in 1usize..90,
            batch in 1usize..21, col_a in 0usize..90, col_b in 0usize..90, seed in any::<u64>(),
        ) {
            let cols = col_a.min(col_b) % width..(col_a.max(col_b) % width + 1).max(col_a.min(col_b) % width + 1);
            let mut state = seed | 1;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            // Rows of 4·row_len bytes; odd strides put groups at unaligned addresses.
            let row_stride = 4 * row_len + gap;
            let batch_stride = rows * row_stride + 3;
            let data: Vec<u8> = (0..batch * batch_stride + 9).map(|_| next() as u8).collect();
            let x = Inputs { data: &data, base: 5, batch_stride, rows, row_stride, row_len };
            let w: Vec<u32> = (0..rows * row_len * width).map(|_| next() as u32).collect();
            let out_stride = width + 7;
            let init: Vec<i32> = (0..batch * out_stride).map(|_| next() as i32).collect();
            for isa in available() {
                let mut out = init.clone();
                check(w.len(), width, &cols, &x, batch, out.len(), out_stride);
                // SAFETY: bounds checked; `available` lists only what this CPU supports.
                unsafe {
                    accumulate_q8_with(isa, &w, width, cols.clone(), x, batch, out.as_mut_ptr(), out_stride)
                };
                for b in 0..batch {
                    for c in 0..out_stride {
                        let start = init[b * out_stride + c];
                        let mut want = i64::from(start);
                        if cols.contains(&c) {
                            for row in 0..rows {
                                for i in 0..row_len {
                                    let word = w[(row * row_len + i) * width + c].to_le_bytes();
                                    for (r, &q) in word.iter().enumerate() {
                                        let at = 5 + b * batch_stride + row * row_stride + 4 * i + r;
                                        want += i64::from(q as i8) * i64::from(data[at]);
                                    }
                                }
                            }
                        }
                        prop_assert_eq!(out[b * out_stride + c], want as i32, "{:?} b {} c {}", isa, b, c);
                    }
                }
            }
        }
    }
}
