//! Every request ends with its answer or an error: when the relay agent dies
//! or stops, when a request cannot be sent, and when many tasks dump on one
//! handle at once (the kernel runs one dump per socket at a time).

mod common;

use std::time::Duration;

use common::{Ns, add_ifbs};
use futures::StreamExt;
use futures::TryStreamExt;
use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netns::{Handle, Transport};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A bound for waits that must end: a hang fails the test instead.
const HANG: Duration = Duration::from_secs(20);

async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// A builder for a relay handle on the existing namespace `ns`.
fn relay_builder(ns: &Ns) -> netns::Builder {
    Handle::builder(ns.name())
        .mode(netns::OpenMode::OpenOnly)
        .transport(Transport::Relay)
}

fn signal_agent(h: &Handle, signal: Signal) {
    let pid = h.agent().expect("a relay handle has an agent").pid();
    kill(Pid::from_raw(pid), signal).unwrap();
}

/// Resumes a stopped agent when dropped, so that a failing test leaves no
/// stopped process behind.
struct Resume(i32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_and_a_get_in_flight_when_the_agent_dies_fail() {
    let ns = Ns::new("agentdies").await;
    add_ifbs(&ns, 200).await;
    let h = common::open(ns.name(), Transport::Relay).await;
    assert_eq!(common::link_names(&h).await.len(), 201);
    // Stopped, the agent answers nothing: both requests are in flight (or
    // about to be sent) when it dies.
    signal_agent(&h, Signal::SIGSTOP);
    let dump = h.rtnetlink().link().get().execute();
    let get = h.rtnetlink().link().get().match_index(1).execute();
    signal_agent(&h, Signal::SIGKILL);
    let dumped: Result<Vec<LinkMessage>, _> = bounded("the dump", dump.try_collect()).await;
    let got = bounded("the get", get.try_collect::<Vec<_>>()).await;
    let err = dumped.expect_err("a dump whose transport died must fail, not end empty");
    // ECONNRESET if it died with the request sent, EPIPE if before.
    assert!(
        matches!(
            netns::error_code(&err),
            Some(libc::ECONNRESET | libc::EPIPE)
        ),
        "{err:?}"
    );
    assert!(
        got.is_err(),
        "a get whose transport died must fail: {got:?}"
    );
    // The handle's own operations fail too, and say so.
    let err = bounded("link_index", h.link_index("lo")).await.unwrap_err();
    assert!(matches!(err, netns::Error::Request { .. }), "{err:?}");
    bounded("close", h.close()).await;
}

/// A request larger than the transport takes (the kernel's send buffer, or
/// the relay's largest frame).
fn oversized_request() -> NetlinkMessage<RouteNetlinkMessage> {
    let mut msg = LinkMessage::default();
    msg.header.index = 1;
    for _ in 0..5 {
        msg.attributes
            .push(LinkAttribute::IfAlias("x".repeat(60_000)));
    }
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::SetLink(msg));
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    req
}

both_transports! {
    async fn a_request_that_cannot_be_sent_fails_and_the_handle_goes_on(transport) {
        let ns = Ns::new("unsendable").await;
        let h = common::open(ns.name(), transport).await;
        let replies: Vec<_> = bounded(
            "the oversized request",
            h.rtnetlink().clone().request(oversized_request()).unwrap().collect(),
        )
        .await;
        // Without an answer, rtnetlink would report an empty success.
        match replies.first().map(|m| &m.payload) {
            Some(NetlinkPayload::Error(e)) => {
                assert_eq!(e.code.map(|c| -c.get()), Some(libc::EMSGSIZE), "{e:?}")
            }
            other => panic!("expected an EMSGSIZE error, got {other:?}"),
        }
        // The connection survived it.
        assert_eq!(bounded("link_index", h.link_index("lo")).await.unwrap(), 1);
        h.close().await;
    }

    async fn sixteen_tasks_dumping_on_one_handle_all_get_the_full_answer(transport) {
        let ns = Ns::new("dumps16").await;
        add_ifbs(&ns, 300).await;
        let h = common::open(ns.name(), transport).await;
        let lo_up = rtnetlink::LinkUnspec::new_with_index(1).up().build();
        h.rtnetlink().link().set(lo_up).execute().await.unwrap();
        let count = |h: &Handle| {
            let addrs = h.rtnetlink().address().get().execute();
            async move { addrs.try_collect::<Vec<_>>().await.map(|a| a.len()) }
        };
        // lo's addresses, dumped alone.
        let addresses = count(&h).await.unwrap();
        assert!(addresses > 0);
        let h = std::sync::Arc::new(h);
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let h = std::sync::Arc::clone(&h);
                tokio::spawn(async move {
                    for _ in 0..3 {
                        if i % 2 == 0 {
                            let links: Vec<_> =
                                h.rtnetlink().link().get().execute().try_collect().await?;
                            assert_eq!(links.len(), 301);
                        } else {
                            // Only lo has addresses; the dump still runs
                            // through every link.
                            assert_eq!(count(&h).await?, addresses);
                        }
                    }
                    Ok::<_, rtnetlink::Error>(())
                })
            })
            .collect();
        for task in tasks {
            let res = bounded("a dumping task", task).await.unwrap();
            if let Err(e) = res {
                panic!("a concurrent dump failed: {e} ({:?})", netns::error_code(&e));
            }
        }
        std::sync::Arc::into_inner(h).unwrap().close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_stopped_agent_times_out() {
    let ns = Ns::new("stopped").await;
    let h = relay_builder(&ns)
        .request_timeout(Duration::from_millis(300))
        .open()
        .await
        .unwrap();
    assert_eq!(h.link_index("lo").await.unwrap(), 1);
    signal_agent(&h, Signal::SIGSTOP);
    let resume = Resume(h.agent().unwrap().pid());
    let got = bounded(
        "get link",
        h.rtnetlink()
            .link()
            .get()
            .match_index(1)
            .execute()
            .try_collect::<Vec<_>>(),
    )
    .await;
    let err = got.expect_err("a get with no answer must time out");
    assert_eq!(netns::error_code(&err), Some(libc::ETIMEDOUT), "{err:?}");
    // The handle's own operations say it is a timeout.
    let err = bounded("link_index", h.link_index("lo")).await.unwrap_err();
    assert!(
        matches!(err, netns::Error::Timeout { op: "get link", .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    // Resumed, the agent's late answers are dropped and new requests get
    // their own answers.
    drop(resume);
    for _ in 0..3 {
        let links = bounded("a dump", common::link_names(&h)).await;
        assert_eq!(links, ["lo"]);
    }
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_past_the_open_timeout_fails_with_a_timeout() {
    let ns = Ns::new("opento").await;
    // Starting an agent takes a process start: never done within 1 ns.
    let err = relay_builder(&ns)
        .open_timeout(Duration::from_nanos(1))
        .open()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            netns::Error::Timeout {
                op: "open handle",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT));
    // A deadline that leaves time is met.
    let h = relay_builder(&ns).open_timeout(HANG).open().await.unwrap();
    h.close().await;
}
