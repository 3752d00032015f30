//! Pictures a person looks at: heat maps of sheets and line plots of profiles, as PNG bytes.
//!
//! Drawn with `plotters` into an in-memory RGB buffer and encoded with `image`; text uses the
//! embedded DejaVu Sans (assets/DejaVuSans-LICENSE.txt), so nothing depends on system fonts.

use std::io::Cursor;
use std::sync::OnceLock;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use plotters::backend::RGBPixel;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle, RGBColor};

use crate::error::AnalysisError;
use crate::maps::Map;

/// One named line of a [`line_plot_png`]. Points with a non-finite coordinate break the line.
#[derive(Clone, Copy, Debug)]
pub struct Series<'a> {
    /// The legend entry.
    pub name: &'a str,
    /// `(x, y)` points, joined in the given order.
    pub points: &'a [(f64, f64)],
}

/// Colour of non-finite map values: outside viridis, so a hole never reads as data.
const MISSING: RGBColor = RGBColor(128, 128, 128);
/// Small maps are scaled up until the longer side reaches this many pixels.
const TARGET_SIDE: usize = 512;
/// Larger maps would make pictures nobody can open; real sheets are at most 384 units.
const MAX_UNITS_PER_SIDE: usize = 8192;
const MAX_INDEX_TICKS: usize = 8;

const TITLE_FONT: f64 = 26.0;
const LABEL_FONT: f64 = 18.0;
const TICK_FONT: f64 = 15.0;
const TICK_MARK: u32 = 5;

/// Space (px) around the map of a heat map picture.
const TITLE_HEIGHT: u32 = 64;
const LEFT: u32 = 70;
const BOTTOM: u32 = 64;
const BAR_GAP: u32 = 24;
const BAR_WIDTH: u32 = 28;
const BAR_LABELS: u32 = 100;
/// Colour bars of short, wide maps get at least this height so their ticks stay readable.
const MIN_BAR_HEIGHT: u32 = 240;
/// Short sides are scaled up to this many pixels when the longer side allows it.
const MIN_SHORT_SIDE: usize = 128;
const MAX_LONG_SIDE: usize = 1024;

/// Where the parts of a heat map picture lie, in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
struct HeatmapLayout {
    /// Pixels per map unit along each axis (the same, so units stay square).
    scale: u32,
    width: u32,
    height: u32,
    map_x: u32,
    map_y: u32,
    map_width: u32,
    map_height: u32,
    bar_x: u32,
    bar_height: u32,
}

/// Pixels per unit: the longer side reaches `TARGET_SIDE`, and a much shorter side is scaled
/// further (up to `MIN_SHORT_SIDE`) while the longer stays within `MAX_LONG_SIDE`.
fn unit_scale(shorter: usize, longer: usize) -> usize {
    let for_longer = TARGET_SIDE.div_ceil(longer);
    let for_shorter = MIN_SHORT_SIDE.div_ceil(shorter).min(MAX_LONG_SIDE / longer);
    for_longer.max(for_shorter).max(1)
}

impl HeatmapLayout {
    fn for_map(map: &Map) -> HeatmapLayout {
        let scale = unit_scale(map.rows.min(map.cols), map.rows.max(map.cols)) as u32;
        let (map_width, map_height) = (map.cols as u32 * scale, map.rows as u32 * scale);
        let bar_x = LEFT + map_width + BAR_GAP;
        let bar_height = map_height.max(MIN_BAR_HEIGHT);
        HeatmapLayout {
            scale,
            width: bar_x + BAR_WIDTH + BAR_LABELS,
            height: TITLE_HEIGHT + bar_height + BOTTOM,
            map_x: LEFT,
            map_y: TITLE_HEIGHT,
            map_width,
            map_height,
            bar_x,
            bar_height,
        }
    }

    /// Centre pixel of unit `(row, col)`.
    #[cfg(test)]
    fn unit_centre(&self, row: usize, col: usize) -> (u32, u32) {
        let half = self.scale / 2;
        (
            self.map_x + col as u32 * self.scale + half,
            self.map_y + row as u32 * self.scale + half,
        )
    }
}

/// The colour scale of a heat map: finite values from `lo` to `hi`, never a zero-width range.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ValueRange {
    lo: f64,
    hi: f64,
    /// The finite extremes shown as "min" and "max" (None when no value is finite).
    extremes: Option<Interval>,
}

impl ValueRange {
    fn of(values: &[f32]) -> ValueRange {
        let extremes = extent(
            values
                .iter()
                .filter(|v| v.is_finite())
                .map(|&v| f64::from(v)),
        );
        let (lo, hi) = extremes.map_or((0.0, 1.0), |e| padded(e, 0.0));
        ValueRange { lo, hi, extremes }
    }

    fn colour(&self, v: f32) -> RGBColor {
        if !v.is_finite() {
            return MISSING;
        }
        viridis((f64::from(v) - self.lo) / (self.hi - self.lo))
    }
}

fn viridis(t: f64) -> RGBColor {
    let (r, g, b) = colorous::VIRIDIS.eval_continuous(t).into_tuple();
    RGBColor(r, g, b)
}

/// A PNG of a map in the viridis colour map with a title and a labelled colour bar (min, max and a
/// few ticks). Small maps are scaled up with nearest-neighbour so that each unit is visible (the
/// longer side at least 512 px); large maps (e.g. 384x384) are drawn with 1 px per unit or more,
/// always with square units. Axes count units from the top-left (row 0 at the top). Non-finite
/// values are drawn grey and left out of the colour range; a constant map is drawn mid-scale.
pub fn heatmap_png(map: &Map, title: &str, colorbar_label: &str) -> Result<Vec<u8>, AnalysisError> {
    map.validate()?;
    if map.rows.max(map.cols) > MAX_UNITS_PER_SIDE {
        return Err(AnalysisError::TooLarge {
            rows: map.rows,
            cols: map.cols,
            max: MAX_UNITS_PER_SIDE,
        });
    }
    register_embedded_font()?;
    let layout = HeatmapLayout::for_map(map);
    let range = ValueRange::of(&map.values);
    let mut rgb = vec![255u8; layout.width as usize * layout.height as usize * 3];
    {
        let root = drawing_area(&mut rgb, layout.width, layout.height)?;
        draw_title(&root, title, layout.width)?;
        draw_map_axes(&root, map, &layout)?;
        draw_colorbar_axis(&root, &layout, &range, colorbar_label)?;
        root.present().map_err(draw_error)?;
    }
    // Filled directly: one plotters rectangle per unit would be slow for 384x384 sheets.
    paint_map(&mut rgb, map, &layout, &range);
    paint_colorbar(&mut rgb, &layout);
    encode_png(&rgb, layout.width, layout.height)
}

/// A PNG line plot: axes with ticks and labels, a title, one or more named series (a legend when
/// there is more than one). Fails if no series has a point with finite coordinates.
pub fn line_plot_png(
    series: &[Series],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> Result<Vec<u8>, AnalysisError> {
    let (x_range, y_range) = plot_ranges(series)?;
    register_embedded_font()?;
    let (width, height) = (900, 600);
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = drawing_area(&mut rgb, width, height)?;
        let title_size = fitted_font_size(&root, title, TITLE_FONT, width - 40)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .caption(title, ("sans-serif", title_size))
            .x_label_area_size(56)
            .y_label_area_size(84)
            .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .set_all_tick_mark_size(TICK_MARK)
            .max_light_lines(1)
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(215, 215, 215))
            .x_desc(x_label)
            .y_desc(y_label)
            .axis_desc_style(("sans-serif", LABEL_FONT))
            .label_style(("sans-serif", TICK_FONT))
            .x_label_formatter(&|v| format_value(*v, x_range.1 - x_range.0))
            .y_label_formatter(&|v| format_value(*v, y_range.1 - y_range.0))
            .draw()
            .map_err(draw_error)?;
        for (i, s) in series.iter().enumerate() {
            let (r, g, b) = colorous::TABLEAU10[i % 10].into_tuple();
            draw_series(&mut chart, s, RGBColor(r, g, b))?;
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", TICK_FONT))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(160, 160, 160))
                .draw()
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    encode_png(&rgb, width, height)
}

/// `(lo, hi)` of a range of values.
type Interval = (f64, f64);
type Area<'a> = DrawingArea<BitMapBackend<'a, RGBPixel>, Shift>;
type LineChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b, RGBPixel>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// plotters looks fonts up by family name in a process-wide table; registering the embedded font
/// as "sans-serif" once makes every text style here use it.
fn register_embedded_font() -> Result<(), AnalysisError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(AnalysisError::Font)
    }
}

fn drawing_area(rgb: &mut [u8], width: u32, height: u32) -> Result<Area<'_>, AnalysisError> {
    let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(rgb, (width, height))
        .map_err(draw_error)?;
    Ok(backend.into_drawing_area())
}

fn draw_error(e: impl std::fmt::Display) -> AnalysisError {
    AnalysisError::Draw(e.to_string())
}

/// The largest size up to `size` at which `text` fits in `max_width` pixels, so long titles
/// shrink instead of being clipped.
fn fitted_font_size(
    area: &Area,
    text: &str,
    size: f64,
    max_width: u32,
) -> Result<f64, AnalysisError> {
    let width = area
        .estimate_text_size(text, &("sans-serif", size).into_font().into())
        .map_err(draw_error)?
        .0;
    if width <= max_width {
        Ok(size)
    } else {
        Ok((size * f64::from(max_width) / f64::from(width)).max(8.0))
    }
}

fn draw_title(root: &Area, title: &str, width: u32) -> Result<(), AnalysisError> {
    let size = fitted_font_size(root, title, TITLE_FONT, width - 20)?;
    let style =
        TextStyle::from(("sans-serif", size).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    root.draw_text(title, &style, (width as i32 / 2, 12))
        .map_err(draw_error)
}

/// Row and column axes whose ticks sit on unit centres, around the (still empty) map area.
fn draw_map_axes(root: &Area, map: &Map, layout: &HeatmapLayout) -> Result<(), AnalysisError> {
    let area = root.clone().shrink(
        (0, layout.map_y),
        (layout.map_x + layout.map_width, layout.map_height + BOTTOM),
    );
    let mut chart = ChartBuilder::on(&area)
        .y_label_area_size(layout.map_x)
        .x_label_area_size(BOTTOM)
        .build_cartesian_2d(
            half_unit_axis(map.cols, false),
            // Reversed so that row 0 is at the top, as the sheet is stored.
            half_unit_axis(map.rows, true),
        )
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .set_all_tick_mark_size(TICK_MARK)
        .x_desc("sheet column")
        .y_desc("sheet row")
        .axis_desc_style(("sans-serif", LABEL_FONT))
        .label_style(("sans-serif", TICK_FONT))
        .x_label_formatter(&|v| ((v - 1) / 2).to_string())
        .y_label_formatter(&|v| ((v - 1) / 2).to_string())
        .draw()
        .map_err(draw_error)
}

/// Ticks and label on the right of the colour bar, plus its exact min and max above and below.
fn draw_colorbar_axis(
    root: &Area,
    layout: &HeatmapLayout,
    range: &ValueRange,
    label: &str,
) -> Result<(), AnalysisError> {
    let span = range.hi - range.lo;
    let area = root.clone().shrink(
        (layout.bar_x, layout.map_y),
        (BAR_WIDTH + BAR_LABELS, layout.bar_height),
    );
    let mut chart = ChartBuilder::on(&area)
        .right_y_label_area_size(BAR_LABELS)
        .build_cartesian_2d(0.0..1.0, range.lo..range.hi)
        .map_err(draw_error)?
        .set_secondary_coord(0.0..1.0, range.lo..range.hi);
    chart
        .configure_secondary_axes()
        // plotters sizes ticks by the plotting area, which is only the bar's width here.
        .set_all_tick_mark_size(TICK_MARK)
        .y_labels(6)
        .y_desc(label)
        .axis_desc_style(("sans-serif", LABEL_FONT))
        .label_style(("sans-serif", TICK_FONT))
        .y_label_formatter(&|v| format_value(*v, span))
        .draw()
        .map_err(draw_error)?;
    let Some((min, max)) = range.extremes else {
        return Ok(());
    };
    let centre = (layout.bar_x + BAR_WIDTH / 2) as i32;
    let text = |s: &str, v: VPos, y: u32| {
        let style =
            TextStyle::from(("sans-serif", TICK_FONT).into_font()).pos(Pos::new(HPos::Center, v));
        root.draw_text(s, &style, (centre, y as i32))
            .map_err(draw_error)
    };
    text(
        &format!("max {}", format_value(max, span)),
        VPos::Bottom,
        layout.map_y - 6,
    )?;
    text(
        &format!("min {}", format_value(min, span)),
        VPos::Top,
        layout.map_y + layout.bar_height + 6,
    )
}

/// An axis over `n` units counted in half units, so that unit `i`'s centre is the integer
/// `2i + 1` and its tick sits mid-unit; plotters' own f64 axes cannot take chosen ticks.
fn half_unit_axis(n: usize, reversed: bool) -> WithKeyPoints<RangedCoordi32> {
    let end = 2 * n as i32;
    let range = if reversed { end..0 } else { 0..end };
    let ticks = index_ticks(n)
        .into_iter()
        .map(|i| 2 * i as i32 + 1)
        .collect();
    range.with_key_points(ticks)
}

/// Unit indices to label along an axis of `n` units: every 1, 2 or 5 × 10^k, at most
/// `MAX_INDEX_TICKS` of them.
fn index_ticks(n: usize) -> Vec<usize> {
    let mut step = 1usize;
    while (n.saturating_sub(1)) / step + 1 > MAX_INDEX_TICKS {
        let leading = step / 10usize.pow(step.ilog10());
        step = if leading == 2 { step / 2 * 5 } else { step * 2 };
    }
    (0..n).step_by(step).collect()
}

/// `v` with at least four significant digits, and enough to tell apart values a hundredth of
/// `span` apart (ticks on a narrow range around a large value); scientific notation outside
/// [0.001, 100000).
fn format_value(v: f64, span: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let exponent = v.abs().log10().floor() as i32;
    let resolution = if span > 0.0 && span.is_finite() {
        (span / 100.0).log10().floor() as i32
    } else {
        exponent
    };
    let significant = (exponent - resolution + 1).clamp(4, 15);
    if !(-3..5).contains(&exponent) {
        let text = format!("{v:.*e}", (significant - 1) as usize);
        return match text.split_once('e') {
            Some((mantissa, power)) => format!("{}e{power}", trim_zeros(mantissa)),
            None => text,
        };
    }
    let decimals = (significant - 1 - exponent).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

fn paint_map(rgb: &mut [u8], map: &Map, layout: &HeatmapLayout, range: &ValueRange) {
    let scale = layout.scale as usize;
    for (i, &v) in map.values.iter().enumerate() {
        let x = layout.map_x as usize + (i % map.cols) * scale;
        let y = layout.map_y as usize + (i / map.cols) * scale;
        fill_rect(rgb, layout.width, (x, y), (scale, scale), range.colour(v));
    }
}

/// One colour per pixel row, top = `hi`, matching the axis drawn beside it.
fn paint_colorbar(rgb: &mut [u8], layout: &HeatmapLayout) {
    let height = layout.bar_height as usize;
    for row in 0..height {
        let t = 1.0 - (row as f64 + 0.5) / height as f64;
        let y = layout.map_y as usize + row;
        fill_rect(
            rgb,
            layout.width,
            (layout.bar_x as usize, y),
            (BAR_WIDTH as usize, 1),
            viridis(t),
        );
    }
}

fn fill_rect(
    rgb: &mut [u8],
    width: u32,
    (x, y): (usize, usize),
    (w, h): (usize, usize),
    c: RGBColor,
) {
    let stride = width as usize * 3;
    for row in y..y + h {
        let line = &mut rgb[row * stride + x * 3..row * stride + (x + w) * 3];
        for pixel in line.chunks_exact_mut(3) {
            pixel.copy_from_slice(&[c.0, c.1, c.2]);
        }
    }
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, AnalysisError> {
    let mut png = Cursor::new(Vec::new());
    PngEncoder::new(&mut png)
        .write_image(rgb, width, height, ExtendedColorType::Rgb8)
        .map_err(|e| AnalysisError::Encode(e.to_string()))?;
    Ok(png.into_inner())
}

/// x and y ranges covering every finite point, padded so lines do not run along the frame and
/// never of zero width.
fn plot_ranges(series: &[Series]) -> Result<(Interval, Interval), AnalysisError> {
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let x = padded(
        extent(finite().map(|p| p.0)).ok_or(AnalysisError::NoData)?,
        0.0,
    );
    let y = padded(
        extent(finite().map(|p| p.1)).ok_or(AnalysisError::NoData)?,
        0.05,
    );
    // plotters never finishes placing ticks on an infinitely wide axis.
    for (lo, hi) in [x, y] {
        if !(hi - lo).is_finite() {
            return Err(AnalysisError::RangeTooWide { lo, hi });
        }
    }
    Ok((x, y))
}

fn extent(values: impl Iterator<Item = f64>) -> Option<Interval> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// `(lo, hi)` widened by `fraction` of its width on each side; a single value gets a range
/// around it (it then sits mid-range).
fn padded((lo, hi): Interval, fraction: f64) -> Interval {
    if lo == hi {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() / 2.0 };
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * fraction;
    (lo - pad, hi + pad)
}

/// Draws the finite runs of a series as lines (single isolated points as dots); only the first
/// run carries the legend entry.
fn draw_series(
    chart: &mut LineChart,
    series: &Series,
    colour: RGBColor,
) -> Result<(), AnalysisError> {
    let style = colour.stroke_width(2);
    let runs = series
        .points
        .split(|(x, y)| !(x.is_finite() && y.is_finite()))
        .filter(|run| !run.is_empty());
    for (i, run) in runs.enumerate() {
        let drawn = if run.len() == 1 {
            chart.draw_series(std::iter::once(Circle::new(run[0], 4, colour.filled())))
        } else {
            chart.draw_series(LineSeries::new(run.iter().copied(), style))
        }
        .map_err(draw_error)?;
        if i == 0 {
            drawn
                .label(series.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    const VIRIDIS_LOW: [u8; 3] = [68, 1, 84];
    const VIRIDIS_HIGH: [u8; 3] = [253, 231, 37];

    fn decode(png: &[u8]) -> RgbImage {
        image::load_from_memory(png)
            .expect("a decodable PNG")
            .to_rgb8()
    }

    fn gradient(rows: usize, cols: usize) -> Map {
        let values = (0..rows * cols)
            .map(|i| (i / cols + i % cols) as f32)
            .collect();
        Map::new(rows, cols, values).expect("gradient")
    }

    fn pixel(img: &RgbImage, (x, y): (u32, u32)) -> [u8; 3] {
        img.get_pixel(x, y).0
    }

    fn distinct_colours(img: &RgbImage) -> usize {
        let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        colours.sort_unstable();
        colours.dedup();
        colours.len()
    }

    #[test]
    fn small_maps_are_scaled_up_with_square_units() {
        let map = gradient(12, 12);
        let layout = HeatmapLayout::for_map(&map);
        assert!(layout.map_width >= 512 && layout.map_width == layout.map_height);
        let img = decode(&heatmap_png(&map, "gradient", "value").expect("png"));
        assert_eq!(img.dimensions(), (layout.width, layout.height));
        // Viridis ramp, text anti-aliasing and the colour bar give many colours.
        assert!(distinct_colours(&img) > 100);
    }

    #[test]
    fn min_and_max_units_get_the_viridis_end_colours() {
        let map = gradient(12, 12);
        let layout = HeatmapLayout::for_map(&map);
        let img = decode(&heatmap_png(&map, "gradient", "value").expect("png"));
        assert_eq!(pixel(&img, layout.unit_centre(0, 0)), VIRIDIS_LOW);
        assert_eq!(pixel(&img, layout.unit_centre(11, 11)), VIRIDIS_HIGH);
        // Every pixel of a unit has the unit's colour: nearest-neighbour, no smoothing.
        let (x, y) = (layout.map_x, layout.map_y);
        assert_eq!(pixel(&img, (x, y)), VIRIDIS_LOW);
        assert_eq!(
            pixel(&img, (x + layout.scale - 1, y + layout.scale - 1)),
            VIRIDIS_LOW
        );
    }

    #[test]
    fn the_map_sits_inside_its_axes() {
        let map = gradient(12, 12);
        let layout = HeatmapLayout::for_map(&map);
        let img = decode(&heatmap_png(&map, "gradient", "value").expect("png"));
        let mid = layout.map_y + layout.map_height / 2;
        // The left axis line runs just outside the map, which covers the axes' plotting area.
        assert_eq!(pixel(&img, (layout.map_x - 1, mid)), [0, 0, 0]);
        let below = layout.map_y + layout.map_height;
        assert_eq!(pixel(&img, (layout.map_x + 3, below)), [0, 0, 0]);
    }

    #[test]
    fn text_is_drawn() {
        let map = gradient(4, 4);
        let layout = HeatmapLayout::for_map(&map);
        let img = decode(&heatmap_png(&map, "A title", "value").expect("png"));
        let dark_in_title = (0..layout.width)
            .flat_map(|x| (0..layout.map_y - 20).map(move |y| (x, y)))
            .filter(|&p| pixel(&img, p).iter().all(|&c| c < 100))
            .count();
        assert!(dark_in_title > 50, "{dark_in_title} dark title pixels");
    }

    #[test]
    fn large_maps_get_at_least_one_pixel_per_unit() {
        let map = Map::new(384, 384, (0..384 * 384).map(|i| i as f32).collect()).expect("map");
        let layout = HeatmapLayout::for_map(&map);
        assert!(layout.scale >= 1 && layout.map_width == 384 * layout.scale);
        let img = decode(&heatmap_png(&map, "large", "value").expect("png"));
        assert_eq!(pixel(&img, layout.unit_centre(0, 0)), VIRIDIS_LOW);
        assert_eq!(pixel(&img, layout.unit_centre(383, 383)), VIRIDIS_HIGH);
    }

    #[test]
    fn wide_maps_keep_square_units_and_a_readable_colour_bar() {
        let map = gradient(3, 20);
        let layout = HeatmapLayout::for_map(&map);
        assert_eq!(layout.map_width / 20, layout.map_height / 3);
        assert!(layout.map_height >= 128 && layout.bar_height >= MIN_BAR_HEIGHT);
        let img = decode(&heatmap_png(&map, "wide", "value").expect("png"));
        assert_eq!(img.dimensions(), (layout.width, layout.height));
    }

    #[test]
    fn non_finite_values_are_grey_and_outside_the_range() {
        let mut map = gradient(6, 6);
        map.values[0] = f32::NAN;
        map.values[1] = f32::INFINITY;
        map.values[35] = f32::NEG_INFINITY;
        let layout = HeatmapLayout::for_map(&map);
        let img = decode(&heatmap_png(&map, "holes", "value").expect("png"));
        let grey = [MISSING.0, MISSING.1, MISSING.2];
        for (r, c) in [(0, 0), (0, 1), (5, 5)] {
            assert_eq!(pixel(&img, layout.unit_centre(r, c)), grey);
        }
        // Finite extremes: 1 at (1, 0) and 9 at (4, 5).
        assert_eq!(pixel(&img, layout.unit_centre(1, 0)), VIRIDIS_LOW);
        assert_eq!(pixel(&img, layout.unit_centre(4, 5)), VIRIDIS_HIGH);
    }

    #[test]
    fn constant_and_all_missing_maps_still_render() {
        let constant = Map::new(5, 5, vec![3.0; 25]).expect("map");
        let layout = HeatmapLayout::for_map(&constant);
        let img = decode(&heatmap_png(&constant, "constant", "value").expect("png"));
        let (r, g, b) = colorous::VIRIDIS.eval_continuous(0.5).into_tuple();
        assert_eq!(pixel(&img, layout.unit_centre(2, 2)), [r, g, b]);
        for value in [0.0, f32::NAN] {
            let map = Map::new(2, 2, vec![value; 4]).expect("map");
            decode(&heatmap_png(&map, "flat", "value").expect("png"));
        }
    }

    #[test]
    fn heatmap_refuses_broken_and_huge_maps() {
        let broken = Map {
            rows: 3,
            cols: 3,
            values: vec![0.0; 8],
        };
        assert!(matches!(
            heatmap_png(&broken, "", ""),
            Err(AnalysisError::MapSize { .. })
        ));
        let huge =
            Map::new(1, MAX_UNITS_PER_SIDE + 1, vec![0.0; MAX_UNITS_PER_SIDE + 1]).expect("map");
        assert!(matches!(
            heatmap_png(&huge, "", ""),
            Err(AnalysisError::TooLarge { .. })
        ));
    }

    #[test]
    fn line_plots_render_one_or_several_series() {
        let decay: Vec<(f64, f64)> = (1..=50)
            .map(|r| (r as f64, 100.0 * (-(r as f64) / 20.0).exp()))
            .collect();
        let flat: Vec<(f64, f64)> = (1..=50).map(|r| (r as f64, 50.0)).collect();
        let one = [Series {
            name: "decay",
            points: &decay,
        }];
        let img = decode(&line_plot_png(&one, "profile", "radius", "%").expect("png"));
        assert_eq!(img.dimensions(), (900, 600));
        assert!(distinct_colours(&img) > 20);
        let two = [
            one[0],
            Series {
                name: "flat",
                points: &flat,
            },
        ];
        decode(&line_plot_png(&two, "profiles", "radius", "%").expect("png"));
    }

    #[test]
    fn line_plots_survive_gaps_single_points_and_flat_data() {
        let gappy = [
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 3.0),
            (3.0, 2.0),
            (f64::INFINITY, 0.0),
        ];
        let single = [(5.0, 5.0)];
        let series = [
            Series {
                name: "gappy",
                points: &gappy,
            },
            Series {
                name: "single",
                points: &single,
            },
        ];
        decode(&line_plot_png(&series, "gaps", "x", "y").expect("png"));
        let one_point = [Series {
            name: "one",
            points: &single,
        }];
        decode(&line_plot_png(&one_point, "one point", "x", "y").expect("png"));
    }

    #[test]
    fn line_plots_refuse_ranges_too_wide_to_draw() {
        let wide = [(0.0, -1e308), (1.0, 1e308)];
        let series = [Series {
            name: "wide",
            points: &wide,
        }];
        assert!(matches!(
            line_plot_png(&series, "", "", ""),
            Err(AnalysisError::RangeTooWide { .. })
        ));
    }

    #[test]
    fn line_plots_without_finite_points_are_refused() {
        assert_eq!(line_plot_png(&[], "", "", ""), Err(AnalysisError::NoData));
        let nan = [(f64::NAN, 1.0)];
        let series = [Series {
            name: "nan",
            points: &nan,
        }];
        assert_eq!(
            line_plot_png(&series, "", "", ""),
            Err(AnalysisError::NoData)
        );
    }

    #[test]
    fn values_are_formatted_short() {
        let cases = [
            (0.0, 1.0, "0"),
            (0.3 + 0.6, 1.0, "0.9"),
            (1.0, 1.0, "1"),
            (0.9417, 25000.0, "0.9417"),
            (24998.3, 25000.0, "24998"),
            (123456.0, 1e6, "1.235e5"),
            (0.00012, 1e-3, "1.2e-4"),
            (-2.5, 10.0, "-2.5"),
            (100.0, 100.0, "100"),
            // Ticks 2e-8 apart on a range around 1 must not all read "1".
            (1.00000006, 1.2e-7, "1.00000006"),
            (3e7 + 20.0, 100.0, "3.000002e7"),
            (5.0, f64::INFINITY, "5"),
        ];
        for (v, span, want) in cases {
            assert_eq!(format_value(v, span), want, "{v} over {span}");
        }
    }

    #[test]
    fn index_ticks_are_round_and_few() {
        assert_eq!(index_ticks(1), [0]);
        assert_eq!(index_ticks(8), [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(index_ticks(12), [0, 2, 4, 6, 8, 10]);
        assert_eq!(index_ticks(384), [0, 50, 100, 150, 200, 250, 300, 350]);
        assert_eq!(index_ticks(2500).len(), 5);
    }
}
