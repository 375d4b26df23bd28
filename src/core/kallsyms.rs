//! Symbol look-ups in /proc/kallsyms without parsing all of it.
//!
//! A distribution kernel with its modules lists ~170,000 symbols. Splitting every line takes
//! seconds in a debug build under an emulated CPU (the stock-kernel VMs), which is longer than a
//! tool may take to start: look-ups here search the text with the C library's memmem instead,
//! and parse only the lines they find. Nor is the whole text kept: it is ~5 MB, as much as the
//! rest of a tool's resident memory. It is read in chunks, keeping only the lines of the names a
//! tool asks for ([`Kallsyms::read_names`]).

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

/// How much of /proc/kallsyms is read at a time.
const CHUNK: usize = 256 * 1024;

/// How many lines after a kept symbol are searched for the next address (aliases share one).
const NEXT_LINES: u32 = 64;

impl Kallsyms {
    /// Reads the lines of /proc/kallsyms whose symbol name starts with one of `prefixes`, each
    /// followed by the lines up to the next higher address (what [`Kallsyms::function_range`]
    /// needs); empty when it cannot be read. Look-ups of other names find nothing.
    pub fn read_names(prefixes: &[&str]) -> Kallsyms {
        match std::fs::File::open("/proc/kallsyms") {
            Ok(f) => Kallsyms::from_reader(f, prefixes),
            Err(_) => Kallsyms::from_text(String::new()),
        }
    }

    /// As [`Kallsyms::read_names`], from any reader of text in kallsyms' format.
    pub fn from_reader(r: impl std::io::Read, prefixes: &[&str]) -> Kallsyms {
        Kallsyms::from_chunks(r, prefixes, CHUNK)
    }

    fn from_chunks(r: impl std::io::Read, prefixes: &[&str], chunk: usize) -> Kallsyms {
        let needles: Vec<Vec<u8>> = prefixes
            .iter()
            .map(|p| format!(" {p}").into_bytes())
            .collect();
        let mut kept = Kallsyms::from_text(String::new());
        let mut trail = None;
        for_each_chunk(r, chunk, |lines| {
            kept.keep_lines(lines, &needles, &mut trail)
        });
        kept
    }

    /// Appends the lines of `chunk` that hold a needle (a name prefix after its space), and the
    /// lines after each up to the next higher address. `trail` carries such a run of lines over
    /// to the next chunk: (the kept symbol's address, lines left to look at).
    fn keep_lines(&mut self, chunk: &[u8], needles: &[Vec<u8>], trail: &mut Option<(u64, u32)>) {
        let mut hits: Vec<usize> = Vec::new();
        for needle in needles {
            let mut from = 0;
            while let Some(i) = memmem(&chunk[from..], needle) {
                let at = from + i;
                from = at + 1;
                // "ADDR TYPE NAME": the needle's space follows the type letter and its space.
                if at >= 2 && chunk[at - 2] == b' ' {
                    hits.push(line_start(chunk, at));
                }
            }
        }
        hits.sort_unstable();
        hits.dedup();
        let mut pos = self.follow(chunk, 0, &hits, trail);
        for &start in &hits {
            if start < pos {
                continue; // kept already, after an earlier hit
            }
            let end = line_end(chunk, start);
            self.push_line(&chunk[start..end]);
            *trail = Some((line_addr(&chunk[start..end]), NEXT_LINES));
            pos = self.follow(chunk, end + 1, &hits, trail);
        }
    }

    /// Keeps the lines from `at` while `trail` runs (a hit among them starts its own run);
    /// returns where it stopped.
    fn follow(
        &mut self,
        chunk: &[u8],
        mut at: usize,
        hits: &[usize],
        trail: &mut Option<(u64, u32)>,
    ) -> usize {
        while let Some((addr, left)) = *trail {
            if at >= chunk.len() {
                break; // the run goes on in the next chunk
            }
            let end = line_end(chunk, at);
            let line = &chunk[at..end];
            self.push_line(line);
            let a = line_addr(line);
            *trail = if hits.binary_search(&at).is_ok() {
                Some((a, NEXT_LINES))
            } else if a > addr || left <= 1 {
                None
            } else {
                Some((addr, left - 1))
            };
            at = end + 1;
        }
        at
    }

    fn push_line(&mut self, line: &[u8]) {
        self.text.push_str(&String::from_utf8_lossy(line));
        self.text.push('\n');
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

/// Calls `f` with successive chunks of whole lines of `r`, about `chunk` bytes each (reads of
/// /proc files return a page or so each).
fn for_each_chunk(mut r: impl std::io::Read, chunk: usize, mut f: impl FnMut(&[u8])) {
    let mut buf = Vec::with_capacity(chunk + 4096);
    let mut eof = false;
    loop {
        if !eof && (buf.len() < chunk || !buf.contains(&b'\n')) {
            let at = buf.len();
            buf.resize(at + 16 * 1024, 0);
            match r.read(&mut buf[at..]) {
                Ok(0) | Err(_) => {
                    buf.truncate(at);
                    eof = true;
                }
                Ok(n) => buf.truncate(at + n),
            }
            continue;
        }
        // Whole lines only; the rest starts the next chunk.
        let end = if eof {
            buf.len()
        } else {
            buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        f(&buf[..end]);
        buf.drain(..end);
        if eof {
            return;
        }
    }
}

/// A kernel function as kallsyms lists it: its name and its addresses, up to the next
/// function's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub start: u64,
    pub end: u64,
}

impl Function {
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }
}

/// The function (`t`/`T` line of kallsyms' text in `r`) each of `wanted` (sorted, no
/// duplicates) falls in: the symbol of the highest address at or below it. Reads in chunks and
/// keeps one name per address, where a table of every symbol is ~8 MB.
pub fn functions_of(r: impl std::io::Read, wanted: &[u64]) -> Vec<Option<Function>> {
    let mut best: Vec<Option<Function>> = vec![None; wanted.len()];
    // The previous function line: the addresses from it up to the next line's are its own.
    // Its name is kept as bytes (most lines are never claimed).
    let mut prev: Option<(u64, Vec<u8>)> = None;
    let mut claim = |prev: &Option<(u64, Vec<u8>)>, upto: u64| {
        let Some((start, name)) = prev else { return };
        let from = wanted.partition_point(|&a| a < *start);
        for (i, &a) in wanted.iter().enumerate().skip(from) {
            if a >= upto {
                break;
            }
            if best[i].as_ref().is_none_or(|f| *start >= f.start) {
                best[i] = Some(Function {
                    name: String::from_utf8_lossy(name).into_owned(),
                    start: *start,
                    end: upto,
                });
            }
        }
    };
    for_each_chunk(r, CHUNK, |lines| {
        for line in lines.split(|&b| b == b'\n') {
            let mut fields = line.splitn(3, |&b| b == b' ');
            let (Some(hex), Some(kind), Some(rest)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if !matches!(kind, b"t" | b"T") {
                continue;
            }
            let addr = line_addr(hex);
            // An alias at the same address: the first name stays.
            if addr == 0 || prev.as_ref().is_some_and(|(p, _)| *p == addr) {
                continue;
            }
            claim(&prev, addr);
            let name = rest.split(|&b| b == b'\t').next().unwrap_or_default();
            let (at, n) = prev.get_or_insert_with(|| (0, Vec::new()));
            n.clear();
            n.extend_from_slice(name);
            *at = addr;
        }
    });
    claim(&prev, u64::MAX);
    best
}

fn line_start(text: &[u8], at: usize) -> usize {
    text[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}

fn line_end(text: &[u8], at: usize) -> usize {
    text[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| at + i)
}

/// The address a line starts with (0 when it has none).
fn line_addr(line: &[u8]) -> u64 {
    let hex = line.split(|&b| b == b' ').next().unwrap_or_default();
    std::str::from_utf8(hex)
        .ok()
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0)
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

    /// Only the names asked for are kept, with what function_range needs, whatever the chunk
    /// boundaries (a reader that returns 7 bytes at a time).
    #[test]
    fn keeps_only_the_names_asked_for() {
        struct Trickle<'a>(&'a [u8]);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(7);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let names = ["__alloc_skb", "fq_"];
        let mut each = vec![
            Kallsyms::from_reader(TEXT.as_bytes(), &names),
            Kallsyms::from_reader(Trickle(TEXT.as_bytes()), &names),
        ];
        // Chunks that end anywhere: within a run of lines after a hit, within a line.
        each.extend(
            (1..TEXT.len()).map(|n| Kallsyms::from_chunks(Trickle(TEXT.as_bytes()), &names, n)),
        );
        for k in each {
            assert_eq!(
                k.function_range("__alloc_skb"),
                Some((0xffffffff81f4ba00, 0xffffffff81f4bc40))
            );
            assert!(k.has_function("fq_enqueue"));
            assert!(k.find("fq_data").is_some());
            assert!(k.find("tbf_enqueue").is_none(), "not asked for");
            assert!(k.find("_text").is_none(), "not asked for");
            // x__alloc_skb is no match, only kept as the line after fq_data (its end).
            assert_eq!(k.text.lines().count(), 6, "{}", k.text);
        }
        let k = Kallsyms::from_reader(TEXT.as_bytes(), &["tbf_enqueue"]);
        assert_eq!(k.find("tbf_enqueue_x").unwrap().addr, 0xffffffff81f4ba00);
        assert!(k.has_function("tbf_enqueue"));
    }

    #[test]
    fn addresses_are_named_by_the_function_they_fall_in() {
        let wanted = [
            0xffffffff81000010,
            0xffffffff81f4ba04,
            0xffffffff81f4bc41,
            0xffffffffc0a01008,
        ];
        let named = functions_of(TEXT.as_bytes(), &wanted);
        let n = |i: usize| {
            named[i]
                .as_ref()
                .map(|f| format!("{}+0x{:x}", f.name, wanted[i] - f.start))
        };
        assert_eq!(n(0).as_deref(), Some("_text+0x10"));
        // Three names at one address: the first listed.
        assert_eq!(n(1).as_deref(), Some("tbf_enqueue_x+0x4"));
        assert_eq!(n(2).as_deref(), Some("kmalloc_reserve+0x1"));
        assert_eq!(n(3).as_deref(), Some("fq_enqueue+0x8"), "a module's");
        assert_eq!(named[1].as_ref().unwrap().end, 0xffffffff81f4bc40);
        assert_eq!(functions_of(TEXT.as_bytes(), &[0x10]), [None]);
    }

    #[test]
    fn this_kernel() {
        let k = Kallsyms::read_names(&["_text", "__alloc_skb"]);
        if k.is_empty() || k.find("_text").is_none_or(|s| s.addr == 0) {
            return; // not root, or kptr_restrict
        }
        assert!(k.has_function("__alloc_skb"));
        let (start, end) = k.function_range("__alloc_skb").unwrap();
        assert!(start < end && end - start < 1 << 20);
        assert!(k.text.len() < 64 * 1024, "{} bytes kept", k.text.len());
    }
}
