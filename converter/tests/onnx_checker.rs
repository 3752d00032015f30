//! Exports pass the reference validator, `onnx.checker.check_model(…, full_check=True)` of the
//! `onnx` Python package (strict checks and shape inference), which tract and onnxruntime do
//! not replace: both accept some invalid graphs.

mod common;

use std::path::Path;
use std::process::Command;

use alltnn_converter::{onnx, ImportedModel};
use common::*;

const CHECK: &str = "import sys, onnx; onnx.checker.check_model(sys.argv[1], full_check=True)";

/// Fails (never skips) without python3 and the `onnx` module: they are the reference here.
fn assert_checker_installed() {
    let found = Command::new("python3")
        .args(["-c", "import onnx"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "python3 with the onnx package is needed: pip install -r requirements-test.txt"
    );
}

fn assert_valid(dir: &Path, name: &str, model: &ImportedModel, activations: bool) {
    let path = dir.join(format!("{name}-{activations}.onnx"));
    std::fs::write(&path, onnx::export(model, activations).unwrap()).unwrap();
    let out = Command::new("python3")
        .args(["-c", CHECK])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} (activations: {activations}) fails onnx.checker: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn exports_pass_onnx_checker() {
    assert_checker_installed();
    let tmp = tempfile::tempdir().unwrap();
    for name in ["tiny-alltnn", "tiny-cnn"] {
        let model = import(&fixture(name));
        for activations in [false, true] {
            assert_valid(tmp.path(), name, &model, activations);
        }
    }
    let variants = block_variants();
    for activations in [false, true] {
        assert_valid(tmp.path(), "block-variants", &variants, activations);
    }
}
