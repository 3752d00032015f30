//! The spatial loss against the distances Keras' reference code computed for the tiny All-TNN
//! fixture weights (`reference.json` `spatial_distance`, `train_step.json`
//! `loss_before_step.distances`), in both the candle and the plain f64 implementation.

use std::path::PathBuf;

use alltnn_converter::keras::{import_h5, ImportOptions};
use alltnn_converter::ImportedModel;
use alltnn_trainer::model::TnnModel;
use alltnn_trainer::spatial_loss::{layer_distance_f64, Neighbours, SpatialConfig, SpatialLoss};
use candle_core::Device;
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    let dir = std::env::var_os("ALLTNN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/fixtures/keras"
            ))
        });
    assert!(
        dir.join("tiny-alltnn/weights.h5").is_file(),
        "Keras fixtures not found in {}: set ALLTNN_FIXTURES to the fixtures/keras folder",
        dir.display()
    );
    dir.join("tiny-alltnn")
}

fn json(name: &str) -> Value {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn imported() -> ImportedModel {
    let options = ImportOptions {
        image_size: Some(48),
        ..Default::default()
    };
    import_h5(&fixture_dir().join("weights.h5"), &options).expect("import the Keras weights")
}

fn model(imported: &ImportedModel) -> TnnModel {
    let tensors: Vec<_> = imported
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone(), t.data.clone()))
        .collect();
    TnnModel::from_tensors(&imported.spec, &tensors, &Device::Cpu).expect("model")
}

fn config(variant: &str) -> SpatialConfig {
    let (neighbours, circular) = match variant {
        "4_circular" => (Neighbours::Four, true),
        "4_open" => (Neighbours::Four, false),
        "8_circular" => (Neighbours::Eight, true),
        "8_open" => (Neighbours::Eight, false),
        other => panic!("unknown variant {other}"),
    };
    SpatialConfig {
        neighbours,
        circular,
        include_bias: true,
    }
}

/// The candle distances of every layer, as f64.
fn candle_distances(model: &TnnModel, config: SpatialConfig) -> Vec<f64> {
    let loss = SpatialLoss::new(model.spec(), config, &Device::Cpu).expect("spatial loss");
    loss.distances(model)
        .expect("distances")
        .into_iter()
        .map(|d| {
            d.expect("locally connected")
                .to_scalar::<f32>()
                .expect("scalar") as f64
        })
        .collect()
}

/// The f64 distances of every layer, from the raw Keras arrays.
fn f64_distances(imported: &ImportedModel, config: SpatialConfig) -> Vec<f64> {
    let geometry = imported.spec.geometry().expect("geometry");
    let data = |name: String| {
        let t = imported
            .tensors
            .iter()
            .find(|t| t.name == name)
            .expect("tensor");
        t.data.as_slice()
    };
    geometry
        .iter()
        .enumerate()
        .map(|(l, g)| {
            let kernel = data(format!("layer{l}.kernel"));
            let bias = data(format!("layer{l}.bias"));
            let [oh, ow, f] = g.output;
            layer_distance_f64(kernel, Some(bias), oh, ow, g.patch, f, config)
        })
        .collect()
}

fn assert_all_close(what: &str, got: &[f64], want: &[f64], tolerance: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: layer count");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max);
    assert!(worst <= tolerance, "{what}: got {got:?}, want {want:?}");
    worst
}

#[test]
fn distances_match_the_keras_reference_in_all_four_variants() {
    let imported = imported();
    let model = model(&imported);
    let reference = json("reference.json");
    for variant in ["4_circular", "4_open", "8_circular", "8_open"] {
        let want = floats(&reference["spatial_distance"][variant]);
        let config = config(variant);
        let candle = assert_all_close(variant, &candle_distances(&model, config), &want, 1e-5);
        let plain = assert_all_close(variant, &f64_distances(&imported, config), &want, 1e-5);
        // For the record (`cargo test -- --nocapture`).
        eprintln!("{variant}: max |Δ| candle f32 {candle:.2e}, f64 {plain:.2e}");
    }
}

#[test]
fn distances_match_the_keras_training_step() {
    let imported = imported();
    let want = floats(&json("train_step.json")["loss_before_step"]["distances"]);
    let got = candle_distances(&model(&imported), SpatialConfig::default());
    assert_all_close("train_step", &got, &want, 1e-5);
}
