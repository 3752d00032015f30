//! Orientation selectivity (PAPER.md, "Analyses"): grating stimuli, per-unit tuning curves,
//! preferred orientation and selectivity maps, their local entropy and cluster size, and
//! entropy against eccentricity.
//!
//! Definitions follow the original code (`all_tnn/analysis/orientation_selectivity.py`,
//! `smoothness.py` and `visualization/smoothness_entropy_visualization.py`); where it differs
//! from PAPER.md's wording, the item's docs say so.
//!
//! A run: for each orientation `o` and phase `p` of [`GratingParams`], feed [`grating`]`(o, p)`
//! to the network, lay the layer's post-ReLU activations out as a sheet ([`Map::from_hwc`]) and
//! [`OrientationTuning::add`] it; then [`OrientationTuning::analyse`].

use serde::Serialize;

use crate::cluster;
use crate::error::AnalysisError;
use crate::maps::Map;

/// Grating stimuli of the orientation analysis: sine gratings of one wavelength
/// at `orientations` angles over 180°, each at `phases()` phases.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GratingParams {
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Spatial wavelength in pixels (the original: 3).
    pub wavelength: f64,
    /// Number of orientations, evenly spaced over 180° (the original: 8, 22.5° apart).
    pub orientations: usize,
}

impl GratingParams {
    /// The original's gratings for a `height x width` image: wavelength 3 px, 8 orientations.
    pub fn new(height: usize, width: usize) -> Self {
        GratingParams {
            height,
            width,
            wavelength: 3.0,
            orientations: 8,
        }
    }

    /// Number of phases per orientation: the original steps the phase `wavelength` times
    /// (`range(w)`), e.g. 0°, 120°, 240° for wavelength 3; here `round(wavelength)`, at least 1.
    pub fn phases(&self) -> usize {
        (self.wavelength.round() as usize).max(1)
    }

    /// Angle of orientation `orientation` in degrees: `180 · orientation / orientations`.
    pub fn orientation_degrees(&self, orientation: usize) -> f64 {
        180.0 * orientation as f64 / self.orientations as f64
    }

    /// Phase `phase` in degrees: `360 · phase / wavelength`.
    pub fn phase_degrees(&self, phase: usize) -> f64 {
        360.0 * phase as f64 / self.wavelength
    }
}

/// The grating as the original computes it, before any rounding: row-major HWC, 3 equal
/// channels, values `255 · (g + 1) / 2 ∈ [0, 255]` with
/// `g = sin(2π · (sin θ · x − cos θ · y) / wavelength + φ)`, `x` the column and `y` the row
/// index, `θ` = [`GratingParams::orientation_degrees`] and `φ` =
/// [`GratingParams::phase_degrees`]. The stripes run along `(x, y) ∝ (cos θ, sin θ)` (rows
/// downward): orientation 0 gives horizontal stripes, 90° vertical ones. The original feeds
/// these floating-point values to the network (`/255`, then `2x − 1`).
///
/// # Panics
/// If `params.orientations` is 0 or `params.wavelength` is not positive.
pub fn grating_values(params: &GratingParams, orientation: usize, phase: usize) -> Vec<f32> {
    assert!(
        params.orientations > 0,
        "gratings need at least one orientation"
    );
    assert!(
        params.wavelength > 0.0,
        "grating wavelength must be positive ({})",
        params.wavelength
    );
    let theta = params.orientation_degrees(orientation).to_radians();
    let phi = params.phase_degrees(phase).to_radians();
    let (s, c) = theta.sin_cos();
    let mut out = Vec::with_capacity(params.height * params.width * 3);
    for y in 0..params.height {
        for x in 0..params.width {
            let gradient = s * x as f64 - c * y as f64;
            let g = (std::f64::consts::TAU * gradient / params.wavelength + phi).sin();
            let v = (255.0 * (g + 1.0) / 2.0) as f32;
            out.extend_from_slice(&[v, v, v]);
        }
    }
    out
}

/// [`grating_values`] rounded to the nearest `u8` (ties away from zero: the original's 127.5
/// becomes 128), for pipelines that take 8-bit images. The rounding, at most 0.5/255, is the
/// only difference from the original's floating-point stimuli.
///
/// # Panics
/// As [`grating_values`].
pub fn grating(params: &GratingParams, orientation: usize, phase: usize) -> Vec<u8> {
    grating_values(params, orientation, phase)
        .into_iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Per sheet unit and orientation, the largest response over the phases added so far (the
/// original's `get_max_phase_activation`).
#[derive(Clone, Debug)]
pub struct OrientationTuning {
    rows: usize,
    cols: usize,
    orientations: usize,
    /// `orientations` sheets of `rows * cols`, orientation-major; NaN until a response arrives.
    max: Vec<f32>,
    seen: Vec<bool>,
}

impl OrientationTuning {
    /// Empty tuning curves for a `rows x cols` sheet and `orientations` orientations.
    pub fn new(rows: usize, cols: usize, orientations: usize) -> Self {
        OrientationTuning {
            rows,
            cols,
            orientations,
            max: vec![f32::NAN; rows * cols * orientations],
            seen: vec![false; orientations],
        }
    }

    /// Sheet rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Sheet columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of orientations.
    pub fn orientations(&self) -> usize {
        self.orientations
    }

    /// Folds in one phase's responses to orientation `orientation`: each unit keeps its
    /// largest response (NaN responses are ignored while the unit has a number).
    pub fn add(&mut self, orientation: usize, sheet: &Map) -> Result<(), AnalysisError> {
        sheet.validate()?;
        if orientation >= self.orientations {
            return Err(AnalysisError::OrientationIndex {
                orientation,
                orientations: self.orientations,
            });
        }
        if (sheet.rows, sheet.cols) != (self.rows, self.cols) {
            return Err(AnalysisError::OrientationSheetShape {
                rows: sheet.rows,
                cols: sheet.cols,
                expected_rows: self.rows,
                expected_cols: self.cols,
            });
        }
        let n = self.rows * self.cols;
        let slot = &mut self.max[orientation * n..(orientation + 1) * n];
        for (m, &v) in slot.iter_mut().zip(&sheet.values) {
            // f32::max returns the number when one side is NaN.
            *m = m.max(v);
        }
        self.seen[orientation] = true;
        Ok(())
    }

    /// The max-over-phases responses to orientation `orientation` as a sheet, once added.
    pub fn responses(&self, orientation: usize) -> Option<Map> {
        if orientation >= self.orientations || !self.seen[orientation] {
            return None;
        }
        let n = self.rows * self.cols;
        Map::new(
            self.rows,
            self.cols,
            self.max[orientation * n..(orientation + 1) * n].to_vec(),
        )
        .ok()
    }

    /// Preferred orientation, selectivity, local entropy (window `window`, the original's 8)
    /// and cluster size of the tuning curves.
    ///
    /// Per unit, with responses `r_k` to the orientations `θ_k = 2πk / n` (the doubled
    /// orientation angle, so `n` orientations over 180° go once round the circle):
    /// * `preferred` = angle of `Σ_k r_k e^{iθ_k}` mapped to `[0, 2π)` and divided by 2π, so it
    ///   lies in `[0, 1)` (0 = the first grating orientation, 0.5 = 90° from it). A resultant
    ///   below `1e-9 · Σ|r_k|` — a flat tuning curve, whose angle would be rounding noise — or a
    ///   unit with no response at all gives 0, as `atan2(0, 0)` does in the original;
    /// * `selectivity` = the original's spread: population std over orientations / sum over
    ///   orientations / std of a one-hot vector of length `n` (1 for a one-hot response, 0 for
    ///   a flat one). Where every response is 0 this is 0 here; the original divides 0 by 0
    ///   and gets NaN;
    /// * `entropy` = [`local_entropy`] of the bins `⌊n · preferred⌋`, leaving out the units the
    ///   original leaves out: those whose spread is exactly 0 with a non-zero sum (a flat,
    ///   non-zero tuning curve). PAPER.md says "units with zero spread excluded", but in the
    ///   code a unit with no response at all has spread NaN, not 0, so it is **kept** in bin 0;
    ///   this follows the code, and `silent_units` says how many such units there are;
    /// * `mean_entropy` = mean of the finite entropies (NaN if none);
    /// * `cluster_size` = [`cluster::cluster_size`] of the bins `⌊n · preferred⌋` of every unit
    ///   (the original bins all units here, silent and flat ones included).
    ///
    /// Units with a NaN response get NaN maps and are left out of entropy and cluster size.
    pub fn analyse(&self, window: usize) -> Result<OrientationMaps, AnalysisError> {
        let n = self.orientations;
        if n == 0 {
            return Err(AnalysisError::NoOrientations);
        }
        if let Some(orientation) = self.seen.iter().position(|&s| !s) {
            return Err(AnalysisError::MissingOrientation { orientation });
        }
        let units = self.rows * self.cols;
        let angles: Vec<(f64, f64)> = (0..n)
            .map(|k| (std::f64::consts::TAU * k as f64 / n as f64).sin_cos())
            .collect();
        // Population std of a one-hot vector: √(1/n − 1/n²).
        let one_hot_std = (1.0 / n as f64 - 1.0 / (n * n) as f64).sqrt();

        let mut preferred = Vec::with_capacity(units);
        let mut selectivity = Vec::with_capacity(units);
        let mut entropy_labels = Vec::with_capacity(units);
        let mut cluster_labels = Vec::with_capacity(units);
        let mut silent_units = 0;
        let mut r = vec![0.0f64; n];
        for i in 0..units {
            for (k, rk) in r.iter_mut().enumerate() {
                *rk = f64::from(self.max[k * units + i]);
            }
            if r.iter().any(|v| !v.is_finite()) {
                preferred.push(f32::NAN);
                selectivity.push(f32::NAN);
                entropy_labels.push(None);
                cluster_labels.push(None);
                continue;
            }
            let sum: f64 = r.iter().sum();
            let abs_sum: f64 = r.iter().map(|v| v.abs()).sum();
            let (y, x) = r
                .iter()
                .zip(&angles)
                .fold((0.0, 0.0), |(y, x), (rk, (s, c))| (y + rk * s, x + rk * c));
            let p = if x.hypot(y) <= 1e-9 * abs_sum {
                0.0
            } else {
                y.atan2(x).rem_euclid(std::f64::consts::TAU) / std::f64::consts::TAU
            };
            // rem_euclid can round up to exactly 2π, and f32 rounding can reach 1.0: both are
            // the orientation 0.
            let p = if p >= 1.0 { 0.0 } else { p };
            let p32 = p as f32;
            preferred.push(if p32 >= 1.0 { 0.0 } else { p32 });

            let mean = sum / n as f64;
            let std = (r.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64).sqrt();
            selectivity.push(if sum == 0.0 {
                0.0
            } else {
                (std / sum / one_hot_std) as f32
            });
            if r.iter().all(|&v| v == 0.0) {
                silent_units += 1;
            }

            let bin = ((p * n as f64) as usize).min(n - 1);
            // The original's `o_bins[s == 0] = -1`: s = std / sum is exactly 0 only for a
            // zero std with a non-zero sum.
            let excluded = std == 0.0 && sum != 0.0;
            entropy_labels.push((!excluded).then_some(bin));
            cluster_labels.push(Some(bin));
        }

        let entropy = local_entropy(&entropy_labels, self.rows, self.cols, n, window)?;
        let finite: Vec<f64> = entropy
            .values
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| f64::from(v))
            .collect();
        let mean_entropy = if finite.is_empty() {
            f64::NAN
        } else {
            finite.iter().sum::<f64>() / finite.len() as f64
        };
        let cluster_size = cluster::cluster_size(&cluster_labels, self.rows, self.cols, n);
        Ok(OrientationMaps {
            preferred: Map::new(self.rows, self.cols, preferred)?,
            selectivity: Map::new(self.rows, self.cols, selectivity)?,
            entropy,
            mean_entropy,
            cluster_size,
            silent_units,
        })
    }
}

/// The maps of [`OrientationTuning::analyse`].
#[derive(Clone, Debug, PartialEq)]
pub struct OrientationMaps {
    /// Preferred orientation in `[0, 1)` (fraction of 180° from the first grating's angle).
    pub preferred: Map,
    /// The original's spread (1 for a one-hot tuning curve, 0 for a flat one or no response).
    pub selectivity: Map,
    /// Local entropy (nats) of the orientation bins; NaN where a window counts no unit.
    pub entropy: Map,
    /// Mean of the finite entropies.
    pub mean_entropy: f64,
    /// The original's cluster size of the orientation bins (mean radius in units, NaN if any
    /// unit does not see every bin within half the sheet).
    pub cluster_size: f64,
    /// Units that responded to no grating at all (kept in entropy bin 0, as the original).
    pub silent_units: usize,
}

/// Local entropy (nats) of a label map: for each unit, the entropy of the histogram of labels
/// `0..n_labels` over the window of rows and columns `−⌊window/2⌋ ..= ⌊window/2⌋` around it,
/// wrapping round the sheet edges (the original's `compute_spatial_entropies`: `np.take(...,
/// mode='wrap')`, `scipy.stats.entropy`). A window of 8 is 9x9. A window wider than the sheet
/// visits some units more than once and counts them each time, as the original does. `None`
/// labels (and labels `≥ n_labels`) are not counted; a window with no counted unit has entropy
/// NaN.
pub fn local_entropy(
    labels: &[Option<usize>],
    rows: usize,
    cols: usize,
    n_labels: usize,
    window: usize,
) -> Result<Map, AnalysisError> {
    if rows == 0 || cols == 0 {
        return Err(AnalysisError::EmptyMap { rows, cols });
    }
    if labels.len() != rows * cols {
        return Err(AnalysisError::MapSize {
            rows,
            cols,
            found: labels.len(),
        });
    }
    let half = (window / 2) as isize;
    let wrap = |i: usize, d: isize, n: usize| (i as isize + d).rem_euclid(n as isize) as usize;
    let mut counts = vec![0usize; n_labels];
    let mut values = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            counts.iter_mut().for_each(|n| *n = 0);
            for dr in -half..=half {
                let row = wrap(r, dr, rows) * cols;
                for dc in -half..=half {
                    if let Some(l) = labels[row + wrap(c, dc, cols)] {
                        if l < n_labels {
                            counts[l] += 1;
                        }
                    }
                }
            }
            values.push(entropy_of_counts(&counts) as f32);
        }
    }
    Map::new(rows, cols, values)
}

/// Shannon entropy (nats) of a histogram; NaN for an empty one (as `scipy.stats.entropy`).
fn entropy_of_counts(counts: &[usize]) -> f64 {
    let total: usize = counts.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let total = total as f64;
    -counts
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = n as f64 / total;
            p * p.ln()
        })
        .sum::<f64>()
}

/// One bin of [`entropy_vs_eccentricity`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EccentricityPoint {
    /// Centre of the bin: distance in units from the sheet centre.
    pub eccentricity: f64,
    /// Mean of the finite values in the bin (NaN when it has none).
    pub mean: f64,
    /// Number of finite values in the bin.
    pub count: usize,
}

/// The number of unit-wide rings of the original's radial profile of a `rows x cols` sheet:
/// `⌊min(rows, cols) / 2⌋ + 1`. Passing it as `bins` to [`entropy_vs_eccentricity`] gives the
/// original's profile.
pub fn original_ring_count(rows: usize, cols: usize) -> usize {
    rows.min(cols) / 2 + 1
}

/// Mean of a map (e.g. [`OrientationMaps::entropy`]) in `bins` equal-width rings of
/// eccentricity, NaN units ignored.
///
/// Eccentricity is the distance of unit `(row, col)` from the point `(rows / 2, cols / 2)` in
/// index units — the original's `get_radial_profile` with `center = shape / 2` (so for an even
/// sheet the centre is a unit, not the corner between the four middle units). The rings cover
/// `[0, R)` with `R` = [`original_ring_count`]; with `bins = R` they are the original's rings
/// `⌊d⌋ = 0, 1, …, ⌊min(rows, cols) / 2⌋` (its `r <= center` mask), and each
/// [`EccentricityPoint`] sits at its ring's middle (`k + 0.5`; the original plots ring `k` at
/// `k`). Units farther out (the sheet's corners) are left out. The original measures both axes
/// from `rows / 2`; for a non-square sheet this uses `cols / 2` for the columns.
pub fn entropy_vs_eccentricity(entropy: &Map, bins: usize) -> Vec<EccentricityPoint> {
    if bins == 0 {
        return Vec::new();
    }
    let extent = original_ring_count(entropy.rows, entropy.cols) as f64;
    let width = extent / bins as f64;
    let mut sums = vec![0.0f64; bins];
    let mut counts = vec![0usize; bins];
    let (centre_row, centre_col) = (entropy.rows as f64 / 2.0, entropy.cols as f64 / 2.0);
    for (i, &v) in entropy.values.iter().enumerate() {
        if !v.is_finite() {
            continue;
        }
        let dr = (i / entropy.cols) as f64 - centre_row;
        let dc = (i % entropy.cols) as f64 - centre_col;
        let bin = (dr.hypot(dc) / width).floor() as usize;
        if bin < bins {
            sums[bin] += f64::from(v);
            counts[bin] += 1;
        }
    }
    (0..bins)
        .map(|k| EccentricityPoint {
            eccentricity: (k as f64 + 0.5) * width,
            mean: if counts[k] == 0 {
                f64::NAN
            } else {
                sums[k] / counts[k] as f64
            },
            count: counts[k],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::{LN_2, TAU};

    /// A tuning curve over `n` orientations peaking at doubled angle `mu` (radians): a constant
    /// plus first and second harmonics. Its resultant `Σ r_k e^{iθ_k}` is exactly
    /// `0.6 · n/2 · e^{iμ}` (the constant and the second harmonic sum to zero against `e^{iθ_k}`
    /// for n = 8), so the preferred orientation is `μ / 2π` — worked out independently of the
    /// code.
    fn tuned(mu: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|k| {
                let d = TAU * k as f64 / n as f64 - mu;
                (1.0 + 0.6 * d.cos() + 0.3 * (2.0 * d).cos()) as f32
            })
            .collect()
    }

    #[derive(Clone, Copy)]
    enum Unit {
        /// Tuned to the centre of orientation bin b of 8.
        Bin(usize),
        /// Responds equally to every orientation (spread 0, sum non-zero).
        Flat,
        /// Never responds.
        Silent,
    }

    fn curve(unit: Unit) -> Vec<f32> {
        match unit {
            Unit::Bin(b) => tuned(TAU * (b as f64 + 0.5) / 8.0, 8),
            Unit::Flat => vec![1.0; 8],
            Unit::Silent => vec![0.0; 8],
        }
    }

    /// Tuning with the given curves per unit, added over 3 phases of which the middle one
    /// carries the full response (so the max over phases matters).
    fn tuning_from(rows: usize, cols: usize, curves: &[Vec<f32>]) -> OrientationTuning {
        let mut t = OrientationTuning::new(rows, cols, 8);
        for k in 0..8 {
            for scale in [0.5f32, 1.0, 0.7] {
                let sheet = Map::new(rows, cols, curves.iter().map(|c| c[k] * scale).collect())
                    .expect("sheet");
                t.add(k, &sheet).expect("add");
            }
        }
        t
    }

    fn analyse_units(rows: usize, cols: usize, units: &[Unit], window: usize) -> OrientationMaps {
        let curves: Vec<Vec<f32>> = units.iter().map(|&u| curve(u)).collect();
        tuning_from(rows, cols, &curves)
            .analyse(window)
            .expect("analyse")
    }

    fn h(ps: &[f64]) -> f64 {
        -ps.iter().map(|p| p * p.ln()).sum::<f64>()
    }

    #[test]
    fn grating_params_match_the_original() {
        let p = GratingParams::new(150, 150);
        assert_eq!((p.wavelength, p.orientations, p.phases()), (3.0, 8, 3));
        assert_eq!(p.orientation_degrees(1), 22.5);
        assert_eq!(
            (0..3).map(|ph| p.phase_degrees(ph)).collect::<Vec<_>>(),
            [0.0, 120.0, 240.0]
        );
    }

    #[test]
    fn gratings_have_the_shape_range_and_equal_channels() {
        let p = GratingParams::new(12, 17);
        for o in 0..8 {
            for ph in 0..p.phases() {
                let img = grating(&p, o, ph);
                assert_eq!(img.len(), 12 * 17 * 3);
                for px in img.chunks_exact(3) {
                    assert!(px[0] == px[1] && px[1] == px[2]);
                }
                let f = grating_values(&p, o, ph);
                assert!(f.iter().all(|&v| (0.0..=255.0).contains(&v)));
                // Both extremes are nearly reached over the image.
                assert!(img.iter().any(|&v| v < 40) && img.iter().any(|&v| v > 215));
            }
        }
    }

    #[test]
    fn grating_values_by_hand() {
        // Orientation 4 of 8 is 90°: g = sin(2π x / 3 + φ), the same down every column.
        let p = GratingParams::new(2, 3);
        let f = grating_values(&p, 4, 0);
        let want = [
            127.5,
            127.5 * (1.0 + (TAU / 3.0).sin()),
            127.5 * (1.0 + (2.0 * TAU / 3.0).sin()),
        ];
        for y in 0..2 {
            for x in 0..3 {
                assert!((f64::from(f[(y * 3 + x) * 3]) - want[x]).abs() < 1e-3);
            }
        }
        // 127.5 rounds up; 237.9 → 238; 17.1 → 17.
        assert_eq!(
            &grating(&p, 4, 0)[..9],
            &[128, 128, 128, 238, 238, 238, 17, 17, 17]
        );
    }

    fn pixel(img: &[f32], width: usize, y: usize, x: usize) -> f32 {
        img[(y * width + x) * 3]
    }

    #[test]
    fn gratings_are_constant_along_their_stripes() {
        let p = GratingParams::new(16, 16);
        let close = |a: f32, b: f32| (a - b).abs() < 1e-3;
        // 0°: horizontal stripes, constant along each row, varying down a column.
        let g = grating_values(&p, 0, 1);
        for y in 0..16 {
            for x in 1..16 {
                assert!(close(pixel(&g, 16, y, x), pixel(&g, 16, y, 0)));
            }
        }
        assert!(!close(pixel(&g, 16, 0, 0), pixel(&g, 16, 1, 0)));
        // 90°: vertical stripes.
        let g = grating_values(&p, 4, 2);
        for y in 1..16 {
            for x in 0..16 {
                assert!(close(pixel(&g, 16, y, x), pixel(&g, 16, 0, x)));
            }
        }
        // 45°: constant along (x, y) → (x + 1, y + 1), not along the other diagonal.
        let g = grating_values(&p, 2, 0);
        for y in 0..15 {
            for x in 0..15 {
                assert!(close(pixel(&g, 16, y + 1, x + 1), pixel(&g, 16, y, x)));
            }
        }
        assert!(!close(pixel(&g, 16, 1, 0), pixel(&g, 16, 0, 1)));
        // 135°: constant along (x, y) → (x − 1, y + 1).
        let g = grating_values(&p, 6, 0);
        for y in 0..15 {
            for x in 1..16 {
                assert!(close(pixel(&g, 16, y + 1, x - 1), pixel(&g, 16, y, x)));
            }
        }
    }

    #[test]
    fn phase_steps_shift_the_grating_by_one_pixel() {
        // At 90° with wavelength 3 a phase step of 120° is one pixel: phase p at column x equals
        // phase 0 at column x + p.
        let p = GratingParams::new(4, 12);
        let base = grating_values(&p, 4, 0);
        for ph in 1..3 {
            let g = grating_values(&p, 4, ph);
            for y in 0..4 {
                for x in 0..12 - ph {
                    let (a, b) = (pixel(&g, 12, y, x), pixel(&base, 12, y, x + ph));
                    assert!((a - b).abs() < 1e-3, "phase {ph} at ({y}, {x}): {a} vs {b}");
                }
            }
            assert!((pixel(&g, 12, 0, 0) - pixel(&base, 12, 0, 0)).abs() > 1.0);
        }
    }

    #[test]
    fn preferred_orientation_is_recovered() {
        let (rows, cols) = (7, 9);
        let mus: Vec<f64> = (0..rows * cols)
            .map(|i| (i as f64 * 0.731).rem_euclid(TAU))
            .collect();
        let curves: Vec<Vec<f32>> = mus.iter().map(|&mu| tuned(mu, 8)).collect();
        let maps = tuning_from(rows, cols, &curves)
            .analyse(8)
            .expect("analyse");
        for (i, &mu) in mus.iter().enumerate() {
            let got = f64::from(maps.preferred.values[i]);
            let want = mu / TAU;
            let diff = (got - want).rem_euclid(1.0);
            assert!(diff.min(1.0 - diff) < 1e-6, "unit {i}: {got} vs {want}");
            assert!((0.0..1.0).contains(&got));
        }
        // Angles just below 2π stay below 1.
        let maps = tuning_from(1, 1, &[tuned(TAU - 1e-9, 8)])
            .analyse(8)
            .expect("analyse");
        assert!(maps.preferred.values[0] < 1.0);
    }

    #[test]
    fn spread_by_hand() {
        let one_hot = [4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let pair = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let curves = vec![one_hot.to_vec(), vec![2.5; 8], vec![0.0; 8], pair.to_vec()];
        let maps = tuning_from(2, 2, &curves).analyse(8).expect("analyse");
        let s = &maps.selectivity.values;
        assert!((s[0] - 1.0).abs() < 1e-6);
        assert_eq!(s[1], 0.0);
        assert_eq!(s[2], 0.0);
        // [1, 1, 0 × 6]: mean 1/4, std √(3/16), sum 2; one-hot std √7 / 8 → √(3/7).
        assert!((f64::from(s[3]) - (3.0f64 / 7.0).sqrt()).abs() < 1e-6);
        assert_eq!(maps.silent_units, 1);
        // A one-hot response at orientation 0 prefers 0; the pair [1, 1, 0…] prefers 1/16.
        assert_eq!(maps.preferred.values[0], 0.0);
        assert!((maps.preferred.values[3] - 1.0 / 16.0).abs() < 1e-7);
        // Silent and flat units prefer 0.
        assert_eq!(maps.preferred.values[1], 0.0);
        assert_eq!(maps.preferred.values[2], 0.0);
    }

    #[test]
    fn uniform_orientation_has_zero_entropy() {
        let maps = analyse_units(12, 12, &[Unit::Bin(5); 144], 8);
        assert!(maps.entropy.values.iter().all(|&v| v == 0.0));
        assert_eq!(maps.mean_entropy, 0.0);
        // One bin only: never all 8 bins, so the cluster size is NaN.
        assert!(maps.cluster_size.is_nan());
    }

    #[test]
    fn windows_holding_every_bin_equally_have_entropy_ln_8() {
        // A 9x9 tile of 10 units per bin and one flat (excluded) unit, repeated 2x2: every
        // wrap-around 9x9 window holds exactly one tile's worth.
        let tile: Vec<Unit> = (0..81)
            .map(|i| {
                if i == 40 {
                    Unit::Flat
                } else {
                    Unit::Bin((i - usize::from(i > 40)) % 8)
                }
            })
            .collect();
        let units: Vec<Unit> = (0..18 * 18)
            .map(|i| tile[((i / 18) % 9) * 9 + (i % 18) % 9])
            .collect();
        let maps = analyse_units(18, 18, &units, 8);
        let ln8 = 3.0 * LN_2;
        assert!(maps
            .entropy
            .values
            .iter()
            .all(|&v| (f64::from(v) - ln8).abs() < 1e-6));
        assert!((maps.mean_entropy - ln8).abs() < 1e-6);
    }

    #[test]
    fn entropy_by_hand_on_a_small_sheet() {
        // 3x5, window 2 (3x3, wrapping): column 0 is bin 1, the rest bin 0. The three rows are
        // always all in the window. Columns 0, 1 and 4 see column 0 (3 of 9 units in bin 1),
        // columns 2 and 3 do not.
        let units: Vec<Unit> = (0..15)
            .map(|i| Unit::Bin(usize::from(i % 5 == 0)))
            .collect();
        let maps = analyse_units(3, 5, &units, 2);
        let mixed = h(&[1.0 / 3.0, 2.0 / 3.0]);
        for (i, &v) in maps.entropy.values.iter().enumerate() {
            let want = if matches!(i % 5, 0 | 1 | 4) {
                mixed
            } else {
                0.0
            };
            assert!(
                (f64::from(v) - want).abs() < 1e-6,
                "unit {i}: {v} vs {want}"
            );
        }
        assert!((maps.mean_entropy - 9.0 * mixed / 15.0).abs() < 1e-6);
    }

    #[test]
    fn flat_units_are_excluded_and_silent_ones_counted_in_bin_0() {
        // 1x3, window 2: every window holds all three units. Bin 4, flat, silent: the flat unit
        // is left out, the silent one counts in bin 0 — entropy ln 2 (the original's rule).
        let maps = analyse_units(1, 3, &[Unit::Bin(4), Unit::Flat, Unit::Silent], 2);
        assert!(maps
            .entropy
            .values
            .iter()
            .all(|&v| (f64::from(v) - LN_2).abs() < 1e-6));
        // Only flat units: nothing counted, NaN everywhere.
        let maps = analyse_units(2, 2, &[Unit::Flat; 4], 8);
        assert!(maps.entropy.values.iter().all(|v| v.is_nan()));
        assert!(maps.mean_entropy.is_nan());
    }

    #[test]
    fn local_entropy_counts_wrapped_duplicates() {
        // A 1x2 sheet with a 3x3 window: the row is visited 3 times and, for column 0, the
        // columns 1, 0, 1: 3 units of label 0 and 6 of label 1.
        let e = local_entropy(&[Some(0), Some(1)], 1, 2, 2, 2).expect("entropy");
        let want = h(&[1.0 / 3.0, 2.0 / 3.0]);
        assert!((f64::from(e.values[0]) - want).abs() < 1e-6);
        assert!((f64::from(e.values[1]) - want).abs() < 1e-6);
        // Window 0: each unit alone.
        let e = local_entropy(&[Some(0), None], 1, 2, 2, 0).expect("entropy");
        assert_eq!(e.values[0], 0.0);
        assert!(e.values[1].is_nan());
        assert!(local_entropy(&[Some(0)], 1, 2, 2, 8).is_err());
    }

    #[test]
    fn cluster_size_of_a_tiled_bin_map() {
        // Bin (r mod 2) · 4 + (c mod 4): a 3-row span holds both row parities, a 3-column span
        // only 3 of the 4 column residues, a 5-column span all: radius 2 everywhere.
        let units: Vec<Unit> = (0..64)
            .map(|i| Unit::Bin(((i / 8) % 2) * 4 + (i % 8) % 4))
            .collect();
        let maps = analyse_units(8, 8, &units, 8);
        assert_eq!(maps.cluster_size, 2.0);
    }

    #[test]
    fn tuning_checks_its_input() {
        let mut t = OrientationTuning::new(2, 2, 8);
        let sheet = Map::new(2, 2, vec![1.0; 4]).expect("sheet");
        assert!(matches!(
            t.add(8, &sheet),
            Err(AnalysisError::OrientationIndex {
                orientation: 8,
                orientations: 8
            })
        ));
        let wrong = Map::new(1, 4, vec![1.0; 4]).expect("sheet");
        assert!(matches!(
            t.add(0, &wrong),
            Err(AnalysisError::OrientationSheetShape { .. })
        ));
        t.add(0, &sheet).expect("add");
        assert!(matches!(
            t.analyse(8),
            Err(AnalysisError::MissingOrientation { orientation: 1 })
        ));
        assert!(t.responses(0).is_some() && t.responses(1).is_none());
        assert!(matches!(
            OrientationTuning::new(2, 2, 0).analyse(8),
            Err(AnalysisError::NoOrientations)
        ));
    }

    #[test]
    fn max_over_phases_ignores_nan_and_keeps_the_largest() {
        let mut t = OrientationTuning::new(1, 2, 1);
        t.add(0, &Map::new(1, 2, vec![1.0, f32::NAN]).expect("m"))
            .expect("add");
        t.add(0, &Map::new(1, 2, vec![f32::NAN, 2.0]).expect("m"))
            .expect("add");
        t.add(0, &Map::new(1, 2, vec![0.5, 3.0]).expect("m"))
            .expect("add");
        assert_eq!(t.responses(0).expect("responses").values, [1.0, 3.0]);
    }

    #[test]
    fn eccentricity_rings_by_hand() {
        // 4x4, centre (2, 2). Ring 0: (2,2) = index 10. Ring 1 (1 ≤ d < 2): the 4 direct and 4
        // diagonal neighbours, indices 5, 6, 7, 9, 11, 13, 14, 15 (sum 80). Ring 2 (2 ≤ d < 3):
        // indices 0, 1, 2, 3, 4, 8, 12 (sum 30; (0, 0) is at √8 < 3).
        let mut m = Map::new(4, 4, (0..16).map(|i| i as f32).collect()).expect("map");
        assert_eq!(original_ring_count(4, 4), 3);
        let p = entropy_vs_eccentricity(&m, 3);
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].eccentricity, p[0].mean, p[0].count), (0.5, 10.0, 1));
        assert_eq!((p[1].eccentricity, p[1].mean, p[1].count), (1.5, 10.0, 8));
        assert_eq!(p[2].eccentricity, 2.5);
        assert_eq!(p[2].count, 7);
        assert!((p[2].mean - 30.0 / 7.0).abs() < 1e-12);
        // NaN units are ignored.
        m.values[0] = f32::NAN;
        let p = entropy_vs_eccentricity(&m, 3);
        assert_eq!((p[2].mean, p[2].count), (5.0, 6));
        // One bin: everything, centred at 1.5.
        let p = entropy_vs_eccentricity(&m, 1);
        assert_eq!((p[0].eccentricity, p[0].count), (1.5, 15));
        assert!(entropy_vs_eccentricity(&m, 0).is_empty());
        // Empty bins have NaN means.
        let p = entropy_vs_eccentricity(&Map::new(1, 1, vec![f32::NAN]).expect("map"), 2);
        assert!(p.iter().all(|p| p.count == 0 && p.mean.is_nan()));
    }

    #[test]
    fn eccentricity_profile_of_a_radial_map() {
        // A map equal to the unit's distance from the centre: each unit-wide ring's mean lies in
        // its ring, and rings grow outwards.
        let (rows, cols) = (20, 20);
        let values = (0..rows * cols)
            .map(|i| ((i / cols) as f64 - 10.0).hypot((i % cols) as f64 - 10.0) as f32)
            .collect();
        let m = Map::new(rows, cols, values).expect("map");
        let p = entropy_vs_eccentricity(&m, original_ring_count(rows, cols));
        assert_eq!(p.len(), 11);
        for (k, point) in p.iter().enumerate() {
            assert!(
                point.mean >= k as f64 && point.mean < k as f64 + 1.0,
                "{point:?}"
            );
        }
    }
}
