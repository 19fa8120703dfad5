//! The fast launch path: `posix_spawn` from a namespace thread.
//!
//! A `tokio::process::Command` is built here, on the caller's side, and
//! spawned on an `nsfs` namespace thread that has entered the target namespace,
//! with the caller's runtime entered there, so the child is tokio's: reaped
//! through its pidfd, killed on drop if asked, reaped as an orphan otherwise.
//! The child inherits the thread's network namespace and nothing else changes.
//!
//! std uses `posix_spawn` (glibc: `clone3(CLONE_VM|CLONE_VFORK)`, no copy of
//! the application) unless an option forces it to fork: `pre_exec`, uid, gid,
//! groups, chroot, or a changed `PATH` with a bare program name. The first
//! ones are not offered here; the last is resolved before the spawn
//! (`Command::resolve_program`).

use crate::child::{Child, Launched};
use crate::command::Plan;
use crate::{Command, Error, Result};

pub(crate) async fn spawn(cmd: &Command, mut plan: Plan) -> Result<Child> {
    let resolved = match &cmd.netns {
        Some(ns) => Some(crate::namespace::open(ns, &cmd.run_dir).await?),
        None => None,
    };
    let (stdin, stdout, stderr) = plan.parent_pipes(&cmd.program)?;

    let mut tc = tokio::process::Command::new(&plan.program);
    tc.arg0(cmd.arg0.as_ref().unwrap_or(&cmd.program))
        .args(&cmd.args);
    if cmd.env_clear {
        tc.env_clear();
    }
    for (key, val) in &cmd.env {
        match val {
            Some(val) => tc.env(key, val),
            None => tc.env_remove(key),
        };
    }
    if let Some(dir) = &cmd.cwd {
        tc.current_dir(dir);
    }
    if let Some(pgroup) = cmd.pgroup {
        tc.process_group(pgroup);
    }
    tc.stdin(plan.stdin.child.into_std())
        .stdout(plan.stdout.child.into_std())
        .stderr(plan.stderr.child.into_std())
        .kill_on_drop(cmd.kill_on_drop);

    let runtime = tokio::runtime::Handle::current();
    // `tc` moves into the closure and is dropped there, right after the spawn,
    // which closes our copies of the child's pipe ends.
    let launch = move || {
        let mut tc = tc;
        let _entered = runtime.enter();
        tc.spawn()
    };
    let spawned = match resolved {
        Some(ns) => ns
            .netns
            .run_toolkit(launch)
            .await
            .map_err(|source| Error::Namespace {
                ns: ns.described,
                source,
            })?,
        None => launch(),
    };
    let child = spawned.map_err(|source| Error::Spawn {
        program: cmd.program.clone(),
        ns: cmd.described_ns(),
        source,
    })?;
    Ok(Child::new(
        cmd.program.clone(),
        Launched::Fast(child),
        stdin,
        stdout,
        stderr,
    ))
}
