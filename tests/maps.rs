//! `alltnn maps` on the tiny Keras fixture: each analysis is checked against a computation made
//! here from `alltnn infer --activations` on the same stimuli (the activations themselves are
//! checked against TensorFlow in keras_parity), and the smoothness against the fixture's
//! reference distances.

mod support;

use std::path::Path;

use alltnn_analysis::orientation::{grating, GratingParams};
use support::*;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// DESIGN.md's sheet layout, written out independently of the runtime: unit (r, q, c) of an
/// (H, W, C) activation sits at sheet (r·c0 + c / c1, q·c1 + c % c1).
fn sheet_index(w: usize, c: usize) -> impl Fn(usize, usize, usize) -> usize {
    let c0 = (1..=c)
        .filter(|&d| c.is_multiple_of(d) && d * d <= c)
        .max()
        .unwrap();
    let c1 = c / c0;
    move |r, q, ch| (r * c0 + ch / c1) * (w * c1) + q * c1 + ch % c1
}

#[test]
fn orientation_maps_follow_the_activations_to_gratings() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let out = tmp.path().join("maps");
    alltnn_ok(&[&"maps", &model, &"--out", &out, &"--bootstrap", &"50"]);

    // The same gratings through `infer`: 8 orientations x 3 phases.
    let params = GratingParams::new(48, 48);
    let phases = params.phases();
    assert_eq!(phases, 3);
    let mut pixels = Vec::new();
    for o in 0..8 {
        for p in 0..phases {
            pixels.extend(grating(&params, o, p));
        }
    }
    let stimuli = tmp.path().join("gratings.npy");
    write_npy(&stimuli, &[8 * phases, 48, 48, 3], &pixels);
    let acts = tmp.path().join("acts");
    alltnn_ok(&[
        &"infer",
        &model,
        &stimuli,
        &"--out",
        &acts,
        &"--activations",
    ]);

    let summary = json(&out.join("maps.json"));
    let layers = summary["orientation"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4);
    for (l, layer) in layers.iter().enumerate() {
        let relu = read_npy_f32(&acts.join(format!("relu_{l}.npy")));
        let [_, h, w, c] = relu.shape[..] else {
            panic!("NHWC")
        };
        let units = h * w * c;
        let at = sheet_index(w, c);
        let preferred = read_npy_f32(&out.join(format!("orientation_l{l}_preferred.npy")));
        assert_eq!(preferred.data.len(), units);
        let mut checked = 0;
        for r in 0..h {
            for q in 0..w {
                for ch in 0..c {
                    let unit = (r * w + q) * c + ch;
                    let (mut x, mut y, mut total) = (0.0f64, 0.0f64, 0.0f64);
                    for o in 0..8 {
                        let best = (0..phases)
                            .map(|p| relu.data[(o * phases + p) * units + unit])
                            .fold(f32::NEG_INFINITY, f32::max)
                            as f64;
                        let theta = 2.0 * std::f64::consts::PI * o as f64 / 8.0;
                        x += best * theta.cos();
                        y += best * theta.sin();
                        total += best;
                    }
                    // Flat or silent tuning has no defined preference.
                    if x.hypot(y) < 1e-3 * total || total == 0.0 {
                        continue;
                    }
                    let want = (y.atan2(x) / (2.0 * std::f64::consts::PI)).rem_euclid(1.0);
                    let got = preferred.data[at(r, q, ch)] as f64;
                    let d = (got - want).abs();
                    assert!(
                        d.min(1.0 - d) < 1e-4,
                        "layer {l} unit ({r},{q},{ch}): preferred {got} vs {want}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > units / 2, "layer {l}: only {checked} tuned units");
        let entropy = layer["mean_entropy"].as_f64().unwrap();
        assert!((0.0..=8f64.ln() + 1e-9).contains(&entropy), "{entropy}");
    }
    for name in [
        "index.html",
        "orientation_l0.png",
        "orientation_eccentricity.png",
    ] {
        assert!(out.join(name).is_file(), "{name}");
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("orientation_l3.png"));

    // Smoothness: the fixture's Keras-side reference distances.
    let reference = json(&fixtures().join("tiny-alltnn/reference.json"));
    for variant in ["4_circular", "4_open", "8_circular", "8_open"] {
        let want = reference["spatial_distance"][variant].as_array().unwrap();
        let got = summary["smoothness"]["layers"].as_array().unwrap();
        let mut sum = 0.0;
        for (g, w) in got.iter().zip(want) {
            let (g, w) = (g[variant].as_f64().unwrap(), w.as_f64().unwrap());
            assert!((g - w).abs() < 1e-6, "{variant}: {g} vs {w}");
            sum += w;
        }
        let smooth = summary["smoothness"]["smoothness"][variant]
            .as_f64()
            .unwrap();
        assert!((smooth - 1.0 / sum).abs() < 1e-6 * smooth);
    }
}

/// d′ = (μ_k − μ_rest) / ((σ_k + σ_rest)/2 + 1e-10) with population SDs.
fn dprime(own: &[f64], rest: &[f64]) -> f64 {
    let stats = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
        (m, var.sqrt())
    };
    let ((mk, sk), (mr, sr)) = (stats(own), stats(rest));
    (mk - mr) / ((sk + sr) / 2.0 + 1e-10)
}

#[test]
fn category_dprime_matches_a_hand_computation_from_the_activations() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let input = fixtures().join("tiny-alltnn/input_u8.npy");
    let file = std::fs::File::open(&input).unwrap();
    let all: Vec<u8> = npyz::NpyFile::new(std::io::BufReader::new(file))
        .unwrap()
        .into_vec()
        .unwrap();
    let image = 48 * 48 * 3;
    // Stimuli 0-1 are category "a", 2-5 "b".
    let (a, b) = (tmp.path().join("a.npy"), tmp.path().join("b.npy"));
    write_npy(&a, &[2, 48, 48, 3], &all[..2 * image]);
    write_npy(&b, &[4, 48, 48, 3], &all[2 * image..]);
    let out = tmp.path().join("maps");
    let cat_a = format!("a={}", a.display());
    let cat_b = format!("b={}", b.display());
    alltnn_ok(&[
        &"maps",
        &model,
        &"--out",
        &out,
        &"--category",
        &cat_a,
        &"--category",
        &cat_b,
    ]);
    let summary = json(&out.join("maps.json"));
    assert_eq!(summary["category"]["stimuli"], serde_json::json!([2, 4]));
    assert!(summary.get("orientation").is_none(), "only what was asked");

    let relu = read_npy_f32(&fixtures().join("tiny-alltnn/relu_3.npy"));
    let [n, h, w, c] = relu.shape[..] else {
        panic!("NHWC")
    };
    assert_eq!(n, 6);
    let units = h * w * c;
    let at = sheet_index(w, c);
    let got = read_npy_f32(&out.join("category_l3_dprime.npy"));
    assert_eq!(got.shape[0], 2);
    for unit in 0..units {
        let values: Vec<f64> = (0..6).map(|s| relu.data[s * units + unit] as f64).collect();
        let (r, q, ch) = (unit / (w * c), unit / c % w, unit % c);
        for (k, (own, rest)) in [(&values[..2], &values[2..]), (&values[2..], &values[..2])]
            .into_iter()
            .enumerate()
        {
            let want = dprime(own, rest);
            let g = got.data[k * units + at(r, q, ch)] as f64;
            assert!(
                (g - want).abs() <= 1e-3 * want.abs().max(1.0),
                "unit {unit} category {k}: {g} vs {want}"
            );
        }
    }
}

#[test]
fn bias_and_energy_maps() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let input = fixtures().join("tiny-alltnn/input_u8.npy");
    let out = tmp.path().join("maps");
    alltnn_ok(&[
        &"maps",
        &model,
        &"--out",
        &out,
        &"--bias",
        &"fashion-mnist",
        &"--bias-grid",
        &"3",
        &"--bias-limit",
        &"4",
        &"--energy",
        &input,
    ]);
    let summary = json(&out.join("maps.json"));
    let bias = &summary["bias"];
    assert_eq!(bias["grid"], 3);
    assert_eq!(bias["objects"], 4);
    let map = read_npy_f32(&out.join("bias_accuracy.npy"));
    assert_eq!(map.shape, [3, 3]);
    // Four objects per cell: accuracies are multiples of 1/4.
    for v in &map.data {
        assert!((v * 4.0 - (v * 4.0).round()).abs() < 1e-6 && (0.0..=1.0).contains(v));
    }
    assert!(out.join("bias_stimuli.png").is_file());
    // Energy: the same numbers as `alltnn energy`.
    let energy = tmp.path().join("energy");
    alltnn_ok(&[&"energy", &model, &input, &"--out", &energy]);
    let want = json(&energy.join("energy.json"))["summary"]["total_per_stimulus"].clone();
    assert_eq!(summary["energy"]["total_per_stimulus"], want);
    assert!(out.join("energy/energy_stacked.png").is_file());
}

#[test]
fn maps_refuses_bad_arguments_and_leaves_no_report() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let out = tmp.path().join("maps");
    let input = fixtures().join("tiny-alltnn/input_u8.npy");
    let one = format!("a={}", input.display());
    let cases: Vec<(Vec<&dyn AsRef<std::ffi::OsStr>>, &str)> = vec![
        (vec![&"--category", &one], "at least two"),
        (
            vec![&"--category", &"nameless", &"--category", &one],
            "NAME=SOURCE",
        ),
        (
            vec![
                &"--category-data",
                &"fashion-mnist",
                &"--category",
                &"a=Sandal",
                &"--category",
                &"b=Tophat",
            ],
            "unknown class `Tophat`",
        ),
        (
            vec![
                &"--category-data",
                &"fashion-mnist",
                &"--category",
                &"a=Sandal",
                &"--category",
                &"b=12",
            ],
            "out of range",
        ),
        (vec![&"--human-map", &input], "needs --bias"),
        (
            vec![&"--category", &"a=/no/such", &"--category", &one],
            "/no/such",
        ),
    ];
    for (extra, expected) in cases {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"maps", &model, &"--out", &out];
        args.extend(extra);
        let err = alltnn_err(&args);
        assert!(err.contains(expected), "{err} (expected {expected})");
        assert!(!out.join("index.html").exists());
    }
    // A human map of the wrong size names the file and the expected shape.
    let human = tmp.path().join("human.npy");
    write_npy(&human, &[4, 4], &[0.5f32; 16]);
    let err = alltnn_err(&[
        &"maps",
        &model,
        &"--out",
        &out,
        &"--bias",
        &"fashion-mnist",
        &"--human-map",
        &human,
    ]);
    assert!(err.contains("human.npy") && err.contains("5×5"), "{err}");
    assert!(files_in(&out).iter().all(|f| !f.ends_with(".html")));
}
