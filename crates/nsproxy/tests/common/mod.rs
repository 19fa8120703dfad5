//! Helpers shared by nsproxy's integration tests.

use nsfs::NetNs;

/// A fresh anonymous network namespace (the test must run as root).
pub(crate) async fn anon_ns() -> NetNs {
    testkit::require_root();
    nsfs::Executor::global()
        .unwrap()
        .run_in_new(|| ())
        .await
        .unwrap()
        .0
}

/// A fresh anonymous namespace and an agent started in it.
#[allow(dead_code)] // not every test binary starts agents this way
pub(crate) async fn ns_and_agent() -> (NetNs, nsproxy::Agent) {
    let ns = anon_ns().await;
    let agent = testkit::guard(nsproxy::Agent::start(&ns, nsproxy::AgentOptions::new()))
        .await
        .unwrap();
    (ns, agent)
}
