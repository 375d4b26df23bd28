//! Compiles every `src/bpf/<tool>.bpf.c` into a libbpf-rs skeleton `<tool>.skel.rs` in OUT_DIR.
use std::{env, fs, path::PathBuf};

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let bpf_dir = PathBuf::from("src/bpf");
    println!("cargo:rerun-if-changed=src/bpf");
    let mut sources: Vec<PathBuf> = fs::read_dir(&bpf_dir)
        .expect("src/bpf")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();
    for dir in [bpf_dir.clone(), bpf_dir.join("common")] {
        for entry in fs::read_dir(dir).expect("bpf dir") {
            println!(
                "cargo:rerun-if-changed={}",
                entry.expect("entry").path().display()
            );
        }
    }
    for src in sources {
        let name = src
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".bpf.c")
            .to_string();
        let skel = out.join(format!("{name}.skel.rs"));
        SkeletonBuilder::new()
            .source(&src)
            .clang_args(["-I", "src/bpf", "-Wall", "-Wno-unused-function"])
            .build_and_generate(&skel)
            .unwrap_or_else(|e| panic!("building BPF program {}: {e:#}", src.display()));
    }
}
