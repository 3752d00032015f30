//! Category selectivity (PAPER.md, "Analyses", Category): per-unit d′ of each stimulus category
//! (e.g. faces / scenes / tools) against the other categories pooled, the map of each unit's
//! preferred category and largest d′, and the share of units preferring each category.
//!
//! The original collects every activation of every test set in memory and takes
//! `np.mean` / `np.var` over them. [`CategoryStats`] instead streams: it keeps, per category and
//! per sheet unit, the count, mean and sum of squared deviations (M2) in `f64`, updated one
//! stimulus at a time with Welford's method and combined with Chan et al.'s pairwise formula.
//! Values are taken relative to a per-unit shift (the unit's first activation seen), so that a
//! large common offset costs no precision in the running means either. Memory is
//! `(2 · categories + 1) · units` numbers whatever the number of stimuli, and the result is the
//! same population mean and variance as the original's, without the cancellation of a naive
//! sum-of-squares when activations are large compared to their spread.
//!
//! ```
//! use alltnn_analysis::category::{category_fractions, selectivity_map, CategoryStats};
//! use alltnn_analysis::maps::Map;
//! # fn main() -> Result<(), alltnn_analysis::error::AnalysisError> {
//! let names = vec!["faces".to_string(), "scenes".to_string()];
//! let mut stats = CategoryStats::new(names, 1, 2)?;
//! stats.add(0, &Map::new(1, 2, vec![3.0, 1.0])?)?; // a face
//! stats.add(0, &Map::new(1, 2, vec![5.0, 1.0])?)?; // another face
//! stats.add(1, &Map::new(1, 2, vec![1.0, 1.0])?)?; // a scene
//! let dprimes = stats.dprime()?;
//! let (preferred, largest) = selectivity_map(&dprimes)?;
//! assert_eq!(preferred, vec![Some(0), None]); // unit 1 answers every category alike
//! assert!(largest.values[0] > 0.0 && largest.values[1].is_nan());
//! assert_eq!(category_fractions(&preferred, 2), vec![0.5, 0.0]);
//! # Ok(()) }
//! ```

use crate::error::AnalysisError;
use crate::maps::Map;

/// The original's guard against a zero denominator in d′ (`(σ_k + σ_rest) / 2 + 1e-10`).
const DPRIME_EPSILON: f64 = 1e-10;

/// Count, mean and M2 (sum of squared deviations from the mean) of one set of values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// Chan et al.'s combination of two disjoint sets' moments; exact in real arithmetic and
    /// stable in floating point because it only adds non-negative M2 terms.
    fn combine(self, other: Moments) -> Moments {
        if other.n == 0 {
            return self;
        }
        if self.n == 0 {
            return other;
        }
        let n = self.n + other.n;
        let (na, nb, nn) = (self.n as f64, other.n as f64, n as f64);
        let delta = other.mean - self.mean;
        Moments {
            n,
            mean: self.mean + delta * nb / nn,
            m2: self.m2 + other.m2 + delta * delta * na * nb / nn,
        }
    }

    /// Population standard deviation (NumPy's `np.std` / `np.var` default, `ddof = 0`).
    fn population_sd(self) -> f64 {
        (self.m2 / self.n as f64).max(0.0).sqrt()
    }
}

/// Streaming per-unit statistics of activation sheets grouped by stimulus category, from which
/// [`CategoryStats::dprime`] gives each category's selectivity map.
///
/// Feed it one sheet per stimulus with [`CategoryStats::add`]; accumulate in parallel in several
/// instances and join them with [`CategoryStats::merge`].
#[derive(Clone, Debug, PartialEq)]
pub struct CategoryStats {
    categories: Vec<String>,
    rows: usize,
    cols: usize,
    counts: Vec<u64>,
    /// Per unit: the value subtracted from every activation before accumulating (the unit's
    /// first activation seen). Welford's mean update rounds at the magnitude of the mean; near
    /// zero that rounding is negligible, at a mean of 1e6 it is not.
    shift: Vec<f64>,
    /// Per category, then per unit (row-major): running means of the shifted activations.
    means: Vec<f64>,
    /// Per category, then per unit: running sums of squared deviations from the mean.
    m2: Vec<f64>,
}

impl CategoryStats {
    /// Empty statistics for `categories` (named, in the order of their indices) over sheets of
    /// `rows` x `cols` units. Refuses fewer than 2 categories (there would be no "rest"), a name
    /// given twice and an empty sheet.
    pub fn new(categories: Vec<String>, rows: usize, cols: usize) -> Result<Self, AnalysisError> {
        if categories.len() < 2 {
            return Err(AnalysisError::TooFewCategories {
                found: categories.len(),
            });
        }
        for (i, name) in categories.iter().enumerate() {
            if categories[..i].contains(name) {
                return Err(AnalysisError::DuplicateCategory { name: name.clone() });
            }
        }
        let units = rows
            .checked_mul(cols)
            .filter(|&u| u > 0)
            .ok_or(AnalysisError::EmptyMap { rows, cols })?;
        let k = categories.len();
        Ok(CategoryStats {
            counts: vec![0; k],
            shift: vec![0.0; units],
            means: vec![0.0; k * units],
            m2: vec![0.0; k * units],
            categories,
            rows,
            cols,
        })
    }

    /// Adds one stimulus of category index `category` with its activation `sheet` (e.g. a layer's
    /// post-ReLU output laid out by [`Map::from_hwc`]). Refuses an index out of range, a sheet of
    /// another shape and a non-finite activation; on error nothing is added.
    pub fn add(&mut self, category: usize, sheet: &Map) -> Result<(), AnalysisError> {
        if category >= self.categories.len() {
            return Err(AnalysisError::CategoryIndex {
                index: category,
                count: self.categories.len(),
            });
        }
        sheet.validate()?;
        if (sheet.rows, sheet.cols) != (self.rows, self.cols) {
            return Err(AnalysisError::CategorySheetShape {
                rows: sheet.rows,
                cols: sheet.cols,
                expected_rows: self.rows,
                expected_cols: self.cols,
            });
        }
        // Checked before any update so that a bad sheet leaves the statistics untouched; one
        // NaN would otherwise poison the unit's mean for good.
        if let Some((unit, &value)) = sheet
            .values
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
        {
            return Err(AnalysisError::NonFiniteActivation {
                category,
                unit,
                value,
            });
        }
        if self.is_empty() {
            for (s, &x) in self.shift.iter_mut().zip(&sheet.values) {
                *s = f64::from(x);
            }
        }
        self.counts[category] += 1;
        let n = self.counts[category] as f64;
        let units = self.units();
        let range = category * units..(category + 1) * units;
        let means = &mut self.means[range.clone()];
        let m2 = &mut self.m2[range];
        let values = sheet.values.iter().zip(&self.shift);
        for ((mean, m2), (&x, &shift)) in means.iter_mut().zip(m2.iter_mut()).zip(values) {
            // Welford: the update uses deviations from the running mean, never x², so a large
            // common offset does not cancel. The shift is exact: both are f32 values in f64.
            let x = f64::from(x) - shift;
            let delta = x - *mean;
            *mean += delta / n;
            *m2 += delta * (x - *mean);
        }
        Ok(())
    }

    /// Number of stimuli added so far per category.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The category names, in index order.
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// The sheet shape `(rows, cols)` every added sheet must have.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Adds the stimuli summarised in `other` (accumulated separately, e.g. on another thread) as
    /// if they had been added here. Refuses statistics over other categories (names and order)
    /// or another sheet shape.
    pub fn merge(&mut self, other: &CategoryStats) -> Result<(), AnalysisError> {
        if self.categories != other.categories || self.shape() != other.shape() {
            return Err(AnalysisError::CategoryStatsMismatch);
        }
        if other.is_empty() {
            return Ok(());
        }
        if self.is_empty() {
            *self = other.clone();
            return Ok(());
        }
        let units = self.units();
        for k in 0..self.categories.len() {
            for u in 0..units {
                let i = k * units + u;
                // Re-express the other's mean relative to this shift. The shifts are f32 values,
                // so their difference is exact in f64 and is added to the small shifted mean,
                // not to a large absolute one.
                let mut theirs = other.moments(k, u);
                theirs.mean += other.shift[u] - self.shift[u];
                let joined = self.moments(k, u).combine(theirs);
                self.means[i] = joined.mean;
                self.m2[i] = joined.m2;
            }
            self.counts[k] += other.counts[k];
        }
        Ok(())
    }

    /// Per category `k` (index order), the map of each unit's
    /// `d′_k = (μ_k − μ_rest) / ((σ_k + σ_rest) / 2 + 1e-10)`, with μ and σ the mean and
    /// population standard deviation of the unit's activations over the category's stimuli and
    /// over all other categories' stimuli pooled ("rest"), as the original. Computed in `f64`
    /// ([`CategoryStats::dprime_values`]) and stored as `f32`. Refuses a category with no stimuli.
    pub fn dprime(&self) -> Result<Vec<Map>, AnalysisError> {
        self.dprime_values()?
            .into_iter()
            .map(|d| {
                Map::new(
                    self.rows,
                    self.cols,
                    d.into_iter().map(|v| v as f32).collect(),
                )
            })
            .collect()
    }

    /// The d′ values of [`CategoryStats::dprime`] in full `f64` precision: one row-major vector
    /// of `rows · cols` values per category.
    pub fn dprime_values(&self) -> Result<Vec<Vec<f64>>, AnalysisError> {
        if let Some(k) = self.counts.iter().position(|&n| n == 0) {
            return Err(AnalysisError::EmptyCategory {
                name: self.categories[k].clone(),
            });
        }
        let n_cat = self.categories.len();
        let units = self.units();
        let mut out = vec![Vec::with_capacity(units); n_cat];
        for u in 0..units {
            let per_cat: Vec<Moments> = (0..n_cat).map(|k| self.moments(k, u)).collect();
            for (k, dk) in out.iter_mut().enumerate() {
                // The rest is pooled by combining the other categories' moments, which gives
                // the same mean and variance as concatenating their activations (the original).
                let rest = per_cat
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != k)
                    .fold(Moments::default(), |acc, (_, &m)| acc.combine(m));
                let own = per_cat[k];
                let spread = (own.population_sd() + rest.population_sd()) / 2.0 + DPRIME_EPSILON;
                dk.push((own.mean - rest.mean) / spread);
            }
        }
        Ok(out)
    }

    fn units(&self) -> usize {
        self.rows * self.cols
    }

    fn is_empty(&self) -> bool {
        self.counts.iter().all(|&n| n == 0)
    }

    fn moments(&self, category: usize, unit: usize) -> Moments {
        let i = category * self.units() + unit;
        Moments {
            n: self.counts[category],
            mean: self.means[i],
            m2: self.m2[i],
        }
    }
}

/// Each unit's preferred category and largest d′, from the per-category d′ maps of
/// [`CategoryStats::dprime`] (all of one shape; at least one map).
///
/// Returns, per unit (row-major), the index of the category with the largest finite d′, and the
/// map of that largest d′. As in the original's figure, a unit whose largest d′ is not positive
/// has no preferred category (`None`) and is left out of the map (NaN): the original zeroes every
/// category's d′ where another category's is larger and masks the zeros, which hides exactly the
/// units whose largest d′ is 0. The largest d′ of finite activations is never below 0 (the
/// categories' mean deviations from the grand mean, weighted by their counts, sum to zero), so
/// "≤ 0" differs from the original only by rounding; it is the case of a unit that answers every
/// category alike, e.g. a dead unit. Non-finite d′ values are ignored (NumPy's comparisons with
/// NaN are false, so the original never picks them either). On a tie the lowest category index
/// wins (`np.argmax`; the original's figure draws both and shows the last one on top).
pub fn selectivity_map(dprimes: &[Map]) -> Result<(Vec<Option<usize>>, Map), AnalysisError> {
    let first = dprimes.first().ok_or(AnalysisError::NoMaps)?;
    for map in dprimes {
        map.validate()?;
        if (map.rows, map.cols) != (first.rows, first.cols) {
            return Err(AnalysisError::CategorySheetShape {
                rows: map.rows,
                cols: map.cols,
                expected_rows: first.rows,
                expected_cols: first.cols,
            });
        }
    }
    let units = first.values.len();
    let mut preferred = Vec::with_capacity(units);
    let mut largest = Vec::with_capacity(units);
    for u in 0..units {
        let mut best: Option<(usize, f32)> = None;
        for (k, map) in dprimes.iter().enumerate() {
            let v = map.values[u];
            // Strictly greater keeps the lowest index on ties.
            if v.is_finite() && best.is_none_or(|(_, b)| v > b) {
                best = Some((k, v));
            }
        }
        match best {
            Some((k, v)) if v > 0.0 => {
                preferred.push(Some(k));
                largest.push(v);
            }
            _ => {
                preferred.push(None);
                largest.push(f32::NAN);
            }
        }
    }
    let map = Map::new(first.rows, first.cols, largest)?;
    Ok((preferred, map))
}

/// The share of units preferring each of `n` categories: the number of units whose entry in
/// `argmax` (from [`selectivity_map`]) is `Some(k)`, divided by the number of all units, so
/// units without a preference count in the denominator and the shares sum to at most 1. An
/// entry `Some(k)` with `k ≥ n` counts for no category. An empty `argmax` gives NaN shares
/// (there are no units to share).
pub fn category_fractions(argmax: &[Option<usize>], n: usize) -> Vec<f64> {
    let mut counts = vec![0u64; n];
    for k in argmax.iter().flatten() {
        if let Some(c) = counts.get_mut(*k) {
            *c += 1;
        }
    }
    let total = argmax.len() as f64;
    counts.into_iter().map(|c| c as f64 / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("cat{i}")).collect()
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
    }

    /// A small linear congruential generator (Knuth's MMIX constants): reproducible test data
    /// without a dependency.
    struct Lcg(u64);
    impl Lcg {
        fn next_f64(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Two-pass population mean and SD of `xs`, the textbook way, as the reference.
    fn mean_sd(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    /// Naive d′ from all activations kept in memory: `acts[k][stimulus][unit]`.
    fn naive_dprime(acts: &[Vec<Vec<f32>>], units: usize) -> Vec<Vec<f64>> {
        (0..acts.len())
            .map(|k| {
                (0..units)
                    .map(|u| {
                        let own: Vec<f64> = acts[k].iter().map(|s| f64::from(s[u])).collect();
                        let rest: Vec<f64> = acts
                            .iter()
                            .enumerate()
                            .filter(|&(j, _)| j != k)
                            .flat_map(|(_, stims)| stims.iter().map(|s| f64::from(s[u])))
                            .collect();
                        let (mo, so) = mean_sd(&own);
                        let (mr, sr) = mean_sd(&rest);
                        (mo - mr) / ((so + sr) / 2.0 + 1e-10)
                    })
                    .collect()
            })
            .collect()
    }

    /// The hand-made case: 3 categories on a 2x2 sheet, stimuli as [u0, u1, u2, u3].
    fn hand_stats() -> CategoryStats {
        let mut s = CategoryStats::new(names(3), 2, 2).unwrap();
        let stimuli: [(usize, [f32; 4]); 7] = [
            (0, [1.0, 0.0, 4.0, 7.0]),
            (0, [3.0, 0.0, 4.0, 7.0]),
            (1, [2.0, 0.0, 1.0, 7.0]),
            (1, [6.0, 0.0, 3.0, 7.0]),
            (2, [4.0, 0.0, 2.0, 7.0]),
            (2, [2.0, 0.0, 2.0, 7.0]),
            (2, [0.0, 0.0, 5.0, 7.0]),
        ];
        for (k, v) in stimuli {
            s.add(k, &Map::new(2, 2, v.to_vec()).unwrap()).unwrap();
        }
        s
    }

    #[test]
    fn dprime_matches_hand_computation() {
        let s = hand_stats();
        assert_eq!(s.counts(), &[2, 2, 3]);
        let d = s.dprime_values().unwrap();
        // Unit 0. A = {1, 3}: μ 2, σ² ((−1)² + 1²)/2 = 1.
        //   rest(A) = {2, 6, 4, 2, 0}: μ 14/5 = 2.8,
        //   σ² (0.64 + 10.24 + 1.44 + 0.64 + 7.84)/5 = 20.8/5 = 4.16.
        let a0 = (2.0 - 2.8) / ((1.0 + 4.16f64.sqrt()) / 2.0 + 1e-10);
        // B = {2, 6}: μ 4, σ² (4 + 4)/2 = 4. rest(B) = {1, 3, 4, 2, 0}: μ 2, σ² (1+1+4+0+4)/5 = 2.
        let b0 = (4.0 - 2.0) / ((2.0 + 2f64.sqrt()) / 2.0 + 1e-10);
        // C = {4, 2, 0}: μ 2, σ² (4+0+4)/3 = 8/3. rest(C) = {1, 3, 2, 6}: μ 3, σ² (4+0+1+9)/4 = 3.5.
        let c0 = (2.0 - 3.0) / (((8.0f64 / 3.0).sqrt() + 3.5f64.sqrt()) / 2.0 + 1e-10);
        // Unit 1 and unit 3 are constant: μ_k = μ_rest, σ = 0, d′ = 0 / 1e-10 = 0.
        // Unit 2. A = {4, 4}: μ 4, σ 0. rest(A) = {1, 3, 2, 2, 5}: μ 13/5 = 2.6,
        //   σ² (2.56 + 0.16 + 0.36 + 0.36 + 5.76)/5 = 9.2/5 = 1.84.
        let a2 = (4.0 - 2.6) / ((0.0 + 1.84f64.sqrt()) / 2.0 + 1e-10);
        // B = {1, 3}: μ 2, σ 1. rest(B) = {4, 4, 2, 2, 5}: μ 17/5 = 3.4,
        //   σ² (0.36 + 0.36 + 1.96 + 1.96 + 2.56)/5 = 7.2/5 = 1.44, σ 1.2.
        let b2 = (2.0 - 3.4) / ((1.0 + 1.2) / 2.0 + 1e-10);
        // C = {2, 2, 5}: μ 3. rest(C) = {4, 4, 1, 3}: μ 3. d′ = 0.
        let expected = [[a0, 0.0, a2, 0.0], [b0, 0.0, b2, 0.0], [c0, 0.0, 0.0, 0.0]];
        for k in 0..3 {
            for u in 0..4 {
                assert!(
                    close(d[k][u], expected[k][u], 1e-12),
                    "category {k} unit {u}: {} vs {}",
                    d[k][u],
                    expected[k][u]
                );
            }
        }
        // The f32 maps carry the same values.
        let maps = s.dprime().unwrap();
        assert_eq!((maps[1].rows, maps[1].cols), (2, 2));
        assert!(close(f64::from(maps[1].values[0]), b0, 1e-6));
    }

    #[test]
    fn selectivity_of_hand_case() {
        let (pref, largest) = selectivity_map(&hand_stats().dprime().unwrap()).unwrap();
        // Unit 0: d′ = (−0.41, 1.17, −0.57) → B. Unit 2: (2.07, −1.27, 0) → A. Units 1, 3: all 0.
        assert_eq!(pref, vec![Some(1), None, Some(0), None]);
        let b0 = (4.0 - 2.0) / ((2.0 + 2f64.sqrt()) / 2.0);
        let a2 = 1.4 / (1.84f64.sqrt() / 2.0);
        assert!(close(f64::from(largest.values[0]), b0, 1e-6));
        assert!(close(f64::from(largest.values[2]), a2, 1e-6));
        assert!(largest.values[1].is_nan() && largest.values[3].is_nan());
        assert_eq!(category_fractions(&pref, 3), vec![0.25, 0.25, 0.0]);
    }

    #[test]
    fn streaming_equals_naive_two_pass_on_random_data() {
        let mut rng = Lcg(42);
        let (rows, cols) = (3, 4);
        let units = rows * cols;
        let per_cat = [17usize, 5, 31];
        let mut acts: Vec<Vec<Vec<f32>>> = vec![Vec::new(); 3];
        let mut order = Vec::new();
        for (k, &n) in per_cat.iter().enumerate() {
            for _ in 0..n {
                // Unit- and category-dependent scale and offset so the d′ differ.
                let s: Vec<f32> = (0..units)
                    .map(|u| (rng.next_f64() * (1.0 + u as f64) + (k * u) as f64 * 0.3) as f32)
                    .collect();
                acts[k].push(s);
                order.push((k, acts[k].len() - 1));
            }
        }
        // Interleave categories in a scrambled order: the result must not depend on it.
        for i in (1..order.len()).rev() {
            let j = (rng.next_f64() * (i + 1) as f64) as usize;
            order.swap(i, j);
        }
        let mut stats = CategoryStats::new(names(3), rows, cols).unwrap();
        for &(k, i) in &order {
            stats
                .add(k, &Map::new(rows, cols, acts[k][i].clone()).unwrap())
                .unwrap();
        }
        assert_eq!(stats.counts(), &[17, 5, 31]);
        let got = stats.dprime_values().unwrap();
        let want = naive_dprime(&acts, units);
        for k in 0..3 {
            for u in 0..units {
                assert!(
                    close(got[k][u], want[k][u], 1e-9),
                    "{k} {u}: {} vs {}",
                    got[k][u],
                    want[k][u]
                );
            }
        }
    }

    #[test]
    fn merge_equals_single_accumulation() {
        let mut rng = Lcg(7);
        let mut all = CategoryStats::new(names(3), 2, 3).unwrap();
        let mut a = CategoryStats::new(names(3), 2, 3).unwrap();
        let mut b = CategoryStats::new(names(3), 2, 3).unwrap();
        for i in 0..60 {
            // Category 2 only ever goes to `a`, so `b` has an empty category to merge.
            let k = i % 3;
            let s = Map::new(
                2,
                3,
                (0..6).map(|_| (rng.next_f64() * 5.0) as f32).collect(),
            )
            .unwrap();
            all.add(k, &s).unwrap();
            if k == 2 || i.is_multiple_of(2) {
                a.add(k, &s).unwrap();
            } else {
                b.add(k, &s).unwrap();
            }
        }
        assert_eq!(b.counts()[2], 0);
        a.merge(&b).unwrap();
        assert_eq!(a.counts(), all.counts());
        let (da, dall) = (a.dprime_values().unwrap(), all.dprime_values().unwrap());
        for k in 0..3 {
            for u in 0..6 {
                assert!(close(da[k][u], dall[k][u], 1e-12));
            }
        }
        for i in 0..a.means.len() {
            let u = i % 6;
            assert!(close(
                a.means[i] + a.shift[u],
                all.means[i] + all.shift[u],
                1e-12
            ));
            assert!(close(a.m2[i], all.m2[i], 1e-12));
        }
        // Merging into an empty accumulator gives the other's statistics.
        let mut empty = CategoryStats::new(names(3), 2, 3).unwrap();
        empty.merge(&all).unwrap();
        assert_eq!(empty, all);
        // Mismatches are refused.
        let other_names =
            CategoryStats::new(vec!["x".into(), "y".into(), "z".into()], 2, 3).unwrap();
        assert_eq!(
            a.merge(&other_names),
            Err(AnalysisError::CategoryStatsMismatch)
        );
        let other_shape = CategoryStats::new(names(3), 3, 2).unwrap();
        assert_eq!(
            a.merge(&other_shape),
            Err(AnalysisError::CategoryStatsMismatch)
        );
    }

    #[test]
    fn large_offset_stays_accurate() {
        // 200 000 stimuli of 1e6 + noise in steps of 0.25 (exact in f32, whose step at 1e6 is
        // 1/16). d′ does not depend on a common offset, so the offset data must give the d′ of
        // the noise alone. A naive Σx² in f64 loses about 4 significant digits here.
        let mut rng = Lcg(3);
        let n = 100_000;
        let mut with_offset = CategoryStats::new(names(2), 1, 1).unwrap();
        let mut without = CategoryStats::new(names(2), 1, 1).unwrap();
        let mut noise: Vec<Vec<Vec<f32>>> = vec![Vec::new(), Vec::new()];
        for i in 0..2 * n {
            let k = i % 2;
            let steps = (rng.next_f64() * 8.0).floor() + if k == 0 { 1.0 } else { 0.0 };
            let e = (steps * 0.25) as f32;
            with_offset
                .add(k, &Map::new(1, 1, vec![1.0e6 + e]).unwrap())
                .unwrap();
            without.add(k, &Map::new(1, 1, vec![e]).unwrap()).unwrap();
            noise[k].push(vec![e]);
        }
        let want = naive_dprime(&noise, 1);
        let got = with_offset.dprime_values().unwrap();
        let got_plain = without.dprime_values().unwrap();
        for k in 0..2 {
            assert!(want[k][0].abs() > 0.1, "the categories should differ");
            assert!(
                close(got[k][0], want[k][0], 1e-9),
                "{} vs {}",
                got[k][0],
                want[k][0]
            );
            assert!(close(got_plain[k][0], want[k][0], 1e-9));
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            CategoryStats::new(names(1), 2, 2),
            Err(AnalysisError::TooFewCategories { found: 1 })
        );
        assert_eq!(
            CategoryStats::new(vec!["a".into(), "b".into(), "a".into()], 2, 2),
            Err(AnalysisError::DuplicateCategory { name: "a".into() })
        );
        assert_eq!(
            CategoryStats::new(names(2), 0, 2),
            Err(AnalysisError::EmptyMap { rows: 0, cols: 2 })
        );
        let mut s = CategoryStats::new(names(3), 2, 2).unwrap();
        let ok = Map::new(2, 2, vec![1.0; 4]).unwrap();
        assert_eq!(
            s.add(3, &ok),
            Err(AnalysisError::CategoryIndex { index: 3, count: 3 })
        );
        assert_eq!(
            s.add(0, &Map::new(1, 4, vec![1.0; 4]).unwrap()),
            Err(AnalysisError::CategorySheetShape {
                rows: 1,
                cols: 4,
                expected_rows: 2,
                expected_cols: 2
            })
        );
        let bad = Map {
            rows: 2,
            cols: 2,
            values: vec![1.0; 3],
        };
        assert!(matches!(s.add(0, &bad), Err(AnalysisError::MapSize { .. })));
        assert!(matches!(
            s.add(1, &Map::new(2, 2, vec![1.0, f32::NAN, 1.0, 1.0]).unwrap()),
            Err(AnalysisError::NonFiniteActivation {
                category: 1,
                unit: 1,
                ..
            })
        ));
        assert_eq!(s.counts(), &[0, 0, 0], "refused sheets add nothing");
        s.add(0, &ok).unwrap();
        s.add(2, &ok).unwrap();
        assert_eq!(
            s.dprime(),
            Err(AnalysisError::EmptyCategory {
                name: "cat1".into()
            })
        );
        s.add(1, &ok).unwrap();
        assert_eq!(s.dprime().unwrap().len(), 3);
    }

    #[test]
    fn selectivity_map_hand_case() {
        let m0 = Map::new(1, 5, vec![1.0, f32::NAN, -1.0, 2.0, f32::NAN]).unwrap();
        let m1 = Map::new(1, 5, vec![3.0, f32::NAN, -0.5, 2.0, 0.2]).unwrap();
        let m2 = Map::new(1, 5, vec![0.5, f32::NAN, -2.0, 1.0, 0.7]).unwrap();
        let (pref, largest) = selectivity_map(&[m0, m1, m2]).unwrap();
        // Unit 0: max 3 in category 1. Unit 1: no finite d′. Unit 2: all negative. Unit 3: a tie
        // between 0 and 1 goes to 0. Unit 4: the NaN of category 0 is skipped, 0.7 > 0.2.
        assert_eq!(pref, vec![Some(1), None, None, Some(0), Some(2)]);
        assert_eq!(largest.values[0], 3.0);
        assert!(largest.values[1].is_nan() && largest.values[2].is_nan());
        assert_eq!(largest.values[3], 2.0);
        assert_eq!(largest.values[4], 0.7);
        assert_eq!((largest.rows, largest.cols), (1, 5));
        assert_eq!(category_fractions(&pref, 3), vec![0.2, 0.2, 0.2]);
        // Category 2 out of range for n = 2: counted for none, still in the denominator.
        assert_eq!(category_fractions(&pref, 2), vec![0.2, 0.2]);
        assert!(category_fractions(&[], 2).iter().all(|f| f.is_nan()));

        assert_eq!(selectivity_map(&[]), Err(AnalysisError::NoMaps));
        let a = Map::new(1, 2, vec![1.0, 2.0]).unwrap();
        let b = Map::new(2, 1, vec![1.0, 2.0]).unwrap();
        assert!(matches!(
            selectivity_map(&[a, b]),
            Err(AnalysisError::CategorySheetShape { .. })
        ));
    }
}
