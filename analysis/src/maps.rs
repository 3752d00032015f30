//! 2-D maps over cortical sheets: building them from activations, resizing, the "stacked" map
//! of several layers and the radial profile from the sheet centre (DESIGN.md, "Energy").

use alltnn_runtime::sheet::SheetLayout;
use serde::Serialize;

use crate::error::AnalysisError;

/// A row-major 2-D map (e.g. a layer's per-unit energy laid out as its cortical sheet).
///
/// Maps made by [`Map::new`] and [`Map::from_hwc`] have at least one row and one column and
/// exactly `rows * cols` values; the functions of this crate rely on that.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    /// Number of rows (sheet rows, top to bottom).
    pub rows: usize,
    /// Number of columns (sheet columns, left to right).
    pub cols: usize,
    /// `rows * cols` values, row by row.
    pub values: Vec<f32>,
}

impl Map {
    /// A `rows` x `cols` map of row-major `values`; refuses an empty map or a length that does
    /// not match.
    pub fn new(rows: usize, cols: usize, values: Vec<f32>) -> Result<Map, AnalysisError> {
        check_shape(rows, cols, values.len())?;
        Ok(Map { rows, cols, values })
    }

    /// Lays an `(H, W, C)` activation-shaped array (row-major HWC, e.g. per-unit energies) out
    /// as its cortical sheet of `(H·c0, W·c1)` units, the one mapping of
    /// [`alltnn_runtime::sheet`].
    pub fn from_hwc(values: &[f32], h: usize, w: usize, c: usize) -> Result<Map, AnalysisError> {
        let expected = h.checked_mul(w).and_then(|hw| hw.checked_mul(c));
        if expected != Some(values.len()) {
            return Err(AnalysisError::ActivationSize {
                h,
                w,
                c,
                found: values.len(),
            });
        }
        let layout = SheetLayout::new(h, w, c);
        let (rows, cols) = layout.shape();
        Map::new(rows, cols, layout.sheet(values))
    }

    /// Refuses a map whose public fields were set to an inconsistent shape.
    pub(crate) fn validate(&self) -> Result<(), AnalysisError> {
        check_shape(self.rows, self.cols, self.values.len())
    }

    /// The map resized to `rows` x `cols` by bilinear interpolation with half-pixel centres, as
    /// TensorFlow 2's `tf.image.resize(method="bilinear", antialias=False)` and OpenCV's
    /// `INTER_LINEAR`: output index `i` samples the source at `(i + 0.5) · in / out − 0.5`,
    /// clamped to the edges. Equal sizes give the map unchanged; halving averages 2x2 blocks.
    ///
    /// # Panics
    /// If `rows` or `cols` is 0, or the map's fields are inconsistent (see [`Map`]).
    pub fn resize_bilinear(&self, rows: usize, cols: usize) -> Map {
        assert!(rows > 0 && cols > 0, "cannot resize to an empty map");
        assert!(self.validate().is_ok(), "inconsistent map: {self:?}");
        let ys = axis_samples(self.rows, rows);
        let xs = axis_samples(self.cols, cols);
        let at = |r: usize, c: usize| f64::from(self.values[r * self.cols + c]);
        let mut values = Vec::with_capacity(rows * cols);
        for y in &ys {
            for x in &xs {
                let top = lerp(at(y.lo, x.lo), at(y.lo, x.hi), x.frac);
                let bottom = lerp(at(y.hi, x.lo), at(y.hi, x.hi), x.frac);
                values.push(lerp(top, bottom, y.frac) as f32);
            }
        }
        Map { rows, cols, values }
    }
}

fn check_shape(rows: usize, cols: usize, len: usize) -> Result<(), AnalysisError> {
    if rows == 0 || cols == 0 {
        return Err(AnalysisError::EmptyMap { rows, cols });
    }
    if rows.checked_mul(cols) != Some(len) {
        return Err(AnalysisError::MapSize {
            rows,
            cols,
            found: len,
        });
    }
    Ok(())
}

/// Where one output index samples the source axis: between `lo` and `hi`, `frac` of the way.
struct AxisSample {
    lo: usize,
    hi: usize,
    frac: f64,
}

fn axis_samples(input: usize, output: usize) -> Vec<AxisSample> {
    let scale = input as f64 / output as f64;
    let last = (input - 1) as f64;
    (0..output)
        .map(|i| {
            let src = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, last);
            let lo = src.floor() as usize;
            AxisSample {
                lo,
                hi: (lo + 1).min(input - 1),
                frac: src - lo as f64,
            }
        })
        .collect()
}

/// Linear interpolation that ignores `b` at weight 0, so a non-finite neighbour does not leak
/// into exact samples (0 · inf is NaN).
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    if t == 0.0 {
        a
    } else {
        a + (b - a) * t
    }
}

/// Resizes every map to the size of the largest (by rows, then cols) with
/// [`Map::resize_bilinear`] and sums them: the original's "stacked" energy map (PAPER.md: layers
/// 0–4 resized to 384² and summed).
pub fn stack(maps: &[Map]) -> Result<Map, AnalysisError> {
    for map in maps {
        map.validate()?;
    }
    let largest = maps
        .iter()
        .max_by_key(|m| (m.rows, m.cols))
        .ok_or(AnalysisError::NoMaps)?;
    let (rows, cols) = (largest.rows, largest.cols);
    let mut sum = vec![0.0f32; rows * cols];
    for map in maps {
        let resized = map.resize_bilinear(rows, cols);
        for (s, v) in sum.iter_mut().zip(&resized.values) {
            *s += v;
        }
    }
    Map::new(rows, cols, sum)
}

/// One point of a [`radial_profile`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RadialPoint {
    /// Disk radius in units (pixels) of the map.
    pub radius: f64,
    /// Mean of the map values within `radius` of the centre.
    pub mean: f64,
    /// `mean` as a percentage of the mean at radius 1.
    pub percent: f64,
}

/// Radial profile of a map from its centre: mean value within a growing disk.
///
/// The centre is `((rows − 1) / 2, (cols − 1) / 2)` in row/column index units, so for even sizes
/// it lies between the four middle units. For each integer radius `r = 1, 2, …,
/// ⌊min(rows, cols) / 2⌋`, `mean` is the mean of all values whose unit lies at Euclidean distance
/// `≤ r` from the centre (a disk, not a ring: "mean energy within radius r of the sheet centre"),
/// and `percent = 100 · mean / mean(r = 1)`, so the first point is 100 %. If the mean at `r = 1`
/// is 0, every `percent` is 0 instead of NaN. Non-finite values propagate into the means. A map
/// with fewer than two rows or columns has an empty profile.
pub fn radial_profile(map: &Map) -> Vec<RadialPoint> {
    let max_radius = map.rows.min(map.cols) / 2;
    if max_radius == 0 {
        return Vec::new();
    }
    let (sums, counts) = ring_totals(map, max_radius);
    let (mut sum, mut count) = (0.0, 0usize);
    let means: Vec<f64> = (1..=max_radius)
        .map(|r| {
            sum += sums[r];
            count += counts[r];
            // Never 0 units: the nearest unit is at most √0.5 from the centre.
            sum / count as f64
        })
        .collect();
    let centre = means[0];
    means
        .iter()
        .zip(1..)
        .map(|(&mean, r)| RadialPoint {
            radius: f64::from(r),
            mean,
            percent: if centre == 0.0 {
                0.0
            } else {
                100.0 * mean / centre
            },
        })
        .collect()
}

/// Sum and count of the values first reached at each radius `r` (`r − 1 < d ≤ r`, the centre
/// ones at `r = 1`), for `r ≤ max_radius`; index 0 is unused. One pass instead of one per disk.
fn ring_totals(map: &Map, max_radius: usize) -> (Vec<f64>, Vec<usize>) {
    let mut sums = vec![0.0; max_radius + 1];
    let mut counts = vec![0usize; max_radius + 1];
    let centre_row = (map.rows - 1) as f64 / 2.0;
    let centre_col = (map.cols - 1) as f64 / 2.0;
    for (i, &v) in map.values.iter().enumerate() {
        let dy = (i / map.cols) as f64 - centre_row;
        let dx = (i % map.cols) as f64 - centre_col;
        // dy, dx are half-integers, so the squared distance is exact and its square root is
        // exact on whole numbers: ceil gives the smallest integer radius r with d ≤ r.
        let ring = ((dy * dy + dx * dx).sqrt().ceil() as usize).max(1);
        if ring <= max_radius {
            sums[ring] += f64::from(v);
            counts[ring] += 1;
        }
    }
    (sums, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [-1, 1) (no rand dependency for a test helper).
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn map(rows: usize, cols: usize, values: &[f32]) -> Map {
        Map::new(rows, cols, values.to_vec()).expect("test map")
    }

    fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol, "index {i}: got {g}, want {w}");
        }
    }

    /// TensorFlow's `resize_bilinear(half_pixel_centers=True)` written per output pixel:
    /// `lower = max(floor(in), 0)`, `upper = min(ceil(in), size − 1)`, weights from `in − floor(in)`.
    fn naive_resize(m: &Map, rows: usize, cols: usize) -> Vec<f32> {
        let corner = |src: f64, size: usize| {
            let lo = src.floor().max(0.0) as usize;
            let hi = (src.ceil().max(0.0) as usize).min(size - 1);
            (lo, hi, src - src.floor())
        };
        let mut out = Vec::new();
        for r in 0..rows {
            for c in 0..cols {
                let sy = (r as f64 + 0.5) * m.rows as f64 / rows as f64 - 0.5;
                let sx = (c as f64 + 0.5) * m.cols as f64 / cols as f64 - 0.5;
                let (y0, y1, ty) = corner(sy, m.rows);
                let (x0, x1, tx) = corner(sx, m.cols);
                let v = |y: usize, x: usize| f64::from(m.values[y * m.cols + x]);
                let value = v(y0, x0) * (1.0 - ty) * (1.0 - tx)
                    + v(y0, x1) * (1.0 - ty) * tx
                    + v(y1, x0) * ty * (1.0 - tx)
                    + v(y1, x1) * ty * tx;
                out.push(value as f32);
            }
        }
        out
    }

    #[test]
    fn new_checks_the_shape() {
        assert!(Map::new(2, 3, vec![0.0; 6]).is_ok());
        assert_eq!(
            Map::new(2, 3, vec![0.0; 5]),
            Err(AnalysisError::MapSize {
                rows: 2,
                cols: 3,
                found: 5
            })
        );
        assert_eq!(
            Map::new(0, 3, vec![]),
            Err(AnalysisError::EmptyMap { rows: 0, cols: 3 })
        );
        assert!(Map::new(usize::MAX, 2, vec![]).is_err());
    }

    #[test]
    fn from_hwc_uses_the_sheet_layout() {
        // (1, 2, 4): hypercolumns of 2x2; unit (0, q, c) sits at (c / 2, 2q + c % 2).
        let act: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let m = Map::from_hwc(&act, 1, 2, 4).expect("sheet");
        assert_eq!((m.rows, m.cols), (2, 4));
        assert_eq!(m.values, [0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
        let layout = SheetLayout::new(3, 4, 10);
        let act = noise(120, 1);
        let m = Map::from_hwc(&act, 3, 4, 10).expect("sheet");
        assert_eq!((m.rows, m.cols), layout.shape());
        assert_eq!(m.values, layout.sheet(&act));
    }

    #[test]
    fn from_hwc_refuses_a_wrong_length() {
        assert_eq!(
            Map::from_hwc(&[0.0; 7], 1, 2, 4),
            Err(AnalysisError::ActivationSize {
                h: 1,
                w: 2,
                c: 4,
                found: 7
            })
        );
        assert!(matches!(
            Map::from_hwc(&[], 0, 2, 4),
            Err(AnalysisError::EmptyMap { .. })
        ));
    }

    #[test]
    fn resize_2x2_to_4x4_by_hand() {
        // Source coordinates of outputs 0..4 at scale 1/2: -0.25 → 0, 0.25, 0.75, 1.25 → 1.
        // The map is 2y + x, which bilinear interpolation reproduces exactly.
        let m = map(2, 2, &[0.0, 1.0, 2.0, 3.0]);
        let want = [
            0.0, 0.25, 0.75, 1.0, //
            0.5, 0.75, 1.25, 1.5, //
            1.5, 1.75, 2.25, 2.5, //
            2.0, 2.25, 2.75, 3.0,
        ];
        assert_eq!(m.resize_bilinear(4, 4).values, want);
    }

    #[test]
    fn resize_to_the_same_size_is_identity() {
        let m = map(5, 7, &noise(35, 2));
        assert_eq!(m.resize_bilinear(5, 7), m);
    }

    #[test]
    fn halving_averages_2x2_blocks() {
        let m = map(
            4,
            4,
            &[
                1.0, 3.0, 10.0, 20.0, //
                5.0, 7.0, 30.0, 40.0, //
                0.0, 0.0, -1.0, 1.0, //
                4.0, 8.0, 2.0, 2.0,
            ],
        );
        assert_eq!(m.resize_bilinear(2, 2).values, [4.0, 25.0, 3.0, 1.0]);
    }

    #[test]
    fn resize_matches_the_naive_formula() {
        let cases = [
            (3, 5, 7, 4),
            (22 * 9, 22 * 9, 384, 384),
            (8, 8, 3, 13),
            (1, 6, 4, 2),
            (6, 1, 1, 1),
        ];
        for (seed, (r, c, nr, nc)) in cases.into_iter().enumerate() {
            let m = map(r, c, &noise(r * c, seed as u64));
            assert_close(
                &m.resize_bilinear(nr, nc).values,
                &naive_resize(&m, nr, nc),
                1e-6,
            );
        }
    }

    #[test]
    fn resize_keeps_non_finite_values_local() {
        let m = map(1, 4, &[1.0, f32::NAN, 3.0, 4.0]);
        let up = m.resize_bilinear(1, 8);
        // Outputs 0 (clamped onto unit 0) and 7 (clamped onto unit 3) never see the NaN.
        assert_eq!(up.values[0], 1.0);
        assert_eq!(up.values[7], 4.0);
        assert!(up.values[1].is_nan());
    }

    #[test]
    fn stack_resizes_to_the_largest_and_sums() {
        let small = map(2, 2, &[0.0, 1.0, 2.0, 3.0]);
        let large = map(4, 4, &[1.0; 16]);
        let stacked = stack(&[small.clone(), large.clone()]).expect("stack");
        let mut want = small.resize_bilinear(4, 4).values;
        want.iter_mut().for_each(|v| *v += 1.0);
        assert_eq!(stacked, map(4, 4, &want));
        assert_eq!(stack(std::slice::from_ref(&large)).expect("one map"), large);
    }

    #[test]
    fn stack_picks_the_largest_by_rows_then_cols() {
        let stacked = stack(&[map(3, 9, &[0.0; 27]), map(4, 2, &[0.0; 8])]).expect("stack");
        assert_eq!((stacked.rows, stacked.cols), (4, 2));
    }

    #[test]
    fn stack_refuses_nothing_and_broken_maps() {
        assert_eq!(stack(&[]), Err(AnalysisError::NoMaps));
        let broken = Map {
            rows: 2,
            cols: 2,
            values: vec![0.0; 3],
        };
        assert!(matches!(
            stack(&[broken]),
            Err(AnalysisError::MapSize { .. })
        ));
    }

    /// The definition as written: for each r, the mean over every unit within distance r.
    fn naive_profile(m: &Map) -> Vec<(f64, f64)> {
        let (cy, cx) = ((m.rows - 1) as f64 / 2.0, (m.cols - 1) as f64 / 2.0);
        (1..=m.rows.min(m.cols) / 2)
            .map(|r| {
                let inside: Vec<f64> = (0..m.rows * m.cols)
                    .filter(|i| {
                        let d = ((*i / m.cols) as f64 - cy).hypot((*i % m.cols) as f64 - cx);
                        d <= r as f64
                    })
                    .map(|i| f64::from(m.values[i]))
                    .collect();
                (r as f64, inside.iter().sum::<f64>() / inside.len() as f64)
            })
            .collect()
    }

    #[test]
    fn radial_profile_by_hand_on_a_4x4_map() {
        // Centre (1.5, 1.5). The 4 middle units are at √0.5 ≈ 0.71; the 8 edge units next to
        // them at √2.5 ≈ 1.58; the 4 corners at √4.5 ≈ 2.12.
        // r = 1: the 4 middle units only, mean 10. r = 2: 12 units, sum 40, mean 10/3.
        let mut values = [0.0f32; 16];
        for i in [5, 6, 9, 10] {
            values[i] = 10.0;
        }
        let p = radial_profile(&map(4, 4, &values));
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].radius, p[0].mean, p[0].percent), (1.0, 10.0, 100.0));
        assert_eq!(p[1].radius, 2.0);
        assert!((p[1].mean - 10.0 / 3.0).abs() < 1e-12);
        assert!((p[1].percent - 100.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn radial_profile_by_hand_on_a_5x5_map() {
        // Odd size: centre unit (2, 2) at distance 0; r = 1 adds its 4 direct neighbours (d = 1
        // exactly, on the boundary), not the diagonals (√2); r = 2 adds the diagonals (√2) and
        // the units two steps straight out (2), not (0, 1) at √5.
        let mut values = [0.0f32; 25];
        values[12] = 5.0;
        for i in [7, 11, 13, 17] {
            values[i] = 1.0;
        }
        let p = radial_profile(&map(5, 5, &values));
        assert_eq!(p.len(), 2);
        assert!((p[0].mean - 9.0 / 5.0).abs() < 1e-12);
        assert!((p[1].mean - 9.0 / 13.0).abs() < 1e-12);
        assert!((p[1].percent - 100.0 * 5.0 / 13.0).abs() < 1e-12);
    }

    #[test]
    fn radial_profile_of_a_constant_map_is_flat_at_100_percent() {
        for p in radial_profile(&map(6, 9, &[2.5; 54])) {
            assert_eq!((p.mean, p.percent), (2.5, 100.0));
        }
    }

    #[test]
    fn radial_profile_with_a_zero_centre_reports_zero_percent() {
        // (0, 2) is √6.5 ≈ 2.55 from the centre (2.5, 2.5): inside the r = 3 disk only.
        let mut values = [0.0f32; 36];
        values[2] = 1.0;
        let p = radial_profile(&map(6, 6, &values));
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|p| p.percent == 0.0));
        assert!(p[2].mean > 0.0);
    }

    #[test]
    fn radial_profile_matches_the_naive_definition() {
        for (seed, (r, c)) in [(7, 7), (8, 8), (9, 14), (48, 30), (1, 5), (2, 2)]
            .into_iter()
            .enumerate()
        {
            let m = map(r, c, &noise(r * c, seed as u64 + 10));
            let got: Vec<(f64, f64)> = radial_profile(&m)
                .iter()
                .map(|p| (p.radius, p.mean))
                .collect();
            let want = naive_profile(&m);
            assert_eq!(got.len(), want.len(), "{r}x{c}");
            for ((gr, gm), (wr, wm)) in got.iter().zip(&want) {
                assert_eq!(gr, wr);
                assert!((gm - wm).abs() < 1e-9, "{r}x{c} r={gr}: {gm} vs {wm}");
            }
        }
    }
}
