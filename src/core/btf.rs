//! Kernel BTF lookups for plan checks: is a function (an fentry/kprobe target) or a BTF-typed
//! tracepoint present on this kernel?

use libbpf_rs::btf::types::{Func, Typedef};
use libbpf_rs::btf::Btf;

fn vmlinux() -> Result<Btf<'static>, String> {
    Btf::from_vmlinux().map_err(|e| format!("cannot read kernel BTF: {e}"))
}

/// Ok when the kernel has function `name` in its BTF (so fentry/fexit can target it, and it is
/// a likely kprobe target).
pub fn require_func(name: &str) -> Result<(), String> {
    match vmlinux()?.type_by_name::<Func>(name) {
        Some(_) => Ok(()),
        None => Err(format!("kernel function {name} is not in BTF")),
    }
}

/// Ok when the kernel has tracepoint `name` (any subsystem), as tp_btf sees it: its
/// `btf_trace_<name>` typedef.
pub fn require_tracepoint(name: &str) -> Result<(), String> {
    match vmlinux()?.type_by_name::<Typedef>(&format!("btf_trace_{name}")) {
        Some(_) => Ok(()),
        None => Err(format!(
            "the kernel has no {name} tracepoint (btf_trace_{name} is not in BTF)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_every_kernel_has() {
        assert_eq!(require_func("tcp_close"), Ok(()));
        assert_eq!(require_tracepoint("inet_sock_set_state"), Ok(()));
        assert!(require_func("no_such_function_here")
            .unwrap_err()
            .contains("no_such_function_here"));
        assert!(require_tracepoint("no_such_tp")
            .unwrap_err()
            .contains("btf_trace_no_such_tp"));
    }
}
