//! ONNX export run in tract: the Keras fixtures (`../shared/fixtures/keras`, or
//! `$ALLTNN_FIXTURES`) reproduce their reference outputs, other block variants reproduce the
//! runtime, and inconsistent models are refused.

mod common;

use std::path::Path;

use alltnn_converter::onnx;
use common::*;
use tract_onnx::prelude::*;

/// Runs the ONNX `bytes` in tract on NHWC `input` of the given shape; returns every output.
fn run_tract(bytes: &[u8], shape: &[usize], input: &[f32]) -> Outputs {
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = Tensor::from_shape(shape, input).unwrap();
    let outputs = plan.run(tvec!(input.into())).unwrap();
    outputs
        .iter()
        .map(|t| {
            let view = t.to_plain_array_view::<f32>().unwrap();
            (view.shape().to_vec(), view.iter().copied().collect())
        })
        .collect()
}

#[test]
fn tiny_alltnn_matches_the_keras_reference() {
    check_fixture("tiny-alltnn", run_tract);
}

#[test]
fn tiny_cnn_matches_the_keras_reference() {
    check_fixture("tiny-cnn", run_tract);
}

/// BatchNorm, norm before the activation and no norm at all export correctly: the graph
/// reproduces the runtime.
#[test]
fn other_block_variants_match_the_runtime() {
    check_block_variants(run_tract);
}

#[test]
fn inconsistent_models_are_refused() {
    let base = import(&fixture("tiny-cnn"));
    let mut missing = base.clone();
    missing.tensors.retain(|t| t.name != "layer1.bias");
    let err = onnx::export(&missing, false).unwrap_err().to_string();
    assert!(
        err.contains("layer1.bias") && err.contains("missing"),
        "{err}"
    );

    let mut reshaped = base.clone();
    if let Some(t) = reshaped
        .tensors
        .iter_mut()
        .find(|t| t.name == "readout.kernel")
    {
        t.shape.reverse();
    }
    let err = onnx::export(&reshaped, false).unwrap_err().to_string();
    assert!(
        err.contains("readout.kernel") && err.contains("shape"),
        "{err}"
    );

    let mut bad_spec = base;
    bad_spec.spec.layers[0].kernel = 100;
    let err = onnx::export(&bad_spec, false).unwrap_err().to_string();
    assert!(err.contains("inconsistent spec"), "{err}");
}

/// The export carries its spec, which `read_spec` gives back; ONNX from elsewhere (here: not
/// ONNX at all, and an empty model) is refused with the file's name.
#[test]
fn the_spec_travels_in_the_metadata() {
    let model = block_variants();
    let path = Path::new("m.onnx");
    let bytes = onnx::export(&model, false).unwrap();
    assert_eq!(onnx::read_spec(path, &bytes).unwrap(), model.spec);

    let err = onnx::read_spec(path, &[0xff; 16]).unwrap_err().to_string();
    assert!(
        err.contains("m.onnx") && err.contains("not a readable ONNX"),
        "{err}"
    );
    let err = onnx::read_spec(path, &[]).unwrap_err().to_string();
    assert!(
        err.contains("m.onnx") && err.contains(onnx::SPEC_KEY),
        "{err}"
    );
}

/// The paper's All-TNN with made-up weights: exports, runs at batch 1 in tract, and sums to one.
/// Prints the time of one run. Ignored by default: the model file alone is 434 MB.
#[test]
#[ignore]
fn paper_alltnn_runs_in_tract() {
    let bytes = onnx::export(&paper_alltnn(), false).unwrap();
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = Tensor::from_shape(&[1, 150, 150, 3], &paper_input()).unwrap();
    plan.run(tvec!(input.clone().into())).unwrap();
    let runs = 5;
    let start = std::time::Instant::now();
    let mut total = 0f32;
    for _ in 0..runs {
        let out = plan.run(tvec!(input.clone().into())).unwrap();
        total = out[0].to_plain_array_view::<f32>().unwrap().sum();
    }
    println!(
        "paper All-TNN in tract, batch 1: {:.1} ms per image ({} MB of ONNX)",
        start.elapsed().as_secs_f64() * 1e3 / runs as f64,
        bytes.len() / 1_000_000
    );
    assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");
}
