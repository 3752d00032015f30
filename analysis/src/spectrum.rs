//! Radial power spectra of sheet maps and the dominant spatial period they show: the column
//! spacing Λ of an orientation map, from which pinwheel density is measured (see
//! [`crate::pinwheels`]).
//!
//! The original (`fft_smoothness` in `all_tnn/analysis/smoothness.py`) takes
//! `fftshift(fft2(map))` of the raw preferred-orientation sheet and averages `|F|²` over rings
//! `⌊r⌋` around the centre bin, without removing the mean, and plots that profile. Here, so that
//! the peak is a usable period estimate: the mean is removed (the frequency-0 ring then carries
//! no power), rings are `round(r)` so ring `k` is centred on frequency `k`, rings stop at the
//! Nyquist radius, and an orientation field is read as the complex field `exp(2πi·preferred)`
//! (preferred orientation spans 180°, so the angle is doubled) rather than as its raw number in
//! `[0, 1)`, whose wrap from 1 to 0 would add spurious high frequencies. The column spacing of
//! [`crate::pinwheels`] uses [`tapered_orientation_power_spectrum`], which also applies a Hann
//! window against edge leakage.

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;
use serde::Serialize;

use crate::maps::Map;

/// One ring of a radial power spectrum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PowerPoint {
    /// Spatial frequency of the ring in cycles per unit (sheet unit spacing).
    pub frequency: f64,
    /// Mean power `|F|² / (rows · cols)` of the frequency bins in the ring (by Parseval, the
    /// powers of all bins sum to the sum of squared deviations from the mean); `|F|² / Σ w²`
    /// for the tapered spectrum.
    pub power: f64,
}

/// Radial power spectrum of a real map.
///
/// The mean of the finite values is removed and non-finite values are set to that mean (they
/// then add no power). The 2-D DFT bin `(u, v)` has frequency `f = √((u'/rows)² + (v'/cols)²)`
/// cycles per unit, with `u'`, `v'` the signed bin indices; bins are grouped into rings
/// `k = round(f · L)`, `L = min(rows, cols)`, for `k = 0 ..= L / 2` (full rings up to the
/// Nyquist frequency 0.5), and each ring's [`PowerPoint`] has `frequency = k / L` and the mean
/// power of its bins. Ring 0 is the mean, so its power is 0.
pub fn radial_power_spectrum(map: &Map) -> Vec<PowerPoint> {
    let data = map
        .values
        .iter()
        .map(|&v| {
            let v = f64::from(v);
            Complex::new(if v.is_finite() { v } else { f64::NAN }, 0.0)
        })
        .collect();
    ring_spectrum(data, map.rows, map.cols, false)
}

/// Radial power spectrum of an orientation field: as [`radial_power_spectrum`] for the complex
/// map `z = exp(2πi · preferred)`, with `preferred ∈ [0, 1)` spanning 180° of orientation (so
/// the orientation angle is doubled and the field is continuous across the wrap). Non-finite
/// units are set to the mean of `z`.
pub fn orientation_power_spectrum(preferred: &Map) -> Vec<PowerPoint> {
    let data = orientation_field(preferred);
    ring_spectrum(data, preferred.rows, preferred.cols, false)
}

/// [`orientation_power_spectrum`] of the field tapered by a separable Hann window
/// (`0.5 − 0.5 cos(2π i / (n − 1))` along each axis, after the mean is removed), with power
/// normalised by the window's `Σ w²` instead of `rows · cols`. The taper suppresses the leakage
/// of the sheet's hard edges, which otherwise biases the peak of a single plane wave by up to
/// about 4 % (1 % with the taper); it weights the middle of the sheet more than its edges.
pub fn tapered_orientation_power_spectrum(preferred: &Map) -> Vec<PowerPoint> {
    let data = orientation_field(preferred);
    ring_spectrum(data, preferred.rows, preferred.cols, true)
}

/// The period `1 / frequency` at the peak of a spectrum's power, frequency 0 (and non-finite
/// or non-positive frequencies, and non-finite powers) excluded.
///
/// The peak is refined by the vertex of the parabola through the peak and its two neighbours
/// (when it is an interior maximum and the parabola opens downwards, the vertex is kept if it
/// lies between the neighbours), so a period between two rings is recovered closer than the
/// ring spacing. `None` when no point is left or the peak power is not positive.
pub fn dominant_period(points: &[PowerPoint]) -> Option<f64> {
    let usable: Vec<PowerPoint> = points
        .iter()
        .filter(|p| p.frequency.is_finite() && p.frequency > 0.0 && p.power.is_finite())
        .copied()
        .collect();
    let (peak, best) = usable
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.power.total_cmp(&b.1.power))?;
    if best.power <= 0.0 {
        return None;
    }
    let mut frequency = best.frequency;
    if peak > 0 && peak + 1 < usable.len() {
        let (a, b, c) = (usable[peak - 1], usable[peak], usable[peak + 1]);
        if let Some(vertex) = parabola_vertex(
            (a.frequency, a.power),
            (b.frequency, b.power),
            (c.frequency, c.power),
        ) {
            if vertex > a.frequency && vertex < c.frequency {
                frequency = vertex;
            }
        }
    }
    Some(1.0 / frequency)
}

/// The abscissa of the maximum of the parabola through three points, if it opens downwards.
fn parabola_vertex(
    (x0, y0): (f64, f64),
    (x1, y1): (f64, f64),
    (x2, y2): (f64, f64),
) -> Option<f64> {
    let denom = (x0 - x1) * (x0 - x2) * (x1 - x2);
    if denom == 0.0 {
        return None;
    }
    let a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom;
    let b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / denom;
    (a < 0.0).then(|| -b / (2.0 * a)).filter(|v| v.is_finite())
}

/// `exp(2πi · preferred)`, NaN where `preferred` is not finite.
fn orientation_field(preferred: &Map) -> Vec<Complex<f64>> {
    preferred
        .values
        .iter()
        .map(|&p| {
            let p = f64::from(p);
            if p.is_finite() {
                Complex::from_polar(1.0, std::f64::consts::TAU * p)
            } else {
                Complex::new(f64::NAN, f64::NAN)
            }
        })
        .collect()
}

/// The Hann window of length `n` (numpy's `hanning`); all ones for `n ≤ 2`, where the Hann
/// window would be all zeros (an axis that short is left untapered).
fn hann(n: usize) -> Vec<f64> {
    if n <= 2 {
        return vec![1.0; n];
    }
    (0..n)
        .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / (n - 1) as f64).cos())
        .collect()
}

/// Mean removal, optional Hann taper, 2-D FFT and ring averaging shared by the spectra. NaN
/// entries mark units to set to the mean.
fn ring_spectrum(
    mut data: Vec<Complex<f64>>,
    rows: usize,
    cols: usize,
    taper: bool,
) -> Vec<PowerPoint> {
    let n = rows * cols;
    if n == 0 || data.len() != n {
        return Vec::new();
    }
    let finite: Vec<&Complex<f64>> = data
        .iter()
        .filter(|z| z.re.is_finite() && z.im.is_finite())
        .collect();
    let mean = if finite.is_empty() {
        Complex::new(0.0, 0.0)
    } else {
        finite.iter().copied().sum::<Complex<f64>>() / finite.len() as f64
    };
    // Deviations below 1e-9 of the largest magnitude are rounding in the mean, not signal
    // (f32 inputs resolve 6e-8): zero them, so a constant map has no power at all.
    let scale = finite.iter().map(|z| z.norm()).fold(0.0, f64::max);
    for z in &mut data {
        let d = *z - mean;
        *z = if z.re.is_finite() && z.im.is_finite() && d.norm() > 1e-9 * scale {
            d
        } else {
            Complex::new(0.0, 0.0)
        };
    }
    let norm = if taper {
        let (wr, wc) = (hann(rows), hann(cols));
        for (i, z) in data.iter_mut().enumerate() {
            *z *= wr[i / cols] * wc[i % cols];
        }
        wr.iter().map(|w| w * w).sum::<f64>() * wc.iter().map(|w| w * w).sum::<f64>()
    } else {
        n as f64
    };
    fft_2d(&mut data, rows, cols);

    let side = rows.min(cols);
    let rings = side / 2 + 1;
    let mut sums = vec![0.0f64; rings];
    let mut counts = vec![0usize; rings];
    for u in 0..rows {
        let fu = frequency(u, rows);
        for v in 0..cols {
            let fv = frequency(v, cols);
            let ring = (fu.hypot(fv) * side as f64).round() as usize;
            if ring < rings {
                sums[ring] += data[u * cols + v].norm_sqr() / norm;
                counts[ring] += 1;
            }
        }
    }
    (0..rings)
        .map(|k| PowerPoint {
            frequency: k as f64 / side as f64,
            // Every ring has a bin: the finer axis samples frequency at least every 1/side.
            power: if counts[k] == 0 {
                0.0
            } else {
                sums[k] / counts[k] as f64
            },
        })
        .collect()
}

/// Spatial frequency (cycles per unit) of FFT bin `i` of `len`: bins past the middle are the
/// negative frequencies.
pub(crate) fn frequency(i: usize, len: usize) -> f64 {
    let signed = if i <= len / 2 {
        i as f64
    } else {
        i as f64 - len as f64
    };
    signed / len as f64
}

/// In-place 2-D DFT of a row-major `rows x cols` array: rows, then columns.
pub(crate) fn fft_2d(data: &mut [Complex<f64>], rows: usize, cols: usize) {
    fft_2d_directed(data, rows, cols, false);
}

/// In-place unnormalised inverse 2-D DFT (`exp(+2πi …)`, no `1 / (rows · cols)`) of a
/// row-major `rows x cols` array: `ifft_2d(fft_2d(x)) = rows · cols · x`.
pub(crate) fn ifft_2d(data: &mut [Complex<f64>], rows: usize, cols: usize) {
    fft_2d_directed(data, rows, cols, true);
}

fn fft_2d_directed(data: &mut [Complex<f64>], rows: usize, cols: usize, inverse: bool) {
    let mut planner = FftPlanner::<f64>::new();
    let plan = |planner: &mut FftPlanner<f64>, len| {
        if inverse {
            planner.plan_fft_inverse(len)
        } else {
            planner.plan_fft_forward(len)
        }
    };
    let row_fft = plan(&mut planner, cols);
    for row in data.chunks_exact_mut(cols) {
        row_fft.process(row);
    }
    let col_fft = plan(&mut planner, rows);
    let mut column = vec![Complex::new(0.0, 0.0); rows];
    for c in 0..cols {
        for (r, z) in column.iter_mut().enumerate() {
            *z = data[r * cols + c];
        }
        col_fft.process(&mut column);
        for (r, z) in column.iter().enumerate() {
            data[r * cols + c] = *z;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::{PI, TAU};

    fn map_from(rows: usize, cols: usize, f: impl Fn(f64, f64) -> f64) -> Map {
        let values = (0..rows * cols)
            .map(|i| f((i / cols) as f64, (i % cols) as f64) as f32)
            .collect();
        Map::new(rows, cols, values).expect("test map")
    }

    /// A plane wave of the given period (units) whose wave vector points at `angle`.
    fn plane_wave(rows: usize, cols: usize, period: f64, angle: f64, phase: f64) -> Map {
        map_from(rows, cols, |r, c| {
            (TAU * (c * angle.cos() + r * angle.sin()) / period + phase).cos()
        })
    }

    fn assert_within(got: f64, want: f64, rel: f64) {
        assert!(
            (got - want).abs() <= rel * want,
            "got {got}, want {want} within {}%",
            rel * 100.0
        );
    }

    #[test]
    fn naive_dft_power_matches_the_fft() {
        // A small map against the DFT written as a double sum: Parseval and one ring by hand.
        let m = map_from(5, 6, |r, c| ((r * 7.0 + c * 3.0) % 5.0) - 1.3 * r);
        let values: Vec<f64> = m.values.iter().map(|&v| f64::from(v)).collect();
        let mean = values.iter().sum::<f64>() / 30.0;
        let power = |u: usize, v: usize| {
            let mut z = Complex::new(0.0, 0.0);
            for r in 0..5 {
                for c in 0..6 {
                    let angle = -TAU * (u as f64 * r as f64 / 5.0 + v as f64 * c as f64 / 6.0);
                    z += Complex::from_polar(values[r * 6 + c] - mean, angle);
                }
            }
            z.norm_sqr() / 30.0
        };
        let spectrum = radial_power_spectrum(&m);
        // side 5: rings 0, 1, 2 at frequencies 0, 0.2, 0.4.
        assert_eq!(spectrum.len(), 3);
        assert_eq!(spectrum[1].frequency, 0.2);
        assert!(spectrum[0].power.abs() < 1e-20);
        // Ring 1 holds the bins with round(5·f) = 1, f = √((u'/5)² + (v'/6)²).
        let mut ring1 = Vec::new();
        for u in 0..5 {
            for v in 0..6 {
                let us = if u <= 2 { u as f64 } else { u as f64 - 5.0 };
                let vs = if v <= 3 { v as f64 } else { v as f64 - 6.0 };
                if ((us / 5.0).hypot(vs / 6.0) * 5.0).round() == 1.0 {
                    ring1.push(power(u, v));
                }
            }
        }
        let want = ring1.iter().sum::<f64>() / ring1.len() as f64;
        assert!((spectrum[1].power - want).abs() < 1e-9 * want.max(1.0));
    }

    #[test]
    fn an_integer_frequency_wave_peaks_on_its_ring() {
        // Period 8 on 96: exactly 12 cycles along the columns, all power in ring 12.
        let spectrum = radial_power_spectrum(&plane_wave(96, 96, 8.0, 0.0, 0.4));
        let peak = spectrum
            .iter()
            .max_by(|a, b| a.power.total_cmp(&b.power))
            .expect("points");
        assert_eq!(peak.frequency, 12.0 / 96.0);
        assert!((dominant_period(&spectrum).expect("period") - 8.0).abs() < 1e-9);
    }

    #[test]
    fn the_period_of_plane_waves_is_recovered_within_5_percent() {
        for &(angle, phase) in &[(0.0, 0.0), (0.5, 1.0), (PI / 4.0, 2.0), (1.3, -0.7)] {
            let spectrum = radial_power_spectrum(&plane_wave(96, 96, 7.3, angle, phase));
            assert_within(dominant_period(&spectrum).expect("period"), 7.3, 0.05);
        }
        // A sum of plane waves of one period at several angles, and a non-square sheet.
        let sum = map_from(96, 96, |r, c| {
            (0..5)
                .map(|j| {
                    let a = 0.3 + j as f64 * PI / 5.0;
                    (TAU * (c * a.cos() + r * a.sin()) / 7.3 + j as f64).cos()
                })
                .sum()
        });
        assert_within(
            dominant_period(&radial_power_spectrum(&sum)).expect("period"),
            7.3,
            0.05,
        );
        let wide = map_from(80, 120, |r, c| (TAU * (0.6 * c + 0.8 * r) / 9.1).sin());
        assert_within(
            dominant_period(&radial_power_spectrum(&wide)).expect("period"),
            9.1,
            0.05,
        );
    }

    #[test]
    fn an_orientation_field_uses_the_doubled_angle() {
        // preferred = c / 7.3 mod 1: the orientation turns through 180° every 7.3 units, so the
        // field exp(2πi·preferred) has period 7.3 — with no harmonics from the wrap 1 → 0.
        let field = map_from(96, 96, |r, c| ((c * 0.8 + r * 0.6) / 7.3).rem_euclid(1.0));
        let spectrum = orientation_power_spectrum(&field);
        assert_within(dominant_period(&spectrum).expect("period"), 7.3, 0.05);
        // A constant field has no power anywhere.
        // The tapered spectrum is closer still (the untapered peak is biased by edge leakage).
        let tapered = tapered_orientation_power_spectrum(&field);
        assert_within(dominant_period(&tapered).expect("period"), 7.3, 0.02);
        for &(angle, phase) in &[(0.0, 0.0), (0.5, 1.0), (PI / 4.0, 2.0), (1.3, -0.7)] {
            let wave = map_from(96, 96, |r, c| {
                ((c * f64::cos(angle) + r * f64::sin(angle)) / 7.3 + phase).rem_euclid(1.0)
            });
            let period = dominant_period(&tapered_orientation_power_spectrum(&wave));
            assert_within(period.expect("period"), 7.3, 0.02);
        }
        let flat = orientation_power_spectrum(&map_from(16, 16, |_, _| 0.3));
        assert!(flat.iter().all(|p| p.power < 1e-20));
        assert_eq!(dominant_period(&flat), None);
        let flat = tapered_orientation_power_spectrum(&map_from(2, 5, |_, _| 0.7));
        assert_eq!(dominant_period(&flat), None);
    }

    #[test]
    fn non_finite_units_add_no_power() {
        let mut m = plane_wave(32, 32, 8.0, 0.0, 0.0);
        let clean = radial_power_spectrum(&m);
        m.values[5] = f32::NAN;
        let holed = radial_power_spectrum(&m);
        assert!(holed.iter().all(|p| p.power.is_finite()));
        assert_eq!(clean.len(), holed.len());
        assert_within(dominant_period(&holed).expect("period"), 8.0, 0.01);
    }

    #[test]
    fn the_inverse_fft_undoes_the_forward_one() {
        let (rows, cols) = (5, 6);
        let original: Vec<Complex<f64>> = (0..rows * cols)
            .map(|i| Complex::new((i as f64 * 0.7).sin(), (i as f64 * 1.3).cos() - 0.2))
            .collect();
        let mut data = original.clone();
        fft_2d(&mut data, rows, cols);
        // Bin (0, 0) is the plain sum.
        let sum: Complex<f64> = original.iter().sum();
        assert!((data[0] - sum).norm() < 1e-12);
        ifft_2d(&mut data, rows, cols);
        for (got, want) in data.iter().zip(&original) {
            assert!((got / (rows * cols) as f64 - want).norm() < 1e-12);
        }
    }

    #[test]
    fn dominant_period_by_hand() {
        let pts = |p: &[(f64, f64)]| -> Vec<PowerPoint> {
            p.iter()
                .map(|&(frequency, power)| PowerPoint { frequency, power })
                .collect()
        };
        // Symmetric neighbours: the vertex is the peak itself. Frequency 0 is ignored even
        // with the largest power.
        let p = pts(&[(0.0, 100.0), (0.1, 1.0), (0.2, 3.0), (0.3, 1.0)]);
        assert!((dominant_period(&p).expect("period") - 5.0).abs() < 1e-12);
        // Parabola through (1, 0), (2, 3), (3, 2) — y = -2x² + 9x - 7 — peaks at x = 9/4.
        let p = pts(&[(1.0, 0.0), (2.0, 3.0), (3.0, 2.0)]);
        assert!((dominant_period(&p).expect("period") - 4.0 / 9.0).abs() < 1e-12);
        // A peak at the end is not refined.
        let p = pts(&[(0.1, 1.0), (0.2, 2.0), (0.25, 4.0)]);
        assert_eq!(dominant_period(&p), Some(4.0));
        assert_eq!(dominant_period(&pts(&[(0.0, 1.0)])), None);
        assert_eq!(dominant_period(&[]), None);
    }
}
