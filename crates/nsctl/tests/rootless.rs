//! nsctl without root: the same commands as uid 65534 (under `setpriv`,
//! with a private `XDG_RUNTIME_DIR`) give the same output as root, names
//! living in the user's run directory instead of `/run/netns`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

/// The operations compared. `$N` is nsctl, `$D` the run directory.
const SCRIPT: &str = r#"
$N add a; echo "add: $?"
$N add a; echo "add again: $?"
$N add b; echo "add b: $?"
$N list | sort
$N exec a ip -o link show
$N exec a ip link set lo up; echo "up: $?"
$N exec a ip -o -4 addr show
$N exec --fast b ip -o link show
$N delete a; echo "delete: $?"
$N list
$N -j list
$N delete a; echo "delete again: $?"
$N delete b; echo "delete b: $?"
$N list
"#;

/// `attach`: a process in a namespace of its own (`unshare -n` as root,
/// `unshare -Urn` without root), named, opened, entered, kept after the
/// process is gone, deleted; a taken name and a pid that has exited.
const ATTACH: &str = r#"
if [ "$(id -u)" = 0 ]; then U=-n; else U=-Urn; fi
unshare $U sleep 60 & P=$!
while [ "$(readlink /proc/$P/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do :; done
$N attach c $P; echo "attach: $?"
$N attach c $P; echo "attach again: $?"
$N attach d 2147483647; echo "attach dead: $?"
$N list
$N exec c ip -o link show
kill $P; wait $P
$N list
$N exec --fast c ip -o link show
$N delete c; echo "delete: $?"
$N list
ls "$D"
"#;

/// Runs `script` as root in a fresh mount and network namespace with an
/// empty `/run/netns`.
fn as_root(script: &str) -> (String, String) {
    let prelude = r#"
set -u
mkdir -p /run/netns /etc/netns
mount -t tmpfs none /run/netns || exit 90
mount -t tmpfs none /etc/netns || exit 91
N="$1"; D=/run/netns
eval "$2"
"#;
    let out = common::unshare_sh(prelude)
        .arg(env!("CARGO_BIN_EXE_nsctl"))
        .arg(script)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A private XDG_RUNTIME_DIR for uid 65534, removed on drop.
struct Private(PathBuf);

impl Drop for Private {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn private_dir(tag: &str) -> Private {
    let dir = std::env::temp_dir().join(format!("nsctl-rootless-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let id = Some(nix::unistd::Uid::from_raw(NOBODY));
    nix::unistd::chown(&dir, id, Some(nix::unistd::Gid::from_raw(NOBODY))).unwrap();
    Private(dir)
}

/// Runs `script` as uid 65534 with `xdg` as its runtime directory.
fn as_nobody(xdg: &Path, script: &str) -> (String, String) {
    let prelude = r#"
set -u
N="$1"; D="$XDG_RUNTIME_DIR/netns-toolkit/netns"
eval "$2"
"#;
    let id = NOBODY.to_string();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
        .args(["sh", "-c", prelude, "sh"])
        .arg(env!("CARGO_BIN_EXE_nsctl"))
        .arg(script)
        .env("XDG_RUNTIME_DIR", xdg)
        .env("HOME", xdg)
        .current_dir(xdg)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let user_dir = xdg.join("netns-toolkit/netns");
    let norm =
        |b: &[u8]| String::from_utf8_lossy(b).replace(user_dir.to_str().unwrap(), "/run/netns");
    (norm(&out.stdout), norm(&out.stderr))
}

#[test]
fn same_output_as_root_for_the_same_operations() {
    common::require_root();
    let (root_out, root_err) = as_root(SCRIPT);
    let xdg = private_dir("same");
    let (out, err) = as_nobody(&xdg.0, SCRIPT);
    assert!(root_out.contains("add: 0"), "{root_out}{root_err}");
    assert!(
        root_out.contains("1: lo: <LOOPBACK,UP,LOWER_UP>") || root_out.contains("inet 127.0.0.1/8"),
        "{root_out}"
    );
    assert_eq!(out, root_out, "stdout, rootless vs root\n{err}");
    assert_eq!(err, root_err, "stderr, rootless vs root");
}

#[test]
fn attach_same_output_as_root() {
    common::require_root();
    let (root_out, root_err) = as_root(ATTACH);
    let xdg = private_dir("attach");
    let (out, err) = as_nobody(&xdg.0, ATTACH);
    assert!(root_out.contains("attach: 0"), "{root_out}{root_err}");
    assert!(root_out.contains("1: lo: <LOOPBACK>"), "{root_out}");
    assert!(root_err.contains("File exists"), "{root_err}");
    assert_eq!(out, root_out, "stdout, rootless vs root\n{err}");
    assert_eq!(err, root_err, "stderr, rootless vs root");
}

/// Pids of the agents holding the names in `dir` (from the symlinks).
fn holders(dir: &Path) -> Vec<i32> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(|e| {
        let target = std::fs::read_link(e.ok()?.path()).ok()?;
        target.to_str()?.split('/').nth(2)?.parse().ok()
    })
    .collect()
}

#[test]
fn names_outlive_nsctl_until_deleted_and_nothing_is_left() {
    common::require_root();
    let xdg = private_dir("outlive");
    let dir = xdg.0.join("netns-toolkit/netns");
    let (out, err) = as_nobody(&xdg.0, "$N add keep && $N add keep2 && echo made");
    assert_eq!(out, "made\n", "{err}");
    // nsctl has exited; its agents hold the names, both in one user
    // namespace (the second `add` joined the first one's).
    let pids = holders(&dir);
    assert!(!pids.is_empty());
    let userns: Vec<PathBuf> = pids
        .iter()
        .map(|pid| std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap())
        .collect();
    assert!(userns.windows(2).all(|w| w[0] == w[1]), "{userns:?}");
    // A later nsctl sees them.
    let (out, _) = as_nobody(&xdg.0, "$N list | sort");
    assert_eq!(out, "keep\nkeep2\n");
    let (out, err) = as_nobody(
        &xdg.0,
        "$N delete keep && $N delete keep2 && $N list && echo gone",
    );
    assert_eq!(out, "gone\n", "{err}");
    // The holders let go and exit (reaped by init): nothing is left.
    let start = Instant::now();
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "holders still alive: {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

/// `--user` as root: rootless mode (a private user namespace, the per-user
/// run directory), `/run/netns` untouched; root mode does not see the name.
#[test]
fn user_flag_as_root_forces_rootless_mode() {
    common::require_root();
    let xdg = tempfile_dir("user-flag");
    let script = r#"
set -u
mkdir -p /run/netns /etc/netns
mount -t tmpfs none /run/netns || exit 90
N="$1"; D="$XDG_RUNTIME_DIR/netns-toolkit/netns"
$N --user add X; echo "add: $?"
$N --user list
echo "root list:"; $N list
echo "/run/netns:"; ls -A /run/netns
[ -L "$D/X" ] && readlink "$D/X" | cut -d/ -f3 > "$XDG_RUNTIME_DIR/holder"
$N --user exec X sh -c 'readlink /proc/self/ns/user' > "$XDG_RUNTIME_DIR/userns"
[ "$(cat "$XDG_RUNTIME_DIR/userns")" != "$(readlink /proc/self/ns/user)" ] && echo "own user namespace"
$N --user exec --fast X ip -o link show | cut -d' ' -f2
$N --user -all exec true
$N --user delete X; echo "delete: $?"
$N --user list
ls -A "$D"
"#;
    let out = common::unshare_sh(script)
        .arg(env!("CARGO_BIN_EXE_nsctl"))
        .env("XDG_RUNTIME_DIR", &xdg.0)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        stdout,
        "add: 0\nX\nroot list:\n/run/netns:\nown user namespace\nlo:\n\nnetns: X\ndelete: 0\n",
        "{stderr}"
    );
    assert_eq!(stderr, "");
    // The holder of X let it go and exited.
    let holder: i32 = std::fs::read_to_string(xdg.0.join("holder"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let start = Instant::now();
    while Path::new(&format!("/proc/{holder}")).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "holder {holder} still alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A private directory of root's (mode 0700), removed on drop.
fn tempfile_dir(tag: &str) -> Private {
    let dir = std::env::temp_dir().join(format!("nsctl-user-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    Private(dir)
}
