//! The `ip netns exec` launch path, through the nsproxy agent.
//!
//! Not wired yet: waits for the nsproxy agent's spawn API.

use std::io;
use std::process::ExitStatus;

use crate::child::Child;
use crate::command::Plan;
use crate::{Command, Error, Result};

/// A child of the agent.
#[derive(Debug)]
pub(crate) struct AgentChild {
    _private: (),
}

impl AgentChild {
    pub(crate) fn id(&self) -> Option<u32> {
        None
    }

    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }

    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }

    pub(crate) fn signal(&mut self, _signal: i32) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }
}

pub(crate) async fn spawn(cmd: &Command, _plan: Plan) -> Result<Child> {
    Err(Error::Spawn {
        program: cmd.program.clone(),
        ns: cmd.described_ns(),
        source: io::Error::new(
            io::ErrorKind::Unsupported,
            "ExecMode::IpNetnsExec is not available yet",
        ),
    })
}
