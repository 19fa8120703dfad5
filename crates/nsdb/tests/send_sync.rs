//! The public types and futures can cross threads and tasks.

use std::time::Duration;

use nsdb::{Change, Changes, Namespace, NsView, Snapshot, Transaction, View};
use testkit::{send, send_sync, unpin};

#[test]
fn types_are_send_and_sync() {
    // A tuple is Send and Sync only if each of its types is.
    send_sync::<(View, Snapshot, NsView, Change, nsdb::Error, Transaction)>();
    unpin::<Changes>();
    fn stream_send<T: Send + futures::Stream>() {}
    stream_send::<Changes>();
}

#[allow(dead_code, clippy::diverging_sub_expression, unreachable_code)]
fn futures_are_send(view: View, ns: Namespace) {
    send(&View::builder().build());
    send(&view.add(ns.clone()));
    send(&view.dump(&ns));
    send(&view.handle(&ns));
    send(&view.wait_for("x", Duration::from_secs(1), |_| true));
    send(&view.transaction().commit());
}
