//! One formatter for every tool: a tool describes its columns once and hands over rows of typed
//! values; the writer renders them as an aligned table, CSV or one JSON object per line.
//!
//! Output is buffered and flushed by the event loop after every drain of the ring buffer (at the
//! latest every ~100 ms), so lines reach a pipe promptly without a write(2) per line.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Where a column appears: some values are rounded for people (TX_KB) and exact for machines
/// (tx_bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    Both,
    TableOnly,
    JsonOnly,
    /// A literal cell between columns (tcpstates' "->"): aligned tables only, not CSV or JSON.
    Separator,
}

#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub header: &'static str,
    pub key: &'static str,
    /// Minimum width; negative means left-aligned (printf's `%-Ns`).
    pub width: i32,
    pub show: Show,
    /// Cut longer text to the width (printf's `%-10.10s`), as bcc does for COMM.
    pub truncate: bool,
}

impl Column {
    pub const fn new(header: &'static str, key: &'static str, width: i32) -> Self {
        Column {
            header,
            key,
            width,
            show: Show::Both,
            truncate: false,
        }
    }
    pub const fn table(header: &'static str, width: i32) -> Self {
        Column {
            header,
            key: "",
            width,
            show: Show::TableOnly,
            truncate: false,
        }
    }
    /// A separator column such as "->" (its cells are [`Value::Sep`]): in the aligned table
    /// only, so CSV headers and rows have the same fields.
    pub const fn sep(header: &'static str, width: i32) -> Self {
        Column {
            header,
            key: "",
            width,
            show: Show::Separator,
            truncate: false,
        }
    }
    pub const fn json(key: &'static str) -> Self {
        Column {
            header: "",
            key,
            width: 0,
            show: Show::JsonOnly,
            truncate: false,
        }
    }
    pub const fn truncated(mut self) -> Self {
        self.truncate = true;
        self
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    U64(u64),
    I64(i64),
    /// A float printed with this many decimals (JSON keeps full precision).
    F64(f64, usize),
    Str(&'a str),
    Ip(IpAddr),
    /// Kernel pointer or other id shown in hex without 0x.
    Hex(u64),
    /// A literal cell such as "->", table only.
    Sep(&'static str),
    /// Pre-rendered JSON (e.g. a histogram's buckets), written as is.
    Json(&'a str),
    /// Nothing to say (a field that does not apply to this row): "-" in tables, left out of
    /// JSON objects.
    Absent,
}

pub struct Output {
    format: Format,
    columns: Vec<Column>,
    line: String,
    out: Box<dyn Write>,
    failed: bool,
    /// Whether any line was printed: a blank line separates blocks, never comes first.
    printed: bool,
}

impl Output {
    pub fn new(format: Format, columns: Vec<Column>) -> Self {
        Self::with_writer(
            format,
            columns,
            Box::new(io::BufWriter::with_capacity(64 * 1024, Stdout::default())),
        )
    }

    pub fn with_writer(format: Format, columns: Vec<Column>, out: Box<dyn Write>) -> Self {
        Output {
            format,
            columns,
            line: String::with_capacity(256),
            out,
            printed: false,
            failed: false,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    fn visible(&self, c: &Column) -> bool {
        match (self.format, c.show) {
            (_, Show::Both) => true,
            (Format::Json, s) => s == Show::JsonOnly,
            (Format::Csv, s) => s == Show::TableOnly,
            (Format::Table, s) => s != Show::JsonOnly,
        }
    }

    /// Prints the header line (nothing in JSON mode).
    pub fn header(&mut self) {
        if self.format == Format::Json {
            return;
        }
        self.line.clear();
        let sep = if self.format == Format::Csv { "," } else { " " };
        let mut first = true;
        for i in 0..self.columns.len() {
            let c = self.columns[i];
            if !self.visible(&c) {
                continue;
            }
            if !first {
                self.line.push_str(sep);
            }
            first = false;
            if self.format == Format::Csv {
                self.line.push_str(c.header);
            } else {
                pad(&mut self.line, c.header, c.width);
            }
        }
        trim_end(&mut self.line);
        self.emit_line();
        // Out at once, not at the first drain: a reader of a pipe sees the tool is live.
        self.flush();
    }

    /// Prints one record; `values` lines up with the columns given at construction.
    pub fn row(&mut self, values: &[Value]) {
        debug_assert_eq!(values.len(), self.columns.len());
        self.line.clear();
        match self.format {
            Format::Json => self.json_row(values),
            Format::Csv | Format::Table => self.text_row(values),
        }
        self.emit_line();
    }

    fn text_row(&mut self, values: &[Value]) {
        let csv = self.format == Format::Csv;
        let mut cell = String::new();
        let mut first = true;
        for (c, v) in self.columns.iter().zip(values) {
            if !self.visible(c) || (csv && matches!(v, Value::Sep(_))) {
                continue;
            }
            if !first {
                self.line.push(if csv { ',' } else { ' ' });
            }
            first = false;
            cell.clear();
            text_value(&mut cell, v);
            if csv {
                csv_field(&mut self.line, &cell);
            } else {
                if c.truncate {
                    if let Some((i, _)) = cell.char_indices().nth(c.width.unsigned_abs() as usize) {
                        cell.truncate(i);
                    }
                }
                pad(&mut self.line, &cell, c.width);
            }
        }
        trim_end(&mut self.line);
    }

    fn json_row(&mut self, values: &[Value]) {
        self.line.push('{');
        let mut first = true;
        for (c, v) in self.columns.iter().zip(values) {
            if !self.visible(c) || matches!(v, Value::Sep(_) | Value::Absent) {
                continue;
            }
            if !first {
                self.line.push(',');
            }
            first = false;
            json_string(&mut self.line, c.key);
            self.line.push(':');
            json_value(&mut self.line, v);
        }
        self.line.push('}');
    }

    /// An object whose fields are not the table's columns (a histogram, a summary), JSON mode.
    pub fn record(&mut self, fields: &[(&str, Value)]) {
        self.line.clear();
        self.line.push('{');
        let mut first = true;
        for (key, v) in fields.iter().filter(|(_, v)| !matches!(v, Value::Absent)) {
            if !first {
                self.line.push(',');
            }
            first = false;
            json_string(&mut self.line, key);
            self.line.push(':');
            json_value(&mut self.line, v);
        }
        self.line.push('}');
        self.emit_line();
    }

    /// Free text (e.g. a tool's summary), printed as is in table mode.
    pub fn text(&mut self, s: &str) {
        self.line.clear();
        self.line.push_str(s);
        self.emit_line();
    }

    /// A blank line before the next block, when something came before it (table mode).
    pub fn separate(&mut self) {
        if self.printed && self.format == Format::Table {
            self.text("");
        }
    }

    fn emit_line(&mut self) {
        if self.failed {
            return;
        }
        self.printed = true;
        self.line.push('\n');
        if self.out.write_all(self.line.as_bytes()).is_err() {
            self.failed = true;
        }
    }

    /// Whether writing to stdout has failed (closed, or blocked at the end of the run).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Pushes buffered lines out. Returns false once stdout is gone (e.g. `| head`), so the
    /// caller can stop instead of tracing into the void.
    pub fn flush(&mut self) -> bool {
        if !self.failed && self.out.flush().is_err() {
            self.failed = true;
        }
        !self.failed
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.flush();
    }
}

/// stdout written with write(2) directly, so that the end of a run is not held up by a reader
/// that stopped reading (`netbpf tcpstates | less`, paused): std's stdout retries a write that a
/// signal interrupted, forever. Here a write interrupted by the signal that ends the run gives up,
/// and once the run is ending each write waits at most [`BLOCKED_AT_END`] for room in the pipe.
#[derive(Default)]
struct Stdout {
    gave_up: bool,
}

/// How long a write may wait for a blocked stdout once the run is ending.
const BLOCKED_AT_END: i32 = 1000; // ms

impl Stdout {
    fn give_up(&mut self) -> io::Error {
        self.gave_up = true;
        io::Error::other("stdout is blocked (nobody reads it) and the run has ended")
    }
}

/// The first failure writing to stdout other than EPIPE (a reader that left, the quiet end of
/// `| head`): ENOSPC, EBADF, EIO... It fails the run (main() reports it) and ends it.
static STDOUT_FAILED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
/// fd 1 was closed at start (`>&-`) and holds /dev/null opened read-only.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn record_failure(e: &io::Error) {
    if e.raw_os_error() == Some(libc::EPIPE) {
        crate::core::run::request_stop();
        return;
    }
    let why = if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        "stdout is closed".to_string()
    } else {
        format!("cannot write to stdout: {e}")
    };
    if let Ok(mut slot) = STDOUT_FAILED.lock() {
        slot.get_or_insert(why);
    }
    crate::core::run::request_stop();
}

/// The error that failed a write to stdout, if one did (EPIPE is not one).
pub fn stdout_error() -> Option<anyhow::Error> {
    let why = STDOUT_FAILED.lock().ok()?.clone()?;
    Some(anyhow::anyhow!("{why}"))
}

/// Which of fds 0, 1 and 2 were closed when the program started (bit per fd): seen before main,
/// as Rust's runtime then opens /dev/null read-write on each closed one, which cannot be told
/// apart from a /dev/null its parent gave (Python's subprocess.DEVNULL, systemd's
/// StandardOutput=null open it read-write too).
static CLOSED_AT_START: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

extern "C" fn note_closed_standard_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD on a small integer.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            CLOSED_AT_START.fetch_or(1 << fd, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Run by the C runtime before main (and so before Rust's runtime touches the standard fds).
#[used]
#[link_section = ".init_array"]
static NOTE_CLOSED_STANDARD_FDS: extern "C" fn() = note_closed_standard_fds;

/// Opens /dev/null on whichever of fds 0, 1 and 2 was closed at start, so that no file opened
/// later takes its number; fd 1 read-only, so that every write to stdout fails (EBADF), as it
/// would have.
pub fn hold_standard_fds() {
    // The constructor lives in this object file only if something refers to it.
    std::hint::black_box(&NOTE_CLOSED_STANDARD_FDS);
    let closed = CLOSED_AT_START.load(std::sync::atomic::Ordering::Relaxed);
    for fd in 0..3 {
        // SAFETY: F_GETFD on a small integer.
        if closed & (1 << fd) == 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        let mode = if fd == 2 {
            libc::O_WRONLY
        } else {
            libc::O_RDONLY
        };
        // SAFETY: open of a static C string; dup2/close on fds this function owns.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), mode);
            if null >= 0 && null != fd {
                libc::dup2(null, fd);
                libc::close(null);
            }
        }
        if fd == 1 {
            STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// For tools: an error at start when stdout was closed, rather than tracing for nothing.
pub fn require_stdout() -> anyhow::Result<()> {
    if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(anyhow::anyhow!(
            "stdout is closed: nowhere to print (redirect it to /dev/null to discard the output)"
        ));
    }
    Ok(())
}

/// Writes text to stdout outside an [`Output`] (netbpf list, netns, --help): a failure is
/// recorded for [`stdout_error`] and later prints are skipped.
pub fn print(s: &str) {
    if STDOUT_FAILED.lock().is_ok_and(|f| f.is_some()) {
        return;
    }
    let mut out = Stdout::default();
    if let Err(e) = out.write_all(s.as_bytes()) {
        record_failure(&e);
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.write_raw(buf);
        if let Err(e) = &r {
            if !self.gave_up {
                record_failure(e);
            }
        }
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stdout {
    fn write_raw(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut buf = buf;
        loop {
            if self.gave_up {
                return Err(io::Error::other("stdout was given up"));
            }
            if crate::core::run::stopping() {
                let mut pfd = libc::pollfd {
                    fd: 1,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one pollfd on the stack.
                if unsafe { libc::poll(&mut pfd, 1, BLOCKED_AT_END) } <= 0 {
                    return Err(self.give_up());
                }
                // Room for at least one pipe buffer: a write this size does not block.
                buf = &buf[..buf.len().min(libc::PIPE_BUF)];
            }
            // SAFETY: writing from a valid slice to fd 1.
            let n = unsafe { libc::write(1, buf.as_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            // Interrupted by a signal: the loop checks whether it ended the run.
        }
    }
}

fn json_value(line: &mut String, v: &Value) {
    match *v {
        Value::U64(n) => write!(line, "{n}").unwrap(),
        Value::I64(n) => write!(line, "{n}").unwrap(),
        Value::F64(f, _) if f.is_finite() => write!(line, "{f}").unwrap(),
        Value::F64(..) => line.push_str("null"),
        Value::Str(s) | Value::Sep(s) => json_string(line, s),
        Value::Ip(ip) => write!(line, "\"{ip}\"").unwrap(),
        Value::Hex(h) => write!(line, "\"{h:x}\"").unwrap(),
        Value::Json(j) => line.push_str(j),
        Value::Absent => line.push_str("null"),
    }
}

pub fn text_value(cell: &mut String, v: &Value) {
    match *v {
        Value::U64(n) => write!(cell, "{n}").unwrap(),
        Value::I64(n) => write!(cell, "{n}").unwrap(),
        Value::F64(f, prec) => write!(cell, "{f:.prec$}").unwrap(),
        Value::Str(s) => cell.push_str(s),
        Value::Ip(ip) => write!(cell, "{ip}").unwrap(),
        Value::Hex(h) => write!(cell, "{h:x}").unwrap(),
        Value::Sep(s) | Value::Json(s) => cell.push_str(s),
        Value::Absent => cell.push('-'),
    }
}

/// A CSV field, quoted (RFC 4180) only when it holds a comma, a quote or a line break (a COMM
/// may hold anything).
fn csv_field(line: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&s.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(s);
    }
}

fn pad(line: &mut String, s: &str, width: i32) {
    let w = width.unsigned_abs() as usize;
    let n = s.chars().count();
    if width < 0 {
        line.push_str(s);
        line.extend(std::iter::repeat_n(' ', w.saturating_sub(n)));
    } else {
        line.extend(std::iter::repeat_n(' ', w.saturating_sub(n)));
        line.push_str(s);
    }
}

fn trim_end(line: &mut String) {
    let len = line.trim_end_matches(' ').len();
    line.truncate(len);
}

pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The kernel's fixed-size, NUL-padded comm as text.
pub fn comm_str(comm: &[i8]) -> String {
    let bytes: Vec<u8> = comm
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn render(format: Format) -> String {
        let sink = Sink::default();
        let cols = vec![
            Column::new("PID", "pid", -6),
            Column::new("COMM", "comm", -4).truncated(),
            Column::table("KB", 6),
            Column::json("bytes"),
            Column::new("ADDR", "addr", -15),
        ];
        let mut out = Output::with_writer(format, cols, Box::new(sink.clone()));
        out.header();
        out.row(&[
            Value::U64(42),
            Value::Str("cu\"rl"),
            Value::F64(9.765625, 2),
            Value::U64(10000),
            Value::Ip("127.0.0.1".parse().unwrap()),
        ]);
        out.flush();
        let s = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        s
    }

    #[test]
    fn table_aligns_and_trims() {
        assert_eq!(
            render(Format::Table),
            "PID    COMM     KB ADDR\n42     cu\"r   9.77 127.0.0.1\n"
        );
    }

    #[test]
    fn json_has_exact_values_and_escapes() {
        assert_eq!(
            render(Format::Json),
            "{\"pid\":42,\"comm\":\"cu\\\"rl\",\"bytes\":10000,\"addr\":\"127.0.0.1\"}\n"
        );
    }

    #[test]
    fn csv_has_no_padding_and_quotes_when_needed() {
        assert_eq!(
            render(Format::Csv),
            "PID,COMM,KB,ADDR\n42,\"cu\"\"rl\",9.77,127.0.0.1\n"
        );
        let mut s = String::new();
        csv_field(&mut s, "a,b");
        csv_field(&mut s, "plain");
        assert_eq!(s, "\"a,b\"plain");
    }

    #[test]
    fn csv_header_and_rows_have_the_same_fields() {
        let sink = Sink::default();
        let cols = vec![
            Column::new("OLD", "old", -4),
            Column::sep("->", 2),
            Column::new("NEW", "new", -4),
        ];
        for (format, want) in [
            (Format::Csv, "OLD,NEW\nA,B\n"),
            (Format::Table, "OLD  -> NEW\nA    -> B\n"),
            (Format::Json, "{\"old\":\"A\",\"new\":\"B\"}\n"),
        ] {
            sink.0.lock().unwrap().clear();
            let mut out = Output::with_writer(format, cols.clone(), Box::new(sink.clone()));
            out.header();
            out.row(&[Value::Str("A"), Value::Sep("->"), Value::Str("B")]);
            out.flush();
            let got = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
            assert_eq!(got, want, "{format:?}");
        }
    }

    #[test]
    fn comm_stops_at_nul() {
        let mut c = [0i8; 16];
        for (i, b) in b"sshd".iter().enumerate() {
            c[i] = *b as i8;
        }
        assert_eq!(comm_str(&c), "sshd");
    }
}
