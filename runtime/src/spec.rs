//! The model specification: the one description of an All-TNN (or one of its controls) that
//! every crate of the workspace uses — converter, trainer, analysis and CLI alike.
//!
//! Block order follows the original (`all_tnn/models/layers/local.py`): layer → activation →
//! norm (or norm → activation with `norm_first`) → optional 2×2 max pool. Then flatten (NHWC),
//! dense readout and the output activation.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::error::SpecError;

/// Weight sharing of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LayerKind {
    /// Keras `LocallyConnected2D`: every output position owns its weights (All-TNN, LCN).
    LocallyConnected,
    /// Keras `Conv2D`: one kernel shared by all positions (the CNN control).
    Conv,
}

/// Element-wise activation after a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Activation {
    #[default]
    Relu,
    Linear,
}

/// Normalisation over the channels of every position (Keras `axis=-1`).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Norm {
    #[default]
    None,
    /// Keras `LayerNormalization` (default epsilon 1e-3): per position, over channels.
    LayerNorm(NormParams),
    /// Keras `BatchNormalization` in inference mode: moving mean and variance per channel.
    BatchNorm(NormParams),
}

/// Settings shared by both norms; `center`/`scale` say whether beta/gamma exist.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct NormParams {
    pub epsilon: f32,
    pub center: bool,
    pub scale: bool,
}

impl Default for NormParams {
    fn default() -> Self {
        // Keras' defaults for both LayerNormalization and BatchNormalization.
        NormParams {
            epsilon: 1e-3,
            center: true,
            scale: true,
        }
    }
}

impl Norm {
    pub fn params(&self) -> Option<&NormParams> {
        match self {
            Norm::None => None,
            Norm::LayerNorm(p) | Norm::BatchNorm(p) => Some(p),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Norm::None => "none",
            Norm::LayerNorm(_) => "LayerNorm",
            Norm::BatchNorm(_) => "BatchNorm",
        }
    }
}

/// How raw 8-bit pixel values become network input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Preprocess {
    /// The original's `[-1,1]`: x/255 clipped to [0, 1], then 2x − 1.
    #[default]
    SignedUnit,
    /// x/255 clipped to [0, 1].
    Unit,
    /// Pixel values as they are.
    Identity,
}

impl Preprocess {
    /// Maps one pixel value in 0..=255 to the network's input range.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Preprocess::SignedUnit => (x / 255.0).clamp(0.0, 1.0) * 2.0 - 1.0,
            Preprocess::Unit => (x / 255.0).clamp(0.0, 1.0),
            Preprocess::Identity => x,
        }
    }
}

/// Activation applied to the readout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum OutputActivation {
    #[default]
    Softmax,
    Linear,
}

#[cfg(feature = "serde")]
fn yes() -> bool {
    true
}

/// One block: layer, activation, norm, optional pooling. Padding is always `valid`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct LayerSpec {
    pub kind: LayerKind,
    pub filters: u32,
    pub kernel: u32,
    pub stride: u32,
    #[cfg_attr(feature = "serde", serde(default = "yes"))]
    pub bias: bool,
    #[cfg_attr(feature = "serde", serde(default))]
    pub activation: Activation,
    #[cfg_attr(feature = "serde", serde(default))]
    pub norm: Norm,
    /// The original's `norm_first`: norm before the activation instead of after it.
    #[cfg_attr(feature = "serde", serde(default))]
    pub norm_first: bool,
    /// 2×2 max pool, stride 2, valid padding, after the block.
    #[cfg_attr(feature = "serde", serde(default))]
    pub pool_after: bool,
}

/// Input image geometry and preprocessing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct InputSpec {
    pub height: u32,
    pub width: u32,
    pub channels: u32,
    #[cfg_attr(feature = "serde", serde(default))]
    pub preprocess: Preprocess,
}

/// Dense readout on the flattened (NHWC) output of the last block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct ReadoutSpec {
    pub classes: u32,
    #[cfg_attr(feature = "serde", serde(default = "yes"))]
    pub bias: bool,
}

/// A whole model.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct ModelSpec {
    pub input: InputSpec,
    pub layers: Vec<LayerSpec>,
    pub readout: ReadoutSpec,
    #[cfg_attr(feature = "serde", serde(default))]
    pub output: OutputActivation,
}

/// Sizes of one block, derived from the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerGeometry {
    /// Input (H, W, C) of the layer: the previous block's output after pooling.
    pub input: [usize; 3],
    /// Output (H, W, C) of the layer, activation and norm (before pooling).
    pub output: [usize; 3],
    /// Output of the block after pooling (equal to `output` without pooling).
    pub pooled: [usize; 3],
    /// Length of one patch: kernel² · input channels.
    pub patch: usize,
}

impl LayerGeometry {
    pub fn positions(&self) -> usize {
        self.output[0] * self.output[1]
    }
    pub fn output_len(&self) -> usize {
        self.output.iter().product()
    }
    pub fn pooled_len(&self) -> usize {
        self.pooled.iter().product()
    }
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }
}

/// Role of a weight tensor inside a block or the readout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorRole {
    Kernel,
    Bias,
    Gamma,
    Beta,
    MovingMean,
    MovingVariance,
}

impl TensorRole {
    pub fn suffix(self) -> &'static str {
        match self {
            TensorRole::Kernel => "kernel",
            TensorRole::Bias => "bias",
            TensorRole::Gamma => "norm.gamma",
            TensorRole::Beta => "norm.beta",
            TensorRole::MovingMean => "norm.moving_mean",
            TensorRole::MovingVariance => "norm.moving_variance",
        }
    }
}

/// Where a tensor belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorOwner {
    Layer(usize),
    Readout,
}

/// A weight tensor the spec requires: canonical name and shape (Keras layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub owner: TensorOwner,
    pub role: TensorRole,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// Canonical name, e.g. `layer0.kernel`, `layer2.norm.gamma`, `readout.bias`.
    pub fn name(&self) -> String {
        match self.owner {
            TensorOwner::Layer(l) => format!("layer{l}.{}", self.role.suffix()),
            TensorOwner::Readout => format!("readout.{}", self.role.suffix()),
        }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of the per-unit scales of an int8 kernel (`None` for other tensors): one scale per
    /// output unit — `(positions, filters)` for a locally connected kernel, `(filters)` for a
    /// conv kernel, `(classes)` for the readout.
    pub fn unit_shape(&self) -> Option<Vec<usize>> {
        if self.role != TensorRole::Kernel {
            return None;
        }
        let units = *self.shape.last()?;
        Some(match self.shape.len() {
            3 => alloc::vec![self.shape[0], units],
            _ => alloc::vec![units],
        })
    }
}

/// Output size of a valid-padded window: `(n − k) / s + 1`, or `None` if the window does not fit.
pub fn valid_output(n: usize, kernel: usize, stride: usize) -> Option<usize> {
    if kernel == 0 || stride == 0 || n < kernel {
        None
    } else {
        Some((n - kernel) / stride + 1)
    }
}

impl ModelSpec {
    /// Checks the spec and derives every block's sizes.
    pub fn geometry(&self) -> Result<Vec<LayerGeometry>, SpecError> {
        let i = &self.input;
        if i.height == 0 || i.width == 0 || i.channels == 0 {
            return Err(SpecError::new(format!(
                "input size {}x{}x{} must be positive",
                i.height, i.width, i.channels
            )));
        }
        if self.layers.is_empty() {
            return Err(SpecError::new("a model needs at least one layer".into()));
        }
        if self.readout.classes == 0 {
            return Err(SpecError::new(
                "the readout needs at least one class".into(),
            ));
        }
        let mut shape = [i.height as usize, i.width as usize, i.channels as usize];
        let mut out = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let (k, s, f) = (
                layer.kernel as usize,
                layer.stride as usize,
                layer.filters as usize,
            );
            if k == 0 || s == 0 || f == 0 {
                return Err(SpecError::new(format!(
                    "layer {l}: filters, kernel and stride must be positive (got {f}, {k}, {s})"
                )));
            }
            let (Some(oh), Some(ow)) = (valid_output(shape[0], k, s), valid_output(shape[1], k, s))
            else {
                return Err(SpecError::new(format!(
                    "layer {l}: kernel {k} does not fit its {}x{} input",
                    shape[0], shape[1]
                )));
            };
            let output = [oh, ow, f];
            let pooled = if layer.pool_after {
                if oh < 2 || ow < 2 {
                    return Err(SpecError::new(format!(
                        "layer {l}: cannot 2x2-pool a {oh}x{ow} output"
                    )));
                }
                [oh / 2, ow / 2, f]
            } else {
                output
            };
            out.push(LayerGeometry {
                input: shape,
                output,
                pooled,
                patch: k * k * shape[2],
            });
            shape = pooled;
        }
        Ok(out)
    }

    /// Length of the flattened input of the readout.
    pub fn readout_inputs(&self) -> Result<usize, SpecError> {
        Ok(self.geometry()?.last().map_or(0, |g| g.pooled_len()))
    }

    pub fn input_len(&self) -> usize {
        (self.input.height * self.input.width * self.input.channels) as usize
    }

    /// Every weight tensor the model holds, in canonical order, with its Keras-layout shape.
    pub fn tensors(&self) -> Result<Vec<TensorSpec>, SpecError> {
        let geometry = self.geometry()?;
        let mut out = Vec::new();
        for (l, (layer, g)) in self.layers.iter().zip(&geometry).enumerate() {
            let owner = TensorOwner::Layer(l);
            let f = g.output[2];
            let (kernel, bias) = match layer.kind {
                LayerKind::LocallyConnected => (
                    alloc::vec![g.positions(), g.patch, f],
                    alloc::vec![g.output[0], g.output[1], f],
                ),
                LayerKind::Conv => {
                    let k = layer.kernel as usize;
                    (alloc::vec![k, k, g.input[2], f], alloc::vec![f])
                }
            };
            out.push(TensorSpec {
                owner,
                role: TensorRole::Kernel,
                shape: kernel,
            });
            if layer.bias {
                out.push(TensorSpec {
                    owner,
                    role: TensorRole::Bias,
                    shape: bias,
                });
            }
            if let Some(p) = layer.norm.params() {
                let per_channel = |role| TensorSpec {
                    owner,
                    role,
                    shape: alloc::vec![f],
                };
                if p.scale {
                    out.push(per_channel(TensorRole::Gamma));
                }
                if p.center {
                    out.push(per_channel(TensorRole::Beta));
                }
                if let Norm::BatchNorm(_) = layer.norm {
                    out.push(per_channel(TensorRole::MovingMean));
                    out.push(per_channel(TensorRole::MovingVariance));
                }
            }
        }
        let n_in = geometry.last().map_or(0, |g| g.pooled_len());
        let classes = self.readout.classes as usize;
        out.push(TensorSpec {
            owner: TensorOwner::Readout,
            role: TensorRole::Kernel,
            shape: alloc::vec![n_in, classes],
        });
        if self.readout.bias {
            out.push(TensorSpec {
                owner: TensorOwner::Readout,
                role: TensorRole::Bias,
                shape: alloc::vec![classes],
            });
        }
        Ok(out)
    }

    /// Number of parameters, as Keras counts them (moving statistics included).
    pub fn parameter_count(&self) -> Result<usize, SpecError> {
        Ok(self.tensors()?.iter().map(TensorSpec::len).sum())
    }

    /// The paper's All-TNN (and LCN, which differs only in training): 150×150×3 input,
    /// six locally connected layers, LayerNorm, pooling after layers 0, 2 and 4, 565 classes.
    pub fn paper_alltnn() -> ModelSpec {
        Self::paper(LayerKind::LocallyConnected)
    }

    /// The paper's CNN control: the same layer list with `Conv2D`.
    pub fn paper_cnn() -> ModelSpec {
        Self::paper(LayerKind::Conv)
    }

    fn paper(kind: LayerKind) -> ModelSpec {
        let plan = [
            (64, 7, 3),
            (81, 3, 1),
            (81, 3, 1),
            (256, 3, 1),
            (256, 3, 1),
            (2500, 3, 1),
        ];
        let layers = plan
            .iter()
            .enumerate()
            .map(|(l, &(filters, kernel, stride))| LayerSpec {
                kind,
                filters,
                kernel,
                stride,
                bias: true,
                activation: Activation::Relu,
                norm: Norm::LayerNorm(NormParams::default()),
                norm_first: false,
                pool_after: matches!(l, 0 | 2 | 4),
            })
            .collect();
        ModelSpec {
            input: InputSpec {
                height: 150,
                width: 150,
                channels: 3,
                preprocess: Preprocess::SignedUnit,
            },
            layers,
            readout: ReadoutSpec {
                classes: 565,
                bias: true,
            },
            output: OutputActivation::Softmax,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn paper_alltnn_has_the_papers_sizes_and_parameter_count() {
        let spec = ModelSpec::paper_alltnn();
        let g = spec.geometry().unwrap();
        let pooled: Vec<usize> = g.iter().map(|g| g.pooled[0]).collect();
        let out: Vec<usize> = g.iter().map(|g| g.output[0]).collect();
        assert_eq!(out, [48, 22, 20, 8, 6, 1]);
        assert_eq!(pooled, [24, 22, 10, 8, 3, 1]);
        assert_eq!(spec.parameter_count().unwrap(), 108_481_437);
    }

    #[test]
    fn paper_cnn_parameter_count() {
        // PAPER.md: 8.07 M for the CNN control.
        let n = ModelSpec::paper_cnn().parameter_count().unwrap();
        assert!((8_060_000..8_080_000).contains(&n), "{n}");
    }

    #[test]
    fn geometry_refuses_a_kernel_that_does_not_fit() {
        let mut spec = ModelSpec::paper_alltnn();
        spec.input.height = 20;
        let err = spec.geometry().unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
    }

    #[test]
    fn preprocess_maps_pixels_like_the_original() {
        assert_eq!(Preprocess::SignedUnit.apply(0.0), -1.0);
        assert_eq!(Preprocess::SignedUnit.apply(255.0), 1.0);
        assert_eq!(Preprocess::SignedUnit.apply(300.0), 1.0);
        assert_eq!(Preprocess::Unit.apply(51.0), 0.2);
    }
}
