//! What every tool shares.
pub mod addr;
pub mod bpf;
pub mod btf;
pub mod caps;
pub mod cli;
pub mod errno;
pub mod error;
pub mod hist;
pub mod kallsyms;
pub mod maps;
pub mod netns;
pub mod output;
pub mod proto;
pub mod run;
pub mod symbols;
pub mod tcp;
pub mod time;
