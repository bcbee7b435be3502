//! Honest progress for a stylising pass: the fraction the tiles report where the image
//! is tiled, and between reports (or for a whole-image pass, which reports nothing until
//! it ends) the time elapsed against the time this machine was measured to need.
//!
//! The speed is measured, not assumed: each finished pass records its pixels per second,
//! so the first estimate comes from the app's quick preview (or the CLI's first image)
//! on this very device.

use std::time::{Duration, Instant};

/// Below this the measured throughput is noise (tiny images are overhead-bound).
const MIN_MEASURED_PIXELS: u64 = 16 * 1024;

/// Pixels per second of this machine's passes, smoothed over the recent ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    px_per_s: Option<f64>,
}

impl Throughput {
    /// A pass of `pixels` took `elapsed`.
    pub fn record(&mut self, pixels: u64, elapsed: Duration) {
        let s = elapsed.as_secs_f64();
        if pixels < MIN_MEASURED_PIXELS || s <= 0.0 {
            return;
        }
        let now = pixels as f64 / s;
        // Recent passes count most: the machine's load and the device change.
        self.px_per_s = Some(match self.px_per_s {
            Some(old) => 0.5 * old + 0.5 * now,
            None => now,
        });
    }

    /// The time a pass of `pixels` should take, once anything was measured.
    pub fn expected(&self, pixels: u64) -> Option<Duration> {
        self.px_per_s
            .map(|r| Duration::from_secs_f64(pixels as f64 / r.max(1.0)))
    }
}

/// One pass in flight.
#[derive(Debug, Clone, Copy)]
pub struct PassProgress {
    pub started: Instant,
    /// From [`Throughput::expected`]; `None` until this machine was measured.
    pub expected: Option<Duration>,
    /// What the pass itself last reported (tiles done / tiles), 0..1.
    pub reported: f32,
}

impl PassProgress {
    pub fn new(expected: Option<Duration>) -> Self {
        Self {
            started: Instant::now(),
            expected,
            reported: 0.0,
        }
    }

    /// How far along, 0..1, at `now`: never below what the pass reported, and short of
    /// 1 until it has finished, however long it overruns the estimate.
    pub fn fraction_at(&self, now: Instant) -> f32 {
        let timed = self.expected.map_or(0.0, |e| {
            let f = now.duration_since(self.started).as_secs_f64() / e.as_secs_f64().max(1e-3);
            f.min(0.99) as f32
        });
        self.reported.max(timed).clamp(0.0, 1.0)
    }

    /// The time left at `now`, when it can be told: from the reported rate once tiles
    /// have come in, from the measured speed before.
    pub fn remaining_at(&self, now: Instant) -> Option<Duration> {
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let by_tiles = (self.reported > 0.0 && self.reported < 1.0)
            .then(|| elapsed * f64::from(1.0 - self.reported) / f64::from(self.reported));
        let by_speed = self.expected.map(|e| (e.as_secs_f64() - elapsed).max(1.0));
        by_tiles
            .or(by_speed)
            .map(|s| Duration::from_secs_f64(s.max(0.0)))
    }
}

/// "about 12 s left", "about 3 min left".
pub fn about_left(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    if s < 90 {
        format!("about {} s left", s.max(1))
    } else {
        format!("about {} min left", s.div_ceil(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_moves_with_time_and_never_claims_done() {
        let mut speed = Throughput::default();
        assert!(speed.expected(1_000_000).is_none());
        speed.record(10, Duration::from_secs(1)); // too small to count
        assert!(speed.expected(1_000_000).is_none());
        speed.record(500_000, Duration::from_secs(1));
        assert_eq!(speed.expected(1_000_000), Some(Duration::from_secs(2)));

        let t0 = Instant::now();
        let mut p = PassProgress::new(speed.expected(1_000_000));
        p.started = t0;
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let fractions: Vec<f32> = [0.0, 0.5, 1.0, 1.5]
            .iter()
            .map(|&s| p.fraction_at(at(s)))
            .collect();
        assert!(fractions.windows(2).all(|w| w[1] > w[0]), "{fractions:?}");
        assert!((p.fraction_at(at(1.0)) - 0.5).abs() < 1e-3);
        assert_eq!(p.fraction_at(at(60.0)), 0.99, "an overrun is not 'done'");
        assert_eq!(p.remaining_at(at(0.5)), Some(Duration::from_secs_f64(1.5)));

        // Once tiles report, their rate decides.
        p.reported = 0.25;
        assert_eq!(p.remaining_at(at(1.0)), Some(Duration::from_secs(3)));
        assert_eq!(p.fraction_at(at(0.1)), 0.25);
        assert_eq!(about_left(Duration::from_secs(12)), "about 12 s left");
        assert_eq!(about_left(Duration::from_secs(200)), "about 4 min left");
    }
}
