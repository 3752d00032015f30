//! Dense readout: `out[b] = bias + x[b] · W` with the Keras `(in, out)` kernel.

use super::local::{self, LocalShape, Sharing};
use super::quantised::{Packed, QuantisedInputs};
use super::weights::Weights;

/// `input` is `batch × n_in`, `kernel` `n_in × n_out`, `out` `batch × n_out`: a locally
/// connected layer with one position and a 1×1 window over an `n_in`-channel input.
pub fn forward(
    kernel: Weights<'_>,
    bias: Option<&[f32]>,
    n_in: usize,
    n_out: usize,
    batch: usize,
    input: &[f32],
    out: &mut [f32],
) {
    let shape = shape(n_in, n_out);
    local::forward(
        &shape,
        Sharing::PerPosition,
        kernel,
        bias,
        batch,
        input,
        out,
    );
}

/// [`forward`] with int8 activations (see [`local::forward_q8`]).
pub fn forward_q8(
    kernel: &Packed,
    bias: Option<&[f32]>,
    (n_in, n_out): (usize, usize),
    batch: usize,
    input: QuantisedInputs<'_>,
    out: &mut [f32],
) {
    local::forward_q8(&shape(n_in, n_out), kernel, bias, batch, input, out);
}

/// The layer shape of a dense layer.
pub fn shape(n_in: usize, n_out: usize) -> LocalShape {
    LocalShape {
        input: [1, 1, n_in],
        kernel: 1,
        stride: 1,
        output: [1, 1, n_out],
    }
}

#[cfg(test)]
mod tests {
    use super::Weights;

    #[test]
    fn small_product_by_hand() {
        // x = [[1, 2]], W = [[1, 2, 3], [4, 5, 6]], bias = [0.5, 0, -1].
        let mut out = [0.0; 3];
        let kernel = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bias = [0.5, 0.0, -1.0];
        let x = [1.0, 2.0];
        super::forward(Weights::F32(&kernel), Some(&bias), 2, 3, 1, &x, &mut out);
        assert_eq!(out, [9.5, 12.0, 14.0]);
        // The same kernel as int8 with scales 0.5, 1 and 2 per class: W = q · scale.
        let q = [2, 2, 2, 8, 5, 3];
        let scales = [0.5, 1.0, 2.0];
        let int8 = Weights::I8 {
            values: &q,
            scales: &scales,
        };
        super::forward(int8, Some(&bias), 2, 3, 1, &x, &mut out);
        assert_eq!(out, [9.5, 12.0, 15.0]);
    }
}
