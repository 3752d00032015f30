//! 2×2 max pooling, stride 2, valid padding (Keras `MaxPool2D()` defaults).

/// `input` is `batch × H × W × C`; `out` is `batch × ⌊H/2⌋ × ⌊W/2⌋ × C`.
pub fn max_pool_2x2(input: &[f32], batch: usize, [h, w, c]: [usize; 3], out: &mut [f32]) {
    let (oh, ow) = (h / 2, w / 2);
    for b in 0..batch {
        let image = &input[b * h * w * c..(b + 1) * h * w * c];
        for r in 0..oh {
            for q in 0..ow {
                let o = ((b * oh + r) * ow + q) * c;
                let at = |y: usize, x: usize| (y * w + x) * c;
                let (a, bb, cc, d) = (
                    at(2 * r, 2 * q),
                    at(2 * r, 2 * q + 1),
                    at(2 * r + 1, 2 * q),
                    at(2 * r + 1, 2 * q + 1),
                );
                for ch in 0..c {
                    out[o + ch] = image[a + ch]
                        .max(image[bb + ch])
                        .max(image[cc + ch])
                        .max(image[d + ch]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pools_odd_sizes_by_dropping_the_last_row_and_column() {
        // 3×3×1 image: the last row and column are dropped.
        let x = [1.0, 5.0, 9.0, 2.0, -1.0, 9.0, 9.0, 9.0, 9.0];
        let mut out = [0.0];
        super::max_pool_2x2(&x, 1, [3, 3, 1], &mut out);
        assert_eq!(out, [5.0]);
        // 2×2×2 image: channels pool independently.
        let x = [1.0, -4.0, 2.0, -3.0, 0.5, -2.0, 1.5, -1.0];
        let mut out = [0.0; 2];
        super::max_pool_2x2(&x, 1, [2, 2, 2], &mut out);
        assert_eq!(out, [2.0, -1.0]);
    }
}
