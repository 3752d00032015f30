//! Optimisers with the original's (Keras 2.11+) update rules, and gradient clipping.
//!
//! Adam: `m ← m + (g − m)(1 − β1)`, `v ← v + (g² − v)(1 − β2)`,
//! `w ← w − α_t·m / (√v + ε)` with `α_t = lr·√(1 − β2^t) / (1 − β1^t)` — Keras' form, whose ε
//! differs from the textbook's `m̂ / (√v̂ + ε)`; that is why candle-nn's AdamW is not used.
//! SGD: `w ← w − lr·g`, or with momentum μ: `u ← μ·u − lr·g`, `w ← w + u`.
//! Clipping: Keras `clipnorm` scales each gradient tensor to norm ≤ c on its own (what the
//! original uses, c = 500); `global_clipnorm` scales all of them by one factor.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::error::{Result, TrainError};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    Adam {
        beta1: f64,
        beta2: f64,
        epsilon: f64,
    },
    Sgd {
        momentum: f64,
    },
}

impl OptimizerKind {
    /// The original's Adam: β1 0.9, β2 0.999, ε 1e-7.
    pub fn adam() -> Self {
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clip {
    None,
    /// Each gradient tensor to at most this L2 norm (Keras `clipnorm`).
    PerTensor(f64),
    /// All gradients together to at most this L2 norm (Keras `global_clipnorm`).
    Global(f64),
}

/// An optimiser over a fixed list of variables.
pub struct Optimizer {
    kind: OptimizerKind,
    clip: Clip,
    vars: Vec<Var>,
    /// Adam: first and second moments; SGD with momentum: the velocity (second unused).
    slots: Vec<(Tensor, Tensor)>,
    step: u64,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, clip: Clip, vars: Vec<Var>) -> Result<Optimizer> {
        let slots = vars
            .iter()
            .map(|v| Ok((v.zeros_like()?, v.zeros_like()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Optimizer {
            kind,
            clip,
            vars,
            slots,
            step: 0,
        })
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update with learning rate `lr`. A variable without a gradient is left as it is.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let grads = self.clipped(grads)?;
        self.step += 1;
        let t = self.step as f64;
        for ((var, slot), grad) in self.vars.iter().zip(self.slots.iter_mut()).zip(grads) {
            let Some(g) = grad else { continue };
            match self.kind {
                OptimizerKind::Adam {
                    beta1,
                    beta2,
                    epsilon,
                } => {
                    let alpha = lr * (1.0 - beta2.powf(t)).sqrt() / (1.0 - beta1.powf(t));
                    let m = (&slot.0 + ((&g - &slot.0)? * (1.0 - beta1))?)?;
                    let v = (&slot.1 + ((g.sqr()? - &slot.1)? * (1.0 - beta2))?)?;
                    let update = ((&m * alpha)? / (v.sqrt()? + epsilon)?)?;
                    var.set(&(var.as_tensor() - update)?)?;
                    *slot = (m, v);
                }
                OptimizerKind::Sgd { momentum: 0.0 } => {
                    var.set(&(var.as_tensor() - (g * lr)?)?)?;
                }
                OptimizerKind::Sgd { momentum } => {
                    let u = ((&slot.0 * momentum)? - (g * lr)?)?;
                    var.set(&(var.as_tensor() + &u)?)?;
                    slot.0 = u;
                }
            }
        }
        Ok(())
    }

    /// Gradients in variable order, clipped.
    fn clipped(&self, grads: &GradStore) -> Result<Vec<Option<Tensor>>> {
        // Gradients carry the op graph that made them; detached, the moments built from them
        // do not keep every past step's graph alive.
        let raw: Vec<Option<Tensor>> = self
            .vars
            .iter()
            .map(|v| grads.get(v.as_tensor()).map(Tensor::detach))
            .collect();
        let norm = |g: &Tensor| -> Result<f64> {
            Ok(g.sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?)
        };
        match self.clip {
            Clip::None => Ok(raw),
            Clip::PerTensor(c) => raw
                .into_iter()
                .map(|g| match g {
                    Some(g) => {
                        let n = norm(&g)?.sqrt();
                        Ok(Some(if n > c { (g * (c / n))? } else { g }))
                    }
                    None => Ok(None),
                })
                .collect(),
            Clip::Global(c) => {
                let mut total = 0.0;
                for g in raw.iter().flatten() {
                    total += norm(g)?;
                }
                let n = total.sqrt();
                if n <= c {
                    return Ok(raw);
                }
                raw.into_iter()
                    .map(|g| {
                        g.map(|g| (g * (c / n)).map_err(TrainError::from))
                            .transpose()
                    })
                    .collect()
            }
        }
    }

    /// The optimiser state for checkpoints: step count and every slot, by variable index.
    pub fn state(&self) -> (u64, Vec<(Tensor, Tensor)>) {
        (self.step, self.slots.clone())
    }

    /// Restores a state saved by [`Optimizer::state`] for the same variables.
    pub fn restore(&mut self, step: u64, slots: Vec<(Tensor, Tensor)>) -> Result<()> {
        if slots.len() != self.slots.len() {
            return Err(TrainError::Config(format!(
                "optimizer state holds {} slots, the model needs {}",
                slots.len(),
                self.slots.len()
            )));
        }
        for ((a, b), (sa, sb)) in self.slots.iter().zip(&slots) {
            if a.shape() != sa.shape() || b.shape() != sb.shape() {
                return Err(TrainError::Config(
                    "optimizer state does not fit the model".into(),
                ));
            }
        }
        self.step = step;
        self.slots = slots;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn var(values: &[f64]) -> Var {
        Var::new(values, &Device::Cpu).unwrap()
    }

    fn values(v: &Var) -> Vec<f64> {
        v.as_tensor().to_vec1::<f64>().unwrap()
    }

    /// Loss = Σ c_i · w_i, so the gradient is c whatever w is.
    fn grads_of(w: &Var, c: &[f64]) -> GradStore {
        let c = Tensor::new(c, &Device::Cpu).unwrap();
        (w.as_tensor() * c)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
    }

    #[test]
    fn adam_follows_keras_by_hand() {
        let w = var(&[1.0, -2.0]);
        let mut opt = Optimizer::new(OptimizerKind::adam(), Clip::None, vec![w.clone()]).unwrap();
        let g = [0.5, -3.0];
        opt.step(&grads_of(&w, &g), 0.1).unwrap();
        opt.step(&grads_of(&w, &g), 0.1).unwrap();
        // Two steps with a constant gradient g, by the Keras formulas.
        let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-7, 0.1);
        let mut want = [1.0, -2.0];
        let (mut m, mut v) = ([0.0; 2], [0.0; 2]);
        for t in 1..=2 {
            let alpha = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
            for i in 0..2 {
                m[i] += (g[i] - m[i]) * (1.0 - b1);
                v[i] += (g[i] * g[i] - v[i]) * (1.0 - b2);
                want[i] -= alpha * m[i] / (v[i].sqrt() + eps);
            }
        }
        for (a, b) in values(&w).iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn moments_do_not_hold_on_to_the_step_graph() {
        // A slot that tracked its gradient's ops would keep every earlier step's graph alive.
        let w = var(&[1.0, 2.0]);
        let mut opt =
            Optimizer::new(OptimizerKind::adam(), Clip::PerTensor(1.0), vec![w.clone()]).unwrap();
        let c = Tensor::new(&[3.0, 4.0], &Device::Cpu).unwrap();
        let grads = (w.as_tensor().sqr().unwrap() * c)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        opt.step(&grads, 0.1).unwrap();
        let (_, slots) = opt.state();
        assert!(!slots[0].0.track_op() && !slots[0].1.track_op());
    }

    #[test]
    fn sgd_with_and_without_momentum() {
        let w = var(&[1.0]);
        let mut opt = Optimizer::new(
            OptimizerKind::Sgd { momentum: 0.0 },
            Clip::None,
            vec![w.clone()],
        )
        .unwrap();
        opt.step(&grads_of(&w, &[2.0]), 0.1).unwrap();
        assert!((values(&w)[0] - 0.8).abs() < 1e-12);
        let w = var(&[1.0]);
        let mut opt = Optimizer::new(
            OptimizerKind::Sgd { momentum: 0.9 },
            Clip::None,
            vec![w.clone()],
        )
        .unwrap();
        opt.step(&grads_of(&w, &[2.0]), 0.1).unwrap();
        opt.step(&grads_of(&w, &[2.0]), 0.1).unwrap();
        // u1 = −0.2, w = 0.8; u2 = −0.18 − 0.2 = −0.38, w = 0.42.
        assert!((values(&w)[0] - 0.42).abs() < 1e-12);
    }

    #[test]
    fn clipping_per_tensor_and_global() {
        let (a, b) = (var(&[0.0, 0.0]), var(&[0.0]));
        let grads = {
            let c1 = Tensor::new(&[3.0, 4.0], &Device::Cpu).unwrap();
            let c2 = Tensor::new(&[12.0], &Device::Cpu).unwrap();
            let loss = ((a.as_tensor() * c1).unwrap().sum_all().unwrap()
                + (b.as_tensor() * c2).unwrap().sum_all().unwrap())
            .unwrap();
            loss.backward().unwrap()
        };
        // Per tensor at 5: [3, 4] (norm 5) stays, [12] becomes [5].
        let mut opt = Optimizer::new(
            OptimizerKind::Sgd { momentum: 0.0 },
            Clip::PerTensor(5.0),
            vec![a.clone(), b.clone()],
        )
        .unwrap();
        opt.step(&grads, 1.0).unwrap();
        assert_eq!(values(&a), [-3.0, -4.0]);
        assert_eq!(values(&b), [-5.0]);
        // Global at 6.5: total norm 13, every gradient halved.
        let (a2, b2) = (var(&[0.0, 0.0]), var(&[0.0]));
        let mut opt = Optimizer::new(
            OptimizerKind::Sgd { momentum: 0.0 },
            Clip::Global(6.5),
            vec![a2.clone(), b2.clone()],
        )
        .unwrap();
        let grads = {
            let c1 = Tensor::new(&[3.0, 4.0], &Device::Cpu).unwrap();
            let c2 = Tensor::new(&[12.0], &Device::Cpu).unwrap();
            ((a2.as_tensor() * c1).unwrap().sum_all().unwrap()
                + (b2.as_tensor() * c2).unwrap().sum_all().unwrap())
            .unwrap()
            .backward()
            .unwrap()
        };
        opt.step(&grads, 1.0).unwrap();
        assert_eq!(values(&a2), [-1.5, -2.0]);
        assert_eq!(values(&b2), [-6.0]);
    }
}
