//! Symbol look-ups in /proc/kallsyms without parsing all of it.
//!
//! A distribution kernel with its modules lists ~170,000 symbols. Splitting every line takes
//! seconds in a debug build under an emulated CPU (the stock-kernel VMs), which is longer than a
//! tool may take to start: look-ups here search the text with the C library's memmem instead,
//! and parse only the lines they find.

/// One symbol line: "ADDR TYPE NAME" or "ADDR TYPE NAME\t[MODULE]".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sym<'a> {
    pub addr: u64,
    pub kind: u8,
    /// The module it belongs to; None for the kernel image.
    pub module: Option<&'a str>,
}

/// The text of /proc/kallsyms (or any text in its format).
pub struct Kallsyms {
    text: String,
}

impl Kallsyms {
    /// Reads /proc/kallsyms; empty when it cannot be read.
    pub fn read() -> Kallsyms {
        Kallsyms::from_text(std::fs::read_to_string("/proc/kallsyms").unwrap_or_default())
    }

    pub fn from_text(text: String) -> Kallsyms {
        Kallsyms { text }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Every line naming exactly `name`, as (the line's start offset, the symbol).
    fn lines_of(&self, name: &str) -> impl Iterator<Item = (usize, Sym<'_>)> + '_ {
        self.lines_of_needle(format!(" {name}"))
    }

    fn lines_of_needle(&self, needle: String) -> impl Iterator<Item = (usize, Sym<'_>)> + '_ {
        let text = self.text.as_bytes();
        let mut from = 0;
        std::iter::from_fn(move || loop {
            let at = from + memmem(&text[from..], needle.as_bytes())?;
            from = at + 1;
            let end = at + needle.len();
            // Whole names only: the name ends the line or is followed by its module.
            if !matches!(text.get(end), None | Some(b'\n') | Some(b'\t')) {
                continue;
            }
            // "... TYPE NAME": a type letter between two spaces right before the name.
            if at < 2 || text[at - 2] != b' ' {
                continue;
            }
            let start = text[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let line_end = text[end..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(text.len(), |i| end + i);
            let Ok(addr) = u64::from_str_radix(&self.text[start..at - 2], 16) else {
                continue;
            };
            let module = self.text[end..line_end]
                .trim()
                .strip_prefix('[')
                .and_then(|m| m.strip_suffix(']'));
            return Some((
                start,
                Sym {
                    addr,
                    kind: text[at - 1],
                    module,
                },
            ));
        })
    }

    /// The first symbol called `name`.
    pub fn find(&self, name: &str) -> Option<Sym<'_>> {
        self.lines_of(name).next().map(|(_, s)| s)
    }

    /// Whether a function (text symbol, 't' or 'T') called `name` exists.
    pub fn has_function(&self, name: &str) -> bool {
        self.lines_of(name)
            .any(|(_, s)| s.kind.eq_ignore_ascii_case(&b't'))
    }

    /// The kernel image's (not a module's) function `name`: its start and where the next symbol
    /// begins (the kernel image's symbols are listed in address order).
    pub fn function_range(&self, name: &str) -> Option<(u64, u64)> {
        let (start, sym) = self.lines_of(name).find(|(_, s)| {
            s.module.is_none() && s.kind.eq_ignore_ascii_case(&b't') && s.addr != 0
        })?;
        let next = self.text[start..]
            .lines()
            .skip(1)
            .take(64)
            .filter_map(|l| u64::from_str_radix(l.split(' ').next()?, 16).ok())
            .find(|&a| a > sym.addr)?;
        Some((sym.addr, next))
    }
}

fn memmem(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    // SAFETY: both slices are valid for their lengths; memmem only reads them.
    let p = unsafe {
        libc::memmem(
            haystack.as_ptr().cast(),
            haystack.len(),
            needle.as_ptr().cast(),
            needle.len(),
        )
    };
    (!p.is_null()).then(|| p as usize - haystack.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
ffffffff81000000 T _text
ffffffff81f4b9d0 t tbf_enqueue
ffffffff81f4ba00 t tbf_enqueue_x
ffffffff81f4ba00 T __alloc_skb
ffffffff81f4ba00 t alias_of_alloc_skb
ffffffff81f4bc40 t kmalloc_reserve
ffffffffc0a01000 t fq_enqueue\t[sch_fq]
ffffffffc0a02000 d fq_data\t[sch_fq]
ffffffffc0a03000 t x__alloc_skb\t[m]";

    #[test]
    fn finds_whole_names() {
        let k = Kallsyms::from_text(TEXT.into());
        assert_eq!(k.find("tbf_enqueue").unwrap().addr, 0xffffffff81f4b9d0);
        assert!(k.find("bf_enqueue").is_none());
        assert!(k.find("tbf_enq").is_none());
        let fq = k.find("fq_enqueue").unwrap();
        assert_eq!((fq.kind, fq.module), (b't', Some("sch_fq")));
        assert!(k.has_function("fq_enqueue"));
        assert!(!k.has_function("fq_data"));
        assert!(k.find("_text").is_some(), "first line");
        assert!(k.find("nothing").is_none());
    }

    #[test]
    fn ranges() {
        let k = Kallsyms::from_text(TEXT.into());
        assert_eq!(
            k.function_range("__alloc_skb"),
            Some((0xffffffff81f4ba00, 0xffffffff81f4bc40))
        );
        assert_eq!(k.function_range("fq_enqueue"), None, "a module's");
    }

    #[test]
    fn this_kernel() {
        let k = Kallsyms::read();
        if k.is_empty() || k.find("_text").is_none_or(|s| s.addr == 0) {
            return; // not root, or kptr_restrict
        }
        assert!(k.has_function("__alloc_skb"));
        let (start, end) = k.function_range("__alloc_skb").unwrap();
        assert!(start < end && end - start < 1 << 20);
    }
}
