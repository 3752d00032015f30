//! Pictures a person looks at: heat maps, orientation maps and category maps of sheets, and line
//! plots of profiles, as PNG bytes.
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
        HeatmapLayout::with_panel(map.rows, map.cols, BAR_WIDTH + BAR_LABELS, MIN_BAR_HEIGHT)
    }

    /// The layout of a `rows` x `cols` map with a side panel (colour bar or legend) of
    /// `panel_width` pixels starting at `bar_x`, at least `panel_height` pixels tall.
    fn with_panel(rows: usize, cols: usize, panel_width: u32, panel_height: u32) -> HeatmapLayout {
        let scale = unit_scale(rows.min(cols), rows.max(cols)) as u32;
        let (map_width, map_height) = (cols as u32 * scale, rows as u32 * scale);
        let bar_x = LEFT + map_width + BAR_GAP;
        let bar_height = map_height.max(panel_height);
        HeatmapLayout {
            scale,
            width: bar_x + panel_width,
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
    check_drawable(map.rows, map.cols)?;
    register_embedded_font()?;
    let layout = HeatmapLayout::for_map(map);
    let range = ValueRange::of(&map.values);
    let mut rgb = vec![255u8; layout.width as usize * layout.height as usize * 3];
    {
        let root = drawing_area(&mut rgb, layout.width, layout.height)?;
        draw_title(&root, title, layout.width)?;
        draw_map_axes(&root, map.rows, map.cols, &layout)?;
        draw_colorbar_axis(&root, &layout, &range, colorbar_label)?;
        root.present().map_err(draw_error)?;
    }
    // Filled directly: one plotters rectangle per unit would be slow for 384x384 sheets.
    paint_map(&mut rgb, map, &layout, &range);
    paint_colorbar(&mut rgb, &layout);
    encode_png(&rgb, layout.width, layout.height)
}

/// A PNG of an orientation map: each unit's hue is its preferred orientation and its brightness
/// its selectivity, the usual way of showing pinwheels.
///
/// `preferred` holds orientations as fractions of a half turn, `[0, 1)` for 0°..180°; values
/// outside wrap around (orientation is 180°-periodic), so 1.0 reads as 0°. The half turn spans
/// the full hue circle, so 0° and 180° get the same red and neighbouring orientations neighbouring
/// hues. Brightness (HSV value, at full saturation) is `selectivity` divided by its 99th
/// percentile over finite units and clamped to `[0, 1]`: one outlier cannot darken the whole map,
/// and negative selectivity reads as none. A unit with a non-finite value in either map is grey.
///
/// Layout and scaling are those of [`heatmap_png`] (square units, small maps scaled up, row and
/// column axes); in place of the colour bar a hue ring labelled 0°, 45°, 90° and 135° and a
/// brightness ramp (from 0 to the 99th percentile) explain the colours.
pub fn orientation_png(
    preferred: &Map,
    selectivity: &Map,
    title: &str,
) -> Result<Vec<u8>, AnalysisError> {
    preferred.validate()?;
    selectivity.validate()?;
    if (preferred.rows, preferred.cols) != (selectivity.rows, selectivity.cols) {
        return Err(AnalysisError::DrawShapes {
            rows: preferred.rows,
            cols: preferred.cols,
            other_rows: selectivity.rows,
            other_cols: selectivity.cols,
        });
    }
    check_drawable(preferred.rows, preferred.cols)?;
    register_embedded_font()?;
    let (rows, cols) = (preferred.rows, preferred.cols);
    let layout = HeatmapLayout::with_panel(rows, cols, WHEEL_PANEL_WIDTH, WHEEL_PANEL_HEIGHT);
    let legend = WheelLegend::for_layout(&layout);
    let full = percentile(&selectivity.values, 0.99);
    let mut rgb = vec![255u8; layout.width as usize * layout.height as usize * 3];
    {
        let root = drawing_area(&mut rgb, layout.width, layout.height)?;
        draw_title(&root, title, layout.width)?;
        draw_map_axes(&root, rows, cols, &layout)?;
        draw_wheel_text(&root, &legend, full)?;
        root.present().map_err(draw_error)?;
    }
    let colours: Vec<RGBColor> = preferred
        .values
        .iter()
        .zip(&selectivity.values)
        .map(|(&p, &s)| orientation_colour(p, s, full))
        .collect();
    paint_units(&mut rgb, cols, &layout, &colours);
    paint_wheel(&mut rgb, layout.width, &legend);
    encode_png(&rgb, layout.width, layout.height)
}

/// A PNG of a categorical map (e.g. each unit's preferred category): one colour per category,
/// grey for units without one (`None`), with a legend naming the categories that occur.
///
/// `labels` are row-major, `rows * cols` of them; label `i` is named `names[i]`. Colours belong
/// to the category index, not to its order in the map, so one category keeps its colour across
/// the maps of several layers: the first nine are Tableau 10's (less its grey, which would read
/// as "no category"), further ones hues spread by the golden ratio. The legend lists the
/// categories present in index order (at most [`MAX_LEGEND_CATEGORIES`], then a count of the
/// rest) and "none" when some unit has no category; names too long for the legend are cut with
/// "…". Layout and scaling are those of [`heatmap_png`].
pub fn category_png(
    labels: &[Option<usize>],
    rows: usize,
    cols: usize,
    names: &[String],
    title: &str,
) -> Result<Vec<u8>, AnalysisError> {
    if rows == 0 || cols == 0 {
        return Err(AnalysisError::EmptyMap { rows, cols });
    }
    if rows.checked_mul(cols) != Some(labels.len()) {
        return Err(AnalysisError::MapSize {
            rows,
            cols,
            found: labels.len(),
        });
    }
    if let Some(label) = labels.iter().flatten().find(|&&l| l >= names.len()) {
        return Err(AnalysisError::UnknownCategory {
            label: *label,
            names: names.len(),
        });
    }
    check_drawable(rows, cols)?;
    register_embedded_font()?;
    let entries = legend_entries(labels, names)?;
    let text_width = entries
        .iter()
        .map(|e| text_width(&e.text))
        .try_fold(0, |widest, w| w.map(|w| widest.max(w)))?;
    let panel_width = SWATCH + SWATCH_GAP + text_width + LEGEND_MARGIN;
    let panel_height = entries.len() as u32 * LEGEND_ROW;
    let layout = HeatmapLayout::with_panel(rows, cols, panel_width, panel_height);
    let mut rgb = vec![255u8; layout.width as usize * layout.height as usize * 3];
    {
        let root = drawing_area(&mut rgb, layout.width, layout.height)?;
        draw_title(&root, title, layout.width)?;
        draw_map_axes(&root, rows, cols, &layout)?;
        let style = TextStyle::from(("sans-serif", TICK_FONT).into_font())
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, entry) in entries.iter().enumerate() {
            let (x, y) = legend_text_anchor(&layout, i);
            root.draw_text(&entry.text, &style, (x as i32, y as i32))
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    let colours: Vec<RGBColor> = labels
        .iter()
        .map(|l| l.map_or(MISSING, category_colour))
        .collect();
    paint_units(&mut rgb, cols, &layout, &colours);
    for (i, entry) in entries.iter().enumerate() {
        if let Some(colour) = entry.colour {
            let (x, y) = legend_swatch(&layout, i);
            fill_rect(
                &mut rgb,
                layout.width,
                (x as usize, y as usize),
                (SWATCH as usize, SWATCH as usize),
                colour,
            );
        }
    }
    encode_png(&rgb, layout.width, layout.height)
}

fn check_drawable(rows: usize, cols: usize) -> Result<(), AnalysisError> {
    if rows.max(cols) > MAX_UNITS_PER_SIDE {
        return Err(AnalysisError::TooLarge {
            rows,
            cols,
            max: MAX_UNITS_PER_SIDE,
        });
    }
    Ok(())
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
fn draw_map_axes(
    root: &Area,
    rows: usize,
    cols: usize,
    layout: &HeatmapLayout,
) -> Result<(), AnalysisError> {
    let area = root.clone().shrink(
        (0, layout.map_y),
        (layout.map_x + layout.map_width, layout.map_height + BOTTOM),
    );
    let mut chart = ChartBuilder::on(&area)
        .y_label_area_size(layout.map_x)
        .x_label_area_size(BOTTOM)
        .build_cartesian_2d(
            half_unit_axis(cols, false),
            // Reversed so that row 0 is at the top, as the sheet is stored.
            half_unit_axis(rows, true),
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

/// The orientation legend: a hue ring with its four labels around it, then two notes and a
/// brightness ramp below.
const WHEEL_OUTER: f64 = 56.0;
const WHEEL_INNER: f64 = 34.0;
/// Room beside the ring for "135°" and above and below it for "45°" / "135°".
const WHEEL_LABEL_WIDTH: u32 = 44;
const WHEEL_LABEL_HEIGHT: u32 = 26;
const WHEEL_LABEL_GAP: f64 = 6.0;
const RAMP_WIDTH: u32 = 150;
/// Pixel rows per hue in the brightness ramp.
const RAMP_ROW: u32 = 5;
/// The ramp shows brightness at the hues of the four labelled orientations.
const RAMP_HUES: [f64; 4] = [0.0, 0.25, 0.5, 0.75];
const WHEEL_PANEL_WIDTH: u32 = 2 * WHEEL_OUTER as u32 + 2 * WHEEL_LABEL_WIDTH + 8;
const WHEEL_PANEL_HEIGHT: u32 = 2 * WHEEL_LABEL_HEIGHT + 2 * WHEEL_OUTER as u32 + 110;

/// Where the parts of the orientation legend lie, in pixels.
#[derive(Clone, Copy, Debug)]
struct WheelLegend {
    /// Centre of the ring.
    cx: f64,
    cy: f64,
    /// Top of the "hue: …" note; the brightness note follows one line below.
    note_y: u32,
    ramp_x: u32,
    ramp_y: u32,
}

impl WheelLegend {
    fn for_layout(layout: &HeatmapLayout) -> WheelLegend {
        let cx = f64::from(layout.bar_x + WHEEL_LABEL_WIDTH) + WHEEL_OUTER;
        let cy = f64::from(layout.map_y + WHEEL_LABEL_HEIGHT) + WHEEL_OUTER;
        let note_y = layout.map_y + 2 * WHEEL_LABEL_HEIGHT + 2 * WHEEL_OUTER as u32 + 10;
        WheelLegend {
            cx,
            cy,
            note_y,
            ramp_x: cx as u32 - RAMP_WIDTH / 2,
            ramp_y: note_y + 50,
        }
    }

    fn ramp_height(&self) -> u32 {
        RAMP_HUES.len() as u32 * RAMP_ROW
    }
}

/// The ring's labels, the notes and the ramp's end labels; `full` is the selectivity drawn at
/// full brightness (None when no selectivity is finite).
fn draw_wheel_text(
    root: &Area,
    legend: &WheelLegend,
    full: Option<f64>,
) -> Result<(), AnalysisError> {
    let label = |text: &str, (x, y): (f64, f64), h: HPos, v: VPos| {
        let style = TextStyle::from(("sans-serif", TICK_FONT).into_font()).pos(Pos::new(h, v));
        root.draw_text(text, &style, (x.round() as i32, y.round() as i32))
            .map_err(draw_error)
    };
    let (cx, cy, r) = (legend.cx, legend.cy, WHEEL_OUTER + WHEEL_LABEL_GAP);
    // The hue circle turns once per half turn of orientation, so the four labels sit a quarter
    // turn apart, counter-clockwise from the right as angles are read.
    label("0°", (cx + r, cy), HPos::Left, VPos::Center)?;
    label("45°", (cx, cy - r), HPos::Center, VPos::Bottom)?;
    label("90°", (cx - r, cy), HPos::Right, VPos::Center)?;
    label("135°", (cx, cy + r), HPos::Center, VPos::Top)?;
    let note_x = f64::from(legend.ramp_x);
    label(
        "hue: orientation",
        (note_x, f64::from(legend.note_y)),
        HPos::Left,
        VPos::Top,
    )?;
    let brightness_y = f64::from(legend.note_y + 22);
    label(
        "brightness: selectivity",
        (note_x, brightness_y),
        HPos::Left,
        VPos::Top,
    )?;
    let below = f64::from(legend.ramp_y + legend.ramp_height() + 4);
    label("0", (note_x, below), HPos::Left, VPos::Top)?;
    let top = match full {
        Some(v) => format!("≥ {} (p99)", format_value(v, v.abs())),
        None => "no finite values".to_string(),
    };
    let right = f64::from(legend.ramp_x + RAMP_WIDTH);
    label(&top, (right, below), HPos::Right, VPos::Top)
}

/// The hue ring (edges blended into the white background so that it looks round) and the
/// brightness ramp.
fn paint_wheel(rgb: &mut [u8], width: u32, legend: &WheelLegend) {
    let (x0, y0) = (
        (legend.cx - WHEEL_OUTER).floor() as usize - 1,
        (legend.cy - WHEEL_OUTER).floor() as usize - 1,
    );
    let side = 2 * WHEEL_OUTER as usize + 3;
    for y in y0..y0 + side {
        for x in x0..x0 + side {
            let dx = x as f64 + 0.5 - legend.cx;
            // Screen y grows downwards; angles are read counter-clockwise.
            let dy = legend.cy - (y as f64 + 0.5);
            let r = dx.hypot(dy);
            let coverage =
                (WHEEL_OUTER - r + 0.5).clamp(0.0, 1.0) * (r - WHEEL_INNER + 0.5).clamp(0.0, 1.0);
            if coverage <= 0.0 {
                continue;
            }
            let hue = dy.atan2(dx).rem_euclid(std::f64::consts::TAU) / std::f64::consts::TAU;
            let colour = blend(hsv(hue, 1.0, 1.0), WHITE, coverage);
            fill_rect(rgb, width, (x, y), (1, 1), colour);
        }
    }
    for (row, &hue) in RAMP_HUES.iter().enumerate() {
        for i in 0..RAMP_WIDTH {
            let value = (f64::from(i) + 0.5) / f64::from(RAMP_WIDTH);
            let (x, y) = (legend.ramp_x + i, legend.ramp_y + row as u32 * RAMP_ROW);
            fill_rect(
                rgb,
                width,
                (x as usize, y as usize),
                (1, RAMP_ROW as usize),
                hsv(hue, 1.0, value),
            );
        }
    }
}

/// `colour` over `background` with opacity `alpha`.
fn blend(colour: RGBColor, background: RGBColor, alpha: f64) -> RGBColor {
    let mix = |a: u8, b: u8| (f64::from(a) * alpha + f64::from(b) * (1.0 - alpha)).round() as u8;
    RGBColor(
        mix(colour.0, background.0),
        mix(colour.1, background.1),
        mix(colour.2, background.2),
    )
}

/// A unit's orientation colour: hue from `preferred` (half turns, wrapped into `[0, 1)`),
/// brightness `selectivity / full` clamped to `[0, 1]`.
fn orientation_colour(preferred: f32, selectivity: f32, full: Option<f64>) -> RGBColor {
    let (Some(full), true) = (full, preferred.is_finite() && selectivity.is_finite()) else {
        return MISSING;
    };
    let s = f64::from(selectivity);
    let value = if full > 0.0 {
        (s / full).clamp(0.0, 1.0)
    } else if s > 0.0 {
        // Only possible when 99 % of units are unselective: the few selective ones show fully.
        1.0
    } else {
        0.0
    };
    hsv(f64::from(preferred).rem_euclid(1.0), 1.0, value)
}

/// HSV (each in `[0, 1]`, hue wrapping) to 8-bit RGB.
fn hsv(hue: f64, saturation: f64, value: f64) -> RGBColor {
    let h6 = hue.rem_euclid(1.0) * 6.0;
    let sector = h6.floor();
    let f = h6 - sector;
    let p = value * (1.0 - saturation);
    let q = value * (1.0 - saturation * f);
    let t = value * (1.0 - saturation * (1.0 - f));
    let (r, g, b) = match sector as u32 {
        0 => (value, t, p),
        1 => (q, value, p),
        2 => (p, value, t),
        3 => (p, q, value),
        4 => (t, p, value),
        _ => (value, p, q),
    };
    let byte = |c: f64| (c * 255.0).round().clamp(0.0, 255.0) as u8;
    RGBColor(byte(r), byte(g), byte(b))
}

/// The `q`-quantile (0..=1) of the finite values, interpolating linearly between order
/// statistics as NumPy's default does; None when no value is finite.
fn percentile(values: &[f32], q: f64) -> Option<f64> {
    let mut finite: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| f64::from(v))
        .collect();
    if finite.is_empty() {
        return None;
    }
    finite.sort_unstable_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (finite.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(finite[lo] + (finite[hi] - finite[lo]) * (pos - lo as f64))
}

/// At most this many categories are named in a category map's legend; more would run off any
/// picture a person can take in.
pub const MAX_LEGEND_CATEGORIES: usize = 24;
const SWATCH: u32 = 16;
const SWATCH_GAP: u32 = 8;
const LEGEND_ROW: u32 = 24;
const LEGEND_MARGIN: u32 = 12;
/// Longer category names are cut so the legend does not dwarf the map.
const MAX_LEGEND_TEXT: u32 = 260;

/// One line of a category legend; lines without a colour (the count of unlisted categories)
/// get no swatch.
struct LegendEntry {
    text: String,
    colour: Option<RGBColor>,
}

fn legend_entries(
    labels: &[Option<usize>],
    names: &[String],
) -> Result<Vec<LegendEntry>, AnalysisError> {
    let mut present = vec![false; names.len()];
    for &label in labels.iter().flatten() {
        present[label] = true;
    }
    let shown: Vec<usize> = (0..names.len()).filter(|&i| present[i]).collect();
    let mut entries = Vec::new();
    for &i in shown.iter().take(MAX_LEGEND_CATEGORIES) {
        entries.push(LegendEntry {
            text: fit_text(&names[i], MAX_LEGEND_TEXT)?,
            colour: Some(category_colour(i)),
        });
    }
    if shown.len() > MAX_LEGEND_CATEGORIES {
        entries.push(LegendEntry {
            text: format!("… {} more", shown.len() - MAX_LEGEND_CATEGORIES),
            colour: None,
        });
    }
    if labels.iter().any(Option::is_none) {
        entries.push(LegendEntry {
            text: "none".to_string(),
            colour: Some(MISSING),
        });
    }
    Ok(entries)
}

/// Width in pixels of `text` in the legend font.
fn text_width(text: &str) -> Result<u32, AnalysisError> {
    let font = ("sans-serif", TICK_FONT).into_font();
    Ok(font.box_size(text).map_err(draw_error)?.0)
}

/// `text`, cut and ended with "…" where it is wider than `max_width` pixels.
fn fit_text(text: &str, max_width: u32) -> Result<String, AnalysisError> {
    if text_width(text)? <= max_width {
        return Ok(text.to_string());
    }
    // Glyphs are at least 2 px wide, so longer prefixes cannot fit; starting from one keeps
    // the search short for absurdly long names.
    let mut chars: Vec<char> = text.chars().take(max_width as usize / 2).collect();
    while !chars.is_empty() {
        chars.pop();
        let cut = format!("{}…", chars.iter().collect::<String>().trim_end());
        if text_width(&cut)? <= max_width {
            return Ok(cut);
        }
    }
    Ok("…".to_string())
}

/// Top-left pixel of legend line `i`'s swatch.
fn legend_swatch(layout: &HeatmapLayout, i: usize) -> (u32, u32) {
    (
        layout.bar_x,
        layout.map_y + i as u32 * LEGEND_ROW + (LEGEND_ROW - SWATCH) / 2,
    )
}

/// Left end, vertical centre of legend line `i`'s text.
fn legend_text_anchor(layout: &HeatmapLayout, i: usize) -> (u32, u32) {
    (
        layout.bar_x + SWATCH + SWATCH_GAP,
        layout.map_y + i as u32 * LEGEND_ROW + LEGEND_ROW / 2,
    )
}

/// Colour of category `index`, the same in every map.
fn category_colour(index: usize) -> RGBColor {
    // Tableau 10 less its last colour, a grey that would read like "no category".
    const TABLEAU: usize = 9;
    if index < TABLEAU {
        let (r, g, b) = colorous::TABLEAU10[index].into_tuple();
        return RGBColor(r, g, b);
    }
    // Golden-ratio steps keep consecutive hues far apart; two brightnesses double the choices.
    let k = index - TABLEAU;
    let hue = (0.1 + k as f64 * 0.618_033_988_749_895).fract();
    let value = if k.is_multiple_of(2) { 0.85 } else { 0.6 };
    hsv(hue, 0.65, value)
}

/// Fills each unit's square with its colour (`colours` row-major, `cols` per row).
fn paint_units(rgb: &mut [u8], cols: usize, layout: &HeatmapLayout, colours: &[RGBColor]) {
    let scale = layout.scale as usize;
    for (i, &colour) in colours.iter().enumerate() {
        let x = layout.map_x as usize + (i % cols) * scale;
        let y = layout.map_y as usize + (i / cols) * scale;
        fill_rect(rgb, layout.width, (x, y), (scale, scale), colour);
    }
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

    fn orientation_pair(rows: usize, cols: usize) -> (Map, Map) {
        let n = rows * cols;
        let preferred = Map::new(rows, cols, (0..n).map(|i| i as f32 / n as f32).collect());
        let selectivity = Map::new(rows, cols, vec![1.0; n]);
        (preferred.expect("map"), selectivity.expect("map"))
    }

    #[test]
    fn orientation_maps_use_the_heatmap_layout() {
        for (rows, cols) in [(12, 12), (3, 20), (200, 150)] {
            let (preferred, selectivity) = orientation_pair(rows, cols);
            let img = decode(&orientation_png(&preferred, &selectivity, "o").expect("png"));
            let layout =
                HeatmapLayout::with_panel(rows, cols, WHEEL_PANEL_WIDTH, WHEEL_PANEL_HEIGHT);
            assert_eq!(img.dimensions(), (layout.width, layout.height));
            assert!(layout.map_width.max(layout.map_height) >= 512);
            assert_eq!(
                layout.map_width / cols as u32,
                layout.map_height / rows as u32
            );
            assert!(
                img.width() < 1400 && img.height() < 1200,
                "{:?}",
                img.dimensions()
            );
        }
    }

    #[test]
    fn orientation_hue_and_brightness() {
        // Units: 0° fully selective, 60° (a third of the half turn) fully selective, 0° with no
        // selectivity, a NaN orientation, a NaN selectivity, 90° at half the top selectivity.
        let preferred = [0.0, 1.0 / 3.0, 0.0, f32::NAN, 0.5, 0.5, 1.0, -0.5];
        let selectivity = [2.0, 2.0, 0.0, 2.0, f32::NAN, 1.0, 2.0, 2.0];
        let preferred = Map::new(2, 4, preferred.to_vec()).expect("map");
        let selectivity = Map::new(2, 4, selectivity.to_vec()).expect("map");
        let layout = HeatmapLayout::with_panel(2, 4, WHEEL_PANEL_WIDTH, WHEEL_PANEL_HEIGHT);
        let img = decode(&orientation_png(&preferred, &selectivity, "units").expect("png"));
        let at = |r, c| pixel(&img, layout.unit_centre(r, c));
        assert_eq!(at(0, 0), [255, 0, 0]);
        assert_eq!(at(0, 1), [0, 255, 0]);
        assert_eq!(at(0, 2), [0, 0, 0]);
        let grey = [MISSING.0, MISSING.1, MISSING.2];
        assert_eq!(at(0, 3), grey);
        assert_eq!(at(1, 0), grey);
        // 90° is cyan; selectivity 1 of a 99th percentile near 2 gives about half brightness.
        let [r, g, b] = at(1, 1);
        assert!(
            r == 0 && g == b && (120..=135).contains(&g),
            "{:?}",
            [r, g, b]
        );
        // Orientation wraps: 180° and -90° are 0° and 90°.
        assert_eq!(at(1, 2), [255, 0, 0]);
        assert_eq!(at(1, 3), [0, 255, 255]);
    }

    #[test]
    fn orientation_brightness_ignores_outliers() {
        let n = 200;
        let preferred = Map::new(10, 20, vec![0.0; n]).expect("map");
        let mut values = vec![1.0; n];
        values[0] = 1000.0;
        let selectivity = Map::new(10, 20, values).expect("map");
        let layout = HeatmapLayout::with_panel(10, 20, WHEEL_PANEL_WIDTH, WHEEL_PANEL_HEIGHT);
        let img = decode(&orientation_png(&preferred, &selectivity, "outlier").expect("png"));
        // The 99th percentile is 1, so ordinary units are full red, not darkened by the outlier.
        assert_eq!(pixel(&img, layout.unit_centre(5, 5)), [255, 0, 0]);
        assert_eq!(percentile(&[3.0, f32::NAN, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[0.0, 10.0], 0.99), Some(9.9));
        assert_eq!(percentile(&[f32::NAN], 0.99), None);
    }

    #[test]
    fn orientation_legend_has_a_hue_ring_and_labels() {
        let (preferred, selectivity) = orientation_pair(12, 12);
        let layout = HeatmapLayout::with_panel(12, 12, WHEEL_PANEL_WIDTH, WHEEL_PANEL_HEIGHT);
        let legend = WheelLegend::for_layout(&layout);
        let img = decode(&orientation_png(&preferred, &selectivity, "o").expect("png"));
        let mid = (WHEEL_INNER + WHEEL_OUTER) / 2.0;
        let ring =
            |dx: f64, dy: f64| pixel(&img, ((legend.cx + dx) as u32, (legend.cy + dy) as u32));
        // Right: 0° (red); top: 45° (hue 90°, chartreuse); left: 90° (cyan); bottom: 135°.
        let right = ring(mid, 0.0);
        assert!(
            right[0] == 255 && right[1] < 20 && right[2] < 20,
            "{right:?}"
        );
        let left = ring(-mid, 0.0);
        assert!(left[0] < 20 && left[1] > 235 && left[2] > 235, "{left:?}");
        let top = ring(0.0, -mid);
        assert!(
            top[0] > 100 && top[0] < 155 && top[1] == 255 && top[2] < 20,
            "{top:?}"
        );
        // The ring's hole is background.
        assert_eq!(ring(0.0, 0.0), [255, 255, 255]);
        // Labels and notes: dark text in the panel right of and below the ring.
        let dark = |x0: u32, y0: u32, x1: u32, y1: u32| {
            (x0..x1)
                .flat_map(|x| (y0..y1).map(move |y| (x, y)))
                .filter(|&p| pixel(&img, p).iter().all(|&c| c < 100))
                .count()
        };
        let right_of_ring = (legend.cx + WHEEL_OUTER) as u32;
        let (cy, w) = (legend.cy as u32, layout.width);
        assert!(dark(right_of_ring, cy - 10, w, cy + 10) > 10, "no 0° label");
        let notes = dark(layout.bar_x, legend.note_y, w, legend.ramp_y);
        assert!(notes > 100, "{notes} dark pixels in the notes");
        // The brightness ramp runs from black to full red.
        let ramp = |i: u32| pixel(&img, (legend.ramp_x + i, legend.ramp_y + 1));
        assert!(ramp(0).iter().all(|&c| c < 5));
        assert_eq!(ramp(RAMP_WIDTH - 1)[0], 254);
    }

    #[test]
    fn orientation_maps_refuse_mismatched_and_broken_maps() {
        let (preferred, _) = orientation_pair(4, 4);
        let (_, other) = orientation_pair(4, 5);
        assert_eq!(
            orientation_png(&preferred, &other, ""),
            Err(AnalysisError::DrawShapes {
                rows: 4,
                cols: 4,
                other_rows: 4,
                other_cols: 5
            })
        );
        let broken = Map {
            rows: 4,
            cols: 4,
            values: vec![0.0; 3],
        };
        assert!(matches!(
            orientation_png(&preferred, &broken, ""),
            Err(AnalysisError::MapSize { .. })
        ));
        let huge = Map::new(1, MAX_UNITS_PER_SIDE + 1, vec![0.0; MAX_UNITS_PER_SIDE + 1]);
        let huge = huge.expect("map");
        assert!(matches!(
            orientation_png(&huge, &huge, ""),
            Err(AnalysisError::TooLarge { .. })
        ));
    }

    #[test]
    fn hsv_primaries() {
        assert_eq!(hsv(0.0, 1.0, 1.0), RGBColor(255, 0, 0));
        assert_eq!(hsv(1.0 / 3.0, 1.0, 1.0), RGBColor(0, 255, 0));
        assert_eq!(hsv(2.0 / 3.0, 1.0, 1.0), RGBColor(0, 0, 255));
        assert_eq!(hsv(1.0, 1.0, 1.0), RGBColor(255, 0, 0));
        assert_eq!(hsv(0.25, 0.0, 0.5), RGBColor(128, 128, 128));
        assert_eq!(hsv(0.5, 1.0, 0.0), RGBColor(0, 0, 0));
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("category {i}")).collect()
    }

    /// Four quadrants of categories 0..3, the top-left unit without one.
    fn quadrant_labels(side: usize) -> Vec<Option<usize>> {
        let half = side / 2;
        let mut labels: Vec<Option<usize>> = (0..side * side)
            .map(|i| Some(2 * (i / side / half) + (i % side) / half))
            .collect();
        labels[0] = None;
        labels
    }

    #[test]
    fn category_maps_colour_each_category_and_name_it() {
        let labels = quadrant_labels(8);
        let names = names(4);
        let img = decode(&category_png(&labels, 8, 8, &names, "categories").expect("png"));
        let entries = legend_entries(&labels, &names).expect("entries");
        assert_eq!(entries.len(), 5, "four categories and none");
        let widest = entries
            .iter()
            .map(|e| text_width(&e.text).expect("width"))
            .max();
        let panel = SWATCH + SWATCH_GAP + widest.expect("entries") + LEGEND_MARGIN;
        let layout = HeatmapLayout::with_panel(8, 8, panel, 5 * LEGEND_ROW);
        assert_eq!(img.dimensions(), (layout.width, layout.height));
        let grey = [MISSING.0, MISSING.1, MISSING.2];
        assert_eq!(pixel(&img, layout.unit_centre(0, 0)), grey);
        let mut seen = vec![grey];
        for (category, (r, c)) in [(0, (1, 1)), (1, (1, 6)), (2, (6, 1)), (3, (6, 6))] {
            let RGBColor(red, green, blue) = category_colour(category);
            let colour = [red, green, blue];
            assert_eq!(pixel(&img, layout.unit_centre(r, c)), colour);
            assert!(
                !seen.contains(&colour),
                "category {category} repeats a colour"
            );
            seen.push(colour);
            // The legend swatch has the same colour, and its name is drawn beside it.
            let (x, y) = legend_swatch(&layout, category);
            assert_eq!(pixel(&img, (x + SWATCH / 2, y + SWATCH / 2)), colour);
            let (tx, ty) = legend_text_anchor(&layout, category);
            let dark = (tx..layout.width)
                .flat_map(|x| (ty - 6..ty + 6).map(move |y| (x, y)))
                .filter(|&p| pixel(&img, p).iter().all(|&c| c < 100))
                .count();
            assert!(
                dark > 20,
                "legend text of category {category}: {dark} dark pixels"
            );
        }
        let (x, y) = legend_swatch(&layout, 4);
        assert_eq!(pixel(&img, (x + 1, y + 1)), grey, "the none entry");
    }

    #[test]
    fn category_colours_are_distinct_and_never_grey() {
        let colours: Vec<RGBColor> = (0..40).map(category_colour).collect();
        for (i, a) in colours.iter().enumerate() {
            assert_ne!(*a, MISSING);
            let spread = a.0.max(a.1).max(a.2) - a.0.min(a.1).min(a.2);
            assert!(spread > 40, "category {i} is greyish: {a:?}");
            for b in &colours[..i] {
                assert_ne!(a, b, "category {i}");
            }
        }
    }

    #[test]
    fn category_legends_list_present_categories_and_stay_bounded() {
        register_embedded_font().expect("font");
        // Only categories 1 and 3 of five occur; no unit is without one.
        let labels = [Some(3), Some(1), Some(1), Some(3)];
        let entries = legend_entries(&labels, &names(5)).expect("entries");
        let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["category 1", "category 3"]);
        // Many categories: the legend stops and counts the rest.
        let many: Vec<Option<usize>> = (0..100).map(Some).collect();
        let entries = legend_entries(&many, &names(100)).expect("entries");
        assert_eq!(entries.len(), MAX_LEGEND_CATEGORIES + 1);
        let last = entries.last().expect("entries");
        assert_eq!(last.text, format!("… {} more", 100 - MAX_LEGEND_CATEGORIES));
        assert!(last.colour.is_none());
        decode(&category_png(&many, 10, 10, &names(100), "many").expect("png"));
        // Long names are cut to fit.
        let long = vec!["a very long category name ".repeat(10)];
        let entries = legend_entries(&[Some(0)], &long).expect("entries");
        assert!(entries[0].text.ends_with('…'));
        assert!(text_width(&entries[0].text).expect("width") <= MAX_LEGEND_TEXT);
    }

    #[test]
    fn category_maps_refuse_bad_input() {
        let names = names(2);
        assert_eq!(
            category_png(&[Some(0); 5], 2, 3, &names, ""),
            Err(AnalysisError::MapSize {
                rows: 2,
                cols: 3,
                found: 5
            })
        );
        assert_eq!(
            category_png(&[], 0, 3, &names, ""),
            Err(AnalysisError::EmptyMap { rows: 0, cols: 3 })
        );
        assert_eq!(
            category_png(&[Some(0), Some(2)], 1, 2, &names, ""),
            Err(AnalysisError::UnknownCategory { label: 2, names: 2 })
        );
        let wide = vec![None; MAX_UNITS_PER_SIDE + 1];
        assert!(matches!(
            category_png(&wide, 1, MAX_UNITS_PER_SIDE + 1, &names, ""),
            Err(AnalysisError::TooLarge { .. })
        ));
        // No names and no categories is a valid, all-grey map.
        decode(&category_png(&[None; 4], 2, 2, &[], "empty").expect("png"));
    }
}
