//! Bad input gives one error line naming the file and the problem, exit code 1, no panic, and
//! no partial output; earlier results are left untouched.

mod support;

use std::path::Path;

use support::*;

/// Runs a failing `infer` into an output directory holding an earlier result, and checks the
/// earlier result survives and nothing else appears.
fn infer_fails(model: &Path, input: &Path, out: &Path) -> String {
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("predictions.csv"), "earlier results\n").unwrap();
    let err = alltnn_err(&[&"infer", &model, &input, &"--out", &out, &"--activations"]);
    assert_eq!(
        files_in(out),
        ["predictions.csv"],
        "partial output left behind"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("predictions.csv")).unwrap(),
        "earlier results\n"
    );
    err
}

#[test]
fn truncated_model() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let bytes = std::fs::read(&model).unwrap();
    let cut = tmp.path().join("cut.tnn");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let err = infer_fails(
        &cut,
        &fixtures().join("tiny-alltnn/input.npy"),
        &tmp.path().join("out"),
    );
    assert!(
        err.contains("cut.tnn") && err.contains("truncated"),
        "{err}"
    );
    let err = alltnn_err(&[&"info", &cut]);
    assert!(
        err.contains("cut.tnn") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn flipped_byte_in_the_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let mut bytes = std::fs::read(&model).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    let bad = tmp.path().join("flipped.tnn");
    std::fs::write(&bad, &bytes).unwrap();
    let err = infer_fails(
        &bad,
        &fixtures().join("tiny-alltnn/input.npy"),
        &tmp.path().join("out"),
    );
    assert!(
        err.contains("flipped.tnn") && err.contains("checksum"),
        "{err}"
    );
}

#[test]
fn not_a_model() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("weights.tnn");
    std::fs::write(&bad, b"this is some text, not a model file").unwrap();
    let err = alltnn_err(&[&"info", &bad]);
    assert!(
        err.contains("weights.tnn") && err.contains("magic"),
        "{err}"
    );
    let err = alltnn_err(&[&"info", &tmp.path().join("absent.tnn")]);
    assert!(
        err.contains("absent.tnn") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn h5_missing_a_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = repo_root().join("converter/tests/data");
    let out = tmp.path().join("m.tnn");
    std::fs::write(&out, b"earlier model").unwrap();
    let err = alltnn_err(&[
        &"convert",
        &data.join("missing_layer.h5"),
        &"--image-size",
        &"48",
        &"-o",
        &out,
    ]);
    assert!(
        err.contains("missing_layer.h5") && err.contains("conv_1"),
        "{err}"
    );
    let err = alltnn_err(&[
        &"convert",
        &data.join("missing_readout.h5"),
        &"--image-size",
        &"48",
        &"-o",
        &out,
    ]);
    assert!(
        err.contains("missing_readout.h5") && err.contains("ReadoutDense"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"earlier model");
    assert_eq!(files_in(tmp.path()), ["m.tnn"]);
}

#[test]
fn h5_needs_an_image_size_or_a_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.tnn");
    let err = alltnn_err(&[
        &"convert",
        &fixtures().join("tiny-alltnn/weights.h5"),
        &"-o",
        &out,
    ]);
    assert!(
        err.contains("weights.h5") && err.contains("image-size"),
        "{err}"
    );
    let err = alltnn_err(&[
        &"convert",
        &fixtures().join("tiny-alltnn/weights.h5"),
        &"--image-size",
        &"64",
        &"-o",
        &out,
    ]);
    assert!(err.contains("weights.h5"), "{err}");
    let not_h5 = tmp.path().join("notes.h5");
    std::fs::write(&not_h5, "plain text").unwrap();
    let err = alltnn_err(&[&"convert", &not_h5, &"--image-size", &"48", &"-o", &out]);
    assert!(err.contains("notes.h5"), "{err}");
    assert_eq!(files_in(tmp.path()), ["notes.h5"]);
}

#[test]
fn a_file_that_is_not_an_image() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let fake = tmp.path().join("photo.png");
    std::fs::write(&fake, b"not a png").unwrap();
    let err = infer_fails(&model, &fake, &tmp.path().join("out"));
    assert!(
        err.contains("photo.png") && err.contains("not a readable image"),
        "{err}"
    );
}

#[test]
fn npy_of_the_wrong_shape_or_dtype() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let shape = tmp.path().join("small.npy");
    write_npy(&shape, &[2, 10, 10, 3], &vec![0u8; 600]);
    let err = infer_fails(&model, &shape, &tmp.path().join("out"));
    assert!(
        err.contains("small.npy") && err.contains("[2, 10, 10, 3]") && err.contains("48"),
        "{err}"
    );
    let doubles = tmp.path().join("doubles.npy");
    write_npy(&doubles, &[1, 48, 48, 3], &vec![0f64; 48 * 48 * 3]);
    let err = infer_fails(&model, &doubles, &tmp.path().join("out"));
    assert!(err.contains("doubles.npy") && err.contains("<f8"), "{err}");
    let cut = tmp.path().join("cut.npy");
    write_npy(&cut, &[2, 48, 48, 3], &vec![7u8; 2 * 48 * 48 * 3]);
    let len = std::fs::metadata(&cut).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let err = infer_fails(&model, &cut, &tmp.path().join("out"));
    assert!(
        err.contains("cut.npy") && err.contains("truncated"),
        "{err}"
    );
    let garbage = tmp.path().join("garbage.npy");
    std::fs::write(&garbage, b"\x93NUMPY garbage").unwrap();
    let err = infer_fails(&model, &garbage, &tmp.path().join("out"));
    assert!(
        err.contains("garbage.npy") && err.contains("not a valid .npy"),
        "{err}"
    );
}

#[test]
fn images_and_directories_run() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let images = tmp.path().join("images");
    std::fs::create_dir(&images).unwrap();
    // A grey image of another size (resized, repeated to RGB) and an RGB image of the input size.
    image::GrayImage::from_fn(30, 20, |x, y| image::Luma([(x * 8 + y) as u8]))
        .save(images.join("b_grey.png"))
        .unwrap();
    image::RgbImage::from_fn(48, 48, |x, y| image::Rgb([x as u8 * 5, y as u8 * 5, 128]))
        .save(images.join("a_rgb.png"))
        .unwrap();
    std::fs::write(images.join("notes.txt"), "ignored").unwrap();
    let out = tmp.path().join("out");
    alltnn_ok(&[&"infer", &model, &images, &"--out", &out, &"--top-k", &"3"]);
    let csv = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "input,class_1,probability_1,class_2,probability_2,class_3,probability_3"
    );
    assert_eq!(lines.len(), 3);
    assert!(
        lines[1].contains("a_rgb.png") && lines[2].contains("b_grey.png"),
        "{csv}"
    );
    assert_eq!(read_npy_f32(&out.join("probs.npy")).shape, [2, 10]);
    assert_eq!(files_in(&out), ["predictions.csv", "probs.npy"]);
}

#[test]
fn onnx_output_and_its_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = fixtures().join("tiny-alltnn/weights.h5");
    let onnx = tmp.path().join("m.onnx");
    alltnn_ok(&[
        &"convert",
        &weights,
        &"--image-size",
        &"48",
        &"-o",
        &onnx,
        &"--activations",
    ]);
    assert!(std::fs::metadata(&onnx).unwrap().len() > 3_000_000);
    let tnn = tmp.path().join("m.tnn");
    let err = alltnn_err(&[
        &"convert",
        &weights,
        &"--image-size",
        &"48",
        &"-o",
        &tnn,
        &"--activations",
    ]);
    assert!(err.contains("--activations"), "{err}");
    let err = alltnn_err(&[
        &"convert",
        &weights,
        &"--image-size",
        &"48",
        &"-o",
        &onnx,
        &"--classes",
        &"ecoset",
    ]);
    assert!(err.contains("--classes"), "{err}");
    let err = alltnn_err(&[
        &"convert",
        &weights,
        &"--image-size",
        &"48",
        &"-o",
        &tmp.path().join("m.pt"),
    ]);
    assert!(err.contains("m.pt") && err.contains(".onnx"), "{err}");
    assert_eq!(files_in(tmp.path()), ["m.onnx"]);
}
