//! `Executor::init_global`: the process-wide executor made with the size a
//! program asks for, once; `global` then returns that one. Its own test
//! binary, so no other test made the global executor first.

use nsfs::{Executor, NetNs};

#[tokio::test(flavor = "current_thread")]
async fn init_global_sizes_the_process_wide_executor_once() {
    let exec = Executor::init_global(1).unwrap();
    assert_eq!(exec.size(), 1);
    assert!(std::ptr::eq(exec, Executor::global().unwrap()));
    // Once made, a later size is not applied.
    let again = Executor::init_global(5).unwrap();
    assert!(std::ptr::eq(exec, again));
    assert_eq!(again.size(), 1);
    // It runs jobs, in the namespace asked for.
    let (ns, inside) = exec
        .run_in_new(|| NetNs::current_thread().unwrap().id())
        .await
        .unwrap();
    assert_eq!(ns.id(), inside);
    let home = NetNs::current_thread().unwrap();
    let back = home
        .run(|| NetNs::current_thread().unwrap().id())
        .await
        .unwrap();
    assert_eq!(back, home.id());
}
