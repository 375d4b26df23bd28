//! Packet drop reasons (`enum skb_drop_reason`, Linux 5.17+) and the kernel stacks taken where a
//! packet is freed: what kfree_skb-based tools (tcpdrop, skbdrop) share. Before 5.17 the
//! tracepoint gives no reason: the tools then run their plan without reasons
//! (common/drop_reason.bpf.h), with stacks only, and print the reason as [`UNKNOWN`].

use std::collections::HashMap;

use crate::core::caps::{Hook, Plan};

/// The plan with drop reasons (5.17+).
pub const WITH_REASONS: Plan = Plan::new("tp_btf", &[Hook::TpBtf], "skb/kfree_skb").checked(check);

/// The plan for kernels whose kfree_skb gives no reason: the drop's stack (and so where the
/// packet was freed) only.
pub const WITHOUT_REASONS: Plan = Plan::new(
    "tp_btf-noreason",
    &[Hook::TpBtf],
    "skb/kfree_skb (no drop reasons: stack only)",
);

/// The reason as printed where the plan has none (a kernel before 5.17).
pub const UNKNOWN: &str = "unknown";

/// Whether `plan` (one of the two above) reads reasons.
pub fn plan_has_reasons(plan: &Plan) -> bool {
    plan.name == WITH_REASONS.name
}

/// Reason names for `plan`: the kernel's, or None when the plan has no reasons (then every
/// reason is [`UNKNOWN`], see [`name_of`]).
pub fn names_for(plan: &Plan) -> Result<Option<HashMap<u32, String>>, String> {
    if plan_has_reasons(plan) {
        names().map(Some)
    } else {
        Ok(None)
    }
}

/// The name of `reason` with [`names_for`]'s answer.
pub fn name_of(names: Option<&HashMap<u32, String>>, reason: u32) -> String {
    names.map_or_else(|| UNKNOWN.to_string(), |n| name(n, reason))
}

/// Says on stderr, once at start, that this run has no reasons and why.
pub fn note_unknown(tool: &str, names: Option<&HashMap<u32, String>>) {
    if names.is_none() {
        eprintln!(
            "netbpf {tool}: no drop reasons (skb:kfree_skb gives them from Linux 5.17; \
             NETBPF_PLAN may also have asked for the plan without them): reasons are shown as \
             {UNKNOWN}, the stacks tell where packets were dropped"
        );
    }
}

/// The kernel enum kfree_skb's reason argument has.
pub const ENUM: &str = "skb_drop_reason";
const PREFIX: &str = "SKB_DROP_REASON_";

/// Drop reason value -> short name ("NO_SOCKET"), from the running kernel's BTF: the values
/// differ between kernel versions.
pub fn names() -> Result<HashMap<u32, String>, String> {
    use libbpf_rs::btf::types::Enum;
    crate::core::btf::with_vmlinux(|btf| {
        let reasons: Enum = btf.type_by_name(ENUM).ok_or_else(|| {
            format!("the kernel has no 'enum {ENUM}' in BTF (drop reasons came in Linux 5.17)")
        })?;
        Ok(reasons
            .iter()
            .filter_map(|m| {
                let name = m.name?.to_string_lossy();
                let short = name.strip_prefix(PREFIX).unwrap_or(&name).to_string();
                Some((m.value as u32, short))
            })
            .collect())
    })?
}

/// For a plan's check: the kernel gives drop reasons.
pub fn check() -> Result<(), String> {
    names().map(|_| ())
}

/// The name of `reason`, or UNKNOWN(n) when this kernel's enum has no such value.
pub fn name(names: &HashMap<u32, String>, reason: u32) -> String {
    names
        .get(&reason)
        .cloned()
        .unwrap_or_else(|| format!("UNKNOWN({reason})"))
}

/// Drop reasons the kernel gives in normal operation, where no packet was lost: tcpdrop hides
/// them unless asked (`--all-reasons`), skbdrop counts them and marks them. Each with what
/// happened, in plain words. The one list of them.
///
/// QUEUE_PURGE (since Linux 6.7 the reason of `__skb_queue_purge()`): `sk_stream_kill_queues()`
/// frees whatever is left in the receive queue of each TCP socket the kernel destroys. A socket
/// that closed first and then received the peer's FIN goes to TIME_WAIT and is destroyed with
/// that FIN still queued (already acknowledged, nothing to deliver): one QUEUE_PURGE per such
/// connection, and no drop counter moves (nstat). `tcp_disconnect()` purges the same way. On
/// 6.18, loadgen's normal workloads (TCP streams, request/reply, IPv4/IPv6 exchanges, UDP,
/// AF_UNIX, connects, a close with unread data) gave QUEUE_PURGE and no other reason.
///
/// Looked at and not routine: SOCKET_CLOSE (AF_UNIX only, 6.14+: data its receiver never read,
/// discarded at close; TCP frees unread data at close without a drop event and answers with a
/// reset), TCP_CLOSE (a segment for a socket already closed), NOT_SPECIFIED (no reason given;
/// tcpdrop never shows it, skbdrop counts it as such).
pub const ROUTINE: &[(&str, &str)] = &[(
    "QUEUE_PURGE",
    "a closed socket's queue freed with it, e.g. the peer's FIN after close: not a loss",
)];

/// Why `name` is a routine reason (see [`ROUTINE`]), or None when it is not one.
pub fn routine(name: &str) -> Option<&'static str> {
    ROUTINE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}

/// The values of the routine reasons this kernel has (absent ones are left out).
pub fn routine_codes(names: &HashMap<u32, String>) -> Vec<u32> {
    let mut codes: Vec<u32> = names
        .iter()
        .filter(|(_, n)| routine(n).is_some())
        .map(|(v, _)| *v)
        .collect();
    codes.sort_unstable();
    codes
}

/// A frame of the tracing machinery itself (the BPF program and the tracepoint's dispatch), at
/// the top of a stack taken from a tracepoint program.
pub fn is_tracing_frame(frame: &str) -> bool {
    ["bpf_prog_", "bpf_trace_run", "__traceiter_", "__bpf_trace_"]
        .iter()
        .any(|p| frame.starts_with(p))
}

/// The stack from the freeing function down: the tracing frames on top are cut.
pub fn trim_tracing_frames(mut frames: Vec<String>) -> Vec<String> {
    let skip = frames.iter().take_while(|f| is_tracing_frame(f)).count();
    frames.drain(..skip);
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_frames_are_cut() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let stack = f(&[
            "bpf_prog_a61f_tcpdrop_kfree_skb+0x685",
            "bpf_trace_run4+0x10d",
            "__traceiter_kfree_skb+0x41",
            "sk_skb_reason_drop+0x90",
            "tcp_v4_rcv+0x99",
        ]);
        assert_eq!(
            trim_tracing_frames(stack),
            f(&["sk_skb_reason_drop+0x90", "tcp_v4_rcv+0x99"])
        );
    }

    #[test]
    fn routine_reasons_are_named_once() {
        assert!(routine("QUEUE_PURGE").is_some());
        assert!(routine("NO_SOCKET").is_none());
        let names: HashMap<u32, String> = [(3, "NO_SOCKET"), (104, "QUEUE_PURGE")]
            .into_iter()
            .map(|(v, n)| (v, n.to_string()))
            .collect();
        assert_eq!(routine_codes(&names), [104]);
    }

    #[test]
    fn this_kernel_names_its_reasons() {
        let Ok(names) = names() else {
            eprintln!("skipped: no drop reasons in this kernel's BTF");
            return;
        };
        assert!(names.values().any(|n| n == "NO_SOCKET"), "{names:?}");
        assert_eq!(name(&names, u32::MAX), format!("UNKNOWN({})", u32::MAX));
    }
}
