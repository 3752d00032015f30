//! ONNX export run in onnxruntime (the library of the `onnxruntime` Python package, or
//! `$ORT_DYLIB_PATH`): the same checks as in tract, against the Keras fixtures and the runtime.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use alltnn_converter::onnx;
use common::*;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

/// `$ORT_DYLIB_PATH`, else `libonnxruntime.so*` of the installed `onnxruntime` package. Missing
/// onnxruntime fails the test: it is what the export is checked against.
fn library() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let find = "import importlib.util as u; \
                print(u.find_spec('onnxruntime').submodule_search_locations[0])";
    let out = Command::new("python3").args(["-c", find]).output();
    let capi = match out {
        Ok(out) if out.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("capi")
        }
        _ => panic!("onnxruntime not found: pip install -r requirements-test.txt"),
    };
    std::fs::read_dir(&capi)
        .unwrap_or_else(|e| panic!("{}: {e}", capi.display()))
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("libonnxruntime.so"))
        .unwrap_or_else(|| panic!("{}: no libonnxruntime.so*", capi.display()))
}

fn environment() -> &'static Environment {
    static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| ort::init_from(library()).unwrap().build().unwrap())
}

fn session(bytes: &[u8]) -> Session {
    Session::builder(environment())
        .unwrap()
        .with_intra_threads(2)
        .unwrap()
        .commit_from_memory(bytes)
        .unwrap()
}

/// Runs the ONNX `bytes` in onnxruntime on NHWC `input` of the given shape; returns every
/// output.
fn run_ort(bytes: &[u8], shape: &[usize], input: &[f32]) -> Outputs {
    let mut session = session(bytes);
    let input = TensorRef::from_array_view((shape.to_vec(), input)).unwrap();
    let outputs = session.run(ort::inputs!["input" => input]).unwrap();
    outputs
        .values()
        .map(|value| {
            let (shape, data) = value.try_extract_tensor::<f32>().unwrap();
            (shape.iter().map(|&d| d as usize).collect(), data.to_vec())
        })
        .collect()
}

#[test]
fn tiny_alltnn_matches_the_keras_reference() {
    check_fixture("tiny-alltnn", run_ort);
}

#[test]
fn tiny_cnn_matches_the_keras_reference() {
    check_fixture("tiny-cnn", run_ort);
}

#[test]
fn other_block_variants_match_the_runtime() {
    check_block_variants(run_ort);
}

/// The paper's All-TNN with made-up weights: exports, runs at batch 1 in onnxruntime, and sums
/// to one. Prints the time of one run. Ignored by default: the model file alone is 434 MB.
#[test]
#[ignore]
fn paper_alltnn_runs_in_ort() {
    let bytes = onnx::export(&paper_alltnn(), false).unwrap();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut session = Session::builder(environment())
        .unwrap()
        .with_intra_threads(threads)
        .unwrap()
        .commit_from_memory(&bytes)
        .unwrap();
    let input = paper_input();
    let mut run = || {
        let input = TensorRef::from_array_view(([1usize, 150, 150, 3], &input[..])).unwrap();
        let outputs = session.run(ort::inputs!["input" => input]).unwrap();
        outputs["probs"]
            .try_extract_tensor::<f32>()
            .unwrap()
            .1
            .iter()
            .sum::<f32>()
    };
    run();
    let runs = 5;
    let start = std::time::Instant::now();
    let mut total = 0f32;
    for _ in 0..runs {
        total = run();
    }
    println!(
        "paper All-TNN in onnxruntime ({threads} threads), batch 1: {:.1} ms per image ({} MB of \
         ONNX)",
        start.elapsed().as_secs_f64() * 1e3 / runs as f64,
        bytes.len() / 1_000_000
    );
    assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");
}
