//! f16 and int8 `.tnn` models (`alltnn convert --dtype`): size, and closeness to f32.
//!
//! On the Keras fixtures (through the CLI): f16 reproduces TensorFlow's activations and
//! probabilities within 1e-3 · max|ref|; int8 keeps every layer's activations at cosine
//! similarity ≥ 0.99 to TensorFlow's per stimulus and the reference predictions, with f32
//! activations and with int8 ones (`--engine native-a8`). The paper-size check (`--ignored`, run
//! in release) builds the paper's All-TNN with Glorot-uniform weights, stores it as f32 and int8,
//! and compares both on 200 stimuli, int8 with f32 and with int8 activations.

mod support;

use std::path::Path;

use alltnn_converter::{tnn, ImportedModel, NamedTensor};
use alltnn_runtime::engine::{Engine, Model};
use alltnn_runtime::format::{AlignedBytes, DType, TnnFile};
use alltnn_runtime::spec::{ModelSpec, TensorRole};
use support::*;

/// Cosine similarity of two equally long vectors (1 for two zero vectors).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else {
        ab / (aa.sqrt() * bb.sqrt()).max(f64::MIN_POSITIVE)
    }
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |m, (i, &v)| if v > m.1 { (i, v) } else { m },
        )
        .0
}

/// The smallest per-stimulus cosine similarity between two `stimuli × …` arrays.
fn min_cosine(got: &Array, want: &Array) -> f64 {
    assert_eq!(got.shape, want.shape);
    let per = want.data.len() / want.shape[0];
    got.data
        .chunks(per)
        .zip(want.data.chunks(per))
        .map(|(a, b)| cosine(a, b))
        .fold(f64::INFINITY, f64::min)
}

fn fixture_models(name: &str, dir: &Path) -> Vec<(String, u64)> {
    ["f32", "f16", "int8"]
        .into_iter()
        .map(|dtype| {
            let model = dir.join(format!("{dtype}.tnn"));
            let said = convert_fixture_to(name, &model, &["--dtype", dtype]);
            assert!(said.contains(&format!("kernels {dtype}")), "{said}");
            let info = alltnn_ok(&[&"info", &model]);
            assert!(info.contains(&format!("kernels {dtype}")), "{info}");
            (dtype.to_string(), std::fs::metadata(&model).unwrap().len())
        })
        .collect()
}

fn fixture_check(name: &str) {
    let fixture = fixtures().join(name);
    let tmp = tempfile::tempdir().unwrap();
    let sizes = fixture_models(name, tmp.path());
    eprintln!("{name} sizes: {sizes:?}");
    // Kernels dominate: f16 halves and int8 quarters the file, give or take the f32 rest.
    let size = |d: &str| sizes.iter().find(|s| s.0 == d).unwrap().1 as f64;
    assert!(size("f16") < 0.6 * size("f32") && size("int8") < 0.4 * size("f32"));

    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("reference.json")).unwrap())
            .unwrap();
    let layers = reference["layers"].as_array().unwrap().len();
    for (dtype, engine) in [("f16", "native"), ("int8", "native"), ("int8", "native-a8")] {
        let out = tmp.path().join(format!("out-{dtype}-{engine}"));
        let model = tmp.path().join(format!("{dtype}.tnn"));
        alltnn_ok(&[
            &"infer",
            &model,
            &fixture.join("input.npy"),
            &"--out",
            &out,
            &"--activations",
            &"--batch",
            &"4",
            &"--engine",
            &engine,
        ]);
        let mut files: Vec<String> = (0..layers).map(|l| format!("relu_{l}.npy")).collect();
        files.push("probs.npy".into());
        for file in files {
            let (got, want) = (
                read_npy_f32(&out.join(&file)),
                read_npy_f32(&fixture.join(&file)),
            );
            let cos = min_cosine(&got, &want);
            eprintln!("{name} {dtype} {engine} {file}: min cosine {cos:.6}");
            match dtype {
                "f16" => {
                    let rel = assert_close(&got, &want, 1e-3, &format!("{name} f16 {file}"));
                    eprintln!("{name} f16 {file}: max |Δ| / max|ref| = {rel:.2e}");
                }
                _ => assert!(cos >= 0.99, "{name} int8 {engine} {file}: cosine {cos}"),
            }
        }
        let predictions = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
        let expected: Vec<u64> = reference["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap())
            .collect();
        let got: Vec<u64> = predictions
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(got, expected, "{name} {dtype} {engine} predictions");
    }
    // Int8 activations need int8 kernels: an f16 model is refused with a one-line reason.
    let refused = alltnn_err(&[
        &"infer",
        &tmp.path().join("f16.tnn"),
        &fixture.join("input.npy"),
        &"--engine",
        &"native-a8",
    ]);
    assert!(
        refused.contains("f16.tnn") && refused.contains("int8 activations need int8 weights"),
        "{refused}"
    );

    // Energy: the hardware estimate follows the stored type; the measured (activation-based)
    // energy of the int8 model stays within 1 % of the f32 one.
    let energy = |dtype: &str| -> serde_json::Value {
        let out = tmp.path().join(format!("energy-{dtype}"));
        let model = tmp.path().join(format!("{dtype}.tnn"));
        alltnn_ok(&[
            &"energy",
            &model,
            &fixture.join("input_u8.npy"),
            &"--out",
            &out,
        ]);
        serde_json::from_str(&std::fs::read_to_string(out.join("energy.json")).unwrap()).unwrap()
    };
    let (e32, e8) = (energy("f32"), energy("int8"));
    assert!(e8["kernel_dtypes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d == "int8"));
    let uj = |e: &serde_json::Value| e["hardware"]["per_stimulus_uj"].as_f64().unwrap();
    assert!(uj(&e8) < 0.4 * uj(&e32), "{} vs {}", uj(&e8), uj(&e32));
    let total = |e: &serde_json::Value| e["total"]["total"].as_f64().unwrap();
    let rel = (total(&e8) - total(&e32)).abs() / total(&e32);
    eprintln!(
        "{name}: hardware {:.2} vs {:.2} uJ, measured energy differs by {rel:.2e}",
        uj(&e8),
        uj(&e32)
    );
    assert!(
        rel < 0.01,
        "{name}: energy {} vs {}",
        total(&e8),
        total(&e32)
    );
}

#[test]
fn tiny_alltnn_in_f16_and_int8() {
    fixture_check("tiny-alltnn");
}

#[test]
fn tiny_cnn_in_f16_and_int8() {
    fixture_check("tiny-cnn");
}

/// Uniform in [−1, 1) from a seed (SplitMix64).
fn uniform(seed: &mut u64) -> f32 {
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// The paper's All-TNN as Keras initialises it: Glorot-uniform kernels, small random biases
/// and norm parameters around their initial values.
fn glorot_paper_alltnn() -> ImportedModel {
    let spec = ModelSpec::paper_alltnn();
    let mut seed = 2025;
    let tensors = spec
        .tensors()
        .unwrap()
        .into_iter()
        .map(|t| {
            let (offset, scale) = match t.role {
                TensorRole::Kernel => {
                    let (fan_in, fan_out) =
                        (t.shape[t.shape.len() - 2], t.shape[t.shape.len() - 1]);
                    (0.0, (6.0 / (fan_in + fan_out) as f32).sqrt())
                }
                TensorRole::Gamma => (1.0, 0.1),
                _ => (0.0, 0.05),
            };
            let data = (0..t.len())
                .map(|_| offset + scale * uniform(&mut seed))
                .collect();
            NamedTensor {
                name: t.name(),
                shape: t.shape,
                data,
            }
        })
        .collect();
    ImportedModel { spec, tensors }
}

/// A class of stimuli: three coloured plane waves `[kx, ky, r, g, b, phase]`.
type Family = [[f32; 6]; 3];

fn families(classes: usize, seed: &mut u64) -> Vec<Family> {
    (0..classes)
        .map(|_| {
            [0; 3].map(|_| {
                let angle = std::f32::consts::PI * uniform(seed);
                let wavelength = 4.0 + 30.0 * (uniform(seed) + 1.0);
                let k = 2.0 * std::f32::consts::PI / wavelength;
                let phase = std::f32::consts::PI * uniform(seed);
                [
                    k * angle.cos(),
                    k * angle.sin(),
                    uniform(seed),
                    uniform(seed),
                    uniform(seed),
                    phase,
                ]
            })
        })
        .collect()
}

/// `per_class` stimuli of every family — waves shifted by a random phase, plus pixel noise —
/// preprocessed (SignedUnit: x/255, then 2x − 1); returns them with their class labels.
fn stimuli(
    families: &[Family],
    per_class: usize,
    spec: &ModelSpec,
    seed: &mut u64,
) -> (Vec<f32>, Vec<usize>) {
    let (h, w) = (spec.input.height as usize, spec.input.width as usize);
    let (mut out, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..per_class {
        for (class, family) in families.iter().enumerate() {
            let shift = [0; 3].map(|_| 1.5 * uniform(seed));
            for y in 0..h {
                for x in 0..w {
                    for c in 0..3 {
                        let v: f32 = family
                            .iter()
                            .zip(shift)
                            .map(|(wv, s)| {
                                wv[2 + c] * (wv[0] * x as f32 + wv[1] * y as f32 + wv[5] + s).sin()
                            })
                            .sum();
                        let pixel = (127.5 + 40.0 * v + 20.0 * uniform(seed)).clamp(0.0, 255.0);
                        out.push(2.0 * pixel / 255.0 - 1.0);
                    }
                }
            }
            labels.push(class);
        }
    }
    (out, labels)
}

/// What the readout receives for every stimulus, `n × features`.
fn readout_inputs(model: &Model<'_>, input: &[f32], batch: usize) -> Vec<f32> {
    let mut engine = Engine::new(model, batch).unwrap();
    let last = model.spec().layers.len() - 1;
    let mut out = Vec::new();
    for chunk in input.chunks(batch * model.spec().input_len()) {
        engine.run(chunk).unwrap();
        out.extend_from_slice(engine.block_output(last));
    }
    out
}

/// A readout fitted by ridge regression to targets 10 · one-hot (dual form, Cholesky in f64):
/// `W = Xᵀ (X Xᵀ + λI)⁻¹ Y`, `features × classes`; unused classes get zero weights.
fn ridge_readout(x: &[f32], labels: &[usize], classes: usize) -> Vec<f32> {
    let n = labels.len();
    let d = x.len() / n;
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let mut k = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v: f64 = row(i)
                .iter()
                .zip(row(j))
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            k[i * n + j] = v;
            k[j * n + i] = v;
        }
    }
    let lambda = 0.01 * (0..n).map(|i| k[i * n + i]).sum::<f64>() / n as f64;
    (0..n).for_each(|i| k[i * n + i] += lambda);
    // Cholesky: K = L Lᵀ, L stored in the lower triangle.
    for j in 0..n {
        let diag = (k[j * n + j] - (0..j).map(|p| k[j * n + p].powi(2)).sum::<f64>()).sqrt();
        k[j * n + j] = diag;
        for i in j + 1..n {
            let dot: f64 = (0..j).map(|p| k[i * n + p] * k[j * n + p]).sum();
            k[i * n + j] = (k[i * n + j] - dot) / diag;
        }
    }
    let mut w = vec![0f32; d * classes];
    for class in 0..classes {
        let mut a: Vec<f64> = labels
            .iter()
            .map(|&l| if l == class { 10.0 } else { 0.0 })
            .collect();
        if a.iter().all(|&v| v == 0.0) {
            continue;
        }
        for i in 0..n {
            a[i] = (a[i] - (0..i).map(|p| k[i * n + p] * a[p]).sum::<f64>()) / k[i * n + i];
        }
        for i in (0..n).rev() {
            a[i] = (a[i] - (i + 1..n).map(|p| k[p * n + i] * a[p]).sum::<f64>()) / k[i * n + i];
        }
        for f in 0..d {
            w[f * classes + class] = (0..n).map(|i| a[i] * x[i * d + f] as f64).sum::<f64>() as f32;
        }
    }
    w
}

/// The paper's All-TNN stored as int8: the file size, and on 200 stimuli the per-layer
/// cosine similarity and top-1 agreement with f32. A Glorot-initialised network's outputs are
/// near-uniform (mean top-1 probability ≈ 0.04 over 565 classes), so its argmax is decided by
/// ties; the model compared here keeps the random sheets but has a readout fitted (ridge
/// regression on 400 separate stimuli) to 20 stimulus families, so that it makes confident,
/// varied decisions like a trained network.
#[test]
#[ignore = "builds a 434 MB paper-size model; run with --release -- --ignored"]
fn paper_alltnn_int8_is_small_and_close_to_f32() {
    let mut model = glorot_paper_alltnn();
    let spec = model.spec.clone();
    let classes = spec.readout.classes as usize;
    let batch = 8;
    let mut seed = 7;
    let families = families(20, &mut seed);
    let (train, labels) = stimuli(&families, 20, &spec, &mut seed);
    let (test, test_labels) = stimuli(&families, 10, &spec, &mut seed);
    let features = {
        let runtime = Model::from_tensors(spec.clone(), |t| {
            Ok(&model.tensor(&t.name()).unwrap().data[..])
        })
        .unwrap();
        readout_inputs(&runtime, &train, batch)
    };
    let readout = ridge_readout(&features, &labels, classes);
    for t in &mut model.tensors {
        match t.name.as_str() {
            "readout.kernel" => t.data.clone_from(&readout),
            "readout.bias" => t.data.fill(0.0),
            _ => {}
        }
    }

    let tmp = tempfile::tempdir().unwrap();
    let load = |dtype: DType| {
        let path = tmp.path().join(format!("{}.tnn", dtype.name()));
        let size = tnn::write_tnn(&path, &model, &[], dtype).unwrap();
        (
            AlignedBytes::from_slice(&std::fs::read(&path).unwrap()),
            size,
        )
    };
    let (f32_bytes, f32_size) = load(DType::F32);
    let (int8_bytes, int8_size) = load(DType::I8);
    eprintln!(
        "paper All-TNN: f32 {:.1} MB, int8 {:.1} MB",
        f32_size as f64 / 1e6,
        int8_size as f64 / 1e6
    );
    assert!(int8_size <= 115_000_000, "int8 file is {int8_size} bytes");
    let f32_file = TnnFile::parse_verified(&f32_bytes).unwrap();
    let int8_file = TnnFile::parse_verified(&int8_bytes).unwrap();
    assert_eq!(int8_file.kernel_dtype(), Some(DType::I8));
    let (f32_model, int8_model) = (
        Model::from_file(&f32_file).unwrap(),
        Model::from_file(&int8_file).unwrap(),
    );

    let n = test_labels.len();
    let per_image = spec.input_len();
    let layers = spec.layers.len();
    let mut e32 = Engine::new(&f32_model, batch).unwrap();
    // Int8 weights with f32 activations, and with int8 activations.
    let mut quantised = [
        Engine::new(&int8_model, batch).unwrap(),
        Engine::new(&int8_model, batch)
            .unwrap()
            .with_int8_activations()
            .unwrap(),
    ];
    let mut min_cos = [
        vec![f64::INFINITY; layers + 1],
        vec![f64::INFINITY; layers + 1],
    ];
    let (mut agree, mut top1) = ([0, 0], Vec::new());
    let (mut max_prob, mut correct) = (0f64, 0);
    for (chunk, labels) in test
        .chunks(batch * per_image)
        .zip(test_labels.chunks(batch))
    {
        let p32 = e32.run(chunk).unwrap().to_vec();
        for ((engine, min_cos), agree) in quantised.iter_mut().zip(&mut min_cos).zip(&mut agree) {
            let p8 = engine.run(chunk).unwrap().to_vec();
            for (l, worst) in min_cos[..layers].iter_mut().enumerate() {
                let per = e32.activation(l).len() / e32.batch();
                for (a, b) in engine
                    .activation(l)
                    .chunks(per)
                    .zip(e32.activation(l).chunks(per))
                {
                    *worst = worst.min(cosine(a, b));
                }
            }
            for (a, b) in p8.chunks(classes).zip(p32.chunks(classes)) {
                min_cos[layers] = min_cos[layers].min(cosine(a, b));
                *agree += usize::from(argmax(a) == argmax(b));
            }
        }
        for (b, &label) in p32.chunks(classes).zip(labels) {
            correct += usize::from(argmax(b) == label);
            top1.push(argmax(b));
            max_prob += b[argmax(b)] as f64;
        }
    }
    top1.sort();
    top1.dedup();
    let cosines = |c: &[f64]| c.iter().map(|c| format!("{c:.5}")).collect::<Vec<_>>();
    for (what, (min_cos, agree)) in ["int8", "int8 with int8 activations"]
        .iter()
        .zip(min_cos.iter().zip(agree))
    {
        eprintln!(
            "{what} vs f32 over {n} stimuli: min cosine per layer {:?} (last: probabilities); \
             top-1 agreement {agree}/{n}",
            cosines(min_cos)
        );
    }
    eprintln!(
        "f32: top-1 spans {} classes, mean top-1 probability {:.4}, {correct}/{n} stimuli in \
         their family's class",
        top1.len(),
        max_prob / n as f64
    );
    // Non-degenerate: the f32 model's predictions vary across the stimuli.
    assert!(
        top1.len() >= 20,
        "f32 predictions span only {} classes",
        top1.len()
    );
    for (min_cos, agree) in min_cos.iter().zip(agree) {
        assert!(min_cos.iter().all(|&c| c >= 0.99), "{min_cos:?}");
        assert!(agree * 100 >= 99 * n, "top-1 agreement {agree}/{n}");
    }
}
