//! Dense readout: `out[b] = bias + x[b] · W` with the Keras `(in, out)` kernel.

use super::weights::Weights;

/// `input` is `batch × n_in`, `kernel` `n_in × n_out`, `out` `batch × n_out`; `row` scratch of
/// at least `n_out` values.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    kernel: Weights<'_>,
    bias: Option<&[f32]>,
    n_in: usize,
    n_out: usize,
    batch: usize,
    input: &[f32],
    row: &mut [f32],
    out: &mut [f32],
) {
    // Int8 sums are scaled before the bias is added, so they start from zero.
    let start = if kernel.is_quantised() { None } else { bias };
    for b in 0..batch {
        let o = &mut out[b * n_out..(b + 1) * n_out];
        match start {
            Some(bias) => o.copy_from_slice(bias),
            None => o.fill(0.0),
        }
    }
    for j in 0..n_in {
        if (0..batch).all(|b| input[b * n_in + j] == 0.0) {
            continue;
        }
        let w_row = kernel.values(j * n_out..(j + 1) * n_out, row);
        for b in 0..batch {
            let x = input[b * n_in + j];
            if x == 0.0 {
                continue;
            }
            for (o, &w) in out[b * n_out..(b + 1) * n_out].iter_mut().zip(w_row) {
                *o += x * w;
            }
        }
    }
    for b in 0..batch {
        kernel.finish_units(&mut out[b * n_out..(b + 1) * n_out], bias);
    }
}

#[cfg(test)]
mod tests {
    use super::Weights;

    #[test]
    fn small_product_by_hand() {
        // x = [[1, 2]], W = [[1, 2, 3], [4, 5, 6]], bias = [0.5, 0, -1].
        let (mut out, mut row) = ([0.0; 3], [0.0; 3]);
        let kernel = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bias = [0.5, 0.0, -1.0];
        let x = [1.0, 2.0];
        super::forward(
            Weights::F32(&kernel),
            Some(&bias),
            2,
            3,
            1,
            &x,
            &mut row,
            &mut out,
        );
        assert_eq!(out, [9.5, 12.0, 14.0]);
        // The same kernel as int8 with scales 0.5, 1 and 2 per class: W = q · scale.
        let q = [2, 2, 2, 8, 5, 3];
        let scales = [0.5, 1.0, 2.0];
        let int8 = Weights::I8 {
            values: &q,
            scales: &scales,
        };
        super::forward(int8, Some(&bias), 2, 3, 1, &x, &mut row, &mut out);
        assert_eq!(out, [9.5, 12.0, 15.0]);
    }
}
