//! `alltnn bench` on the tiny fixture: one result per engine and batch size, and with
//! `--layers` one row per layer whose weight bytes match the layer's shape.

mod support;

use serde_json::Value;
use support::*;

#[test]
fn bench_reports_every_batch_and_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let report = tmp.path().join("bench.json");
    let printed = alltnn_ok(&[
        &"bench",
        &model,
        &"--batch",
        &"1,3",
        &"--runs",
        &"2",
        &"--seconds",
        &"0",
        &"--layers",
        &"--json",
        &report,
    ]);
    assert!(printed.contains("per layer"), "{printed}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();

    let results = doc["results"].as_array().unwrap();
    let batches: Vec<u64> = results
        .iter()
        .map(|r| r["batch"].as_u64().unwrap())
        .collect();
    assert_eq!(batches, [1, 3]);
    for r in results {
        assert_eq!(r["engine"], "native");
        let (min, median, max) = (
            r["min_ms_per_image"].as_f64().unwrap(),
            r["ms_per_image"].as_f64().unwrap(),
            r["max_ms_per_image"].as_f64().unwrap(),
        );
        assert!(0.0 < min && min <= median && median <= max, "{r}");
    }

    // Kernel bytes per layer from the architecture: positions × kernel² × input channels ×
    // filters, f32.
    let info: Value = serde_json::from_str(&alltnn_ok(&[&"info", &model, &"--json"])).unwrap();
    let mut channels = info["input"]["channels"].as_u64().unwrap();
    let mut want = Vec::new();
    for layer in info["layers"].as_array().unwrap() {
        let spec = &layer["spec"];
        assert_eq!(spec["kind"], "locally_connected");
        let out: Vec<u64> = layer["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let kernel = spec["kernel"].as_u64().unwrap();
        want.push((out[0] * out[1] * kernel * kernel * channels * out[2] * 4) as f64);
        channels = out[2];
    }
    let profiles = doc["native_layers"].as_array().unwrap();
    assert_eq!(profiles.len(), 2);
    for p in profiles {
        let rows = p["layers"].as_array().unwrap();
        let got: Vec<f64> = rows
            .iter()
            .map(|r| r["weight_bytes"].as_f64().unwrap())
            .collect();
        assert_eq!(got, want);
        for r in rows {
            assert!(r["kernel_ms"].as_f64().unwrap() > 0.0, "{r}");
            assert!(r["rest_ms"].as_f64().unwrap() >= 0.0, "{r}");
        }
        assert!(p["readout_ms"].as_f64().unwrap() > 0.0, "{p}");
    }
}
