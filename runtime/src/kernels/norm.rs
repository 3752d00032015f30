//! Normalisation over the channels of every position, in place.

use crate::math::sqrt;

/// Keras `LayerNormalization(axis=-1)`: per position, `(x − mean) / √(var + ε) · γ + β` with the
/// biased variance over the `channels` values.
pub fn layer_norm(
    x: &mut [f32],
    channels: usize,
    epsilon: f32,
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
) {
    let n = channels as f32;
    for v in x.chunks_exact_mut(channels) {
        let mean = lane_sum(v, |a| a) / n;
        let var = lane_sum(v, |a| (a - mean) * (a - mean)) / n;
        let inv = 1.0 / sqrt(var + epsilon);
        if let (Some(g), Some(b)) = (gamma, beta) {
            for ((a, g), b) in v.iter_mut().zip(g).zip(b) {
                *a = (*a - mean) * inv * g + b;
            }
            continue;
        }
        for (c, a) in v.iter_mut().enumerate() {
            let g = gamma.map_or(1.0, |g| g[c]);
            let b = beta.map_or(0.0, |b| b[c]);
            *a = (*a - mean) * inv * g + b;
        }
    }
}

/// `Σ f(v_i)` in eight interleaved partial sums, which the compiler keeps in a vector register
/// (one running sum is a chain of dependent scalar adds).
fn lane_sum(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder().iter().map(|&a| f(a)).sum::<f32>();
    for c in chunks {
        for (acc, &a) in acc.iter_mut().zip(c) {
            *acc += f(a);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Keras `BatchNormalization` at inference: `(x − moving_mean) / √(moving_var + ε) · γ + β`.
pub fn batch_norm(
    x: &mut [f32],
    epsilon: f32,
    mean: &[f32],
    variance: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
) {
    let channels = mean.len();
    for v in x.chunks_exact_mut(channels) {
        for (c, a) in v.iter_mut().enumerate() {
            let g = gamma.map_or(1.0, |g| g[c]);
            let b = beta.map_or(0.0, |b| b[c]);
            *a = (*a - mean[c]) / sqrt(variance[c] + epsilon) * g + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn layer_norm_of_a_known_vector() {
        // x = [1, 2, 3, 6]: mean 3, biased variance 3.5.
        let mut x = [1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 0.0, 0.0];
        layer_norm(
            &mut x,
            4,
            1e-3,
            Some(&[1.0, 2.0, 1.0, 1.0]),
            Some(&[0.0, 0.0, 0.5, 0.0]),
        );
        let s = 1.0 / (3.5f32 + 1e-3).sqrt();
        let want = [-2.0 * s, -2.0 * s, 0.5, 3.0 * s, 0.0, 0.0, 0.5, 0.0];
        for (a, b) in x.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn layer_norm_matches_a_two_pass_f64_evaluation() {
        // 19 channels: two full groups of eight partial sums and a remainder.
        let c = 19;
        let x: Vec<f32> = (0..3 * c)
            .map(|i| ((i * 37) % 23) as f32 * 0.7 - 5.0)
            .collect();
        let gamma: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.1).collect();
        let beta: Vec<f32> = (0..c).map(|i| i as f32 * -0.2).collect();
        for affine in [false, true] {
            let mut got = x.clone();
            let (g, b) = if affine {
                (Some(&gamma[..]), Some(&beta[..]))
            } else {
                (None, None)
            };
            layer_norm(&mut got, c, 1e-3, g, b);
            for (p, v) in x.chunks(c).enumerate() {
                let mean = v.iter().map(|&a| a as f64).sum::<f64>() / c as f64;
                let var = v.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / c as f64;
                for (i, &a) in v.iter().enumerate() {
                    let (g, b) = if affine {
                        (gamma[i], beta[i])
                    } else {
                        (1.0, 0.0)
                    };
                    let want = (a as f64 - mean) / (var + 1e-3).sqrt() * g as f64 + b as f64;
                    let got = got[p * c + i] as f64;
                    assert!(
                        (got - want).abs() < 1e-5,
                        "{affine} {p} {i}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn batch_norm_uses_the_moving_statistics() {
        let mut x = [2.0, 10.0];
        batch_norm(
            &mut x,
            0.0,
            &[1.0, 6.0],
            &[4.0, 16.0],
            Some(&[2.0, 1.0]),
            Some(&[0.0, 1.0]),
        );
        assert_eq!(x, [1.0, 2.0]);
    }
}
