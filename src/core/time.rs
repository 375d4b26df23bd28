//! Timestamps for the -T/-t columns.

use std::time::Instant;

/// Local wall-clock time as HH:MM:SS.
pub fn hms_now() -> String {
    // SAFETY: plain libc calls on local buffers.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}

/// Seconds since the tool started, for bcc's TIME(s) column.
pub struct Elapsed(Instant);

impl Elapsed {
    pub fn start() -> Self {
        Elapsed(Instant::now())
    }
    pub fn secs(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}
