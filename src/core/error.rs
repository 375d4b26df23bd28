//! Errors that end a run with exit code 2 (bad usage, or a tool this kernel cannot run); every
//! other error exits 1.

use std::fmt;

/// The tool cannot work on this kernel, and why.
#[derive(Debug)]
pub struct Unsupported {
    pub tool: String,
    pub why: String,
    /// False when the kernel could run it but this environment cannot (tracefs cannot be
    /// mounted, ...): the message then does not blame the kernel.
    pub kernel: bool,
}

impl Unsupported {
    pub fn new(tool: &str, why: impl Into<String>) -> Self {
        Unsupported {
            tool: tool.to_string(),
            why: why.into(),
            kernel: true,
        }
    }

    /// The kernel has what the tool needs, but it cannot be used here (permissions, mounts).
    pub fn here(tool: &str, why: impl Into<String>) -> Self {
        Unsupported {
            kernel: false,
            ..Unsupported::new(tool, why)
        }
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.kernel {
            write!(
                f,
                "{} is not supported on this kernel: {}",
                self.tool, self.why
            )
        } else {
            write!(f, "{} cannot run here: {}", self.tool, self.why)
        }
    }
}

impl std::error::Error for Unsupported {}

/// Bad options or arguments.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// `return Err(usage!("..."))` for a bad option value.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => { anyhow::Error::new($crate::core::error::Usage(format!($($arg)*))) };
}

pub fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<Unsupported>().is_some() || e.downcast_ref::<Usage>().is_some() {
        2
    } else {
        1
    }
}
