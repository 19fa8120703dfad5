//! `nsctl exec NAME CMD...` done as `ip netns exec` does it: this process
//! enters the namespace, makes its own mount namespace, remounts `/sys`,
//! binds `/etc/netns/NAME/*` over `/etc`, and then *becomes* the command
//! (`execvp`). The command therefore has nsctl's pid, parent, fds, signal
//! dispositions, environment and working directory, and its exit status or
//! signal is what the shell sees: exactly as with ip, at ip's cost.
//!
//! This runs from `main` before any runtime or thread exists: nsctl is then
//! a single-threaded process that is about to exec, so switching its
//! namespaces is switching the command's, and nothing of nsctl's survives
//! the exec to run in the wrong namespace. No fork is involved. Every fd
//! opened here is an `OwnedFd` opened close-on-exec.
//!
//! `-all exec` needs one process per namespace (ip forks one). nsctl starts
//! itself again instead (`posix_spawn` of `/proc/self/exe` with
//! [`CHILD_ARG`], which keeps the signal mask and ignored signals as a fork
//! does), and each such child does the above for one namespace; the parent
//! prints ip's `netns: NAME` header before each and waits for that pid.
//!
//! SIGPIPE: Rust's start-up code ignores it before `main`; an `.init_array`
//! function records how nsctl found it, and the command gets it back so.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr, OsString, c_char, c_int};
use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::{SigHandler, SigSet, Signal, signal};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::Error;

/// The hidden first argument that makes nsctl the per-namespace child of
/// `-all exec`: `nsctl --nsctl-all-exec-child NAME CMD...`.
pub(crate) const CHILD_ARG: &str = "--nsctl-all-exec-child";

/// [`CHILD_ARG`] for a parent in rootless mode (`--user` as root): the
/// child works in rootless mode too.
pub(crate) const CHILD_ARG_USER: &str = "--nsctl-all-exec-child-user";

/// Whether SIGPIPE was ignored when nsctl started, before Rust's start-up
/// code set it to ignored: read by [`record_sigpipe`], given back to the
/// command by [`exec_program`], so the command gets it as ip would pass it.
static SIGPIPE_IGNORED_AT_START: AtomicBool = AtomicBool::new(false);

/// Records SIGPIPE's disposition. Called from `.init_array`, before Rust's
/// runtime start-up (which runs in `main`) changes it.
extern "C" fn record_sigpipe(
    _argc: c_int,
    _argv: *const *const c_char,
    _envp: *const *const c_char,
) {
    // SAFETY: `sigaction` is plain data (integers, a mask, a pointer):
    // all-zero bytes are a valid value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: with a null new action, sigaction only writes the current
    // disposition into `old`, which is valid and writable.
    if unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) } == 0 {
        SIGPIPE_IGNORED_AT_START.store(old.sa_sigaction == libc::SIG_IGN, Ordering::Relaxed);
    }
}

#[used]
// SAFETY: `.init_array` holds `extern "C" fn(argc, argv, envp)` pointers; this
// is one, it does not unwind and depends on nothing `main` sets up.
#[unsafe(link_section = ".init_array")]
static RECORD_SIGPIPE: extern "C" fn(c_int, *const *const c_char, *const *const c_char) =
    record_sigpipe;

/// iproute2's `NETNS_ETC_DIR`.
const ETC_NETNS_DIR: &str = "/etc/netns";

/// Enters namespace `name` as `ip netns exec` does and execs `argv`. Returns
/// only on failure, with the error to report (the exit code is the error's:
/// 255 for a failed setup, 1 for a failed exec, as ip).
pub(crate) fn exec(name: &OsStr, argv: &[OsString]) -> Error {
    let name_text = name.to_string_lossy().into_owned();
    let _ = io::stdout().flush();
    if let Err(e) = switch(name, &name_text) {
        return e;
    }
    exec_program(argv)
}

/// iproute2's `netns_switch`: setns, unshare(CLONE_NEWNS), `/` made a
/// recursive slave, `/sys` remounted, `/etc/netns/NAME/*` bound over `/etc`.
fn switch(name: &OsStr, name_text: &str) -> Result<(), Error> {
    let path = crate::cmd::run_dir_path().join(name);
    // ip opens any file here: a file that is not a namespace fails in setns.
    let netns: OwnedFd = fs::File::open(&path)
        .map_err(|source| Error::OpenNamed {
            name: name_text.into(),
            code: 255,
            source,
        })?
        .into();
    // Rootless: enter the namespace's own user namespace first (this
    // process is still single-threaded, as the kernel requires).
    if !nsfs::privileged()
        && let Ok(ns) =
            nsfs::NetNs::from_fd(netns.try_clone().map_err(|source| Error::OpenNamed {
                name: name_text.into(),
                code: 255,
                source,
            })?)
        && let Ok(userns) = ns.owner_user_ns()
    {
        setns(&userns, CloneFlags::CLONE_NEWUSER).map_err(|e| Error::Enter {
            name: name_text.into(),
            source: e.into(),
        })?;
    }
    setns(&netns, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Enter {
        name: name_text.into(),
        source: e.into(),
    })?;
    drop(netns);
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| Error::Unshare { source: e.into() })?;
    // Don't let any mounts propagate back to the parent.
    mount(
        Some(""),
        "/",
        Some("none"),
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| Error::MakeSlave { source: e.into() })?;
    // A read-only /sys gets a read-only sysfs; if /sys cannot be unmounted
    // (nothing mounted there, or a locked mount), the new one goes on top,
    // and a read-only instance cannot be shadowed by a read-write one.
    let mut flags = MsFlags::empty();
    let read_only = || statvfs("/sys").is_ok_and(|st| st.flags().contains(FsFlags::ST_RDONLY));
    if read_only() {
        flags |= MsFlags::MS_RDONLY;
    }
    if umount2("/sys", MntFlags::MNT_DETACH).is_err() && read_only() {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(Some(name), "/sys", Some("sysfs"), flags, None::<&str>)
        .map_err(|e| Error::MountSys { source: e.into() })?;
    bind_etc(name);
    Ok(())
}

/// iproute2's `bind_etc`: each entry of `/etc/netns/NAME` bound over the
/// file of the same name in `/etc`; a failure is reported and skipped. ip
/// binds nothing for a name of 255 bytes or more (its buffer's limit).
fn bind_etc(name: &OsStr) {
    if name.len() >= nsfs::NAME_MAX {
        return;
    }
    let dir = Path::new(ETC_NETNS_DIR).join(name);
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let src = dir.join(entry.file_name());
        let dst = Path::new("/etc").join(entry.file_name());
        if let Err(e) = mount(
            Some(&src),
            &dst,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            eprintln!(
                "Bind {} -> {} failed: {}",
                src.display(),
                dst.display(),
                e.desc()
            );
        }
    }
}

/// Replaces this process with `argv` (searched in `PATH`, as `execvp`).
/// Returns only if that fails.
fn exec_program(argv: &[OsString]) -> Error {
    let program = argv[0].to_string_lossy().into_owned();
    let exec_error = |source: io::Error| Error::Exec {
        program: program.clone(),
        source,
    };
    // Arguments come from our own argv: they hold no NUL.
    let Ok(args) = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return exec_error(io::Error::from_raw_os_error(libc::EINVAL));
    };
    // Rust's start-up code ignores SIGPIPE; ip leaves it as it found it:
    // give it back as nsctl found it. Other signals are as nsctl inherited
    // them: nsctl installed no handler.
    let found = if SIGPIPE_IGNORED_AT_START.load(Ordering::Relaxed) {
        SigHandler::SigIgn
    } else {
        SigHandler::SigDfl
    };
    // SAFETY: SIG_DFL / SIG_IGN install no code of ours; nothing else runs
    // in this single-threaded process, which is about to exec or exit.
    let _ = unsafe { signal(Signal::SIGPIPE, found) };
    let err = match nix::unistd::execvp(&args[0], &args) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    // SAFETY: as above: back to Rust's setting for nsctl's own writes.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    exec_error(err.into())
}

/// The `-all exec` child (`nsctl CHILD_ARG NAME CMD...`): runs `CMD` in
/// `NAME` like `exec`.
pub(crate) fn child_main(args: &[OsString]) -> ExitCode {
    match args {
        [name, argv @ ..] if !argv.is_empty() => fail(exec(name, argv)),
        _ => fail(Error::MissingCommand),
    }
}

fn fail(e: Error) -> ExitCode {
    eprintln!("{}", e.ip_line());
    ExitCode::from(e.exit_code())
}

/// `nsctl -all exec CMD...` as ip runs it: for each run-directory entry,
/// `netns: NAME` and the command run in that namespace by a child of ours
/// (ip forks; nsctl starts itself again). A command that fails, or a
/// namespace that cannot be entered, does not stop the loop; a command
/// killed by a signal does (exit 1), as in ip.
pub(crate) fn exec_all(argv: &[OsString]) -> Result<u8, Error> {
    for name in crate::cmd::foreach_entries()? {
        println!("\nnetns: {name}");
        let _ = io::stdout().flush();
        match spawn_child(&name, argv).and_then(wait_child) {
            Err(source) => {
                eprintln!(
                    "{}",
                    Error::Exec {
                        program: "/proc/self/exe".into(),
                        source
                    }
                );
                return Ok(1);
            }
            Ok(WaitStatus::Exited(..)) => {}
            // Killed: ip gives up.
            Ok(_) => return Ok(1),
        }
    }
    Ok(0)
}

/// Starts `nsctl CHILD_ARG NAME CMD...` with posix_spawn, as ip's fork
/// would leave the child: the same signal mask and ignored signals (so not
/// `std::process::Command`, which clears the mask and resets SIGPIPE),
/// SIGPIPE as nsctl found it, the same fds and environment.
fn spawn_child(name: &str, argv: &[OsString]) -> io::Result<Pid> {
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL));
    let argv0 = std::env::args_os().next().unwrap_or_else(|| "nsctl".into());
    let mut args = vec![
        cstr(argv0.as_bytes())?,
        cstr(
            if nsfs::privileged() {
                CHILD_ARG
            } else {
                CHILD_ARG_USER
            }
            .as_bytes(),
        )?,
        cstr(name.as_bytes())?,
    ];
    for a in argv {
        args.push(cstr(a.as_bytes())?);
    }
    let env = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstr(&kv)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut attr = PosixSpawnAttr::init()?;
    if !SIGPIPE_IGNORED_AT_START.load(Ordering::Relaxed) {
        let mut pipe = SigSet::empty();
        pipe.add(Signal::SIGPIPE);
        attr.set_sigdefault(&pipe)?;
        attr.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF)?;
    }
    let actions = PosixSpawnFileActions::init()?;
    Ok(posix_spawn(
        Path::new("/proc/self/exe"),
        &actions,
        &attr,
        &args,
        &env,
    )?)
}

/// Waits for our child `pid` (that pid only, never any child).
fn wait_child(pid: Pid) -> io::Result<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Ok(status),
            Ok(_) => continue,
        }
    }
}
