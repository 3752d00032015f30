//! Typed errors of the analyses. Every message is one line that says what is wrong.

/// Why a map could not be built, combined or drawn.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's message documents it")]
pub enum AnalysisError {
    #[error("{found} values do not fill a {rows}x{cols} map")]
    MapSize {
        rows: usize,
        cols: usize,
        found: usize,
    },
    #[error("a map must have at least one row and one column ({rows}x{cols} given)")]
    EmptyMap { rows: usize, cols: usize },
    #[error("{found} values do not fill an (H, W, C) = ({h}, {w}, {c}) activation")]
    ActivationSize {
        h: usize,
        w: usize,
        c: usize,
        found: usize,
    },
    #[error("a {rows}x{cols} map is too large to draw (at most {max} units per side)")]
    TooLarge {
        rows: usize,
        cols: usize,
        max: usize,
    },
    #[error("no maps to stack")]
    NoMaps,
    #[error("nothing to plot: no series has a finite point")]
    NoData,
    #[error("cannot plot values from {lo} to {hi}: the range is too wide to draw")]
    RangeTooWide { lo: f64, hi: f64 },
    #[error("maps to draw together differ in shape: {rows}x{cols} and {other_rows}x{other_cols}")]
    DrawShapes {
        rows: usize,
        cols: usize,
        other_rows: usize,
        other_cols: usize,
    },
    #[error("category label {label} has no name ({names} names given)")]
    UnknownCategory { label: usize, names: usize },
    #[error("category selectivity needs at least 2 categories ({found} given)")]
    TooFewCategories { found: usize },
    #[error("category \"{name}\" is given twice")]
    DuplicateCategory { name: String },
    #[error("category index {index} is out of range ({count} categories)")]
    CategoryIndex { index: usize, count: usize },
    #[error("category \"{name}\" has no stimuli, so its d' is undefined")]
    EmptyCategory { name: String },
    #[error("a {rows}x{cols} sheet does not match the expected {expected_rows}x{expected_cols}")]
    CategorySheetShape {
        rows: usize,
        cols: usize,
        expected_rows: usize,
        expected_cols: usize,
    },
    #[error("unit {unit} of a category-{category} sheet is {value}; activations must be finite")]
    NonFiniteActivation {
        category: usize,
        unit: usize,
        value: f32,
    },
    #[error("cannot merge category statistics over different categories or sheet shapes")]
    CategoryStatsMismatch,
    #[error("a bias grid needs grid, height, width and object size of at least 1 (grid {grid}, {height}x{width} image, object side {object_size})")]
    BiasGrid {
        grid: usize,
        height: usize,
        width: usize,
        object_size: usize,
    },
    #[error("{found} bytes do not fill a {h}x{w} object with {channels} channels (1 or 3, both sides at least 1)")]
    BiasObject {
        h: usize,
        w: usize,
        channels: usize,
        found: usize,
    },
    #[error("grid cell {cell} is out of range ({cells} cells)")]
    BiasCell { cell: usize, cells: usize },
    #[error("class {class} is out of range ({classes} classes)")]
    BiasClass { class: usize, classes: usize },
    #[error("cannot merge accuracy counts over different grids or class counts")]
    BiasMismatch,
    #[error("orientation tuning needs at least one orientation")]
    NoOrientations,
    #[error("orientation {orientation} is out of range ({orientations} orientations)")]
    OrientationIndex {
        orientation: usize,
        orientations: usize,
    },
    #[error("a {rows}x{cols} sheet does not match the {expected_rows}x{expected_cols} orientation-tuning sheet")]
    OrientationSheetShape {
        rows: usize,
        cols: usize,
        expected_rows: usize,
        expected_cols: usize,
    },
    #[error("no responses were added for orientation {orientation}")]
    MissingOrientation { orientation: usize },
    #[error("the embedded font could not be loaded")]
    Font,
    #[error("drawing failed: {0}")]
    Draw(String),
    #[error("PNG encoding failed: {0}")]
    Encode(String),
}
