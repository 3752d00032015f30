//! `alltnn-analysis`: topographic analyses of All-Topographic Neural Network activations.
//!
//! All-TNN layer outputs `(H, W, C)` are read as 2-D cortical sheets (DESIGN.md, "Cortical sheet
//! layout"); the analyses here work on such sheets, one stimulus at a time, so that memory does
//! not grow with the stimulus set:
//!
//! * [`orientation`]: the original's grating method (preferred orientation, selectivity,
//!   windowed entropy, entropy vs eccentricity) and [`cluster`] sizes;
//! * [`spectrum`] and [`pinwheels`]: radial power spectra, column spacing Λ and pinwheel density
//!   with a bootstrap interval;
//! * [`category`]: streaming d′ per unit and category, argmax maps;
//! * [`bias`]: spatial-bias stimuli (objects on a grid) and accuracy maps;
//! * [`maps`]: sheet maps, bilinear resizing, the stacked energy map and radial profiles;
//! * [`render`] and [`report`]: the PNG pictures and the HTML page a person looks at.
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

pub mod bias;
pub mod category;
pub mod cluster;
pub mod error;
pub mod maps;
pub mod orientation;
pub mod pinwheels;
pub mod render;
pub mod report;
pub mod spectrum;
