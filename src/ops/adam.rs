//! The Adam update of one parameter: the fused CUDA kernels ([`super::cuda::adam`]) where they
//! run, candle's composition elsewhere.

use candle_core::{Result, Tensor, Var};

/// Adam's hyper-parameters and this step's bias corrections.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub lr: f64,
    /// `1 − β₁ᵗ` and `1 − β₂ᵗ`.
    pub c1: f64,
    pub c2: f64,
}

/// One step of `var` with gradient `g`, updating the moment estimates `m` and `v`: in place
/// on CUDA (unless [`Tuning::fused_adam`](crate::tuning::Tuning::fused_adam) is off), as new
/// tensors elsewhere.
pub fn step(var: &Var, m: &mut Tensor, v: &mut Tensor, g: &Tensor, s: AdamStep) -> Result<()> {
    if crate::tuning::current().fused_adam && super::cuda::available(var.as_tensor()) {
        return super::cuda::adam_step(
            var.as_tensor(),
            m,
            v,
            g,
            (s.beta1, s.beta2, s.eps),
            s.lr,
            (s.c1, s.c2),
        );
    }
    // Detached: otherwise each moment keeps the whole graph of every step alive.
    let g = g.detach();
    *m = ((&*m * s.beta1)? + (&g * (1.0 - s.beta1))?)?.detach();
    *v = ((&*v * s.beta2)? + (g.sqr()? * (1.0 - s.beta2))?)?.detach();
    let update = ((&*m / s.c1)? / ((&*v / s.c2)?.sqrt()? + s.eps)?)?;
    var.set(&var.as_tensor().detach().sub(&(update * s.lr)?)?)
}
