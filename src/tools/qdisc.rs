//! qdisc: queueing latency of the qdiscs of one kind, as a log2 histogram in microseconds. The
//! book had one script per kind (qdisc-fq, qdisc-tbf, ...): those names are aliases here.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;
use libbpf_rs::skel::Skel;

use crate::core::bpf::{Plans, Pod};
use crate::core::caps::{osrelease, release_version, Caps, Hook, Plan};
use crate::core::cli::Common;
use crate::core::error::Unsupported;
use crate::core::hist::{print_log2, total};
use crate::core::iface::{ifname_bytes, parse_ifname};
use crate::core::kallsyms::Kallsyms;
use crate::core::output::{Format, Output, Value};
use crate::tools::{start, Tool};
use crate::usage;

crate::skel!("qdisc");

unsafe impl Pod for types::qdisc_hist_key {}
unsafe impl Pod for types::hist {}

pub static TOOL: Tool = Tool {
    name: "qdisc",
    aliases: &[
        "qdisc-cbq",
        "qdisc-cbs",
        "qdisc-codel",
        "qdisc-fq",
        "qdisc-fq_codel",
        "qdisc-red",
        "qdisc-tbf",
    ],
    about: "Queueing latency histogram of one qdisc kind (qdisc-fq, qdisc-tbf, ... as aliases)",
    plans: &[
        // The kind's own functions: also child qdiscs, and the qdisc with its packet and result.
        Plan::new(
            "fexit",
            &[Hook::Fentry],
            "fexit KIND_enqueue + fexit KIND_dequeue (+ KIND_peek)",
        ),
        KPROBES,
        TRACEPOINTS,
    ],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify,
    export: Some(crate::core::export::Export {
        order: 9,
        load: export::load,
    }),
};

/// The kind's functions through kprobes: also where fexit cannot reach them (a module without
/// BTF, before 5.11).
const KPROBES: Plan = Plan::new(
    "kprobe",
    &[Hook::Kprobe],
    "kprobe+kretprobe KIND_enqueue, KIND_dequeue (+ KIND_peek)",
);

/// Root qdiscs of every kind, chosen by ops->id; also where the kind's functions are unknown.
const TRACEPOINTS: Plan = Plan::new(
    "tp_btf",
    &[Hook::TpBtf],
    "qdisc/qdisc_enqueue + qdisc/qdisc_dequeue",
)
.checked(has_tracepoints);

/// The tp_btf programs: both tracepoints (qdisc_enqueue: 5.11-5.15), and bpf_loop (5.17) in
/// the dequeue program.
fn has_tracepoints() -> Result<(), String> {
    crate::core::btf::require_tracepoint("qdisc_enqueue")?;
    crate::core::btf::require_tracepoint("qdisc_dequeue")?;
    crate::core::caps::loop_helper()
}

const EXAMPLES: &str = "\
Examples:
  qdisc tbf               # time packets queued in tbf qdiscs; histogram at Ctrl-C
  qdisc-fq_codel          # the book's name: same as 'qdisc fq_codel'
  qdisc fq -i eth0 -d 10  # only eth0's fq qdisc, for 10 seconds
  qdisc tbf --json        # the histogram as one JSON object

The time runs from a packet's enqueue to its dequeue. Where the kernel allows it (fexit, else
kprobes: most distribution kernels) the kind's own enqueue and dequeue functions are traced, as
the book did, so the kind is seen wherever it sits, also as a child qdisc (e.g. fq_codel under
an htb class). Otherwise the qdisc tracepoints are used: root qdiscs only. Never timed: packets
that bypass an empty queue (qdiscs flagged TCQ_F_CAN_BYPASS, such as pfifo_fast, fq_codel and
codel, hand a packet straight to the driver when nothing is queued, so an idle link shows
nothing). tbf splits GSO packets larger than its burst: each segment is timed from its
packet's enqueue. A kind this kernel does not have is refused; a kind whose module is not
loaded yet is traced (with the tracepoints) from the moment one is created.";

#[derive(Parser, Debug)]
#[command(name = "qdisc", about = "Summarize queueing latency of one qdisc kind as a histogram", after_help = EXAMPLES)]
struct Opts {
    /// Qdisc kind, as `tc qdisc show` names it: tbf, fq, fq_codel, htb, pfifo_fast, ...
    /// (not with the qdisc-KIND names)
    #[arg(value_name = "KIND")]
    kind: Option<String>,
    /// Only the qdisc of this network interface
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = parse_ifname)]
    iface: Option<String>,
    #[command(flatten)]
    common: Common,
}

const NAME_MAX: usize = 15; // IFNAMSIZ and the qdisc id are 16 bytes with their NUL

/// Whether `kind` can be a qdisc kind's name; else what is wrong with it.
fn kind_name_ok(kind: &str) -> Result<(), String> {
    let ok = !kind.is_empty()
        && kind.len() <= NAME_MAX
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{kind}' is not a qdisc kind (lowercase letters, digits and _, at most {NAME_MAX})"
        ))
    }
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let invoked = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let o = Opts::parse_from(args);
    let kind = match (invoked.strip_prefix("qdisc-"), &o.kind) {
        (Some(k), None) => k.to_string(),
        (Some(k), Some(_)) => {
            return Err(usage!(
            "{invoked} takes no KIND: it times {k} qdiscs (netbpf qdisc KIND times another kind)"
        ))
        }
        (None, Some(k)) => k.clone(),
        (None, None) => {
            return Err(usage!(
                "give the qdisc kind to time, e.g. 'netbpf qdisc tbf'"
            ))
        }
    };
    kind_name_ok(&kind).map_err(|why| usage!("{why}"))?;
    if let Some(why) = not_a_queue(&kind) {
        return Err(usage!("qdisc {kind}: {why}"));
    }
    let what = format!("qdisc {kind}");
    let kallsyms = kind_symbols(&[&kind]);
    match kind_available_in(&kind, &osrelease(), &kallsyms, Path::new("/lib/modules")) {
        Ok(Availability::Present) => {}
        Ok(Availability::ModuleNotLoaded(module)) => eprintln!(
            "netbpf qdisc: {} is a module that is not loaded, so no {kind} qdisc exists yet; the \
             kernel loads it when one is created (tc qdisc add ... {kind}), and from then on its \
             packets are timed",
            module.display()
        ),
        Err(why) => return Err(Unsupported::new(&what, why).into()),
    }

    let s = start(tool, &o.common)?;
    crate::core::iface::warn_missing_interface(tool.name, o.iface.as_deref(), &o.common);
    let traced = choose(&kind, s.plan, &kallsyms, &what)?;
    let plan = traced.plan;
    let funcs = &traced.funcs;
    let (skel, links) = load_attached(tool.name, &kind, &traced, &s.filters, |rodata| {
        rodata.filter_ifname = ifname_bytes(o.iface.as_deref());
    })?;

    let on = o
        .iface
        .as_deref()
        .map(|i| format!(" on {i}"))
        .unwrap_or_default();
    let how = match funcs {
        Some(f) => {
            let peek = f.peek.as_ref().map(|p| format!("/{p}")).unwrap_or_default();
            format!("{} {}/{}{peek}", plan.name, f.enqueue, f.dequeue)
        }
        None => "qdisc tracepoints".into(),
    };
    s.wait_then_report(
        &format!("{kind} qdisc queueing latency{on} ({how})"),
        libbpf_rs::skel::Skel::object(&skel),
    );
    drop(links);

    let mut slots = [0u64; 64];
    for (_, h) in
        crate::core::maps::entries::<types::qdisc_hist_key, types::hist>(&skel.maps.hists)?
    {
        for (acc, v) in slots.iter_mut().zip(h.slots.iter()) {
            *acc += v;
        }
    }
    let bss = skel.maps.bss_data.as_deref();
    let untimed = bss.map_or(0, |b| b.untimed);
    let missed = bss.map_or(0, |b| b.missed);
    let segments = bss.map_or(0, |b| b.gso_segments_timed);
    let full = bss.map_or(0, |b| b.gso_fifo_full);
    let mut out = Output::new(o.common.format(), Vec::new());
    let mut labels = vec![("kind", Value::Str(&kind))];
    if let Some(i) = &o.iface {
        labels.push(("interface", Value::Str(i)));
    }
    if out.format() == Format::Json {
        labels.extend([
            ("plan", Value::Str(plan.name)),
            ("untimed", Value::U64(untimed)),
            ("missed", Value::U64(missed)),
            ("gso_segments_timed", Value::U64(segments)),
        ]);
    }
    if out.format() == Format::Json || total(&slots) > 0 {
        print_log2(&mut out, "us", "us", &labels, &slots);
    } else {
        crate::core::run::report_nothing(tool.name, &format!("no packet left a {kind} qdisc{on}"));
    }
    out.flush();
    if untimed > 0 {
        eprintln!(
            "netbpf qdisc: {untimed} {} dequeued without a recorded enqueue (queued before \
             tracing began; {missed} of them dequeued unseen by the tracer) {} not timed",
            plural(untimed, "packet", "packets"),
            plural(untimed, "was", "were")
        );
    }
    if full > 0 {
        eprintln!(
            "netbpf qdisc: {full} split GSO {} not followed (more than 256 queued at once): \
             {} segments were timed from another packet's enqueue, or not at all",
            plural(full, "packet was", "packets were"),
            plural(full, "its", "their")
        );
    }
    Ok(())
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Copies a name into a NUL-padded char array of the rodata.
fn copy_name(dst: &mut [i8; 16], name: &str) {
    *dst = [0; 16];
    for (d, b) in dst.iter_mut().zip(name.bytes().take(NAME_MAX)) {
        *d = b as i8;
    }
}

#[derive(Debug, PartialEq)]
enum Availability {
    Present,
    /// Built as this module file, which is not loaded.
    ModuleNotLoaded(PathBuf),
}

/// What a run traces: the plan used and, for the function plans, the kind's functions.
struct Traced {
    plan: &'static Plan,
    funcs: Option<KindFunctions>,
}

/// The function plans need the kind's functions by name; a module not loaded yet, or a kind
/// whose functions are named otherwise (the fifos share qdisc_dequeue_head), falls back to the
/// tracepoints.
fn choose(
    kind: &str,
    plan: &'static Plan,
    kallsyms: &Kallsyms,
    what: &str,
) -> anyhow::Result<Traced> {
    let functions = plan.uses(Hook::Fentry) || plan.uses(Hook::Kprobe);
    let funcs = functions.then(|| kind_functions(kind, kallsyms)).flatten();
    // fexit finds its target in BTF: a kind built as a module needs the module's BTF (5.11+).
    let module = format!("sch_{kind}");
    let plan = match &funcs {
        Some(f)
            if plan.uses(Hook::Fentry)
                && !matches!(crate::core::btf::func_id(&f.enqueue), Ok(Some(_)))
                && !Path::new("/sys/kernel/btf").join(&module).exists() =>
        {
            let next = match Caps::get().check(&KPROBES) {
                Ok(()) => &KPROBES,
                Err(_) => &TRACEPOINTS,
            };
            eprintln!(
                "netbpf qdisc: {kind} is in module {module}, which has no BTF on this kernel \
                 (module BTF: 5.11), so fexit cannot attach to it; using the {} plan",
                next.name
            );
            next
        }
        _ => plan,
    };
    let plan = if (funcs.is_none() && functions) || plan.name == TRACEPOINTS.name {
        Caps::get().check(&TRACEPOINTS).map_err(|why| {
            let why = match (&funcs, functions) {
                // A module not loaded yet: its functions come with it.
                (None, true) => format!(
                    "{kind}'s functions are not in the kernel (is {module} loaded? create a \
                     {kind} qdisc or `modprobe {module}` first), and {why}"
                ),
                _ => why,
            };
            Unsupported::new(what, why)
        })?;
        &TRACEPOINTS
    } else {
        plan
    };
    Ok(Traced { plan, funcs })
}

/// Leaves out the peek programs of a kind without a peek function, and points the fexit
/// programs at the kind's functions (the plan chose fexit, kprobe or tracepoint programs).
fn configure(open: &mut OpenQdiscSkel, kind: &str, t: &Traced) -> anyhow::Result<()> {
    let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
    copy_name(&mut rodata.qdisc_kind, kind);
    rodata.split_gso = kind == "tbf";
    let peek = t.funcs.as_ref().and_then(|f| f.peek.clone());
    let progs = &mut open.progs;
    if peek.is_none() {
        progs.qdisc_fexit_peek.set_autoload(false);
        progs.qdisc_kprobe_peek.set_autoload(false);
        progs.qdisc_kretprobe_peek.set_autoload(false);
    }
    if let (true, Some(f)) = (t.plan.uses(Hook::Fentry), &t.funcs) {
        progs
            .qdisc_fexit_enqueue
            .set_attach_target(0, Some(f.enqueue.clone()))?;
        progs
            .qdisc_fexit_dequeue
            .set_attach_target(0, Some(f.dequeue.clone()))?;
        if let Some(peek) = &peek {
            progs
                .qdisc_fexit_peek
                .set_attach_target(0, Some(peek.clone()))?;
        }
    }
    Ok(())
}

/// `Tool::verify`: the plan's programs for the default kind of most interfaces (pfifo_fast,
/// built in), whose functions every kernel has.
fn verify(tool: &'static str, plan: &'static Plan) -> Result<(), String> {
    let t = Traced {
        plan,
        funcs: kind_functions("pfifo_fast", &kind_symbols(&["pfifo_fast"])),
    };
    crate::core::bpf::verify_with::<QdiscSkelBuilder>(tool, plan, |open, _| {
        configure(open, "pfifo_fast", &t)
    })
}

/// Loads and attaches the programs `t` needs to time `kind` (the plan was chosen for the kind:
/// no fall-through here) with `filters`; `set` fills in the rest of .rodata.
fn load_attached(
    tool: &'static str,
    kind: &str,
    t: &Traced,
    filters: &crate::core::cli::Filters,
    set: impl Fn(&mut types::rodata),
) -> anyhow::Result<(QdiscSkel<'static>, Vec<libbpf_rs::Link>)> {
    let plans = Plans {
        tool,
        all: std::slice::from_ref(t.plan),
        select: |_, plans| Ok(&plans[0]),
        filters: Some(filters.clone()),
    };
    let (mut skel, _) =
        crate::core::bpf::load_plan::<QdiscSkelBuilder>(&plans, t.plan, |open, _| {
            configure(open, kind, t)?;
            set(open.maps.rodata_data.as_deref_mut().expect("rodata"));
            Ok(())
        })?;
    let mut links = Vec::new();
    match (t.plan.uses(Hook::Kprobe), &t.funcs) {
        (true, Some(f)) => {
            let failed = |f: &str, e| crate::core::bpf::attach_failed(tool, f, e);
            let p = &skel.progs;
            let mut probes = vec![
                (&p.qdisc_kprobe_enqueue, false, &f.enqueue),
                (&p.qdisc_kretprobe_enqueue, true, &f.enqueue),
                (&p.qdisc_kprobe_dequeue, false, &f.dequeue),
                (&p.qdisc_kretprobe_dequeue, true, &f.dequeue),
            ];
            if let Some(peek) = &f.peek {
                probes.push((&p.qdisc_kprobe_peek, false, peek));
                probes.push((&p.qdisc_kretprobe_peek, true, peek));
            }
            for (prog, ret, func) in probes {
                let what = format!("{} {func}", if ret { "kretprobe" } else { "kprobe" });
                match ret {
                    true => crate::core::kretprobe::attach(prog, func),
                    false => prog.attach_kprobe(false, func).map(|l| links.push(l)),
                }
                .map_err(|e| failed(&what, e))?;
            }
        }
        _ => skel
            .attach()
            .map_err(|e| crate::core::bpf::attach_failed(tool, t.plan.attach, e))?,
    }
    Ok((skel, links))
}

/// A kind's own functions, traced by the fexit and kprobe plans.
#[derive(Debug, PartialEq)]
struct KindFunctions {
    enqueue: String,
    dequeue: String,
    /// Its own peek function, which takes the packet out of its queue when a parent looks at it
    /// (fq_codel's on recent kernels; most kinds use the generic qdisc_peek_dequeued, which
    /// calls their dequeue function).
    peek: Option<String>,
}

/// The symbols of /proc/kallsyms that [`kind_functions`] and [`kind_available_in`] look for:
/// those named KIND_... for each kind.
fn kind_symbols(kinds: &[&str]) -> Kallsyms {
    let prefixes: Vec<String> = kinds.iter().map(|k| format!("{k}_")).collect();
    Kallsyms::read_names(&prefixes.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The kind's enqueue and dequeue functions, when /proc/kallsyms has both under one of the usual
/// names (KIND_enqueue, or KIND_qdisc_enqueue as for codel and pie), and its peek function if it
/// has one (KIND_peek or KIND_qdisc_peek: codel's is codel_peek beside codel_qdisc_enqueue).
fn kind_functions(kind: &str, kallsyms: &Kallsyms) -> Option<KindFunctions> {
    let peek = [format!("{kind}_peek"), format!("{kind}_qdisc_peek")]
        .into_iter()
        .find(|f| kallsyms.has_function(f));
    [kind.to_string(), format!("{kind}_qdisc")]
        .into_iter()
        .map(|p| KindFunctions {
            enqueue: format!("{p}_enqueue"),
            dequeue: format!("{p}_dequeue"),
            peek: peek.clone(),
        })
        .find(|f| kallsyms.has_function(&f.enqueue) && kallsyms.has_function(&f.dequeue))
}

/// Why a kind that exists everywhere has nothing to time.
fn not_a_queue(kind: &str) -> Option<String> {
    Some(match kind {
        "noqueue" => "noqueue has no queue: packets go straight to the driver".into(),
        "ingress" | "clsact" => format!("{kind} only runs filters; it never queues packets"),
        "mq" | "mqprio" => format!(
            "{kind} only holds one child qdisc per transmit queue, and the children do the \
             queueing: give the children's kind (tc qdisc show lists them, e.g. fq_codel or \
             pfifo_fast)"
        ),
        _ => return None,
    })
}

/// Whether this kernel can have a qdisc of `kind`, and why not. Kinds are registered by their
/// sch_<kind> code, which is either built in (its enqueue function is in /proc/kallsyms, or it
/// is listed in modules.builtin), a loaded module (its symbols are in kallsyms too), or a module
/// file not loaded yet.
fn kind_available_in(
    kind: &str,
    release: &str,
    kallsyms: &Kallsyms,
    modules: &Path,
) -> Result<Availability, String> {
    match kind {
        "cbq" | "atm" | "dsmark" if release_version(release).is_some_and(|v| v >= (6, 3)) => {
            return Err(format!(
                "{} was removed from Linux in 6.3 (this kernel is {release}); htb or hfsc \
                 replace cbq",
                kind.to_uppercase()
            ))
        }
        // sch_fifo and sch_generic are always built in.
        "pfifo" | "bfifo" | "pfifo_head_drop" | "pfifo_fast" => return Ok(Availability::Present),
        _ => {}
    }
    let wanted = [format!("{kind}_enqueue"), format!("{kind}_qdisc_enqueue")];
    if wanted.iter().any(|w| kallsyms.has_function(w)) {
        return Ok(Availability::Present);
    }
    let module = format!("sch_{kind}");
    let dir = modules.join(release);
    let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    if builtin
        .lines()
        .any(|l| l == format!("kernel/net/sched/{module}.ko"))
    {
        return Ok(Availability::Present);
    }
    for ext in ["ko", "ko.xz", "ko.zst", "ko.gz"] {
        let file = dir.join(format!("kernel/net/sched/{module}.{ext}"));
        if file.is_file() {
            return Ok(Availability::ModuleNotLoaded(file));
        }
    }
    Err(format!(
        "not built in (no {} in /proc/kallsyms) and no module {module} in {}",
        wanted[0],
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use libbpf_rs::skel::{OpenSkel as _, SkelBuilder as _};
    use std::mem::MaybeUninit;

    const SYMS: &str = "\
ffffffff81f4b9d0 t tbf_enqueue
ffffffff81f4c000 t codel_qdisc_enqueue
ffffffffc0a01000 t fq_enqueue\t[sch_fq]
";

    #[test]
    fn kinds() {
        let none = Path::new("/nonexistent");
        let syms = Kallsyms::from_text(SYMS.into());
        let avail = |k: &str| kind_available_in(k, "6.18.0", &syms, none);
        assert_eq!(avail("tbf"), Ok(Availability::Present));
        assert_eq!(avail("codel"), Ok(Availability::Present));
        assert_eq!(avail("fq"), Ok(Availability::Present), "loaded module");
        assert_eq!(avail("pfifo_fast"), Ok(Availability::Present));
        let e = avail("fq_codel").unwrap_err();
        assert!(
            e.contains("not built in (no fq_codel_enqueue") && e.contains("sch_fq_codel"),
            "{e}"
        );
        assert!(avail("cbq")
            .unwrap_err()
            .contains("removed from Linux in 6.3"));
        assert!(not_a_queue("mq").unwrap().contains("children"));
        assert!(not_a_queue("tbf").is_none());
        // Before 6.3, cbq is an ordinary kind.
        assert!(kind_available_in("cbq", "5.15.0", &syms, none)
            .unwrap_err()
            .contains("no module sch_cbq"));
    }

    #[test]
    fn functions_by_kind() {
        let syms = "1 t fq_codel_enqueue\n2 t fq_codel_dequeue\n3 t codel_qdisc_enqueue\n\
                    4 t codel_qdisc_dequeue\n5 t pfifo_enqueue\n6 t qdisc_dequeue_head\n\
                    7 t fq_codel_peek\n8 t codel_peek\n";
        let syms = Kallsyms::from_text(syms.into());
        let f = |k| kind_functions(k, &syms);
        let funcs = |e: &str, d: &str, p: Option<&str>| KindFunctions {
            enqueue: e.into(),
            dequeue: d.into(),
            peek: p.map(String::from),
        };
        assert_eq!(
            f("fq_codel"),
            Some(funcs(
                "fq_codel_enqueue",
                "fq_codel_dequeue",
                Some("fq_codel_peek")
            ))
        );
        assert_eq!(
            f("codel"),
            Some(funcs(
                "codel_qdisc_enqueue",
                "codel_qdisc_dequeue",
                Some("codel_peek")
            ))
        );
        assert_eq!(f("pfifo"), None);
        assert_eq!(f("fq"), None);
    }

    /// Every program but the fexit ones passes the verifier here, the kprobe ones included (only their attach
    /// needs kprobes). Needs root.
    #[test]
    fn object_loads() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let mut obj = MaybeUninit::uninit();
        let mut open = QdiscSkelBuilder::default().open(&mut obj).unwrap();
        // fexit programs need an attach target and trampolines (refused on some kernels).
        open.progs.qdisc_fexit_enqueue.set_autoload(false);
        open.progs.qdisc_fexit_dequeue.set_autoload(false);
        open.progs.qdisc_fexit_peek.set_autoload(false);
        open.load().expect("all programs load");
    }

    #[test]
    fn modules_on_disk() {
        let dir = std::env::temp_dir().join(format!("netbpf-qdisc-{}", std::process::id()));
        let sched = dir.join("6.1.0/kernel/net/sched");
        std::fs::create_dir_all(&sched).unwrap();
        std::fs::write(sched.join("sch_red.ko.xz"), b"").unwrap();
        std::fs::write(
            dir.join("6.1.0/modules.builtin"),
            "kernel/net/sched/sch_cake.ko\n",
        )
        .unwrap();
        let none = Kallsyms::from_text(String::new());
        let avail = |k: &str| kind_available_in(k, "6.1.0", &none, &dir);
        assert_eq!(
            avail("red"),
            Ok(Availability::ModuleNotLoaded(sched.join("sch_red.ko.xz")))
        );
        assert_eq!(avail("cake"), Ok(Availability::Present));
        assert!(avail("sfq").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: queueing latency histograms built in the kernel, one BPF object per qdisc
/// kind asked for (qdisc.bpf.c in exporter mode, maps of common/export.bpf.h), labelled by kind.
/// The plan is chosen per kind as the tool does: the kind's functions with kprobes, else the
/// qdisc tracepoints (root qdiscs only).
pub mod export {
    use super::*;
    crate::export_object!(OpenQdiscSkel, QdiscSkel);

    use crate::core::export::{Buckets, Ctx, ExportMaps, Family, Loaded, Scale, Source, Unit};

    /// 1 µs to 2^24 µs (16.8 s).
    const LATENCIES: Buckets = Buckets {
        scale: Scale::Micros,
        first: 0,
        last: 24,
    };

    /// enum qdisc_export_metric of qdisc.h.
    const LATENCY: u32 = 0;
    const UNTIMED: u32 = 1;

    struct Latency(Vec<(String, ExportMaps)>);

    impl Source for Latency {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let mut series = Vec::new();
            let mut untimed = Vec::new();
            for (kind, maps) in &self.0 {
                let label = |_| vec![("kind", kind.clone())];
                let h = maps.hists()?;
                series.extend(maps.histogram(&h, LATENCY, &[0], label));
                let c = maps.counts()?;
                untimed.extend(maps.counter(&c, UNTIMED, &[0], label));
            }
            Ok(vec![
                Family::Histogram {
                    name: "netbpf_qdisc_latency",
                    help: "Time packets spent queued in a qdisc, from enqueue to dequeue",
                    unit: Unit::Seconds,
                    buckets: LATENCIES,
                    series,
                },
                Family::Counter {
                    name: "netbpf_qdisc_untimed_packets",
                    help: "Packets dequeued from a qdisc without a recorded enqueue (queued \
                           before tracing began, or dequeued unseen by the tracer): not timed",
                    unit: Unit::None,
                    series: untimed,
                },
            ])
        }

        fn lost(&self) -> anyhow::Result<u64> {
            self.0.iter().map(|(_, m)| m.lost()).sum()
        }
    }

    /// Loads and attaches the object for one kind; returns its maps, plan name and what keeps
    /// it attached.
    fn load_kind(
        ctx: &Ctx,
        kind: &str,
        kallsyms: &Kallsyms,
    ) -> anyhow::Result<(ExportMaps, &'static str, Box<dyn std::any::Any + Send>)> {
        kind_name_ok(kind).map_err(|why| usage!("--qdisc-kinds: {why}"))?;
        let what = format!("qdisc {kind}");
        match kind_available_in(kind, &osrelease(), kallsyms, Path::new("/lib/modules")) {
            Ok(Availability::Present) => {}
            Ok(Availability::ModuleNotLoaded(module)) => eprintln!(
                "netbpf exporter: qdisc: {} is a module that is not loaded, so no {kind} qdisc \
                 exists yet; its packets are timed once one is created",
                module.display()
            ),
            Err(why) => return Err(Unsupported::new(&what, why).into()),
        }
        let plan = crate::core::export::select(TOOL.name, TOOL.plans)?;
        let traced = choose(kind, plan, kallsyms, &what)?;
        let (skel, links) = load_attached(TOOL.name, kind, &traced, &ctx.filters, |rodata| {
            crate::export_rodata!(&mut *rodata, ctx);
        })?;
        let maps = skel.export_maps(ctx)?;
        Ok((maps, traced.plan.name, Box::new((skel, links))))
    }

    pub fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
        let names: Vec<&str> = ctx.qdisc_kinds.iter().map(String::as_str).collect();
        let kallsyms = kind_symbols(&names);
        let mut kinds = Vec::new();
        let mut plans = Vec::new();
        let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
        for (i, kind) in ctx.qdisc_kinds.iter().enumerate() {
            if ctx.qdisc_kinds[..i].contains(kind) {
                return Err(usage!("--qdisc-kinds: '{kind}' is listed twice"));
            }
            let (maps, plan, alive) = load_kind(ctx, kind, &kallsyms)?;
            kinds.push((kind.clone(), maps));
            plans.push(format!("{kind}:{plan}"));
            keep.push(alive);
        }
        Ok(Loaded {
            source: Box::new(Latency(kinds)),
            plan: plans.join(","),
            keepalive: Box::new(keep),
        })
    }
}
