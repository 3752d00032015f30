//! The cortical-sheet layout (DESIGN.md): a layer output `(H, W, C)` becomes a 2-D sheet of
//! `(H·c0, W·c1)` units, with `c0` the largest divisor of `C` not above `√C` and `c1 = C / c0`;
//! `sheet[r·c0 + c / c1][q·c1 + c % c1] = act[r][q][c]`. The channels of one position form a
//! small square, the hypercolumn. Spatial loss, maps and energy maps all use this one mapping.

use alloc::vec;
use alloc::vec::Vec;

/// The hypercolumn shape `(c0, c1)` of `channels` units.
pub fn hypercolumn(channels: usize) -> (usize, usize) {
    let mut c0 = 1;
    let mut d = 1;
    while d * d <= channels {
        if channels.is_multiple_of(d) {
            c0 = d;
        }
        d += 1;
    }
    (c0, channels / c0.max(1))
}

/// Where the units of an `(H, W, C)` layer output sit on its sheet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SheetLayout {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub c0: usize,
    pub c1: usize,
}

impl SheetLayout {
    pub fn new(height: usize, width: usize, channels: usize) -> SheetLayout {
        let (c0, c1) = hypercolumn(channels);
        SheetLayout {
            height,
            width,
            channels,
            c0,
            c1,
        }
    }

    /// Sheet rows and columns.
    pub fn shape(&self) -> (usize, usize) {
        (self.height * self.c0, self.width * self.c1)
    }

    /// Sheet coordinates of unit `(r, q, c)`.
    pub fn position(&self, r: usize, q: usize, c: usize) -> (usize, usize) {
        (r * self.c0 + c / self.c1, q * self.c1 + c % self.c1)
    }

    /// The unit `(r, q, c)` at sheet coordinates `(row, col)`.
    pub fn unit(&self, row: usize, col: usize) -> (usize, usize, usize) {
        let (r, dr) = (row / self.c0, row % self.c0);
        let (q, dq) = (col / self.c1, col % self.c1);
        (r, q, dr * self.c1 + dq)
    }

    /// Lays one `(H, W, C)` activation (row-major HWC) out as a row-major sheet into `out`.
    pub fn write_sheet<T: Copy>(&self, act: &[T], out: &mut [T]) {
        let (_, cols) = self.shape();
        assert_eq!(
            act.len(),
            self.height * self.width * self.channels,
            "activation size"
        );
        assert_eq!(out.len(), act.len(), "sheet size");
        for (i, &v) in act.iter().enumerate() {
            let c = i % self.channels;
            let q = (i / self.channels) % self.width;
            let r = i / (self.channels * self.width);
            let (row, col) = self.position(r, q, c);
            out[row * cols + col] = v;
        }
    }

    /// One `(H, W, C)` activation as a new row-major sheet.
    pub fn sheet<T: Copy + Default>(&self, act: &[T]) -> Vec<T> {
        let mut out = vec![T::default(); act.len()];
        self.write_sheet(act, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypercolumns_follow_the_largest_divisor_below_the_root() {
        assert_eq!(hypercolumn(16), (4, 4));
        assert_eq!(hypercolumn(25), (5, 5));
        assert_eq!(hypercolumn(36), (6, 6));
        assert_eq!(hypercolumn(64), (8, 8));
        assert_eq!(hypercolumn(81), (9, 9));
        assert_eq!(hypercolumn(2500), (50, 50));
        assert_eq!(hypercolumn(10), (2, 5));
        assert_eq!(hypercolumn(7), (1, 7));
        assert_eq!(hypercolumn(1), (1, 1));
    }

    #[test]
    fn paper_sheet_sizes() {
        // PAPER.md: 384², 198², 180², 128², 96², 50².
        let outs = [(48, 64), (22, 81), (20, 81), (8, 256), (6, 256), (1, 2500)];
        let sizes: Vec<usize> = outs
            .iter()
            .map(|&(hw, c)| SheetLayout::new(hw, hw, c).shape().0)
            .collect();
        assert_eq!(sizes, [384, 198, 180, 128, 96, 50]);
    }

    #[test]
    fn position_and_unit_are_inverse_and_cover_the_sheet() {
        let l = SheetLayout::new(3, 2, 10);
        let (rows, cols) = l.shape();
        let mut seen = vec![false; rows * cols];
        for r in 0..3 {
            for q in 0..2 {
                for c in 0..10 {
                    let (row, col) = l.position(r, q, c);
                    assert_eq!(l.unit(row, col), (r, q, c));
                    assert!(!seen[row * cols + col]);
                    seen[row * cols + col] = true;
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn write_sheet_matches_the_design_formula() {
        let (h, w, c) = (2, 3, 6);
        let act: Vec<u32> = (0..(h * w * c) as u32).collect();
        let l = SheetLayout::new(h, w, c);
        let sheet = l.sheet(&act);
        let (c0, c1) = (l.c0, l.c1);
        assert_eq!((c0, c1), (2, 3));
        for r in 0..h {
            for q in 0..w {
                for ch in 0..c {
                    let v = act[(r * w + q) * c + ch];
                    assert_eq!(sheet[(r * c0 + ch / c1) * (w * c1) + q * c1 + ch % c1], v);
                }
            }
        }
    }
}
