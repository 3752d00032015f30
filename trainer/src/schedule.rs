//! Schedules over training progress for the spatial-loss weight alpha and the learning rate.

use std::f64::consts::PI;
use std::str::FromStr;

/// How alpha grows from 0 to its value over training; `progress` is the fraction of training
/// done, `epoch / epochs` (alpha is constant within an epoch, as in the original).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AlphaSchedule {
    Constant,
    /// `α·p`.
    Linear,
    /// `α·(1 − cos πp)/2`.
    Cosine,
    /// `α / (1 + e^{−s(p − c)})`, the original's defaults s = 20, c = 0.5.
    Sigmoid {
        steepness: f64,
        centre: f64,
    },
}

impl AlphaSchedule {
    pub fn alpha(&self, alpha: f64, progress: f64) -> f64 {
        let p = progress.clamp(0.0, 1.0);
        match *self {
            AlphaSchedule::Constant => alpha,
            AlphaSchedule::Linear => alpha * p,
            AlphaSchedule::Cosine => alpha * (1.0 - (PI * p).cos()) / 2.0,
            AlphaSchedule::Sigmoid { steepness, centre } => {
                alpha / (1.0 + (-steepness * (p - centre)).exp())
            }
        }
    }
}

impl FromStr for AlphaSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(AlphaSchedule::Constant),
            "linear" => Ok(AlphaSchedule::Linear),
            "cosine" => Ok(AlphaSchedule::Cosine),
            "sigmoid" => Ok(AlphaSchedule::Sigmoid {
                steepness: 20.0,
                centre: 0.5,
            }),
            other => Err(format!(
                "unknown alpha schedule `{other}` (constant, linear, cosine, sigmoid)"
            )),
        }
    }
}

/// Learning rate over steps: an optional linear warm-up, then constant or cosine decay to 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    pub base: f64,
    pub cosine: bool,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl LrSchedule {
    /// Learning rate of update number `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base * (step + 1) as f64 / self.warmup_steps as f64;
        }
        if !self.cosine || self.total_steps <= self.warmup_steps {
            return self.base;
        }
        let p = (step - self.warmup_steps) as f64 / (self.total_steps - self.warmup_steps) as f64;
        self.base * (1.0 + (PI * p.min(1.0)).cos()) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_schedules_start_at_zero_and_end_at_alpha() {
        for s in ["linear", "cosine"] {
            let s: AlphaSchedule = s.parse().unwrap();
            assert_eq!(s.alpha(10.0, 0.0), 0.0);
            assert!((s.alpha(10.0, 1.0) - 10.0).abs() < 1e-12);
            assert!((s.alpha(10.0, 0.5) - 5.0).abs() < 1e-12);
        }
        let sig: AlphaSchedule = "sigmoid".parse().unwrap();
        assert!((sig.alpha(10.0, 0.5) - 5.0).abs() < 1e-12);
        assert!(sig.alpha(10.0, 0.0) < 1e-3);
        assert_eq!(AlphaSchedule::Constant.alpha(3.0, 0.2), 3.0);
        assert!("steps".parse::<AlphaSchedule>().is_err());
    }

    #[test]
    fn warm_up_then_cosine() {
        let s = LrSchedule {
            base: 1.0,
            cosine: true,
            warmup_steps: 4,
            total_steps: 14,
        };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert!((s.lr(4) - 1.0).abs() < 1e-12);
        assert!((s.lr(9) - 0.5).abs() < 1e-12);
        assert!(s.lr(14).abs() < 1e-12);
        let flat = LrSchedule {
            base: 0.05,
            cosine: false,
            warmup_steps: 0,
            total_steps: 100,
        };
        assert_eq!(flat.lr(57), 0.05);
    }
}
