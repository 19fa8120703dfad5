//! Creates a network namespace, runs `ip addr` inside it (on the fast path,
//! then on the `ip netns exec` path), prints the output, and removes the
//! namespace: pyroute2's `NSPopen(name, ["ip", "addr"], stdout=PIPE)`.
//!
//! Run with `cargo run --example exec_ip_addr` (as root; the cargo runner gives
//! the example a private /run/netns).

use nsfs::{NsName, OpenMode, RunDir};
use nsproc::{Command, ExecMode};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = RunDir::default();
    let name = NsName::new(format!("exec-ip-addr-{}", std::process::id()))?;
    dir.create(&name, OpenMode::CreateExclusive).await?;
    let result = run(&name).await;
    // The exec path keeps its agent for a moment for reuse; let it go so the
    // namespace is freed with its name.
    nsproc::close_cached_agents();
    dir.remove(&name).await?;
    result
}

async fn run(name: &NsName) -> Result<(), Box<dyn std::error::Error>> {
    for (mode, how) in [
        (ExecMode::Fast, "fast path"),
        (ExecMode::IpNetnsExec, "ip netns exec path"),
    ] {
        let out = Command::new("ip")
            .arg("addr")
            .netns(name)
            .exec_mode(mode)
            .output()
            .await?;
        println!("ip addr in {name}, {how} ({}):", out.status);
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            return Err(format!("ip addr failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
    }
    Ok(())
}
