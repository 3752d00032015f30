//! ONNX export: the model as a standard-operator graph (opset 17) that computes what the
//! runtime computes, for onnxruntime, tract and friends.
//!
//! Input `input`: `[N, H, W, C]` float32, preprocessed as the spec says, `N` symbolic.
//! Output `probs` (`logits` for a spec with a linear output): `[N, classes]`; with
//! `activations`, also `relu_<l>`: every layer's activation output `[N, OH, OW, F]` (what
//! `Engine::activation` returns).
//! Metadata `alltnn.spec`: the model spec as JSON, so that a `.onnx` file alone says how to
//! preprocess stimuli and what its outputs are ([`read_spec`]).
//!
//! A locally connected layer has no ONNX operator. It becomes patch extraction with one
//! `Gather` on the flattened image (constant indices `[P, K]`, patch order `(ky, kx, c)` as in
//! Keras) and a batched `MatMul` over positions — tract runs this about 10× faster than
//! slicing every patch out with `Slice`/`Concat`. A conv layer shares the same patch extraction
//! and multiplies by one `[K, F]` kernel.

mod graph;
#[allow(clippy::all, clippy::pedantic, missing_docs)]
mod proto;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use alltnn_runtime::spec::{
    Activation, LayerGeometry, LayerKind, LayerSpec, ModelSpec, Norm, NormParams, OutputActivation,
};
use prost::Message;

use crate::{tnn::temp_path, ConvertError, ImportedModel};
use graph::{attr_float, attr_int, attr_ints, Dim, GraphBuilder};

/// Opset 17 is the first with `LayerNormalization`.
const OPSET: i64 = 17;
/// The IR version that goes with opset 17 (ONNX 1.12).
const IR_VERSION: i64 = 8;
/// Errors of [`export`] concern no file; they carry this in place of a path.
const SOURCE: &str = "ONNX export";
/// Metadata key of the model spec (JSON).
pub const SPEC_KEY: &str = "alltnn.spec";

/// Builds the ONNX graph of `model` and returns the serialized `ModelProto`.
pub fn export(model: &ImportedModel, activations: bool) -> Result<Vec<u8>, ConvertError> {
    let geometry = check_model(model)?;
    let spec = &model.spec;
    let mut g = GraphBuilder::default();
    let [h, w, c] = geometry[0].input;
    g.input("input", &nhwc_dims([h, w, c]));
    let mut x = "input".to_string();
    for (l, (layer, geo)) in spec.layers.iter().zip(&geometry).enumerate() {
        x = block(&mut g, model, l, layer, geo, &x)?;
    }
    readout(&mut g, model, &x)?;
    // After the model output, so that it stays the first output either way.
    if activations {
        for (l, geo) in geometry.iter().enumerate() {
            g.output(&format!("relu_{l}"), &nhwc_dims(geo.output));
        }
    }
    let proto = proto::ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![proto::OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("alltnn".to_string()),
        producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        graph: Some(g.finish("alltnn")),
        metadata_props: vec![proto::StringStringEntryProto {
            key: Some(SPEC_KEY.to_string()),
            value: Some(serde_json::to_string(spec).expect("specs serialize")),
        }],
        ..Default::default()
    };
    Ok(proto.encode_to_vec())
}

/// Exports `model` to `path`, which appears only when complete (temporary file, sync, rename);
/// returns the file size.
pub fn write_onnx(
    path: &Path,
    model: &ImportedModel,
    activations: bool,
) -> Result<u64, ConvertError> {
    let bytes = export(model, activations)?;
    let tmp = temp_path(path);
    let result = (|| -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(ConvertError::io(path, e));
    }
    Ok(bytes.len() as u64)
}

/// Only the metadata of a `ModelProto`: decoding skips the graph and its weights.
#[derive(Clone, PartialEq, prost::Message)]
struct ModelMetadata {
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<proto::StringStringEntryProto>,
}

/// The spec that [`export`] stored in a serialized ONNX model; `path` names it in errors. A
/// model from another exporter has none and is refused.
pub fn read_spec(path: &Path, bytes: &[u8]) -> Result<ModelSpec, ConvertError> {
    let metadata = ModelMetadata::decode(bytes)
        .map_err(|e| ConvertError::layout(path, format!("not a readable ONNX model ({e})")))?;
    let json = metadata
        .metadata_props
        .iter()
        .find(|p| p.key.as_deref() == Some(SPEC_KEY))
        .and_then(|p| p.value.as_deref())
        .ok_or_else(|| {
            let message = format!("no `{SPEC_KEY}` metadata: not written by `alltnn convert`");
            ConvertError::layout(path, message)
        })?;
    serde_json::from_str(json)
        .map_err(|e| ConvertError::layout(path, format!("invalid `{SPEC_KEY}` metadata: {e}")))
}

fn error(message: impl Into<String>) -> ConvertError {
    ConvertError::layout(PathBuf::from(SOURCE), message)
}

/// The spec must be consistent and every tensor it requires present with its shape: the graph
/// would otherwise be built from wrong-sized constants and fail (or mislead) only when run.
fn check_model(model: &ImportedModel) -> Result<Vec<LayerGeometry>, ConvertError> {
    let spec = &model.spec;
    if spec.layers.is_empty() {
        return Err(error("the model has no layers"));
    }
    let geometry = spec
        .geometry()
        .map_err(|e| error(format!("inconsistent spec: {e}")))?;
    let required = spec
        .tensors()
        .map_err(|e| error(format!("inconsistent spec: {e}")))?;
    for t in &required {
        let name = t.name();
        let found = model
            .tensor(&name)
            .ok_or_else(|| error(format!("tensor {name} is missing")))?;
        if found.shape != t.shape || found.data.len() != t.len() {
            return Err(error(format!(
                "tensor {name} has shape {:?} ({} values), the spec needs {:?}",
                found.shape,
                found.data.len(),
                t.shape
            )));
        }
    }
    Ok(geometry)
}

/// Values of a tensor that [`check_model`] has already found with the right shape.
fn weights<'m>(model: &'m ImportedModel, name: &str) -> Result<&'m [f32], ConvertError> {
    model
        .tensor(name)
        .map(|t| t.data.as_slice())
        .ok_or_else(|| error(format!("tensor {name} is missing")))
}

fn nhwc_dims([h, w, c]: [usize; 3]) -> [Dim; 4] {
    [Dim::Batch, Dim::Fixed(h), Dim::Fixed(w), Dim::Fixed(c)]
}

/// One block — layer, activation and norm in the spec's order, then pooling — reading `x`
/// (`[N, H, W, C]`); returns the name of its output.
fn block(
    g: &mut GraphBuilder,
    model: &ImportedModel,
    l: usize,
    layer: &LayerSpec,
    geo: &LayerGeometry,
    x: &str,
) -> Result<String, ConvertError> {
    let y = local_layer(g, model, l, layer, geo, x)?;
    let act_name = format!("relu_{l}");
    let has_norm = layer.norm != Norm::None;
    let out = if layer.norm_first && has_norm {
        let normed = norm(g, model, l, layer.norm, &y)?;
        activation(g, layer.activation, &normed, &act_name);
        act_name.clone()
    } else {
        activation(g, layer.activation, &y, &act_name);
        norm(g, model, l, layer.norm, &act_name)?
    };
    Ok(if layer.pool_after {
        max_pool(g, &out)
    } else {
        out
    })
}

/// The locally connected (or conv) layer with its bias: `[N, H, W, C]` → `[N, OH, OW, F]`.
fn local_layer(
    g: &mut GraphBuilder,
    model: &ImportedModel,
    l: usize,
    layer: &LayerSpec,
    geo: &LayerGeometry,
    x: &str,
) -> Result<String, ConvertError> {
    let (p, k, f) = (geo.positions(), geo.patch, geo.output[2]);
    let flat_shape = g.const_i64(
        &format!("layer{l}.flat_shape"),
        &[2],
        &[-1, geo.input_len() as i64],
    );
    let flat = g.node(
        "Reshape",
        &format!("layer{l}_flat"),
        &[x, &flat_shape],
        vec![],
    );
    let idx = g.const_i64(
        &format!("layer{l}.patch_index"),
        &[p, k],
        &patch_index(layer, geo),
    );
    // [N, P, K]
    let patches = g.node(
        "Gather",
        &format!("layer{l}_patches"),
        &[&flat, &idx],
        vec![attr_int("axis", 1)],
    );
    let kernel = weights(model, &format!("layer{l}.kernel"))?;
    let y = match layer.kind {
        LayerKind::LocallyConnected => {
            // Batched MatMul runs over the leading axis, so positions go first: [P, N, K] ×
            // [P, K, F] → [P, N, F], then back to [N, P, F].
            let w = g.const_f32(&format!("layer{l}.kernel"), &[p, k, f], kernel);
            let swap = vec![attr_ints("perm", &[1, 0, 2])];
            let by_pos = g.node(
                "Transpose",
                &format!("layer{l}_by_position"),
                &[&patches],
                swap.clone(),
            );
            let mm = g.node(
                "MatMul",
                &format!("layer{l}_matmul"),
                &[&by_pos, &w],
                vec![],
            );
            g.node("Transpose", &format!("layer{l}_by_image"), &[&mm], swap)
        }
        LayerKind::Conv => {
            let w = g.const_f32(&format!("layer{l}.kernel"), &[k, f], kernel);
            g.node(
                "MatMul",
                &format!("layer{l}_matmul"),
                &[&patches, &w],
                vec![],
            )
        }
    };
    let y = if layer.bias {
        let bias = weights(model, &format!("layer{l}.bias"))?;
        let dims: &[usize] = match layer.kind {
            LayerKind::LocallyConnected => &[p, f],
            LayerKind::Conv => &[f],
        };
        let b = g.const_f32(&format!("layer{l}.bias"), dims, bias);
        g.node("Add", &format!("layer{l}_biased"), &[&y, &b], vec![])
    } else {
        y
    };
    let [oh, ow, _] = geo.output;
    let out_shape = g.const_i64(
        &format!("layer{l}.out_shape"),
        &[4],
        &[-1, oh as i64, ow as i64, f as i64],
    );
    Ok(g.node(
        "Reshape",
        &format!("layer{l}_out"),
        &[&y, &out_shape],
        vec![],
    ))
}

/// For every output position (row-major) the flat NHWC offsets of its patch, ordered
/// `(ky, kx, c)` like the Keras kernel's middle axis.
fn patch_index(layer: &LayerSpec, geo: &LayerGeometry) -> Vec<i64> {
    let [_, w, c] = geo.input;
    let [oh, ow, _] = geo.output;
    let (k, s) = (layer.kernel as usize, layer.stride as usize);
    let mut idx = Vec::with_capacity(geo.positions() * geo.patch);
    for oy in 0..oh {
        for ox in 0..ow {
            for ky in 0..k {
                for kx in 0..k {
                    let base = ((oy * s + ky) * w + ox * s + kx) * c;
                    idx.extend((base..base + c).map(|i| i as i64));
                }
            }
        }
    }
    idx
}

/// The activation, written to `output` so it can be a graph output under its fixed name.
fn activation(g: &mut GraphBuilder, act: Activation, x: &str, output: &str) {
    let op = match act {
        Activation::Relu => "Relu",
        Activation::Linear => "Identity",
    };
    g.node_to(op, &[x], output, vec![]);
}

/// The norm over channels (the last axis); returns `x` itself without one.
fn norm(
    g: &mut GraphBuilder,
    model: &ImportedModel,
    l: usize,
    norm: Norm,
    x: &str,
) -> Result<String, ConvertError> {
    match norm {
        Norm::None => Ok(x.to_string()),
        Norm::LayerNorm(p) => layer_norm(g, model, l, &p, x),
        Norm::BatchNorm(p) => batch_norm(g, model, l, &p, x),
    }
}

/// Per-channel gamma and beta, with the identity values where the spec has none.
fn gamma_beta(
    model: &ImportedModel,
    l: usize,
    p: &NormParams,
) -> Result<(Vec<f32>, Vec<f32>), ConvertError> {
    let channels = filters(model, l)?;
    let gamma = match p.scale {
        true => weights(model, &format!("layer{l}.norm.gamma"))?.to_vec(),
        false => vec![1.0; channels],
    };
    let beta = match p.center {
        true => weights(model, &format!("layer{l}.norm.beta"))?.to_vec(),
        false => vec![0.0; channels],
    };
    Ok((gamma, beta))
}

/// The layer's number of filters, from its kernel's last axis.
fn filters(model: &ImportedModel, l: usize) -> Result<usize, ConvertError> {
    let name = format!("layer{l}.kernel");
    model
        .tensor(&name)
        .and_then(|t| t.shape.last().copied())
        .ok_or_else(|| error(format!("tensor {name} is missing")))
}

fn layer_norm(
    g: &mut GraphBuilder,
    model: &ImportedModel,
    l: usize,
    p: &NormParams,
    x: &str,
) -> Result<String, ConvertError> {
    let (gamma, beta) = gamma_beta(model, l, p)?;
    let scale = g.const_f32(&format!("layer{l}.norm.gamma"), &[gamma.len()], &gamma);
    let bias = g.const_f32(&format!("layer{l}.norm.beta"), &[beta.len()], &beta);
    let attrs = vec![attr_int("axis", -1), attr_float("epsilon", p.epsilon)];
    Ok(g.node(
        "LayerNormalization",
        &format!("layer{l}_norm"),
        &[x, &scale, &bias],
        attrs,
    ))
}

/// Inference-mode batch norm folded into one per-channel scale and shift:
/// `(x − mean) / √(var + ε) · γ + β = x · s + (β − mean · s)` with `s = γ / √(var + ε)`.
fn batch_norm(
    g: &mut GraphBuilder,
    model: &ImportedModel,
    l: usize,
    p: &NormParams,
    x: &str,
) -> Result<String, ConvertError> {
    let (gamma, beta) = gamma_beta(model, l, p)?;
    let mean = weights(model, &format!("layer{l}.norm.moving_mean"))?;
    let var = weights(model, &format!("layer{l}.norm.moving_variance"))?;
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + p.epsilon).sqrt())
        .collect();
    let shift: Vec<f32> = beta
        .iter()
        .zip(mean.iter().zip(&scale))
        .map(|(b, (m, s))| b - m * s)
        .collect();
    let s = g.const_f32(&format!("layer{l}.norm.scale"), &[scale.len()], &scale);
    let t = g.const_f32(&format!("layer{l}.norm.shift"), &[shift.len()], &shift);
    let scaled = g.node("Mul", &format!("layer{l}_norm_scaled"), &[x, &s], vec![]);
    Ok(g.node("Add", &format!("layer{l}_norm"), &[&scaled, &t], vec![]))
}

/// 2×2 max pool, stride 2, valid padding (odd edges dropped, as Keras does). ONNX `MaxPool`
/// is NCHW only, hence the transposes around it.
fn max_pool(g: &mut GraphBuilder, x: &str) -> String {
    let nchw = g.node(
        "Transpose",
        "to_nchw",
        &[x],
        vec![attr_ints("perm", &[0, 3, 1, 2])],
    );
    let attrs = vec![
        attr_ints("kernel_shape", &[2, 2]),
        attr_ints("strides", &[2, 2]),
    ];
    let pooled = g.node("MaxPool", "pool", &[&nchw], attrs);
    g.node(
        "Transpose",
        "to_nhwc",
        &[&pooled],
        vec![attr_ints("perm", &[0, 2, 3, 1])],
    )
}

/// Flatten (NHWC order, as Keras), dense readout and the output activation.
fn readout(g: &mut GraphBuilder, model: &ImportedModel, x: &str) -> Result<(), ConvertError> {
    let spec = &model.spec;
    let classes = spec.readout.classes as usize;
    let n_in = spec
        .readout_inputs()
        .map_err(|e| error(format!("inconsistent spec: {e}")))?;
    let flat = g.node("Flatten", "flatten", &[x], vec![attr_int("axis", 1)]);
    let w = g.const_f32(
        "readout.kernel",
        &[n_in, classes],
        weights(model, "readout.kernel")?,
    );
    let mut inputs = vec![flat.as_str(), w.as_str()];
    let bias;
    if spec.readout.bias {
        bias = g.const_f32("readout.bias", &[classes], weights(model, "readout.bias")?);
        inputs.push(&bias);
    }
    let dims = [Dim::Batch, Dim::Fixed(classes)];
    match spec.output {
        OutputActivation::Softmax => {
            let logits = g.node("Gemm", "logits", &inputs, vec![]);
            g.node_to("Softmax", &[&logits], "probs", vec![attr_int("axis", -1)]);
            g.output("probs", &dims);
        }
        OutputActivation::Linear => {
            g.node_to("Gemm", &inputs, "logits", vec![]);
            g.output("logits", &dims);
        }
    }
    Ok(())
}
