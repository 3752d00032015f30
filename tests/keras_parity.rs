//! `alltnn convert` + `alltnn infer --activations` on the Keras fixtures reproduce every
//! post-ReLU and post-norm activation and the probabilities of TensorFlow within
//! max|Δ| ≤ 1e-4 · max|ref| per tensor, and the reference predictions.

mod support;

use alltnn_runtime::kernels::block::Isa;
use support::*;

/// Conversion passes strides (`convert_fixture`): conv checkpoints do not store them, and the
/// tiny CNN's shapes fit several.
fn parity(name: &str) {
    let fixture = fixtures().join(name);
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("reference.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture(name, tmp.path(), &[]);

    // Preprocessed float input, batch 4 over 6 stimuli: a full and a partial batch.
    let out = tmp.path().join("out");
    alltnn_ok(&[
        &"infer",
        &model,
        &fixture.join("input.npy"),
        &"--out",
        &out,
        &"--activations",
        &"--batch",
        &"4",
    ]);
    let layers = reference["layers"].as_array().unwrap().len();
    let mut worst = 0f32;
    for l in 0..layers {
        for stage in ["relu", "norm"] {
            let file = format!("{stage}_{l}.npy");
            let rel = assert_close(
                &read_npy_f32(&out.join(&file)),
                &read_npy_f32(&fixture.join(&file)),
                1e-4,
                &format!("{name} {file}"),
            );
            worst = worst.max(rel);
        }
    }
    let probs = read_npy_f32(&out.join("probs.npy"));
    worst = worst.max(assert_close(
        &probs,
        &read_npy_f32(&fixture.join("probs.npy")),
        1e-4,
        &format!("{name} probs"),
    ));
    eprintln!("{name}: worst max|Δ|/max|ref| over all tensors = {worst:e}");

    let classes = probs.shape[1];
    let argmax: Vec<u64> = probs
        .data
        .chunks(classes)
        .map(|row| {
            (0..classes)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap() as u64
        })
        .collect();
    let expected: Vec<u64> = reference["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(argmax, expected, "{name}: predictions");

    let csv = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
    let top1: Vec<u64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(top1, expected, "{name}: predictions.csv");

    // Raw uint8 stimuli go through the original's preprocessing and give the same output.
    let out_u8 = tmp.path().join("out_u8");
    alltnn_ok(&[
        &"infer",
        &model,
        &fixture.join("input_u8.npy"),
        &"--out",
        &out_u8,
    ]);
    assert_close(
        &read_npy_f32(&out_u8.join("probs.npy")),
        &probs,
        1e-5,
        &format!("{name} probs from uint8"),
    );
}

#[test]
fn tiny_alltnn_matches_keras() {
    parity("tiny-alltnn");
}

#[test]
fn tiny_cnn_matches_keras() {
    parity("tiny-cnn");
}

#[test]
fn info_reports_the_fixture_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model.tnn");
    alltnn_ok(&[
        &"convert",
        &fixtures().join("tiny-alltnn/weights.h5"),
        &"--image-size",
        &"48",
        &"-o",
        &model,
    ]);
    let info = alltnn_ok(&[&"info", &model]);
    // 22·22·(75·16 + 16) + 9·9·(144·16 + 16) + 7·7·(144·25 + 25) + 2·2·(100·36 + 36) + LayerNorms + readout.
    let params = 22 * 22 * (75 * 16 + 16)
        + 9 * 9 * (144 * 16 + 16)
        + 7 * 7 * (144 * 25 + 25)
        + 4 * (100 * 36 + 36)
        + 2 * (16 + 16 + 25 + 36)
        + 144 * 10
        + 10;
    assert!(info.contains(&format!("parameters: {params}")), "{info}");
    for sheet in ["88x88", "36x36", "35x35", "12x12"] {
        assert!(info.contains(sheet), "sheet {sheet} missing: {info}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&alltnn_ok(&[&"info", &model, &"--json"])).unwrap();
    assert_eq!(json["parameters"], params);
    assert_eq!(json["layers"][2]["pooled"], serde_json::json!([3, 3, 25]));
}

/// The SIMD kernels (whichever this CPU has) and the scalar reference agree within 1e-5 of
/// max|value| on every fixture output, in f32, f16 and int8, at batch 1 and 4 and with one
/// and two threads; one and two threads give byte-identical files.
#[test]
fn simd_and_scalar_kernels_agree() {
    for name in ["tiny-alltnn", "tiny-cnn"] {
        let fixture = fixtures().join(name);
        let tmp = tempfile::tempdir().unwrap();
        for dtype in ["f32", "f16", "int8"] {
            let model = tmp.path().join(format!("{dtype}.tnn"));
            convert_fixture_to(name, &model, &["--dtype", dtype]);
            let run = |isa: &str, batch: &str, threads: &str| {
                let out = tmp.path().join(format!("{dtype}-{isa}-{batch}-{threads}"));
                let status = std::process::Command::new(env!("CARGO_BIN_EXE_alltnn"))
                    .env("ALLTNN_ISA", isa)
                    .args(["--threads", threads, "infer"])
                    .arg(&model)
                    .arg(fixture.join("input.npy"))
                    .arg("--out")
                    .arg(&out)
                    .args(["--activations", "--batch", batch])
                    .status()
                    .unwrap();
                assert!(status.success());
                out
            };
            let scalar = run("scalar", "4", "1");
            // Threads share positions (or columns), never one sum: results are identical.
            let (one, two) = (run("", "4", "1"), run("", "4", "2"));
            for file in files_in(&one) {
                assert_eq!(
                    std::fs::read(one.join(&file)).unwrap(),
                    std::fs::read(two.join(&file)).unwrap(),
                    "{name} {dtype} {file}: 1 vs 2 threads"
                );
            }
            for (batch, threads) in [("1", "1"), ("4", "2")] {
                let simd = run("", batch, threads);
                let mut files = files_in(&scalar);
                files.retain(|f| f.ends_with(".npy"));
                assert!(files.len() > 4, "{files:?}");
                for file in files {
                    assert_close(
                        &read_npy_f32(&simd.join(&file)),
                        &read_npy_f32(&scalar.join(&file)),
                        1e-5,
                        &format!("{name} {dtype} batch {batch} {file}"),
                    );
                }
            }
        }
    }
}

/// Int8 activations sum in integers, so every kernel this CPU has (AVX-512-VNNI, AVX-VNNI and the
/// scalar reference), batch size and thread count gives byte-identical outputs; the scalar
/// fallback warns that it is slow.
#[test]
fn int8_activations_are_identical_on_every_kernel() {
    let isas: Vec<&str> = [Isa::Scalar, Isa::Avx2Vnni, Isa::Avx512Vnni]
        .into_iter()
        .filter(|isa| isa.is_supported())
        .map(|isa| isa.name())
        .collect();
    for name in ["tiny-alltnn", "tiny-cnn"] {
        let fixture = fixtures().join(name);
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("int8.tnn");
        convert_fixture_to(name, &model, &["--dtype", "int8"]);
        let run = |isa: &str, batch: &str, threads: &str| {
            let out = tmp.path().join(format!("{isa}-{batch}-{threads}"));
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_alltnn"))
                .env("ALLTNN_ISA", isa)
                .args(["--threads", threads, "infer", "--engine", "native-a8"])
                .arg(&model)
                .arg(fixture.join("input.npy"))
                .arg("--out")
                .arg(&out)
                .args(["--activations", "--batch", batch])
                .output()
                .unwrap();
            assert!(output.status.success(), "{output:?}");
            // The scalar fallback says that it is slow; the VNNI kernels say nothing.
            let warned = String::from_utf8_lossy(&output.stderr).contains("have no VNNI");
            assert_eq!(warned, isa == "scalar", "{isa}: {output:?}");
            out
        };
        let reference = run("scalar", "1", "1");
        let files = files_in(&reference);
        assert!(
            files.iter().filter(|f| f.ends_with(".npy")).count() > 4,
            "{files:?}"
        );
        for isa in &isas {
            for (batch, threads) in [("1", "2"), ("4", "1"), ("4", "2")] {
                let out = run(isa, batch, threads);
                for file in &files {
                    let same = std::fs::read(out.join(file)).unwrap()
                        == std::fs::read(reference.join(file)).unwrap();
                    assert!(
                        same,
                        "{name} {isa} batch {batch} threads {threads} {file} differs"
                    );
                }
            }
        }
    }
}
