//! The sheet layout against the Keras fixture's probes: the value of the stimulus-0 post-ReLU
//! sheet at given coordinates (reference.json `sheet_probes`).

mod support;

use alltnn_runtime::sheet::SheetLayout;
use support::*;

#[test]
fn sheet_probes_match_the_reference() {
    let fixture = fixtures().join("tiny-alltnn");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("reference.json")).unwrap())
            .unwrap();
    let probes = reference["sheet_probes"].as_array().unwrap();
    assert!(probes.len() >= 16);
    for p in probes {
        let l = p["layer"].as_u64().unwrap();
        let relu = read_npy_f32(&fixture.join(format!("relu_{l}.npy")));
        let [_, h, w, c] = relu.shape[..] else {
            panic!("rank")
        };
        let layout = SheetLayout::new(h, w, c);
        let sheet = layout.sheet(&relu.data[..h * w * c]);
        let (rows, cols) = layout.shape();
        assert_eq!(
            [rows as u64, cols as u64],
            [
                p["sheet_shape"][0].as_u64().unwrap(),
                p["sheet_shape"][1].as_u64().unwrap()
            ]
        );
        let (row, col) = (
            p["row"].as_u64().unwrap() as usize,
            p["col"].as_u64().unwrap() as usize,
        );
        let want = p["value"].as_f64().unwrap() as f32;
        assert_eq!(sheet[row * cols + col], want, "layer {l} at ({row}, {col})");
    }
}
