//! The options operators type from bcc: `--netns` given a namespace inode (as lsns shows it),
//! bcc's `--netns-id` spelling, inodes that name no namespace, and tcprtt's `--milliseconds`.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{netbpf, Netns, Tool};

fn inode(ns: &Netns) -> String {
    std::fs::metadata(ns.path()).unwrap().ino().to_string()
}

/// The inode selects that namespace and no other, under both spellings.
#[test]
fn netns_inode_selects_that_namespace() {
    let ns = Netns::new();
    let elsewhere = Netns::new();
    let by_inode = Tool::start(&["tcpconnlat", "--json", "--netns", &inode(&ns)]);
    let by_netns_id = Tool::start(&["tcpconnlat", "--json", "--netns-id", &inode(&ns)]);
    let other = Tool::start(&["tcpconnlat", "--json", "--netns", &inode(&elsewhere)]);
    let run = ns.loadgen(&["connlat", "--family", "4", "--port", "8801", "--count", "2"]);
    for tool in [by_inode, by_netns_id] {
        let rows = tool.stop().succeeded().json();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(rows
            .iter()
            .all(|r| r["pid"] == run["pid"] && r["dport"] == 8801));
    }
    assert!(other.stop().succeeded().lines.is_empty());
}

/// An inode that names no live namespace is refused: exit 2, saying so; a cookie still works.
#[test]
fn netns_unknown_inodes_are_errors() {
    let ns = Netns::new();
    // Below the initial namespaces' fixed inodes (no namespace gets it), and the top of the
    // range. (A freed namespace's inode is not used: the kernel hands it to the next new
    // namespace, which another test may be making.)
    for id in ["4026531000", "18446744073709551614"] {
        let o = netbpf(&["tcpconnlat", "--netns", id, "-d", "1"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "--netns {id}: {err}");
        assert!(
            err.contains(&format!("--netns: no network namespace has inode {id}")),
            "--netns {id}: {err}"
        );
    }
    let by_cookie = Tool::start(&["tcpconnlat", "--json", "--netns", &ns.cookie()]);
    ns.loadgen(&["connlat", "--family", "6", "--port", "8802", "--count", "1"]);
    assert_eq!(by_cookie.stop().succeeded().json().len(), 1);
}

/// bcc's `--milliseconds` (libbpf-tools and netbpf: `-m`/`--millisecond`).
#[test]
fn tcprtt_milliseconds_spelling() {
    let ns = Netns::new();
    let path = ns.path();
    let long = Tool::start(&["tcprtt", "--json", "--milliseconds", "--netns", &path]);
    let short = Tool::start(&["tcprtt", "--json", "-m", "--netns", &path]);
    ns.loadgen(&[
        "pingpong", "--family", "4", "--port", "8811", "--rounds", "5", "--size", "100",
    ]);
    let (long, short) = (
        long.stop().succeeded().json(),
        short.stop().succeeded().json(),
    );
    assert_eq!(long.len(), 1, "{long:?}");
    assert_eq!(long[0]["unit"], "ms");
    assert_eq!(long[0]["buckets"], short[0]["buckets"]);
}
