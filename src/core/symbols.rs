//! Stack symbolization (kernel and user) with blazesym.

use std::path::PathBuf;

use crate::core::kallsyms::Function;

use blazesym::normalize::{Normalizer, UserMeta};
use blazesym::symbolize::source::{Elf, Process, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};
use blazesym::Pid;

/// Turns stack addresses into "function+0xoffset" frames. Keeps blazesym's caches between calls,
/// so symbolize all stacks of a run with one value.
pub struct Symbols {
    symbolizer: Symbolizer,
    normalizer: Normalizer,
    /// Kernel frames named so far, by address.
    /// Kernel functions named so far, by start address.
    kernel_functions: std::cell::RefCell<std::collections::BTreeMap<u64, Function>>,
    /// Kernel addresses in no function kallsyms lists (not looked for again).
    outside_functions: std::cell::RefCell<std::collections::HashSet<u64>>,
}

/// A user stack frame found in the file mapped at its address: it can be named from that file
/// after the process has gone.
#[derive(Clone, Debug, PartialEq)]
pub enum UserFrame {
    /// `offset` into the ELF file at `path`.
    File {
        path: PathBuf,
        offset: u64,
        addr: u64,
    },
    /// No file is mapped there (or the process was gone): the bare address.
    Unknown(u64),
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
            normalizer: Normalizer::new(),
            kernel_functions: Default::default(),
            outside_functions: Default::default(),
        }
    }

    /// Finds the file and file offset of each user address of process `pid`, innermost first
    /// (zeros end the stack). Call it while the process lives; [`Symbols::name_user`] names the
    /// frames later, from the files.
    pub fn locate_user(&self, pid: u32, addrs: &[u64]) -> Vec<UserFrame> {
        let addrs: Vec<u64> = addrs.iter().copied().take_while(|&a| a != 0).collect();
        let Ok(out) = self.normalizer.normalize_user_addrs(Pid::from(pid), &addrs) else {
            return addrs.into_iter().map(UserFrame::Unknown).collect();
        };
        out.outputs
            .iter()
            .zip(&addrs)
            .map(|(&(offset, meta), &addr)| match out.meta.get(meta) {
                Some(UserMeta::Elf(elf)) => UserFrame::File {
                    path: elf.path.clone(),
                    offset,
                    addr,
                },
                _ => UserFrame::Unknown(addr),
            })
            .collect()
    }

    /// Names located frames: "function+0xoff" from the file's symbols, else "file+0xoffset"
    /// (the file's name and the offset in it), else the bare address.
    pub fn name_user(&self, frames: &[UserFrame]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                UserFrame::File { path, offset, .. } => {
                    let src = Source::Elf(Elf::new(path));
                    match self
                        .symbolizer
                        .symbolize_single(&src, Input::FileOffset(*offset))
                    {
                        Ok(Symbolized::Sym(sym)) => format!("{}+0x{:x}", sym.name, sym.offset),
                        _ => {
                            let name = path.file_name().unwrap_or(path.as_os_str());
                            format!("{}+0x{offset:x}", name.to_string_lossy())
                        }
                    }
                }
                UserFrame::Unknown(addr) => format!("0x{addr:x}"),
            })
            .collect()
    }

    /// Kernel addresses (from bpf_get_stack / a stack map), innermost first; zeros end the stack.
    /// Named from /proc/kallsyms, read in chunks for addresses in no function named before, not
    /// by blazesym's kernel resolver, which holds every symbol (+8 MB of RSS). A read is ~50 ms
    /// here and ~0.5 s in a slow VM, and a softirq's stack holds whatever function the interrupt
    /// hit: a tool naming many stacks calls [`Symbols::prefetch_kernel`] with all of them first.
    pub fn kernel(&self, addrs: &[u64]) -> Vec<String> {
        let addrs: Vec<u64> = addrs.iter().copied().take_while(|&a| a != 0).collect();
        self.prefetch_kernel(addrs.iter().copied());
        let known = self.kernel_functions.borrow();
        addrs
            .iter()
            .map(|&a| match function_of(&known, a) {
                Some(f) => format!("{}+0x{:x}", f.name, a - f.start),
                None => format!("0x{a:x}"),
            })
            .collect()
    }

    /// Names the functions of all `addrs` (zeros skipped) in one read of /proc/kallsyms, for
    /// [`Symbols::kernel`] to find later.
    pub fn prefetch_kernel(&self, addrs: impl IntoIterator<Item = u64>) {
        let mut known = self.kernel_functions.borrow_mut();
        let mut outside = self.outside_functions.borrow_mut();
        let mut missing: Vec<u64> = addrs
            .into_iter()
            .filter(|&a| a != 0 && !outside.contains(&a) && function_of(&known, a).is_none())
            .collect();
        if missing.is_empty() {
            return;
        }
        missing.sort_unstable();
        missing.dedup();
        let found = match std::fs::File::open("/proc/kallsyms") {
            Ok(f) => crate::core::kallsyms::functions_of(f, &missing),
            Err(_) => vec![None; missing.len()],
        };
        for (a, f) in missing.into_iter().zip(found) {
            match f {
                Some(f) => {
                    known.insert(f.start, f);
                }
                None => {
                    outside.insert(a);
                }
            }
        }
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

/// The function of `known` (by start address) that `a` falls in.
fn function_of(known: &std::collections::BTreeMap<u64, Function>, a: u64) -> Option<&Function> {
    known
        .range(..=a)
        .next_back()
        .map(|(_, f)| f)
        .filter(|f| f.contains(a))
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
    fn own_function_is_named_from_its_file() {
        let addr = marker_function_for_symbols_test();
        let s = Symbols::new();
        let located = s.locate_user(std::process::id(), &[addr, 0]);
        assert_eq!(located.len(), 1);
        assert!(
            matches!(&located[0], UserFrame::File { addr: a, .. } if *a == addr),
            "{located:?}"
        );
        let f = s.name_user(&located);
        assert!(f[0].contains("marker_function_for_symbols_test"), "{f:?}");
        // Not a symbol: the file's name and the offset.
        let UserFrame::File { path, .. } = &located[0] else {
            unreachable!()
        };
        let off = UserFrame::File {
            path: path.clone(),
            offset: 0,
            addr: 0,
        };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(s.name_user(&[off]), [format!("{name}+0x0")]);
        assert_eq!(s.name_user(&[UserFrame::Unknown(0x1234)]), ["0x1234"]);
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
