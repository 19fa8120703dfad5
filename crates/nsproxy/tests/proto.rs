//! The sans-IO protocol on byte slices: golden encodings (the wire format of
//! docs/nsproxy.md), every rejection, and proptest round trips and garbage.

use nsproxy::proto::{
    self, HEADER_LEN, MAX_FRAME, ProtoError, RelayFrame, Reply, Request, SpawnSpec, StdioSpec,
    Step, VERSION,
};
use proptest::prelude::*;

fn enc_req(id: u32, req: &Request) -> Vec<u8> {
    let mut buf = Vec::new();
    proto::encode_request(id, req, &mut buf).unwrap();
    buf
}

fn enc_reply(id: u32, reply: &Reply) -> Vec<u8> {
    let mut buf = Vec::new();
    proto::encode_reply(id, reply, &mut buf).unwrap();
    buf
}

/// Request 3: an IPv4 UDP socket, encoded.
fn open_socket_frame() -> Vec<u8> {
    enc_req(
        3,
        &Request::OpenSocket {
            domain: 2,
            ty: 2,
            protocol: 0,
        },
    )
}

#[test]
fn golden_hello() {
    let req = Request::Hello {
        version: VERSION,
        user_ns: true,
        exec_name: Some(b"blue".to_vec()),
    };
    let bytes = enc_req(1, &req);
    #[rustfmt::skip]
    let want = [
        1, 0, 0, 0, 1, 0, 0, 0, // kind 1, reserved, id 1
        1, 0, 0, 0,             // version 1
        1, 0, 0, 0,             // flags: user namespace fd follows
        1, 4, 0, 0, 0, b'b', b'l', b'u', b'e', // exec name present, "blue"
    ];
    assert_eq!(bytes, want);
    assert_eq!(proto::decode_request(&bytes, 2).unwrap(), (1, req));
}

#[test]
fn golden_spawned_and_failed() {
    let bytes = enc_reply(
        7,
        &Reply::Spawned {
            pid: 0x1234,
            stdio: [false, true, true],
        },
    );
    assert_eq!(bytes, [0x84, 0, 0, 0, 7, 0, 0, 0, 0x34, 0x12, 0, 0, 0b110]);
    let failed = Reply::Failed {
        step: Step::Exec,
        errno: libc::ENOENT,
        detail: b"ls".to_vec(),
    };
    let bytes = enc_reply(7, &failed);
    assert_eq!(
        bytes,
        [
            0x86, 0, 0, 0, 7, 0, 0, 0, 11, 0, 2, 0, 0, 0, 2, 0, 0, 0, b'l', b's'
        ]
    );
    assert_eq!(proto::decode_reply(&bytes, 0).unwrap(), (7, failed));
}

#[test]
fn golden_relay() {
    let frame = RelayFrame::Datagram {
        port: 0,
        groups: 1,
        data: vec![0xaa, 0xbb],
    };
    let mut bytes = Vec::new();
    proto::encode_relay(&frame, &mut bytes);
    assert_eq!(bytes, [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0xaa, 0xbb]);
    proto::encode_relay(&RelayFrame::Errno(libc::ENOBUFS), &mut bytes);
    assert_eq!(bytes, [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 105, 0, 0, 0]);
}

#[test]
fn wrong_version_is_rejected() {
    let mut bytes = enc_req(
        1,
        &Request::Hello {
            version: VERSION,
            user_ns: false,
            exec_name: None,
        },
    );
    bytes[8] = 9;
    assert_eq!(
        proto::decode_request(&bytes, 1),
        Err(ProtoError::Version {
            expected: VERSION,
            got: 9
        })
    );
}

#[test]
fn fds_where_none_are_expected() {
    let bytes = open_socket_frame();
    assert!(matches!(
        proto::decode_request(&bytes, 1),
        Err(ProtoError::UnexpectedFds {
            expected: 0,
            got: 1,
            ..
        })
    ));
    let bytes = enc_reply(3, &Reply::Socket);
    assert!(matches!(
        proto::decode_reply(&bytes, 0),
        Err(ProtoError::UnexpectedFds {
            expected: 1,
            got: 0,
            ..
        })
    ));
    let mut relay = Vec::new();
    proto::encode_relay(
        &RelayFrame::Datagram {
            port: 0,
            groups: 0,
            data: vec![1],
        },
        &mut relay,
    );
    assert!(matches!(
        proto::decode_relay(&relay, 1),
        Err(ProtoError::UnexpectedFds { .. })
    ));
}

#[test]
fn unknown_kinds_and_reserved_bits() {
    let mut bytes = enc_req(3, &Request::OpenRelay { protocol: 0 });
    bytes[0] = 0x7f;
    assert!(matches!(
        proto::decode_request(&bytes, 1),
        Err(ProtoError::UnknownKind { kind: 0x7f, .. })
    ));
    // A reply kind on the request channel is unknown there.
    let bytes = enc_reply(3, &Reply::Exited { pid: 1, status: 0 });
    assert!(matches!(
        proto::decode_request(&bytes, 0),
        Err(ProtoError::UnknownKind { .. })
    ));
    let mut bytes = enc_req(3, &Request::OpenRelay { protocol: 0 });
    bytes[2] = 1;
    assert!(matches!(
        proto::decode_request(&bytes, 1),
        Err(ProtoError::Invalid { .. })
    ));
    let mut relay = Vec::new();
    proto::encode_relay(&RelayFrame::Errno(5), &mut relay);
    relay[0] = 9;
    assert!(matches!(
        proto::decode_relay(&relay, 0),
        Err(ProtoError::UnknownKind { .. })
    ));
}

#[test]
fn truncated_trailing_and_oversized() {
    let bytes = open_socket_frame();
    assert!(matches!(
        proto::decode_request(&bytes[..bytes.len() - 1], 0),
        Err(ProtoError::Truncated { .. })
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        proto::decode_request(&long, 0),
        Err(ProtoError::Trailing { extra: 1, .. })
    ));
    let huge = vec![0u8; MAX_FRAME + 1];
    assert!(matches!(
        proto::decode_request(&huge, 0),
        Err(ProtoError::Oversized { .. })
    ));
    assert!(matches!(
        proto::decode_reply(&huge, 0),
        Err(ProtoError::Oversized { .. })
    ));
    assert!(matches!(
        proto::decode_relay(&huge, 0),
        Err(ProtoError::Oversized { .. })
    ));
    // A list count larger than the frame could hold is rejected before allocating.
    let mut spawn = enc_req(1, &Request::Spawn(spec()));
    let args_at = HEADER_LEN + 4 + 3 + 4 + b"/bin/true".len();
    spawn[args_at..args_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        proto::decode_request(&spawn, 0),
        Err(ProtoError::Truncated { .. })
    ));
    // An encoder refuses to build an oversized frame.
    let mut big = spec();
    big.env = vec![vec![b'x'; MAX_FRAME]];
    let mut buf = Vec::new();
    assert!(matches!(
        proto::encode_request(1, &Request::Spawn(big), &mut buf),
        Err(ProtoError::Oversized { .. })
    ));
}

#[test]
fn nul_bytes_and_bad_names_are_rejected() {
    let mut s = spec();
    s.args = vec![b"a\0b".to_vec()];
    let bytes = enc_req(1, &Request::Spawn(s));
    assert!(matches!(
        proto::decode_request(&bytes, 0),
        Err(ProtoError::Invalid { .. })
    ));
    // An empty name is exec mode for a namespace without a name (presence
    // byte 2), not a bad name.
    let unnamed = Request::Hello {
        version: VERSION,
        user_ns: false,
        exec_name: Some(Vec::new()),
    };
    assert_eq!(
        proto::decode_request(&enc_req(1, &unnamed), 1),
        Ok((1, unnamed))
    );
    for bad in [&b"a/b"[..], b".", b".."] {
        let req = Request::Hello {
            version: VERSION,
            user_ns: false,
            exec_name: Some(bad.to_vec()),
        };
        let bytes = enc_req(1, &req);
        assert!(
            matches!(
                proto::decode_request(&bytes, 1),
                Err(ProtoError::Invalid { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn user_agent_requests_check_names_directories_and_fds() {
    // A name directory must be absolute.
    let hello = Request::UserHello {
        version: VERSION,
        create: true,
        dir: Some(b"relative/dir".to_vec()),
        detach: false,
    };
    assert!(matches!(
        proto::decode_request(&enc_req(1, &hello), 0),
        Err(ProtoError::Invalid { .. })
    ));
    // Joining carries the user namespace's fd; creating carries none.
    let join = Request::UserHello {
        version: VERSION,
        create: false,
        dir: None,
        detach: true,
    };
    assert!(matches!(
        proto::decode_request(&enc_req(1, &join), 0),
        Err(ProtoError::UnexpectedFds { .. })
    ));
    assert_eq!(proto::decode_request(&enc_req(1, &join), 1), Ok((1, join)));
    for bad in [&b"a/b"[..], b".", b"..", b""] {
        let req = Request::NewNetNs {
            name: Some(bad.to_vec()),
        };
        assert!(
            matches!(
                proto::decode_request(&enc_req(2, &req), 0),
                Err(ProtoError::Invalid { .. })
            ),
            "{bad:?}"
        );
        let req = Request::NameNetNs { name: bad.to_vec() };
        assert!(
            matches!(
                proto::decode_request(&enc_req(2, &req), 1),
                Err(ProtoError::Invalid { .. })
            ),
            "{bad:?}"
        );
    }
    // NameNetNs carries the namespace it names.
    let named = Request::NameNetNs {
        name: b"theirs".to_vec(),
    };
    assert!(matches!(
        proto::decode_request(&enc_req(3, &named), 0),
        Err(ProtoError::UnexpectedFds { .. })
    ));
    assert_eq!(
        proto::decode_request(&enc_req(3, &named), 1),
        Ok((3, named))
    );
    // OpenSocketIn and a Spawn in a namespace carry that namespace's fd.
    let sock = Request::OpenSocketIn {
        domain: libc::AF_INET,
        ty: libc::SOCK_DGRAM,
        protocol: 0,
    };
    assert_eq!(sock.fd_count(), 1);
    let mut s = spec();
    s.in_netns = true;
    assert_eq!(Request::Spawn(s).fd_count(), 1);
}

#[test]
fn errors_say_what_was_expected_and_what_came() {
    let err = proto::decode_reply(&[0x81, 0, 0, 0], 0).unwrap_err();
    assert_eq!(err.expected(), "8 bytes for header");
    assert_eq!(err.got(), "4 bytes");
    let nsproxy_err = nsproxy::Error::from(err);
    assert!(matches!(nsproxy_err, nsproxy::Error::Protocol { .. }));
    assert_eq!(nsproxy_err.raw_os_error(), Some(libc::EPROTO));
}

fn spec() -> SpawnSpec {
    SpawnSpec {
        program: b"/bin/true".to_vec(),
        arg0: None,
        args: vec![],
        env: vec![],
        cwd: None,
        pgroup: None,
        kill_on_drop: false,
        stdio: [StdioSpec::Null; 3],
        in_netns: false,
    }
}

fn cbytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..40)
}

fn stdio() -> impl Strategy<Value = StdioSpec> {
    prop_oneof![
        Just(StdioSpec::Null),
        Just(StdioSpec::Pipe),
        Just(StdioSpec::Fd)
    ]
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    "[a-z0-9_-]{1,20}".prop_map(String::into_bytes)
}

fn request() -> impl Strategy<Value = Request> {
    let spawn = (
        prop::collection::vec(1u8..=255, 1..40),
        prop::option::of(cbytes()),
        prop::collection::vec(cbytes(), 0..6),
        prop::collection::vec(cbytes(), 0..6),
        prop::option::of(cbytes()),
        prop::option::of(0i32..100_000),
        any::<bool>(),
        [stdio(), stdio(), stdio()],
        any::<bool>(),
    )
        .prop_map(
            |(program, arg0, args, env, cwd, pgroup, kill_on_drop, stdio, in_netns)| {
                Request::Spawn(SpawnSpec {
                    program,
                    arg0,
                    args,
                    env,
                    cwd,
                    pgroup,
                    kill_on_drop,
                    stdio,
                    in_netns,
                })
            },
        );
    prop_oneof![
        (any::<bool>(), prop::option::of(name())).prop_map(|(user_ns, exec_name)| {
            Request::Hello {
                version: VERSION,
                user_ns,
                exec_name,
            }
        }),
        (any::<i32>(), any::<i32>(), any::<i32>()).prop_map(|(domain, ty, protocol)| {
            Request::OpenSocket {
                domain,
                ty,
                protocol,
            }
        }),
        any::<i32>().prop_map(|protocol| Request::OpenRelay { protocol }),
        spawn,
        (any::<bool>(), prop::option::of(cbytes()), any::<bool>()).prop_map(
            |(create, dir, detach)| Request::UserHello {
                version: VERSION,
                create,
                dir: dir.map(|d| [b"/".as_slice(), &d].concat()),
                detach,
            }
        ),
        prop::option::of(name()).prop_map(|name| Request::NewNetNs { name }),
        name().prop_map(|name| Request::NameNetNs { name }),
        (any::<i32>(), any::<i32>(), any::<i32>()).prop_map(|(domain, ty, protocol)| {
            Request::OpenSocketIn {
                domain,
                ty,
                protocol,
            }
        }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(version, pid)| Reply::Ready { version, pid }),
        Just(Reply::Socket),
        Just(Reply::Relay),
        (any::<i32>(), any::<[bool; 3]>()).prop_map(|(pid, stdio)| Reply::Spawned { pid, stdio }),
        (any::<i32>(), any::<i32>()).prop_map(|(pid, status)| Reply::Exited { pid, status }),
        (
            any::<u16>(),
            any::<i32>(),
            prop::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(|(step, errno, detail)| Reply::Failed {
                step: Step::from_code(step),
                errno,
                detail
            }),
    ]
}

fn relay() -> impl Strategy<Value = RelayFrame> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(port, groups, data)| RelayFrame::Datagram { port, groups, data }),
        (1i32..4096).prop_map(RelayFrame::Errno),
    ]
}

proptest! {
    #[test]
    fn request_round_trip(id in any::<u32>(), req in request()) {
        let bytes = enc_req(id, &req);
        prop_assert_eq!(proto::decode_request(&bytes, req.fd_count()), Ok((id, req.clone())));
        // Every strict prefix is rejected, never misread.
        for cut in 0..bytes.len() {
            prop_assert!(proto::decode_request(&bytes[..cut], req.fd_count()).is_err());
        }
        // Any other fd count is rejected.
        let other = req.fd_count() + 1;
        prop_assert!(
            matches!(
                proto::decode_request(&bytes, other),
                Err(ProtoError::UnexpectedFds { .. })
            ),
            "an extra fd was accepted"
        );
    }

    #[test]
    fn reply_round_trip(id in any::<u32>(), reply in reply()) {
        let bytes = enc_reply(id, &reply);
        prop_assert_eq!(proto::decode_reply(&bytes, reply.fd_count()), Ok((id, reply.clone())));
        for cut in 0..bytes.len() {
            prop_assert!(proto::decode_reply(&bytes[..cut], reply.fd_count()).is_err());
        }
    }

    #[test]
    fn relay_round_trip(frame in relay()) {
        let mut bytes = Vec::new();
        proto::encode_relay(&frame, &mut bytes);
        prop_assert_eq!(proto::decode_relay(&bytes, 0), Ok(frame));
        for cut in 0..proto::RELAY_HEADER_LEN {
            prop_assert!(proto::decode_relay(&bytes[..cut], 0).is_err());
        }
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), fds in 0usize..5) {
        let _ = proto::decode_request(&bytes, fds);
        let _ = proto::decode_reply(&bytes, fds);
        let _ = proto::decode_relay(&bytes, fds);
    }

    #[test]
    fn mutated_frames_never_panic(
        req in request(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = enc_req(1, &req);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        // Either it decodes to some valid request that re-encodes to the same
        // bytes, or it is rejected: never a panic, never a silent misparse.
        if let Ok((id, decoded)) = proto::decode_request(&bytes, req.fd_count()) {
            prop_assert_eq!(enc_req(id, &decoded), bytes);
        }
    }
}
