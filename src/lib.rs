//! netbpf: eBPF network observability tools (the tools of BPF Performance Tools ch. 10, working
//! on today's kernels), as a library behind the `netbpf` binary.
pub mod core;
pub mod exporter;
pub mod tools;
