//! The subcommands. Each prints what ip prints and returns ip's exit code.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use futures::StreamExt;
use netns::netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netns::netlink_packet_route::RouteNetlinkMessage;
use netns::netlink_packet_route::link::{LinkAttribute, LinkInfo};
use netns::netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netns::{Handle, Nsid, Target};
use nsfs::{DEFAULT_RUN_DIR, NetNs, NsName, OpenMode, RunDir};
use serde::Serialize;

use crate::cli::{Cli, Command, parse_c_int};
use crate::json::{self, Style};

/// Prints to stderr and returns the exit code.
macro_rules! fail {
    ($code:expr, $($fmt:tt)*) => {{
        eprintln!($($fmt)*);
        return $code;
    }};
}

/// C's `strerror` for an errno.
fn strerror(code: i32) -> &'static str {
    nix::errno::Errno::from_raw(code).desc()
}

/// The errno text of an io error, as ip prints it.
fn io_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => strerror(code).to_string(),
        None => e.to_string(),
    }
}

/// The errno text of an nsfs error.
fn nsfs_text(e: &nsfs::Error) -> String {
    match e.raw_os_error() {
        Some(code) => strerror(code).to_string(),
        None => e.to_string(),
    }
}

fn run_dir_path() -> &'static Path {
    Path::new(DEFAULT_RUN_DIR)
}

fn entry_path(name: &str) -> PathBuf {
    run_dir_path().join(name)
}

/// The run directory's entries in directory order, as ip's `readdir` loop
/// sees them (names that are not UTF-8 are skipped).
fn entries() -> Vec<String> {
    let Ok(read) = fs::read_dir(run_dir_path()) else {
        return Vec::new();
    };
    read.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

fn flush() {
    let _ = io::stdout().flush();
}

/// Runs the parsed command line; returns the exit code.
pub(crate) async fn run(cli: Cli) -> u8 {
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
        Command::Help => {
            let _ = Cli::command().print_long_help();
            0
        }
        Command::Add { name, .. } => add(name).await,
        Command::Set { name, nsid, .. } => set(name, nsid).await,
        Command::Delete { name, .. } => delete(cli.all, name).await,
        Command::Identify { pid, extra } => identify(pid, &extra),
        Command::Pids { name, extra } => pids(name, &extra).await,
        Command::Exec {
            fast,
            name,
            command,
        } => exec(cli.all, fast, name, command).await,
        Command::Monitor { .. } => monitor().await,
        Command::Attach { name, pid, .. } => attach(name, pid).await,
        Command::Links { name } => links(style, name).await,
    }
}

// ---------------------------------------------------------------- nsids

/// A netlink handle in nsctl's own namespace, for namespace ids.
async fn own_handle() -> Option<Handle> {
    let me = NetNs::current_thread().ok()?;
    Handle::open(Target::NetNs(me), OpenMode::OpenOnly)
        .await
        .ok()
}

/// Prints a failed netlink request as ip's `rtnl_talk` does.
fn print_netlink_error(e: &netns::Error) {
    if let Some(msg) = e.kernel_message() {
        let dot = if msg.ends_with('.') { "" } else { "." };
        eprintln!("Error: {msg}{dot}");
    } else if let Some(code) = e.raw_os_error() {
        eprintln!("RTNETLINK answers: {}", strerror(code));
    } else {
        eprintln!("RTNETLINK answers: {e}");
    }
}

/// The kernel's words when the fd given for a namespace is not one.
const PEER_INVALID: &str = "Error: Peer netns reference is invalid.";

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
            eprintln!("{PEER_INVALID}");
            None
        }
        Ok(Some(ns)) => match handle.nsid(Target::NetNs(ns)).await {
            Ok(id) => id,
            Err(e) => {
                print_netlink_error(&e);
                None
            }
        },
    }
}

/// ip's name cache (`netns_map_init`): nsid -> first name with that id.
async fn nsid_map(handle: &Handle) -> Vec<(i32, String)> {
    let mut map: Vec<(i32, String)> = Vec::new();
    for name in entries() {
        if let Some(id) = nsid_of_name(handle, &name).await {
            if !map.iter().any(|(i, _)| *i == id) {
                map.push((id, name));
            }
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

async fn list(style: Style) -> u8 {
    let handle = own_handle().await;
    if let Some(h) = &handle {
        // ip builds its name cache first (which reports stale entries once
        // more), then lists.
        nsid_map(h).await;
    }
    let mut out = Vec::new();
    for name in entries() {
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
    0
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
const USAGE: &str = "\
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

fn usage_error() -> u8 {
    eprintln!("{USAGE}");
    255
}

async fn list_id(style: Style, args: &[String]) -> u8 {
    let mut target: Option<i32> = None;
    let mut nsid: Option<i32> = None;
    let mut i = 0;
    while i < args.len() {
        let key = args[i].as_str();
        let slot = match key {
            "target-nsid" => &mut target,
            "nsid" => &mut nsid,
            _ => return usage_error(),
        };
        if slot.is_some() {
            fail!(
                255,
                "Error: duplicate \"{key}\": \"{key}\" is the second value."
            );
        }
        let Some(value) = args.get(i + 1) else {
            fail!(255, "Command line is not complete. Try option \"help\"");
        };
        match parse_c_int(value) {
            None => fail!(
                255,
                "Error: argument \"{value}\" is wrong: \"{key}\" value is invalid"
            ),
            Some(v) if v < 0 => {
                // ip names the argument after the value here (or "(null)").
                let next = args.get(i + 2).map_or("(null)", String::as_str);
                fail!(
                    255,
                    "Error: argument \"{next}\" is wrong: \"{key}\" value should be >= 0"
                );
            }
            Some(v) => *slot = Some(v),
        }
        i += 2;
    }
    let Some(handle) = own_handle().await else {
        fail!(1, "RTM_GETNSID is not supported by the kernel.");
    };
    let mut map = nsid_map(&handle).await;

    let mut attributes = Vec::new();
    if let Some(n) = nsid {
        attributes.push(NsidAttribute::Id(n));
    }
    if let Some(t) = target {
        attributes.push(NsidAttribute::TargetNsid(t));
    }
    let mut msg = NsidMessage::default();
    msg.attributes = attributes;
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
    req.header.flags = if nsid.is_some() {
        NLM_F_REQUEST
    } else {
        NLM_F_REQUEST | NLM_F_DUMP
    };
    let dump = nsid.is_none();
    let mut replies = match handle.rtnetlink().clone().request(req) {
        Ok(r) => r,
        Err(e) => fail!(1, "Cannot send dump request: {e}"),
    };
    let mut lines = Vec::new();
    while let Some(reply) = replies.next().await {
        match reply.payload {
            NetlinkPayload::Error(err) if err.code.is_some() => {
                let e = netns::Error::Request {
                    op: "list nsids",
                    ns: PathBuf::from("/proc/self/ns/net"),
                    source: rtnetlink::Error::NetlinkError(err),
                };
                print_netlink_error(&e);
                if dump {
                    fail!(1, "Dump terminated");
                }
                return 2;
            }
            // A dump that fails reports the error in its NLMSG_DONE.
            NetlinkPayload::Done(done) if done.code != 0 => {
                match ext_ack_text(&done.extended_ack) {
                    Some(msg) => {
                        let dot = if msg.ends_with('.') { "" } else { "." };
                        eprintln!("Error: {msg}{dot}");
                    }
                    None => eprintln!("RTNETLINK answers: {}", strerror(done.code.abs())),
                }
                if style.json {
                    print!("{}", json::render(&lines, style.pretty));
                }
                fail!(1, "Dump terminated");
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                lines.push(nsid_line(&handle, &mut map, &m).await);
            }
            _ => {}
        }
    }
    if dump && lines.is_empty() {
        if let Some(t) = target {
            // A dump that fails at its start reports the error in its
            // NLMSG_DONE, which the rtnetlink stream does not hand out: the
            // one such error is a target id that names no namespace.
            if !nsid_exists(&handle, t).await {
                if style.json {
                    print!("{}", json::render(&lines, style.pretty));
                }
                eprintln!("Error: Invalid target network namespace id.");
                fail!(1, "Dump terminated");
            }
        }
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
    0
}

/// Whether this namespace has a peer with id `nsid`.
async fn nsid_exists(handle: &Handle, nsid: i32) -> bool {
    let mut msg = NsidMessage::default();
    msg.attributes = vec![NsidAttribute::Id(nsid)];
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
    req.header.flags = NLM_F_REQUEST;
    let Ok(mut replies) = handle.rtnetlink().clone().request(req) else {
        return false;
    };
    while let Some(reply) = replies.next().await {
        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(_)) = reply.payload {
            return true;
        }
    }
    false
}

/// The message (`NLMSGERR_ATTR_MSG`) of extended-ack attributes.
fn ext_ack_text(mut tlvs: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]);
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        let aligned = (len + 3) & !3;
        tlvs = tlvs.get(aligned..).unwrap_or_default();
    }
    None
}

/// One `list-id` line, naming the namespace as ip's `print_nsid` does.
async fn nsid_line(handle: &Handle, map: &mut Vec<(i32, String)>, m: &NsidMessage) -> NsidLine {
    let mut id = None;
    let mut current = None;
    for attr in &m.attributes {
        match attr {
            NsidAttribute::Id(n) => id = Some(*n),
            NsidAttribute::CurrentNsid(n) => current = Some(*n),
            _ => {}
        }
    }
    let nsid = id.unwrap_or(-1);
    let lookup = current.unwrap_or(nsid);
    let mut name = None;
    if lookup >= 0 {
        if let Some(pos) = map.iter().position(|(i, _)| *i == lookup) {
            name = Some(map.remove(pos).1);
        }
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
        nsid: id.filter(|n| *n >= 0),
        current: current.filter(|n| *n >= 0),
        name,
    }
}

// ---------------------------------------------------------------- add / attach / delete

fn create_error(path: &Path, e: &nsfs::Error) -> u8 {
    match e {
        nsfs::Error::AlreadyExists { path } => {
            fail!(
                1,
                "Cannot create namespace file \"{}\": File exists",
                path.display()
            )
        }
        nsfs::Error::PrepareRunDir { source, .. } => {
            fail!(
                1,
                "mount --make-shared {} failed: {}",
                DEFAULT_RUN_DIR,
                io_text(source)
            )
        }
        nsfs::Error::Create {
            step: "create entry",
            source,
            ..
        }
        | nsfs::Error::Attach {
            step: "create entry",
            source,
            ..
        } => {
            fail!(
                1,
                "Cannot create namespace file \"{}\": {}",
                path.display(),
                io_text(source)
            )
        }
        other => fail!(
            1,
            "Cannot create network namespace \"{}\": {}",
            path.display(),
            nsfs_text(other)
        ),
    }
}

async fn add(name: Option<String>) -> u8 {
    let Some(name) = name else {
        fail!(1, "No netns name specified")
    };
    let path = entry_path(&name);
    let Ok(ns_name) = NsName::new(name.as_str()) else {
        fail!(255, "Invalid netns name \"{name}\"");
    };
    match RunDir::default()
        .create(&ns_name, OpenMode::CreateExclusive)
        .await
    {
        Ok(_) => 0,
        Err(e) => create_error(&path, &e),
    }
}

async fn attach(name: Option<String>, pid: Option<String>) -> u8 {
    let (Some(name), Some(pid_text)) = (name, pid) else {
        fail!(1, "No netns name and PID specified");
    };
    let pid = match parse_c_int(&pid_text) {
        Some(p) if p != 0 => p,
        _ => fail!(1, "Invalid PID: {pid_text}"),
    };
    let Ok(ns_name) = NsName::new(name.as_str()) else {
        fail!(255, "Invalid netns name \"{name}\"");
    };
    let path = entry_path(&name);
    // ip creates the entry before it looks at the process.
    if fs::symlink_metadata(&path).is_ok() {
        fail!(
            1,
            "Cannot create namespace file \"{}\": File exists",
            path.display()
        );
    }
    match RunDir::default().attach(&ns_name, pid).await {
        Ok(_) => 0,
        Err(nsfs::Error::NoSuchProcess { .. }) => fail!(
            1,
            "Bind /proc/{pid}/ns/net -> {} failed: No such file or directory",
            path.display()
        ),
        Err(nsfs::Error::Attach { step, source, .. }) if step != "create entry" => fail!(
            1,
            "Bind /proc/{pid}/ns/net -> {} failed: {}",
            path.display(),
            io_text(&source)
        ),
        Err(e) => create_error(&path, &e),
    }
}

async fn remove_one(name: &str) -> Result<(), ()> {
    let path = entry_path(name);
    let result = match NsName::new(name) {
        Ok(n) => RunDir::default().remove(&n).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            eprintln!(
                "Cannot remove namespace file \"{}\": {}",
                path.display(),
                nsfs_text(&e)
            );
            Err(())
        }
    }
}

async fn delete(all: bool, name: Option<String>) -> u8 {
    if all {
        for entry in entries() {
            if remove_one(&entry).await.is_err() {
                break;
            }
        }
        return 0;
    }
    let Some(name) = name else {
        fail!(1, "No netns name specified")
    };
    match remove_one(&name).await {
        Ok(()) => 0,
        Err(()) => 1,
    }
}

// ---------------------------------------------------------------- set

async fn set(name: Option<String>, nsid: Option<String>) -> u8 {
    let Some(name) = name else {
        fail!(1, "No netns name specified")
    };
    let Some(value) = nsid else {
        fail!(1, "No nsid specified")
    };
    let id = if value == "auto" {
        Nsid::Auto
    } else {
        match parse_c_int(&value) {
            None => fail!(
                255,
                "Error: argument \"{value}\" is wrong: Invalid \"netnsid\" value"
            ),
            Some(n) if n < 0 => {
                fail!(
                    255,
                    "Error: argument \"{value}\" is wrong: \"netnsid\" value should be >= 0"
                )
            }
            Some(n) => Nsid::Id(n),
        }
    };
    let ns = match open_entry(&name) {
        Err(e) => fail!(
            1,
            "Cannot open network namespace \"{name}\": {}",
            io_text(&e)
        ),
        Ok(None) => fail!(2, "{PEER_INVALID}"),
        Ok(Some(ns)) => ns,
    };
    let Some(handle) = own_handle().await else {
        fail!(1, "Cannot open rtnetlink");
    };
    match handle.set_nsid(Target::NetNs(ns), id).await {
        Ok(_) => 0,
        Err(e) => {
            print_netlink_error(&e);
            2
        }
    }
}

// ---------------------------------------------------------------- identify / pids

fn identify(pid: Option<String>, extra: &[String]) -> u8 {
    if !extra.is_empty() {
        fail!(1, "extra arguments specified");
    }
    let target = match &pid {
        None => match NetNs::current_thread() {
            Ok(ns) => nsfs::Target::Ns(ns),
            Err(e) => fail!(1, "Cannot open network namespace: {}", nsfs_text(&e)),
        },
        Some(p) => {
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                fail!(1, "Specified string '{p}' is not a pid");
            }
            match p.parse::<i32>() {
                Ok(n) => nsfs::Target::Pid(n),
                Err(_) => fail!(
                    1,
                    "Cannot open network namespace: No such file or directory"
                ),
            }
        }
    };
    let found = match RunDir::default().identify(target) {
        Ok(found) => found,
        Err(nsfs::Error::NoSuchProcess { .. }) => {
            fail!(
                1,
                "Cannot open network namespace: No such file or directory"
            )
        }
        Err(nsfs::Error::Io {
            op: "read directory",
            source,
            ..
        }) => fail!(
            1,
            "Failed to open directory {DEFAULT_RUN_DIR}:{}",
            io_text(&source)
        ),
        Err(e) => fail!(1, "Cannot open network namespace: {}", nsfs_text(&e)),
    };
    // ip prints the last match in directory order.
    let name = entries()
        .into_iter()
        .rfind(|e| found.iter().any(|f| f.as_str() == e))
        .unwrap_or_default();
    println!("{name}");
    0
}

async fn pids(name: Option<String>, extra: &[String]) -> u8 {
    let Some(name) = name else {
        fail!(1, "No netns name specified")
    };
    if !extra.is_empty() {
        fail!(1, "extra arguments specified");
    }
    match open_entry(&name) {
        Err(e) => fail!(1, "Cannot open network namespace: {}", io_text(&e)),
        // ip compares a plain file with every process: none matches.
        Ok(None) => return 0,
        Ok(Some(_)) => {}
    }
    let Ok(ns_name) = NsName::new(name.as_str()) else {
        fail!(255, "Invalid netns name \"{name}\"");
    };
    match RunDir::default().pids(&ns_name).await {
        Ok(mut pids) => {
            pids.sort_unstable();
            let mut out = String::new();
            for pid in pids {
                out.push_str(&format!("{pid}\n"));
            }
            print!("{out}");
            0
        }
        Err(e) => fail!(1, "Cannot open network namespace: {}", nsfs_text(&e)),
    }
}

// ---------------------------------------------------------------- exec

/// How a command ended.
enum Ended {
    Code(u8),
    Signal(i32),
}

/// Starts `argv` in namespace `name` and waits for it. `Err` is an exit
/// code, the failure already printed as ip prints it.
async fn run_in(name: &str, argv: &[OsString], fast: bool) -> Result<Ended, u8> {
    match open_entry(name) {
        Err(e) => {
            eprintln!("Cannot open network namespace \"{name}\": {}", io_text(&e));
            return Err(255);
        }
        Ok(None) => {
            eprintln!("setting the network namespace \"{name}\" failed: Invalid argument");
            return Err(255);
        }
        Ok(Some(_)) => {}
    }
    // The ip-style path runs through an nsproxy agent; nsctl starts it
    // itself so that it can see it end before exiting.
    let agent = if fast {
        None
    } else {
        match nsproc::ExecAgent::start(name).await {
            Ok(agent) => Some(agent),
            Err(e) => {
                eprintln!("setting the network namespace \"{name}\" failed: {e}");
                return Err(255);
            }
        }
    };
    let ended = spawn_and_wait(name, argv, agent.as_ref()).await;
    if let Some(agent) = agent {
        let pid = agent.pid();
        drop(agent);
        settle_agent(pid).await;
    }
    ended
}

/// Spawns `argv` (through `agent`, or on the fast path) and waits for it,
/// passing SIGTERM and SIGHUP on.
async fn spawn_and_wait(
    name: &str,
    argv: &[OsString],
    agent: Option<&nsproc::ExecAgent>,
) -> Result<Ended, u8> {
    let program = argv[0].clone();
    flush();
    let mut command = nsproc::Command::new(&program);
    command.args(&argv[1..]).netns(name);
    if let Some(agent) = agent {
        command.exec_agent(agent);
    }
    let mut child = match command.spawn().await {
        Ok(child) => child,
        Err(nsproc::Error::Spawn { source, .. }) => {
            eprintln!(
                "exec of \"{}\" failed: {}",
                program.to_string_lossy(),
                io_text(&source)
            );
            return Err(1);
        }
        Err(e) => {
            eprintln!("nsctl: {e}");
            return Err(1);
        }
    };
    use tokio::signal::unix::{SignalKind, signal};
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
    use std::os::unix::process::ExitStatusExt;
    drop(child);
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Ok(Ended::Code(code as u8)),
            (None, Some(sig)) => Ok(Ended::Signal(sig)),
            _ => Ok(Ended::Code(1)),
        },
        Err(e) => {
            eprintln!("nsctl: {e}");
            Err(1)
        }
    }
}

/// Waits (a second at most) until the agent `pid` has exited and been
/// reaped by nsproxy's reaper, a task on this runtime. Without this, nsctl
/// would exit first and leave the agent to be reaped by init.
async fn settle_agent(pid: i32) {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    for _ in 0..1000 {
        if !proc.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

async fn exec(all: bool, fast: bool, name: Option<OsString>, command: Vec<OsString>) -> u8 {
    if all {
        let mut argv = command;
        if let Some(first) = name {
            argv.insert(0, first);
        }
        if argv.is_empty() {
            fail!(1, "No command specified");
        }
        for entry in entries() {
            println!("\nnetns: {entry}");
            match run_in(&entry, &argv, fast).await {
                Ok(Ended::Code(_)) | Err(_) => {}
                Ok(Ended::Signal(_)) => return 1,
            }
        }
        return 0;
    }
    let Some(name) = name else {
        fail!(1, "No netns name specified")
    };
    if command.is_empty() {
        fail!(1, "No command specified");
    }
    let name = name.to_string_lossy().into_owned();
    match run_in(&name, &command, fast).await {
        Ok(Ended::Code(code)) => code,
        Ok(Ended::Signal(sig)) => crate::signal::die_of(sig),
        Err(code) => code,
    }
}

// ---------------------------------------------------------------- monitor

async fn monitor() -> u8 {
    let mut events = match RunDir::default().monitor() {
        Ok(m) => m,
        Err(e) => fail!(1, "inotify_add_watch failed: {}", nsfs_text(&e)),
    };
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
            Ok(nsfs::Event::Added(name)) => {
                let name = name.into_string();
                let w = writeln!(out, "add {name}");
                if !known.contains(&name) {
                    known.push(name);
                }
                w
            }
            Ok(nsfs::Event::Removed(name)) => {
                known.retain(|k| k != name.as_str());
                writeln!(out, "delete {name}")
            }
            Ok(nsfs::Event::Resync(now)) => {
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
            Err(e) => fail!(1, "read failed: {}", nsfs_text(&e)),
        };
        if written.and_then(|()| out.flush()).is_err() {
            // stdout closed (a pipe's reader went away): stop, as ip would
            // on SIGPIPE.
            return 1;
        }
    }
    0
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

async fn links(style: Style, name: Option<String>) -> u8 {
    let Some(name) = name else {
        fail!(1, "No netns name specified")
    };
    match open_entry(&name) {
        Err(e) => fail!(
            1,
            "Cannot open network namespace \"{name}\": {}",
            io_text(&e)
        ),
        Ok(None) => fail!(
            1,
            "setting the network namespace \"{name}\" failed: Invalid argument"
        ),
        Ok(Some(_)) => {}
    }
    let handle = match Handle::open(name.as_str(), OpenMode::OpenOnly).await {
        Ok(h) => h,
        Err(e) => fail!(1, "Cannot open network namespace \"{name}\": {e}"),
    };
    let mut dump = handle.rtnetlink().link().get().execute();
    let mut lines = Vec::new();
    while let Some(msg) = dump.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                let e = netns::Error::Request {
                    op: "dump links",
                    ns: entry_path(&name),
                    source: e,
                };
                print_netlink_error(&e);
                return 2;
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
            if let Ok(Some(ns)) = open_entry(&entry) {
                if let Ok(Some(id)) = handle.nsid(Target::NetNs(ns)).await {
                    names.entry(id).or_insert(entry);
                }
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
        return 0;
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
    0
}
