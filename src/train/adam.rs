//! Adam with inspectable state, so checkpoints can hold the moments and a resumed run
//! continues exactly (candle-nn's AdamW keeps its moments private).

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use std::collections::HashMap;

pub struct Adam {
    pub lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    pub step: u64,
    /// (name, parameter, first moment, second moment), sorted by name.
    params: Vec<(String, Var, Tensor, Tensor)>,
}

impl Adam {
    pub fn new(mut vars: Vec<(String, Var)>, lr: f64) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(n, v)| {
                // Two buffers: the CUDA update writes each moment in place.
                let m = v.as_tensor().zeros_like()?;
                let s = v.as_tensor().zeros_like()?;
                Ok((n, v, m, s))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            params,
        })
    }

    /// Optimises every variable of `varmap`.
    pub fn for_varmap(varmap: &candle_nn::VarMap, lr: f64) -> Result<Self> {
        let vars = varmap
            .data()
            .lock()
            .expect("varmap lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self::new(vars, lr)
    }

    pub fn apply(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let c1 = 1.0 - self.beta1.powi(t);
        let c2 = 1.0 - self.beta2.powi(t);
        let s = crate::ops::adam::AdamStep {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            lr: self.lr,
            c1,
            c2,
        };
        for (_, var, m, v) in self.params.iter_mut() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            crate::ops::adam::step(var, m, v, g, s)?;
        }
        Ok(())
    }

    /// Moments as named tensors for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (n, _, m, v) in &self.params {
            out.insert(format!("adam.m.{n}"), m.clone());
            out.insert(format!("adam.v.{n}"), v.clone());
        }
        out
    }

    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        for (n, var, m, v) in self.params.iter_mut() {
            let dev = var.device();
            let get = |k: String| {
                state
                    .get(&k)
                    .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint lacks '{k}'")))
                    // A copy of its own: the CUDA update writes moments in place.
                    .and_then(|t| t.to_device(dev)?.copy())
            };
            *m = get(format!("adam.m.{n}"))?;
            *v = get(format!("adam.v.{n}"))?;
        }
        self.step = step;
        Ok(())
    }
}
