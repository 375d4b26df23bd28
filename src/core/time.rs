//! Timestamps for the -T/-t columns, taken from the event's kernel time (bpf_ktime_get_ns,
//! CLOCK_MONOTONIC), not from when user space read it: events are drained in batches.

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the local timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

pub struct Clock {
    start_mono_ns: i128,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC at start.
    wall_offset_ns: i128,
}

impl Clock {
    pub fn start() -> Clock {
        let mono = clock_ns(libc::CLOCK_MONOTONIC);
        Clock {
            start_mono_ns: mono,
            wall_offset_ns: clock_ns(libc::CLOCK_REALTIME) - mono,
        }
    }

    /// Seconds from the start of the run to the event (bcc's TIME(s)).
    pub fn secs(&self, ts_ns: u64) -> f64 {
        (ts_ns as i128 - self.start_mono_ns) as f64 / 1e9
    }

    /// The event's local wall-clock time as HH:MM:SS.
    pub fn hms(&self, ts_ns: u64) -> String {
        let wall = ((ts_ns as i128 + self.wall_offset_ns) / 1_000_000_000) as libc::time_t;
        hms(wall)
    }
}

/// Local wall-clock time now, as HH:MM:SS (for interval summaries).
pub fn hms_now() -> String {
    // SAFETY: time(NULL) has no preconditions.
    hms(unsafe { libc::time(std::ptr::null_mut()) })
}

fn hms(t: libc::time_t) -> String {
    // SAFETY: localtime_r fills the local tm.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_relative_to_start() {
        let c = Clock::start();
        let now = clock_ns(libc::CLOCK_MONOTONIC) as u64;
        let s = c.secs(now + 1_500_000_000);
        assert!((1.5..1.6).contains(&s), "{s}");
        assert_eq!(c.hms(now).len(), 8);
        assert_eq!(c.hms(now), hms_now());
    }
}
