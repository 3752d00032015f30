//! `alltnn merge`: joins the parts that `alltnn infer --shard K/N --out DIR` wrote into the
//! files of one unsharded run. Streaming: array data are copied as bytes after their headers are
//! checked, so memory does not grow with the arrays.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::outputs::{npy_f32_header, OutputDir};
use crate::shard::{self, Record, Shard};

/// Join the results of `alltnn infer --shard K/N --out DIR`, in stimulus order.
#[derive(clap::Args)]
pub struct Args {
    /// The `--out` directory of the sharded runs, holding `shard-K-of-N/`.
    dir: PathBuf,
    /// Where to write predictions.csv, probs.npy and the activations (default: DIR).
    #[arg(short, long)]
    out: Option<PathBuf>,
}

/// One shard's copy of an array: where its data start and its shape.
struct NpyPart {
    path: PathBuf,
    data_start: u64,
    shape: Vec<usize>,
}

pub fn run(args: Args) -> Result<()> {
    let records = complete_shards(&args.dir)?;
    let first = &records[0].0;
    // Every header is checked before anything is written.
    let mut arrays = Vec::new();
    for name in &first.files {
        if name.ends_with(".npy") {
            let parts = records
                .iter()
                .map(|(record, dir)| npy_part(&dir.join(name), record.range.len()))
                .collect::<Result<Vec<_>>>()?;
            for part in &parts[1..] {
                if part.shape[1..] != parts[0].shape[1..] {
                    bail!(
                        "{}: rows of shape {:?}, {} has {:?}",
                        part.path.display(),
                        &part.shape[1..],
                        parts[0].path.display(),
                        &parts[0].shape[1..]
                    );
                }
            }
            arrays.push((name, parts));
        } else if name != "predictions.csv" {
            bail!(
                "{}: unknown result file {name}",
                records[0].1.join(shard::RECORD).display()
            );
        }
    }

    let out_path = args.out.as_deref().unwrap_or(&args.dir);
    let mut out = OutputDir::create(out_path)?;
    let csvs: Vec<(PathBuf, usize)> = records
        .iter()
        .map(|(record, dir)| (dir.join("predictions.csv"), record.range.len()))
        .collect();
    let mut csv = out.file("predictions.csv")?;
    merge_csv(&csvs, &mut csv)?;
    csv.flush()?;
    for (name, parts) in arrays {
        let mut shape = parts[0].shape.clone();
        shape[0] = first.total;
        let mut npy = out.file(name)?;
        npy.write_all(&npy_f32_header(&shape))?;
        for part in &parts {
            let mut file =
                File::open(&part.path).with_context(|| format!("{}", part.path.display()))?;
            file.seek(SeekFrom::Start(part.data_start))?;
            let len = 4 * part.shape.iter().product::<usize>() as u64;
            let copied = std::io::copy(&mut file.take(len), &mut npy)
                .with_context(|| format!("{}", part.path.display()))?;
            if copied != len {
                bail!("{}: truncated while merging", part.path.display());
            }
        }
        npy.flush()?;
    }
    out.commit()?;
    println!(
        "merged {} shards ({} stimuli) into {}",
        first.shard.n,
        first.total,
        out_path.display()
    );
    Ok(())
}

/// The records of shards 1..=N under `dir`, checked to be complete, of one job, and to cover
/// the stimuli in order.
fn complete_shards(dir: &Path) -> Result<Vec<(Record, PathBuf)>> {
    let found = shard::shard_dirs(dir)?;
    let Some(&(Shard { n, .. }, _)) = found.first() else {
        bail!(
            "{}: no shard-K-of-N directories (written by `alltnn infer --shard K/N --out {}`)",
            dir.display(),
            dir.display()
        );
    };
    if found.iter().any(|(s, _)| s.n != n) {
        let mut splits: Vec<String> = found
            .iter()
            .map(|(s, _)| format!("shard-K-of-{}", s.n))
            .collect();
        splits.dedup();
        bail!(
            "{}: holds parts of different splits ({}); remove the stale ones",
            dir.display(),
            splits.join(", ")
        );
    }
    let mut records: Vec<(Record, PathBuf)> = Vec::new();
    for k in 1..=n {
        let shard = Shard { k, n };
        let path = dir.join(shard.dir_name());
        let rerun = format!(
            "run `alltnn infer … --shard {k}/{n} --out {}`",
            dir.display()
        );
        if !path.is_dir() {
            bail!("{}: missing; {rerun}", path.display());
        }
        if !path.join(shard::RECORD).is_file() {
            bail!(
                "{}: incomplete (no {}); {rerun}",
                path.display(),
                shard::RECORD
            );
        }
        let record = Record::read(&path)?;
        let record_path = path.join(shard::RECORD);
        if record.shard != shard {
            bail!(
                "{}: records shard {}/{}, not {k}/{n}",
                record_path.display(),
                record.shard.k,
                record.shard.n
            );
        }
        if let Some((first, _)) = records.first() {
            first.check_same_job(&record, &record_path)?;
        }
        let start = records.last().map_or(0, |(r, _)| r.range.end);
        let end = if k == n {
            record.total
        } else {
            record.range.end
        };
        if record.range.start != start || record.range.end != end {
            bail!(
                "{}: covers stimuli {}..{}, expected to start at {start}{}",
                record_path.display(),
                record.range.start,
                record.range.end,
                if k == n {
                    format!(" and end at {end}")
                } else {
                    String::new()
                }
            );
        }
        records.push((record, path));
    }
    Ok(records)
}

/// Checks a shard's array: our float32 header, `rows` rows and the bytes the header announces.
fn npy_part(path: &Path, rows: usize) -> Result<NpyPart> {
    let file = File::open(path).map_err(|e| {
        anyhow!(
            "{}: listed in {} but cannot be opened ({e})",
            path.display(),
            shard::RECORD
        )
    })?;
    let npy = npyz::NpyFile::new(BufReader::new(&file))
        .map_err(|e| anyhow!("{}: not a valid .npy file ({e})", path.display()))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let header = npy_f32_header(&shape);
    let mut head = vec![0u8; header.len()];
    let same_header = (&file).seek(SeekFrom::Start(0)).is_ok()
        && (&file).read_exact(&mut head).is_ok()
        && head == header;
    if !same_header {
        bail!(
            "{}: not a C-ordered float32 array as `alltnn infer` writes",
            path.display()
        );
    }
    if shape.first() != Some(&rows) {
        bail!(
            "{}: shape {shape:?}, expected {rows} rows as {} says",
            path.display(),
            shard::RECORD
        );
    }
    let len = file
        .metadata()
        .with_context(|| format!("{}", path.display()))?
        .len();
    let data_len = 4 * shape.iter().product::<usize>() as u64;
    if len != header.len() as u64 + data_len {
        bail!(
            "{}: holds {} data bytes, its header announces {data_len} (truncated?)",
            path.display(),
            len.saturating_sub(header.len() as u64)
        );
    }
    Ok(NpyPart {
        path: path.to_path_buf(),
        data_start: header.len() as u64,
        shape,
    })
}

/// Writes the first part's header line, then every part's rows; each part must have the same
/// header and as many rows as its shard holds.
fn merge_csv(parts: &[(PathBuf, usize)], out: &mut impl Write) -> Result<()> {
    let mut header: Option<Vec<u8>> = None;
    for (path, rows) in parts {
        let file = File::open(path).map_err(|e| {
            anyhow!(
                "{}: listed in {} but cannot be opened ({e})",
                path.display(),
                shard::RECORD
            )
        })?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("{}", path.display()))?;
        if !line.ends_with(b"\n") {
            bail!("{}: no header line", path.display());
        }
        match &header {
            None => {
                out.write_all(&line)?;
                header = Some(line);
            }
            Some(first) if *first != line => bail!(
                "{}: header differs from {}'s (another --top-k or model?)",
                path.display(),
                parts[0].0.display()
            ),
            Some(_) => {}
        }
        let found =
            copy_records(&mut reader, out).with_context(|| format!("{}", path.display()))?;
        if found != *rows {
            bail!(
                "{}: {found} rows, expected {rows} as {} says",
                path.display(),
                shard::RECORD
            );
        }
    }
    Ok(())
}

/// Copies CSV rows, counting records: line breaks inside quoted fields do not end one.
fn copy_records(reader: &mut impl BufRead, out: &mut impl Write) -> std::io::Result<usize> {
    let (mut records, mut quoted) = (0, false);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(records);
        }
        for &b in chunk {
            match b {
                b'"' => quoted = !quoted,
                b'\n' if !quoted => records += 1,
                _ => {}
            }
        }
        out.write_all(chunk)?;
        let len = chunk.len();
        reader.consume(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_line_breaks_are_not_records() {
        let csv = b"a.png,1,2\n\"b\nc.png\",3,4\n\"d \"\"e\"\"\",5,6\n";
        let mut out = Vec::new();
        assert_eq!(copy_records(&mut &csv[..], &mut out).unwrap(), 3);
        assert_eq!(out, csv);
    }
}
