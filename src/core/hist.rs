//! Histograms printed the way bpftrace prints them, from counts collected in the kernel.
//!
//! log2 slots follow `common/hist.bpf.h`: slot 0 holds the value 0, slot k (k ≥ 1) holds
//! [2^(k-1), 2^k).

use std::fmt::Write as _;

use crate::core::output::{text_value, Format, Output, Value};

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

/// A log2 histogram's non-empty buckets as a JSON array:
/// `[{"low":512,"high":1024,"count":4},...]` (`high` is exclusive; slot 0 is [0, 1)).
pub fn json_log2(slots: &[u64]) -> String {
    let mut out = String::from("[");
    for (slot, &count) in slots.iter().enumerate().filter(|(_, &c)| c > 0) {
        if out.len() > 1 {
            out.push(',');
        }
        let (low, high) = (log2_slot_low(slot), log2_slot_low(slot + 1).max(1));
        write!(out, "{{\"low\":{low},\"high\":{high},\"count\":{count}}}").unwrap();
    }
    out.push(']');
    out
}

/// A linear histogram's non-empty buckets as a JSON array; the last bucket has no "high".
pub fn json_linear(slots: &[u64], min: u64, step: u64) -> String {
    let mut out = String::from("[");
    for (i, &count) in slots.iter().enumerate().filter(|(_, &c)| c > 0) {
        if out.len() > 1 {
            out.push(',');
        }
        let low = min + i as u64 * step;
        if i == slots.len() - 1 {
            write!(out, "{{\"low\":{low},\"count\":{count}}}").unwrap();
        } else {
            write!(
                out,
                "{{\"low\":{low},\"high\":{},\"count\":{count}}}",
                low + step
            )
            .unwrap();
        }
    }
    out.push(']');
    out
}

/// Prints one log2 histogram: in a table, bpftrace's `@name[label, ...]:` block; in JSON one
/// object `{"hist":name, <labels>, "buckets":[...]}`. `unit` names what is counted (e.g. "us").
pub fn print_log2(
    out: &mut Output,
    name: &str,
    unit: &str,
    labels: &[(&str, Value)],
    slots: &[u64],
) {
    print_with(
        out,
        name,
        unit,
        labels,
        &json_log2(slots),
        &render_log2(slots),
    );
}

/// As [`print_log2`] for a linear histogram.
pub fn print_linear(
    out: &mut Output,
    name: &str,
    unit: &str,
    labels: &[(&str, Value)],
    slots: &[u64],
    min: u64,
    step: u64,
) {
    print_with(
        out,
        name,
        unit,
        labels,
        &json_linear(slots, min, step),
        &render_linear(slots, min, step),
    );
}

fn print_with(
    out: &mut Output,
    name: &str,
    unit: &str,
    labels: &[(&str, Value)],
    json: &str,
    text: &str,
) {
    if out.format() == Format::Json {
        let mut fields = vec![("hist", Value::Str(name)), ("unit", Value::Str(unit))];
        fields.extend_from_slice(labels);
        fields.push(("buckets", Value::Json(json)));
        out.record(&fields);
        return;
    }
    let mut title = format!("@{name}");
    if !labels.is_empty() {
        title.push('[');
        for (i, (_, v)) in labels.iter().enumerate() {
            if i > 0 {
                title.push_str(", ");
            }
            text_value(&mut title, v);
        }
        title.push(']');
    }
    title.push(':');
    out.text(&title);
    if !text.is_empty() {
        out.text(text.trim_end());
    }
    out.text("");
}

/// The slots of a `struct hist` map value (64 native-endian u64s).
pub fn slots_of(value: &[u8]) -> Vec<u64> {
    value
        .chunks_exact(8)
        .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
        .collect()
}

/// The slots of a per-CPU `struct hist` map value, summed over CPUs.
pub fn sum_percpu(per_cpu: &[Vec<u8>]) -> Vec<u64> {
    let mut slots = Vec::new();
    for value in per_cpu {
        let cpu = slots_of(value);
        if slots.len() < cpu.len() {
            slots.resize(cpu.len(), 0);
        }
        for (s, c) in slots.iter_mut().zip(cpu) {
            *s += c;
        }
    }
    slots
}

/// Total of all buckets.
pub fn total(slots: &[u64]) -> u64 {
    slots.iter().sum()
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
    fn json_buckets() {
        let mut slots = vec![0u64; 64];
        slots[0] = 1;
        slots[10] = 4;
        assert_eq!(
            json_log2(&slots),
            r#"[{"low":0,"high":1,"count":1},{"low":512,"high":1024,"count":4}]"#
        );
        assert_eq!(
            json_linear(&[0, 2, 1], 0, 10),
            r#"[{"low":10,"high":20,"count":2},{"low":20,"count":1}]"#
        );
        assert_eq!(total(&slots), 5);
    }

    #[test]
    fn percpu_sum() {
        let cpu = |v: [u64; 3]| v.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>();
        assert_eq!(sum_percpu(&[cpu([1, 0, 2]), cpu([0, 3, 1])]), [1, 3, 3]);
        assert_eq!(slots_of(&cpu([5, 6, 7])), [5, 6, 7]);
    }

    #[test]
    fn linear_rendering() {
        let s = render_linear(&[0, 3, 1, 0, 5], 0, 10);
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].starts_with("[10, 20)               3 |"));
        assert!(lines[3].starts_with("[40, ...)              5 |"));
    }
}
