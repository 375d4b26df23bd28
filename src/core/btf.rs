//! Kernel BTF lookups for plan checks: is a function (an fentry/kprobe target) or a BTF-typed
//! tracepoint present on this kernel?
//!
//! Kernel BTF (several MB) is parsed once per run and kept until [`release`] (the capability
//! probes and every plan check share it); [`crate::core::bpf::load`] releases it before the
//! tool's own object is loaded, since libbpf parses it again there.

use std::cell::RefCell;
use std::rc::Rc;

use libbpf_rs::btf::types::{Func, Struct, Typedef};
use libbpf_rs::btf::{Btf, BtfKind, BtfType};

thread_local! {
    static VMLINUX: RefCell<Option<Rc<Btf<'static>>>> = const { RefCell::new(None) };
}

/// Runs `f` on the kernel's BTF, parsing it on first use.
pub fn with_vmlinux<T>(f: impl FnOnce(&Btf<'static>) -> T) -> Result<T, String> {
    let btf = VMLINUX.with(|cell| -> Result<Rc<Btf<'static>>, String> {
        let mut cached = cell.borrow_mut();
        if let Some(b) = cached.as_ref() {
            return Ok(b.clone());
        }
        let b = Rc::new(Btf::from_vmlinux().map_err(|e| format!("cannot read kernel BTF: {e}"))?);
        *cached = Some(b.clone());
        Ok(b)
    })?;
    Ok(f(&btf))
}

/// Drops the parsed kernel BTF (it is parsed again if needed).
pub fn release() {
    VMLINUX.with(|cell| cell.borrow_mut().take());
}

/// The BTF type id of kernel function `name` (an fentry target), if BTF has it.
pub fn func_id(name: &str) -> Result<Option<u32>, String> {
    with_vmlinux(|btf| {
        btf.type_by_name::<Func>(name)
            .map(|t| u32::from(t.type_id()))
    })
}

/// The BTF type id of tracepoint `name`'s `btf_trace_<name>` typedef (a tp_btf target).
pub fn tracepoint_id(name: &str) -> Result<Option<u32>, String> {
    let typedef = format!("btf_trace_{name}");
    with_vmlinux(|btf| {
        btf.type_by_name::<Typedef>(&typedef)
            .map(|t| u32::from(t.type_id()))
    })
}

/// Whether member `member` of `struct strct` is an integer (through typedefs and modifiers), as
/// libbpf's CO-RE matching sees it: None when the struct or the member is missing.
pub fn member_is_integer(strct: &str, member: &str) -> Result<Option<bool>, String> {
    with_vmlinux(|btf| {
        let s = btf.type_by_name::<Struct>(strct)?;
        let m = s.iter().find(|m| m.name.is_some_and(|n| n == member))?;
        let ty = btf.type_by_id::<BtfType>(m.ty)?.skip_mods_and_typedefs();
        Some(ty.kind() == BtfKind::Int)
    })
}

/// Ok when the kernel has function `name` in its BTF (so fentry/fexit can target it, and it is
/// a likely kprobe target).
pub fn require_func(name: &str) -> Result<(), String> {
    match with_vmlinux(|btf| btf.type_by_name::<Func>(name).is_some())? {
        true => Ok(()),
        false => Err(format!("kernel function {name} is not in BTF")),
    }
}

/// Ok when the kernel has tracepoint `name` (any subsystem), as tp_btf sees it: its
/// `btf_trace_<name>` typedef.
pub fn require_tracepoint(name: &str) -> Result<(), String> {
    let typedef = format!("btf_trace_{name}");
    match with_vmlinux(|btf| btf.type_by_name::<Typedef>(&typedef).is_some())? {
        true => Ok(()),
        false => Err(format!(
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
        assert!(func_id("tcp_close").unwrap().is_some_and(|id| id > 0));
        assert_eq!(
            member_is_integer("sock_common", "skc_family"),
            Ok(Some(true))
        );
        assert_eq!(member_is_integer("sock_common", "skc_net"), Ok(Some(false)));
        assert_eq!(member_is_integer("sock_common", "no_such_member"), Ok(None));
        assert!(tracepoint_id("inet_sock_set_state").unwrap().is_some());
        assert_eq!(tracepoint_id("no_such_tp"), Ok(None));
        release();
        assert_eq!(require_func("tcp_close"), Ok(()));
    }
}
