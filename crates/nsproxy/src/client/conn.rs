//! The connection multiplexer: many requests in flight on one control
//! socket, a reader task routing the replies (through the sans-IO
//! [`Table`](crate::pending::Table)), deadlines, and what a caller that gives
//! up leaves behind (nothing).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, watch};

use super::launch::Reaper;
use crate::pending::{Delivery, Ended, Expect, Table};
use crate::proto::{self, MAX_FRAME, Reply, Request};
use crate::{Error, Result, sys};

type ReplyResult = Result<(Reply, Vec<OwnedFd>)>;
type AnswerTx = oneshot::Sender<ReplyResult>;
pub(super) type ExitTx = oneshot::Sender<Result<i32>>;
pub(super) type ExitRx = oneshot::Receiver<Result<i32>>;

/// The error a request gets once the connection has ended.
fn ended_error(ended: &Ended, pid: i32) -> Error {
    match ended {
        Ended::Gone => Error::AgentGone { pid },
        Ended::Protocol { expected, got } => Error::Protocol {
            expected: expected.clone(),
            got: got.clone(),
        },
    }
}

/// The control connection, shared by the handles and the reader task.
pub(crate) struct Conn {
    pub(super) ctl: AsyncFd<OwnedFd>,
    pub(super) pid: i32,
    table: Mutex<Table<AnswerTx, ExitTx>>,
}

impl Conn {
    pub(super) fn new(ctl: AsyncFd<OwnedFd>, pid: i32) -> Conn {
        Conn {
            ctl,
            pid,
            table: Mutex::default(),
        }
    }

    pub(super) fn table(&self) -> MutexGuard<'_, Table<AnswerTx, ExitTx>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send(&self, buf: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        let sent = self
            .ctl
            .async_io(Interest::WRITABLE, |fd| {
                sys::send_frame(fd.as_fd(), buf, fds, true)
            })
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) => {
                Err(Error::AgentGone { pid: self.pid })
            }
            Err(source) => Err(Error::Io {
                op: "send request",
                source,
            }),
        }
    }

    /// Sends `req` (with `fds`) and waits for its answer, for at most
    /// `deadline`. `exit` watches a spawned program's exit.
    ///
    /// Past the deadline the request fails with [`Error::Timeout`] naming
    /// `op`; its answer, if it comes later, is thrown away (its fds closed,
    /// the program of a late `Spawned` killed: the caller was told the spawn
    /// failed).
    pub(super) async fn request(
        &self,
        op: &'static str,
        req: &Request,
        fds: &[BorrowedFd<'_>],
        exit: Option<ExitTx>,
        kill_on_drop: bool,
        deadline: Option<Duration>,
    ) -> Result<(Reply, Vec<OwnedFd>)> {
        let expect = Expect::of(req).expect("only the handshake sends Hello");
        let (tx, rx) = oneshot::channel();
        let id = self
            .table()
            .register(expect, tx, exit)
            .map_err(|ended| ended_error(&ended, self.pid))?;
        let mut guard = PendingGuard {
            conn: self,
            id,
            rx,
            sent: false,
            kill_on_drop,
            answered: false,
        };
        let mut buf = Vec::new();
        proto::encode_request(id, req, &mut buf)?;
        let Some(after) = deadline else {
            return guard.exchange(&buf, fds).await;
        };
        match tokio::time::timeout(after, guard.exchange(&buf, fds)).await {
            Ok(answer) => answer,
            Err(_) => {
                guard.kill_on_drop = true;
                Err(Error::Timeout { op, after })
            }
        }
    }
}

/// Forgets a request whose caller gave up (dropped it, or its deadline
/// passed) before its answer came. A spawn given up with `kill_on_drop`
/// kills its program as a dropped [`AgentChild`](crate::AgentChild) would:
/// now if the answer is already here, else when it comes.
struct PendingGuard<'a> {
    conn: &'a Conn,
    id: u32,
    rx: oneshot::Receiver<ReplyResult>,
    /// The request went out: an answer will come.
    sent: bool,
    kill_on_drop: bool,
    /// The caller got the answer: nothing to forget.
    answered: bool,
}

impl PendingGuard<'_> {
    async fn exchange(&mut self, buf: &[u8], fds: &[BorrowedFd<'_>]) -> ReplyResult {
        self.conn.send(buf, fds).await?;
        self.sent = true;
        let answer = (&mut self.rx).await;
        self.answered = true;
        match answer {
            Ok(answer) => answer,
            Err(_) => Err(Error::AgentGone { pid: self.conn.pid }),
        }
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        // Under the lock, which the reader holds while it hands an answer
        // over: either the answer is in `rx` or the table abandons it.
        let mut table = self.conn.table();
        let kill = self.kill_on_drop;
        if !table.cancel(self.id, self.sent, kill)
            && kill
            && self.sent
            && let Ok(Ok((reply, fds))) = self.rx.try_recv()
        {
            kill_abandoned(&reply, &fds);
        }
    }
}

/// Kills the child of a `Spawned` answer nobody waits for (through its pidfd,
/// the answer's first fd); the agent reaps it.
fn kill_abandoned(reply: &Reply, fds: &[OwnedFd]) {
    if let (Reply::Spawned { .. }, Some(pidfd)) = (reply, fds.first()) {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    }
}

/// Keeps the agent running: held by the [`Agent`](crate::Agent) and
/// everything it handed out. When the last one drops, the control socket is
/// shut down and the agent exits on the end of file.
pub(crate) struct Keep {
    pub(super) conn: Arc<Conn>,
}

impl Drop for Keep {
    fn drop(&mut self) {
        sys::shutdown(self.conn.ctl.get_ref().as_fd());
    }
}

impl fmt::Debug for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keep")
            .field("agent", &self.conn.pid)
            .finish()
    }
}

pub(super) async fn recv_one(ctl: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<sys::Received> {
    ctl.async_io(Interest::READABLE, |fd| {
        sys::recv_frame(fd.as_fd(), buf, true)
    })
    .await
}

/// Checks what one `recv_frame` brought and decodes it. `Ok(None)`: EOF.
pub(super) fn decode(got: &sys::Received, buf: &[u8]) -> Result<Option<(u32, Reply)>> {
    if got.len == 0 && got.fds.is_empty() {
        return Ok(None);
    }
    if got.bad_control {
        return Err(Error::Protocol {
            expected: "at most one SCM_RIGHTS message with its fds".into(),
            got: "truncated or several control messages".into(),
        });
    }
    if got.truncated || got.len > MAX_FRAME {
        return Err(proto::ProtoError::Oversized {
            what: "reply frame",
            len: got.len,
            max: MAX_FRAME,
        }
        .into());
    }
    Ok(Some(proto::decode_reply(&buf[..got.len], got.fds.len())?))
}

/// Reads replies and routes them; when the connection ends (end of file, or
/// a protocol error, which ends it), fails what is pending and reaps the
/// agent.
pub(super) async fn reader(
    conn: Arc<Conn>,
    mut reaper: Reaper,
    mut buf: Vec<u8>,
    done: watch::Sender<Option<Option<i32>>>,
) {
    let ended = loop {
        let got = match recv_one(&conn.ctl, &mut buf).await {
            Ok(got) => got,
            Err(_) => break Ended::Gone,
        };
        let (id, reply) = match decode(&got, &buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => break Ended::Gone,
            Err(Error::Protocol { expected, got }) => break Ended::Protocol { expected, got },
            Err(_) => break Ended::Gone,
        };
        // Handed over under the lock: see `PendingGuard`.
        let mut table = conn.table();
        match table.on_reply(id, &reply) {
            Ok(Delivery::Answer(tx)) => {
                let _ = tx.send(Ok((reply, got.fds)));
            }
            Ok(Delivery::Exit(watcher)) => {
                if let (Some(tx), Reply::Exited { status, .. }) = (watcher, &reply) {
                    let _ = tx.send(Ok(*status));
                }
            }
            Ok(Delivery::Abandoned { kill }) => {
                if kill {
                    kill_abandoned(&reply, &got.fds);
                }
            }
            Err(ended) => break ended,
        }
    };
    if let Ended::Protocol { expected, got } = &ended {
        tracing::warn!(
            pid = conn.pid,
            %expected,
            %got,
            "nsproxy agent broke the protocol; its connection is closed"
        );
    }
    sys::shutdown(conn.ctl.get_ref().as_fd());
    let (answers, exits, ended) = {
        let mut table = conn.table();
        let (answers, exits) = table.end(ended);
        let ended = table.ended().cloned().unwrap_or(Ended::Gone);
        (answers, exits, ended)
    };
    for tx in answers {
        let _ = tx.send(Err(ended_error(&ended, conn.pid)));
    }
    for tx in exits {
        let _ = tx.send(Err(Error::AgentGone { pid: conn.pid }));
    }
    let status = reaper.reap().await;
    tracing::debug!(pid = conn.pid, status = ?status, "nsproxy agent exited");
    // Close the control socket (if no handle holds it any more) before
    // reporting: once `close` returns, the agent has left no fd behind.
    drop(conn);
    let _ = done.send(Some(status));
}
