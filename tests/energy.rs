//! `alltnn energy` on the Keras fixture: per-layer sums equal reference.json `energy` and every
//! per-unit map equals `energy_<l>.npy` within 1e-4 relative (the reference was computed in
//! float64 by the original's method).

mod support;

use support::*;

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
}

#[test]
fn tiny_alltnn_energy_matches_the_reference() {
    let fixture = fixtures().join("tiny-alltnn");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("reference.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let out = tmp.path().join("energy");
    // Batch 4 over 6 stimuli: accumulation across a full and a partial batch.
    alltnn_ok(&[
        &"energy",
        &model,
        &fixture.join("input_u8.npy"),
        &"--out",
        &out,
        &"--batch",
        &"4",
    ]);
    let got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("energy.json")).unwrap()).unwrap();
    assert_eq!(got["stimuli"], 6);
    let mut worst = 0f64;
    for (l, want) in reference["energy"].as_array().unwrap().iter().enumerate() {
        for key in ["post_sum", "pre_sum", "total", "per_stimulus_mean"] {
            let (a, b) = (
                got["layers"][l][key].as_f64().unwrap(),
                want[key].as_f64().unwrap(),
            );
            let r = relative(a, b);
            assert!(r <= 1e-4, "layer {l} {key}: {a} vs {b} ({r:e})");
            worst = worst.max(r);
        }
        let map = read_npy_f32(&out.join(format!("energy_{l}.npy")));
        let want_map = read_npy_f32(&fixture.join(format!("energy_{l}.npy")));
        assert_eq!(map.shape, want_map.shape, "energy_{l}.npy shape");
        for (i, (&a, &b)) in map.data.iter().zip(&want_map.data).enumerate() {
            let r = relative(a as f64, b as f64);
            assert!(
                r <= 1e-4 || (a - b).abs() <= 1e-6,
                "energy_{l}.npy[{i}]: {a} vs {b}"
            );
            if b != 0.0 {
                worst = worst.max(r);
            }
        }
    }
    eprintln!("worst relative difference to the reference: {worst:e}");
    // The original's model total leaves out the last layer.
    let sum: f64 = (0..3)
        .map(|l| reference["energy"][l]["total"].as_f64().unwrap())
        .sum();
    assert!(relative(got["total"]["total"].as_f64().unwrap(), sum) < 1e-4);
    assert_eq!(got["total"]["layers"], serde_json::json!([0, 2]));
    // Where no RAPL counter exists the measurement says so instead of inventing one.
    if !std::path::Path::new("/sys/class/powercap").exists() {
        assert!(got["measured"]["joules"].is_null());
        assert!(got["measured"]["note"]
            .as_str()
            .unwrap()
            .contains("unavailable"));
    }

    let stacked = read_npy_f32(&out.join("energy_stacked.npy"));
    assert_eq!(
        stacked.shape,
        [88, 88],
        "stacked on the largest sheet (layer 0)"
    );
    let radial = std::fs::read_to_string(out.join("energy_radial.csv")).unwrap();
    let first: Vec<&str> = radial.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(first[2].parse::<f64>().unwrap(), 100.0);
    for png in [
        "energy_0.png",
        "energy_3.png",
        "energy_stacked.png",
        "energy_radial.png",
    ] {
        let img = image::open(out.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert!(
            img.width() >= 256 && img.height() >= 256,
            "{png} is {}x{}",
            img.width(),
            img.height()
        );
    }
}

#[test]
fn compare_prints_totals_and_ratios() {
    let tmp = tempfile::tempdir().unwrap();
    let alltnn = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let cnn = convert_fixture("tiny-cnn", tmp.path(), &[]);
    let out = tmp.path().join("cmp");
    let stdout = alltnn_ok(&[
        &"energy",
        &alltnn,
        &cnn,
        &fixtures().join("tiny-alltnn/input.npy"),
        &"--compare",
        &"--out",
        &out,
    ]);
    assert!(
        stdout.contains("ratios are relative to tiny-alltnn"),
        "{stdout}"
    );
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert!(
        out.join("tiny-alltnn/energy.json").is_file()
            && out.join("tiny-cnn/energy_0.npy").is_file()
    );
    let line = stdout
        .lines()
        .skip_while(|l| !l.starts_with("model "))
        .find(|l| l.starts_with("tiny-alltnn "))
        .unwrap();
    let ratio: f64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(ratio, 1.0);
}

#[test]
fn energy_refuses_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let input = fixtures().join("tiny-alltnn/input.npy");
    let err = alltnn_err(&[&"energy", &input]);
    assert!(err.contains("no model"), "{err}");
    let err = alltnn_err(&[&"energy", &model, &model, &input]);
    assert!(err.contains("--compare"), "{err}");
    let table = tmp.path().join("table.json");
    std::fs::write(&table, r#"{"mac_f32_pj": 1.0, "typo_pj": 2}"#).unwrap();
    let err = alltnn_err(&[&"energy", &model, &input, &"--energy-table", &table]);
    assert!(
        err.contains("table.json") && err.contains("typo_pj"),
        "{err}"
    );
}
