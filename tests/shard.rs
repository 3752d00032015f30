//! Server-scale `infer`: `--shard K/N` parts merged by `alltnn merge` are byte-identical to one
//! run, finished parts are skipped, inconsistent parts are refused; HDF5 datasets and image
//! directories go through the read-ahead reader.

mod support;

use std::path::{Path, PathBuf};

use support::*;

fn read_npy_u8(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let npy =
        npyz::NpyFile::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<u8>().unwrap())
}

/// The fixture's 6 preprocessed stimuli followed by its first one again: 7 stimuli.
fn seven_stimuli(dir: &Path) -> PathBuf {
    let six = read_npy_f32(&fixtures().join("tiny-alltnn/input.npy"));
    let image = six.data.len() / 6;
    let mut data = six.data.clone();
    data.extend_from_slice(&six.data[..image]);
    let path = dir.join("seven.npy");
    write_npy(&path, &[7, 48, 48, 3], &data);
    path
}

/// Runs part `k` of `n` into `out`, with activations.
fn run_shard(model: &Path, inputs: &[PathBuf], out: &Path, k: usize, n: usize) -> String {
    let shard = format!("{k}/{n}");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"infer", &model];
    args.extend(inputs.iter().map(|p| p as &dyn AsRef<std::ffi::OsStr>));
    args.extend([
        &"--out" as &dyn AsRef<std::ffi::OsStr>,
        &out,
        &"--activations",
        &"--batch",
        &"2",
        &"--shard",
        &shard,
    ]);
    alltnn_ok(&args)
}

fn run_whole(model: &Path, inputs: &[PathBuf], out: &Path) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"infer", &model];
    args.extend(inputs.iter().map(|p| p as &dyn AsRef<std::ffi::OsStr>));
    args.extend([
        &"--out" as &dyn AsRef<std::ffi::OsStr>,
        &out,
        &"--activations",
    ]);
    alltnn_ok(&args);
}

/// Every file of `want` exists in `got` with the same bytes (and `got` holds no other files,
/// directories aside).
fn assert_same_files(got: &Path, want: &Path) {
    let files = |dir: &Path| -> Vec<String> {
        files_in(dir)
            .into_iter()
            .filter(|f| dir.join(f).is_file())
            .collect()
    };
    let names = files(want);
    assert!(names.len() >= 10, "{names:?}");
    assert_eq!(files(got), names, "{}", got.display());
    for name in names {
        assert!(
            std::fs::read(got.join(&name)).unwrap() == std::fs::read(want.join(&name)).unwrap(),
            "{}: differs from {}",
            got.join(&name).display(),
            want.join(&name).display()
        );
    }
}

#[test]
fn merged_shards_are_byte_identical_to_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let six = fixtures().join("tiny-alltnn/input.npy");
    let seven = seven_stimuli(tmp.path());
    let cases = [
        ("six", vec![six.clone()], 4),
        ("seven", vec![seven], 4),
        // Two files, and more parts than stimuli: some parts are empty.
        ("two-files", vec![six.clone(), six], 15),
    ];
    for (name, inputs, n) in cases {
        let whole = tmp.path().join(format!("{name}-whole"));
        run_whole(&model, &inputs, &whole);
        let parts = tmp.path().join(format!("{name}-parts"));
        // Submitted in any order, as array tasks start.
        for k in (1..=n).rev() {
            let said = run_shard(&model, &inputs, &parts, k, n);
            assert!(said.contains(&format!("shard {k}/{n}")), "{said}");
        }
        let merged = tmp.path().join(format!("{name}-merged"));
        let said = alltnn_ok(&[&"merge", &parts, &"-o", &merged]);
        assert!(said.contains(&format!("merged {n} shards")), "{said}");
        assert_same_files(&merged, &whole);
    }
    // Without -o the merged files land beside the parts.
    let parts = tmp.path().join("six-parts");
    alltnn_ok(&[&"merge", &parts]);
    assert_same_files(&parts, &tmp.path().join("six-whole"));
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(parts.join("shard-2-of-4/shard.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            &record["shard"],
            &record["shards"],
            &record["start"],
            &record["end"]
        ),
        (&2.into(), &4.into(), &1.into(), &3.into())
    );
    assert_eq!((&record["count"], &record["total"]), (&2.into(), &6.into()));
    assert_eq!(record["inputs_fingerprint"].as_str().unwrap().len(), 16);
}

/// (bytes, modification time) of every file in `dir`.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
    files_in(dir)
        .into_iter()
        .map(|f| {
            let path = dir.join(&f);
            let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
            (f, std::fs::read(&path).unwrap(), modified)
        })
        .collect()
}

#[test]
fn a_finished_shard_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let six = vec![fixtures().join("tiny-alltnn/input.npy")];
    let out = tmp.path().join("out");
    run_shard(&model, &six, &out, 2, 4);
    let dir = out.join("shard-2-of-4");
    let before = snapshot(&dir);
    assert!(before.iter().any(|(f, ..)| f == "shard.json"));
    let said = run_shard(&model, &six, &out, 2, 4);
    assert!(said.contains("skipping"), "{said}");
    assert!(
        snapshot(&dir) == before,
        "a skipped shard changed its files"
    );

    // Complete, but for other stimuli, or without the activations asked for now: refused.
    let seven = seven_stimuli(tmp.path());
    let err = alltnn_err(&[
        &"infer",
        &model,
        &seven,
        &"--out",
        &out,
        &"--shard",
        &"2/4",
        &"--activations",
    ]);
    assert!(
        err.contains("shard-2-of-4") && err.contains("other stimuli"),
        "{err}"
    );
    let err = alltnn_err(&[
        &"infer", &model, &six[0], &"--out", &out, &"--shard", &"2/4",
    ]);
    assert!(err.contains("with --activations"), "{err}");
    assert!(snapshot(&dir) == before);

    // Without its record a shard is unfinished and runs again.
    std::fs::remove_file(dir.join("shard.json")).unwrap();
    let said = run_shard(&model, &six, &out, 2, 4);
    assert!(said.contains("wrote predictions for 2 stimuli"), "{said}");
    assert_eq!(
        files_in(&dir),
        before.iter().map(|(f, ..)| f.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn merge_refuses_missing_incomplete_or_foreign_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let six = vec![fixtures().join("tiny-alltnn/input.npy")];
    let parts = tmp.path().join("parts");
    for k in 1..=4 {
        run_shard(&model, &six, &parts, k, 4);
    }
    let merged = tmp.path().join("merged");
    let merge_fails = || {
        let err = alltnn_err(&[&"merge", &parts, &"-o", &merged]);
        assert_eq!(
            files_in(&merged),
            Vec::<String>::new(),
            "partial merge output"
        );
        err
    };
    let shard = |k: usize| parts.join(format!("shard-{k}-of-4"));

    std::fs::rename(shard(3), tmp.path().join("away")).unwrap();
    let err = merge_fails();
    assert!(
        err.contains("shard-3-of-4") && err.contains("missing"),
        "{err}"
    );
    std::fs::rename(tmp.path().join("away"), shard(3)).unwrap();

    let record = std::fs::read(shard(2).join("shard.json")).unwrap();
    std::fs::remove_file(shard(2).join("shard.json")).unwrap();
    let err = merge_fails();
    assert!(
        err.contains("shard-2-of-4") && err.contains("incomplete"),
        "{err}"
    );
    std::fs::write(shard(2).join("shard.json"), &record).unwrap();

    let relu = std::fs::read(shard(4).join("relu_1.npy")).unwrap();
    std::fs::remove_file(shard(4).join("relu_1.npy")).unwrap();
    let err = merge_fails();
    assert!(err.contains("shard-4-of-4/relu_1.npy"), "{err}");
    std::fs::write(shard(4).join("relu_1.npy"), &relu[..relu.len() - 4]).unwrap();
    let err = merge_fails();
    assert!(
        err.contains("relu_1.npy") && err.contains("truncated"),
        "{err}"
    );
    std::fs::write(shard(4).join("relu_1.npy"), &relu).unwrap();

    // Part 4 of another job (other stimuli) in this job's directory.
    let other = tmp.path().join("other");
    run_shard(&model, &[seven_stimuli(tmp.path())], &other, 4, 4);
    std::fs::rename(shard(4), tmp.path().join("ours")).unwrap();
    std::fs::rename(other.join("shard-4-of-4"), shard(4)).unwrap();
    let err = merge_fails();
    assert!(
        err.contains("shard-4-of-4") && err.contains("fingerprint"),
        "{err}"
    );
    std::fs::remove_dir_all(shard(4)).unwrap();
    std::fs::rename(tmp.path().join("ours"), shard(4)).unwrap();

    std::fs::create_dir(parts.join("shard-1-of-3")).unwrap();
    let err = merge_fails();
    assert!(
        err.contains("shard-K-of-3, shard-K-of-4") && err.contains("stale"),
        "{err}"
    );
    std::fs::remove_dir(parts.join("shard-1-of-3")).unwrap();

    let err = alltnn_err(&[&"merge", &tmp.path().join("away"), &"-o", &merged]);
    assert!(err.contains("away"), "{err}");
    let err = alltnn_err(&[&"merge", &other, &"-o", &merged]);
    assert!(err.contains("no shard-K-of-N"), "{err}");

    alltnn_ok(&[&"merge", &parts, &"-o", &merged]);
    assert_eq!(read_npy_f32(&merged.join("probs.npy")).shape, [6, 10]);
}

#[test]
fn bad_shard_arguments_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let six = fixtures().join("tiny-alltnn/input.npy");
    let out = tmp.path().join("out");
    for bad in ["5/4", "0/4", "2", "a/4"] {
        let err = alltnn_err(&[&"infer", &model, &six, &"--out", &out, &"--shard", &bad]);
        assert!(err.contains("--shard") && err.contains(bad), "{err}");
    }
    let err = alltnn_err(&[&"infer", &model, &six, &"--shard", &"1/4"]);
    assert!(err.contains("--shard needs --out"), "{err}");
    assert!(!out.exists());
}

/// Writes `stimuli.h5` with h5py: `raw` the fixture's uint8 pixels (chunks of two rows,
/// gzip), `pre/values` its float32 input (contiguous), `one` a single uint8 image (H, W, C)
/// and `doubles` a float64 array.
fn stimuli_h5(dir: &Path) -> PathBuf {
    let path = dir.join("stimuli.h5");
    let script = r#"
import sys
import h5py
import numpy as np
out, fixture = sys.argv[1], sys.argv[2]
raw = np.load(fixture + "/input_u8.npy")
pre = np.load(fixture + "/input.npy")
with h5py.File(out, "w") as f:
    f.create_dataset("raw", data=raw, chunks=(2,) + raw.shape[1:], compression="gzip")
    f.create_dataset("pre/values", data=pre.astype(np.float32))
    f.create_dataset("one", data=raw[0])
    f.create_dataset("doubles", data=pre.astype(np.float64))
"#;
    let result = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .arg(fixtures().join("tiny-alltnn"))
        .output();
    match result {
        Ok(out) if out.status.success() => path,
        Ok(out) => panic!(
            "writing the HDF5 stimuli needs python3 with h5py and numpy \
             (pip install -r requirements-test.txt): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("writing the HDF5 stimuli needs python3 with h5py and numpy: {e}"),
    }
}

#[test]
fn hdf5_datasets_match_npy() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let fixture = fixtures().join("tiny-alltnn");
    let h5 = stimuli_h5(tmp.path());
    let spec = |dataset: &str| PathBuf::from(format!("{}:{dataset}", h5.display()));
    let probs = |input: &Path, name: &str| {
        let out = tmp.path().join(name);
        // Batches of 4: a partial batch, and row ranges across chunk boundaries.
        alltnn_ok(&[&"infer", &model, &input, &"--out", &out, &"--batch", &"4"]);
        read_npy_f32(&out.join("probs.npy"))
    };
    let u8_probs = probs(&fixture.join("input_u8.npy"), "npy-u8");
    assert_close(
        &probs(&spec("raw"), "h5-raw"),
        &u8_probs,
        1e-6,
        "uint8 dataset",
    );
    let f32_probs = probs(&fixture.join("input.npy"), "npy-f32");
    assert_close(
        &probs(&spec("/pre/values"), "h5-f32"),
        &f32_probs,
        1e-6,
        "float32 dataset",
    );
    let one = probs(&spec("one"), "h5-one");
    let first = Array {
        shape: vec![1, 10],
        data: u8_probs.data[..10].to_vec(),
    };
    assert_close(&one, &first, 1e-6, "single-image dataset");
    let csv = std::fs::read_to_string(tmp.path().join("h5-raw/predictions.csv")).unwrap();
    assert!(
        csv.lines()
            .nth(6)
            .unwrap()
            .starts_with(&format!("{}:raw[5],", h5.display())),
        "{csv}"
    );

    // Parts of an HDF5 dataset merge to the whole run too.
    let whole = tmp.path().join("h5-whole");
    run_whole(&model, &[spec("raw")], &whole);
    let parts = tmp.path().join("h5-parts");
    for k in 1..=4 {
        run_shard(&model, &[spec("raw")], &parts, k, 4);
    }
    alltnn_ok(&[&"merge", &parts]);
    assert_same_files(&parts, &whole);

    let out = tmp.path().join("bad");
    let err = alltnn_err(&[&"infer", &model, &spec("nope"), &"--out", &out]);
    assert!(
        err.contains("stimuli.h5:nope") && err.contains("no such dataset") && err.contains("raw"),
        "{err}"
    );
    let err = alltnn_err(&[&"infer", &model, &h5, &"--out", &out]);
    assert!(err.contains("stimuli.h5:DATASET"), "{err}");
    let err = alltnn_err(&[&"infer", &model, &spec("doubles"), &"--out", &out]);
    assert!(err.contains("doubles") && err.contains("float64"), "{err}");
    let not_h5 = tmp.path().join("text.h5");
    std::fs::write(&not_h5, "plain text").unwrap();
    let err = alltnn_err(&[
        &"infer",
        &model,
        &format!("{}:raw", not_h5.display()),
        &"--out",
        &out,
    ]);
    assert!(err.contains("text.h5") && err.contains("HDF5"), "{err}");
    assert!(!out.exists());
}

#[test]
fn image_directories_stream_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let u8_npy = fixtures().join("tiny-alltnn/input_u8.npy");
    let (shape, pixels) = read_npy_u8(&u8_npy);
    assert_eq!(shape, [6, 48, 48, 3]);
    let images = tmp.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for (i, image) in pixels.chunks(48 * 48 * 3).enumerate() {
        image::RgbImage::from_raw(48, 48, image.to_vec())
            .unwrap()
            .save(images.join(format!("img_{i}.png")))
            .unwrap();
    }
    let reference = tmp.path().join("reference");
    alltnn_ok(&[&"infer", &model, &u8_npy, &"--out", &reference]);
    let want = read_npy_f32(&reference.join("probs.npy"));

    // Images and array rows in one run, in batches that straddle the two.
    let out = tmp.path().join("out");
    alltnn_ok(&[
        &"infer", &model, &images, &u8_npy, &"--out", &out, &"--batch", &"4",
    ]);
    let got = read_npy_f32(&out.join("probs.npy"));
    assert_eq!(got.shape, [12, 10]);
    for half in got.data.chunks(60) {
        let half = Array {
            shape: vec![6, 10],
            data: half.to_vec(),
        };
        assert_close(&half, &want, 1e-6, "decoded PNGs");
    }
    let csv = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
    let names: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    for i in 0..6 {
        assert!(names[i].ends_with(&format!("img_{i}.png")), "{names:?}");
        assert!(
            names[6 + i].ends_with(&format!("input_u8.npy[{i}]")),
            "{names:?}"
        );
    }

    // A broken image in a later batch: one error naming it, nothing written.
    std::fs::write(images.join("img_3b.png"), b"not a png").unwrap();
    let failed = tmp.path().join("failed");
    let err = alltnn_err(&[
        &"infer", &model, &images, &"--out", &failed, &"--batch", &"2",
    ]);
    assert!(
        err.contains("img_3b.png") && err.contains("not a readable image"),
        "{err}"
    );
    assert_eq!(files_in(&failed), Vec::<String>::new());
}
