//! `alltnn train` against the Keras reference: one exact SGD step from the fixture weights, the
//! spatial distances of `spatial-loss`, and resuming a run to the identical result.

mod support;

use std::path::Path;

use alltnn_converter::keras::{import_h5, ImportOptions};
use alltnn_trainer::checkpoint;
use support::*;

fn keras(path: &Path) -> Vec<(String, Vec<f32>)> {
    let spec =
        alltnn_converter::spec_file::read_spec_file(&repo_root().join("models/tiny.json")).unwrap();
    let model = import_h5(
        path,
        &ImportOptions {
            spec: Some(spec),
            ..Default::default()
        },
    )
    .unwrap();
    model
        .tensors
        .into_iter()
        .map(|t| (t.name, t.data))
        .collect()
}

#[test]
fn one_sgd_step_equals_keras() {
    let fixture = fixtures().join("tiny-alltnn");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let stdout = alltnn_ok(&[
        &"train",
        &"--spec",
        &"tiny",
        &"--init",
        &fixture.join("weights.h5"),
        &"--data",
        &fixture.join("train_step_data.npz"),
        &"--alpha",
        &"10",
        &"--optimizer",
        &"sgd",
        &"--lr",
        &"0.1",
        &"--no-augment",
        &"--no-shuffle",
        &"--batch-size",
        &"6",
        &"--max-steps",
        &"1",
        &"--out",
        &out,
    ]);
    // Six images in one batch: the single step completes epoch 1.
    let ckpt_path = out.join("ckpt_ep001.safetensors");
    assert!(
        stdout.contains(&format!("checkpoint: {}", ckpt_path.display())),
        "{stdout}"
    );
    let ckpt = checkpoint::load(&ckpt_path, &alltnn_trainer::Device::Cpu).unwrap();
    let before = keras(&fixture.join("weights.h5"));
    let after = keras(&fixture.join("weights_after_step.h5"));
    let mut worst = 0f32;
    for ((name, got), ((_, b), (_, a))) in ckpt
        .tensors
        .iter()
        .map(|(n, _, v)| (n, v))
        .zip(before.iter().zip(&after))
    {
        let update = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        let delta = got
            .iter()
            .zip(a)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(update > 0.0, "{name}: Keras did not change it");
        assert!(
            delta <= 1e-3 * update,
            "{name}: max|Δ| {delta:e} > 1e-3 × largest update {update:e}"
        );
        worst = worst.max(delta / update);
    }
    eprintln!("worst max|Δ| / largest update over all tensors: {worst:e}");

    // The stepped model reproduces Keras' activations of the stepped model.
    let model = tmp.path().join("stepped.tnn");
    alltnn_ok(&[&"convert", &ckpt_path, &"-o", &model]);
    let pred = tmp.path().join("pred");
    alltnn_ok(&[
        &"infer",
        &model,
        &fixture.join("input.npy"),
        &"--out",
        &pred,
    ]);
    assert_close(
        &read_npy_f32(&pred.join("probs.npy")),
        &read_npy_f32(&fixture.join("after_step/probs.npy")),
        1e-4,
        "probs after the step",
    );
}

#[test]
fn spatial_loss_reports_the_reference_distances() {
    let fixture = fixtures().join("tiny-alltnn");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("reference.json")).unwrap())
            .unwrap();
    let out = alltnn_ok(&[
        &"spatial-loss",
        &fixture.join("weights.h5"),
        &"--image-size",
        &"48",
    ]);
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    for variant in ["4_circular", "4_open", "8_circular", "8_open"] {
        let want = reference["spatial_distance"][variant].as_array().unwrap();
        let mut sum = 0.0;
        for (l, w) in want.iter().enumerate() {
            let (g, w) = (
                got["layers"][l][variant].as_f64().unwrap(),
                w.as_f64().unwrap(),
            );
            assert!((g - w).abs() <= 1e-5, "{variant} layer {l}: {g} vs {w}");
            sum += w;
        }
        let smooth = got["smoothness"][variant].as_f64().unwrap();
        assert!((smooth - 1.0 / sum).abs() < 1e-4, "{variant} smoothness");
    }
}

/// Trains `epochs` epochs (or stops at `max_steps`) with augmentation, shuffling and Adam.
fn run(out: &Path, extra: &[&str]) -> String {
    let data = fixtures().join("tiny-alltnn/train_step_data.npz");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"train",
        &"--spec",
        &"tiny",
        &"--data",
        &data,
        &"--alpha",
        &"10",
        &"--batch-size",
        &"2",
        &"--seed",
        &"7",
        &"--out",
        &out,
    ];
    for a in extra {
        args.push(a);
    }
    alltnn_ok(&args)
}

#[test]
fn a_resumed_run_ends_with_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, parts) = (tmp.path().join("whole"), tmp.path().join("parts"));
    run(&whole, &["--epochs", "2"]);
    // Killed in the middle of the second epoch (3 batches per epoch), then resumed.
    run(&parts, &["--epochs", "2", "--max-steps", "4"]);
    assert!(parts.join("ckpt_ep002_step0000004.safetensors").is_file());
    run(&parts, &["--epochs", "2", "--resume"]);
    let load = |dir: &Path| {
        checkpoint::load(
            &dir.join("ckpt_ep002.safetensors"),
            &alltnn_trainer::Device::Cpu,
        )
        .unwrap()
    };
    let (a, b) = (load(&whole), load(&parts));
    assert_eq!(a.state, b.state);
    for ((name, _, x), (_, _, y)) in a.tensors.iter().zip(&b.tensors) {
        assert!(x == y, "{name} differs after resuming");
    }
    let metrics = std::fs::read_to_string(parts.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    // Resuming with other settings is refused rather than silently mixed.
    let err = alltnn_err(&[
        &"train",
        &"--spec",
        &"tiny",
        &"--data",
        &fixtures().join("tiny-alltnn/train_step_data.npz"),
        &"--alpha",
        &"1",
        &"--batch-size",
        &"2",
        &"--seed",
        &"7",
        &"--epochs",
        &"3",
        &"--resume",
        &"--out",
        &parts,
    ]);
    assert!(err.contains("other settings"), "{err}");
}

#[test]
fn bad_data_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("absent.npz");
    let err = alltnn_err(&[
        &"train",
        &"--spec",
        &"tiny",
        &"--data",
        &missing,
        &"--alpha",
        &"1",
        &"--out",
        &tmp.path().join("o"),
    ]);
    assert!(err.contains("absent.npz"), "{err}");
    let images = tmp.path().join("images");
    std::fs::create_dir_all(images.join("cats")).unwrap();
    std::fs::write(images.join("cats/broken.png"), b"not a png").unwrap();
    let err = alltnn_err(&[
        &"train",
        &"--spec",
        &"tiny",
        &"--data",
        &images,
        &"--alpha",
        &"1",
        &"--batch-size",
        &"1",
        &"--out",
        &tmp.path().join("o"),
    ]);
    assert!(err.contains("broken.png"), "{err}");
}
