//! Request matching on the control channel, sans IO: which request each
//! reply answers, and what to do with it.
//!
//! No tokio, no fds, no clock: the table is generic over the waiter types
//! (`A` waits for an answer, `X` for a spawned program's exit status), which
//! the client instantiates with channels and the unit tests with plain
//! values. The client's IO shell reads a frame, decodes it with
//! [`crate::proto`], asks [`Table::on_reply`] where it goes, and moves the
//! reply and its fds there.
//!
//! The protocol's rule: every request the client sends gets exactly one
//! answer of the kind it asks for ([`Expect`]) or `Failed`; a `Spawn` that was
//! answered `Spawned` later gets exactly one `Exited`. Any other reply (a
//! wrong kind, an unknown or already answered id, an `Exited` for no running
//! program) is a protocol error: the peer is broken or hostile, nothing it
//! says can be trusted any more, so the connection ends and every request
//! still waiting fails with that error, the offending one included.

use std::collections::HashMap;

use crate::proto::{Reply, Request, Step};

/// The id of the handshake; requests after it count up from the next one.
pub(crate) const HELLO_ID: u32 = 1;

/// The kind of answer a request waits for (besides `Failed`, always allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    Socket,
    Relay,
    Spawned,
}

impl Expect {
    /// What `req` waits for; `None` for `Hello`, which only the handshake
    /// sends.
    pub(crate) fn of(req: &Request) -> Option<Expect> {
        match req {
            Request::Hello { .. } | Request::UserHello { .. } => None,
            Request::OpenSocket { .. }
            | Request::OpenSocketIn { .. }
            | Request::NewNetNs { .. }
            | Request::NameNetNs { .. } => Some(Expect::Socket),
            Request::OpenRelay { .. } => Some(Expect::Relay),
            Request::Spawn(_) => Some(Expect::Spawned),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Expect::Socket => "Socket",
            Expect::Relay => "Relay",
            Expect::Spawned => "Spawned",
        }
    }

    fn accepts(self, reply: &Reply) -> bool {
        matches!(
            (self, reply),
            (_, Reply::Failed { .. })
                | (Expect::Socket, Reply::Socket)
                | (Expect::Relay, Reply::Relay)
                | (Expect::Spawned, Reply::Spawned { .. })
        )
    }
}

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// End of file, a transport error, or the client closed it.
    Gone,
    /// A frame broke the protocol (ours or, as the agent reported, its).
    Protocol { expected: String, got: String },
}

/// Where a reply goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivery<A, X> {
    /// To the request's waiter, with the frame's fds.
    Answer(A),
    /// A spawned program exited: its status goes to this watcher (`None`:
    /// nobody watches any more).
    Exit(Option<X>),
    /// Nobody waits for this answer any more (the caller gave up): close its
    /// fds, and with `kill`, kill the program of a `Spawned` answer.
    Abandoned { kill: bool },
}

#[derive(Debug)]
struct Waiting<A, X> {
    expect: Expect,
    /// `None` once the caller gave up.
    answer: Option<A>,
    exit: Option<X>,
    kill: bool,
}

/// The requests in flight on one connection, and the spawned programs whose
/// exit is still due.
#[derive(Debug)]
pub(crate) struct Table<A, X> {
    waiting: HashMap<u32, Waiting<A, X>>,
    running: HashMap<u32, Option<X>>,
    ended: Option<Ended>,
    next_id: u32,
}

impl<A, X> Default for Table<A, X> {
    fn default() -> Self {
        Table {
            waiting: HashMap::new(),
            running: HashMap::new(),
            ended: None,
            next_id: HELLO_ID + 1,
        }
    }
}

impl<A, X> Table<A, X> {
    /// Why the connection ended, once it has.
    pub(crate) fn ended(&self) -> Option<&Ended> {
        self.ended.as_ref()
    }

    /// Registers a request that waits for `expect` (and, for a spawn, the
    /// program's exit): its id. Fails if the connection has ended.
    pub(crate) fn register(
        &mut self,
        expect: Expect,
        answer: A,
        exit: Option<X>,
    ) -> Result<u32, Ended> {
        if let Some(ended) = &self.ended {
            return Err(ended.clone());
        }
        let id = loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            let in_use = self.waiting.contains_key(&id) || self.running.contains_key(&id);
            if id != 0 && id != HELLO_ID && !in_use {
                break id;
            }
        };
        let waiting = Waiting {
            expect,
            answer: Some(answer),
            exit,
            kill: false,
        };
        self.waiting.insert(id, waiting);
        Ok(id)
    }

    /// The caller of request `id` gave up (dropped, or past its deadline).
    /// If the request never went out (`sent` false), it is forgotten;
    /// otherwise its answer, when it comes, is [`Delivery::Abandoned`], with
    /// `kill` for a spawn whose program must not run unwatched.
    ///
    /// `true` if the answer had not come yet; `false` if it had already been
    /// delivered (the caller then deals with it).
    pub(crate) fn cancel(&mut self, id: u32, sent: bool, kill: bool) -> bool {
        if !sent {
            return self.waiting.remove(&id).is_some();
        }
        if let Some(running) = self.running.get_mut(&id) {
            *running = None;
        }
        match self.waiting.get_mut(&id) {
            Some(w) => {
                w.answer = None;
                w.exit = None;
                w.kill = kill;
                true
            }
            None => false,
        }
    }

    /// Routes a reply with id `id`. An error is a protocol error: the caller
    /// ends the connection with it ([`Table::end`]), which fails the request
    /// it was meant for along with every other.
    pub(crate) fn on_reply(&mut self, id: u32, reply: &Reply) -> Result<Delivery<A, X>, Ended> {
        let unexpected = |expected: String| Ended::Protocol {
            expected,
            got: format!("{} for request {id}", reply.name()),
        };
        match reply {
            Reply::Failed {
                step: Step::Protocol,
                detail,
                ..
            } if id == 0 => Err(Ended::Protocol {
                expected: "frames the agent accepts".into(),
                got: format!(
                    "the agent rejected a frame: {}",
                    String::from_utf8_lossy(detail)
                ),
            }),
            Reply::Exited { .. } => match self.running.remove(&id) {
                Some(watcher) => Ok(Delivery::Exit(watcher)),
                None => Err(unexpected(match self.waiting.get(&id) {
                    Some(w) => format!("{} or Failed for request {id}", w.expect.name()),
                    None => "Exited only for a running program".into(),
                })),
            },
            reply => {
                let Some(w) = self.waiting.get(&id) else {
                    return Err(unexpected("replies only to requests in flight".into()));
                };
                if !w.expect.accepts(reply) {
                    return Err(unexpected(format!(
                        "{} or Failed for request {id}",
                        w.expect.name()
                    )));
                }
                let w = self.waiting.remove(&id).expect("checked above");
                if matches!(reply, Reply::Spawned { .. }) {
                    self.running.insert(id, w.exit);
                }
                Ok(match w.answer {
                    Some(a) => Delivery::Answer(a),
                    None => Delivery::Abandoned {
                        kill: w.kill && matches!(reply, Reply::Spawned { .. }),
                    },
                })
            }
        }
    }

    /// Ends the connection (the first reason sticks): the waiters of every
    /// request and exit still due, to be failed with [`Table::ended`].
    pub(crate) fn end(&mut self, why: Ended) -> (Vec<A>, Vec<X>) {
        self.ended.get_or_insert(why);
        let mut answers = Vec::new();
        let mut exits = Vec::new();
        for (_, w) in self.waiting.drain() {
            answers.extend(w.answer);
            exits.extend(w.exit);
        }
        exits.extend(self.running.drain().filter_map(|(_, x)| x));
        (answers, exits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type T = Table<&'static str, &'static str>;

    fn failed() -> Reply {
        Reply::Failed {
            step: Step::Socket,
            errno: libc::EMFILE,
            detail: Vec::new(),
        }
    }

    fn spawned() -> Reply {
        Reply::Spawned {
            pid: 42,
            stdio: [false; 3],
        }
    }

    #[test]
    fn ids_skip_zero_the_hello_and_ids_in_use() {
        let mut t = T::default();
        let a = t.register(Expect::Socket, "a", None).unwrap();
        assert!(a > HELLO_ID);
        t.next_id = a; // wrap onto an id in use
        let b = t.register(Expect::Socket, "b", None).unwrap();
        assert_ne!(a, b);
        t.next_id = u32::MAX;
        let c = t.register(Expect::Socket, "c", None).unwrap();
        let d = t.register(Expect::Socket, "d", None).unwrap();
        assert_eq!(c, u32::MAX);
        assert!(d > HELLO_ID, "0 and the Hello id are skipped: {d}");
    }

    #[test]
    fn answers_go_to_their_waiter_and_failed_is_always_allowed() {
        let mut t = T::default();
        let a = t.register(Expect::Socket, "a", None).unwrap();
        let b = t.register(Expect::Relay, "b", None).unwrap();
        assert_eq!(t.on_reply(b, &failed()), Ok(Delivery::Answer("b")));
        assert_eq!(t.on_reply(a, &Reply::Socket), Ok(Delivery::Answer("a")));
        // Answered: a second reply to it is a protocol error.
        assert!(matches!(
            t.on_reply(a, &Reply::Socket),
            Err(Ended::Protocol { .. })
        ));
    }

    #[test]
    fn a_reply_of_the_wrong_kind_is_a_protocol_error_and_keeps_the_request_to_fail() {
        for wrong in [
            Reply::Exited { pid: 1, status: 0 },
            Reply::Relay,
            spawned(),
            Reply::Ready { version: 1, pid: 1 },
        ] {
            let mut t = T::default();
            let a = t.register(Expect::Socket, "a", None).unwrap();
            match t.on_reply(a, &wrong) {
                Err(Ended::Protocol { expected, got }) => {
                    assert_eq!(expected, format!("Socket or Failed for request {a}"));
                    assert_eq!(got, format!("{} for request {a}", wrong.name()));
                }
                other => panic!("{wrong:?}: {other:?}"),
            }
            let why = Ended::Protocol {
                expected: "x".into(),
                got: "y".into(),
            };
            assert_eq!(t.end(why.clone()), (vec!["a"], vec![]));
            assert_eq!(t.ended(), Some(&why));
            assert_eq!(t.register(Expect::Socket, "late", None), Err(why));
        }
    }

    #[test]
    fn unknown_ids_and_stray_exits_are_protocol_errors() {
        let mut t = T::default();
        assert!(t.on_reply(77, &Reply::Socket).is_err());
        assert!(
            t.on_reply(77, &Reply::Exited { pid: 1, status: 0 })
                .is_err()
        );
        assert!(t.on_reply(0, &failed()).is_err());
    }

    #[test]
    fn the_agents_protocol_complaint_ends_the_connection() {
        let mut t = T::default();
        let reply = Reply::Failed {
            step: Step::Protocol,
            errno: libc::EPROTO,
            detail: b"truncated frame".to_vec(),
        };
        match t.on_reply(0, &reply) {
            Err(Ended::Protocol { got, .. }) => assert!(got.contains("truncated frame")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_spawn_gets_its_answer_then_its_exit() {
        let mut t = T::default();
        let s = t.register(Expect::Spawned, "s", Some("exit")).unwrap();
        assert_eq!(t.on_reply(s, &spawned()), Ok(Delivery::Answer("s")));
        let exited = Reply::Exited { pid: 42, status: 0 };
        assert_eq!(t.on_reply(s, &exited), Ok(Delivery::Exit(Some("exit"))));
        assert!(t.on_reply(s, &exited).is_err(), "one exit per program");
    }

    #[test]
    fn a_failed_spawn_expects_no_exit() {
        let mut t = T::default();
        let s = t.register(Expect::Spawned, "s", Some("exit")).unwrap();
        assert_eq!(t.on_reply(s, &failed()), Ok(Delivery::Answer("s")));
        assert!(t.on_reply(s, &Reply::Exited { pid: 1, status: 0 }).is_err());
        assert_eq!(t.end(Ended::Gone), (vec![], vec![]));
    }

    #[test]
    fn a_cancelled_request_is_forgotten_or_abandoned() {
        let mut t = T::default();
        // Never sent: no answer will come, and none is accepted.
        let a = t.register(Expect::Socket, "a", None).unwrap();
        assert!(t.cancel(a, false, false));
        assert!(t.on_reply(a, &Reply::Socket).is_err());
        // Sent: the answer is still due; its fds get closed.
        let b = t.register(Expect::Socket, "b", None).unwrap();
        assert!(t.cancel(b, true, false));
        assert_eq!(
            t.on_reply(b, &Reply::Socket),
            Ok(Delivery::Abandoned { kill: false })
        );
        // A spawn given up with kill: the program is killed on arrival, and
        // its exit is still expected (and watched by nobody).
        let s = t.register(Expect::Spawned, "s", Some("exit")).unwrap();
        assert!(t.cancel(s, true, true));
        assert_eq!(
            t.on_reply(s, &spawned()),
            Ok(Delivery::Abandoned { kill: true })
        );
        let exited = Reply::Exited { pid: 42, status: 9 };
        assert_eq!(t.on_reply(s, &exited), Ok(Delivery::Exit(None)));
        // Cancelled after its answer came: the caller deals with it.
        let c = t.register(Expect::Socket, "c", None).unwrap();
        assert_eq!(t.on_reply(c, &Reply::Socket), Ok(Delivery::Answer("c")));
        assert!(!t.cancel(c, true, true));
    }

    #[test]
    fn end_hands_back_every_waiter_once() {
        let mut t = T::default();
        t.register(Expect::Socket, "a", None).unwrap();
        let s = t.register(Expect::Spawned, "s", Some("x1")).unwrap();
        t.register(Expect::Spawned, "t", Some("x2")).unwrap();
        assert_eq!(t.on_reply(s, &spawned()), Ok(Delivery::Answer("s")));
        let (mut answers, mut exits) = t.end(Ended::Gone);
        answers.sort();
        exits.sort();
        assert_eq!((answers, exits), (vec!["a", "t"], vec!["x1", "x2"]));
        assert_eq!(t.end(Ended::Gone), (vec![], vec![]));
        assert_eq!(t.ended(), Some(&Ended::Gone));
    }
}
