//! The public types and futures can cross tasks and threads.

use nsproc::{Child, Command, Error, ExecAgent, Stdio, Target};
use testkit::{send, send_sync, unpin};

#[test]
fn types_are_send_and_sync() {
    // A tuple is Send and Sync only if each of its types is.
    send_sync::<(Command, Child, Stdio, Target, Error, ExecAgent)>();
    // A tuple is Unpin only if each of its types is.
    unpin::<(Child, Command)>();
}

#[allow(dead_code)]
fn futures_are_send(mut cmd: Command, mut child: Child, child2: Child, agent: ExecAgent) {
    send(&cmd.spawn());
    send(&cmd.output());
    send(&cmd.status());
    send(&child.wait());
    send(&child.kill());
    send(&child2.wait_with_output());
    send(&nsproc::spawn("blue", ["true"]));
    send(&ExecAgent::start("blue"));
    send(&agent.close());
}
