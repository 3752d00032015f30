//! Example pictures for a person to look at (not checked automatically):
//! `cargo test -p alltnn-analysis --test look -- --ignored` writes them to `$ALLTNN_LOOK_DIR`
//! (default: `<temp dir>/analysis-look`).

use std::path::PathBuf;

use alltnn_analysis::maps::{radial_profile, Map};
use alltnn_analysis::render::{heatmap_png, line_plot_png, Series};

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
