//! Public types and futures are Send (and Sync where it matters), so they can
//! be spawned and shared across tasks. Checked at compile time.

use std::future::Future;

use netns::{Handle, MulticastGroup, OpenMode};
use testkit::{send, send_sync, unpin};

#[allow(dead_code)]
async fn futures_are_send(h: &Handle, ns: &netns::NetNs, owned: Handle) {
    fn check<F: Future + Send>(f: F) {
        drop(f);
    }
    check(Handle::open("x", OpenMode::OpenOnly));
    check(Handle::builder("x").open());
    check(h.connection());
    check(h.events(&[MulticastGroup::Link]));
    check(h.move_link("a", "b").execute());
    check(h.add_veth("a", "b").execute());
    check(h.link_index("lo"));
    check(h.nsid("b"));
    check(h.set_nsid("b", netns::Nsid::Auto));
    check(h.list_nsids());
    check(h.nsid_list().target_nsid(1).names(false).execute());
    check(h.tcp_listener("127.0.0.1:0".parse().unwrap()));
    check(h.tcp_connect("127.0.0.1:1".parse().unwrap()));
    check(h.udp_bind("127.0.0.1:0".parse().unwrap()));
    check(h.socket(0, 0, 0));
    check(netns::connection(ns));
    check(owned.close());
}

#[test]
fn types_are_send_sync_unpin() {
    // A tuple is Send and Sync only if each of its types is.
    send_sync::<(
        Handle,
        netns::Error,
        netns::Target,
        netns::NetlinkSocket,
        netns::Event,
    )>();
    // A tuple is Unpin only if each of its types is.
    unpin::<(netns::Events, netns::NetlinkSocket)>();
    fn only_send<T: Send>() {}
    only_send::<netns::Events>();
    only_send::<netns::Connection>();
    send(&());
}
