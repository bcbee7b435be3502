//! The switches that pick between equivalent implementations (for comparisons and
//! benchmarks) and turn on diagnostics: one struct, read from `ATELIER_*` environment
//! variables once at the edge (`main`, the app's start) and installed for the process.
//!
//! Code deep in the ops reads [`current`]; tests run a closure under another setting with
//! [`with`], which applies to the calling thread only, so the alternatives can be compared in
//! one process. Paths (`ATELIER_MODELS_DIR`, `ATELIER_DATA_DIR`) are not tuning and are read
//! where they are used.

use std::cell::Cell;
use std::sync::OnceLock;

/// Every switch, defaulting to what the benchmarks chose (`docs/benchmarks.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// cuDNN for convolutions on CUDA builds with it (`ATELIER_CUDNN=0`: candle's conv).
    pub cudnn: bool,
    /// The fused CUDA kernels (`ATELIER_FUSED=0`: candle's compositions).
    pub fused_kernels: bool,
    /// The fused CUDA Adam update (`ATELIER_FUSED_ADAM=0`: candle's ops).
    pub fused_adam: bool,
    /// TF32 tensor cores for f32 convs and GEMMs on CUDA (`ATELIER_TF32=0`: full f32).
    pub tf32: bool,
    /// cudarc's per-allocation CUDA events (`ATELIER_CUDA_EVENTS=1`; off by default).
    pub cuda_events: bool,
    /// The exact conv rewrites for CUDA inference, `ops::conv_rewrite` (`ATELIER_REWRITE=0`).
    pub conv_rewrites: bool,
    /// The 3-channel 9×9 input conv blocked twice (`ATELIER_INPUT_BLOCKED=0`: cuDNN's direct
    /// form).
    pub input_blocked: bool,
    /// Half precision where supported (`ATELIER_PRECISION=f32` forces f32).
    pub half_precision: bool,
    /// The loss network's backward pass by hand on CUDA with cuDNN
    /// (`ATELIER_MANUAL_BACKWARD=0`: candle's autograd).
    pub manual_backward: bool,
    /// Largest activation, in elements, one cuDNN inference call gets (`ATELIER_BAND_ELEMENTS`;
    /// small values exercise the banded path on small images).
    pub cudnn_band_elements: usize,
    /// Print the cuDNN algorithm chosen for each shape (`ATELIER_CUDNN_LOG`).
    pub cudnn_log: bool,
    /// Per-phase, per-layer and per-stage times in `bench`, `train` and `video`
    /// (`ATELIER_PROFILE`).
    pub profile: bool,
    /// What to bracket with the CUDA profiler API for `ncu --profile-from-start off`
    /// (`ATELIER_NCU=1`: one inference pass, `train`: one training step).
    pub ncu: Option<NcuTarget>,
    /// Keep candle's backtraces in errors, for bug reports (`ATELIER_DEBUG`).
    pub backtraces: bool,
}

/// See [`Tuning::ncu`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcuTarget {
    Inference,
    Training,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            cudnn: true,
            fused_kernels: true,
            fused_adam: true,
            tf32: true,
            cuda_events: false,
            conv_rewrites: true,
            input_blocked: true,
            half_precision: true,
            manual_backward: true,
            cudnn_band_elements: 1 << 26,
            cudnn_log: false,
            profile: false,
            ncu: None,
            backtraces: false,
        }
    }
}

impl Tuning {
    /// The switches set in this process's environment.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The switches as `var` (a variable's value, `None` when unset) gives them.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let d = Self::default();
        let off = |name: &str, default: bool| var(name).map_or(default, |v| v != "0");
        let set = |name: &str| var(name).is_some();
        Self {
            cudnn: off("ATELIER_CUDNN", d.cudnn),
            fused_kernels: off("ATELIER_FUSED", d.fused_kernels),
            fused_adam: off("ATELIER_FUSED_ADAM", d.fused_adam),
            tf32: off("ATELIER_TF32", d.tf32),
            cuda_events: var("ATELIER_CUDA_EVENTS").is_some_and(|v| v == "1"),
            conv_rewrites: off("ATELIER_REWRITE", d.conv_rewrites),
            input_blocked: off("ATELIER_INPUT_BLOCKED", d.input_blocked),
            half_precision: var("ATELIER_PRECISION").is_none_or(|v| v != "f32"),
            manual_backward: off("ATELIER_MANUAL_BACKWARD", d.manual_backward),
            cudnn_band_elements: var("ATELIER_BAND_ELEMENTS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(d.cudnn_band_elements),
            cudnn_log: set("ATELIER_CUDNN_LOG"),
            profile: set("ATELIER_PROFILE"),
            ncu: var("ATELIER_NCU").map(|v| match v.as_str() {
                "train" => NcuTarget::Training,
                _ => NcuTarget::Inference,
            }),
            backtraces: set("ATELIER_DEBUG"),
        }
    }

    /// Makes this the process's tuning. The first call wins: the edge installs once, before
    /// any work; later calls (a second app window, a test) change nothing.
    pub fn install(self) {
        let _ = INSTALLED.set(self);
    }
}

static INSTALLED: OnceLock<Tuning> = OnceLock::new();

thread_local! {
    static OVERRIDE: Cell<Option<Tuning>> = const { Cell::new(None) };
}

/// The tuning in force on this thread: a [`with`] override, else the installed one, else the
/// defaults.
pub fn current() -> Tuning {
    OVERRIDE
        .with(Cell::get)
        .or_else(|| INSTALLED.get().copied())
        .unwrap_or_default()
}

/// Runs `f` with `tuning` in force on this thread (work `f` hands to other threads, such as
/// rayon's pool, sees the process's tuning).
pub fn with<R>(tuning: Tuning, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Tuning>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(tuning))));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_give_the_defaults() {
        assert_eq!(Tuning::from_vars(|_| None), Tuning::default());
    }

    #[test]
    fn each_switch_reads_its_variable() {
        let t = Tuning::from_vars(|name| {
            let v = match name {
                "ATELIER_CUDNN" | "ATELIER_TF32" | "ATELIER_REWRITE" => "0",
                "ATELIER_PRECISION" => "f32",
                "ATELIER_BAND_ELEMENTS" => "65536",
                "ATELIER_NCU" => "train",
                "ATELIER_CUDA_EVENTS" => "1",
                "ATELIER_PROFILE" => "1",
                _ => return None,
            };
            Some(v.to_string())
        });
        assert!(!t.cudnn && !t.tf32 && !t.conv_rewrites && !t.half_precision);
        assert!(t.fused_kernels && t.fused_adam && t.input_blocked && t.manual_backward);
        assert!(t.cuda_events && t.profile && !t.cudnn_log && !t.backtraces);
        assert_eq!(t.cudnn_band_elements, 65536);
        assert_eq!(t.ncu, Some(NcuTarget::Training));
    }

    #[test]
    fn an_override_applies_to_its_closure_only() {
        let off = Tuning {
            cudnn: false,
            ..current()
        };
        assert!(with(off, || !current().cudnn));
        assert_eq!(current().cudnn, INSTALLED.get().is_none_or(|t| t.cudnn));
    }
}
