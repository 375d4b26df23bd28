//! Reading the kernel's aggregation maps at the end of a run or of an interval.

use libbpf_rs::{MapCore, MapFlags};

use crate::core::bpf::{read_event, Pod};

/// Every (key, value) of a hash or array map, decoded as the skeleton's generated types.
pub fn entries<K: Pod, V: Pod>(map: &dyn MapCore) -> anyhow::Result<Vec<(K, V)>> {
    let mut out = Vec::new();
    for key in map.keys() {
        // An entry deleted between keys() and lookup() is skipped.
        let Some(val) = map.lookup(&key, MapFlags::ANY)? else {
            continue;
        };
        if let (Some(k), Some(v)) = (read_event::<K>(&key), read_event::<V>(&val)) {
            out.push((k, v));
        }
    }
    Ok(out)
}

/// Takes every (key, value) out of a hash map (print and clear, per interval): each entry is
/// read and deleted in one step, so nothing counted between the two is lost. Hash maps gained
/// that operation in 5.14; before it each entry is read, then deleted.
pub fn drain<K: Pod, V: Pod>(map: &dyn MapCore) -> anyhow::Result<Vec<(K, V)>> {
    let mut out = Vec::new();
    let keys: Vec<Vec<u8>> = map.keys().collect();
    for key in keys {
        let val = match map.lookup_and_delete(&key) {
            Err(e) if crate::core::errno::not_supported(&e) => {
                let val = map.lookup(&key, MapFlags::ANY)?;
                // Already gone is fine.
                let _ = map.delete(&key);
                val
            }
            r => r?,
        };
        // An entry deleted between keys() and here is skipped.
        let Some(val) = val else {
            continue;
        };
        if let (Some(k), Some(v)) = (read_event::<K>(&key), read_event::<V>(&val)) {
            out.push((k, v));
        }
    }
    Ok(out)
}

/// Every (key, per-CPU values summed) of a per-CPU hash or array map of u64 counters.
pub fn percpu_sums<K: Pod>(map: &dyn MapCore) -> anyhow::Result<Vec<(K, u64)>> {
    let mut out = Vec::new();
    for key in map.keys() {
        let Some(vals) = map.lookup_percpu(&key, MapFlags::ANY)? else {
            continue;
        };
        let sum = vals
            .iter()
            .filter_map(|v| v.get(..8))
            .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
            .sum();
        if let Some(k) = read_event::<K>(&key) {
            out.push((k, sum));
        }
    }
    Ok(out)
}

/// Empties a hash map (for per-interval tools that print and clear, as bpftrace's clear()).
pub fn clear(map: &dyn MapCore) -> anyhow::Result<()> {
    let keys: Vec<Vec<u8>> = map.keys().collect();
    for key in keys {
        // Already gone is fine.
        let _ = map.delete(&key);
    }
    Ok(())
}

unsafe impl Pod for u32 {}
unsafe impl Pod for u64 {}
