//! Spatial-bias (accuracy) maps: the model side of the paper's comparison with human spatial
//! biases (PAPER.md, "Analyses", Behaviour).
//!
//! In the human experiment objects of 16 categories were shown at the positions of a 5×5 grid
//! and each category's recognition accuracy per position forms a 5×5 accuracy map; the model's
//! maps are compared with the humans' by Pearson r per category. The original's public code
//! does not compute the model-side maps, so this module supplies the pieces:
//!
//! * [`BiasGrid`] describes the stimulus layout and [`BiasGrid::place`] draws one object at one
//!   grid cell on a uniform background;
//! * [`BiasAccuracy`] counts the model's correct answers per class and cell and gives the
//!   accuracy maps;
//! * [`pearson`] is the alignment measure between two maps (flattened).
//!
//! ```
//! use alltnn_analysis::bias::{pearson, BiasAccuracy, BiasGrid};
//! # fn main() -> Result<(), alltnn_analysis::error::AnalysisError> {
//! let grid = BiasGrid::new(150, 150); // 5x5 cells of 30 px, objects 30 px wide
//! let object = vec![255u8; 8 * 8]; // a white 8x8 grey-scale object
//! let image = grid.place(&object, 8, 8, 1, 12)?; // at the centre cell
//! assert_eq!(image.len(), 150 * 150 * 3);
//! assert_eq!(&image[(75 * 150 + 75) * 3..][..3], &[255, 255, 255]);
//! assert_eq!(&image[..3], &[128, 128, 128]); // background in the corner
//!
//! let mut acc = BiasAccuracy::new(5, 2)?;
//! acc.add(0, 12, true)?;
//! acc.add(0, 12, false)?;
//! assert_eq!(acc.maps()[0].values[12], 0.5);
//! assert!(acc.maps()[1].values[12].is_nan()); // no trials of class 1 there
//! let r = pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]).unwrap();
//! assert!((r - 1.0).abs() < 1e-12);
//! # Ok(()) }
//! ```

use image::imageops::{self, FilterType};
use image::RgbImage;
use serde::Serialize;

use crate::error::AnalysisError;
use crate::maps::Map;

/// The layout of spatial-bias stimuli: a `grid` x `grid` arrangement of object positions over a
/// `height` x `width` image, objects drawn `object_size` pixels square on a uniform grey
/// `background`.
///
/// The image is cut into `grid` x `grid` equal cells, numbered row-major from the top left; an
/// object is centred on its cell's centre. With the default object size (one cell) the objects
/// at the 25 positions tile the image exactly, each lies wholly inside the image and the cell of
/// the accuracy map is the region the object covered. A larger `object_size` is allowed; objects
/// then overlap neighbouring cells and are clipped at the image borders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BiasGrid {
    /// Cells per side (the paper's experiment: 5).
    pub grid: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Side of the square the object is resized to, in pixels.
    pub object_size: usize,
    /// Grey level (all three channels) of the background.
    pub background: u8,
}

impl BiasGrid {
    /// The default layout for a `height` x `width` image: a 5×5 grid, objects one cell wide
    /// (`max(1, min(height, width) / 5)` pixels, rounded down) and a mid-grey background (128).
    pub fn new(height: usize, width: usize) -> BiasGrid {
        let grid = 5;
        BiasGrid {
            grid,
            height,
            width,
            object_size: (height.min(width) / grid).max(1),
            background: 128,
        }
    }

    /// Number of cells (`grid²`).
    pub fn cells(&self) -> usize {
        self.grid * self.grid
    }

    /// The centre `(row, col)` of cell `cell` (row-major) in pixel-index coordinates, where pixel
    /// `p` has its centre at `p`: `((i + 0.5) · height / grid − 0.5, (j + 0.5) · width / grid − 0.5)`
    /// for cell `i · grid + j`. The centres are symmetric about the image centre
    /// `((height − 1) / 2, (width − 1) / 2)`.
    ///
    /// # Panics
    /// If `cell` is not below [`BiasGrid::cells`].
    pub fn cell_centre(&self, cell: usize) -> (f64, f64) {
        assert!(
            cell < self.cells(),
            "cell {cell} of a {0}x{0} grid",
            self.grid
        );
        let (i, j) = (cell / self.grid, cell % self.grid);
        let g = self.grid as f64;
        (
            (i as f64 + 0.5) * self.height as f64 / g - 0.5,
            (j as f64 + 0.5) * self.width as f64 / g - 0.5,
        )
    }

    /// The pixel `(row, col)` of the object's top-left corner when placed at `cell`: the
    /// object's centre put on [`BiasGrid::cell_centre`], rounded to the nearest pixel (halves
    /// up). Negative, or past the image, where the object is clipped.
    ///
    /// # Panics
    /// If `cell` is not below [`BiasGrid::cells`].
    pub fn object_origin(&self, cell: usize) -> (i64, i64) {
        let (r, c) = self.cell_centre(cell);
        // An object of side s centred at c covers pixel indices c − (s−1)/2 ..= c + (s−1)/2.
        let half = (self.object_size as f64 - 1.0) / 2.0;
        (
            (r - half + 0.5).floor() as i64,
            (c - half + 0.5).floor() as i64,
        )
    }

    /// A `height` x `width` RGB image (row-major HWC, `u8`) filled with the background and the
    /// object pasted centred on cell `cell` (see [`BiasGrid::object_origin`]), clipped at the
    /// borders.
    ///
    /// `object` is an `obj_h` x `obj_w` image in row-major HWC with `channels` 1 (grey, repeated
    /// to RGB) or 3 (RGB). It is resized to `object_size` x `object_size` with the `image`
    /// crate's triangle filter (bilinear when enlarging, an area-weighted average when
    /// shrinking, so small objects do not alias) unless it already has that size, in which case
    /// it is copied unchanged. Refuses an empty or inconsistent layout or object, and a cell out
    /// of range.
    pub fn place(
        &self,
        object: &[u8],
        obj_h: usize,
        obj_w: usize,
        channels: usize,
        cell: usize,
    ) -> Result<Vec<u8>, AnalysisError> {
        let layout_error = AnalysisError::BiasGrid {
            grid: self.grid,
            height: self.height,
            width: self.width,
            object_size: self.object_size,
        };
        if self.grid == 0 || self.height == 0 || self.width == 0 || self.object_size == 0 {
            return Err(layout_error);
        }
        let side = u32::try_from(self.object_size).map_err(|_| layout_error.clone())?;
        let pixels = self
            .height
            .checked_mul(self.width)
            .and_then(|p| p.checked_mul(3))
            .ok_or(layout_error)?;
        if cell >= self.cells() {
            return Err(AnalysisError::BiasCell {
                cell,
                cells: self.cells(),
            });
        }
        let rgb = object_rgb(object, obj_h, obj_w, channels)?;
        let resized = if (obj_h, obj_w) == (self.object_size, self.object_size) {
            rgb
        } else {
            imageops::resize(&rgb, side, side, FilterType::Triangle)
        };

        let mut image = vec![self.background; pixels];
        let (top, left) = self.object_origin(cell);
        let s = self.object_size as i64;
        // Only the part of the object inside the image is copied.
        let rows = top.max(0)..(top + s).min(self.height as i64);
        let cols = left.max(0)..(left + s).min(self.width as i64);
        for r in rows {
            for c in cols.clone() {
                let px = resized.get_pixel((c - left) as u32, (r - top) as u32);
                let at = (r as usize * self.width + c as usize) * 3;
                image[at..at + 3].copy_from_slice(&px.0);
            }
        }
        Ok(image)
    }
}

/// The object as an RGB image buffer, grey repeated to the three channels.
fn object_rgb(
    object: &[u8],
    obj_h: usize,
    obj_w: usize,
    channels: usize,
) -> Result<RgbImage, AnalysisError> {
    let error = AnalysisError::BiasObject {
        h: obj_h,
        w: obj_w,
        channels,
        found: object.len(),
    };
    let fits = (channels == 1 || channels == 3)
        && obj_h > 0
        && obj_w > 0
        && obj_h
            .checked_mul(obj_w)
            .and_then(|p| p.checked_mul(channels))
            == Some(object.len());
    let (Ok(w), Ok(h)) = (u32::try_from(obj_w), u32::try_from(obj_h)) else {
        return Err(error);
    };
    if !fits {
        return Err(error);
    }
    let data = if channels == 3 {
        object.to_vec()
    } else {
        object.iter().flat_map(|&g| [g, g, g]).collect()
    };
    RgbImage::from_raw(w, h, data).ok_or(error)
}

/// Counts of a model's correct answers per class and grid cell over spatial-bias trials, and the
/// accuracy maps made from them.
///
/// Counts are kept (not running accuracies) so that accumulators of separate runs can be
/// [merged](BiasAccuracy::merge) exactly and serialised with their numbers of trials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BiasAccuracy {
    grid: usize,
    classes: usize,
    /// Trials per class, then per cell (row-major).
    trials: Vec<u64>,
    /// Correct trials, laid out as `trials`.
    correct: Vec<u64>,
}

impl BiasAccuracy {
    /// No trials yet, for a `grid` x `grid` layout and `classes` classes. Refuses `grid` 0 (an
    /// accuracy map needs at least one cell).
    pub fn new(grid: usize, classes: usize) -> Result<BiasAccuracy, AnalysisError> {
        let cells = grid
            .checked_mul(grid)
            .filter(|&c| c > 0)
            .ok_or(AnalysisError::EmptyMap {
                rows: grid,
                cols: grid,
            })?;
        let n = cells.checked_mul(classes).ok_or(AnalysisError::EmptyMap {
            rows: grid,
            cols: grid,
        })?;
        Ok(BiasAccuracy {
            grid,
            classes,
            trials: vec![0; n],
            correct: vec![0; n],
        })
    }

    /// Records one trial: an object of class `class` shown at cell `cell` (row-major, as
    /// [`BiasGrid::cell_centre`]) was classified correctly or not. Refuses a class or cell out
    /// of range.
    pub fn add(&mut self, class: usize, cell: usize, correct: bool) -> Result<(), AnalysisError> {
        let cells = self.grid * self.grid;
        if class >= self.classes {
            return Err(AnalysisError::BiasClass {
                class,
                classes: self.classes,
            });
        }
        if cell >= cells {
            return Err(AnalysisError::BiasCell { cell, cells });
        }
        let i = class * cells + cell;
        self.trials[i] += 1;
        self.correct[i] += u64::from(correct);
        Ok(())
    }

    /// Adds the trials counted in `other`. Refuses another grid size or number of classes.
    pub fn merge(&mut self, other: &BiasAccuracy) -> Result<(), AnalysisError> {
        if (self.grid, self.classes) != (other.grid, other.classes) {
            return Err(AnalysisError::BiasMismatch);
        }
        for (a, b) in self.trials.iter_mut().zip(&other.trials) {
            *a += b;
        }
        for (a, b) in self.correct.iter_mut().zip(&other.correct) {
            *a += b;
        }
        Ok(())
    }

    /// Cells per side.
    pub fn grid(&self) -> usize {
        self.grid
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Number of trials per class, then per cell (row-major): `classes · grid²` counts.
    pub fn counts(&self) -> &[u64] {
        &self.trials
    }

    /// Number of correct trials, laid out as [`BiasAccuracy::counts`].
    pub fn correct_counts(&self) -> &[u64] {
        &self.correct
    }

    /// Per class, the `grid` x `grid` map of the share of correct trials in each cell; NaN where
    /// the class had no trial in the cell.
    pub fn maps(&self) -> Vec<Map> {
        let cells = self.grid * self.grid;
        (0..self.classes)
            .map(|k| {
                let range = k * cells..(k + 1) * cells;
                self.accuracy_map(&self.correct[range.clone()], &self.trials[range])
            })
            .collect()
    }

    /// The accuracy map of all classes pooled: per cell, all correct trials over all trials
    /// (classes weighted by their numbers of trials); NaN where no trial was made.
    pub fn overall(&self) -> Map {
        let cells = self.grid * self.grid;
        let mut correct = vec![0u64; cells];
        let mut trials = vec![0u64; cells];
        for k in 0..self.classes {
            for c in 0..cells {
                correct[c] += self.correct[k * cells + c];
                trials[c] += self.trials[k * cells + c];
            }
        }
        self.accuracy_map(&correct, &trials)
    }

    fn accuracy_map(&self, correct: &[u64], trials: &[u64]) -> Map {
        let values = correct
            .iter()
            .zip(trials)
            .map(|(&c, &t)| {
                if t == 0 {
                    f32::NAN
                } else {
                    (c as f64 / t as f64) as f32
                }
            })
            .collect();
        // `new` guarantees grid ≥ 1 and the lengths match.
        Map {
            rows: self.grid,
            cols: self.grid,
            values,
        }
    }
}

/// Pearson's correlation coefficient of `a` and `b` (e.g. a model's and the humans' flattened
/// accuracy maps of one category), over the pairs where both values are finite.
///
/// `None` when the lengths differ, fewer than 2 pairs are finite, or either side is constant
/// over those pairs (the coefficient is undefined; SciPy's `pearsonr` returns NaN there).
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() {
        return None;
    }
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(&x, &y)| (x, y))
        .collect();
    if pairs.len() < 2 {
        return None;
    }
    // Constancy is tested exactly: the rounded mean of equal values can differ from them, which
    // would leave tiny non-zero deviations and a meaningless r of ±1.
    let (x0, y0) = pairs[0];
    if pairs.iter().all(|&(x, _)| x == x0) || pairs.iter().all(|&(_, y)| y == y0) {
        return None;
    }
    let n = pairs.len() as f64;
    let mx = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in &pairs {
        let (dx, dy) = (x - mx, y - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let r = sxy / (sxx.sqrt() * syy.sqrt());
    // Rounding can push |r| a hair past 1.
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(image: &[u8], width: usize, r: usize, c: usize) -> [u8; 3] {
        let at = (r * width + c) * 3;
        [image[at], image[at + 1], image[at + 2]]
    }

    const GREY: [u8; 3] = [128, 128, 128];

    #[test]
    fn defaults() {
        let g = BiasGrid::new(224, 200);
        assert_eq!(
            g,
            BiasGrid {
                grid: 5,
                height: 224,
                width: 200,
                object_size: 40,
                background: 128
            }
        );
        assert_eq!(BiasGrid::new(3, 3).object_size, 1);
    }

    #[test]
    fn cell_centres_are_symmetric() {
        let g = BiasGrid::new(100, 100);
        assert_eq!(g.cell_centre(0), (9.5, 9.5));
        assert_eq!(g.cell_centre(12), (49.5, 49.5));
        for k in 0..25 {
            let (r, c) = g.cell_centre(k);
            let (r2, c2) = g.cell_centre(24 - k);
            assert_eq!((r + r2, c + c2), (99.0, 99.0), "cell {k}");
        }
        // Non-square: rows 60 / 5 = 12 apart, columns 100 / 5 = 20 apart.
        let g = BiasGrid::new(60, 100);
        assert_eq!(g.cell_centre(1), (5.5, 29.5));
        assert_eq!(g.cell_centre(5), (17.5, 9.5));
        assert_eq!(g.cell_centre(12), (29.5, 49.5));
        assert_eq!(g.cell_centre(24), (53.5, 89.5));
    }

    #[test]
    fn place_copies_an_object_of_the_right_size_in_place() {
        // 50x50 image, 10-pixel cells and objects: cell 12 covers rows and columns 20..30.
        let g = BiasGrid::new(50, 50);
        assert_eq!(g.object_size, 10);
        assert_eq!(g.object_origin(12), (20, 20));
        // A patterned RGB object: R encodes the position, G is 7, B is 255.
        let object: Vec<u8> = (0..100u8).flat_map(|i| [i, 7, 255]).collect();
        let image = g.place(&object, 10, 10, 3, 12).unwrap();
        assert_eq!(image.len(), 50 * 50 * 3);
        for r in 0..50 {
            for c in 0..50 {
                let want = if (20..30).contains(&r) && (20..30).contains(&c) {
                    [((r - 20) * 10 + (c - 20)) as u8, 7, 255]
                } else {
                    GREY
                };
                assert_eq!(px(&image, 50, r, c), want, "pixel ({r}, {c})");
            }
        }
        // Cell 0 is the top-left 10x10 block, cell 7 (row 1, column 2) rows 10..20, cols 20..30.
        let image = g.place(&object, 10, 10, 3, 0).unwrap();
        assert_eq!(px(&image, 50, 0, 0), [0, 7, 255]);
        assert_eq!(px(&image, 50, 9, 9), [99, 7, 255]);
        assert_eq!(px(&image, 50, 10, 10), GREY);
        assert_eq!(px(&image, 50, 0, 10), GREY);
        let image = g.place(&object, 10, 10, 3, 7).unwrap();
        assert_eq!(px(&image, 50, 10, 20), [0, 7, 255]);
        assert_eq!(px(&image, 50, 19, 29), [99, 7, 255]);
        assert_eq!(px(&image, 50, 9, 20), GREY);
        assert_eq!(px(&image, 50, 20, 29), GREY);
    }

    #[test]
    fn place_resizes_grey_objects_to_rgb() {
        // A uniform 3x3 grey object enlarged to 10x10 stays uniform and becomes RGB.
        let g = BiasGrid {
            background: 0,
            ..BiasGrid::new(50, 50)
        };
        let image = g.place(&[50u8; 9], 3, 3, 1, 24).unwrap();
        for r in 0..50 {
            for c in 0..50 {
                let inside = r >= 40 && c >= 40;
                let want = if inside { [50, 50, 50] } else { [0, 0, 0] };
                assert_eq!(px(&image, 50, r, c), want, "pixel ({r}, {c})");
            }
        }
        // Shrinking a left-black / right-white 20x20 object to 10x10 keeps the halves.
        let object: Vec<u8> = (0..400)
            .map(|i| if i % 20 < 10 { 0 } else { 255 })
            .collect();
        let image = g.place(&object, 20, 20, 1, 12).unwrap();
        assert_eq!(px(&image, 50, 20, 20), [0, 0, 0]);
        assert_eq!(px(&image, 50, 29, 21), [0, 0, 0]);
        assert_eq!(px(&image, 50, 20, 29), [255, 255, 255]);
        assert_eq!(px(&image, 50, 25, 28), [255, 255, 255]);
    }

    #[test]
    fn place_clips_at_the_borders() {
        // 30-pixel objects on 10-pixel cells: cell 0's object spans rows/cols −10..20.
        let g = BiasGrid {
            object_size: 30,
            ..BiasGrid::new(50, 50)
        };
        assert_eq!(g.object_origin(0), (-10, -10));
        assert_eq!(g.object_origin(24), (30, 30));
        let object: Vec<u8> = (0..900).map(|i| (i % 30) as u8).collect(); // value = column
        let image = g.place(&object, 30, 30, 1, 0).unwrap();
        // Image column c shows object column c + 10.
        assert_eq!(px(&image, 50, 0, 0), [10; 3]);
        assert_eq!(px(&image, 50, 19, 19), [29; 3]);
        assert_eq!(px(&image, 50, 0, 20), GREY);
        assert_eq!(px(&image, 50, 20, 0), GREY);
        assert_eq!(px(&image, 50, 49, 49), GREY);
        let image = g.place(&object, 30, 30, 1, 24).unwrap();
        assert_eq!(px(&image, 50, 30, 30), [0; 3]);
        assert_eq!(px(&image, 50, 49, 49), [19; 3]);
        assert_eq!(px(&image, 50, 29, 49), GREY);
        assert_eq!(px(&image, 50, 0, 0), GREY);
    }

    #[test]
    fn place_refuses_bad_input() {
        let g = BiasGrid::new(50, 50);
        assert!(matches!(
            g.place(&[0; 8], 2, 2, 2, 0),
            Err(AnalysisError::BiasObject { channels: 2, .. })
        ));
        assert!(matches!(
            g.place(&[0; 11], 2, 2, 3, 0),
            Err(AnalysisError::BiasObject { found: 11, .. })
        ));
        assert!(matches!(
            g.place(&[], 0, 0, 1, 0),
            Err(AnalysisError::BiasObject { .. })
        ));
        assert_eq!(
            g.place(&[0; 4], 2, 2, 1, 25),
            Err(AnalysisError::BiasCell {
                cell: 25,
                cells: 25
            })
        );
        let empty = BiasGrid {
            object_size: 0,
            ..g
        };
        assert!(matches!(
            empty.place(&[0; 4], 2, 2, 1, 0),
            Err(AnalysisError::BiasGrid { .. })
        ));
    }

    #[test]
    fn accuracy_maps_of_hand_made_trials() {
        let mut acc = BiasAccuracy::new(2, 2).unwrap();
        // Class 0: cell 0 right, right, wrong (2/3); cell 3 wrong (0/1).
        acc.add(0, 0, true).unwrap();
        acc.add(0, 0, true).unwrap();
        acc.add(0, 0, false).unwrap();
        acc.add(0, 3, false).unwrap();
        // Class 1: cell 0 right (1/1); cell 1 right, wrong (1/2).
        acc.add(1, 0, true).unwrap();
        acc.add(1, 1, true).unwrap();
        acc.add(1, 1, false).unwrap();
        assert_eq!(acc.counts(), &[3, 0, 0, 1, 1, 2, 0, 0]);
        assert_eq!(acc.correct_counts(), &[2, 0, 0, 0, 1, 1, 0, 0]);
        let maps = acc.maps();
        assert_eq!(maps.len(), 2);
        assert_eq!((maps[0].rows, maps[0].cols), (2, 2));
        assert_eq!(maps[0].values[0], (2.0f64 / 3.0) as f32);
        assert!(maps[0].values[1].is_nan() && maps[0].values[2].is_nan());
        assert_eq!(maps[0].values[3], 0.0);
        assert_eq!(maps[1].values[0], 1.0);
        assert_eq!(maps[1].values[1], 0.5);
        assert!(maps[1].values[2].is_nan() && maps[1].values[3].is_nan());
        // Pooled: cell 0 3/4, cell 1 1/2, cell 2 no trials, cell 3 0/1.
        let all = acc.overall();
        assert_eq!(all.values[0], 0.75);
        assert_eq!(all.values[1], 0.5);
        assert!(all.values[2].is_nan());
        assert_eq!(all.values[3], 0.0);

        assert_eq!(
            acc.add(2, 0, true),
            Err(AnalysisError::BiasClass {
                class: 2,
                classes: 2
            })
        );
        assert_eq!(
            acc.add(0, 4, true),
            Err(AnalysisError::BiasCell { cell: 4, cells: 4 })
        );
        assert_eq!(
            acc.counts().iter().sum::<u64>(),
            7,
            "refused trials add nothing"
        );

        // Merging doubles every count, leaving the accuracies.
        let copy = acc.clone();
        acc.merge(&copy).unwrap();
        assert_eq!(acc.counts(), &[6, 0, 0, 2, 2, 4, 0, 0]);
        assert_eq!(acc.overall().values[0], 0.75);
        assert_eq!(
            acc.merge(&BiasAccuracy::new(2, 3).unwrap()),
            Err(AnalysisError::BiasMismatch)
        );
        assert!(BiasAccuracy::new(0, 2).is_err());
    }

    #[test]
    fn pearson_matches_hand_computation() {
        // a: mean 2.5, deviations −1.5 −0.5 0.5 1.5; b: mean 5, deviations −3 −1 0 4.
        // Σdx·dy = 4.5 + 0.5 + 0 + 6 = 11; Σdx² = 5; Σdy² = 9 + 1 + 0 + 16 = 26.
        let want = 11.0 / (5.0f64 * 26.0).sqrt();
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [2.0, 4.0, 5.0, 9.0];
        let r = pearson(&a, &b).unwrap();
        assert!((r - want).abs() < 1e-15, "{r} vs {want}");
        // Pairs with a non-finite value are skipped.
        let a2 = [1.0, f64::NAN, 2.0, 3.0, 5.0, 4.0];
        let b2 = [2.0, 100.0, 4.0, 5.0, f64::INFINITY, 9.0];
        assert_eq!(pearson(&a2, &b2), Some(r));
        // Anti-correlated.
        let neg = pearson(&a, &[8.0, 6.0, 4.0, 2.0]).unwrap();
        assert!((neg + 1.0).abs() < 1e-15);

        assert_eq!(pearson(&a, &b[..3]), None);
        assert_eq!(pearson(&[1.0], &[2.0]), None);
        assert_eq!(pearson(&[1.0, f64::NAN], &[2.0, 3.0]), None);
        assert_eq!(pearson(&[], &[]), None);
        assert_eq!(pearson(&[0.1, 0.1, 0.1], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[1.0, 2.0, 3.0], &[7.0, 7.0, 7.0]), None);
    }
}
