//! Creates a network namespace, runs `ip addr` inside it (the fast path,
//! then the `ip netns exec` path), prints the output, and removes the
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
    // Remove the namespace whatever happened.
    dir.remove(&name).await?;
    result
}

async fn run(name: &NsName) -> Result<(), Box<dyn std::error::Error>> {
    let out = Command::new("ip").arg("addr").netns(name).output().await?;
    println!("ip addr in {name} (exit {}):", out.status);
    print!("{}", String::from_utf8_lossy(&out.stdout));

    let out = Command::new("ip")
        .arg("addr")
        .netns(name)
        .exec_mode(ExecMode::IpNetnsExec)
        .output()
        .await;
    match out {
        Ok(out) => {
            println!("ip netns exec {name} ip addr (exit {}):", out.status);
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
        Err(err) => println!("exec path: {err}"),
    }
    Ok(())
}
