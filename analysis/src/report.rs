//! A small, self-contained HTML report: headings, paragraphs, figures, tables and key–value
//! lists in one file with inline CSS, no JavaScript and no external URLs, so it opens the same
//! from a laptop, a cluster's file browser or an archive years later.
//!
//! Figures are referenced by paths relative to the report (the PNGs of [`crate::render`] written
//! beside it). Everything given to the builder is HTML-escaped, so names of layers, categories or
//! files cannot break the page or inject markup.
//!
//! ```
//! use alltnn_analysis::report::Report;
//! let mut report = Report::new("Layer 4 & beyond");
//! report.heading("Energy");
//! report.figure("energy/stacked.png", "Stacked energy map");
//! report.figure("energy/profile.png", "Radial profile");
//! report.table(&["layer", "units"], &[vec!["0".into(), "36864".into()]]);
//! let html = report.html();
//! assert!(html.contains("<title>Layer 4 &amp; beyond</title>"));
//! ```

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// An HTML report built block by block, in order; [`Report::html`] renders it and
/// [`Report::write`] saves it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    title: String,
    blocks: Vec<Block>,
}

#[derive(Clone, Debug, PartialEq)]
enum Block {
    Heading(String),
    Subheading(String),
    Paragraph(String),
    Figure {
        src: String,
        caption: String,
    },
    Table {
        headers: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    KeyValues(Vec<(String, String)>),
}

/// Inline so the report is one self-contained file. Consecutive figures share a grid that puts
/// as many side by side as the window allows.
const STYLE: &str = "\
body{margin:0;background:#fafafa;color:#222;font:16px/1.5 system-ui,-apple-system,'Segoe UI',\
Roboto,'DejaVu Sans',sans-serif}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:1.8em;margin:0 0 .6em}
h2{font-size:1.4em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:1px solid #ddd}
h3{font-size:1.15em;margin:1.2em 0 .4em}
p{max-width:80ch}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,420px),1fr));\
gap:16px;margin:1em 0}
figure{margin:0;padding:8px;background:#fff;border:1px solid #e2e2e2;border-radius:4px}
figure img{display:block;width:100%;height:auto}
figcaption{margin-top:6px;font-size:.9em;color:#555}
.table{overflow-x:auto;margin:1em 0}
table{border-collapse:collapse;background:#fff}
th,td{padding:4px 10px;border:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:1em 0}
dl.kv dt{font-weight:600}
dl.kv dd{margin:0;overflow-wrap:anywhere}
";

impl Report {
    /// An empty report titled `title` (the page title and its top heading).
    pub fn new(title: &str) -> Report {
        Report {
            title: title.to_string(),
            blocks: Vec::new(),
        }
    }

    /// A paragraph of plain text.
    pub fn paragraph(&mut self, text: &str) {
        self.blocks.push(Block::Paragraph(text.to_string()));
    }

    /// A section heading (`h2`).
    pub fn heading(&mut self, text: &str) {
        self.blocks.push(Block::Heading(text.to_string()));
    }

    /// A subsection heading (`h3`).
    pub fn subheading(&mut self, text: &str) {
        self.blocks.push(Block::Subheading(text.to_string()));
    }

    /// A picture at `src`, a URL path relative to the report (e.g. `maps/layer0.png`), with
    /// `caption` below it and as its alternative text. Consecutive figures flow in a grid.
    /// `src` is HTML-escaped but not URL-encoded: a file name containing `#`, `?` or `%` must be
    /// percent-encoded by the caller.
    pub fn figure(&mut self, src: &str, caption: &str) {
        self.blocks.push(Block::Figure {
            src: src.to_string(),
            caption: caption.to_string(),
        });
    }

    /// A table with a header row. Rows shorter than `headers` are padded with empty cells so the
    /// columns stay aligned; longer rows keep their extra cells. Cells that read as numbers are
    /// right-aligned.
    pub fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) {
        self.blocks.push(Block::Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: rows.to_vec(),
        });
    }

    /// A list of `(key, value)` pairs (e.g. settings of a run), keys aligned in one column.
    pub fn key_values(&mut self, pairs: &[(String, String)]) {
        self.blocks.push(Block::KeyValues(pairs.to_vec()));
    }

    /// The whole page: one HTML5 document, deterministic for the same blocks.
    pub fn html(&self) -> String {
        let mut out = String::new();
        let title = escape(&self.title);
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        // Writing into a String cannot fail.
        let _ = writeln!(out, "<title>{title}</title>\n<style>\n{STYLE}</style>");
        let _ = writeln!(out, "</head>\n<body>\n<main>\n<h1>{title}</h1>");
        let mut in_figures = false;
        for block in &self.blocks {
            let is_figure = matches!(block, Block::Figure { .. });
            if in_figures && !is_figure {
                out.push_str("</div>\n");
            } else if !in_figures && is_figure {
                out.push_str("<div class=\"figures\">\n");
            }
            in_figures = is_figure;
            render_block(&mut out, block);
        }
        if in_figures {
            out.push_str("</div>\n");
        }
        out.push_str("</main>\n</body>\n</html>\n");
        out
    }

    /// Writes the page to `path` atomically: into a temporary file in the same folder, flushed
    /// to disk, then renamed over `path`. A reader (or a crash) never sees a half-written report
    /// under the final name, and an existing report is replaced whole. The folder must exist.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let temp = temp_path(path)?;
        let written =
            write_new(&temp, self.html().as_bytes()).and_then(|()| fs::rename(&temp, path));
        if let Err(e) = written {
            // Best effort: the temporary file may not exist if creating it failed.
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        // Makes the rename itself durable where the platform allows syncing a folder (not
        // Windows); the report is already complete under its name, so failure here is harmless.
        if let Ok(dir) = File::open(parent_dir(path)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

fn render_block(out: &mut String, block: &Block) {
    // Writing into a String cannot fail.
    let _ = match block {
        Block::Heading(text) => writeln!(out, "<h2>{}</h2>", escape(text)),
        Block::Subheading(text) => writeln!(out, "<h3>{}</h3>", escape(text)),
        Block::Paragraph(text) => writeln!(out, "<p>{}</p>", escape(text)),
        Block::Figure { src, caption } => {
            let caption = escape(caption);
            writeln!(
                out,
                "<figure><img src=\"{}\" alt=\"{caption}\" loading=\"lazy\">\
                 <figcaption>{caption}</figcaption></figure>",
                escape(src)
            )
        }
        Block::Table { headers, rows } => {
            render_table(out, headers, rows);
            Ok(())
        }
        Block::KeyValues(pairs) => {
            out.push_str("<dl class=\"kv\">\n");
            for (key, value) in pairs {
                let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", escape(key), escape(value));
            }
            out.push_str("</dl>\n");
            Ok(())
        }
    };
}

fn render_table(out: &mut String, headers: &[String], rows: &[Vec<String>]) {
    out.push_str("<div class=\"table\"><table>\n");
    if !headers.is_empty() {
        out.push_str("<thead><tr>");
        for header in headers {
            let _ = write!(out, "<th>{}</th>", escape(header));
        }
        out.push_str("</tr></thead>\n");
    }
    out.push_str("<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        let padding = headers.len().saturating_sub(row.len());
        for cell in row
            .iter()
            .map(String::as_str)
            .chain(std::iter::repeat_n("", padding))
        {
            let class = if is_number(cell) {
                " class=\"num\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");
}

/// Whether a cell holds a number (right-aligned so that digits line up).
fn is_number(cell: &str) -> bool {
    let cell = cell.trim().trim_end_matches('%');
    !cell.is_empty() && cell.parse::<f64>().is_ok()
}

/// `text` safe in HTML element content and in double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A fresh name beside `path`: hidden and ending in `.tmp`, so no one mistakes it for the
/// report, and unique per process and call so concurrent writers do not share it.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".{}-{n}.tmp", std::process::id()));
    Ok(parent_dir(path).join(temp))
}

/// Creates `path` (failing if it exists) with `bytes`, flushed to disk before returning.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty folder under the system's temporary folder.
    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("alltnn-report-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch folder");
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn everything_user_supplied_is_escaped() {
        let mut report = Report::new("<b>Title</b> & co");
        report.heading("<script>alert(1)</script>");
        report.subheading("a < b");
        report.paragraph("Tom & Jerry's \"show\"");
        report.figure("x\" onerror=\"alert(1).png", "<img src=x>");
        report.table(&["<th>"], &[vec!["<td>&".to_string()]]);
        report.key_values(&[("<k>".to_string(), "v'\"".to_string())]);
        let html = report.html();
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>"));
        assert!(!html.contains("<img src=x>"));
        assert!(!html.contains("onerror=\""));
        assert!(html.contains("<title>&lt;b&gt;Title&lt;/b&gt; &amp; co</title>"));
        assert!(html.contains("<h2>&lt;script&gt;alert(1)&lt;/script&gt;</h2>"));
        assert!(html.contains("<h3>a &lt; b</h3>"));
        assert!(html.contains("<p>Tom &amp; Jerry&#39;s &quot;show&quot;</p>"));
        assert!(html.contains("src=\"x&quot; onerror=&quot;alert(1).png\""));
        assert!(html.contains("alt=\"&lt;img src=x&gt;\""));
        assert!(html.contains("<th>&lt;th&gt;</th>"));
        assert!(html.contains("<td>&lt;td&gt;&amp;</td>"));
        assert!(html.contains("<dt>&lt;k&gt;</dt><dd>v&#39;&quot;</dd>"));
        assert_eq!(escape("plain text ✓"), "plain text ✓");
    }

    #[test]
    fn the_page_is_self_contained() {
        let mut report = Report::new("r");
        report.figure("a.png", "a");
        let html = report.html();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("<style>"));
        for banned in ["<script", "http://", "https://", "<link", "@import", "url("] {
            assert!(!html.contains(banned), "{banned}");
        }
        assert!(html.trim_end().ends_with("</html>"));
        assert_eq!(html, report.clone().html(), "deterministic");
    }

    #[test]
    fn consecutive_figures_share_a_grid() {
        let mut report = Report::new("figures");
        report.figure("a.png", "A");
        report.figure("b.png", "B");
        report.paragraph("between");
        report.figure("c.png", "C");
        let html = report.html();
        assert_eq!(html.matches("<div class=\"figures\">").count(), 2);
        assert_eq!(html.matches("<figure>").count(), 3);
        assert_eq!(html.matches("<figcaption>").count(), 3);
        let first = html.find("<div class=\"figures\">").expect("grid");
        let a = html.find("src=\"a.png\"").expect("a");
        let b = html.find("src=\"b.png\"").expect("b");
        let close = html[first..].find("</div>").expect("closed") + first;
        let para = html.find("<p>between</p>").expect("paragraph");
        assert!(first < a && a < b && b < close && close < para);
        // The last grid is closed before the page ends.
        let last = html.rfind("<div class=\"figures\">").expect("grid");
        assert!(html[last..].contains("</div>\n</main>"));
        assert!(html.contains("alt=\"A\""));
    }

    #[test]
    fn tables_have_one_row_per_entry_and_aligned_cells() {
        let mut report = Report::new("t");
        let rows = vec![
            vec![
                "layer 0".to_string(),
                "36864".to_string(),
                "0.5".to_string(),
            ],
            vec!["layer 1".to_string()],
            vec!["a".into(), "b".into(), "c".into(), "extra".into()],
        ];
        report.table(&["name", "units", "ratio"], &rows);
        let html = report.html();
        assert_eq!(html.matches("<th>").count(), 3);
        assert_eq!(html.matches("<tr>").count(), 4, "header and three rows");
        let body = &html[html.find("<tbody>").expect("body")..];
        let cells: Vec<usize> = body
            .split("<tr>")
            .skip(1)
            .map(|row| row.matches("<td").count())
            .collect();
        assert_eq!(cells, [3, 3, 4]);
        assert!(body.contains("<td class=\"num\">36864</td>"));
        assert!(body.contains("<td>layer 0</td>"));
    }

    #[test]
    fn key_values_keep_their_order() {
        let mut report = Report::new("kv");
        let pairs = [("model", "alltnn"), ("seed", "1")].map(|(k, v)| (k.into(), v.into()));
        report.key_values(&pairs);
        let html = report.html();
        let model = html.find("<dt>model</dt><dd>alltnn</dd>").expect("model");
        let seed = html.find("<dt>seed</dt><dd>1</dd>").expect("seed");
        assert!(model < seed);
    }

    #[test]
    fn writing_is_atomic_and_replaces_an_old_report() {
        let dir = scratch_dir("write");
        let path = dir.join("index.html");
        fs::write(
            &path,
            "old report, much longer than the new one ".repeat(1000),
        )
        .expect("old");
        let mut report = Report::new("new");
        report.paragraph("fresh");
        report.write(&path).expect("write");
        assert_eq!(fs::read_to_string(&path).expect("read"), report.html());
        assert_eq!(listing(&dir), ["index.html"], "no temporary file left");
        report.paragraph("again");
        report.write(&path).expect("rewrite");
        assert_eq!(fs::read_to_string(&path).expect("read"), report.html());
        assert_eq!(listing(&dir), ["index.html"]);
        fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn failed_writes_leave_nothing_behind() {
        let dir = scratch_dir("fail");
        let report = Report::new("r");
        assert!(report
            .write(&dir.join("missing").join("index.html"))
            .is_err());
        // A folder in the way: the rename fails after the temporary file was written.
        fs::create_dir(dir.join("index.html")).expect("folder in the way");
        fs::write(dir.join("index.html").join("keep"), "x").expect("file");
        assert!(report.write(&dir.join("index.html")).is_err());
        assert_eq!(listing(&dir), ["index.html"]);
        assert!(report.write(Path::new("/")).is_err(), "not a file name");
        fs::remove_dir_all(&dir).expect("clean up");
    }
}
