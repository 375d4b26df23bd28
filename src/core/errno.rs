//! errno names, so results read "ECONNREFUSED" rather than -111; also the kernel-internal codes
//! (ERESTARTSYS, ...) that syscall exit tracepoints can see.

/// The symbolic name of a Linux errno (positive), or None when unknown.
pub fn name(errno: i64) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        10 => "ECHILD",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        15 => "ENOTBLK",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        25 => "ENOTTY",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        29 => "ESPIPE",
        30 => "EROFS",
        31 => "EMLINK",
        32 => "EPIPE",
        33 => "EDOM",
        34 => "ERANGE",
        35 => "EDEADLK",
        36 => "ENAMETOOLONG",
        37 => "ENOLCK",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        40 => "ELOOP",
        42 => "ENOMSG",
        43 => "EIDRM",
        44 => "ECHRNG",
        45 => "EL2NSYNC",
        46 => "EL3HLT",
        47 => "EL3RST",
        48 => "ELNRNG",
        49 => "EUNATCH",
        50 => "ENOCSI",
        51 => "EL2HLT",
        52 => "EBADE",
        53 => "EBADR",
        54 => "EXFULL",
        55 => "ENOANO",
        56 => "EBADRQC",
        57 => "EBADSLT",
        59 => "EBFONT",
        60 => "ENOSTR",
        61 => "ENODATA",
        62 => "ETIME",
        63 => "ENOSR",
        64 => "ENONET",
        65 => "ENOPKG",
        66 => "EREMOTE",
        67 => "ENOLINK",
        68 => "EADV",
        69 => "ESRMNT",
        70 => "ECOMM",
        71 => "EPROTO",
        72 => "EMULTIHOP",
        73 => "EDOTDOT",
        74 => "EBADMSG",
        75 => "EOVERFLOW",
        76 => "ENOTUNIQ",
        77 => "EBADFD",
        78 => "EREMCHG",
        79 => "ELIBACC",
        80 => "ELIBBAD",
        81 => "ELIBSCN",
        82 => "ELIBMAX",
        83 => "ELIBEXEC",
        84 => "EILSEQ",
        85 => "ERESTART",
        86 => "ESTRPIPE",
        87 => "EUSERS",
        88 => "ENOTSOCK",
        89 => "EDESTADDRREQ",
        90 => "EMSGSIZE",
        91 => "EPROTOTYPE",
        92 => "ENOPROTOOPT",
        93 => "EPROTONOSUPPORT",
        94 => "ESOCKTNOSUPPORT",
        95 => "EOPNOTSUPP",
        96 => "EPFNOSUPPORT",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        100 => "ENETDOWN",
        101 => "ENETUNREACH",
        102 => "ENETRESET",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        105 => "ENOBUFS",
        106 => "EISCONN",
        107 => "ENOTCONN",
        108 => "ESHUTDOWN",
        109 => "ETOOMANYREFS",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        112 => "EHOSTDOWN",
        113 => "EHOSTUNREACH",
        114 => "EALREADY",
        115 => "EINPROGRESS",
        116 => "ESTALE",
        117 => "EUCLEAN",
        118 => "ENOTNAM",
        119 => "ENAVAIL",
        120 => "EISNAM",
        121 => "EREMOTEIO",
        122 => "EDQUOT",
        123 => "ENOMEDIUM",
        124 => "EMEDIUMTYPE",
        125 => "ECANCELED",
        126 => "ENOKEY",
        127 => "EKEYEXPIRED",
        128 => "EKEYREVOKED",
        129 => "EKEYREJECTED",
        130 => "EOWNERDEAD",
        131 => "ENOTRECOVERABLE",
        132 => "ERFKILL",
        133 => "EHWPOISON",
        // Kernel-internal codes (include/linux/errno.h): a syscall's exit tracepoint sees them
        // before the kernel restarts the call or turns them into EINTR.
        512 => "ERESTARTSYS",
        513 => "ERESTARTNOINTR",
        514 => "ERESTARTNOHAND",
        515 => "ENOIOCTLCMD",
        516 => "ERESTART_RESTARTBLOCK",
        517 => "EPROBE_DEFER",
        518 => "EOPENSTALE",
        519 => "ENOPARAM",
        521 => "EBADHANDLE",
        522 => "ENOTSYNC",
        523 => "EBADCOOKIE",
        524 => "ENOTSUPP",
        525 => "ETOOSMALL",
        526 => "ESERVERFAULT",
        527 => "EBADTYPE",
        528 => "EJUKEBOX",
        529 => "EIOCBQUEUED",
        530 => "ERECALLCONFLICT",
        531 => "ENOGRACE",
        _ => return None,
    })
}

/// The kernel's own "not supported" (not EOPNOTSUPP): BPF syscalls return it for an operation a
/// map type or program lacks on this kernel, and no io::ErrorKind stands for it.
pub const ENOTSUPP: i32 = 524;

/// The errno a libbpf error carries, context layers included ("... (os error N)": libbpf-rs
/// keeps the io::Error itself private).
pub fn of(e: &libbpf_rs::Error) -> Option<i32> {
    let text = format!("{e:#}");
    let (_, tail) = text.rsplit_once("(os error ")?;
    tail.split_once(')')?.0.parse().ok()
}

/// Whether the kernel refused an operation as not supported: EOPNOTSUPP or ENOTSUPP.
pub fn not_supported(e: &libbpf_rs::Error) -> bool {
    e.kind() == libbpf_rs::ErrorKind::Unsupported || of(e) == Some(ENOTSUPP)
}

/// "Success" for 0, the errno's name for -errno or errno, the number otherwise.
pub fn result(ret: i64) -> String {
    if ret == 0 {
        return "Success".to_string();
    }
    name(ret.abs())
        .map(str::to_string)
        .unwrap_or_else(|| ret.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::result(0), "Success");
        assert_eq!(super::result(-111), "ECONNREFUSED");
        assert_eq!(super::result(-115), "EINPROGRESS");
        assert_eq!(super::result(-11), "EAGAIN");
        assert_eq!(super::result(-512), "ERESTARTSYS");
        assert_eq!(super::result(-516), "ERESTART_RESTARTBLOCK");
        assert_eq!(super::result(-133), "EHWPOISON");
        assert_eq!(super::result(-520), "-520");
        assert_eq!(super::result(-999), "-999");
    }

    #[test]
    fn not_supported() {
        use libbpf_rs::{Error, ErrorExt as _};
        let enotsupp = Error::from_raw_os_error(super::ENOTSUPP);
        assert_eq!(super::of(&enotsupp), Some(524));
        assert!(super::not_supported(&enotsupp));
        assert!(super::not_supported(&enotsupp.context("lookup_and_delete")));
        assert!(super::not_supported(&Error::from_raw_os_error(95))); // EOPNOTSUPP
        assert!(!super::not_supported(&Error::from_raw_os_error(22)));
    }
}
