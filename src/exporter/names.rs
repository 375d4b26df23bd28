//! Container and pod names for `--labels`, from a process that keeps root.
//!
//! The exporter drops every privilege once its tools are attached (running as nobody, under a
//! seccomp filter), but a container's name is in its runtime's state, which only root reads
//! (/var/lib/containers, /var/lib/docker, ...). So before anything else, the exporter forks a
//! helper that keeps its privileges and does one thing: it reads a cgroup id (8 bytes) from a
//! pipe and answers `id \t container \t pod \t namespace \n` on another. It exits when the
//! exporter does (the pipe closes; PR_SET_PDEATHSIG). The exporter asks once per cgroup id.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Mutex;

use anyhow::anyhow;

use crate::core::cgroup::{self, Owner};
use crate::core::export::OwnerNames;

/// How long a scrape waits for the helper's answer about one new cgroup id.
const ANSWER_WAIT_MS: i32 = 1000;

struct Helper {
    ask: File,
    answers: BufReader<File>,
    known: HashMap<u64, OwnerNames>,
}

fn pipe() -> anyhow::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds, owned by the Files made of them.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(anyhow!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fresh descriptors nothing else owns.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Forks the helper (the process must be single-threaded: nothing started yet) and returns the
/// naming function `--labels` uses.
pub fn spawn() -> anyhow::Result<Box<dyn Fn(u64) -> OwnerNames + Send + Sync>> {
    let (ask_r, ask_w) = pipe()?;
    let (ans_r, ans_w) = pipe()?;
    // SAFETY: fork of a single-threaded process; the child only reads files and pipes, then
    // _exit()s.
    match unsafe { libc::fork() } {
        -1 => Err(anyhow!(
            "cannot start the naming helper: {}",
            std::io::Error::last_os_error()
        )),
        0 => {
            drop((ask_w, ans_r));
            // SAFETY: prctl with constant arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            serve(ask_r, ans_w);
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        _ => {
            drop((ask_r, ans_w));
            let helper = Mutex::new(Helper {
                ask: ask_w,
                answers: BufReader::new(ans_r),
                known: HashMap::new(),
            });
            Ok(Box::new(move |id| {
                let mut h = helper.lock().unwrap_or_else(|e| e.into_inner());
                h.name(id)
            }))
        }
    }
}

/// The helper's loop: one answer per id asked, until the exporter closes the pipe.
fn serve(mut ask: File, mut answer: File) {
    let mut id = [0u8; 8];
    while ask.read_exact(&mut id).is_ok() {
        let id = u64::from_ne_bytes(id);
        let owner = match cgroup::path_of_id(id) {
            None => Owner::Unknown,
            Some(path) => match crate::core::container::at_path(&path) {
                (Some(c), _) => Owner::Container(std::sync::Arc::new(c)),
                (None, _) => Owner::Host(path),
            },
        };
        let n = OwnerNames::of(&owner);
        let clean = |s: &str| s.replace(['\t', '\n'], " ");
        let line = format!(
            "{id}\t{}\t{}\t{}\n",
            clean(&n.container),
            clean(&n.pod),
            clean(&n.namespace)
        );
        if answer.write_all(line.as_bytes()).is_err() {
            return;
        }
    }
}

impl Helper {
    fn name(&mut self, id: u64) -> OwnerNames {
        if let Some(n) = self.known.get(&id) {
            return n.clone();
        }
        let unknown = OwnerNames {
            container: "unknown".into(),
            ..Default::default()
        };
        if self.ask.write_all(&id.to_ne_bytes()).is_err() {
            return unknown;
        }
        // Answers come in order; one that timed out earlier may arrive first: kept too.
        loop {
            if self.answers.buffer().is_empty() && !self.readable() {
                return unknown; // asked again at the next scrape
            }
            let mut line = String::new();
            match self.answers.read_line(&mut line) {
                Ok(n) if n > 0 => {}
                _ => return unknown,
            }
            let mut f = line.trim_end_matches('\n').split('\t');
            let (Some(got), Some(c), Some(p), Some(ns)) = (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let Ok(got) = got.parse::<u64>() else {
                continue;
            };
            let n = OwnerNames {
                container: c.into(),
                pod: p.into(),
                namespace: ns.into(),
            };
            // A cgroup gone before its look-up stays unknown (ids are not reused while the
            // kernel's map keeps the series).
            self.known.insert(got, n.clone());
            if got == id {
                return n;
            }
        }
    }

    /// Whether an answer arrives within [`ANSWER_WAIT_MS`].
    fn readable(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.answers.get_ref().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on the stack.
        unsafe { libc::poll(&mut pfd, 1, ANSWER_WAIT_MS) > 0 }
    }
}
