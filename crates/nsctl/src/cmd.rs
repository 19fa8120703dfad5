//! The subcommands. Each prints what ip prints and returns ip's exit code.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use futures::StreamExt;
use netns::netlink_packet_route::link::{LinkAttribute, LinkInfo};
use netns::{Handle, Nsid, Target};
use nsfs::{DEFAULT_RUN_DIR, NetNs, NsName, OpenMode, RunDir};
use serde::Serialize;

use crate::cli::{Cli, Command, parse_c_int};
use crate::error::{Error, Result, dump_line};
use crate::json::{self, Style};

/// An nsfs error as the io error ip would have seen.
fn io_of(e: nsfs::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::other(e),
    }
}

/// `/run/netns`; in rootless mode (not privileged), the user's own run
/// directory (see docs/rootless.md).
pub(crate) fn run_dir_path() -> &'static Path {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        if nsfs::privileged() {
            PathBuf::from(DEFAULT_RUN_DIR)
        } else {
            RunDir::default().path().to_owned()
        }
    })
}

fn entry_path(name: &str) -> PathBuf {
    run_dir_path().join(name)
}

/// The run directory's entries in directory order, as ip's `readdir` loop
/// sees them (names that are not UTF-8 are skipped).
fn entries() -> Vec<String> {
    read_entries().unwrap_or_default()
}

/// [`entries`], or `None` if the directory cannot be opened (ip's `list`
/// then prints nothing at all, not even an empty JSON array).
fn read_entries() -> Option<Vec<String>> {
    let read = fs::read_dir(run_dir_path()).ok()?;
    Some(
        read.filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect(),
    )
}

/// The run directory's entries for `-all` (ip's `netns_foreach`): none if
/// it does not exist, an error if it cannot be read otherwise.
pub(crate) fn foreach_entries() -> Result<Vec<String>> {
    match fs::read_dir(run_dir_path()) {
        Ok(read) => Ok(read
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(Error::ForeachDir {
            path: run_dir_path().into(),
            source,
        }),
    }
}

fn flush() {
    let _ = io::stdout().flush();
}

/// Runs the parsed command line; returns the exit code (`Ok`), or why it
/// failed.
pub(crate) async fn run(cli: Cli) -> Result {
    let style = Style {
        json: cli.json,
        pretty: cli.pretty,
    };
    let Some(command) = cli.command else {
        return list(style).await;
    };
    match command {
        Command::List { .. } => list(style).await,
        Command::ListId { args } => list_id(style, &args).await,
        Command::Help { .. } => {
            let _ = Cli::command().print_long_help();
            Ok(0)
        }
        Command::Add { name, .. } => add(name).await,
        Command::Set { name, nsid, .. } => set(name, nsid).await,
        Command::Delete { name, .. } => delete(cli.all, name).await,
        Command::Identify { pid, extra } => identify(pid, &extra),
        Command::Pids { name, extra } => pids(name, &extra).await,
        Command::Exec {
            fast: true,
            name,
            command,
        } => exec_fast(cli.all, name, command).await,
        // main runs it before starting the runtime.
        Command::Exec { fast: false, .. } => unreachable!("ip-style exec runs in main"),
        Command::Monitor { .. } => monitor().await,
        Command::Attach { name, pid, .. } => attach(name, pid).await,
        Command::Links { name, .. } => links(style, name).await,
        Command::Topo { command } => crate::topo::run(style, command).await,
    }
}

// ---------------------------------------------------------------- nsids

/// A netlink handle in nsctl's own namespace, for namespace ids.
async fn own_handle() -> netns::Result<Handle> {
    let me = NetNs::current_thread()?;
    Handle::open(Target::NetNs(me), OpenMode::OpenOnly).await
}

/// Opens a run-directory entry as ip's `netns_get_fd` does (any file), then
/// as a namespace. `Ok(None)`: the file is not a namespace (stale entry).
fn open_entry(name: &str) -> io::Result<Option<NetNs>> {
    let file = fs::File::open(entry_path(name))?;
    Ok(NetNs::from_fd(OwnedFd::from(file)).ok())
}

/// ip's `get_netnsid_from_name`: the id `handle`'s namespace has for the
/// namespace named `name`; errors are printed as ip prints them.
async fn nsid_of_name(handle: &Handle, name: &str) -> Option<i32> {
    match open_entry(name) {
        Err(_) => None,
        Ok(None) => {
            eprintln!("{}", Error::PeerInvalid { name: name.into() });
            None
        }
        Ok(Some(ns)) => match handle.nsid(Target::NetNs(ns)).await {
            Ok(id) => id,
            Err(source) => {
                eprintln!("{}", Error::Netlink { source }.ip_line());
                None
            }
        },
    }
}

/// ip's name cache (`netns_map_init`): nsid -> first name with that id.
async fn nsid_map(handle: &Handle) -> Vec<(i32, String)> {
    let mut map: Vec<(i32, String)> = Vec::new();
    for name in entries() {
        if let Some(id) = nsid_of_name(handle, &name).await
            && !map.iter().any(|(i, _)| *i == id)
        {
            map.push((id, name));
        }
    }
    map
}

// ---------------------------------------------------------------- list

#[derive(Serialize)]
struct ListEntry {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i32>,
}

async fn list(style: Style) -> Result {
    let handle = own_handle().await.ok();
    if let Some(h) = &handle {
        // ip builds its name cache first (which reports stale entries once
        // more), then lists.
        nsid_map(h).await;
    }
    let Some(names) = read_entries() else {
        return Ok(0);
    };
    let mut out = Vec::new();
    for name in names {
        let id = match &handle {
            Some(h) => nsid_of_name(h, &name).await,
            None => None,
        };
        if !style.json {
            match id {
                Some(id) => println!("{name} (id: {id})"),
                None => println!("{name}"),
            }
        }
        out.push(ListEntry { name, id });
    }
    if style.json {
        print!("{}", json::render(&out, style.pretty));
    }
    Ok(0)
}

// ---------------------------------------------------------------- list-id

#[derive(Serialize)]
struct NsidLine {
    /// NETNSA_NSID as sent (negative: unassigned).
    #[serde(skip)]
    raw_nsid: i32,
    /// NETNSA_CURRENT_NSID as sent, if it was (negative: unassigned).
    #[serde(skip)]
    raw_current: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nsid: Option<i32>,
    #[serde(rename = "current-nsid", skip_serializing_if = "Option::is_none")]
    current: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// ip's usage text, for nsctl.
pub(crate) const USAGE: &str = "\
Usage:\tnsctl list
\tnsctl add NAME
\tnsctl attach NAME PID
\tnsctl set NAME NETNSID
\tnsctl [-all] delete [NAME]
\tnsctl identify [PID]
\tnsctl pids NAME
\tnsctl [-all] exec [NAME] cmd ...
\tnsctl monitor
\tnsctl list-id [target-nsid POSITIVE-INT] [nsid POSITIVE-INT]
NETNSID := auto | POSITIVE-INT";

async fn list_id(style: Style, args: &[String]) -> Result {
    let mut target: Option<i32> = None;
    let mut nsid: Option<i32> = None;
    let mut i = 0;
    while i < args.len() {
        let key = args[i].as_str();
        let slot = match key {
            "target-nsid" => &mut target,
            "nsid" => &mut nsid,
            _ => return Err(Error::Usage),
        };
        if slot.is_some() {
            return Err(Error::Duplicate { key: key.into() });
        }
        let Some(value) = args.get(i + 1) else {
            return Err(Error::Incomplete);
        };
        match parse_c_int(value) {
            None => {
                return Err(Error::Argument {
                    arg: value.clone(),
                    what: format!("\"{key}\" value is invalid"),
                });
            }
            Some(v) if v < 0 => {
                // ip names the argument after the value here (or "(null)").
                let next = args.get(i + 2).map_or("(null)", String::as_str);
                return Err(Error::Argument {
                    arg: next.into(),
                    what: format!("\"{key}\" value should be >= 0"),
                });
            }
            Some(v) => *slot = Some(v),
        }
        i += 2;
    }
    let handle = own_handle()
        .await
        .map_err(|source| Error::Rtnetlink { source })?;
    let mut map = nsid_map(&handle).await;

    let mut request = handle.nsid_list().names(false);
    if let Some(n) = nsid {
        request = request.nsid(n);
    }
    if let Some(t) = target {
        request = request.target_nsid(t);
    }
    let dump = nsid.is_none();
    let entries = match request.execute().await {
        Ok(entries) => entries,
        // A dump that fails (a target id naming no namespace) reports it in
        // its NLMSG_DONE, which the facade surfaces; ip prints what it had
        // (nothing) and its verdict.
        Err(source) if dump => {
            if style.json {
                print!("{}", json::render(&Vec::<NsidLine>::new(), style.pretty));
            }
            let message = source.kernel_message().unwrap_or_default();
            let errno = source.raw_os_error().unwrap_or(libc::EIO);
            return Err(Error::Dump {
                line: dump_line(&message, errno),
            });
        }
        Err(source) => return Err(Error::Netlink { source }),
    };
    let mut lines = Vec::new();
    for entry in &entries {
        lines.push(nsid_line(&handle, &mut map, entry).await);
    }
    if style.json {
        print!("{}", json::render(&lines, style.pretty));
    } else {
        for line in &lines {
            let mut text = String::new();
            match line.raw_nsid {
                n if n >= 0 => text.push_str(&format!("nsid {n} ")),
                _ => text.push_str("nsid unassigned "),
            }
            match line.raw_current {
                Some(c) if c >= 0 => text.push_str(&format!("current-nsid {c} ")),
                Some(_) => text.push_str("current-nsid unassigned "),
                None => {}
            }
            if let Some(name) = &line.name {
                text.push_str(&format!("(iproute2 netns name: {name})"));
            }
            println!("{text}");
        }
    }
    Ok(0)
}

/// One `list-id` line, naming the namespace as ip's `print_nsid` does.
async fn nsid_line(
    handle: &Handle,
    map: &mut Vec<(i32, String)>,
    entry: &netns::NsidEntry,
) -> NsidLine {
    let nsid = entry.nsid;
    let current = entry.current_nsid;
    let lookup = current.unwrap_or(nsid);
    let mut name = None;
    if lookup >= 0
        && let Some(pos) = map.iter().position(|(i, _)| *i == lookup)
    {
        name = Some(map.remove(pos).1);
    }
    if name.is_none() && nsid >= 0 {
        // Not in the cache: look for a name with this id (ip uses `nsid`,
        // not `current-nsid`, here).
        for entry in entries() {
            if nsid_of_name(handle, &entry).await == Some(nsid) {
                map.push((nsid, entry.clone()));
                name = Some(entry);
                break;
            }
        }
    }
    NsidLine {
        raw_nsid: nsid,
        raw_current: current,
        nsid: (nsid >= 0).then_some(nsid),
        current: current.filter(|n| *n >= 0),
        name,
    }
}

// ---------------------------------------------------------------- add / attach / delete

/// An nsfs failure to make an entry (`add`, `attach`) in ip's words.
fn create_error(name: &str, path: &Path, e: nsfs::Error) -> Error {
    match e {
        nsfs::Error::AlreadyExists { path } => Error::CreateEntry {
            path,
            source: io::Error::from_raw_os_error(libc::EEXIST),
        },
        nsfs::Error::PrepareRunDir { path, source } => Error::PrepareRunDir { path, source },
        nsfs::Error::Create {
            step: "create entry",
            source,
            ..
        }
        | nsfs::Error::Attach {
            step: "create entry",
            source,
            ..
        } => Error::CreateEntry {
            path: path.into(),
            source,
        },
        other => Error::Create {
            name: name.into(),
            source: io_of(other),
        },
    }
}

fn valid_name(name: &str) -> Result<NsName> {
    NsName::new(name).map_err(|_| Error::InvalidName { name: name.into() })
}

/// ip's first steps of `add` and `attach`, for ip's words when they fail:
/// make the run directory (an existing one is fine), then open it (ip locks
/// it). nsfs then prepares it as ip does.
fn prepare_run_dir() -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = run_dir_path();
    match fs::DirBuilder::new().mode(0o755).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(Error::MakeRunDir {
                path: dir.into(),
                source: e,
            });
        }
        _ => {}
    }
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|source| Error::OpenRunDir {
            path: dir.into(),
            source,
        })?;
    Ok(())
}

async fn add(name: Option<String>) -> Result {
    let name = name.ok_or(Error::MissingName)?;
    let ns_name = valid_name(&name)?;
    let path = entry_path(&name);
    prepare_run_dir()?;
    if !nsfs::privileged() {
        return add_rootless(&name, &ns_name, &path).await;
    }
    match RunDir::default()
        .create(&ns_name, OpenMode::CreateExclusive)
        .await
    {
        Ok(_) => Ok(0),
        Err(e) => Err(create_error(&name, &path, e)),
    }
}

/// `add` without root: a detached user-namespace agent makes the namespace
/// and holds it after nsctl exits, until the name is deleted.
async fn add_rootless(name: &str, ns_name: &NsName, path: &Path) -> Result {
    if fs::symlink_metadata(path).is_ok() {
        return Err(Error::CreateEntry {
            path: path.into(),
            source: io::Error::from_raw_os_error(libc::EEXIST),
        });
    }
    let made = async {
        netns::UserNs::detached(RunDir::default())
            .await?
            .create(ns_name)
            .await
    };
    match made.await {
        Ok(_) => Ok(0),
        Err(netns::Error::Namespace(e)) => Err(create_error(name, path, e)),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(Error::CreateEntry {
            path: path.into(),
            source: io::Error::from_raw_os_error(libc::EEXIST),
        }),
        Err(e) => Err(Error::Create {
            name: name.into(),
            source: e.into(),
        }),
    }
}

async fn attach(name: Option<String>, pid: Option<String>) -> Result {
    let (Some(name), Some(pid_text)) = (name, pid) else {
        return Err(Error::MissingNameAndPid);
    };
    let pid = match parse_c_int(&pid_text) {
        Some(p) if p != 0 => p,
        _ => return Err(Error::AttachPid { pid: pid_text }),
    };
    let ns_name = valid_name(&name)?;
    let path = entry_path(&name);
    prepare_run_dir()?;
    // ip creates the entry before it looks at the process.
    if fs::symlink_metadata(&path).is_ok() {
        return Err(Error::CreateEntry {
            path,
            source: io::Error::from_raw_os_error(libc::EEXIST),
        });
    }
    if !nsfs::privileged() {
        return attach_rootless(&ns_name, pid, path).await;
    }
    match RunDir::default().attach(&ns_name, pid).await {
        Ok(_) => Ok(0),
        Err(nsfs::Error::NoSuchProcess { .. }) => Err(Error::Attach {
            pid,
            path,
            source: io::Error::from_raw_os_error(libc::ENOENT),
        }),
        Err(nsfs::Error::Attach { step, source, .. }) if step != "create entry" => {
            Err(Error::Attach { pid, path, source })
        }
        Err(
            e @ (nsfs::Error::AlreadyExists { .. }
            | nsfs::Error::PrepareRunDir { .. }
            | nsfs::Error::Attach { .. }),
        ) => Err(create_error(&name, &path, e)),
        // Opening the process's namespace failed: ip finds out when it
        // binds it.
        Err(e) => Err(Error::Attach {
            pid,
            path,
            source: io_of(e),
        }),
    }
}

/// `attach` without root: the process's namespace, opened here, is held
/// and named by a detached user-namespace agent (as `add` names a new one),
/// after nsctl exits, until the name is deleted. Nothing is started when
/// the namespace cannot be opened.
async fn attach_rootless(ns_name: &NsName, pid: i32, path: PathBuf) -> Result {
    let ns = match NetNs::from_pid(pid) {
        Ok(ns) => ns,
        Err(nsfs::Error::NoSuchProcess { .. }) => {
            return Err(Error::Attach {
                pid,
                path,
                source: io::Error::from_raw_os_error(libc::ENOENT),
            });
        }
        Err(e) => {
            return Err(Error::Attach {
                pid,
                path,
                source: io_of(e),
            });
        }
    };
    let named = async {
        netns::UserNs::detached(RunDir::default())
            .await?
            .name_netns(ns_name, &ns)
            .await
    };
    match named.await {
        Ok(()) => Ok(0),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(Error::CreateEntry {
            path,
            source: io::Error::from_raw_os_error(libc::EEXIST),
        }),
        Err(e) => Err(Error::Attach {
            pid,
            path,
            source: e.into(),
        }),
    }
}

async fn remove_one(name: &str) -> Result<()> {
    let path = entry_path(name);
    let removed = match NsName::new(name) {
        Ok(n) => RunDir::default().remove(&n).await,
        Err(e) => Err(e),
    };
    removed.map_err(|e| Error::Remove {
        path,
        source: io_of(e),
    })
}

async fn delete(all: bool, name: Option<String>) -> Result {
    if all {
        // ip stops at the first failure, and exits 0 all the same.
        for entry in foreach_entries()? {
            if let Err(e) = remove_one(&entry).await {
                eprintln!("{}", e.ip_line());
                break;
            }
        }
        return Ok(0);
    }
    let name = name.ok_or(Error::MissingName)?;
    remove_one(&name).await.map(|()| 0)
}

// ---------------------------------------------------------------- set

async fn set(name: Option<String>, nsid: Option<String>) -> Result {
    let name = name.ok_or(Error::MissingName)?;
    let value = nsid.ok_or(Error::MissingNsid)?;
    let id = if value == "auto" {
        Nsid::Auto
    } else {
        match parse_c_int(&value) {
            None => {
                return Err(Error::Argument {
                    arg: value,
                    what: "Invalid \"netnsid\" value".into(),
                });
            }
            Some(n) if n < 0 => {
                return Err(Error::Argument {
                    arg: value,
                    what: "\"netnsid\" value should be >= 0".into(),
                });
            }
            Some(n) => Nsid::Id(n),
        }
    };
    let ns = match open_entry(&name) {
        Err(source) => {
            return Err(Error::OpenNamed {
                name,
                code: 1,
                source,
            });
        }
        Ok(None) => return Err(Error::PeerInvalid { name }),
        Ok(Some(ns)) => ns,
    };
    let handle = own_handle()
        .await
        .map_err(|source| Error::Rtnetlink { source })?;
    match handle.set_nsid(Target::NetNs(ns), id).await {
        Ok(_) => Ok(0),
        Err(source) => Err(Error::Netlink { source }),
    }
}

// ---------------------------------------------------------------- identify / pids

fn identify(pid: Option<String>, extra: &[String]) -> Result {
    if !extra.is_empty() {
        return Err(Error::ExtraArguments);
    }
    let enoent = || Error::Open {
        source: io::Error::from_raw_os_error(libc::ENOENT),
    };
    let target = match pid {
        None => nsfs::Target::NetNs(
            NetNs::current_thread().map_err(|e| Error::Open { source: io_of(e) })?,
        ),
        Some(p) => {
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::IdentifyPid { pid: p });
            }
            // Digits too many for a pid name no process either.
            nsfs::Target::Pid(p.parse::<i32>().map_err(|_| enoent())?)
        }
    };
    let found = match RunDir::default().identify(target) {
        Ok(found) => found,
        Err(nsfs::Error::NoSuchProcess { .. }) => return Err(enoent()),
        Err(nsfs::Error::Io {
            op: "read directory",
            path,
            source,
        }) => return Err(Error::ReadRunDir { path, source }),
        Err(e) => return Err(Error::Open { source: io_of(e) }),
    };
    // ip prints the last match in directory order.
    let name = entries()
        .into_iter()
        .rfind(|e| found.iter().any(|f| f.as_str() == e))
        .unwrap_or_default();
    println!("{name}");
    Ok(0)
}

async fn pids(name: Option<String>, extra: &[String]) -> Result {
    let name = name.ok_or(Error::MissingName)?;
    if !extra.is_empty() {
        return Err(Error::ExtraArguments);
    }
    match open_entry(&name) {
        Err(source) => return Err(Error::Open { source }),
        // ip compares a plain file with every process: none matches.
        Ok(None) => return Ok(0),
        Ok(Some(_)) => {}
    }
    let ns_name = valid_name(&name)?;
    let mut pids = RunDir::default()
        .pids(&ns_name)
        .await
        .map_err(|e| Error::Open { source: io_of(e) })?;
    pids.sort_unstable();
    let mut out = String::new();
    for pid in pids {
        out.push_str(&format!("{pid}\n"));
    }
    print!("{out}");
    Ok(0)
}

// ---------------------------------------------------------------- exec

/// How a command ended.
enum Ended {
    Code(u8),
    Signal(i32),
}

/// Starts `argv` in namespace `name` on the fast path and waits for it.
async fn run_fast(name: &str, argv: &[OsString]) -> Result<Ended> {
    let ns = match open_entry(name) {
        Err(source) => {
            return Err(Error::OpenNamed {
                name: name.into(),
                code: 255,
                source,
            });
        }
        Ok(None) => {
            return Err(Error::Enter {
                name: name.into(),
                source: io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        Ok(Some(ns)) => ns,
    };
    spawn_and_wait(ns, argv).await
}

/// Spawns `argv` in `ns` with posix_spawn from a namespace thread (the
/// namespace opened once, here) and waits for it, passing SIGTERM and
/// SIGHUP on.
async fn spawn_and_wait(ns: NetNs, argv: &[OsString]) -> Result<Ended> {
    use std::os::unix::process::ExitStatusExt;
    use tokio::signal::unix::{SignalKind, signal};

    let program = argv[0].clone();
    flush();
    let mut command = nsproc::Command::new(&program);
    command.args(&argv[1..]).netns(ns);
    let mut child = command.spawn().await.map_err(|e| {
        let source = match e {
            nsproc::Error::Spawn { source, .. } => source,
            other => other.into(),
        };
        Error::Exec {
            program: program.to_string_lossy().into_owned(),
            source,
        }
    })?;
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    // Registered only so that they do not kill nsctl: the terminal sends them
    // to the command too.
    let _int = signal(SignalKind::interrupt()).ok();
    let _quit = signal(SignalKind::quit()).ok();
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            Some(()) = async { term.as_mut()?.recv().await } => { let _ = child.signal(libc::SIGTERM); }
            Some(()) = async { hup.as_mut()?.recv().await } => { let _ = child.signal(libc::SIGHUP); }
        }
    };
    drop(child);
    let status = status.map_err(|e| Error::Wait { source: e.into() })?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => Ended::Code(code as u8),
        (None, Some(sig)) => Ended::Signal(sig),
        _ => Ended::Code(1),
    })
}

/// `exec --fast` (the ip-style `exec` runs before the runtime starts: see
/// `direct.rs`).
async fn exec_fast(all: bool, name: Option<OsString>, command: Vec<OsString>) -> Result {
    if all {
        let mut argv = command;
        if let Some(first) = name {
            argv.insert(0, first);
        }
        if argv.is_empty() {
            return Err(Error::MissingCommand);
        }
        for entry in foreach_entries()? {
            println!("\nnetns: {entry}");
            match run_fast(&entry, &argv).await {
                Ok(Ended::Code(_)) => {}
                // ip's child reports, ip goes on.
                Err(e) => eprintln!("{}", e.ip_line()),
                // ip gives up when a command is killed.
                Ok(Ended::Signal(_)) => return Ok(1),
            }
        }
        return Ok(0);
    }
    let name = name.ok_or(Error::MissingName)?;
    if command.is_empty() {
        return Err(Error::MissingCommand);
    }
    let name = name.to_string_lossy().into_owned();
    match run_fast(&name, &command).await? {
        Ended::Code(code) => Ok(code),
        Ended::Signal(sig) => Ok(crate::signal::die_of(sig)),
    }
}

// ---------------------------------------------------------------- monitor

async fn monitor() -> Result {
    let mut events = RunDir::default()
        .monitor()
        .map_err(|e| Error::Watch { source: io_of(e) })?;
    // What has been reported, to turn a resync (after lost events) into the
    // lines that were missed.
    let mut known: Vec<String> = RunDir::default()
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.state == nsfs::EntryState::Mounted)
        .map(|e| e.name.into_string())
        .collect();
    while let Some(event) = events.next().await {
        let mut out = io::stdout().lock();
        let written = match event {
            Ok(nsfs::RunDirEvent::Added(name)) => {
                let name = name.into_string();
                let w = writeln!(out, "add {name}");
                if !known.contains(&name) {
                    known.push(name);
                }
                w
            }
            Ok(nsfs::RunDirEvent::Removed(name)) => {
                known.retain(|k| k != name.as_str());
                writeln!(out, "delete {name}")
            }
            Ok(nsfs::RunDirEvent::Resync(now)) => {
                // Events were lost: report the difference.
                let now: Vec<String> = now.into_iter().map(NsName::into_string).collect();
                let mut r = Ok(());
                for gone in known.iter().filter(|k| !now.contains(k)) {
                    r = r.and(writeln!(out, "delete {gone}"));
                }
                for new in now.iter().filter(|n| !known.contains(n)) {
                    r = r.and(writeln!(out, "add {new}"));
                }
                known = now;
                r
            }
            Ok(_) => Ok(()),
            Err(e) => return Err(Error::WatchRead { source: io_of(e) }),
        };
        if written.and_then(|()| out.flush()).is_err() {
            // stdout closed (a pipe's reader went away): stop, as ip would
            // on SIGPIPE.
            return Ok(1);
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------- links

#[derive(Serialize)]
struct LinkLine {
    ifindex: u32,
    ifname: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_netnsid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_netns: Option<String>,
    /// The peer lives in nsctl's own namespace (which has no name).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    link_netns_self: bool,
}

async fn links(style: Style, name: Option<String>) -> Result {
    let name = name.ok_or(Error::MissingName)?;
    let ns = match open_entry(&name) {
        Ok(Some(ns)) => ns,
        Ok(None) => {
            return Err(Error::OpenNamed {
                name,
                code: 1,
                source: io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        Err(source) => {
            return Err(Error::OpenNamed {
                name,
                code: 1,
                source,
            });
        }
    };
    let handle = Handle::open(Target::NetNs(ns), OpenMode::OpenOnly)
        .await
        .map_err(|source| Error::Rtnetlink { source })?;
    let mut dump = handle.rtnetlink().link().get().execute();
    let mut lines = Vec::new();
    while let Some(msg) = dump.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(source) => {
                return Err(Error::Netlink {
                    source: netns::Error::Request {
                        op: "dump links",
                        ns: entry_path(&name),
                        source,
                    },
                });
            }
        };
        let mut line = LinkLine {
            ifindex: msg.header.index,
            ifname: String::new(),
            kind: None,
            link_index: None,
            link_netnsid: None,
            link_netns: None,
            link_netns_self: false,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => line.ifname = n.clone(),
                LinkAttribute::Link(i) => line.link_index = Some(*i),
                LinkAttribute::LinkNetNsId(id) => line.link_netnsid = Some(*id),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            line.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        lines.push(line);
    }
    // The ids are the ones namespace NAME uses for its peers: ask it for the
    // id of every named namespace, and of nsctl's own.
    let mut names: HashMap<i32, String> = HashMap::new();
    let mut own_id = None;
    if lines.iter().any(|l| l.link_netnsid.is_some()) {
        if let Ok(me) = NetNs::current_thread() {
            own_id = handle.nsid(Target::NetNs(me)).await.ok().flatten();
        }
        for entry in entries() {
            if let Ok(Some(ns)) = open_entry(&entry)
                && let Ok(Some(id)) = handle.nsid(Target::NetNs(ns)).await
            {
                names.entry(id).or_insert(entry);
            }
        }
    }
    for line in &mut lines {
        match line.link_netnsid {
            Some(id) => {
                line.link_netns = names.get(&id).cloned();
                line.link_netns_self = line.link_netns.is_none() && own_id == Some(id);
            }
            // A peer index without a netnsid is in the same namespace.
            None if line.link_index.is_some() => line.link_netns = Some(name.clone()),
            None => {}
        }
    }
    if style.json {
        print!("{}", json::render(&lines, style.pretty));
        return Ok(0);
    }
    for l in &lines {
        let mut text = format!("{}: {}", l.ifindex, l.ifname);
        if let Some(kind) = &l.kind {
            text.push_str(&format!(" {kind}"));
        }
        if let Some(peer) = l.link_index {
            text.push_str(&format!(" peer {peer}"));
            match (&l.link_netns, l.link_netnsid) {
                (Some(ns), Some(id)) => text.push_str(&format!(" netns {ns} (nsid {id})")),
                (Some(ns), None) => text.push_str(&format!(" netns {ns}")),
                (None, Some(id)) if l.link_netns_self => {
                    text.push_str(&format!(" netnsid {id} (this namespace)"))
                }
                (None, Some(id)) => text.push_str(&format!(" netnsid {id}")),
                (None, None) => {}
            }
        }
        println!("{text}");
    }
    Ok(0)
}
