//! Cluster size of a label map (PAPER.md, "Analyses"): for every unit, the smallest square
//! radius at which a window around it holds every label — orientation bins for the orientation
//! map, the argmax category for the category-selectivity map.
//!
//! The original's method (`get_radius_dict` in `all_tnn/analysis/smoothness.py`):
//! * radii are tried from 1 upwards; radius `r` is the `(2r + 1) x (2r + 1)` square around the
//!   unit on the torus (the sheet wraps around at its edges, via `np.roll`);
//! * radius 1 is always tried; a larger `r` only while `r < min(rows, cols) / 2`, so the window
//!   never wraps onto itself; a unit that has not seen every label by then gets NaN;
//! * the cluster size of a map is the plain mean of the per-unit radii (`np.mean`), so a single
//!   NaN unit makes it NaN.
//!
//! One difference that leaves the mean unchanged: the original rolls unit `(x, y)` to index
//! `(0, 0)` but then centres the window on index `(rows / 2, cols / 2)` of the rolled sheet, so
//! the radius it files under `(x, y)` is really that of the unit half a sheet away. Every unit
//! is still measured exactly once, so the mean is the same; [`cluster_radii`] files each radius
//! under its own unit.

/// Per-unit cluster radii of a row-major `rows x cols` label map (see the module docs): the
/// smallest radius `r ≥ 1` whose wrap-around `(2r + 1)²` square around the unit contains every
/// label `0..n_labels`, or NaN when no radius below half the sheet does.
///
/// `None` labels (and labels `≥ n_labels`) mark units that are neither counted in any window
/// nor measured themselves: their radius is NaN. The original has no such units (every unit
/// has an orientation bin or an argmax category); this lets callers leave units out.
///
/// # Panics
/// If `labels.len() != rows * cols`.
pub fn cluster_radii(
    labels: &[Option<usize>],
    rows: usize,
    cols: usize,
    n_labels: usize,
) -> Vec<f64> {
    assert_eq!(
        labels.len(),
        rows * cols,
        "{} labels do not fill a {rows}x{cols} map",
        labels.len()
    );
    if labels.is_empty() {
        return Vec::new();
    }
    let valid = |l: &Option<usize>| l.filter(|&l| l < n_labels);
    let tables = LabelTables::new(labels, rows, cols, n_labels);
    // Radius 1 is always tried, then every r with 2r < min(rows, cols) (the original's
    // `radius >= min(sheet.shape) / 2` stop).
    let max_radius = ((rows.min(cols) - 1) / 2).max(1);
    labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            if valid(label).is_none() {
                return f64::NAN;
            }
            let (row, col) = (i / cols, i % cols);
            let complete = |r: usize| tables.all_present(row, col, r);
            if !complete(max_radius) {
                return f64::NAN;
            }
            // Windows grow with r, so "all labels present" is monotone: bisect for the first r.
            let (mut lo, mut hi) = (1, max_radius);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if complete(mid) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo as f64
        })
        .collect()
}

/// The original's cluster size of a label map: the mean of [`cluster_radii`] over the units
/// with a label. NaN when any such unit never sees every label within half the sheet (as
/// `np.mean` over the original's radii), or when no unit has a label.
///
/// # Panics
/// If `labels.len() != rows * cols`.
pub fn cluster_size(labels: &[Option<usize>], rows: usize, cols: usize, n_labels: usize) -> f64 {
    let radii = cluster_radii(labels, rows, cols, n_labels);
    let measured: Vec<f64> = labels
        .iter()
        .zip(&radii)
        .filter(|(l, _)| l.is_some_and(|l| l < n_labels))
        .map(|(_, &r)| r)
        .collect();
    if measured.is_empty() {
        return f64::NAN;
    }
    measured.iter().sum::<f64>() / measured.len() as f64
}

/// One summed-area table per label, so the count of a label in any rectangle costs four
/// look-ups: the per-unit search is then O(labels · log radius) instead of O(radius²).
struct LabelTables {
    rows: usize,
    cols: usize,
    n_labels: usize,
    /// `n_labels` tables of `(rows + 1) x (cols + 1)`: entry `(r, c)` counts the label in the
    /// rectangle of rows `< r` and columns `< c`.
    sums: Vec<u32>,
}

impl LabelTables {
    fn new(labels: &[Option<usize>], rows: usize, cols: usize, n_labels: usize) -> Self {
        let stride = cols + 1;
        let size = (rows + 1) * stride;
        let mut sums = vec![0u32; n_labels * size];
        for r in 0..rows {
            for c in 0..cols {
                let here = labels[r * cols + c].filter(|&l| l < n_labels);
                for l in 0..n_labels {
                    let t = &mut sums[l * size..(l + 1) * size];
                    let v = t[r * stride + c + 1] + t[(r + 1) * stride + c] - t[r * stride + c]
                        + u32::from(here == Some(l));
                    t[(r + 1) * stride + c + 1] = v;
                }
            }
        }
        LabelTables {
            rows,
            cols,
            n_labels,
            sums,
        }
    }

    /// Whether every label occurs in the wrap-around square of radius `r` around `(row, col)`.
    fn all_present(&self, row: usize, col: usize, r: usize) -> bool {
        let row_spans = cyclic_spans(row, r, self.rows);
        let col_spans = cyclic_spans(col, r, self.cols);
        (0..self.n_labels).all(|l| {
            row_spans.iter().flatten().any(|&(r0, r1)| {
                col_spans
                    .iter()
                    .flatten()
                    .any(|&(c0, c1)| self.count(l, r0, r1, c0, c1) > 0)
            })
        })
    }

    /// Count of label `l` in rows `r0..r1` and columns `c0..c1`.
    fn count(&self, l: usize, r0: usize, r1: usize, c0: usize, c1: usize) -> u32 {
        let stride = self.cols + 1;
        let t = &self.sums[l * (self.rows + 1) * stride..];
        t[r1 * stride + c1] + t[r0 * stride + c0] - t[r0 * stride + c1] - t[r1 * stride + c0]
    }
}

/// The indices `centre − r ..= centre + r` of an axis of length `n`, taken modulo `n`, as at most
/// two half-open ranges. A window longer than the axis covers it once (only radius 1 on axes of
/// 1 or 2 units, where the original's slice is clipped to the axis).
fn cyclic_spans(centre: usize, r: usize, n: usize) -> [Option<(usize, usize)>; 2] {
    let len = 2 * r + 1;
    if len >= n {
        return [Some((0, n)), None];
    }
    let start = (centre + n - r % n) % n;
    if start + len <= n {
        [Some((start, start + len)), None]
    } else {
        [Some((start, n)), Some((0, start + len - n))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn some(labels: &[usize]) -> Vec<Option<usize>> {
        labels.iter().map(|&l| Some(l)).collect()
    }

    /// The original's procedure written out for one map: roll the sheet, take the square of
    /// radius r around index (rows / 2, cols / 2) of the rolled sheet (clipped like a numpy
    /// slice), grow r until every label is present or r reaches half the sheet; return the
    /// mean radius. With `as_original`, the roll puts the unit at (0, 0) as the original's
    /// `np.roll(sheet, (-x, -y))` does (so the window is centred half a sheet away from it);
    /// otherwise it puts the unit at the window centre. Unlabelled units are not measured.
    fn naive_mean(
        labels: &[Option<usize>],
        rows: usize,
        cols: usize,
        n_labels: usize,
        as_original: bool,
    ) -> f64 {
        let (cx, cy) = (rows / 2, cols / 2);
        let mut radii = Vec::new();
        for x in 0..rows {
            for y in 0..cols {
                if labels[x * cols + y].is_none() {
                    continue;
                }
                // Source row of rolled index i: x + i, or x − cx + i with the unit centred.
                let (sx, sy) = if as_original {
                    (x, y)
                } else {
                    (x + rows - cx, y + cols - cy)
                };
                let rolled =
                    |i: usize, j: usize| labels[((i + sx) % rows) * cols + (j + sy) % cols];
                let mut radius = 1usize;
                let value = loop {
                    let mut seen = HashSet::new();
                    for i in cx.saturating_sub(radius)..(cx + radius + 1).min(rows) {
                        for j in cy.saturating_sub(radius)..(cy + radius + 1).min(cols) {
                            if let Some(l) = rolled(i, j) {
                                seen.insert(l);
                            }
                        }
                    }
                    if seen.len() == n_labels {
                        break radius as f64;
                    }
                    radius += 1;
                    if radius as f64 >= rows.min(cols) as f64 / 2.0 {
                        break f64::NAN;
                    }
                };
                radii.push(value);
            }
        }
        radii.iter().sum::<f64>() / radii.len() as f64
    }

    #[test]
    fn one_label_everywhere_has_radius_one() {
        // Radius 0 is never tried: the original starts at 1.
        assert_eq!(cluster_size(&some(&[0; 25]), 5, 5, 1), 1.0);
        assert_eq!(cluster_radii(&some(&[0; 25]), 5, 5, 1), vec![1.0; 25]);
    }

    #[test]
    fn a_checkerboard_has_radius_one() {
        let labels: Vec<usize> = (0..36).map(|i| (i / 6 + i % 6) % 2).collect();
        assert_eq!(cluster_size(&some(&labels), 6, 6, 2), 1.0);
    }

    #[test]
    fn blocks_of_three_by_hand() {
        // 3x3 blocks of 4 labels tiled with period 6 on a 12x12 sheet. A 3-unit span always
        // crosses a block edge unless it is centred on a block's middle row (or column), so the
        // radius is 1 for the 4 units of each block off both middle lines and 2 for the other 5
        // (any 5-unit span crosses an edge): mean (4·1 + 5·2) / 9 = 14/9.
        let labels: Vec<usize> = (0..144)
            .map(|i| {
                let (r, c) = (i / 12, i % 12);
                2 * ((r / 3) % 2) + (c / 3) % 2
            })
            .collect();
        let radii = cluster_radii(&some(&labels), 12, 12, 4);
        for (i, &radius) in radii.iter().enumerate() {
            let middle = (i / 12) % 3 == 1 || (i % 12) % 3 == 1;
            assert_eq!(radius, if middle { 2.0 } else { 1.0 }, "unit {i}");
        }
        assert!((cluster_size(&some(&labels), 12, 12, 4) - 14.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn the_window_wraps_around_the_sheet() {
        // 9x9, label 1 only in the last row. Row distances to row 8 on a 9-cycle: rows 0..8
        // need radius 1, 2, 3, 4, 4, 3, 2, 1 and 1 (row 8 needs a label-0 neighbour). Without
        // wrap-around row 0 would need radius 8. Radii up to 4 are tried (4 < 9/2).
        let labels: Vec<usize> = (0..81).map(|i| usize::from(i / 9 == 8)).collect();
        let want_rows = [1.0, 2.0, 3.0, 4.0, 4.0, 3.0, 2.0, 1.0, 1.0];
        let radii = cluster_radii(&some(&labels), 9, 9, 2);
        for (i, &radius) in radii.iter().enumerate() {
            assert_eq!(radius, want_rows[i / 9], "unit {i}");
        }
        assert!((cluster_size(&some(&labels), 9, 9, 2) - 21.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn a_unit_that_never_sees_every_label_makes_the_size_nan() {
        // 8x8 with label 1 in the last row: row 3 is 4 rows from it, but only radii 1..=3 are
        // tried on an 8-wide sheet.
        let labels: Vec<usize> = (0..64).map(|i| usize::from(i / 8 == 7)).collect();
        let radii = cluster_radii(&some(&labels), 8, 8, 2);
        assert!(radii[3 * 8..4 * 8].iter().all(|r| r.is_nan()));
        assert!(radii[..3 * 8].iter().all(|r| r.is_finite()));
        assert!(cluster_size(&some(&labels), 8, 8, 2).is_nan());
        // A label that never occurs: NaN everywhere.
        assert!(cluster_size(&some(&[0; 16]), 4, 4, 2).is_nan());
    }

    #[test]
    fn unlabelled_units_are_skipped() {
        // A 1x7 strip 0 _ _ _ 1 _ _ with wrap-around; only radius 1 is tried (min side 1), and
        // on a 1-unit axis the window covers the axis once. Unit 0 sees columns 6, 0, 1: no
        // label 1, so NaN; unit 4 sees 3, 4, 5: no label 0, NaN.
        let mut labels = vec![None; 7];
        labels[0] = Some(0);
        labels[4] = Some(1);
        let radii = cluster_radii(&labels, 1, 7, 2);
        assert!(radii.iter().all(|r| r.is_nan()));
        // The same pattern in every row of a 7x7 (radii up to 3 tried): column 0 reaches
        // column 4 leftwards in 3 steps (6, 5, 4) and column 4 reaches column 0 rightwards in 3
        // (5, 6, 0), so every labelled unit has radius 3.
        let labels: Vec<Option<usize>> = (0..49)
            .map(|i| match i % 7 {
                0 => Some(0),
                4 => Some(1),
                _ => None,
            })
            .collect();
        let radii = cluster_radii(&labels, 7, 7, 2);
        for (i, &radius) in radii.iter().enumerate() {
            if labels[i].is_some() {
                assert_eq!(radius, 3.0, "unit {i}");
            } else {
                assert!(radius.is_nan());
            }
        }
        assert_eq!(cluster_size(&labels, 7, 7, 2), 3.0);
        assert!(cluster_size(&[None; 4], 2, 2, 1).is_nan());
    }

    #[test]
    fn matches_the_naive_procedure_on_random_maps() {
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n) as usize
        };
        for &(rows, cols, n_labels, smooth) in &[
            (20, 20, 8, 1),
            (21, 17, 3, 1),
            (30, 30, 8, 4),
            (16, 40, 4, 3),
            (2, 9, 2, 1),
            (1, 5, 2, 1),
        ] {
            // Piecewise-constant maps of `smooth`-sized blocks give radii above 1.
            let blocks: Vec<usize> = (0..rows * cols).map(|_| next(n_labels as u64)).collect();
            let full: Vec<Option<usize>> = (0..rows * cols)
                .map(|i| Some(blocks[(i / cols / smooth) * cols + i % cols / smooth]))
                .collect();
            // Without unlabelled units the original's half-sheet offset only permutes the
            // radii: the mean is the same.
            let got = cluster_size(&full, rows, cols, n_labels);
            for as_original in [true, false] {
                let want = naive_mean(&full, rows, cols, n_labels, as_original);
                assert!(
                    got == want || (got.is_nan() && want.is_nan()),
                    "{rows}x{cols}, {n_labels} labels ({as_original}): {got} vs {want}"
                );
            }
            // Leave a few units out.
            let holed: Vec<Option<usize>> = full
                .iter()
                .map(|&l| if next(13) == 0 { None } else { l })
                .collect();
            let got = cluster_size(&holed, rows, cols, n_labels);
            let want = naive_mean(&holed, rows, cols, n_labels, false);
            assert!(
                got == want || (got.is_nan() && want.is_nan()),
                "{rows}x{cols}, {n_labels} labels, holes: {got} vs {want}"
            );
        }
    }
}
