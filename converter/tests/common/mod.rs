//! What the ONNX export tests share: the Keras fixtures (`../shared/fixtures/keras`, or
//! `$ALLTNN_FIXTURES`), made-up models, the runtime as reference, and the parity check that
//! every engine must pass.
#![allow(dead_code)]

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use alltnn_converter::keras::{import_h5, ImportOptions};
use alltnn_converter::{onnx, ImportedModel, NamedTensor};
use alltnn_runtime::spec::{Norm, NormParams};
use alltnn_runtime::{Engine, FormatError, Model, ModelSpec};

/// Shape and values of each output of a run.
pub type Outputs = Vec<(Vec<usize>, Vec<f32>)>;

pub fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("ALLTNN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/fixtures/keras"
            ))
        });
    let dir = dir.join(name);
    assert!(
        dir.join("weights.h5").is_file(),
        "Keras fixture {} not found: set ALLTNN_FIXTURES to the fixtures/keras folder",
        dir.display()
    );
    dir
}

pub fn import(dir: &Path) -> ImportedModel {
    let options = ImportOptions {
        image_size: Some(48),
        strides: Some(vec![2, 1, 1, 1]),
        ..Default::default()
    };
    import_h5(&dir.join("weights.h5"), &options).unwrap()
}

/// A `.npy` file: shape and values.
pub fn npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(BufReader::new(file)).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec().unwrap())
}

/// The parity criterion: max|Δ| ≤ 1e-4 · max|ref|.
pub fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("{what}: max|Δ| = {diff:e} (max|ref| = {scale:e})");
    assert!(
        diff <= 1e-4 * scale,
        "{what}: max|Δ| = {diff:e} exceeds 1e-4 × {scale:e}"
    );
}

/// The first `rows` of a batch-major array whose rows hold `per_row` values.
fn rows(data: &[f32], per_row: usize, rows: usize) -> &[f32] {
    &data[..per_row * rows]
}

/// Exports a fixture with activations and compares probs and every `relu_<l>` with its
/// reference files, for the whole batch and for one image (the batch is dynamic). `run` runs
/// the ONNX bytes on NHWC input of the given shape and returns every output.
pub fn check_fixture(name: &str, run: impl Fn(&[u8], &[usize], &[f32]) -> Outputs) {
    let dir = fixture(name);
    let model = import(&dir);
    let bytes = onnx::export(&model, true).unwrap();
    let (in_shape, input) = npy(&dir.join("input.npy"));
    let per_image: usize = in_shape[1..].iter().product();
    let layers = model.spec.layers.len();
    for batch in [in_shape[0], 1] {
        let shape = [&[batch][..], &in_shape[1..]].concat();
        let outputs = run(&bytes, &shape, rows(&input, per_image, batch));
        assert_eq!(outputs.len(), 1 + layers, "{name}: outputs");
        let mut references = vec![("probs".to_string(), dir.join("probs.npy"))];
        references
            .extend((0..layers).map(|l| (format!("relu_{l}"), dir.join(format!("relu_{l}.npy")))));
        for ((what, path), (got_shape, got)) in references.iter().zip(&outputs) {
            let (want_shape, want) = npy(path);
            assert_eq!(got_shape[1..], want_shape[1..], "{name} {what}: shape");
            assert_eq!(got_shape[0], batch, "{name} {what}: batch");
            let per_row: usize = want_shape[1..].iter().product();
            assert_close(
                &format!("{name} batch {batch} {what}"),
                got,
                rows(&want, per_row, batch),
            );
        }
    }
}

/// Values in [-1, 1] from a fixed sequence, for weights the fixtures do not have.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Rebuilds the tensor list for `spec`, keeping tensors `model` has and making up the rest
/// (moving variances positive).
fn with_spec(model: &ImportedModel, spec: ModelSpec) -> ImportedModel {
    let tensors = spec
        .tensors()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let name = t.name();
            let data = match model.tensor(&name) {
                Some(found) => found.data.clone(),
                None if name.ends_with("moving_variance") => pseudo_random(t.len(), i as u64)
                    .iter()
                    .map(|v| v.abs() + 0.5)
                    .collect(),
                None => pseudo_random(t.len(), i as u64),
            };
            NamedTensor {
                name,
                shape: t.shape.clone(),
                data,
            }
        })
        .collect();
    ImportedModel { spec, tensors }
}

/// The tiny All-TNN fixture with the block variants the fixtures lack: BatchNorm (with and
/// without centring), norm before the activation, and no norm at all.
pub fn block_variants() -> ImportedModel {
    let base = import(&fixture("tiny-alltnn"));
    let mut spec = base.spec.clone();
    let params = NormParams {
        epsilon: 1e-3,
        center: true,
        scale: true,
    };
    spec.layers[0].norm = Norm::BatchNorm(params);
    spec.layers[1].norm_first = true;
    spec.layers[2].norm = Norm::None;
    spec.layers[3].norm = Norm::BatchNorm(NormParams {
        center: false,
        ..params
    });
    spec.layers[3].norm_first = true;
    with_spec(&base, spec)
}

/// Runs `model` in the runtime: the output and every layer's activation.
pub fn run_runtime(model: &ImportedModel, input: &[f32], batch: usize) -> Vec<Vec<f32>> {
    let runtime = Model::from_tensors(model.spec.clone(), |t| {
        model
            .tensor(&t.name())
            .map(|x| x.data.as_slice())
            .ok_or_else(|| FormatError::MissingTensor(t.name()))
    })
    .unwrap();
    let mut engine = Engine::new(&runtime, batch).unwrap();
    let mut out = vec![engine.run(input).unwrap().to_vec()];
    out.extend((0..model.spec.layers.len()).map(|l| engine.activation(l).to_vec()));
    out
}

/// [`block_variants`] exported with activations reproduces the runtime in the engine that `run`
/// stands for (as in [`check_fixture`]).
pub fn check_block_variants(run: impl Fn(&[u8], &[usize], &[f32]) -> Outputs) {
    let model = block_variants();
    let (shape, input) = npy(&fixture("tiny-alltnn").join("input.npy"));
    let want = run_runtime(&model, &input, shape[0]);
    let got = run(&onnx::export(&model, true).unwrap(), &shape, &input);
    assert_eq!(got.len(), want.len());
    for (i, ((_, got), want)) in got.iter().zip(&want).enumerate() {
        assert_close(&format!("variant output {i}"), got, want);
    }
}

/// The paper's All-TNN with made-up weights (434 MB as ONNX).
pub fn paper_alltnn() -> ImportedModel {
    let spec = ModelSpec::paper_alltnn();
    let tensors = spec
        .tensors()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, t)| NamedTensor {
            name: t.name(),
            shape: t.shape.clone(),
            data: pseudo_random(t.len(), i as u64)
                .iter()
                .map(|v| v * 0.05)
                .collect(),
        })
        .collect();
    ImportedModel { spec, tensors }
}

/// One paper-size input image, preprocessed.
pub fn paper_input() -> Vec<f32> {
    pseudo_random(150 * 150 * 3, 7)
}
