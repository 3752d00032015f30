//! `alltnn infer --shard K/N`: one of N contiguous parts of the stimuli, for array jobs, and the
//! `shard.json` record that `alltnn merge` checks the parts against.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// Part `k` (1-based) of `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl Shard {
    /// Parses `K/N` with 1 ≤ K ≤ N.
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || anyhow!("--shard {s}: expected K/N with 1 ≤ K ≤ N, e.g. --shard 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }

    /// The stimuli of this part: the N parts are contiguous, in order, and differ in size by
    /// at most one (parts of fewer stimuli than shards may be empty).
    pub fn range(self, total: usize) -> Range<usize> {
        (self.k - 1) * total / self.n..self.k * total / self.n
    }

    pub fn dir_name(self) -> String {
        format!("shard-{}-of-{}", self.k, self.n)
    }

    /// Reads `shard-K-of-N` back.
    pub fn from_dir_name(name: &str) -> Option<Shard> {
        let (k, n) = name.strip_prefix("shard-")?.split_once("-of-")?;
        let shard = Shard {
            k: k.parse().ok()?,
            n: n.parse().ok()?,
        };
        (shard.k >= 1 && shard.k <= shard.n && shard.dir_name() == name).then_some(shard)
    }
}

/// A fingerprint of the ordered stimulus names (64-bit FNV-1a): shards of one job agree on it.
pub fn fingerprint(names: impl Iterator<Item = String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for name in names {
        // The separator keeps ["ab", "c"] and ["a", "bc"] apart.
        for byte in name.bytes().chain([0]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// What `shard.json` records. Written last, so a directory with one is complete.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    pub shard: Shard,
    pub range: Range<usize>,
    pub total: usize,
    pub model: String,
    pub fingerprint: String,
    /// The result files, in the order `alltnn merge` writes them.
    pub files: Vec<String>,
}

pub const RECORD: &str = "shard.json";

impl Record {
    pub fn to_json(&self) -> String {
        let value = json!({
            "shard": self.shard.k,
            "shards": self.shard.n,
            "start": self.range.start,
            "end": self.range.end,
            "count": self.range.len(),
            "total": self.total,
            "model": self.model,
            "inputs_fingerprint": self.fingerprint,
            "files": self.files,
        });
        serde_json::to_string_pretty(&value).expect("JSON of plain values") + "\n"
    }

    /// Reads `dir/shard.json`.
    pub fn read(dir: &Path) -> Result<Record> {
        let path = dir.join(RECORD);
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        parse_record(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
    }

    /// Checks that `other` was made from the same stimuli, model and split as this record.
    pub fn check_same_job(&self, other: &Record, other_path: &Path) -> Result<()> {
        let differs = |what: &str, a: &dyn std::fmt::Display, b: &dyn std::fmt::Display| {
            anyhow!(
                "{}: {what} {b} differs from {a} of the other shards (another job's results?)",
                other_path.display()
            )
        };
        if self.shard.n != other.shard.n {
            return Err(differs("shard count", &self.shard.n, &other.shard.n));
        }
        if self.fingerprint != other.fingerprint {
            return Err(differs(
                "inputs fingerprint",
                &self.fingerprint,
                &other.fingerprint,
            ));
        }
        if self.total != other.total {
            return Err(differs("stimulus count", &self.total, &other.total));
        }
        if self.model != other.model {
            return Err(differs("model", &self.model, &other.model));
        }
        if self.files != other.files {
            return Err(differs(
                "file list",
                &self.files.join(", "),
                &other.files.join(", "),
            ));
        }
        Ok(())
    }
}

fn parse_record(text: &str) -> Result<Record> {
    let value: Value = serde_json::from_str(text).map_err(|e| anyhow!("not valid JSON ({e})"))?;
    let number = |key: &str| {
        value[key]
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| anyhow!("missing or non-integer \"{key}\""))
    };
    let string = |key: &str| {
        value[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("missing or non-string \"{key}\""))
    };
    let shard = Shard {
        k: number("shard")?,
        n: number("shards")?,
    };
    let range = number("start")?..number("end")?;
    let total = number("total")?;
    if shard.k == 0 || shard.k > shard.n || range.start > range.end || range.end > total {
        bail!("inconsistent shard numbers");
    }
    if number("count")? != range.len() {
        bail!("\"count\" differs from end − start");
    }
    let files = value["files"]
        .as_array()
        .and_then(|files| {
            files
                .iter()
                .map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .ok_or_else(|| anyhow!("missing or malformed \"files\""))?;
    Ok(Record {
        shard,
        range,
        total,
        model: string("model")?,
        fingerprint: string("inputs_fingerprint")?,
        files,
    })
}

/// The shard directories under `dir`: those named `shard-K-of-N`.
pub fn shard_dirs(dir: &Path) -> Result<Vec<(Shard, PathBuf)>> {
    let mut shards = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let entry = entry.with_context(|| format!("{}", dir.display()))?;
        let name = entry.file_name();
        if let Some(shard) = name.to_str().and_then(Shard::from_dir_name) {
            if entry.path().is_dir() {
                shards.push((shard, entry.path()));
            }
        }
    }
    shards.sort_by_key(|(s, _)| (s.n, s.k));
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_contiguous_and_near_equal() {
        for total in 0..20 {
            for n in 1..9 {
                let ranges: Vec<_> = (1..=n).map(|k| Shard { k, n }.range(total)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[n - 1].end, total);
                assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
                let sizes: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(max - min <= 1, "{total} over {n}: {sizes:?}");
            }
        }
        assert_eq!(Shard { k: 2, n: 4 }.range(6), 1..3);
    }

    #[test]
    fn shard_arguments() {
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { k: 2, n: 4 });
        for bad in ["0/4", "5/4", "4", "a/b", "1/0", "-1/4", "1/4/2"] {
            let err = Shard::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("K/N"), "{err}");
        }
        assert_eq!(
            Shard::from_dir_name("shard-3-of-12"),
            Some(Shard { k: 3, n: 12 })
        );
        for name in [
            "shard-0-of-2",
            "shard-3-of-2",
            "shard-01-of-2",
            "shard-1-of-2x",
        ] {
            assert_eq!(Shard::from_dir_name(name), None, "{name}");
        }
    }

    #[test]
    fn fingerprints_see_order_and_boundaries() {
        let f = |names: &[&str]| fingerprint(names.iter().map(|s| s.to_string()));
        assert_ne!(f(&["a", "b"]), f(&["b", "a"]));
        assert_ne!(f(&["ab", "c"]), f(&["a", "bc"]));
        assert_eq!(f(&["x.npy[0]"]).len(), 16);
    }

    #[test]
    fn records_round_trip() {
        let record = Record {
            shard: Shard { k: 2, n: 4 },
            range: 1..3,
            total: 6,
            model: "m.tnn".into(),
            fingerprint: "00ff".into(),
            files: vec!["predictions.csv".into(), "probs.npy".into()],
        };
        assert_eq!(parse_record(&record.to_json()).unwrap(), record);
        let err = parse_record("{\"shard\": 1}").unwrap_err().to_string();
        assert!(err.contains("shards"), "{err}");
    }
}
