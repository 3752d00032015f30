//! Example pictures for a person to look at (not checked automatically):
//! `cargo test -p alltnn-analysis --test look -- --ignored` writes them to `$ALLTNN_LOOK_DIR`
//! (default: `<temp dir>/analysis-look`).

use std::path::PathBuf;

use alltnn_analysis::maps::{radial_profile, Map};
use alltnn_analysis::render::{category_png, heatmap_png, line_plot_png, orientation_png, Series};

fn out_dir() -> PathBuf {
    let dir = std::env::var_os("ALLTNN_LOOK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("analysis-look"));
    std::fs::create_dir_all(&dir).expect("create the output folder");
    dir
}

fn gaussian_bump(side: usize, sigma: f64, peak: f64) -> Map {
    let centre = (side - 1) as f64 / 2.0;
    let values = (0..side * side)
        .map(|i| {
            let (dy, dx) = ((i / side) as f64 - centre, (i % side) as f64 - centre);
            (peak * (-(dy * dy + dx * dx) / (2.0 * sigma * sigma)).exp()) as f32
        })
        .collect();
    Map::new(side, side, values).expect("bump")
}

#[test]
#[ignore = "writes pictures for a person to look at"]
fn write_example_pictures() {
    let dir = out_dir();
    let write = |name: &str, png: Vec<u8>| std::fs::write(dir.join(name), png).expect("write");

    let gradient = Map::new(
        12,
        12,
        (0..144).map(|i| ((i / 12) + (i % 12)) as f32).collect(),
    )
    .expect("gradient");
    write(
        "gradient-12x12.png",
        heatmap_png(&gradient, "12x12 gradient (row + column)", "value").expect("heatmap"),
    );

    let bump = gaussian_bump(384, 60.0, 25_000.0);
    write(
        "bump-384x384.png",
        heatmap_png(
            &bump,
            "Stacked energy map, layers 0-4 (synthetic bump)",
            "energy (a.u.)",
        )
        .expect("heatmap"),
    );

    let profile: Vec<(f64, f64)> = radial_profile(&bump)
        .iter()
        .map(|p| (p.radius, p.percent))
        .collect();
    let flatter: Vec<(f64, f64)> = radial_profile(&gaussian_bump(384, 120.0, 1.0))
        .iter()
        .map(|p| (p.radius, p.percent))
        .collect();
    write(
        "profile.png",
        line_plot_png(
            &[Series {
                name: "sigma 60",
                points: &profile,
            }],
            "Radial energy profile from the sheet centre",
            "radius (sheet units)",
            "mean energy within radius (% of centre)",
        )
        .expect("plot"),
    );
    write(
        "profiles-two.png",
        line_plot_png(
            &[
                Series {
                    name: "sigma 60",
                    points: &profile,
                },
                Series {
                    name: "sigma 120",
                    points: &flatter,
                },
            ],
            "Radial energy profiles",
            "radius (sheet units)",
            "% of centre",
        )
        .expect("plot"),
    );

    let mut holes = gradient.clone();
    holes.values[0] = f32::NAN;
    holes.values[13] = f32::INFINITY;
    write(
        "holes-12x12.png",
        heatmap_png(&holes, "Gradient with NaN and inf (grey)", "value").expect("heatmap"),
    );
    let constant = Map::new(3, 20, vec![0.25; 60]).expect("constant");
    write(
        "constant-3x20.png",
        heatmap_png(&constant, "Constant 3x20 map", "value").expect("heatmap"),
    );
}

/// A smooth orientation field with pinwheels: the angle of a sum of plane waves of one spatial
/// frequency in several directions (half the angle, as orientation repeats every half turn);
/// the sum's magnitude stands in for selectivity, low near the pinwheel centres.
fn pinwheel_field(side: usize, period: f64) -> (Map, Map) {
    let k = std::f64::consts::TAU / period;
    let waves: Vec<(f64, f64, f64)> = (0..6)
        .map(|j| {
            let direction = std::f64::consts::PI * (j as f64 + 0.3 * (j % 2) as f64) / 6.0;
            (k * direction.cos(), k * direction.sin(), 1.7 * j as f64)
        })
        .collect();
    let (mut preferred, mut selectivity) = (Vec::new(), Vec::new());
    for i in 0..side * side {
        let (y, x) = ((i / side) as f64, (i % side) as f64);
        let (re, im) = waves.iter().fold((0.0, 0.0), |(re, im), &(kx, ky, phase)| {
            let a = kx * x + ky * y + phase;
            (re + a.cos(), im + a.sin())
        });
        preferred.push((im.atan2(re) / std::f64::consts::TAU).rem_euclid(1.0) as f32);
        selectivity.push(re.hypot(im) as f32);
    }
    (
        Map::new(side, side, preferred).expect("preferred"),
        Map::new(side, side, selectivity).expect("selectivity"),
    )
}

#[test]
#[ignore = "writes pictures for a person to look at"]
fn write_orientation_and_category_pictures() {
    let dir = out_dir();
    let write = |name: &str, png: Vec<u8>| std::fs::write(dir.join(name), png).expect("write");

    let (preferred, selectivity) = pinwheel_field(128, 24.0);
    write(
        "orientation-pinwheels-128x128.png",
        orientation_png(
            &preferred,
            &selectivity,
            "Preferred orientation (synthetic pinwheels)",
        )
        .expect("orientation"),
    );
    let (small_pref, mut small_sel) = pinwheel_field(16, 10.0);
    small_sel.values[17] = f32::NAN;
    write(
        "orientation-16x16-with-nan.png",
        orientation_png(
            &small_pref,
            &small_sel,
            "16x16 orientation map, one NaN unit",
        )
        .expect("orientation"),
    );

    // Blobs of preferred category: the strongest of a few smooth bumps, none where all are weak.
    let names: Vec<String> = ["faces", "bodies", "scenes", "objects", "words"]
        .map(String::from)
        .to_vec();
    let side = 96;
    let centres = [
        (20.0, 25.0),
        (30.0, 70.0),
        (70.0, 20.0),
        (75.0, 75.0),
        (50.0, 48.0),
    ];
    let labels: Vec<Option<usize>> = (0..side * side)
        .map(|i| {
            let (y, x) = ((i / side) as f64, (i % side) as f64);
            // A wobble of its own per category makes the borders irregular, as real ones are.
            let strength = |c: usize| {
                let (cy, cx) = centres[c];
                let k = c as f64;
                let wobble = 150.0 * (0.21 * x + 1.3 * k).sin() * (0.17 * y + 2.1 * k).cos();
                let d2 = (y - cy).powi(2) + (x - cx).powi(2) + wobble;
                (-d2 / (2.0 * 18.0f64.powi(2))).exp()
            };
            let best = (0..centres.len())
                .max_by(|&a, &b| strength(a).total_cmp(&strength(b)))
                .expect("centres");
            let value = strength(best);
            (value > 0.3).then_some(best)
        })
        .collect();
    write(
        "category-96x96.png",
        category_png(
            &labels,
            side,
            side,
            &names,
            "Preferred category (synthetic blobs)",
        )
        .expect("category"),
    );
}
