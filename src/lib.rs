//! netbpf: eBPF network observability tools (the tools of BPF Performance Tools ch. 10, working
//! on today's kernels), as a library behind the `netbpf` binary.
pub mod core;
pub mod exporter;
pub mod tools;

/// The top-level usage: `netbpf --help`, and the description of the netbpf(8) man page.
pub const USAGE: &str = "\
netbpf: eBPF network observability tools

Usage: netbpf TOOL [OPTIONS]       run a tool (netbpf TOOL --help for its options)
       netbpf list [--verbose]     every tool, and whether and how it runs on this kernel
       netbpf list --btf FILE      every tool's CO-RE relocations against another kernel's
                                   BTF (its vmlinux): what that kernel lacks, per program
       netbpf netns [PATH...]      network namespace cookies (for --netns), all or of PATH
       netbpf exporter [OPTIONS]   the tools' aggregations as Prometheus metrics
       netbpf --install-links DIR  symlink every tool name to this binary in DIR (existing
                                   files of those names are left alone)
       netbpf --version

A symlink named like a tool runs that tool: ln -s $(command -v netbpf) /usr/local/bin/tcplife
Set NETBPF_DEBUG=1 to see libbpf's messages.
";
