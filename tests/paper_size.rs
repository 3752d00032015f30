//! The full paper architecture converts from a Keras-layout HDF5 file and runs. The files are
//! written at run time with random weights by `tests/make_keras_h5.py` (needs Python with h5py
//! and numpy); slow, so `--ignored`: `cargo test --release -p alltnn --test paper_size -- --ignored`.

mod support;

use std::process::Command;
use std::time::Instant;

use support::*;

fn make_h5(path: &std::path::Path, kind: &str) {
    let script = repo_root().join("tests/make_keras_h5.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg(path)
        .arg(kind)
        .status()
        .expect("python3 is needed to write the paper-size HDF5 file");
    assert!(
        status.success(),
        "{} failed (does python3 have h5py and numpy?)",
        script.display()
    );
}

fn paper(kind: &str, params: usize, strides: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let h5 = tmp.path().join("ckpt_ep001.h5");
    let model = tmp.path().join("paper.tnn");
    make_h5(&h5, kind);
    let t = Instant::now();
    alltnn_ok(&[
        &"convert",
        &h5,
        &"--image-size",
        &"150",
        &"--strides",
        &strides,
        &"-o",
        &model,
    ]);
    eprintln!(
        "{kind}: convert {:.1} s, {} bytes",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&model).unwrap().len()
    );
    let info = alltnn_ok(&[&"info", &model]);
    eprintln!("{info}");
    assert!(info.contains(&format!("parameters: {params}")), "{info}");
    for sheet in ["384x384", "198x198", "180x180", "128x128", "96x96", "50x50"] {
        assert!(info.contains(sheet), "{sheet}: {info}");
    }
    let stimuli = tmp.path().join("stimuli.npy");
    let data: Vec<u8> = (0..4 * 150 * 150 * 3)
        .map(|i| ((i * 7919) % 251) as u8)
        .collect();
    write_npy(&stimuli, &[4, 150, 150, 3], &data);
    let out = tmp.path().join("out");
    let t = Instant::now();
    alltnn_ok(&[&"infer", &model, &stimuli, &"--out", &out, &"--batch", &"4"]);
    eprintln!("{kind}: 4 stimuli in {:.2} s", t.elapsed().as_secs_f64());
    let probs = read_npy_f32(&out.join("probs.npy"));
    assert_eq!(probs.shape, [4, 565]);
    for row in probs.data.chunks(565) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4 && row.iter().all(|p| p.is_finite()));
    }
}

#[test]
#[ignore = "writes and converts a 434 MB model; run with --ignored"]
fn paper_alltnn_converts_and_runs() {
    paper("alltnn", 108_481_437, "3,1,1,1,1,1");
}

#[test]
#[ignore = "needs python3 with h5py; run with --ignored"]
fn paper_cnn_converts_and_runs() {
    // Conv checkpoints do not store strides: ten assignments fit these shapes.
    let params = alltnn_runtime::ModelSpec::paper_cnn()
        .parameter_count()
        .unwrap();
    paper("cnn", params, "3,1,1,1,1,1");
}
