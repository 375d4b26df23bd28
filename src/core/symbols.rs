//! Stack symbolization (kernel and user) with blazesym.

use blazesym::symbolize::source::{Kernel, Process, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};
use blazesym::Pid;

/// Turns stack addresses into "function+0xoffset" frames. Keeps blazesym's caches between calls,
/// so symbolize all stacks of a run with one value.
pub struct Symbols {
    symbolizer: Symbolizer,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

fn frames(result: blazesym::Result<Vec<Symbolized>>, addrs: &[u64]) -> Vec<String> {
    match result {
        Ok(syms) => syms
            .iter()
            .zip(addrs)
            .map(|(s, &addr)| match s {
                Symbolized::Sym(sym) => format!("{}+0x{:x}", sym.name, sym.offset),
                Symbolized::Unknown(_) => format!("0x{addr:x}"),
            })
            .collect(),
        Err(_) => addrs.iter().map(|a| format!("0x{a:x}")).collect(),
    }
}

impl Symbols {
    pub fn new() -> Symbols {
        Symbols {
            symbolizer: Symbolizer::new(),
        }
    }

    /// Kernel addresses (from bpf_get_stack / a stack map), innermost first; zeros end the stack.
    pub fn kernel(&self, addrs: &[u64]) -> Vec<String> {
        let addrs: Vec<u64> = addrs.iter().copied().take_while(|&a| a != 0).collect();
        let src = Source::Kernel(Kernel::default());
        frames(
            self.symbolizer.symbolize(&src, Input::AbsAddr(&addrs)),
            &addrs,
        )
    }

    /// User addresses of process `pid` (while it is alive), innermost first.
    pub fn user(&self, pid: u32, addrs: &[u64]) -> Vec<String> {
        let addrs: Vec<u64> = addrs.iter().copied().take_while(|&a| a != 0).collect();
        let src = Source::Process(Process::new(Pid::from(pid)));
        frames(
            self.symbolizer.symbolize(&src, Input::AbsAddr(&addrs)),
            &addrs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn marker_function_for_symbols_test() -> u64 {
        marker_function_for_symbols_test as *const () as u64
    }

    #[test]
    fn own_function_is_named() {
        let addr = marker_function_for_symbols_test();
        let f = Symbols::new().user(std::process::id(), &[addr, 0]);
        assert_eq!(f.len(), 1);
        assert!(f[0].contains("marker_function_for_symbols_test"), "{f:?}");
    }

    #[test]
    fn kernel_address_is_named() {
        // Any function address from kallsyms must symbolize back to its name.
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
        let (addr, name) = kallsyms
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let (a, t, n) = (it.next()?, it.next()?, it.next()?);
                (t == "T" && n == "tcp_v4_rcv")
                    .then(|| (u64::from_str_radix(a, 16).ok(), n.to_string()))
            })
            .next()
            .expect("tcp_v4_rcv in kallsyms");
        let addr = addr.unwrap();
        if addr == 0 {
            return; // kptr_restrict hides addresses from this user
        }
        let f = Symbols::new().kernel(&[addr + 4]);
        assert_eq!(f, [format!("{name}+0x4")]);
    }
}
