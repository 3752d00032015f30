//! Dense readout: `out[b] = bias + x[b] · W` with the Keras `(in, out)` kernel.

/// `input` is `batch × n_in`, `kernel` `n_in × n_out`, `out` `batch × n_out`.
pub fn forward(
    kernel: &[f32],
    bias: Option<&[f32]>,
    n_in: usize,
    n_out: usize,
    batch: usize,
    input: &[f32],
    out: &mut [f32],
) {
    for b in 0..batch {
        let o = &mut out[b * n_out..(b + 1) * n_out];
        match bias {
            Some(bias) => o.copy_from_slice(bias),
            None => o.fill(0.0),
        }
        for (&x, w_row) in input[b * n_in..(b + 1) * n_in]
            .iter()
            .zip(kernel.chunks_exact(n_out))
        {
            if x == 0.0 {
                continue;
            }
            for (o, &w) in o.iter_mut().zip(w_row) {
                *o += x * w;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_product_by_hand() {
        // x = [[1, 2]], W = [[1, 2, 3], [4, 5, 6]], bias = [0.5, 0, -1].
        let mut out = [0.0; 3];
        super::forward(
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            Some(&[0.5, 0.0, -1.0]),
            2,
            3,
            1,
            &[1.0, 2.0],
            &mut out,
        );
        assert_eq!(out, [9.5, 12.0, 14.0]);
    }
}
