//! `alltnn infer --engine tract|ort`: the ONNX export of a `.tnn` file (made in memory) and a
//! `.onnx` file from `alltnn convert` reproduce the Keras fixtures' probabilities and post-ReLU
//! activations within max|Δ| ≤ 1e-4 · max|ref| and their predictions, in the same output files
//! as the native engine; misuse fails with one clear line.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// Converts fixture `name` to `model.tnn` and `model.onnx` (with activations) in `dir`.
fn convert(name: &str, dir: &Path) -> [PathBuf; 2] {
    [
        ("model.tnn", &[][..]),
        ("model.onnx", &["--activations"][..]),
    ]
    .map(|(file, extra)| {
        let model = dir.join(file);
        convert_fixture_to(name, &model, extra);
        model
    })
}

/// Every engine and model form reproduces fixture `name`.
fn parity(name: &str) {
    let fixture = fixtures().join(name);
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("reference.json")).unwrap())
            .unwrap();
    let expected: Vec<u64> = reference["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let layers = reference["layers"].as_array().unwrap().len();
    let tmp = tempfile::tempdir().unwrap();
    for model in convert(name, tmp.path()) {
        for engine in ["tract", "ort"] {
            let form = model.extension().unwrap().to_string_lossy().into_owned();
            let what = format!("{name} {engine} from .{form}");
            let out = tmp.path().join(format!("{engine}-{form}"));
            // Batch 4 over 6 stimuli: a full and a partial batch.
            alltnn_ok(&[
                &"infer",
                &model,
                &fixture.join("input.npy"),
                &"--engine",
                &engine,
                &"--out",
                &out,
                &"--activations",
                &"--batch",
                &"4",
            ]);
            let mut files = vec!["predictions.csv".to_string(), "probs.npy".to_string()];
            files.extend((0..layers).map(|l| format!("relu_{l}.npy")));
            files.sort();
            assert_eq!(files_in(&out), files, "{what}: files");
            for file in &files[1..] {
                assert_close(
                    &read_npy_f32(&out.join(file)),
                    &read_npy_f32(&fixture.join(file)),
                    1e-4,
                    &format!("{what} {file}"),
                );
            }
            let csv = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
            let top1: Vec<u64> = csv
                .lines()
                .skip(1)
                .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
                .collect();
            assert_eq!(top1, expected, "{what}: predictions");
        }
    }
}

#[test]
fn tiny_alltnn_matches_keras_in_tract_and_ort() {
    parity("tiny-alltnn");
}

#[test]
fn tiny_cnn_matches_keras_in_tract_and_ort() {
    parity("tiny-cnn");
}

#[test]
fn misuse_fails_with_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = fixtures().join("tiny-cnn");
    let input = fixture.join("input.npy");
    let [_, onnx] = convert("tiny-cnn", tmp.path());

    let err = alltnn_err(&[&"infer", &onnx, &input]);
    assert!(
        err.contains("model.onnx") && err.contains("native") && err.contains("--engine"),
        "{err}"
    );

    let missing = tmp.path().join("nowhere/libonnxruntime.so.1");
    let out = Command::new(env!("CARGO_BIN_EXE_alltnn"))
        .arg("infer")
        .args([&onnx, &input])
        .args(["--engine", "ort"])
        .env("ORT_DYLIB_PATH", &missing)
        .output()
        .unwrap();
    let err = clean_failure(out);
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("pip install onnxruntime"),
        "{err}"
    );

    let plain = tmp.path().join("plain.onnx");
    alltnn_ok(&[
        &"convert",
        &fixture.join("weights.h5"),
        &"--image-size",
        &"48",
        &"--strides",
        &"2,1,1,1",
        &"-o",
        &plain,
    ]);
    let out = tmp.path().join("out");
    let err = alltnn_err(&[
        &"infer",
        &plain,
        &input,
        &"--engine",
        &"tract",
        &"--out",
        &out,
        &"--activations",
    ]);
    assert!(
        err.contains("plain.onnx") && err.contains("relu_0") && err.contains("--activations"),
        "{err}"
    );
    assert!(files_in(&out).is_empty(), "{:?}", files_in(&out));
}
