//! `alltnn maps`: the topographic analyses of one model — smoothness, orientation selectivity
//! (the original's grating method, plus column spacing and pinwheel density), category
//! selectivity, spatial-bias (accuracy) maps and energy — as NPY/CSV/JSON data, PNG pictures
//! and an `index.html` that shows them. Responses are folded into per-unit accumulators stimulus
//! by stimulus, so memory does not grow with the number of stimuli.

use std::io::Write;
use std::path::{Path, PathBuf};

use alltnn_analysis::bias::{pearson, BiasAccuracy, BiasGrid};
use alltnn_analysis::category::{category_fractions, selectivity_map, CategoryStats};
use alltnn_analysis::cluster::cluster_size;
use alltnn_analysis::maps::Map;
use alltnn_analysis::orientation::{
    entropy_vs_eccentricity, grating, GratingParams, OrientationTuning,
};
use alltnn_analysis::pinwheels::{pinwheel_density, PinwheelDensity};
use alltnn_analysis::render::{self, Series};
use alltnn_analysis::report::Report;
use alltnn_analysis::spectrum;
use alltnn_runtime::engine::{Engine, Model};
use alltnn_runtime::hardware::EnergyTable;
use alltnn_runtime::sheet::SheetLayout;
use alltnn_runtime::ModelSpec;
use alltnn_trainer::data::{self as dataset, resize_triangle, RawImage, Source, Split};
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::energy::{self, file_stem};
use crate::outputs::{NpyStream, OutputDir};
use crate::stimuli::{self, Stimuli};
use crate::weights;

/// Orientations of the grating set (8 over 180°, as the original).
const ORIENTATIONS: usize = 8;
/// Eccentricity bins of the entropy profile.
const ECCENTRICITY_BINS: usize = 8;
/// Bootstrap seed: the same data give the same interval.
const BOOTSTRAP_SEED: u64 = 0;

/// Topographic maps of a model: smoothness always; orientation (the default), category,
/// spatial bias and energy on request.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Model file (`.tnn`).
    pub model: PathBuf,
    /// Output directory: data (NPY, CSV, maps.json), pictures (PNG) and index.html.
    #[arg(long)]
    pub out: PathBuf,
    /// Orientation selectivity from sine gratings (also the default when no analysis is named).
    #[arg(long)]
    pub orientation: bool,
    /// Grating wavelength in pixels; the phases are wavelength-many steps, as the original.
    #[arg(long, default_value_t = 3.0)]
    pub wavelength: f64,
    /// Orientation-entropy window: (window + 1)² units, wrapping round the sheet.
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Bootstrap resamples for the pinwheel density's 95 % interval.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// A category, NAME=STIMULI (a folder, `.npy` or `FILE.h5:DATASET`), or NAME=CLASS,CLASS…
    /// (class names or indices) with `--category-data`. Repeat for each (at least two).
    #[arg(long = "category", value_name = "NAME=SOURCE")]
    pub categories: Vec<String>,
    /// A labelled dataset (as train's `--data`, e.g. fashion-mnist) whose classes `--category`
    /// names; its test split is used.
    #[arg(long)]
    pub category_data: Option<String>,
    /// At most this many stimuli per category.
    #[arg(long)]
    pub category_limit: Option<usize>,
    /// Spatial-bias maps: objects of this labelled dataset (as train's `--data`; test split)
    /// are shown at every cell of a grid on a uniform background and classified.
    #[arg(long)]
    pub bias: Option<String>,
    /// Grid of the spatial-bias maps (G×G cells).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub bias_grid: u32,
    /// Objects (the first of the test split) shown at every cell.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub bias_limit: u32,
    /// Side of the objects in pixels. Default: three quarters of the input's side, so objects
    /// stay recognisable to a model trained on whole images; they then overlap neighbouring
    /// cells and are clipped at the borders.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub bias_object_size: Option<u32>,
    /// Background grey level (0–255). Default: the median border pixel of the objects (0 for
    /// Fashion-MNIST), so the objects' own backgrounds blend in.
    #[arg(long)]
    pub bias_background: Option<u8>,
    /// A human accuracy map (`.npy`, G×G) to correlate with the model's (Pearson r).
    #[arg(long)]
    pub human_map: Option<PathBuf>,
    /// Energy maps over these stimuli (as `alltnn energy`).
    #[arg(long, num_args = 1..)]
    pub energy: Vec<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
}

pub fn run(args: Args) -> Result<()> {
    let summary = analyse(&args)?;
    println!(
        "wrote maps of {} to {}",
        args.model.display(),
        args.out.display()
    );
    print_summary(&summary);
    Ok(())
}

/// Runs every requested analysis; returns what `maps.json` holds.
pub fn analyse(args: &Args) -> Result<Value> {
    let mapped = weights::map(&args.model)?;
    let file = weights::verified(&mapped, &args.model)?;
    let model = Model::from_file(&file).with_context(|| format!("{}", args.model.display()))?;
    let categories = parse_categories(args, model.spec())?;
    if args.human_map.is_some() && args.bias.is_none() {
        bail!("--human-map needs --bias DATA: the model's map is made from it");
    }
    let human = args
        .human_map
        .as_deref()
        .map(|p| read_human_map(p, args.bias_grid as usize))
        .transpose()?;
    let orientation =
        args.orientation || (categories.is_none() && args.bias.is_none() && args.energy.is_empty());

    let name = file_stem(&args.model);
    let mut out = OutputDir::create(&args.out)?;
    let mut report = Report::new(&format!("alltnn maps: {name}"));
    report.paragraph(&format!(
        "Model {} — {}. Activations are post-ReLU, before the norm, laid out as cortical sheets \
         (DESIGN.md). Data files (NPY, CSV, maps.json) lie beside this page.",
        args.model.display(),
        describe(model.spec())
    ));
    let mut summary = json!({ "model": args.model, "name": name });

    // From the file already mapped and verified, not read again.
    let imported = weights::from_tnn(&file, &args.model)?;
    summary["smoothness"] = smoothness(&imported, &mut report);

    let batch = args.batch as usize;
    if orientation {
        summary["orientation"] = orientation_maps(&model, args, batch, &mut out, &mut report)?;
    }
    if let Some(categories) = &categories {
        summary["category"] = category_maps(&model, categories, batch, &mut out, &mut report)?;
    }
    if let Some(data) = &args.bias {
        summary["bias"] = bias_maps(&model, args, data, human.as_deref(), &mut out, &mut report)?;
    }
    if !args.energy.is_empty() {
        summary["energy"] = energy_maps(args, &mut report)?;
    }
    let mut json = out.file("maps.json")?;
    serde_json::to_writer_pretty(&mut json, &summary)?;
    json.flush()?;
    drop(json);
    // The page comes last: it only appears with everything it shows.
    out.write("index.html", report.html().as_bytes())?;
    out.commit()?;
    Ok(summary)
}

fn describe(spec: &ModelSpec) -> String {
    let layers: Vec<String> = spec
        .layers
        .iter()
        .map(|l| format!("{:?} {}×{}×{}", l.kind, l.kernel, l.kernel, l.filters))
        .collect();
    format!(
        "input {}×{}×{}; layers {}",
        spec.input.height,
        spec.input.width,
        spec.input.channels,
        layers.join(", ")
    )
}

fn smoothness(model: &alltnn_converter::ImportedModel, report: &mut Report) -> Value {
    let value = crate::spatial::report(model);
    report.heading("Smoothness");
    report.paragraph(
        "Spatial distance per layer: (1 − mean cosine of neighbouring units' [weights, bias]) / 2 \
         on the sheet (4 or 8 neighbours, torus or open sheet); smoothness = 1 / Σ_l distance_l, \
         as the paper plots it. Conv layers are measured as their kernel repeated at every \
         position.",
    );
    let variants = ["4_circular", "4_open", "8_circular", "8_open"];
    let mut headers = vec!["layer", "kind"];
    headers.extend(variants);
    let mut rows: Vec<Vec<String>> = value["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let kind = l["kind"].as_str().unwrap_or_default().replace('_', " ");
            let mut row = vec![l["layer"].to_string(), kind];
            row.extend(variants.iter().map(|v| fmt(l[*v].as_f64())));
            row
        })
        .collect();
    let mut total = vec!["smoothness 1/Σ".to_string(), String::new()];
    total.extend(
        variants
            .iter()
            .map(|v| fmt(value["smoothness"][*v].as_f64())),
    );
    rows.push(total);
    report.table(&headers, &rows);
    value
}

/// A number for a table: 4 significant digits, "–" for none.
pub fn fmt(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        Some(v) => format!("{v}"),
        None => "–".into(),
    }
}

/// Runs stimuli `0..count` through the model `batch` at a time: `input(i, slot)` writes
/// stimulus `i`'s preprocessed values (in parallel), `visit(i, engine, row)` reads its results.
fn forward(
    model: &Model,
    batch: usize,
    count: usize,
    label: &str,
    input: impl Fn(usize, &mut [f32]) -> Result<()> + Sync,
    mut visit: impl FnMut(usize, &Engine, usize) -> Result<()>,
) -> Result<()> {
    let len = input_len(model.spec());
    let batch = batch.min(count).max(1);
    let mut engine = Engine::new(model, batch)?;
    let mut images = vec![0.0f32; batch * len];
    let progress = stimuli::progress_bar(count);
    progress.set_message(format!("{label} "));
    for first in (0..count).step_by(batch) {
        let n = batch.min(count - first);
        let buffer = &mut images[..n * len];
        buffer
            .par_chunks_mut(len)
            .enumerate()
            .map(|(j, slot)| input(first + j, slot))
            .collect::<Result<()>>()?;
        engine.run(buffer)?;
        for row in 0..n {
            visit(first + row, &engine, row)?;
        }
        progress.inc(n as u64);
    }
    progress.finish_and_clear();
    Ok(())
}

fn input_len(spec: &ModelSpec) -> usize {
    (spec.input.height * spec.input.width * spec.input.channels) as usize
}

/// Writes an 8-bit HWC image of the model's input size into `slot`, preprocessed. Grey and
/// colour are converted to the model's channels (grey repeated; colour by luma, as the trainer).
fn fill_pixels(spec: &ModelSpec, pixels: &[u8], channels: usize, slot: &mut [f32]) {
    let want = spec.input.channels as usize;
    let pre = spec.input.preprocess;
    for (i, out) in slot.chunks_mut(want).enumerate() {
        let px = &pixels[i * channels..(i + 1) * channels];
        for (c, o) in out.iter_mut().enumerate() {
            let v = match (channels, want) {
                (1, _) => f32::from(px[0]),
                (_, 1) => {
                    0.2989 * f32::from(px[0]) + 0.587 * f32::from(px[1]) + 0.114 * f32::from(px[2])
                }
                _ => f32::from(px[c]),
            };
            *o = pre.apply(v);
        }
    }
}

/// A dataset image resized (antialiased, as the trainer without its random crop) to the
/// model's input and preprocessed into `slot`.
pub fn fill_raw(spec: &ModelSpec, image: &RawImage, slot: &mut [f32]) {
    let (h, w) = (spec.input.height as usize, spec.input.width as usize);
    let values: Vec<f32> = image.pixels.iter().map(|&p| f32::from(p)).collect();
    let resized = if (image.height, image.width) == (h, w) {
        values
    } else {
        resize_triangle(&values, image.height, image.width, image.channels, h, w)
    };
    let pixels: Vec<u8> = resized
        .iter()
        .map(|&v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    fill_pixels(spec, &pixels, image.channels, slot);
}

/// Layer `l`'s post-ReLU activation of batch row `row` as its sheet.
fn sheet(engine: &Engine, model: &Model, l: usize, row: usize) -> Result<Map> {
    let [h, w, c] = model.geometry()[l].output;
    let len = h * w * c;
    Ok(Map::from_hwc(
        &engine.activation(l)[row * len..(row + 1) * len],
        h,
        w,
        c,
    )?)
}

fn sheet_shape(model: &Model, l: usize) -> (usize, usize) {
    let [h, w, c] = model.geometry()[l].output;
    SheetLayout::new(h, w, c).shape()
}

fn write_npy(out: &mut OutputDir, name: &str, shape: &[usize], values: &[f32]) -> Result<()> {
    let mut npy = NpyStream::new(out.file(name)?, shape)?;
    npy.push(values)?;
    npy.finish()
}

fn write_map(out: &mut OutputDir, name: &str, map: &Map) -> Result<()> {
    write_npy(out, name, &[map.rows, map.cols], &map.values)
}

fn orientation_maps(
    model: &Model,
    args: &Args,
    batch: usize,
    out: &mut OutputDir,
    report: &mut Report,
) -> Result<Value> {
    let spec = model.spec();
    if !(args.wavelength >= 2.0 && args.wavelength.is_finite()) {
        bail!("--wavelength must be at least 2 pixels");
    }
    let params = GratingParams {
        wavelength: args.wavelength,
        orientations: ORIENTATIONS,
        ..GratingParams::new(spec.input.height as usize, spec.input.width as usize)
    };
    let phases = params.phases();
    let layers = model.geometry().len();
    let mut tunings: Vec<OrientationTuning> = (0..layers)
        .map(|l| {
            let (rows, cols) = sheet_shape(model, l);
            OrientationTuning::new(rows, cols, ORIENTATIONS)
        })
        .collect();
    forward(
        model,
        batch,
        ORIENTATIONS * phases,
        "gratings",
        |i, slot| {
            let image = grating(&params, i / phases, i % phases);
            fill_pixels(spec, &image, 3, slot);
            Ok(())
        },
        |i, engine, row| {
            for (l, tuning) in tunings.iter_mut().enumerate() {
                tuning.add(i / phases, &sheet(engine, model, l, row)?)?;
            }
            Ok(())
        },
    )?;

    report.heading("Orientation selectivity");
    report.paragraph(&format!(
        "The original's method: grey sine gratings at the input size, wavelength {} px, {} \
         orientations over 180°, {phases} phases; each unit's response is its maximum over \
         phases. Hue: preferred orientation; brightness: selectivity (the original's spread). \
         Entropy (nats, at most ln 8 = 2.08) of the preferred orientations in a {w}×{w} window \
         wrapping round the sheet. Column spacing Λ: the peak of the orientation field's radial \
         power spectrum; pinwheels: winding number ±1 around a 2×2 plaquette of the orientation \
         field band-passed around 1/Λ (as Kaschube et al. 2010, so unit-level noise adds none); \
         density ρ = pinwheels per Λ² (ρ ≈ π in cortex), marked where the sheet holds fewer \
         than 4 Λ².",
        args.wavelength,
        ORIENTATIONS,
        w = args.window + 1
    ));
    let mut rows = Vec::new();
    let mut layer_values = Vec::new();
    let mut eccentricity_series = Vec::new();
    let mut power_series = Vec::new();
    let mut csv = String::from("layer,eccentricity,relative_eccentricity,mean_entropy,units\n");
    let mut power_csv = String::from("layer,frequency,power\n");
    for (l, tuning) in tunings.iter().enumerate() {
        let maps = tuning.analyse(args.window)?;
        write_map(
            out,
            &format!("orientation_l{l}_preferred.npy"),
            &maps.preferred,
        )?;
        write_map(
            out,
            &format!("orientation_l{l}_selectivity.npy"),
            &maps.selectivity,
        )?;
        write_map(out, &format!("orientation_l{l}_entropy.npy"), &maps.entropy)?;
        let png = render::orientation_png(
            &maps.preferred,
            &maps.selectivity,
            &format!("Layer {l}: preferred orientation"),
        )?;
        out.write(&format!("orientation_l{l}.png"), &png)?;
        let png = render::heatmap_png(
            &maps.entropy,
            &format!("Layer {l}: orientation entropy"),
            "entropy (nats)",
        )?;
        out.write(&format!("orientation_l{l}_entropy.png"), &png)?;

        let profile = entropy_vs_eccentricity(&maps.entropy, ECCENTRICITY_BINS);
        let max_ecc = profile.iter().map(|p| p.eccentricity).fold(0.0, f64::max);
        let points: Vec<(f64, f64)> = profile
            .iter()
            .map(|p| (p.eccentricity / max_ecc.max(f64::MIN_POSITIVE), p.mean))
            .collect();
        for (p, (rel, _)) in profile.iter().zip(&points) {
            csv.push_str(&format!(
                "{l},{},{rel},{},{}\n",
                p.eccentricity, p.mean, p.count
            ));
        }
        let finite: Vec<f64> = profile
            .iter()
            .map(|p| p.mean)
            .filter(|m| m.is_finite())
            .collect();
        let (centre, periphery) = (finite.first().copied(), finite.last().copied());
        eccentricity_series.push((format!("layer {l}"), points));

        let spectrum = spectrum::orientation_power_spectrum(&maps.preferred);
        for p in &spectrum {
            power_csv.push_str(&format!("{l},{},{}\n", p.frequency, p.power));
        }
        let total: f64 = spectrum.iter().map(|p| p.power).sum();
        power_series.push((
            format!("layer {l}"),
            spectrum
                .iter()
                .filter(|p| p.frequency > 0.0)
                .map(|p| (p.frequency, p.power / total.max(f64::MIN_POSITIVE)))
                .collect::<Vec<_>>(),
        ));
        let pinwheels = pinwheel_density(&maps.preferred, args.bootstrap, BOOTSTRAP_SEED);
        rows.push(vec![
            l.to_string(),
            format!("{}×{}", maps.preferred.rows, maps.preferred.cols),
            fmt(Some(maps.mean_entropy)),
            fmt(centre),
            fmt(periphery),
            fmt(Some(maps.cluster_size)),
            fmt(pinwheels.as_ref().map(|p| p.lambda)),
            pinwheels
                .as_ref()
                .map_or("–".into(), |p| p.pinwheels.to_string()),
            pinwheels.as_ref().map_or("–".into(), |p| {
                let mark = if density_reliable(p) { "" } else { SMALL_SHEET };
                format!("{:.2} [{:.2}, {:.2}]{mark}", p.density, p.ci_low, p.ci_high)
            }),
        ]);
        layer_values.push(json!({
            "layer": l,
            "sheet": [maps.preferred.rows, maps.preferred.cols],
            "mean_entropy": maps.mean_entropy,
            "entropy_centre": centre,
            "entropy_periphery": periphery,
            "entropy_vs_eccentricity": profile,
            "cluster_size": finite_or_null(maps.cluster_size),
            "pinwheels": pinwheels,
            "pinwheel_density_reliable": pinwheels.as_ref().map(density_reliable),
        }));
    }
    out.write("orientation_eccentricity.csv", csv.as_bytes())?;
    out.write("orientation_power.csv", power_csv.as_bytes())?;
    let png = plot_named(
        &eccentricity_series,
        "Orientation entropy vs eccentricity",
        "eccentricity (fraction of the largest)",
        "mean entropy (nats)",
    )?;
    out.write("orientation_eccentricity.png", &png)?;
    let png = plot_named(
        &power_series,
        "Radial power spectrum of the orientation maps",
        "spatial frequency (cycles per unit)",
        "share of power",
    )?;
    out.write("orientation_power.png", &png)?;

    report.table(
        &[
            "layer",
            "sheet",
            "mean entropy",
            "entropy, centre",
            "entropy, periphery",
            "cluster size",
            "Λ (units)",
            "pinwheels",
            "ρ [95 % CI]",
        ],
        &rows,
    );
    report.figure("orientation_eccentricity.png", "Entropy vs eccentricity");
    report.figure("orientation_power.png", "Radial power spectra");
    for l in 0..tunings.len() {
        report.figure(
            &format!("orientation_l{l}.png"),
            &format!("Layer {l}: preferred orientation (hue) and selectivity (brightness)"),
        );
        report.figure(
            &format!("orientation_l{l}_entropy.png"),
            &format!("Layer {l}: orientation entropy"),
        );
    }
    Ok(json!({
        "wavelength": args.wavelength,
        "orientations": ORIENTATIONS,
        "phases": phases,
        "window": args.window,
        "layers": layer_values,
    }))
}

/// Appended to a pinwheel density that [`density_reliable`] does not trust.
pub const SMALL_SHEET: &str = " (sheet < 4 Λ²)";

/// A density needs several columns: on a sheet smaller than 4 Λ² (e.g. a map with one
/// domain across the sheet) the count is a handful and the blocks of the bootstrap are few.
fn density_reliable(p: &PinwheelDensity) -> bool {
    p.area_in_lambda2 >= 4.0
}

/// [`render::line_plot_png`] of owned, named series.
pub fn plot_named(
    series: &[(String, Vec<(f64, f64)>)],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> Result<Vec<u8>> {
    let series: Vec<Series> = series
        .iter()
        .map(|(name, points)| Series { name, points })
        .collect();
    Ok(render::line_plot_png(&series, title, x_label, y_label)?)
}

fn finite_or_null(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// Where the stimuli of one category come from.
enum CategorySource {
    Stimuli(Stimuli),
    Classes(Vec<usize>),
}

struct Categories {
    names: Vec<String>,
    sources: Vec<CategorySource>,
    /// The labelled dataset of `CategorySource::Classes`.
    data: Option<Box<dyn Source>>,
    limit: Option<usize>,
}

fn parse_categories(args: &Args, spec: &ModelSpec) -> Result<Option<Categories>> {
    if args.categories.is_empty() {
        if args.category_data.is_some() {
            bail!("--category-data needs --category NAME=CLASS,… for each category");
        }
        return Ok(None);
    }
    if args.categories.len() < 2 {
        bail!("category selectivity needs at least two --category");
    }
    let data = args
        .category_data
        .as_deref()
        .map(|d| dataset::open(d, Split::Test).with_context(|| d.to_string()))
        .transpose()?;
    let class_names = args.category_data.as_deref().and_then(dataset::class_names);
    let mut names = Vec::new();
    let mut sources = Vec::new();
    for arg in &args.categories {
        let Some((name, source)) = arg.split_once('=') else {
            bail!("--category {arg}: expected NAME=SOURCE");
        };
        if name.is_empty() || names.iter().any(|n| n == name) {
            bail!("--category {arg}: category names must be non-empty and distinct");
        }
        let source = match &data {
            Some(data) => CategorySource::Classes(
                parse_classes(source, class_names.as_deref(), data.classes())
                    .with_context(|| format!("--category {arg}"))?,
            ),
            None => CategorySource::Stimuli(Stimuli::open(&[PathBuf::from(source)], spec)?),
        };
        names.push(name.to_string());
        sources.push(source);
    }
    Ok(Some(Categories {
        names,
        sources,
        data,
        limit: args.category_limit,
    }))
}

/// Class indices from names (case-insensitive) or numbers, separated by commas.
fn parse_classes(list: &str, names: Option<&[String]>, classes: usize) -> Result<Vec<usize>> {
    list.split(',')
        .map(|token| {
            let token = token.trim();
            if let Ok(i) = token.parse::<usize>() {
                if i >= classes {
                    bail!("class {i} is out of range (the dataset has {classes})");
                }
                return Ok(i);
            }
            names
                .and_then(|n| n.iter().position(|n| n.eq_ignore_ascii_case(token)))
                .with_context(|| match names {
                    Some(n) => format!("unknown class `{token}` (classes: {})", n.join(", ")),
                    None => format!(
                        "unknown class `{token}`: this dataset has no class names, give indices"
                    ),
                })
        })
        .collect()
}

fn category_maps(
    model: &Model,
    categories: &Categories,
    batch: usize,
    out: &mut OutputDir,
    report: &mut Report,
) -> Result<Value> {
    let spec = model.spec();
    // (category, stimulus index within its source) of every stimulus, in order.
    let mut items: Vec<(usize, usize)> = Vec::new();
    for (k, source) in categories.sources.iter().enumerate() {
        let indices: Vec<usize> = match source {
            CategorySource::Stimuli(stimuli) => (0..stimuli.len()).collect(),
            CategorySource::Classes(classes) => {
                let data = categories
                    .data
                    .as_ref()
                    .expect("classes come with a dataset");
                (0..data.len())
                    .filter(|&i| classes.contains(&data.label(i)))
                    .collect()
            }
        };
        let n = categories
            .limit
            .map_or(indices.len(), |m| m.min(indices.len()));
        if n == 0 {
            bail!("category `{}` has no stimuli", categories.names[k]);
        }
        items.extend(indices[..n].iter().map(|&i| (k, i)));
    }
    let layers = model.geometry().len();
    let mut stats: Vec<CategoryStats> = (0..layers)
        .map(|l| {
            let (rows, cols) = sheet_shape(model, l);
            CategoryStats::new(categories.names.clone(), rows, cols)
        })
        .collect::<Result<_, _>>()?;
    forward(
        model,
        batch,
        items.len(),
        "categories",
        |i, slot| {
            let (k, index) = items[i];
            match &categories.sources[k] {
                CategorySource::Stimuli(stimuli) => stimuli.load_batch(index, slot),
                CategorySource::Classes(_) => {
                    let data = categories
                        .data
                        .as_ref()
                        .expect("classes come with a dataset");
                    let image = data.image(index)?;
                    fill_raw(spec, &image, slot);
                    Ok(())
                }
            }
        },
        |i, engine, row| {
            for (l, s) in stats.iter_mut().enumerate() {
                s.add(items[i].0, &sheet(engine, model, l, row)?)?;
            }
            Ok(())
        },
    )?;

    let names = &categories.names;
    report.heading("Category selectivity");
    report.paragraph(&format!(
        "d′ of each unit for each category against the others pooled: (μ_k − μ_rest) / ((σ_k + \
         σ_rest)/2 + 1e-10), population SDs, over {} stimuli ({}). The argmax map shows each \
         unit's most selective category; cluster size is the original's on that map.",
        items.len(),
        names
            .iter()
            .zip(stats[0].counts())
            .map(|(n, c)| format!("{n}: {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut layer_values = Vec::new();
    let mut rows = Vec::new();
    for (l, s) in stats.iter().enumerate() {
        let dprimes = s.dprime()?;
        let (argmax, best) = selectivity_map(&dprimes)?;
        let (sheet_rows, sheet_cols) = (best.rows, best.cols);
        let mut stacked = Vec::with_capacity(dprimes.len() * sheet_rows * sheet_cols);
        let mut per_category = Vec::new();
        for (k, map) in dprimes.iter().enumerate() {
            stacked.extend_from_slice(&map.values);
            let png = render::heatmap_png(map, &format!("Layer {l}: d′ {}", names[k]), "d′")?;
            out.write(&format!("category_l{l}_dprime_{k}.png"), &png)?;
            let max = map
                .values
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(f32::NEG_INFINITY, f32::max);
            per_category.push(json!({"category": names[k], "max_dprime": max}));
        }
        write_npy(
            out,
            &format!("category_l{l}_dprime.npy"),
            &[dprimes.len(), sheet_rows, sheet_cols],
            &stacked,
        )?;
        write_map(out, &format!("category_l{l}_best_dprime.npy"), &best)?;
        let argmax_values: Vec<f32> = argmax
            .iter()
            .map(|a| a.map_or(f32::NAN, |k| k as f32))
            .collect();
        write_npy(
            out,
            &format!("category_l{l}_argmax.npy"),
            &[sheet_rows, sheet_cols],
            &argmax_values,
        )?;
        let png = render::category_png(
            &argmax,
            sheet_rows,
            sheet_cols,
            names,
            &format!("Layer {l}: most selective category"),
        )?;
        out.write(&format!("category_l{l}_argmax.png"), &png)?;
        let png = render::heatmap_png(&best, &format!("Layer {l}: largest d′"), "d′")?;
        out.write(&format!("category_l{l}_best_dprime.png"), &png)?;
        let fractions = category_fractions(&argmax, names.len());
        let cluster = cluster_size(&argmax, sheet_rows, sheet_cols, names.len());
        rows.push(
            [l.to_string(), fmt(Some(cluster))]
                .into_iter()
                .chain(fractions.iter().map(|f| format!("{:.1} %", 100.0 * f)))
                .collect(),
        );
        layer_values.push(json!({
            "layer": l,
            "sheet": [sheet_rows, sheet_cols],
            "fractions": fractions,
            "cluster_size": finite_or_null(cluster),
            "categories": per_category,
        }));
    }
    let mut headers = vec!["layer".to_string(), "cluster size".to_string()];
    headers.extend(names.iter().map(|n| format!("units preferring {n}")));
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    report.table(&headers, &rows);
    for l in 0..layers {
        report.figure(
            &format!("category_l{l}_argmax.png"),
            &format!("Layer {l}: most selective category"),
        );
        report.figure(
            &format!("category_l{l}_best_dprime.png"),
            &format!("Layer {l}: largest d′"),
        );
        for (k, name) in names.iter().enumerate() {
            report.figure(
                &format!("category_l{l}_dprime_{k}.png"),
                &format!("Layer {l}: d′ {name}"),
            );
        }
    }
    Ok(json!({
        "categories": names,
        "stimuli": stats[0].counts(),
        "layers": layer_values,
    }))
}

fn read_human_map(path: &Path, grid: usize) -> Result<Vec<f64>> {
    let context = || format!("{}", path.display());
    let bytes = std::fs::read(path).with_context(context)?;
    let npy = npyz::NpyFile::new(&bytes[..]).with_context(context)?;
    let shape: Vec<u64> = npy.shape().to_vec();
    if shape != [grid as u64, grid as u64] {
        bail!(
            "{}: a human map must be {grid}×{grid} (the --bias-grid), not {shape:?}",
            path.display()
        );
    }
    let values: Vec<f64> = match npy.dtype() {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 8 => {
            npy.into_vec::<f64>().with_context(context)?
        }
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 4 => {
            npy.into_vec::<f32>()
                .with_context(context)?
                .into_iter()
                .map(f64::from)
                .collect()
        }
        other => bail!(
            "{}: expected float32 or float64 values, found {other:?}",
            path.display()
        ),
    };
    Ok(values)
}

/// The median of the objects' border pixels: the background their own pictures have.
fn border_median(data: &dyn Source, count: usize) -> Result<u8> {
    let mut border = Vec::new();
    for i in 0..count.min(100) {
        let image = data.image(i)?;
        let (h, w, c) = (image.height, image.width, image.channels);
        for y in 0..h {
            for x in 0..w {
                if y == 0 || x == 0 || y + 1 == h || x + 1 == w {
                    let px = &image.pixels[(y * w + x) * c..(y * w + x + 1) * c];
                    border.push((px.iter().map(|&p| u32::from(p)).sum::<u32>() / c as u32) as u8);
                }
            }
        }
    }
    border.sort_unstable();
    Ok(border.get(border.len() / 2).copied().unwrap_or(128))
}

fn bias_maps(
    model: &Model,
    args: &Args,
    data_spec: &str,
    human: Option<&[f64]>,
    out: &mut OutputDir,
    report: &mut Report,
) -> Result<Value> {
    let spec = model.spec();
    let data = dataset::open(data_spec, Split::Test).with_context(|| data_spec.to_string())?;
    let classes = data.classes();
    let outputs = spec.readout.classes as usize;
    if classes > outputs {
        bail!("--bias {data_spec}: {classes} classes, but the model has {outputs} outputs");
    }
    let objects = (args.bias_limit as usize).min(data.len());
    if objects == 0 {
        bail!("--bias {data_spec}: the test split is empty");
    }
    let mut grid = BiasGrid::new(spec.input.height as usize, spec.input.width as usize);
    grid.grid = args.bias_grid as usize;
    grid.object_size = args
        .bias_object_size
        .map_or((grid.height.min(grid.width) * 3 / 4).max(1), |s| s as usize);
    grid.background = match args.bias_background {
        Some(b) => b,
        None => border_median(data.as_ref(), objects)?,
    };
    let cells = grid.grid * grid.grid;
    let mut accuracy = BiasAccuracy::new(grid.grid, classes)?;
    let place = |i: usize| -> Result<(Vec<u8>, usize)> {
        let (object, cell) = (i / cells, i % cells);
        let image = data.image(object)?;
        let placed = grid.place(
            &image.pixels,
            image.height,
            image.width,
            image.channels,
            cell,
        )?;
        Ok((placed, data.label(object)))
    };
    forward(
        model,
        args.batch as usize,
        objects * cells,
        "spatial bias",
        |i, slot| {
            let (pixels, _) = place(i)?;
            fill_pixels(spec, &pixels, 3, slot);
            Ok(())
        },
        |i, engine, row| {
            let logits = &engine.logits()[row * outputs..(row + 1) * outputs];
            let predicted = argmax(logits);
            let label = data.label(i / cells);
            accuracy.add(label, i % cells, predicted == label)?;
            Ok(())
        },
    )?;
    // What the model saw: the first object at every cell.
    let montage = montage(&grid, |cell| place(cell).map(|(p, _)| p))?;
    out.write("bias_stimuli.png", &montage)?;

    let overall = accuracy.overall();
    let per_class = accuracy.maps();
    write_map(out, "bias_accuracy.npy", &overall)?;
    let stacked: Vec<f32> = per_class
        .iter()
        .flat_map(|m| m.values.iter().copied())
        .collect();
    write_npy(
        out,
        "bias_accuracy_per_class.npy",
        &[classes, grid.grid, grid.grid],
        &stacked,
    )?;
    let png = render::heatmap_png(&overall, "Accuracy by object position", "top-1 accuracy")?;
    out.write("bias_accuracy.png", &png)?;
    let names = dataset::class_names(data_spec);
    let class_name = |c: usize| {
        names
            .as_ref()
            .and_then(|n| n.get(c).cloned())
            .unwrap_or_else(|| c.to_string())
    };
    for (c, map) in per_class.iter().enumerate() {
        let png = render::heatmap_png(
            map,
            &format!("Accuracy by position: {}", class_name(c)),
            "top-1 accuracy",
        )?;
        out.write(&format!("bias_accuracy_class_{c}.png"), &png)?;
    }
    let centre = grid.grid / 2;
    let centre_acc = overall.values[centre * grid.grid + centre];
    let mean_acc = overall.values.iter().map(|&v| f64::from(v)).sum::<f64>() / cells as f64;
    let human_r = human.map(|h| {
        let model_map: Vec<f64> = overall.values.iter().map(|&v| f64::from(v)).collect();
        pearson(&model_map, h)
    });
    report.heading("Spatial bias");
    report.paragraph(&format!(
        "{objects} test objects of {data_spec} shown at each cell of a {g}×{g} grid ({size} px \
         objects on a background of grey level {bg}) and classified: accuracy per position, the \
         model side of the paper's human spatial-bias comparison. Mean accuracy {:.3}, centre \
         cell {:.3}.{}",
        mean_acc,
        centre_acc,
        match human_r {
            Some(Some(r)) => format!(" Pearson r with the human map: {r:.3}."),
            Some(None) => " Pearson r with the human map is undefined (a constant map).".into(),
            None => String::new(),
        },
        g = grid.grid,
        size = grid.object_size,
        bg = grid.background,
    ));
    report.figure("bias_stimuli.png", "The first object at every position");
    report.figure("bias_accuracy.png", "Accuracy by position, all classes");
    for c in 0..classes {
        report.figure(
            &format!("bias_accuracy_class_{c}.png"),
            &format!("Accuracy: {}", class_name(c)),
        );
    }
    Ok(json!({
        "data": data_spec,
        "grid": grid.grid,
        "objects": objects,
        "object_size": grid.object_size,
        "background": grid.background,
        "mean_accuracy": mean_acc,
        "centre_accuracy": centre_acc,
        "accuracy": overall.values,
        "human_pearson_r": human_r.flatten(),
    }))
}

/// Top-1 accuracy of the model on the first `limit` test images of a labelled dataset, resized
/// to the model's input without a crop.
pub fn accuracy(path: &Path, data_spec: &str, limit: usize, batch: usize) -> Result<f64> {
    let mapped = weights::map(path)?;
    let file = weights::verified(&mapped, path)?;
    let model = Model::from_file(&file).with_context(|| format!("{}", path.display()))?;
    let spec = model.spec();
    let data = dataset::open(data_spec, Split::Test).with_context(|| data_spec.to_string())?;
    let outputs = spec.readout.classes as usize;
    if data.classes() > outputs {
        bail!(
            "{data_spec}: {} classes, but the model has {outputs} outputs",
            data.classes()
        );
    }
    let count = limit.min(data.len());
    if count == 0 {
        bail!("{data_spec}: the test split is empty");
    }
    let mut correct = 0usize;
    forward(
        &model,
        batch,
        count,
        "accuracy",
        |i, slot| {
            fill_raw(spec, &data.image(i)?, slot);
            Ok(())
        },
        |i, engine, row| {
            let logits = &engine.logits()[row * outputs..(row + 1) * outputs];
            correct += usize::from(argmax(logits) == data.label(i));
            Ok(())
        },
    )?;
    Ok(correct as f64 / count as f64)
}

fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// A G×G picture of stimuli (one per cell), each scaled up 4× so a person can see them.
fn montage(grid: &BiasGrid, stimulus: impl Fn(usize) -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    const SCALE: usize = 4;
    const GAP: usize = 4;
    let (h, w, g) = (grid.height * SCALE, grid.width * SCALE, grid.grid);
    let (width, height) = (g * w + (g + 1) * GAP, g * h + (g + 1) * GAP);
    let mut canvas =
        image::RgbImage::from_pixel(width as u32, height as u32, image::Rgb([255, 255, 255]));
    for cell in 0..g * g {
        let pixels = stimulus(cell)?;
        let (top, left) = (GAP + (cell / g) * (h + GAP), GAP + (cell % g) * (w + GAP));
        for y in 0..h {
            for x in 0..w {
                let i = ((y / SCALE) * grid.width + x / SCALE) * 3;
                canvas.put_pixel(
                    (left + x) as u32,
                    (top + y) as u32,
                    image::Rgb([pixels[i], pixels[i + 1], pixels[i + 2]]),
                );
            }
        }
    }
    let mut png = Vec::new();
    canvas
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding the stimulus montage")?;
    Ok(png)
}

fn energy_maps(args: &Args, report: &mut Report) -> Result<Value> {
    let m = energy::measure(
        &args.model,
        &args.energy,
        args.batch as usize,
        &EnergyTable::default(),
    )?;
    energy::write_outputs(&args.out.join("energy"), &m)?;
    report.heading("Energy");
    report.paragraph(&format!(
        "The original's energy per unit, E = E_post/3 + 2·E_pre/3, summed over {} stimuli; \
         layers 0–{} resized to the largest sheet and summed (the original leaves the last \
         layer out). Mean per stimulus: {:.4e}. Full data in energy/.",
        m.json["stimuli"],
        m.units.len().saturating_sub(2),
        m.original_per_stimulus
    ));
    report.figure("energy/energy_stacked.png", "Stacked energy map");
    report.figure(
        "energy/energy_radial.png",
        "Energy within radius of the sheet centre",
    );
    Ok(m.json["summary"].clone())
}

fn print_summary(summary: &Value) {
    if let Some(s) = summary["smoothness"]["smoothness"]["4_circular"].as_f64() {
        println!("smoothness (4 neighbours, torus): {s:.4}");
    }
    for l in summary["orientation"]["layers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "layer {}: orientation entropy {} (centre {}, periphery {}), pinwheel density {}",
            l["layer"],
            fmt(l["mean_entropy"].as_f64()),
            fmt(l["entropy_centre"].as_f64()),
            fmt(l["entropy_periphery"].as_f64()),
            fmt(l["pinwheels"]["density"].as_f64()),
        );
    }
    if let Some(a) = summary["bias"]["mean_accuracy"].as_f64() {
        println!("spatial bias: mean accuracy over positions {a:.3}");
    }
    if let Some(e) = summary["energy"]["total_per_stimulus"].as_f64() {
        println!("energy per stimulus (layers 0..n-2): {e:.4e}");
    }
}
