//! Public types and futures are Send (and Sync where it matters), so they can
//! be spawned and shared across tasks. Checked at compile time.

use std::future::Future;

use netns::{Handle, MulticastGroup, OpenMode};

fn send<T: Send>(_: &T) {}
fn send_sync<T: Send + Sync>() {}
fn unpin<T: Unpin>() {}

#[allow(dead_code)]
async fn futures_are_send(h: &Handle, ns: &netns::NetNs, owned: Handle) {
    fn check<F: Future + Send>(f: F) -> F {
        f
    }
    let _ = check(Handle::open("x", OpenMode::OpenOnly));
    let _ = check(Handle::builder("x").open());
    let _ = check(h.connection());
    let _ = check(h.events(&[MulticastGroup::Link]));
    let _ = check(h.move_link("a", "b").execute());
    let _ = check(h.add_veth("a", "b").execute());
    let _ = check(h.link_index("lo"));
    let _ = check(h.nsid("b"));
    let _ = check(h.set_nsid("b", netns::Nsid::Auto));
    let _ = check(h.list_nsids());
    let _ = check(h.tcp_listener("127.0.0.1:0".parse().unwrap()));
    let _ = check(h.tcp_connect("127.0.0.1:1".parse().unwrap()));
    let _ = check(h.udp_bind("127.0.0.1:0".parse().unwrap()));
    let _ = check(h.socket(0, 0, 0));
    let _ = check(netns::connection(ns));
    let _ = check(owned.close());
}

#[test]
fn types_are_send_sync_unpin() {
    send_sync::<Handle>();
    send_sync::<netns::Error>();
    send_sync::<netns::Target>();
    send_sync::<netns::NetlinkSocket>();
    send_sync::<netns::Event>();
    unpin::<netns::Events>();
    unpin::<netns::NetlinkSocket>();
    fn only_send<T: Send>() {}
    only_send::<netns::Events>();
    only_send::<netns::Connection>();
    send(&());
}
