//! `alltnn spatial-loss`: the per-layer spatial distances of a model, all four variants, and
//! the paper's smoothness 1 / Σ_l distance_l, as JSON.

use std::path::PathBuf;

use alltnn_converter::ImportedModel;
use alltnn_runtime::spec::LayerKind;
use alltnn_trainer::spatial_loss::{
    conv_layer_distance_f64, layer_distance_f64, Neighbours, SpatialConfig,
};
use anyhow::Result;
use serde_json::{json, Map, Value};

use crate::weights::{self, LoadOptions};

/// Print per-layer spatial distances (4/8 neighbours, circular/open) as JSON.
#[derive(clap::Args)]
pub struct Args {
    /// `.h5` checkpoint or model directory, `.tnn`, or training checkpoint.
    model: PathBuf,
    /// Input size, for an `.h5` without `--spec`.
    #[arg(long)]
    image_size: Option<u32>,
    /// JSON spec or preset, for an `.h5`.
    #[arg(long)]
    spec: Option<String>,
    /// Conv strides, for an `.h5` whose shapes fit several.
    #[arg(long, value_delimiter = ',')]
    strides: Option<Vec<u32>>,
}

const VARIANTS: [(&str, Neighbours, bool); 4] = [
    ("4_circular", Neighbours::Four, true),
    ("4_open", Neighbours::Four, false),
    ("8_circular", Neighbours::Eight, true),
    ("8_open", Neighbours::Eight, false),
];

pub fn run(args: Args) -> Result<()> {
    let options = LoadOptions {
        image_size: args.image_size,
        spec: args.spec.as_deref().map(weights::spec).transpose()?,
        strides: args.strides,
        ..LoadOptions::default()
    };
    let model = weights::load(&args.model, &options)?;
    let mut out = report(&model);
    out["model"] = json!(args.model);
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Per-layer distances of every variant and the smoothness 1 / Σ_l distance_l. Conv layers
/// are measured as the locally connected layer that repeats their kernel at every position,
/// which is how the paper puts its CNN control on the same scale.
pub fn report(model: &ImportedModel) -> Value {
    let geometry = model.spec.geometry().expect("imported specs are valid");
    let mut layers = Vec::new();
    let mut sums = [0.0f64; 4];
    for (l, (layer, g)) in model.spec.layers.iter().zip(&geometry).enumerate() {
        let kernel = &model
            .tensor(&format!("layer{l}.kernel"))
            .expect("import yields every tensor")
            .data;
        let bias = model
            .tensor(&format!("layer{l}.bias"))
            .map(|t| t.data.as_slice());
        let mut row = Map::new();
        row.insert("layer".into(), json!(l));
        row.insert("kind".into(), json!(layer.kind));
        for (i, (name, neighbours, circular)) in VARIANTS.iter().enumerate() {
            let config = SpatialConfig {
                neighbours: *neighbours,
                circular: *circular,
                include_bias: true,
            };
            let [h, w, filters] = g.output;
            let distance = match layer.kind {
                LayerKind::LocallyConnected => layer_distance_f64,
                LayerKind::Conv => conv_layer_distance_f64,
            };
            let d = distance(kernel, bias, h, w, g.patch, filters, config);
            sums[i] += d;
            row.insert((*name).into(), json!(d));
        }
        layers.push(Value::Object(row));
    }
    let smoothness: Map<String, Value> = VARIANTS
        .iter()
        .zip(sums)
        .map(|((name, _, _), s)| {
            (
                (*name).to_string(),
                json!(if s > 0.0 { 1.0 / s } else { f64::INFINITY }),
            )
        })
        .collect();
    json!({
        "definition": "distance = (1 - mean neighbour cosine)/2 of L2-normalised [incoming weights, bias] on the cortical sheet (conv layers: their kernel repeated at every position); smoothness = 1 / sum over layers",
        "layers": layers,
        "smoothness": smoothness,
    })
}
