//! Simulated time for the local stack: wall-clock time sped up by `--speed`, starting where the
//! last run stopped.
//!
//! Every part of the stack that needs "now" (the simulated fleet, the rule bridge's
//! `received_ms`, the schedulers) asks this one clock, so readings a fleet produces at 60×
//! speed are never "from the future" for the ingest's clock-skew check.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meter_core::Timestamp;

/// Simulated time: `start + (wall elapsed) × speed`.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    wall0: Instant,
    sim0: Timestamp,
    speed: f64,
}

impl SimClock {
    /// A clock that reads `start` now and advances `speed` simulated seconds per wall second.
    /// A speed that is not a positive finite number is taken as 1.
    pub fn new(start: Timestamp, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            wall0: Instant::now(),
            sim0: start,
            speed,
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> Timestamp {
        let elapsed_ms = self.wall0.elapsed().as_secs_f64() * 1_000.0 * self.speed;
        self.sim0.add_millis(elapsed_ms as i64)
    }

    /// Simulated seconds per wall second.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The wall-clock instant at which the simulated clock reads `t` (in the past if it already
    /// has): the time a simulated meter was due to publish a reading stamped `t`.
    pub fn wall_instant_of(&self, t: Timestamp) -> Instant {
        let sim_ms = (t.millis() - self.sim0.millis()) as f64;
        let wall_s = sim_ms / 1_000.0 / self.speed;
        if wall_s >= 0.0 {
            self.wall0 + Duration::from_secs_f64(wall_s)
        } else {
            self.wall0
                .checked_sub(Duration::from_secs_f64(-wall_s))
                .unwrap_or(self.wall0)
        }
    }

    /// A wall-clock duration expressed in simulated time.
    pub fn sim_duration(&self, wall: Duration) -> Duration {
        wall.mul_f64(self.speed)
    }
}

/// The system's wall-clock time as a [`Timestamp`].
pub fn wall_now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    Timestamp::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_clock_advances_speed_times_the_wall_clock() {
        let clock = SimClock::new(Timestamp::from_millis(1_000_000), 3_600.0);
        std::thread::sleep(Duration::from_millis(20));
        let advanced = clock.now().millis() - 1_000_000;
        // 20 ms of wall time at 3600x is at least 72 simulated seconds.
        assert!(advanced >= 72_000, "advanced only {advanced} ms");
    }

    #[test]
    fn a_nonsense_speed_falls_back_to_real_time() {
        assert_eq!(
            SimClock::new(Timestamp::from_millis(0), f64::NAN).speed(),
            1.0
        );
        assert_eq!(SimClock::new(Timestamp::from_millis(0), -2.0).speed(), 1.0);
    }

    #[test]
    fn the_wall_instant_of_a_simulated_time_inverts_the_clock() {
        let clock = SimClock::new(Timestamp::from_millis(0), 10.0);
        let later = clock.wall_instant_of(Timestamp::from_millis(10_000));
        let d = later.duration_since(clock.wall0);
        assert!((d.as_secs_f64() - 1.0).abs() < 1e-6);
    }
}
