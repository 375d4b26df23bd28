//! Per-socket state of the tools that follow TCP sockets through their state changes
//! (common/sk_state.bpf.h): in the socket's own storage from a tp_btf program where tracing
//! programs have socket storage (5.11), else in a bounded hash keyed by the socket's address,
//! from the classic tracepoint. The hash evicts its oldest entries when more sockets are
//! followed at once than it holds: that is counted and said at exit.

use libbpf_rs::{MapCore as _, Object};

use crate::core::caps::{sk_storage_from_tracing, Hook, Plan};

/// The socket-storage plan (best).
pub const STORED: Plan = Plan::new("tp_btf", &[Hook::TpBtf], "sock/inet_sock_set_state")
    .checked(sk_storage_from_tracing);

/// The fallback where tracing programs have no socket storage (before 5.11).
pub const HASHED: Plan = Plan::new(
    "tracepoint",
    &[Hook::Tracepoint],
    "sock/inet_sock_set_state (sockets in a bounded hash by address)",
);

const HASH_MAP: &str = "sk_state_hashed";

/// Whether `plan` keeps the state in the hash.
fn hashed(plan: &Plan) -> bool {
    plan.uses(Hook::Tracepoint)
}

/// Sizes the maps for `plan`: the hash (an LRU hash is preallocated) is kept to one entry where
/// socket storage is used instead. Every tool's `configure` calls it.
/// `NETBPF_SK_STATE_ENTRIES=N` in the environment sizes the hash otherwise (tests use a small one
/// to see evictions counted).
pub fn configure<'o>(
    open: &mut impl libbpf_rs::skel::OpenSkel<'o>,
    plan: &Plan,
) -> anyhow::Result<()> {
    let entries = if hashed(plan) {
        match std::env::var("NETBPF_SK_STATE_ENTRIES") {
            Ok(n) => Some(n.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
                anyhow::anyhow!("NETBPF_SK_STATE_ENTRIES={n}: not a number of entries")
            })?),
            Err(_) => None,
        }
    } else {
        Some(1)
    };
    let Some(entries) = entries else {
        return Ok(());
    };
    for mut map in open.open_object_mut().maps_mut() {
        if map.name() == HASH_MAP {
            map.set_max_entries(entries)?;
        }
    }
    Ok(())
}

/// [`crate::core::bpf::verify`] for these tools (`netbpf list`): the maps sized for the plan.
pub fn verify<B>(tool: &'static str, plan: &'static Plan) -> Result<(), String>
where
    B: libbpf_rs::skel::SkelBuilder<'static> + Default,
{
    crate::core::bpf::verify_with::<B>(tool, plan, configure)
}

/// Sockets whose state the hash evicted so far: every entry inserted was deleted by the tool,
/// evicted, or is still there.
pub fn evicted(obj: &Object, inserted: u64, deleted: u64) -> u64 {
    let left = obj
        .maps()
        .find(|m| m.name() == HASH_MAP)
        .map_or(0, |m| m.keys().count() as u64);
    inserted.saturating_sub(deleted).saturating_sub(left)
}

/// Says on stderr how many sockets' state the hash evicted and what that cost (`what`, e.g.
/// "sessions not reported").
pub fn report_evicted(tool: &str, obj: &Object, inserted: u64, deleted: u64, what: &str) {
    let n = evicted(obj, inserted, deleted);
    let size = obj
        .maps()
        .find(|m| m.name() == HASH_MAP)
        .map_or(0, |m| m.max_entries());
    crate::core::run::report_dropped(
        tool,
        n,
        &format!(
            "{what}: more than {size} sockets were followed at once, and the oldest were \
             evicted (this kernel has no socket storage for tracing programs)"
        ),
    );
}

/// Seeds common/sk_owner.bpf.h's `listen_owners` with the listeners of `netns` (0: all) open
/// before tracing, so that their children inherit the owner.
pub fn seed_listeners(
    tool: &str,
    netns: u64,
    listen_owners: &dyn libbpf_rs::MapCore,
) -> anyhow::Result<()> {
    use crate::core::sock_owners::{seed_sk_owner, tcp_sockets_or_warn};
    seed_sk_owner(&tcp_sockets_or_warn(tool, netns), listen_owners)
}

/// A socket-following tool's losses at the end of a run, from its `.bss` counters
/// `untracked`, `sk_state_inserted` and `sk_state_deleted`: the sockets it could not follow (no
/// kernel memory for their state; `untracked_what` says what that cost) and those whose state
/// the hash evicted ([`report_evicted`] with `evicted_what`).
pub fn report_unfollowed(tool: &str, obj: &Object, untracked_what: &str, evicted_what: &str) {
    let counter = |name| crate::core::bpf::bss_u64(obj, name).unwrap_or(0);
    crate::core::run::report_dropped(tool, counter("untracked"), untracked_what);
    report_evicted(
        tool,
        obj,
        counter("sk_state_inserted"),
        counter("sk_state_deleted"),
        evicted_what,
    );
}
