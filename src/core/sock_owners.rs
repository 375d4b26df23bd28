//! The owners of the TCP sockets that exist when a tool starts.
//!
//! Tools learn a socket's owner from the calls its process makes (listen, connect, accept,
//! close: common/tcp_owner.bpf.h, common/sk_owner.bpf.h). A daemon's listeners are opened long
//! before tracing begins, so without this every connection they hand out would start with no
//! owner, or with whatever process the softirq interrupted. [`tcp_sockets`] reads them all once
//! from the kernel (a task_file iterator, src/bpf/sock_owners.bpf.c) and the `seed_*` functions
//! write them into a tool's maps, after attaching and without replacing what the tool has
//! learned already (`BPF_NOEXIST`): a socket made between the two is seen by the tool itself.

use libbpf_rs::skel::{OpenSkel as _, SkelBuilder as _};
use libbpf_rs::{MapCore, MapFlags};

use crate::core::addr::Tuple;
use crate::core::bpf::{read_event, Pod};

mod skel {
    include!(concat!(env!("OUT_DIR"), "/sock_owners.skel.rs"));
}
use skel::*;

unsafe impl Pod for types::sock_owner_record {}

/// TCP states, as the kernel numbers them.
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_LISTEN: u8 = 10;

/// A TCP socket and the process holding it.
#[derive(Clone, Debug)]
pub struct OwnedSocket {
    /// The struct sock's address (what tools key sockets by).
    pub sk: u64,
    /// Its network namespace's id (common/netns.bpf.h).
    pub netns: u64,
    pub pid: u32,
    pub uid: u32,
    pub comm: [u8; 16],
    pub state: u8,
    /// The socket's cgroup v2 id.
    pub cgroup: u64,
    /// The socket's own family and addresses (IPv4 in the first 4 bytes; an AF_INET6 socket's
    /// IPv4 peer stays v4-mapped), ports in host order.
    pub family: u16,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub lport: u16,
    pub rport: u16,
}

impl OwnedSocket {
    pub fn tuple(&self) -> Tuple {
        Tuple::new(
            self.family,
            &self.saddr,
            &self.daddr,
            self.lport,
            self.rport,
        )
    }
}

/// The socket iterator, loaded and not yet run.
type Loaded = anyhow::Result<SockOwnersSkel<'static>>;

/// The iterator being loaded on a thread of its own, by [`load_in_background`].
static LOADING: std::sync::Mutex<Option<std::thread::JoinHandle<Loaded>>> =
    std::sync::Mutex::new(None);

fn load_iterator() -> Loaded {
    let object = Box::leak(Box::new(std::mem::MaybeUninit::uninit()));
    let open = SockOwnersSkelBuilder::default()
        .open(object)
        .map_err(|e| anyhow::anyhow!("opening the socket iterator: {e}"))?;
    open.load()
        .map_err(|e| anyhow::anyhow!("loading the socket iterator: {e}"))
}

/// Starts loading the socket iterator on another thread, for a tool that will call
/// [`tcp_sockets`] once its own object is attached: loading it (libbpf reading and relocating
/// against kernel BTF, the verifier) costs about what the tool's own load does, and the two
/// then run side by side on two CPUs instead of one after the other.
pub fn load_in_background() {
    let mut loading = LOADING.lock().unwrap();
    if loading.is_none() {
        *loading = std::thread::Builder::new()
            .name("netbpf-sockets".into())
            .spawn(load_iterator)
            .ok();
    }
}

/// Every TCP socket some process holds, in namespace `netns` (0: all), each once. A socket held
/// by several processes (a pre-forking server's listener, inherited by its workers) is credited
/// to the lowest PID, normally the process that opened it.
pub fn tcp_sockets(netns: u64) -> anyhow::Result<Vec<OwnedSocket>> {
    use std::io::Read as _;
    let background = LOADING.lock().unwrap().take();
    let skel = match background {
        Some(thread) => thread
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("loading the socket iterator panicked")))?,
        None => load_iterator()?,
    };
    let link = skel
        .progs
        .sock_owners_iter
        .attach()
        .map_err(|e| anyhow::anyhow!("attaching the socket iterator: {e}"))?;
    let mut bytes = Vec::new();
    libbpf_rs::Iter::new(&link)
        .and_then(|mut it| it.read_to_end(&mut bytes).map_err(Into::into))
        .map_err(|e| anyhow::anyhow!("reading the socket iterator: {e}"))?;
    let size = std::mem::size_of::<types::sock_owner_record>();
    let mut by_sk: std::collections::HashMap<u64, OwnedSocket> = Default::default();
    for chunk in bytes.chunks_exact(size) {
        let Some(r) = read_event::<types::sock_owner_record>(chunk) else {
            continue;
        };
        if netns != 0 && r.netns != netns {
            continue;
        }
        let s = OwnedSocket {
            sk: r.sk,
            netns: r.netns,
            pid: r.pid,
            uid: r.uid,
            comm: r.comm.map(|c| c as u8),
            state: r.state,
            cgroup: r.cgroup,
            family: r.tuple.family,
            saddr: r.tuple.saddr,
            daddr: r.tuple.daddr,
            lport: r.tuple.lport,
            rport: r.tuple.rport,
        };
        by_sk
            .entry(s.sk)
            .and_modify(|old| {
                if s.pid < old.pid {
                    *old = s.clone();
                }
            })
            .or_insert(s);
    }
    let mut all: Vec<OwnedSocket> = by_sk.into_values().collect();
    all.sort_by_key(|s| (s.netns, s.lport, s.sk));
    Ok(all)
}

/// [`tcp_sockets`] for a tool: on failure says on stderr what the tool will not know, and
/// returns none.
pub fn tcp_sockets_or_warn(tool: &str, netns: u64) -> Vec<OwnedSocket> {
    match tcp_sockets(netns) {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "netbpf {tool}: the owners of sockets opened before tracing are not known \
                 ({e:#}): their connections show no owner until their process closes them"
            );
            Vec::new()
        }
    }
}

fn owner_bytes(s: &OwnedSocket) -> Vec<u8> {
    let mut v = s.pid.to_ne_bytes().to_vec();
    v.extend_from_slice(&s.comm);
    v
}

fn listener_key(s: &OwnedSocket) -> Vec<u8> {
    let mut k = s.netns.to_ne_bytes().to_vec();
    k.extend_from_slice(&u32::from(s.lport).to_ne_bytes());
    k.extend_from_slice(&0u32.to_ne_bytes());
    k
}

/// Writes (key, value) unless the key is there already (what tracing learned since attaching
/// wins); checks the sizes against the map's (a mismatch is a layout drift between the writer
/// and the BPF header: an error, not a guess). A shorter value is padded with zeros.
pub fn insert_new(map: &dyn MapCore, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
    let (ks, vs) = (map.key_size() as usize, map.value_size() as usize);
    anyhow::ensure!(
        key.len() == ks && value.len() <= vs,
        "map {:?}: key/value of {}/{} bytes, expected {ks}/{vs}",
        map.name(),
        key.len(),
        value.len()
    );
    let mut value = value.to_vec();
    value.resize(vs, 0);
    match map.update(key, &value, MapFlags::NO_EXIST) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::anyhow!("map {:?}: {e}", map.name())),
    }
}

fn listeners(socks: &[OwnedSocket]) -> impl Iterator<Item = &OwnedSocket> {
    socks
        .iter()
        .filter(|s| s.state == TCP_LISTEN && s.lport != 0)
}

/// Seeds common/sk_owner.bpf.h's `listen_owners` ((netns, port) -> struct owner_id): the
/// children of these listeners inherit their owner at SYN_RECV.
pub fn seed_sk_owner(socks: &[OwnedSocket], listen_owners: &dyn MapCore) -> anyhow::Result<()> {
    for s in listeners(socks) {
        insert_new(listen_owners, &listener_key(s), &owner_bytes(s))?;
    }
    Ok(())
}

/// Seeds common/tcp_owner.bpf.h's maps: `sk_owners` (every socket -> struct sk_owner) and
/// `listener_owners` ((netns, port) -> struct listener_owner: the socket, then its owner).
pub fn seed_tcp_owner(
    socks: &[OwnedSocket],
    sk_owners: &dyn MapCore,
    listener_owners: &dyn MapCore,
) -> anyhow::Result<()> {
    for s in socks {
        insert_new(sk_owners, &s.sk.to_ne_bytes(), &owner_bytes(s))?;
    }
    for s in listeners(socks) {
        let mut v = s.sk.to_ne_bytes().to_vec();
        v.extend_from_slice(&owner_bytes(s));
        insert_new(listener_owners, &listener_key(s), &v)?;
    }
    Ok(())
}
