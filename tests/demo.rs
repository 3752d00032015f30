//! `alltnn demo --quick`: three models trained, mapped and compared in one report whose every
//! picture exists.

mod support;

use support::*;

#[test]
fn quick_demo_writes_a_complete_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let stdout = alltnn_ok(&[&"demo", &"--quick", &"--out", &out]);
    assert!(stdout.contains("All-TNN smoother"), "{stdout}");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("demo.json")).unwrap()).unwrap();
    let models = summary["models"].as_array().unwrap();
    let names: Vec<&str> = models
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alltnn", "lcn", "cnn"]);
    for m in models {
        for field in [
            "test_accuracy",
            "smoothness_4_circular",
            "layer0_mean_entropy",
            "energy_per_stimulus",
            "bias_mean_accuracy",
        ] {
            let v = m[field].as_f64().unwrap_or(f64::NAN);
            assert!(
                v.is_finite() && v >= 0.0,
                "{}: {field} = {}",
                m["model"],
                m[field]
            );
        }
        // Trained, if briefly: well above the 10 % of chance.
        assert!(m["test_accuracy"].as_f64().unwrap() > 0.3, "{m}");
    }
    // The spatial loss makes the All-TNN's weights smoother even after 150 updates.
    let smooth = |i: usize| models[i]["smoothness_4_circular"].as_f64().unwrap();
    assert!(smooth(0) > 2.0 * smooth(1) && smooth(0) > 2.0 * smooth(2));
    assert_eq!(summary["directions"].as_object().unwrap().len(), 3);

    // Every picture the pages show exists.
    for page in [
        "index.html",
        "alltnn/index.html",
        "lcn/index.html",
        "cnn/index.html",
    ] {
        let html = std::fs::read_to_string(out.join(page)).unwrap();
        let dir = out.join(page).parent().unwrap().to_path_buf();
        let sources: Vec<&str> = html
            .split("src=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
            .collect();
        assert!(sources.len() >= 5, "{page}: {} pictures", sources.len());
        for src in sources {
            assert!(dir.join(src).is_file(), "{page} shows a missing {src}");
        }
    }
}
