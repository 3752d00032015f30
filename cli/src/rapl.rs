//! Measured CPU package energy from Linux powercap (Intel RAPL, also used for AMD), where the
//! kernel exposes it. The counters cover the whole package — every process on it — and wrap at
//! `max_energy_range_uj`.

use std::path::{Path, PathBuf};

const POWERCAP: &str = "/sys/class/powercap";

struct Domain {
    counter: PathBuf,
    range_uj: u64,
}

/// The package-level RAPL counters of this machine.
pub struct Rapl {
    domains: Vec<Domain>,
}

/// A reading of every counter.
pub struct Reading(Vec<u64>);

impl Rapl {
    /// The counters, or why they cannot be read.
    pub fn open() -> Result<Rapl, String> {
        let entries = std::fs::read_dir(POWERCAP).map_err(|e| format!("{POWERCAP}: {e}"))?;
        let mut domains = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Top-level zones (`intel-rapl:0`) are packages; `intel-rapl:0:0` are parts of them.
            if name.starts_with("intel-rapl:") && name.matches(':').count() == 1 {
                let dir = entry.path();
                let range_uj = read_u64(&dir.join("max_energy_range_uj"))?;
                domains.push(Domain {
                    counter: dir.join("energy_uj"),
                    range_uj,
                });
            }
        }
        if domains.is_empty() {
            return Err(format!("no RAPL package zones under {POWERCAP}"));
        }
        let rapl = Rapl { domains };
        rapl.read()?;
        Ok(rapl)
    }

    pub fn read(&self) -> Result<Reading, String> {
        self.domains
            .iter()
            .map(|d| read_u64(&d.counter))
            .collect::<Result<_, _>>()
            .map(Reading)
    }

    /// Joules used by all packages since `start`.
    pub fn joules_since(&self, start: &Reading) -> Result<f64, String> {
        let now = self.read()?;
        let micro: u64 = self
            .domains
            .iter()
            .zip(start.0.iter().zip(&now.0))
            .map(|(d, (&a, &b))| if b >= a { b - a } else { d.range_uj - a + b })
            .sum();
        Ok(micro as f64 * 1e-6)
    }
}

fn read_u64(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))
}
