//! Helpers shared by the workspace-level integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Keras reference fixtures (`../shared/fixtures/keras` beside the checkout, or
/// `$ALLTNN_FIXTURES`). Missing fixtures fail the test: they are the reference, not optional.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("ALLTNN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/keras")
        });
    assert!(
        dir.join("tiny-alltnn/weights.h5").is_file(),
        "Keras fixtures not found at {} (set ALLTNN_FIXTURES)",
        dir.display()
    );
    dir
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the `alltnn` binary.
pub fn alltnn(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alltnn"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("run alltnn")
}

/// Runs `alltnn`, asserting success; returns stdout.
pub fn alltnn_ok(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let out = alltnn(args);
    assert!(
        out.status.success(),
        "alltnn failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `alltnn`, asserting a clean failure: exit code 1, one-line error, no panic. Returns
/// the error line.
pub fn alltnn_err(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    clean_failure(alltnn(args))
}

/// Asserts that `out` is a clean failure of `alltnn` (see [`alltnn_err`]); returns the error line.
pub fn clean_failure(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a clean failure, got {:?}: {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line: {stderr}");
    errors[0].to_string()
}

/// Converts the Keras fixture `name` (48×48 input; conv strides 2,1,1,1) into
/// `dir/<name>.tnn`, with any further `convert` arguments (e.g. `--dtype int8`).
pub fn convert_fixture(name: &str, dir: &Path, extra: &[&str]) -> PathBuf {
    let model = dir.join(format!("{name}.tnn"));
    convert_fixture_to(name, &model, extra);
    model
}

/// Converts the Keras fixture `name` as [`convert_fixture`] does, into `output` (`.tnn` or
/// `.onnx`); returns what `convert` printed.
pub fn convert_fixture_to(name: &str, output: &Path, extra: &[&str]) -> String {
    let weights = fixtures().join(name).join("weights.h5");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"convert",
        &weights,
        &"--image-size",
        &"48",
        &"--strides",
        &"2,1,1,1",
        &"-o",
        &output,
    ];
    args.extend(extra.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
    alltnn_ok(&args)
}

pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub fn read_npy_f32(path: &Path) -> Array {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file)).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    Array {
        shape,
        data: npy.into_vec::<f32>().unwrap(),
    }
}

pub fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[usize], data: &[T]) {
    use npyz::WriterBuilder;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::io::BufWriter::new(
            std::fs::File::create(path).unwrap(),
        ))
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// max |got − want| ≤ tol · max |want|, reported with the worst element.
pub fn assert_close(got: &Array, want: &Array, tol: f32, what: &str) -> f32 {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    let scale = want.data.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (worst, delta) = got
        .data
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0f32), |m, (i, d)| if d > m.1 { (i, d) } else { m });
    assert!(
        delta <= tol * scale,
        "{what}: max |Δ| = {delta:e} at {worst} exceeds {tol:e} × {scale}"
    );
    delta / scale.max(f32::MIN_POSITIVE)
}

pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}
