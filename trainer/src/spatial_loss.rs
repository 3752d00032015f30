//! The topographic objective (DESIGN.md "Spatial loss"): neighbouring units on the cortical sheet
//! of every locally connected layer should have similar incoming weights.
//!
//! Unit `(r, q, c)` owns the vector `[kernel[r·out_w + q, :, c], bias[r, q, c]]`, sits on the
//! sheet at [`SheetLayout::position`] and is L2-normalised like `tf.nn.l2_normalize`
//! (`x / sqrt(max(Σx², 1e-12))`). For each neighbour direction the cosine similarities of all
//! pairs are averaged; `sim` is the mean over the directions and the layer's distance is
//! `(1 − sim) / 2`. 4 neighbours use the directions down and right; 8 neighbours add down-right
//! and down-left (the other four are the same pairs seen from the other side). On a circular
//! sheet (a torus) every unit has a neighbour in every direction; on an open sheet only the pairs
//! inside the sheet count.
//!
//! [`SpatialLoss`] computes the distances differentiably on candle tensors for training;
//! [`layer_distance_f64`] computes the same numbers in plain f64 for reporting.

use alltnn_runtime::sheet::SheetLayout;
use alltnn_runtime::spec::LayerKind;
use alltnn_runtime::ModelSpec;
use candle_core::{Device, Tensor};

use crate::error::{Result, TrainError};
use crate::model::TnnModel;

/// Which neighbours of a unit on the sheet count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Neighbours {
    /// Down and right (with up and left being the same pairs): the original's default.
    Four,
    /// Also the diagonals down-right and down-left.
    Eight,
}

/// How the spatial loss pairs units.
#[derive(Clone, Copy, Debug)]
pub struct SpatialConfig {
    pub neighbours: Neighbours,
    /// The sheet wraps around (a torus), as in the original's default `circular = True`.
    pub circular: bool,
    /// The bias is the last element of every unit's vector (the original's `use_bias`).
    pub include_bias: bool,
}

impl Default for SpatialConfig {
    fn default() -> Self {
        SpatialConfig {
            neighbours: Neighbours::Four,
            circular: true,
            include_bias: true,
        }
    }
}

/// `tf.nn.l2_normalize`'s floor on the squared norm, so an all-zero vector stays zero.
const L2_NORMALIZE_EPSILON: f64 = 1e-12;

/// Sheet offsets `(rows, columns)` of the directions whose pairs are averaged.
fn directions(neighbours: Neighbours) -> &'static [(isize, isize)] {
    match neighbours {
        Neighbours::Four => &[(1, 0), (0, 1)],
        Neighbours::Eight => &[(1, 0), (0, 1), (1, 1), (1, -1)],
    }
}

/// The unit pairs of one direction, as unit indices `(r·W + q)·C + c` — the row of the unit in
/// the `(units, patch)` matrix both implementations build.
struct Pairs {
    /// The first unit of every pair; `None` when that is every unit in index order (always on
    /// a torus), which spares the candle version a gather.
    first: Option<Vec<u32>>,
    /// The neighbour of the first unit in this direction.
    second: Vec<u32>,
}

impl Pairs {
    fn len(&self) -> usize {
        self.second.len()
    }
}

/// Index of unit `(r, q, c)` in HWC order.
fn unit_index(layout: &SheetLayout, (r, q, c): (usize, usize, usize)) -> u32 {
    ((r * layout.width + q) * layout.channels + c) as u32
}

/// One step of `delta` from `at` along an axis of length `len`; `None` off an open sheet.
fn step(at: usize, delta: isize, len: usize, circular: bool) -> Option<usize> {
    let to = at as isize + delta;
    if circular {
        Some(to.rem_euclid(len as isize) as usize)
    } else {
        (0..len as isize).contains(&to).then_some(to as usize)
    }
}

/// Every pair of units `delta` apart on the sheet, in unit order.
fn direction_pairs(layout: &SheetLayout, delta: (isize, isize), circular: bool) -> Pairs {
    let (rows, cols) = layout.shape();
    let units = layout.height * layout.width * layout.channels;
    let mut first = Vec::with_capacity(units);
    let mut second = Vec::with_capacity(units);
    for r in 0..layout.height {
        for q in 0..layout.width {
            for c in 0..layout.channels {
                let (row, col) = layout.position(r, q, c);
                let to_row = step(row, delta.0, rows, circular);
                let to_col = step(col, delta.1, cols, circular);
                if let (Some(to_row), Some(to_col)) = (to_row, to_col) {
                    first.push(unit_index(layout, (r, q, c)));
                    second.push(unit_index(layout, layout.unit(to_row, to_col)));
                }
            }
        }
    }
    let every_unit = first.len() == units;
    Pairs {
        first: (!every_unit).then_some(first),
        second,
    }
}

/// The pairs of every direction of `config` on one layer's sheet.
fn layer_pairs(layout: &SheetLayout, config: SpatialConfig) -> Vec<Pairs> {
    directions(config.neighbours)
        .iter()
        .map(|&delta| direction_pairs(layout, delta, config.circular))
        .collect()
}

/// The index tensors of one direction.
struct DirectionIndex {
    first: Option<Tensor>,
    second: Tensor,
}

/// Precomputed neighbour indices for every locally connected layer of a spec.
pub struct SpatialLoss {
    /// The spec the indices were built for.
    spec: ModelSpec,
    config: SpatialConfig,
    /// Per layer; `None` for conv layers, which have no spatial loss.
    layers: Vec<Option<Vec<DirectionIndex>>>,
}

impl SpatialLoss {
    /// Refuses a sheet on which a direction has no pair at all (an open sheet one unit high or
    /// wide), where the mean similarity would be undefined.
    pub fn new(spec: &ModelSpec, config: SpatialConfig, device: &Device) -> Result<SpatialLoss> {
        let geometry = spec.geometry()?;
        let layers = spec
            .layers
            .iter()
            .zip(&geometry)
            .enumerate()
            .map(|(l, (layer, g))| match layer.kind {
                LayerKind::Conv => Ok(None),
                LayerKind::LocallyConnected => {
                    let layout = SheetLayout::new(g.output[0], g.output[1], g.output[2]);
                    layer_indices(l, &layout, config, device).map(Some)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SpatialLoss {
            spec: spec.clone(),
            config,
            layers,
        })
    }

    pub fn config(&self) -> SpatialConfig {
        self.config
    }

    /// Distance (1 − sim)/2 of every locally connected layer as a scalar tensor
    /// (differentiable), in layer order; conv layers have `None`.
    pub fn distances(&self, model: &TnnModel) -> Result<Vec<Option<Tensor>>> {
        let spec = model.spec();
        if spec.input != self.spec.input || spec.layers != self.spec.layers {
            return Err(TrainError::Config(
                "the spatial loss was built for a model with other layers".into(),
            ));
        }
        self.layers
            .iter()
            .enumerate()
            .map(|(l, directions)| {
                directions
                    .as_ref()
                    .map(|directions| self.layer_distance(model, l, directions))
                    .transpose()
            })
            .collect()
    }

    fn layer_distance(
        &self,
        model: &TnnModel,
        l: usize,
        directions: &[DirectionIndex],
    ) -> Result<Tensor> {
        let bias = model.layer_bias(l).filter(|_| self.config.include_bias);
        let units = Units::new(model.layer_kernel(l), bias)?;
        let sims = directions
            .iter()
            .map(|direction| mean_similarity(&units, direction))
            .collect::<Result<Vec<_>>>()?;
        let sim = Tensor::stack(&sims, 0)?.mean_all()?;
        Ok(sim.affine(-0.5, 0.5)?)
    }
}

/// The index tensors of one locally connected layer.
fn layer_indices(
    l: usize,
    layout: &SheetLayout,
    config: SpatialConfig,
    device: &Device,
) -> Result<Vec<DirectionIndex>> {
    layer_pairs(layout, config)
        .into_iter()
        .map(|pairs| {
            if pairs.len() == 0 {
                let (rows, cols) = layout.shape();
                return Err(TrainError::Config(format!(
                    "layer {l}: its {rows}x{cols} sheet has no neighbour pairs in one direction \
                     of the {:?}-neighbour open sheet",
                    config.neighbours
                )));
            }
            let index = |i: Vec<u32>| {
                let len = i.len();
                Tensor::from_vec(i, len, device)
            };
            let first = pairs.first.map(index).transpose()?;
            let second = index(pairs.second)?;
            Ok(DirectionIndex { first, second })
        })
        .collect()
}

/// The units of a locally connected layer as rows, in HWC order, with the norms
/// `tf.nn.l2_normalize` divides by. Cosines are taken as `dot / (norm · norm)` instead of on
/// normalised copies: the same numbers with fewer temporaries of the kernel's size, which
/// dominate the cost of the loss on big layers.
struct Units {
    /// `(units, patch)`.
    weights: Tensor,
    /// `(units)`.
    bias: Option<Tensor>,
    /// `sqrt(max(Σx², 1e-12))` over weights and bias, `(units)`.
    norms: Tensor,
}

impl Units {
    fn new(kernel: &Tensor, bias: Option<&Tensor>) -> Result<Units> {
        let (positions, patch, filters) = kernel.dims3()?;
        let units = positions * filters;
        // (P, K, F) → (P, F, K): the rows become the units (p, c).
        let weights = kernel.transpose(1, 2)?.reshape((units, patch))?;
        let bias = bias.map(|b| b.reshape(units)).transpose()?;
        let mut squares = weights.sqr()?.sum(1)?;
        if let Some(bias) = &bias {
            squares = (squares + bias.sqr()?)?;
        }
        let norms = squares.maximum(L2_NORMALIZE_EPSILON)?.sqrt()?;
        Ok(Units {
            weights,
            bias,
            norms,
        })
    }
}

/// The rows of `t` at `index`, or all of them.
fn rows(t: &Tensor, index: Option<&Tensor>) -> Result<Tensor> {
    match index {
        Some(index) => Ok(t.index_select(index, 0)?),
        None => Ok(t.clone()),
    }
}

/// Mean cosine similarity of the pairs of one direction, as a scalar tensor.
fn mean_similarity(units: &Units, direction: &DirectionIndex) -> Result<Tensor> {
    let (first, second) = (direction.first.as_ref(), Some(&direction.second));
    let pair_product = |t: &Tensor| -> Result<Tensor> { Ok((rows(t, first)? * rows(t, second)?)?) };
    let mut dots = pair_product(&units.weights)?.sum(1)?;
    if let Some(bias) = &units.bias {
        dots = (dots + pair_product(bias)?)?;
    }
    Ok((dots / pair_product(&units.norms)?)?.mean_all()?)
}

/// The distance `(1 − sim)/2` of one locally connected layer in plain f64, from Keras-layout
/// arrays: `kernel` `(out_h·out_w, patch, filters)` and `bias` `(out_h, out_w, filters)`
/// (ignored unless `config.include_bias`). For reports without a candle model. A direction
/// without pairs (an open sheet one unit high or wide) makes the result NaN, as the original's
/// mean over an empty tensor.
///
/// # Panics
/// If the array lengths disagree with the sizes.
pub fn layer_distance_f64(
    kernel: &[f32],
    bias: Option<&[f32]>,
    out_h: usize,
    out_w: usize,
    patch: usize,
    filters: usize,
    config: SpatialConfig,
) -> f64 {
    let units = out_h * out_w * filters;
    assert_eq!(kernel.len(), units * patch, "kernel length");
    let bias = bias.filter(|_| config.include_bias);
    if let Some(bias) = bias {
        assert_eq!(bias.len(), units, "bias length");
    }
    let vectors = unit_vectors_f64(kernel, bias, patch, filters);
    let dot = |a: usize, b: usize| -> f64 {
        vectors[a].iter().zip(&vectors[b]).map(|(x, y)| x * y).sum()
    };
    sheet_distance(out_h, out_w, filters, config, dot)
}

/// [`layer_distance_f64`] of a conv layer, i.e. of the locally connected layer that repeats its
/// kernel `(patch, filters)` and bias `(filters)` at every position: how the paper places its
/// weight-sharing control on the same smoothness scale. Neighbours in one hypercolumn are
/// different channels, so the distance is not 0. Only a `filters × filters` table of cosines is
/// needed, whatever the sheet size.
///
/// # Panics
/// If the array lengths disagree with the sizes.
pub fn conv_layer_distance_f64(
    kernel: &[f32],
    bias: Option<&[f32]>,
    out_h: usize,
    out_w: usize,
    patch: usize,
    filters: usize,
    config: SpatialConfig,
) -> f64 {
    assert_eq!(kernel.len(), patch * filters, "kernel length");
    let bias = bias.filter(|_| config.include_bias);
    if let Some(bias) = bias {
        assert_eq!(bias.len(), filters, "bias length");
    }
    let vectors = unit_vectors_f64(kernel, bias, patch, filters);
    let cosines: Vec<f64> = (0..filters * filters)
        .map(|i| {
            let (a, b) = (&vectors[i / filters], &vectors[i % filters]);
            a.iter().zip(b).map(|(x, y)| x * y).sum()
        })
        .collect();
    let dot = |a: usize, b: usize| cosines[(a % filters) * filters + b % filters];
    sheet_distance(out_h, out_w, filters, config, dot)
}

/// `(1 − mean over directions of the mean pair cosine)/2` on an `out_h × out_w × filters`
/// sheet, with `dot(a, b)` the cosine of units `a` and `b` (unit order `(r·out_w + q)·filters
/// + c`).
fn sheet_distance(
    out_h: usize,
    out_w: usize,
    filters: usize,
    config: SpatialConfig,
    dot: impl Fn(usize, usize) -> f64,
) -> f64 {
    let layout = SheetLayout::new(out_h, out_w, filters);
    let pairs = layer_pairs(&layout, config);
    let sum: f64 = pairs.iter().map(|p| mean_similarity_f64(&dot, p)).sum();
    (1.0 - sum / pairs.len() as f64) / 2.0
}

/// The normalised unit vectors (one per row, unit order), row length `patch [+ 1]`.
fn unit_vectors_f64(
    kernel: &[f32],
    bias: Option<&[f32]>,
    patch: usize,
    filters: usize,
) -> Vec<Vec<f64>> {
    let units = kernel.len() / patch;
    (0..units)
        .map(|u| {
            let (p, c) = (u / filters, u % filters);
            let weights = (0..patch).map(|k| kernel[(p * patch + k) * filters + c]);
            let mut v: Vec<f64> = weights.chain(bias.map(|b| b[u])).map(f64::from).collect();
            let norm = v
                .iter()
                .map(|x| x * x)
                .sum::<f64>()
                .max(L2_NORMALIZE_EPSILON)
                .sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

fn mean_similarity_f64(dot: impl Fn(usize, usize) -> f64, pairs: &Pairs) -> f64 {
    let total: f64 = match &pairs.first {
        Some(first) => first
            .iter()
            .zip(&pairs.second)
            .map(|(&a, &b)| dot(a as usize, b as usize))
            .sum(),
        None => pairs
            .second
            .iter()
            .enumerate()
            .map(|(a, &b)| dot(a, b as usize))
            .sum(),
    };
    total / pairs.len() as f64
}

#[cfg(test)]
mod tests {
    use alltnn_runtime::spec::{
        Activation, InputSpec, LayerSpec, Norm, OutputActivation, Preprocess, ReadoutSpec,
    };
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::model::TensorData;

    /// Input `size`×`size`×`channels`, one unnormalised locally connected layer per
    /// `(filters, kernel)`, stride 1, and a 2-class readout.
    fn spec(size: u32, channels: u32, layers: &[(u32, u32)]) -> ModelSpec {
        let layers = layers
            .iter()
            .map(|&(filters, kernel)| LayerSpec {
                kind: LayerKind::LocallyConnected,
                filters,
                kernel,
                stride: 1,
                bias: true,
                activation: Activation::Relu,
                norm: Norm::None,
                norm_first: false,
                pool_after: false,
            })
            .collect();
        ModelSpec {
            input: InputSpec {
                height: size,
                width: size,
                channels,
                preprocess: Preprocess::SignedUnit,
            },
            layers,
            readout: ReadoutSpec {
                classes: 2,
                bias: true,
            },
            output: OutputActivation::Softmax,
        }
    }

    fn config(neighbours: Neighbours, circular: bool, include_bias: bool) -> SpatialConfig {
        SpatialConfig {
            neighbours,
            circular,
            include_bias,
        }
    }

    /// The candle distance of layer 0 and the f64 one from the same tensors.
    fn both_distances(
        spec: &ModelSpec,
        tensors: &[TensorData],
        config: SpatialConfig,
    ) -> Vec<(f64, f64)> {
        let model = TnnModel::from_tensors(spec, tensors, &Device::Cpu).unwrap();
        let candle = SpatialLoss::new(spec, config, &Device::Cpu)
            .unwrap()
            .distances(&model)
            .unwrap();
        let geometry = spec.geometry().unwrap();
        candle
            .iter()
            .enumerate()
            .map(|(l, d)| {
                let got = d.as_ref().unwrap().to_scalar::<f32>().unwrap() as f64;
                let find = |name: String| &tensors.iter().find(|t| t.0 == name).unwrap().2;
                let g = &geometry[l];
                let [oh, ow, f] = g.output;
                let kernel = find(format!("layer{l}.kernel"));
                let bias = find(format!("layer{l}.bias"));
                let plain = layer_distance_f64(kernel, Some(bias), oh, ow, g.patch, f, config);
                (got, plain)
            })
            .collect()
    }

    #[test]
    fn conv_distance_equals_the_tiled_locally_connected_distance() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (oh, ow, patch, filters) = (5, 3, 4, 6);
        let kernel: Vec<f32> = (0..patch * filters)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let bias: Vec<f32> = (0..filters).map(|_| rng.random_range(-1.0..1.0)).collect();
        let tiled_kernel: Vec<f32> = kernel.repeat(oh * ow);
        let tiled_bias: Vec<f32> = bias.repeat(oh * ow);
        for neighbours in [Neighbours::Four, Neighbours::Eight] {
            for circular in [true, false] {
                let config = SpatialConfig {
                    neighbours,
                    circular,
                    include_bias: true,
                };
                let conv =
                    conv_layer_distance_f64(&kernel, Some(&bias), oh, ow, patch, filters, config);
                let tiled = layer_distance_f64(
                    &tiled_kernel,
                    Some(&tiled_bias),
                    oh,
                    ow,
                    patch,
                    filters,
                    config,
                );
                assert!((conv - tiled).abs() < 1e-12, "{conv} vs {tiled}");
                assert!(conv > 0.05, "different channels are neighbours: {conv}");
            }
        }
    }

    /// A 2×2-position layer of 4 filters (a 4×4 sheet) with one-element kernels. Unit
    /// (r, q, c) is "B" = [0, 2] when r = 0 and c ≥ 2 — exactly sheet row 1 — and "A" = [s, 0]
    /// (s = 3 at q = 1, else 1: normalisation must remove it) elsewhere. cos(A, A) = 1,
    /// cos(A, B) = 0, so the sheet rows read A, B, A, A: right pairs have mean 1; down pairs
    /// 0, 0, 1 (+ 1 wrapping round); diagonals like down.
    fn hand_made() -> (ModelSpec, Vec<TensorData>) {
        let spec = spec(2, 1, &[(4, 1)]);
        let mut kernel = vec![0.0; 16];
        let mut bias = vec![0.0; 16];
        for r in 0..2 {
            for q in 0..2 {
                for c in 0..4 {
                    let u = (r * 2 + q) * 4 + c;
                    if r == 0 && c >= 2 {
                        bias[u] = 2.0;
                    } else {
                        kernel[u] = if q == 1 { 3.0 } else { 1.0 };
                    }
                }
            }
        }
        let tensors = vec![
            ("layer0.kernel".into(), vec![4, 1, 4], kernel),
            ("layer0.bias".into(), vec![2, 2, 4], bias),
            ("readout.kernel".into(), vec![16, 2], vec![0.0; 32]),
            ("readout.bias".into(), vec![2], vec![0.0; 2]),
        ];
        (spec, tensors)
    }

    #[test]
    fn hand_checked_sheet() {
        let (spec, tensors) = hand_made();
        let cases = [
            // sim = (0.5 + 1) / 2
            (config(Neighbours::Four, true, true), 0.125),
            // sim = (1/3 + 1) / 2
            (config(Neighbours::Four, false, true), 1.0 / 6.0),
            // sim = (0.5 + 1 + 0.5 + 0.5) / 4
            (config(Neighbours::Eight, true, true), 0.1875),
            // sim = (1/3 + 1 + 1/3 + 1/3) / 4
            (config(Neighbours::Eight, false, true), 0.25),
            // Without the bias B is the zero vector: right pairs 3/4, down 1/2.
            (config(Neighbours::Four, true, false), 0.1875),
        ];
        for (config, want) in cases {
            let (got, plain) = both_distances(&spec, &tensors, config)[0];
            assert!(
                (got - want).abs() < 1e-6,
                "{config:?}: candle {got}, want {want}"
            );
            assert!(
                (plain - want).abs() < 1e-12,
                "{config:?}: f64 {plain}, want {want}"
            );
        }
    }

    #[test]
    fn candle_and_f64_agree_on_random_layers() {
        // Sheets: 6·2 × 6·5 (10 filters), 5·3 × 5·3, and a 1×1-position layer smoothed over
        // its 2×4 channel sheet.
        let spec = spec(7, 3, &[(10, 2), (9, 2), (8, 5)]);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let tensors: Vec<_> = spec
            .tensors()
            .unwrap()
            .into_iter()
            .map(|t| {
                let values = (0..t.len()).map(|_| rng.random::<f32>() - 0.5).collect();
                (t.name(), t.shape, values)
            })
            .collect();
        for neighbours in [Neighbours::Four, Neighbours::Eight] {
            for circular in [true, false] {
                for include_bias in [true, false] {
                    let config = config(neighbours, circular, include_bias);
                    for (got, plain) in both_distances(&spec, &tensors, config) {
                        assert!((got - plain).abs() < 1e-6, "{config:?}: {got} vs {plain}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_open_sheet_without_pairs_is_refused() {
        // 7 filters at one position: a 1×7 sheet has no vertical neighbours unless it wraps.
        let spec = spec(2, 1, &[(7, 2)]);
        let open = config(Neighbours::Four, false, true);
        let err = SpatialLoss::new(&spec, open, &Device::Cpu).err().unwrap();
        assert!(err.to_string().contains("no neighbour pairs"), "{err}");
        assert!(SpatialLoss::new(&spec, SpatialConfig::default(), &Device::Cpu).is_ok());
    }

    #[test]
    fn a_model_of_another_spec_is_refused() {
        let loss = SpatialLoss::new(
            &spec(4, 1, &[(4, 2)]),
            SpatialConfig::default(),
            &Device::Cpu,
        );
        let other = TnnModel::init(&spec(4, 1, &[(9, 2)]), 0, &Device::Cpu).unwrap();
        let err = loss.unwrap().distances(&other).err().unwrap();
        assert!(err.to_string().contains("other layers"), "{err}");
    }
}
