//! The process's own memory: how the C heap is set up, and what a run gives back once it is set
//! up (docs/benchmarks.md, "peak RSS per tool", has the figures).
//!
//! Resident memory (VmHWM, the budget: 5 MB a tool, 8 MB the exporter) is mostly the binary's
//! own pages and the heap left by loading, not the run's data:
//!
//! - The binary's pages: on this kernel (6.18: ext4 keeps large folios in the page cache, and a
//!   fault maps the whole folio it hits), touching one function maps tens of KB around it, so a
//!   run holds most of the 3.3 MB of code and of the embedded BPF objects mapped, most of them
//!   used only while starting (argument parsing, capability probes, libbpf reading the tool's
//!   object, relocating it). [`release_setup_memory`] unmaps them once the run is set up: the
//!   pages stay in the page cache, and the run maps back only what it executes.
//! - The heap: libbpf parses kernel BTF for every object it loads, into arrays that grow by
//!   realloc to ~0.5 MB. [`init`] keeps such arrays out of the heap, see there.

/// Sets the C heap up for loading BPF objects (main() calls it first).
///
/// glibc serves an allocation of 128 KiB or more with its own mmap, and, once such a block is
/// freed, raises that threshold to the block's size (M_MMAP_THRESHOLD's dynamic default). After
/// the first kernel BTF index is freed, every later one (libbpf builds one per object it loads)
/// then grows by realloc inside the heap: each step copies and leaves the old block behind, and
/// those holes stay resident (~1 MB a load, more than the data). Fixing the threshold keeps big
/// blocks mapped: they grow in place (mremap) and go back to the kernel when freed.
pub fn init() {
    // SAFETY: mallopt only sets glibc's allocator parameters, before any thread exists.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Hands back what setting up the run left resident, once it is set up (before the ring
/// buffers are mapped, so that the setup's peak and the run's do not add up): the C heap's
/// free pages (libbpf's load-time copies, seeding socket owners from /proc, ...), and the
/// binary's read-only pages (see the module's doc), which the run maps back as it runs.
pub fn release_setup_memory() {
    drop_binary_pages();
    // SAFETY: malloc_trim only returns free memory to the kernel; no allocation is touched.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Unmaps this process's pages of its own executable's read-only, private mappings that hold
/// no page of their own (code, constants, the embedded BPF objects): MADV_DONTNEED on such a
/// mapping only drops page table entries, and the next access maps the same file page back
/// from the page cache. A mapping with anonymous pages (the RELRO segment, written at start up
/// and then made read-only) is left alone: there the call would lose what was written.
fn drop_binary_pages() {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(exe) = std::fs::metadata("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let dev = format!(
        "{:02x}:{:02x}",
        libc::major(exe.dev()),
        libc::minor(exe.dev())
    );
    let ino = exe.ino().to_string();
    // (start, end) of each mapping to drop.
    let mut ranges = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-') {
            // A mapping's header: `start-end perms offset dev inode path`.
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                current = None;
                continue;
            };
            let perms = fields.next().unwrap_or_default().as_bytes();
            let ours = fields.nth(1) == Some(dev.as_str()) && fields.next() == Some(ino.as_str());
            let read_only_private = perms.len() == 4 && perms[1] == b'-' && perms[3] == b'p';
            current = (ours && read_only_private).then_some((start, end));
        } else if first == "Anonymous:" {
            if let Some(range) = current.take() {
                if fields.next() == Some("0") {
                    ranges.push(range);
                }
            }
        }
    }
    drop(smaps);
    for (start, end) in ranges {
        // SAFETY: the range is a whole mapping of this process's executable, read-only and
        // private with no anonymous page: dropping its pages loses nothing (see above).
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}
