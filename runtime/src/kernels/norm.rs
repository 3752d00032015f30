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
