//! Numerical kernels of the forward pass over row-major NHWC `f32` activations, weights f32,
//! f16 or int8 ([`weights`]). Locally connected, conv and dense layers all reduce to
//! [`block::accumulate`] (scalar reference plus SIMD); tests compare every path with direct,
//! index-by-index formulas.

pub mod block;
pub mod dense;
pub mod local;
pub mod norm;
pub mod pool;
pub mod quantised;
pub mod weights;

use crate::spec::Activation;

/// Applies an activation in place.
pub fn activate(x: &mut [f32], activation: Activation) {
    match activation {
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Linear => {}
    }
}

/// Length of the pieces [`zip_pieces`] should cut `units` runs of `unit` values into: about four
/// per thread with the `parallel` feature, one piece without.
pub(crate) fn piece_len(units: usize, unit: usize) -> usize {
    #[cfg(feature = "parallel")]
    let pieces = 4 * rayon::current_num_threads();
    #[cfg(not(feature = "parallel"))]
    let pieces = 1;
    units.div_ceil(pieces).max(1) * unit
}

/// `f(a_k, b_k)` for the k-th pieces of `a` (`a_len` values each) and `b` (`b_len` each), on
/// rayon's threads with the `parallel` feature. Pieces are independent, so results do not
/// depend on the thread count.
pub(crate) fn zip_pieces(
    a: &mut [f32],
    a_len: usize,
    b: &mut [f32],
    b_len: usize,
    f: impl Fn(&mut [f32], &mut [f32]) + Send + Sync,
) {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        a.par_chunks_mut(a_len)
            .zip(b.par_chunks_mut(b_len))
            .for_each(|(a, b)| f(a, b));
    }
    #[cfg(not(feature = "parallel"))]
    a.chunks_mut(a_len)
        .zip(b.chunks_mut(b_len))
        .for_each(|(a, b)| f(a, b));
}

/// Numerically stable softmax over each row of `classes` values, in place.
pub fn softmax_rows(x: &mut [f32], classes: usize) {
    for row in x.chunks_exact_mut(classes) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = crate::math::exp(*v - max);
            sum += *v;
        }
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = [1.0, 2.0, 3.0, 1000.0, 1000.0, 990.0];
        softmax_rows(&mut x, 3);
        assert!((x[0..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[0] < x[1] && x[1] < x[2]);
        assert!((x[3] - x[4]).abs() < 1e-7 && x[5] < 1e-4);
        assert!((x[2] - 0.665_240_9).abs() < 1e-6);
    }

    #[test]
    fn relu_clamps_negatives() {
        let mut x = [-1.0, 0.0, 2.5];
        activate(&mut x, Activation::Relu);
        assert_eq!(x, [0.0, 0.0, 2.5]);
    }
}
