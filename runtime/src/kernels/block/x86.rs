//! AVX2 and AVX-512 versions of [`super::accumulate`], and the AVX-512-VNNI and AVX-VNNI
//! versions of [`super::accumulate_q8`]: `tiles!` over each set's vector helpers.

use core::arch::x86_64::*;
use core::ops::Range;

use super::tiles::*;
use super::{Inputs, Isa};
use crate::kernels::weights::Weights;

/// # Safety
/// As [`super::accumulate_unchecked`], and `isa` must be supported by this CPU.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn accumulate(
    isa: Isa,
    w: Weights<'_>,
    width: usize,
    cols: Range<usize>,
    x: Inputs<'_>,
    batch: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let o = (out, out_stride);
    // SAFETY: forwarded from the caller.
    unsafe {
        match (isa, w) {
            (Isa::Avx512 | Isa::Avx512Vnni, Weights::F32(v)) => {
                avx512::f32(v.as_ptr(), width, cols, x, batch, o)
            }
            (Isa::Avx512 | Isa::Avx512Vnni, Weights::F16(v)) => {
                avx512::f16(v.as_ptr().cast(), width, cols, x, batch, o)
            }
            (Isa::Avx512 | Isa::Avx512Vnni, Weights::I8 { values, .. }) => {
                avx512::i8(values.as_ptr(), width, cols, x, batch, o)
            }
            (_, Weights::F32(v)) => avx2::f32(v.as_ptr(), width, cols, x, batch, o),
            (_, Weights::F16(v)) => avx2::f16(v.as_ptr().cast(), width, cols, x, batch, o),
            (_, Weights::I8 { values, .. }) => avx2::i8(values.as_ptr(), width, cols, x, batch, o),
        }
    }
}

/// # Safety
/// As [`super::accumulate_q8_unchecked`], and `isa`, AVX-512-VNNI or AVX-VNNI, must be supported
/// by this CPU.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn accumulate_q8(
    isa: Isa,
    w: &[u32],
    width: usize,
    cols: Range<usize>,
    x: Inputs<'_, u8>,
    batch: usize,
    out: *mut i32,
    out_stride: usize,
) {
    let o = (out.cast(), out_stride);
    // SAFETY: forwarded from the caller; the integer sums live in the outputs' 32-bit slots.
    unsafe {
        match isa {
            Isa::Avx512Vnni => vnni::q8(w.as_ptr(), width, cols, x, batch, o),
            _ => avx_vnni::q8(w.as_ptr(), width, cols, x, batch, o),
        }
    }
}

/// Asks for the line at `p` in L1 (a prefetch never faults, wherever `p` points).
#[inline]
#[target_feature(enable = "sse")]
fn prefetch_l1(p: *const i8) {
    _mm_prefetch::<_MM_HINT_T0>(p)
}

/// Asks for the line at `p` in L2.
#[inline]
#[target_feature(enable = "sse")]
fn prefetch_l2(p: *const i8) {
    _mm_prefetch::<_MM_HINT_T1>(p)
}

mod avx512 {
    use super::*;

    type V = __m512;
    const L: usize = 16;
    /// Images per tile in narrow layers: 16 accumulators of the 32 registers.
    const WIDE: usize = 16;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mask(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as u16
        }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn zero() -> V {
        _mm512_setzero_ps()
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(v: f32) -> V {
        _mm512_set1_ps(v)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fma(a: V, b: V, c: V) -> V {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn load_out(p: *const f32, n: usize) -> V {
        // SAFETY: the caller's `n` values at `p`; masked lanes are not read.
        unsafe { _mm512_maskz_loadu_ps(mask(n), p) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn store_out(p: *mut f32, v: V, n: usize) {
        // SAFETY: as `load_out`.
        unsafe { _mm512_mask_storeu_ps(p, mask(n), v) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_f32(p: *const f32, n: usize) -> V {
        // SAFETY: as `load_out`.
        unsafe { _mm512_maskz_loadu_ps(mask(n), p) }
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    unsafe fn load_f16(p: *const u16, n: usize) -> V {
        // SAFETY: as `load_out`.
        unsafe { _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask(n), p.cast())) }
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load_i8(p: *const i8, n: usize) -> V {
        // SAFETY: as `load_out`.
        unsafe { _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask(n), p))) }
    }

    tiles!(
        "avx512f,avx512bw,avx512vl,fma,f16c",
        f32,
        tile_f32,
        rows_f32,
        quad_f32,
        f32,
        load_f32
    );
    tiles!(
        "avx512f,avx512bw,avx512vl,fma,f16c",
        f16,
        tile_f16,
        rows_f16,
        quad_f16,
        u16,
        load_f16
    );
    tiles!(
        "avx512f,avx512bw,avx512vl,fma,f16c",
        i8,
        tile_i8,
        rows_i8,
        quad_i8,
        i8,
        load_i8
    );
}

/// Group `i` of the row at `p`: the four input bytes `4i..4i + 4` as one little-endian word (byte
/// `r` is the input of block row `4i + r`).
///
/// # Safety
/// The four bytes lie inside the inputs.
#[inline(always)]
unsafe fn read_q8(p: *const u8, i: usize) -> u32 {
    // SAFETY: the caller's.
    u32::from_le(unsafe { core::ptr::read_unaligned(p.add(4 * i).cast()) })
}

/// Integer sums of quantised inputs and int8 weight words: a "multiply-add" is `vpdpbusd`,
/// sixteen lanes of four byte products each; the accumulators are `i32` lanes kept in the
/// outputs' 32-bit slots between row chunks.
mod vnni {
    use super::*;

    type V = __m512i;
    const L: usize = 16;
    /// No layer counts as narrow: with integer products, 4 vectors × 4 images beat one vector ×
    /// `WIDE` images everywhere (paper model, batch 16: −7 %, from layers 0–2).
    const NARROW: usize = 0;
    const WIDE: usize = 16;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn zero() -> V {
        _mm512_setzero_si512()
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(v: u32) -> V {
        _mm512_set1_epi32(v as i32)
    }
    /// `acc + x·w`: `x` the unsigned input bytes, `w` the signed weight bytes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vnni")]
    fn fma(x: V, w: V, acc: V) -> V {
        _mm512_dpbusd_epi32(acc, x, w)
    }
    // Integer sums and weight words move through the f32 loads and stores, which keep the bits.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_out(p: *const f32, n: usize) -> V {
        // SAFETY: the caller's.
        _mm512_castps_si512(unsafe { avx512::load_out(p, n) })
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store_out(p: *mut f32, v: V, n: usize) {
        // SAFETY: the caller's.
        unsafe { avx512::store_out(p, _mm512_castsi512_ps(v), n) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_words(p: *const u32, n: usize) -> V {
        // SAFETY: the caller's.
        unsafe { load_out(p.cast(), n) }
    }

    tiles!(
        "avx512f,avx512bw,avx512vl,avx512vnni",
        q8,
        tile_q8,
        rows_q8,
        quad_q8,
        u32,
        load_words,
        u8,
        u32,
        read_q8,
        false
    );
}

/// [`vnni`] in eight lanes with AVX-VNNI, for CPUs that have it without AVX-512.
mod avx_vnni {
    use super::*;

    type V = __m256i;
    const L: usize = 8;
    /// As in [`super::vnni`].
    const NARROW: usize = 0;
    const WIDE: usize = 8;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn zero() -> V {
        _mm256_setzero_si256()
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn splat(v: u32) -> V {
        _mm256_set1_epi32(v as i32)
    }
    /// `acc + x·w`: `x` the unsigned input bytes, `w` the signed weight bytes.
    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    fn fma(x: V, w: V, acc: V) -> V {
        _mm256_dpbusd_avx_epi32(acc, x, w)
    }
    // As in `vnni`, through the f32 loads and stores.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load_out(p: *const f32, n: usize) -> V {
        // SAFETY: the caller's.
        _mm256_castps_si256(unsafe { avx2::load_out(p, n) })
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store_out(p: *mut f32, v: V, n: usize) {
        // SAFETY: the caller's.
        unsafe { avx2::store_out(p, _mm256_castsi256_ps(v), n) }
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load_words(p: *const u32, n: usize) -> V {
        // SAFETY: the caller's.
        unsafe { load_out(p.cast(), n) }
    }

    tiles!(
        "avx2,fma,f16c,avxvnni",
        q8,
        tile_q8,
        rows_q8,
        quad_q8,
        u32,
        load_words,
        u8,
        u32,
        read_q8,
        false
    );
}

mod avx2 {
    use super::*;

    type V = __m256;
    const L: usize = 8;
    /// Images per tile in narrow layers: 8 accumulators of the 16 registers.
    const WIDE: usize = 8;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn zero() -> V {
        _mm256_setzero_ps()
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn splat(v: f32) -> V {
        _mm256_set1_ps(v)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn fma(a: V, b: V, c: V) -> V {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load_f32(p: *const f32, n: usize) -> V {
        // SAFETY: the caller's `n` values at `p`.
        unsafe {
            if n >= 8 {
                _mm256_loadu_ps(p)
            } else {
                _mm256_loadu_ps(partial::<_, 8>(p, n).as_ptr())
            }
        }
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn load_out(p: *const f32, n: usize) -> V {
        // SAFETY: as `load_f32`.
        unsafe { load_f32(p, n) }
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn store_out(p: *mut f32, v: V, n: usize) {
        // SAFETY: the caller's `n` values at `p`.
        unsafe {
            if n >= 8 {
                _mm256_storeu_ps(p, v)
            } else {
                let mut a = [0f32; 8];
                _mm256_storeu_ps(a.as_mut_ptr(), v);
                core::ptr::copy_nonoverlapping(a.as_ptr(), p, n);
            }
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn load_f16(p: *const u16, n: usize) -> V {
        // SAFETY: as `load_f32`.
        unsafe {
            let v = if n >= 8 {
                _mm_loadu_si128(p.cast())
            } else {
                _mm_loadu_si128(partial::<_, 8>(p, n).as_ptr().cast())
            };
            _mm256_cvtph_ps(v)
        }
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load_i8(p: *const i8, n: usize) -> V {
        // SAFETY: as `load_f32`.
        unsafe {
            let v = if n >= 8 {
                _mm_loadl_epi64(p.cast())
            } else {
                _mm_loadl_epi64(partial::<_, 8>(p, n).as_ptr().cast())
            };
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))
        }
    }

    tiles!(
        "avx2,fma,f16c",
        f32,
        tile_f32,
        rows_f32,
        quad_f32,
        f32,
        load_f32
    );
    tiles!(
        "avx2,fma,f16c",
        f16,
        tile_f16,
        rows_f16,
        quad_f16,
        u16,
        load_f16
    );
    tiles!("avx2,fma,f16c", i8, tile_i8, rows_i8, quad_i8, i8, load_i8);
}
