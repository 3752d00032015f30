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
    #[error("the embedded font could not be loaded")]
    Font,
    #[error("drawing failed: {0}")]
    Draw(String),
    #[error("PNG encoding failed: {0}")]
    Encode(String),
}
