//! Keras 2 HDF5 weight files, as written by `model.save_weights` — the original All-TNN
//! checkpoints (`ckpt_epNNN.h5`).
//!
//! Such a file holds weights, not the architecture: the root attribute `layer_names` lists the
//! layers in model order, each layer group lists its `weight_names`, and the datasets live at
//! `/<layer>/<weight name>`. The architecture is either given as a spec or inferred from the
//! original's layer names (`sheet_<l>` / `conv_<l>`, `relu_Layer_<l>_Time_0`,
//! `LayerNorm_Layer_<l>_Time_0` or `BatchNorm_…`, unnamed `max_pooling2d…`, `ReadoutDense`) and
//! the weight shapes. Only the input size is not stored anywhere, and neither are conv strides.
//!
//! The inference works on a list of `LayerEntry` (names and shapes only), so it is tested
//! without files; [`import_h5`] adds the HDF5 reading around it.

use std::collections::BTreeMap;
use std::path::Path;

use alltnn_runtime::spec::{
    Activation, InputSpec, LayerKind, LayerSpec, Norm, NormParams, OutputActivation, Preprocess,
    ReadoutSpec, TensorOwner, TensorRole, TensorSpec,
};
use alltnn_runtime::ModelSpec;
use hdf5_reader::error::Error as H5Error;
use hdf5_reader::group::Group;
use hdf5_reader::{Attribute, Dataset, Datatype, Hdf5File};

use crate::{ConvertError, ImportedModel, NamedTensor};

/// How to interpret a Keras weight file.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Side of the square input images; required to infer the architecture, since Keras weight
    /// files do not store it. With `spec`, it is optional and must agree with the spec.
    pub image_size: Option<u32>,
    /// The architecture; when absent it is inferred from layer names and weight shapes.
    pub spec: Option<ModelSpec>,
    /// Epsilon of inferred norm layers (files do not store it); Keras' default 1e-3 otherwise.
    pub norm_epsilon: Option<f32>,
    /// One stride per layer, for files whose shapes fit several (conv strides are not stored);
    /// must be one of the assignments that fit.
    pub strides: Option<Vec<u32>>,
}

/// Imports a Keras 2 `model.save_weights` HDF5 file (also a full `model.save` file, whose
/// weights sit under `/model_weights`).
///
/// The spec is `options.spec` if given — every weight is then checked against it — or inferred
/// from the file with `options.image_size`. The returned tensors carry the canonical names and
/// the order of [`ModelSpec::tensors`], as f32 (f16 and f64 datasets are converted).
pub fn import_h5(path: &Path, options: &ImportOptions) -> Result<ImportedModel, ConvertError> {
    let layout = |message: String| ConvertError::layout(path, message);
    let file = open_file(path)?;
    let root = weights_root(&file, path)?;
    let layers = read_layers(&root, path)?;
    let plan = Plan::from_layers(&layers).map_err(layout)?;
    let spec = match &options.spec {
        Some(spec) => {
            check_against_spec(&plan, spec, options.image_size).map_err(layout)?;
            spec.clone()
        }
        None => infer_spec(&plan, options).map_err(layout)?,
    };
    let bindings = bind(&plan, &spec).map_err(layout)?;
    let tensors = bindings
        .into_iter()
        .map(|(tensor, weight)| {
            let data = read_tensor(&root, weight, tensor.len(), path)?;
            Ok(NamedTensor {
                name: tensor.name(),
                shape: tensor.shape,
                data,
            })
        })
        .collect::<Result<Vec<_>, ConvertError>>()?;
    Ok(ImportedModel { spec, tensors })
}

// ---------------------------------------------------------------------------------------------
// Names and shapes: what the inference works on.
// ---------------------------------------------------------------------------------------------

/// A layer listed in a Keras weight file, with its weights in file order.
#[derive(Clone, Debug, PartialEq)]
struct LayerEntry {
    name: String,
    weights: Vec<WeightEntry>,
}

/// One weight of a layer: its Keras name (`sheet_0/kernel:0`) and shape.
#[derive(Clone, Debug, PartialEq)]
struct WeightEntry {
    name: String,
    shape: Vec<usize>,
}

impl WeightEntry {
    /// The variable's own name: `kernel`, `bias`, `gamma`, … (no layer prefix, no `:0`).
    fn variable(&self) -> &str {
        let last = self
            .name
            .rsplit_once('/')
            .map_or(self.name.as_str(), |(_, v)| v);
        last.split_once(':').map_or(last, |(v, _)| v)
    }
}

/// A weight together with the layer whose group holds it.
#[derive(Clone, Copy, Debug)]
struct Weight<'a> {
    layer: &'a str,
    entry: &'a WeightEntry,
}

impl Weight<'_> {
    fn label(&self) -> &str {
        &self.entry.name
    }
    fn shape(&self) -> &[usize] {
        &self.entry.shape
    }
}

// ---------------------------------------------------------------------------------------------
// Layer names → block structure.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NormKind {
    Layer,
    Batch,
}

impl NormKind {
    fn of(norm: &Norm) -> Option<NormKind> {
        match norm {
            Norm::None => None,
            Norm::LayerNorm(_) => Some(NormKind::Layer),
            Norm::BatchNorm(_) => Some(NormKind::Batch),
        }
    }
    fn name(self) -> &'static str {
        match self {
            NormKind::Layer => "LayerNorm",
            NormKind::Batch => "BatchNorm",
        }
    }
}

/// What a layer name says the layer is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum LayerRole {
    Block {
        index: usize,
        kind: LayerKind,
    },
    Norm {
        block: usize,
        kind: NormKind,
    },
    Activation {
        block: usize,
        activation: Activation,
    },
    Pool,
    Readout,
    /// See [`is_ignored`].
    Ignored,
}

fn block_prefix(kind: LayerKind) -> &'static str {
    match kind {
        LayerKind::LocallyConnected => "sheet_",
        LayerKind::Conv => "conv_",
    }
}

fn classify(layer: &LayerEntry) -> Result<LayerRole, String> {
    let name = layer.name.as_str();
    for kind in [LayerKind::LocallyConnected, LayerKind::Conv] {
        if let Some(index) = name
            .strip_prefix(block_prefix(kind))
            .and_then(|i| i.parse().ok())
        {
            return Ok(LayerRole::Block { index, kind });
        }
    }
    if let Some((what, block)) = per_block_name(name)? {
        return per_block_role(name, what, block);
    }
    let lower = name.to_ascii_lowercase();
    if name == "ReadoutDense" {
        Ok(LayerRole::Readout)
    } else if lower.contains("pool") {
        // The original only uses unnamed `MaxPool2D()` layers (`max_pooling2d`, `…_1`, …).
        if ["avg", "average", "global"]
            .iter()
            .any(|p| lower.contains(p))
        {
            Err(format!(
                "unsupported pooling layer {name}: only 2x2 max pooling is supported"
            ))
        } else {
            Ok(LayerRole::Pool)
        }
    } else if is_ignored(name) {
        Ok(LayerRole::Ignored)
    } else if layer.weights.is_empty() {
        Err(format!("unsupported layer {name}"))
    } else {
        let weights: Vec<&str> = layer.weights.iter().map(|w| w.name.as_str()).collect();
        Err(format!("unsupported layer {name} with weights {weights:?}"))
    }
}

/// Layers that change nothing at inference (input, flatten in NHWC order, dropout) or that the
/// spec covers elsewhere (`output_time_0`: the output activation), and the group of variables
/// of the model object itself (`top_level_model_weights`, the original's loss schedule). Any
/// other layer might change the computation, so it is refused rather than skipped.
fn is_ignored(name: &str) -> bool {
    const PREFIXES: [&str; 5] = [
        "input",
        "flatten",
        "dropout",
        "output_time_",
        "top_level_model_weights",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Splits the original's per-block names `<what>_Layer_<l>_Time_<t>` into `what` and `l`.
fn per_block_name(name: &str) -> Result<Option<(&str, usize)>, String> {
    let Some((what, rest)) = name.split_once("_Layer_") else {
        return Ok(None);
    };
    let Some((block, time)) = rest.split_once("_Time_") else {
        return Ok(None);
    };
    let (Ok(block), Ok(time)) = (block.parse::<usize>(), time.parse::<usize>()) else {
        return Ok(None);
    };
    if time != 0 {
        return Err(format!(
            "unsupported layer {name}: only single-time-step models (Time_0) are supported"
        ));
    }
    Ok(Some((what, block)))
}

fn per_block_role(name: &str, what: &str, block: usize) -> Result<LayerRole, String> {
    let norm = |kind| Ok(LayerRole::Norm { block, kind });
    let activation = |activation| Ok(LayerRole::Activation { block, activation });
    match what {
        "LayerNorm" => norm(NormKind::Layer),
        "BatchNorm" => norm(NormKind::Batch),
        "relu" => activation(Activation::Relu),
        "linear" => activation(Activation::Linear),
        _ if what.ends_with("Norm") => Err(format!(
            "unsupported layer {name}: only LayerNorm and BatchNorm are supported"
        )),
        _ => Err(format!(
            "unsupported activation layer {name}: only relu and linear are supported"
        )),
    }
}

/// One block as the file describes it.
#[derive(Debug)]
struct Block<'a> {
    name: &'a str,
    kind: LayerKind,
    kernel: Weight<'a>,
    bias: Option<Weight<'a>>,
    /// The activation and its position in `layer_names`.
    activation: Option<(Activation, usize)>,
    norm: Option<NormLayer<'a>>,
    pool_after: bool,
}

#[derive(Debug)]
struct NormLayer<'a> {
    kind: NormKind,
    /// Position in `layer_names`, to tell `norm_first` models apart.
    position: usize,
    gamma: Option<Weight<'a>>,
    beta: Option<Weight<'a>>,
    moving_mean: Option<Weight<'a>>,
    moving_variance: Option<Weight<'a>>,
}

#[derive(Debug)]
struct Readout<'a> {
    kernel: Weight<'a>,
    bias: Option<Weight<'a>>,
}

/// The file's layers grouped into blocks and the readout.
#[derive(Debug)]
struct Plan<'a> {
    blocks: Vec<Block<'a>>,
    readout: Readout<'a>,
}

/// A layer's weights by variable name; anything but `allowed` (or a duplicate) is an error.
fn weights_of<'a>(
    layer: &'a LayerEntry,
    allowed: &[&str],
) -> Result<BTreeMap<&'a str, Weight<'a>>, String> {
    let mut out = BTreeMap::new();
    for entry in &layer.weights {
        let variable = entry.variable();
        if !allowed.contains(&variable) {
            return Err(format!(
                "unexpected weight {} in layer {} (expected {allowed:?})",
                entry.name, layer.name
            ));
        }
        let weight = Weight {
            layer: &layer.name,
            entry,
        };
        if out.insert(variable, weight).is_some() {
            return Err(format!("layer {} holds {variable} twice", layer.name));
        }
    }
    Ok(out)
}

impl<'a> Block<'a> {
    fn new(layer: &'a LayerEntry, kind: LayerKind) -> Result<Self, String> {
        let mut weights = weights_of(layer, &["kernel", "bias"])?;
        let kernel = weights
            .remove("kernel")
            .ok_or_else(|| format!("layer {} has no kernel", layer.name))?;
        Ok(Block {
            name: &layer.name,
            kind,
            kernel,
            bias: weights.remove("bias"),
            activation: None,
            norm: None,
            pool_after: false,
        })
    }
}

impl<'a> NormLayer<'a> {
    fn new(layer: &'a LayerEntry, kind: NormKind, position: usize) -> Result<Self, String> {
        let allowed: &[&str] = match kind {
            NormKind::Layer => &["gamma", "beta"],
            NormKind::Batch => &["gamma", "beta", "moving_mean", "moving_variance"],
        };
        let mut weights = weights_of(layer, allowed)?;
        let norm = NormLayer {
            kind,
            position,
            gamma: weights.remove("gamma"),
            beta: weights.remove("beta"),
            moving_mean: weights.remove("moving_mean"),
            moving_variance: weights.remove("moving_variance"),
        };
        if kind == NormKind::Batch && (norm.moving_mean.is_none() || norm.moving_variance.is_none())
        {
            return Err(format!(
                "BatchNorm layer {} lacks moving_mean or moving_variance",
                layer.name
            ));
        }
        Ok(norm)
    }
}

impl<'a> Readout<'a> {
    fn new(layer: &'a LayerEntry) -> Result<Self, String> {
        let mut weights = weights_of(layer, &["kernel", "bias"])?;
        let kernel = weights
            .remove("kernel")
            .ok_or_else(|| format!("layer {} has no kernel", layer.name))?;
        Ok(Readout {
            kernel,
            bias: weights.remove("bias"),
        })
    }
}

impl<'a> Plan<'a> {
    /// Walks `layer_names` in model order and assigns every layer to its block.
    fn from_layers(layers: &'a [LayerEntry]) -> Result<Self, String> {
        let mut blocks: Vec<Block<'a>> = Vec::new();
        let mut readout: Option<Readout<'a>> = None;
        for (position, layer) in layers.iter().enumerate() {
            let role = classify(layer)?;
            if readout.is_some() && !matches!(role, LayerRole::Ignored) {
                return Err(format!("layer {} comes after ReadoutDense", layer.name));
            }
            match role {
                LayerRole::Block { index, kind } => {
                    if index != blocks.len() {
                        return Err(block_order_error(&blocks, index, kind, &layer.name));
                    }
                    blocks.push(Block::new(layer, kind)?);
                }
                LayerRole::Norm { block, kind } => {
                    let block = current_block(&mut blocks, block, &layer.name)?;
                    if block.norm.is_some() {
                        return Err(format!("block {} has two norm layers", block.name));
                    }
                    block.norm = Some(NormLayer::new(layer, kind, position)?);
                }
                LayerRole::Activation { block, activation } => {
                    let block = current_block(&mut blocks, block, &layer.name)?;
                    if block.activation.is_some() {
                        return Err(format!("block {} has two activation layers", block.name));
                    }
                    block.activation = Some((activation, position));
                }
                LayerRole::Pool => {
                    let Some(block) = blocks.last_mut() else {
                        return Err(format!(
                            "pooling layer {} comes before any block",
                            layer.name
                        ));
                    };
                    if block.pool_after {
                        return Err(format!("two pooling layers follow {}", block.name));
                    }
                    block.pool_after = true;
                }
                LayerRole::Readout => readout = Some(Readout::new(layer)?),
                LayerRole::Ignored => {}
            }
        }
        if blocks.is_empty() {
            return Err("no sheet_<l> or conv_<l> layers: not an All-TNN or CNN control".into());
        }
        if let Some(block) = blocks.iter().find(|b| b.activation.is_none()) {
            return Err(format!(
                "block {} has no activation layer (relu_Layer_<l>_Time_0 or linear_Layer_…)",
                block.name
            ));
        }
        let readout = readout.ok_or("missing readout layer ReadoutDense")?;
        Ok(Plan { blocks, readout })
    }
}

/// Explains why block `index` is not the next one expected.
fn block_order_error(blocks: &[Block], index: usize, kind: LayerKind, name: &str) -> String {
    let expected = blocks.len();
    if index > expected {
        format!(
            "missing layer {}{expected} (found {name})",
            block_prefix(kind)
        )
    } else {
        format!("layer {name} appears twice or out of order")
    }
}

/// The block a per-block layer (norm, activation) belongs to: it must be the latest one.
fn current_block<'p, 'a>(
    blocks: &'p mut [Block<'a>],
    index: usize,
    name: &str,
) -> Result<&'p mut Block<'a>, String> {
    let latest = blocks.len().checked_sub(1);
    match (latest, blocks.last_mut()) {
        (Some(l), Some(block)) if l == index => Ok(block),
        (Some(l), Some(block)) if index == l + 1 => Err(format!(
            "missing layer {}{index} ({name} refers to it)",
            block_prefix(block.kind)
        )),
        _ => Err(format!(
            "layer {name} refers to block {index} but does not follow its weighted layer"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Weight shapes → spec.
// ---------------------------------------------------------------------------------------------

/// Input channels of the original models (RGB).
const INPUT_CHANNELS: usize = 3;

/// What the weight shapes fix about a block before strides are known.
#[derive(Clone, Debug, PartialEq)]
struct BlockShape {
    name: String,
    kernel: usize,
    filters: usize,
    /// Output side, stored in the shapes of locally connected layers; `None` for conv layers.
    output: Option<usize>,
    pool_after: bool,
}

fn infer_spec(plan: &Plan, options: &ImportOptions) -> Result<ModelSpec, String> {
    let image = options.image_size.ok_or(
        "the input image size is not stored in Keras weight files: \
         pass --image-size N (or --spec FILE)",
    )?;
    let shapes = block_shapes(plan)?;
    let (readout_inputs, classes) = readout_shape(&plan.readout)?;
    let readout_label = plan.readout.kernel.label();
    let candidates = solve_strides(image as usize, &shapes, readout_label, readout_inputs)?;
    let strides = choose_strides(image as usize, candidates, options.strides.as_deref())?;
    let epsilon = options
        .norm_epsilon
        .unwrap_or(NormParams::default().epsilon);
    let layers = plan
        .blocks
        .iter()
        .zip(&shapes)
        .zip(strides)
        .map(|((block, shape), stride)| layer_spec(block, shape, stride, epsilon))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ModelSpec {
        input: InputSpec {
            height: image,
            width: image,
            channels: INPUT_CHANNELS as u32,
            preprocess: Preprocess::SignedUnit,
        },
        layers,
        readout: ReadoutSpec {
            classes: to_u32(classes, readout_label)?,
            bias: plan.readout.bias.is_some(),
        },
        // The original's `output_time_0` is a softmax unless trained on embeddings (see
        // `model_dir`, which reads that from the hyperparameters).
        output: OutputActivation::Softmax,
    })
}

fn layer_spec(
    block: &Block,
    shape: &BlockShape,
    stride: u32,
    epsilon: f32,
) -> Result<LayerSpec, String> {
    let norm = match &block.norm {
        None => Norm::None,
        Some(norm) => {
            let params = NormParams {
                epsilon,
                center: norm.beta.is_some(),
                scale: norm.gamma.is_some(),
            };
            match norm.kind {
                NormKind::Layer => Norm::LayerNorm(params),
                NormKind::Batch => Norm::BatchNorm(params),
            }
        }
    };
    let (activation, activation_position) = block
        .activation
        .ok_or_else(|| format!("block {} has no activation layer", block.name))?;
    Ok(LayerSpec {
        kind: block.kind,
        filters: to_u32(shape.filters, block.kernel.label())?,
        kernel: to_u32(shape.kernel, block.kernel.label())?,
        stride,
        bias: block.bias.is_some(),
        activation,
        norm,
        norm_first: block
            .norm
            .as_ref()
            .is_some_and(|n| n.position < activation_position),
        pool_after: block.pool_after,
    })
}

fn to_u32(n: usize, what: &str) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("{what}: dimension {n} is too large"))
}

/// Reads kernel size, filters and (for locally connected layers) output size from the shapes,
/// checking each layer's input channels against the previous layer's filters.
fn block_shapes(plan: &Plan) -> Result<Vec<BlockShape>, String> {
    let mut shapes: Vec<BlockShape> = Vec::with_capacity(plan.blocks.len());
    for block in &plan.blocks {
        let channels = shapes.last().map_or(INPUT_CHANNELS, |s| s.filters);
        let source = match shapes.last() {
            Some(s) => format!("{} has {channels} filters", s.name),
            None => format!("the input has {channels} channels"),
        };
        let shape = match block.kind {
            LayerKind::LocallyConnected => locally_connected_shape(block, channels, &source)?,
            LayerKind::Conv => conv_shape(block, channels, &source)?,
        };
        shapes.push(shape);
    }
    Ok(shapes)
}

fn exact_sqrt(n: usize) -> Option<usize> {
    let root = (n as f64).sqrt().round() as usize;
    (root * root == n).then_some(root)
}

/// Kernel `(out_rows*out_cols, k*k*c_in, filters)`, bias `(out_rows, out_cols, filters)`.
fn locally_connected_shape(
    block: &Block,
    channels: usize,
    source: &str,
) -> Result<BlockShape, String> {
    let kernel = block.kernel;
    let &[positions, patch, filters] = kernel.shape() else {
        return Err(format!(
            "{} has shape {:?}: a locally connected kernel has 3 dimensions \
             (positions, k*k*channels, filters)",
            kernel.label(),
            kernel.shape()
        ));
    };
    check_filters(kernel, filters)?;
    let k = (patch % channels == 0)
        .then(|| exact_sqrt(patch / channels))
        .flatten()
        .filter(|&k| k > 0)
        .ok_or_else(|| {
            format!(
                "{} has shape {:?} but {source}: expected a patch length of k*k*{channels}",
                kernel.label(),
                kernel.shape()
            )
        })?;
    let side = match block.bias {
        Some(bias) => {
            let &[rows, cols, f] = bias.shape() else {
                return Err(bias_shape_error(bias, kernel));
            };
            if f != filters || rows * cols != positions {
                return Err(bias_shape_error(bias, kernel));
            }
            if rows != cols {
                return Err(format!(
                    "{} holds a {rows}x{cols} output: only square inputs can be inferred, \
                     pass --spec FILE",
                    bias.label()
                ));
            }
            rows
        }
        None => exact_sqrt(positions).ok_or_else(|| {
            format!(
                "{} has {positions} positions, not a square number: pass --spec FILE",
                kernel.label()
            )
        })?,
    };
    Ok(BlockShape {
        name: block.name.to_string(),
        kernel: k,
        filters,
        output: Some(side),
        pool_after: block.pool_after,
    })
}

fn check_filters(kernel: Weight, filters: usize) -> Result<(), String> {
    match filters {
        0 => Err(format!(
            "{} has shape {:?}: no filters",
            kernel.label(),
            kernel.shape()
        )),
        _ => Ok(()),
    }
}

fn bias_shape_error(bias: Weight, kernel: Weight) -> String {
    format!(
        "{} has shape {:?}, which does not match {} with shape {:?}: expected \
         (rows, cols, filters) with rows*cols positions",
        bias.label(),
        bias.shape(),
        kernel.label(),
        kernel.shape()
    )
}

/// Kernel `(k, k, c_in, filters)`, bias `(filters,)`.
fn conv_shape(block: &Block, channels: usize, source: &str) -> Result<BlockShape, String> {
    let kernel = block.kernel;
    let &[k, k2, c_in, filters] = kernel.shape() else {
        return Err(format!(
            "{} has shape {:?}: a conv kernel has 4 dimensions (k, k, channels, filters)",
            kernel.label(),
            kernel.shape()
        ));
    };
    check_filters(kernel, filters)?;
    if k != k2 || k == 0 {
        return Err(format!(
            "{} has shape {:?}: only square kernels are supported",
            kernel.label(),
            kernel.shape()
        ));
    }
    if c_in != channels {
        return Err(format!(
            "{} has shape {:?} but {source}: expected {channels} input channels",
            kernel.label(),
            kernel.shape()
        ));
    }
    Ok(BlockShape {
        name: block.name.to_string(),
        kernel: k,
        filters,
        output: None,
        pool_after: block.pool_after,
    })
}

/// Inputs and classes of the dense readout kernel.
fn readout_shape(readout: &Readout) -> Result<(usize, usize), String> {
    match readout.kernel.shape() {
        &[inputs, classes] => Ok((inputs, classes)),
        other => Err(format!(
            "{} has shape {other:?}: a dense kernel has 2 dimensions (inputs, classes)",
            readout.kernel.label()
        )),
    }
}

/// Finds every stride assignment for which every block fits an `image`-sided input, locally
/// connected blocks reproduce the output size their weights hold, and the flattened last
/// output has `readout_inputs` values. Conv strides are tried in `1..=kernel`.
fn solve_strides(
    image: usize,
    blocks: &[BlockShape],
    readout_label: &str,
    readout_inputs: usize,
) -> Result<Vec<Vec<u32>>, String> {
    let mut search = StrideSearch {
        blocks,
        readout_label,
        readout_inputs,
        found: Vec::new(),
        failure: (0, String::new()),
    };
    search.visit(0, image, &mut Vec::new());
    if search.found.is_empty() {
        return Err(format!(
            "no stride assignment fits image size {image}: {}",
            search.failure.1
        ));
    }
    Ok(search.found)
}

/// The only candidate, or the one the user asked for.
fn choose_strides(
    image: usize,
    mut candidates: Vec<Vec<u32>>,
    wanted: Option<&[u32]>,
) -> Result<Vec<u32>, String> {
    match wanted {
        Some(wanted) if candidates.iter().any(|c| c == wanted) => Ok(wanted.to_vec()),
        Some(wanted) => Err(format!(
            "strides {wanted:?} do not fit image size {image} and the weight shapes; {}",
            candidate_list(&candidates)
        )),
        None if candidates.len() == 1 => Ok(candidates.remove(0)),
        None => Err(ambiguity_error(image, candidates.len(), &candidates)),
    }
}

fn candidate_list(found: &[Vec<u32>]) -> String {
    const SHOWN: usize = 8;
    let mut list: Vec<String> = found
        .iter()
        .take(SHOWN)
        .map(|strides| format!("{strides:?}"))
        .collect();
    if found.len() > SHOWN {
        list.push(format!("and {} more", found.len() - SHOWN));
    }
    format!("fitting assignments: {}", list.join(", "))
}

fn ambiguity_error(image: usize, n: usize, found: &[Vec<u32>]) -> String {
    format!(
        "ambiguous strides: {n} stride assignments fit image size {image} and the weight shapes \
         ({}): pass --strides S,S,... or --spec FILE",
        candidate_list(found)
    )
}

/// Depth-first search over stride assignments, keeping the deepest failure to explain a miss.
struct StrideSearch<'s> {
    blocks: &'s [BlockShape],
    readout_label: &'s str,
    readout_inputs: usize,
    found: Vec<Vec<u32>>,
    failure: (usize, String),
}

impl StrideSearch<'_> {
    fn fail(&mut self, depth: usize, message: impl FnOnce() -> String) {
        if self.failure.1.is_empty() || depth > self.failure.0 {
            self.failure = (depth, message());
        }
    }

    fn visit(&mut self, depth: usize, side: usize, strides: &mut Vec<u32>) {
        let Some(block) = self.blocks.get(depth) else {
            self.check_readout(depth, side, strides);
            return;
        };
        let k = block.kernel;
        if side < k {
            self.fail(depth, || {
                format!(
                    "kernel {k} of {} does not fit its {side}x{side} input",
                    block.name
                )
            });
            return;
        }
        // A locally connected block may need any stride that reproduces its stored output.
        let max_stride = if block.output.is_some() { side } else { k };
        let mut matched = false;
        let mut single_position_seen = false;
        for stride in 1..=max_stride {
            let out = (side - k) / stride + 1;
            if block.output.is_some_and(|want| want != out) {
                continue;
            }
            matched = true;
            // With one output position the stride is never applied: all such strides compute
            // the same model, so only the smallest is kept.
            if out == 1 {
                if single_position_seen {
                    continue;
                }
                single_position_seen = true;
            }
            let pooled = if block.pool_after {
                if out < 2 {
                    self.fail(depth, || {
                        format!("{} cannot 2x2-pool its {out}x{out} output", block.name)
                    });
                    continue;
                }
                out / 2
            } else {
                out
            };
            strides.push(stride as u32);
            self.visit(depth + 1, pooled, strides);
            strides.pop();
        }
        if let (false, Some(out)) = (matched, block.output) {
            self.fail(depth, || {
                format!(
                    "{} is inconsistent: no stride takes its {side}x{side} input through \
                     kernel {k} to the {out}x{out} output its weights hold",
                    block.name
                )
            });
        }
    }

    fn check_readout(&mut self, depth: usize, side: usize, strides: &[u32]) {
        let filters = self.blocks.last().map_or(0, |b| b.filters);
        let flat = side * side * filters;
        if flat == self.readout_inputs {
            self.found.push(strides.to_vec());
        } else {
            let last = self.blocks.last().map_or("", |b| b.name.as_str());
            let (label, readout_inputs) = (self.readout_label, self.readout_inputs);
            self.fail(depth, || {
                format!(
                    "{label} has {readout_inputs} inputs but {last} gives \
                     {side}x{side}x{filters} = {flat} (strides {strides:?})"
                )
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// File weights ↔ spec tensors.
// ---------------------------------------------------------------------------------------------

/// Checks the parts of an explicit spec that shapes alone would not catch or explain well.
fn check_against_spec(
    plan: &Plan,
    spec: &ModelSpec,
    image_size: Option<u32>,
) -> Result<(), String> {
    spec.geometry().map_err(|e| e.to_string())?;
    if let Some(size) = image_size {
        if (size, size) != (spec.input.height, spec.input.width) {
            return Err(format!(
                "image size {size} disagrees with the spec's {}x{} input",
                spec.input.height, spec.input.width
            ));
        }
    }
    if plan.blocks.len() != spec.layers.len() {
        return Err(format!(
            "the file has {} blocks, the spec {} layers",
            plan.blocks.len(),
            spec.layers.len()
        ));
    }
    for (l, (block, layer)) in plan.blocks.iter().zip(&spec.layers).enumerate() {
        if block.kind != layer.kind {
            return Err(format!(
                "{} is {:?}, but the spec's layer {l} is {:?}",
                block.name, block.kind, layer.kind
            ));
        }
        let file_norm = block.norm.as_ref().map(|n| n.kind);
        if file_norm != NormKind::of(&layer.norm) {
            return Err(format!(
                "block {} has norm {}, but the spec's layer {l} has {}",
                block.name,
                file_norm.map_or("none", NormKind::name),
                layer.norm.name()
            ));
        }
    }
    Ok(())
}

/// Every weight of the file under the (owner, role) the spec names tensors by.
fn file_tensors<'a>(plan: &Plan<'a>) -> Vec<(TensorOwner, TensorRole, Weight<'a>)> {
    let mut out = Vec::new();
    for (l, block) in plan.blocks.iter().enumerate() {
        let owner = TensorOwner::Layer(l);
        let mut push = |role, weight: Option<Weight<'a>>| {
            if let Some(weight) = weight {
                out.push((owner, role, weight));
            }
        };
        push(TensorRole::Kernel, Some(block.kernel));
        push(TensorRole::Bias, block.bias);
        if let Some(norm) = &block.norm {
            push(TensorRole::Gamma, norm.gamma);
            push(TensorRole::Beta, norm.beta);
            push(TensorRole::MovingMean, norm.moving_mean);
            push(TensorRole::MovingVariance, norm.moving_variance);
        }
    }
    out.push((
        TensorOwner::Readout,
        TensorRole::Kernel,
        plan.readout.kernel,
    ));
    if let Some(bias) = plan.readout.bias {
        out.push((TensorOwner::Readout, TensorRole::Bias, bias));
    }
    out
}

/// Pairs every tensor the spec requires (in its order) with the file weight holding it; the
/// shapes must agree and no file weight may be left over.
fn bind<'a>(plan: &Plan<'a>, spec: &ModelSpec) -> Result<Vec<(TensorSpec, Weight<'a>)>, String> {
    let mut available = file_tensors(plan);
    let mut out = Vec::new();
    for tensor in spec.tensors().map_err(|e| e.to_string())? {
        let index = available
            .iter()
            .position(|(owner, role, _)| (*owner, *role) == (tensor.owner, tensor.role))
            .ok_or_else(|| {
                format!(
                    "the spec requires {} but the file has no such weight",
                    tensor.name()
                )
            })?;
        let (_, _, weight) = available.remove(index);
        if weight.shape() != tensor.shape.as_slice() {
            return Err(format!(
                "{} has shape {:?}, but the spec requires {} with shape {:?}",
                weight.label(),
                weight.shape(),
                tensor.name(),
                tensor.shape
            ));
        }
        out.push((tensor, weight));
    }
    if let Some((_, _, weight)) = available.first() {
        return Err(format!("{} has no place in the spec", weight.label()));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// HDF5 reading.
// ---------------------------------------------------------------------------------------------

fn hdf5_error(path: &Path, error: H5Error) -> ConvertError {
    match error {
        H5Error::Io(source) => ConvertError::io(path, source),
        H5Error::InvalidMagic => ConvertError::Hdf5 {
            path: path.to_path_buf(),
            message: "not an HDF5 file (bad magic bytes)".into(),
        },
        other => ConvertError::Hdf5 {
            path: path.to_path_buf(),
            message: other.to_string().replace('\n', " "),
        },
    }
}

fn is_not_found(error: &H5Error) -> bool {
    match error {
        H5Error::GroupNotFound(_) | H5Error::DatasetNotFound(_) => true,
        H5Error::Context { source, .. } => is_not_found(source),
        _ => false,
    }
}

fn open_file(path: &Path) -> Result<Hdf5File, ConvertError> {
    // Open it ourselves first, so a missing file reports the plain I/O error.
    std::fs::File::open(path).map_err(|e| ConvertError::io(path, e))?;
    Hdf5File::open(path).map_err(|e| hdf5_error(path, e))
}

/// The group holding `layer_names`: the root for `save_weights` files, `/model_weights` for
/// full `model.save` files.
fn weights_root(file: &Hdf5File, path: &Path) -> Result<Group, ConvertError> {
    let root = file.root_group().map_err(|e| hdf5_error(path, e))?;
    if has_name_list(&root, "layer_names").map_err(|e| hdf5_error(path, e))? {
        return Ok(root);
    }
    if let Ok(model_weights) = root.group("model_weights") {
        if has_name_list(&model_weights, "layer_names").map_err(|e| hdf5_error(path, e))? {
            return Ok(model_weights);
        }
    }
    Err(ConvertError::layout(
        path,
        "no layer_names attribute: not a Keras weight file (model.save_weights)",
    ))
}

fn has_name_list(group: &Group, name: &str) -> hdf5_reader::error::Result<bool> {
    let chunked = format!("{name}0");
    Ok(group
        .attributes()?
        .iter()
        .any(|a| a.name == name || a.name == chunked))
}

/// Reads a list of names; Keras splits lists over 64 KiB into `name0`, `name1`, ….
fn read_name_list(group: &Group, name: &str) -> hdf5_reader::error::Result<Option<Vec<String>>> {
    let attributes = group.attributes()?;
    let find = |n: &str| attributes.iter().find(|a| a.name == n);
    if let Some(attribute) = find(name) {
        return strings_of(attribute).map(Some);
    }
    let mut out = Vec::new();
    let mut chunk = 0;
    while let Some(attribute) = find(&format!("{name}{chunk}")) {
        out.extend(strings_of(attribute)?);
        chunk += 1;
    }
    Ok((chunk > 0).then_some(out))
}

fn strings_of(attribute: &Attribute) -> hdf5_reader::error::Result<Vec<String>> {
    // Keras stores an empty float64 array, not an empty string array, for weightless layers.
    if attribute.num_elements()? == 0 {
        return Ok(Vec::new());
    }
    attribute.read_strings()
}

/// Lists every layer of `layer_names` with its weights' names and shapes.
fn read_layers(root: &Group, path: &Path) -> Result<Vec<LayerEntry>, ConvertError> {
    let names = read_name_list(root, "layer_names")
        .map_err(|e| hdf5_error(path, e))?
        .unwrap_or_default();
    names
        .into_iter()
        .map(|name| read_layer(root, name, path))
        .collect()
}

fn read_layer(root: &Group, name: String, path: &Path) -> Result<LayerEntry, ConvertError> {
    let group = root.group(&name).map_err(|e| {
        if is_not_found(&e) {
            ConvertError::layout(
                path,
                format!("layer {name} is listed in layer_names but has no group"),
            )
        } else {
            hdf5_error(path, e)
        }
    })?;
    let weight_names = read_name_list(&group, "weight_names")
        .map_err(|e| hdf5_error(path, e))?
        .ok_or_else(|| ConvertError::layout(path, format!("layer {name} has no weight_names")))?;
    let weights = weight_names
        .into_iter()
        .map(|weight| {
            let dataset = open_dataset(root, &name, &weight, path)?;
            let shape = dataset
                .shape()
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ConvertError::layout(path, format!("{weight} is too large")))?;
            Ok(WeightEntry {
                name: weight,
                shape,
            })
        })
        .collect::<Result<Vec<_>, ConvertError>>()?;
    Ok(LayerEntry { name, weights })
}

/// Opens `/<layer>/<weight>`; weight names contain `/` themselves (`sheet_0/kernel:0`).
fn open_dataset(
    root: &Group,
    layer: &str,
    weight: &str,
    path: &Path,
) -> Result<Dataset, ConvertError> {
    let open = || -> hdf5_reader::error::Result<Dataset> {
        let mut group = root.group(layer)?;
        let mut parts: Vec<&str> = weight.split('/').filter(|p| !p.is_empty()).collect();
        let last = parts.pop().unwrap_or(weight);
        for part in parts {
            group = group.group(part)?;
        }
        group.dataset(last)
    };
    open().map_err(|e| {
        if is_not_found(&e) {
            let message = format!(
                "layer {layer} lists weight {weight} but the file has no dataset /{layer}/{weight}"
            );
            ConvertError::layout(path, message)
        } else {
            hdf5_error(path, e)
        }
    })
}

/// Reads a float dataset of `len` values as f32.
fn read_tensor(
    root: &Group,
    weight: Weight,
    len: usize,
    path: &Path,
) -> Result<Vec<f32>, ConvertError> {
    let dataset = open_dataset(root, weight.layer, weight.label(), path)?;
    let h5 = |e| hdf5_error(path, e);
    match dataset.dtype() {
        Datatype::FloatingPoint { size: 4, .. } => {
            let mut data = vec![0f32; len];
            dataset.read_into(&mut data).map_err(h5)?;
            Ok(data)
        }
        Datatype::FloatingPoint { size: 8, .. } => {
            let mut data = vec![0f64; len];
            dataset.read_into(&mut data).map_err(h5)?;
            Ok(data.into_iter().map(|x| x as f32).collect())
        }
        Datatype::FloatingPoint { size: 2, .. } => {
            let bytes = dataset.read_native_bytes().map_err(h5)?;
            if bytes.len() != 2 * len {
                let message = format!(
                    "{} holds {} bytes of float16, {len} values expected",
                    weight.label(),
                    bytes.len()
                );
                return Err(ConvertError::layout(path, message));
            }
            Ok(bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_ne_bytes([b[0], b[1]]).to_f32())
                .collect())
        }
        other => Err(ConvertError::layout(
            path,
            format!(
                "{} has type {other:?}: only float weights are supported",
                weight.label()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(name: &str, shape: &[usize]) -> WeightEntry {
        WeightEntry {
            name: name.into(),
            shape: shape.to_vec(),
        }
    }

    fn layer(name: &str, weights: Vec<WeightEntry>) -> LayerEntry {
        LayerEntry {
            name: name.into(),
            weights,
        }
    }

    /// The layer list of an original checkpoint: blocks (name, kernel shape, bias shape),
    /// relu → LayerNorm, pools after `pools`, then the readout.
    fn original_layers(
        blocks: &[(&str, Vec<usize>, Vec<usize>)],
        pools: &[usize],
        readout: [usize; 2],
    ) -> Vec<LayerEntry> {
        let mut layers = vec![layer("input_1", vec![])];
        let mut pool_count = 0;
        for (l, (name, kernel, bias)) in blocks.iter().enumerate() {
            let filters = *kernel.last().unwrap();
            layers.push(layer(
                name,
                vec![
                    weight(&format!("{name}/kernel:0"), kernel),
                    weight(&format!("{name}/bias:0"), bias),
                ],
            ));
            layers.push(layer(&format!("relu_Layer_{l}_Time_0"), vec![]));
            let norm = format!("LayerNorm_Layer_{l}_Time_0");
            layers.push(layer(
                &norm,
                vec![
                    weight(&format!("{norm}/gamma:0"), &[filters]),
                    weight(&format!("{norm}/beta:0"), &[filters]),
                ],
            ));
            if pools.contains(&l) {
                // Keras names unnamed layers max_pooling2d, max_pooling2d_1, …
                let pool = match pool_count {
                    0 => "max_pooling2d".to_string(),
                    n => format!("max_pooling2d_{n}"),
                };
                pool_count += 1;
                layers.push(layer(&pool, vec![]));
            }
        }
        layers.push(layer("flatten", vec![]));
        layers.push(layer(
            "ReadoutDense",
            vec![
                weight("ReadoutDense/kernel:0", &readout),
                weight("ReadoutDense/bias:0", &readout[1..]),
            ],
        ));
        layers.push(layer("output_time_0", vec![]));
        layers
    }

    const PAPER: [(usize, usize); 6] = [(64, 7), (81, 3), (81, 3), (256, 3), (256, 3), (2500, 3)];

    fn paper_conv_layers() -> Vec<LayerEntry> {
        let mut channels = 3;
        let blocks: Vec<_> = PAPER
            .iter()
            .enumerate()
            .map(|(l, &(f, k))| {
                let kernel = vec![k, k, channels, f];
                channels = f;
                (format!("conv_{l}"), kernel, vec![f])
            })
            .collect();
        let blocks: Vec<_> = blocks
            .iter()
            .map(|(n, k, b)| (n.as_str(), k.clone(), b.clone()))
            .collect();
        original_layers(&blocks, &[0, 2, 4], [2500, 565])
    }

    fn paper_alltnn_layers() -> Vec<LayerEntry> {
        let spec = ModelSpec::paper_alltnn();
        let geometry = spec.geometry().unwrap();
        let names: Vec<String> = (0..6).map(|l| format!("sheet_{l}")).collect();
        let blocks: Vec<_> = geometry
            .iter()
            .zip(&names)
            .map(|(g, name)| {
                let f = g.output[2];
                (
                    name.as_str(),
                    vec![g.positions(), g.patch, f],
                    vec![g.output[0], g.output[1], f],
                )
            })
            .collect();
        original_layers(&blocks, &[0, 2, 4], [2500, 565])
    }

    fn infer(layers: &[LayerEntry], image_size: u32) -> Result<ModelSpec, String> {
        let plan = Plan::from_layers(layers)?;
        let options = ImportOptions {
            image_size: Some(image_size),
            ..Default::default()
        };
        let spec = infer_spec(&plan, &options)?;
        bind(&plan, &spec)?;
        Ok(spec)
    }

    #[test]
    fn paper_alltnn_is_inferred_from_its_shapes() {
        assert_eq!(
            infer(&paper_alltnn_layers(), 150).unwrap(),
            ModelSpec::paper_alltnn()
        );
    }

    #[test]
    fn paper_cnn_strides_are_ambiguous_from_shapes_alone() {
        // Conv kernels do not depend on the stride: ten stride assignments take a 150x150
        // input to the 1x1x2500 the readout expects (stride choices for a 1x1 output count
        // once), the paper's [3, 1, 1, 1, 1, 1] among them.
        let err = infer(&paper_conv_layers(), 150).unwrap_err();
        assert!(
            err.starts_with("ambiguous strides: 10 stride assignments fit image size 150"),
            "{err}"
        );
        assert!(err.contains("--strides S,S,... or --spec FILE"), "{err}");
        let paper = ImportOptions {
            image_size: Some(150),
            strides: Some(vec![3, 1, 1, 1, 1, 1]),
            ..ImportOptions::default()
        };
        let layers = paper_conv_layers();
        let plan = Plan::from_layers(&layers).unwrap();
        assert_eq!(infer_spec(&plan, &paper).unwrap(), ModelSpec::paper_cnn());
        let wrong = ImportOptions {
            strides: Some(vec![2, 1, 1, 1, 1, 1]),
            ..paper
        };
        let err = infer_spec(&plan, &wrong).unwrap_err();
        assert!(
            err.starts_with("strides [2, 1, 1, 1, 1, 1] do not fit image size 150"),
            "{err}"
        );
        let layers = paper_conv_layers();
        let plan = Plan::from_layers(&layers).unwrap();
        let shapes = block_shapes(&plan).unwrap();
        let mut search = StrideSearch {
            blocks: &shapes,
            readout_label: "ReadoutDense/kernel:0",
            readout_inputs: 2500,
            found: Vec::new(),
            failure: (0, String::new()),
        };
        search.visit(0, 150, &mut Vec::new());
        assert_eq!(
            search.found,
            [
                [1, 1, 1, 1, 3, 3],
                [1, 1, 1, 2, 2, 1],
                [1, 1, 1, 3, 1, 2],
                [1, 1, 2, 1, 2, 1],
                [1, 1, 2, 2, 1, 1],
                [1, 1, 3, 1, 1, 1],
                [1, 2, 1, 1, 2, 1],
                [1, 3, 1, 1, 1, 1],
                [2, 1, 1, 1, 2, 1],
                [3, 1, 1, 1, 1, 1],
            ]
        );
    }

    #[test]
    fn paper_cnn_with_its_spec_binds_every_tensor() {
        let layers = paper_conv_layers();
        let plan = Plan::from_layers(&layers).unwrap();
        let spec = ModelSpec::paper_cnn();
        check_against_spec(&plan, &spec, Some(150)).unwrap();
        let bound = bind(&plan, &spec).unwrap();
        assert_eq!(bound.len(), spec.tensors().unwrap().len());
        assert_eq!(bound[0].1.label(), "conv_0/kernel:0");
    }

    #[test]
    fn a_mismatched_spec_names_the_tensor_and_both_shapes() {
        let layers = paper_alltnn_layers();
        let plan = Plan::from_layers(&layers).unwrap();
        let mut spec = ModelSpec::paper_alltnn();
        spec.layers[3].filters = 200;
        let err = bind(&plan, &spec).unwrap_err();
        assert_eq!(
            err,
            "sheet_3/kernel:0 has shape [64, 729, 256], but the spec requires layer3.kernel \
             with shape [64, 729, 200]"
        );
        let mut spec = ModelSpec::paper_alltnn();
        spec.layers[1].norm = Norm::BatchNorm(NormParams::default());
        let err = check_against_spec(&plan, &spec, None).unwrap_err();
        assert_eq!(
            err,
            "block sheet_1 has norm LayerNorm, but the spec's layer 1 has BatchNorm"
        );
    }

    #[test]
    fn a_wrong_image_size_names_the_inconsistent_layer() {
        let err = infer(&paper_alltnn_layers(), 160).unwrap_err();
        assert_eq!(
            err,
            "no stride assignment fits image size 160: sheet_0 is inconsistent: no stride takes \
             its 160x160 input through kernel 7 to the 48x48 output its weights hold"
        );
    }

    #[test]
    fn a_patch_length_that_does_not_fit_the_channels_is_refused() {
        let mut layers = paper_alltnn_layers();
        let sheet_2 = layers.iter_mut().find(|l| l.name == "sheet_2").unwrap();
        sheet_2.weights[0].shape = vec![400, 700, 81];
        let err = infer(&layers, 150).unwrap_err();
        assert_eq!(
            err,
            "sheet_2/kernel:0 has shape [400, 700, 81] but sheet_1 has 81 filters: expected a \
             patch length of k*k*81"
        );
    }

    #[test]
    fn norm_first_center_scale_batch_norm_and_activations_come_from_the_names() {
        let layers = vec![
            layer(
                "sheet_0",
                vec![
                    weight("sheet_0/kernel:0", &[4, 27, 4]),
                    weight("sheet_0/bias:0", &[2, 2, 4]),
                ],
            ),
            layer(
                "BatchNorm_Layer_0_Time_0",
                vec![
                    weight("BatchNorm_Layer_0_Time_0/beta:0", &[4]),
                    weight("BatchNorm_Layer_0_Time_0/moving_mean:0", &[4]),
                    weight("BatchNorm_Layer_0_Time_0/moving_variance:0", &[4]),
                ],
            ),
            layer("linear_Layer_0_Time_0", vec![]),
            layer("dropout", vec![]),
            layer("flatten_1", vec![]),
            layer(
                "ReadoutDense",
                vec![weight("ReadoutDense/kernel:0", &[16, 3])],
            ),
            layer("top_level_model_weights", vec![weight("Variable:0", &[])]),
        ];
        let spec = infer(&layers, 5).unwrap();
        let l = &spec.layers[0];
        assert_eq!((l.kernel, l.stride, l.filters), (3, 2, 4));
        assert_eq!(l.activation, Activation::Linear);
        assert!(l.norm_first);
        assert_eq!(
            l.norm,
            Norm::BatchNorm(NormParams {
                epsilon: 1e-3,
                center: true,
                scale: false
            })
        );
        assert_eq!(
            spec.readout,
            ReadoutSpec {
                classes: 3,
                bias: false
            }
        );
    }

    #[test]
    fn unsupported_and_misplaced_layers_are_named() {
        let base = paper_alltnn_layers();
        let with = |i: usize, extra: LayerEntry| {
            let mut layers = base.clone();
            layers.insert(i, extra);
            Plan::from_layers(&layers).map(|_| ()).unwrap_err()
        };
        let gn = layer(
            "GroupNorm_Layer_0_Time_0",
            vec![weight("GroupNorm_Layer_0_Time_0/gamma:0", &[64])],
        );
        assert_eq!(
            with(3, gn),
            "unsupported layer GroupNorm_Layer_0_Time_0: only LayerNorm and BatchNorm are supported"
        );
        assert_eq!(
            with(3, layer("gelu_Layer_0_Time_0", vec![])),
            "unsupported activation layer gelu_Layer_0_Time_0: only relu and linear are supported"
        );
        assert_eq!(
            with(
                3,
                layer("ssml_0", vec![weight("ssml_0/mask:0", &[24, 24, 64])])
            ),
            "unsupported layer ssml_0 with weights [\"ssml_0/mask:0\"]"
        );
        assert_eq!(
            with(1, layer("rescaling", vec![])),
            "unsupported layer rescaling"
        );
        let mut layers = base.clone();
        layers.retain(|l| l.name != "sheet_1");
        assert_eq!(
            Plan::from_layers(&layers).map(|_| ()).unwrap_err(),
            "missing layer sheet_1 (relu_Layer_1_Time_0 refers to it)"
        );
        layers.retain(|l| !l.name.contains("_Layer_1_"));
        assert_eq!(
            Plan::from_layers(&layers).map(|_| ()).unwrap_err(),
            "missing layer sheet_1 (found sheet_2)"
        );
        let mut layers = base.clone();
        layers.retain(|l| l.name != "ReadoutDense");
        assert_eq!(
            Plan::from_layers(&layers).map(|_| ()).unwrap_err(),
            "missing readout layer ReadoutDense"
        );
    }

    #[test]
    fn image_size_is_required_to_infer() {
        let layers = paper_alltnn_layers();
        let plan = Plan::from_layers(&layers).unwrap();
        let err = infer_spec(&plan, &ImportOptions::default()).unwrap_err();
        assert!(
            err.contains("pass --image-size N (or --spec FILE)"),
            "{err}"
        );
    }
}
