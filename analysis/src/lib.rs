//! `alltnn-analysis`: topographic analyses of All-Topographic Neural Network activations.
//!
//! All-TNN layer outputs `(H, W, C)` are read as 2-D cortical sheets (DESIGN.md, "Cortical sheet
//! layout"); the analyses here work on such sheets. For now that is [`maps`] (per-unit maps laid
//! out as sheets, bilinear resizing, the "stacked" multi-layer energy map and radial profiles from
//! the sheet centre) and [`render`] (PNG heat maps and line plots a person looks at). Orientation
//! and category selectivity, their cluster sizes and the behavioural comparisons (PAPER.md,
//! "Analyses") are to come.
//!
//! ```
//! use alltnn_analysis::maps::{radial_profile, stack, Map};
//! # fn main() -> Result<(), alltnn_analysis::error::AnalysisError> {
//! let layer0 = Map::from_hwc(&[1.0; 4 * 4 * 4], 4, 4, 4)?; // an 8x8 sheet
//! let layer1 = Map::new(4, 4, vec![2.0; 16])?;
//! let stacked = stack(&[layer0, layer1])?; // resized to 8x8 and summed
//! assert_eq!(stacked.values, vec![3.0; 64]);
//! let profile = radial_profile(&stacked);
//! assert_eq!(profile[0].percent, 100.0);
//! let png = alltnn_analysis::render::heatmap_png(&stacked, "Stacked energy", "energy")?;
//! # let _ = png; Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod maps;
pub mod render;
