//! The candle model against Keras: the tiny All-TNN and CNN fixtures (`../shared/fixtures/keras`,
//! or `$ALLTNN_FIXTURES`), imported through the converter, must reproduce Keras' post-ReLU and
//! post-LayerNorm activations and output probabilities.

use std::path::{Path, PathBuf};

use alltnn_converter::keras::{import_h5, ImportOptions};
use alltnn_trainer::model::TnnModel;
use candle_core::{Device, Tensor};

fn fixtures() -> PathBuf {
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
    dir
}

/// An f32 `.npy` file as a tensor of its shape.
fn npy(path: &Path) -> Tensor {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = npyz::NpyFile::new(&bytes[..]).expect("npy header");
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let values: Vec<f32> = file.into_vec().expect("f32 npy data");
    Tensor::from_vec(values, shape, &Device::Cpu).expect("tensor")
}

fn load(fixture: &str, options: &ImportOptions) -> TnnModel {
    let imported = import_h5(&fixtures().join(fixture).join("weights.h5"), options)
        .expect("import the Keras weights");
    let tensors: Vec<_> = imported
        .tensors
        .into_iter()
        .map(|t| (t.name, t.shape, t.data))
        .collect();
    TnnModel::from_tensors(&imported.spec, &tensors, &Device::Cpu).expect("model")
}

/// Asserts `max|got − want| ≤ 1e-4 · max|want|` and returns the relative difference.
fn assert_close(what: &str, got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let diff: f32 = (got - want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    let scale: f32 = want.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(
        diff <= 1e-4 * scale,
        "{what}: max |Δ| {diff} vs max |ref| {scale}"
    );
    diff / scale
}

/// Runs the fixture's stimuli and compares every layer and the probabilities.
fn check_fixture(fixture: &str, options: ImportOptions) {
    let dir = fixtures().join(fixture);
    let model = load(fixture, &options);
    let out = model
        .forward(&npy(&dir.join("input.npy")), false)
        .expect("forward");
    let probs = candle_nn::ops::softmax_last_dim(&out.logits).expect("softmax");
    let mut report = vec![format!(
        "probs {:.2e}",
        assert_close("probs", &probs, &npy(&dir.join("probs.npy")))
    )];
    for (l, (act, norm)) in out.activations.iter().zip(&out.normalized).enumerate() {
        let relu = assert_close(
            &format!("relu_{l}"),
            act,
            &npy(&dir.join(format!("relu_{l}.npy"))),
        );
        let norm = norm
            .as_ref()
            .expect("the fixtures have a LayerNorm per layer");
        let norm = assert_close(
            &format!("norm_{l}"),
            norm,
            &npy(&dir.join(format!("norm_{l}.npy"))),
        );
        report.push(format!("relu_{l} {relu:.2e} norm_{l} {norm:.2e}"));
    }
    // Relative max differences, for the record (`cargo test -- --nocapture`).
    eprintln!("{fixture}: {}", report.join(", "));
}

#[test]
fn tiny_alltnn_matches_keras() {
    check_fixture(
        "tiny-alltnn",
        ImportOptions {
            image_size: Some(48),
            ..Default::default()
        },
    );
}

#[test]
fn tiny_cnn_matches_keras() {
    // Conv strides are not stored in Keras weight files and several fit the shapes.
    check_fixture(
        "tiny-cnn",
        ImportOptions {
            image_size: Some(48),
            strides: Some(vec![2, 1, 1, 1]),
            ..Default::default()
        },
    );
}
