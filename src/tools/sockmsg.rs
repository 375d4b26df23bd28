//! The fentry and kprobe plans shared by sockstat, socketio and socksize: every message a
//! socket's protocol is handed, on kernels without the sock_{send,recv}_length tracepoints
//! (common/sockmsg.bpf.h says how, and why no single function will do).

use libbpf_rs::OpenObject;

use crate::core::btf::require_func;
use crate::core::caps::{Hook, Plan};

/// `netbpf list -v` text of the fentry plan's hooks (a macro, for `concat!`).
#[macro_export]
macro_rules! sockmsg_fentry_hooks {
    () => {
        "fexit sock_recvmsg, ____sys_recvmsg, fentry+fexit ____sys_sendmsg, and fexit \
         __sock_sendmsg or (without it) fexit security_socket_sendmsg, sock_sendmsg, \
         sock_write_iter, __sys_sendto"
    };
}

/// `netbpf list -v` text of the kprobe plan's hooks.
#[macro_export]
macro_rules! sockmsg_kprobe_hooks {
    () => {
        "kprobe+kretprobe sock_recvmsg, ____sys_recvmsg, ____sys_sendmsg, and __sock_sendmsg or \
         (without it) security_socket_sendmsg + kretprobe sock_sendmsg, sock_write_iter, \
         __sys_sendto"
    };
}

/// The tracepoint plans' check: sock_send_length and sock_recv_length appeared in Linux 6.3.
pub fn length_tracepoints() -> Result<(), String> {
    crate::core::btf::require_tracepoint("sock_send_length")?;
    crate::core::btf::require_tracepoint("sock_recv_length")
}

/// The plans of a tool that sees each message through the sock_{send,recv}_length tracepoints
/// (tp_btf), else through these programs: `fentry` and `kprobe` name those two plans.
pub const fn plans(fentry: &'static str, kprobe: &'static str) -> [Plan; 3] {
    [
        Plan::new(
            "tp_btf",
            &[Hook::TpBtf],
            "sock/sock_send_length + sock/sock_recv_length",
        )
        .checked(length_tracepoints),
        Plan::new(fentry, &[Hook::Fentry], crate::sockmsg_fentry_hooks!()).checked(required),
        Plan::new(kprobe, &[Hook::Kprobe], crate::sockmsg_kprobe_hooks!()).checked(required),
    ]
}

/// The functions the plans cannot do without: sock_recvmsg, and __sock_sendmsg or the LSM check
/// and sock_sendmsg.
pub fn required() -> Result<(), String> {
    require_func("sock_recvmsg")?;
    if require_func("__sock_sendmsg").is_ok() {
        return Ok(());
    }
    require_func("security_socket_sendmsg")?;
    require_func("sock_sendmsg")
}

/// The function a fentry/fexit/kprobe/kretprobe program attaches to, from its section name.
fn target(section: &str) -> Option<&str> {
    let (kind, func) = section.split_once('/')?;
    matches!(kind, "fentry" | "fexit" | "kprobe" | "kretprobe").then_some(func)
}

/// Loads the `sockmsg_*` programs `plan` needs (its fentry or kprobe set, or none), less those
/// whose function this kernel does not have (____sys_*msg are 5.5+), and less the `_lsm_` ones
/// where __sock_sendmsg exists (it sees every send then).
pub fn autoload(obj: &mut OpenObject, plan: &Plan) {
    let hook = if plan.needs.contains(&Hook::Fentry) {
        Some(Hook::Fentry)
    } else if plan.needs.contains(&Hook::Kprobe) {
        Some(Hook::Kprobe)
    } else {
        None
    };
    let has = |f: &str| require_func(f).is_ok();
    let prefix = match hook {
        Some(Hook::Fentry) => "sockmsg_fx_",
        Some(Hook::Kprobe) => "sockmsg_kp_",
        _ => "-",
    };
    for mut prog in obj.progs_mut() {
        let name = prog.name().to_string_lossy().into_owned();
        if !name.starts_with("sockmsg_") {
            continue;
        }
        let section = prog.section().to_string_lossy().into_owned();
        let present = target(&section).is_some_and(has);
        let needed = !name.contains("_lsm_") || !has("__sock_sendmsg");
        // The plan chose the hook type (core::bpf::autoload_by_plan); leave out the rest.
        let keep = prog.autoload() && name.starts_with(prefix) && present && needed;
        prog.set_autoload(keep);
    }
}

/// `Tool::verify` of a tool whose fentry and kprobe plans are these programs.
pub fn verify<B>(tool: &'static str, plan: &'static Plan) -> Result<(), String>
where
    B: libbpf_rs::skel::SkelBuilder<'static> + Default,
{
    use libbpf_rs::skel::OpenSkel as _;
    crate::core::bpf::verify_with::<B>(tool, plan, |open, plan| {
        autoload(open.open_object_mut(), plan);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn targets() {
        assert_eq!(
            super::target("fexit/__sock_sendmsg"),
            Some("__sock_sendmsg")
        );
        assert_eq!(
            super::target("kretprobe/sock_write_iter"),
            Some("sock_write_iter")
        );
        assert_eq!(super::target("tp_btf/sock_send_length"), None);
    }
}
