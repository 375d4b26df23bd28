//! Histograms printed the way bpftrace prints them, from counts collected in the kernel.
//!
//! log2 slots follow `common/hist.bpf.h`: slot 0 holds the value 0, slot k (k ≥ 1) holds
//! [2^(k-1), 2^k).

use std::fmt::Write as _;

const BAR_WIDTH: u64 = 52;

/// Slot index of `v` in a log2 histogram (mirrors the BPF helper; used by tests and exporters).
pub fn log2_slot(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        64 - v.leading_zeros() as usize
    }
}

/// Lower bound of a log2 slot; the upper bound is the next slot's lower bound.
pub fn log2_slot_low(slot: usize) -> u64 {
    if slot == 0 {
        0
    } else {
        1u64 << (slot - 1)
    }
}

/// 1024 → "1K", 3·1024² → "3M": bpftrace's compact bucket labels.
fn si(v: u64) -> String {
    const UNITS: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let mut v = v;
    let mut u = 0;
    while v >= 1024 && v % 1024 == 0 && u < UNITS.len() - 1 {
        v /= 1024;
        u += 1;
    }
    format!("{v}{}", UNITS[u])
}

fn bar(count: u64, max: u64) -> String {
    let n = (count * BAR_WIDTH).checked_div(max).unwrap_or(0) as usize;
    format!("{:<width$}", "@".repeat(n), width = BAR_WIDTH as usize)
}

fn push_row(out: &mut String, label: &str, count: u64, max: u64) {
    writeln!(out, "{label:<16}{count:>8} |{}|", bar(count, max)).unwrap();
}

/// Renders a log2 histogram; empty leading and trailing slots are left out, as bpftrace does.
pub fn render_log2(slots: &[u64]) -> String {
    let mut out = String::new();
    let Some(first) = slots.iter().position(|&c| c > 0) else {
        return out;
    };
    let last = slots.iter().rposition(|&c| c > 0).unwrap();
    let max = *slots.iter().max().unwrap();
    for (slot, &count) in slots.iter().enumerate().take(last + 1).skip(first) {
        let label = if slot <= 1 {
            format!("[{}]", slot)
        } else {
            format!(
                "[{}, {})",
                si(log2_slot_low(slot)),
                si(log2_slot_low(slot + 1))
            )
        };
        push_row(&mut out, &label, count, max);
    }
    out
}

/// Renders a linear histogram of `slots.len()` buckets of `step` starting at `min`; the last
/// bucket is open-ended ("[max, ...)") like bpftrace's lhist.
pub fn render_linear(slots: &[u64], min: u64, step: u64) -> String {
    let mut out = String::new();
    let Some(first) = slots.iter().position(|&c| c > 0) else {
        return out;
    };
    let last = slots.iter().rposition(|&c| c > 0).unwrap();
    let max = *slots.iter().max().unwrap();
    for (i, &count) in slots.iter().enumerate().take(last + 1).skip(first) {
        let lo = min + i as u64 * step;
        let label = if i == slots.len() - 1 {
            format!("[{}, ...)", si(lo))
        } else {
            format!("[{}, {})", si(lo), si(lo + step))
        };
        push_row(&mut out, &label, count, max);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_bpf_helper() {
        assert_eq!(log2_slot(0), 0);
        assert_eq!(log2_slot(1), 1);
        assert_eq!(log2_slot(2), 2);
        assert_eq!(log2_slot(3), 2);
        assert_eq!(log2_slot(1000), 10); // [512, 1K)
        assert_eq!(log2_slot(1024), 11);
        assert_eq!(log2_slot_low(10), 512);
    }

    #[test]
    fn log2_rendering() {
        let mut slots = vec![0u64; 20];
        slots[10] = 4; // [512, 1K)
        slots[12] = 2; // [2K, 4K)
        let s = render_log2(&slots);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            format!("[512, 1K)              4 |{}|", "@".repeat(52))
        );
        assert!(lines[1].starts_with("[1K, 2K)               0 |   "));
        assert_eq!(
            lines[2],
            format!(
                "[2K, 4K)               2 |{}{}|",
                "@".repeat(26),
                " ".repeat(26)
            )
        );
    }

    #[test]
    fn small_values_and_empty() {
        assert_eq!(render_log2(&[0, 0, 0]), "");
        let s = render_log2(&[1, 1, 0]);
        assert!(s.starts_with("[0]   "), "{s}");
        assert!(s.lines().nth(1).unwrap().starts_with("[1]   "));
    }

    #[test]
    fn linear_rendering() {
        let s = render_linear(&[0, 3, 1, 0, 5], 0, 10);
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].starts_with("[10, 20)               3 |"));
        assert!(lines[3].starts_with("[40, ...)              5 |"));
    }
}
