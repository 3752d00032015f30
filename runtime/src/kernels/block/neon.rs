//! The NEON (AArch64 Advanced SIMD) version of [`super::accumulate`]: `tiles!` over 4-lane
//! vectors. f16 weights are widened with `fcvtl`, which every AArch64 core has (Rust's f16
//! vector intrinsics are not stable); int8 weights by sign extension and `scvtf`.
//!
//! Checked against the definition under emulation (qemu-user, in CI); the tile shape, chunk
//! size and prefetch distances are the x86 ones and have not been tuned on AArch64 hardware.

use core::arch::aarch64::*;
use core::arch::asm;
use core::ops::Range;

use super::tiles::*;
use super::Inputs;
use crate::kernels::weights::Weights;

type V = float32x4_t;
const L: usize = 4;
/// Images per tile in narrow layers: 16 accumulators of the 32 registers.
const WIDE: usize = 16;

/// # Safety
/// As [`super::accumulate_unchecked`], and this CPU must have NEON.
pub(super) unsafe fn accumulate(
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
        match w {
            Weights::F32(v) => f32(v.as_ptr(), width, cols, x, batch, o),
            Weights::F16(v) => f16(v.as_ptr().cast(), width, cols, x, batch, o),
            Weights::I8 { values, .. } => i8(values.as_ptr(), width, cols, x, batch, o),
        }
    }
}

/// Asks for the line at `p` in L1 (a prefetch never faults, wherever `p` points).
#[inline]
fn prefetch_l1(p: *const i8) {
    // SAFETY: `prfm` only hints the memory system; it reads nothing architecturally.
    unsafe { asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags)) }
}

/// Asks for the line at `p` in L2.
#[inline]
fn prefetch_l2(p: *const i8) {
    // SAFETY: as `prefetch_l1`.
    unsafe { asm!("prfm pldl2keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags)) }
}

#[inline]
#[target_feature(enable = "neon")]
fn zero() -> V {
    vdupq_n_f32(0.0)
}

#[inline]
#[target_feature(enable = "neon")]
fn splat(v: f32) -> V {
    vdupq_n_f32(v)
}

/// `a · b + c`, fused.
#[inline]
#[target_feature(enable = "neon")]
fn fma(a: V, b: V, c: V) -> V {
    vfmaq_f32(c, a, b)
}

#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_f32(p: *const f32, n: usize) -> V {
    // SAFETY: the caller's `n` values at `p`.
    unsafe {
        if n >= L {
            vld1q_f32(p)
        } else {
            vld1q_f32(partial::<_, L>(p, n).as_ptr())
        }
    }
}

#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_out(p: *const f32, n: usize) -> V {
    // SAFETY: as `load_f32`.
    unsafe { load_f32(p, n) }
}

#[inline]
#[target_feature(enable = "neon")]
unsafe fn store_out(p: *mut f32, v: V, n: usize) {
    // SAFETY: the caller's `n` values at `p`.
    unsafe {
        if n >= L {
            vst1q_f32(p, v)
        } else {
            let mut a = [0f32; L];
            vst1q_f32(a.as_mut_ptr(), v);
            core::ptr::copy_nonoverlapping(a.as_ptr(), p, n);
        }
    }
}

#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_f16(p: *const u16, n: usize) -> V {
    // SAFETY: as `load_f32`.
    let h = unsafe {
        if n >= L {
            vld1_u16(p)
        } else {
            vld1_u16(partial::<_, L>(p, n).as_ptr())
        }
    };
    let v: V;
    // SAFETY: a register-to-register conversion (exact: every f16 is an f32).
    unsafe {
        asm!(
            "fcvtl {v:v}.4s, {h:v}.4h",
            v = out(vreg) v,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    v
}

#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_i8(p: *const i8, n: usize) -> V {
    // SAFETY: as `load_f32`.
    let bytes = unsafe {
        if n >= L {
            p.cast::<u32>().read_unaligned()
        } else {
            u32::from_ne_bytes(partial::<_, L>(p, n).map(|b| b as u8))
        }
    };
    let wide = vmovl_s8(vcreate_s8(u64::from(bytes)));
    vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide)))
}

tiles!("neon", f32, tile_f32, rows_f32, quad_f32, f32, load_f32);
tiles!("neon", f16, tile_f16, rows_f16, quad_f16, u16, load_f16);
tiles!("neon", i8, tile_i8, rows_i8, quad_i8, i8, load_i8);
