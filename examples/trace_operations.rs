//! What the toolkit tells a `tracing` subscriber: every public async
//! operation is a span named by the operation (`create`, `open`,
//! `agent_start`, `move_link`, `status`, `remove`, ...) carrying the
//! namespace's name and inode and its outcome, and a normal run logs no WARN
//! or ERROR.
//!
//! The example walks two namespaces through their life, with every crate, and
//! prints the spans as they close (`RUST_LOG` overrides the filter, e.g.
//! `RUST_LOG=nsfs=trace,netns=debug`). One operation fails on purpose (a
//! namespace that does not exist) to show `outcome=error` and its `error`.
//!
//! Run with `cargo run --example trace_operations` (as root).

use netns::nsproc::ExecMode;
use netns::{Handle, NsName, OpenMode, RunDir, Transport};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("nsfs=debug,nsproxy=debug,nsproc=debug,netns=debug,nsdb=debug")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::CLOSE)
        .with_target(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();

    let pid = std::process::id();
    let blue = NsName::new(format!("trace-blue-{pid}"))?;
    let red = NsName::new(format!("trace-red-{pid}"))?;
    let result = run(&blue, &red).await;
    let dir = RunDir::default();
    for name in [&blue, &red] {
        if dir.open(name).is_ok() {
            dir.remove(name).await?;
        }
    }
    result
}

async fn run(blue: &NsName, red: &NsName) -> Result<()> {
    println!("-- create, open (direct and relay), veth moved by name");
    let dir = RunDir::default();
    dir.create(blue, OpenMode::CreateExclusive).await?;
    let direct = Handle::open(blue, OpenMode::OpenOnly).await?;
    let relay = Handle::builder(blue)
        .transport(Transport::Relay)
        .open()
        .await?;
    let red_handle = Handle::open(red, OpenMode::CreateOrOpen).await?;
    direct.add_veth("tr0", "tr1").execute().await?;
    direct.move_link("tr1", red).execute().await?;

    println!("-- a failure: opening a namespace that does not exist");
    let missing = Handle::open("trace-missing", OpenMode::OpenOnly).await;
    println!(
        "   -> {}",
        missing.err().map(|e| e.to_string()).unwrap_or_default()
    );

    println!("-- programs on both launch paths");
    direct.command("true").status().await?;
    direct
        .command("true")
        .exec_mode(ExecMode::IpNetnsExec)
        .status()
        .await?;

    println!("-- a live view");
    let view = nsdb::View::builder()
        .namespace(nsdb::Namespace::named(blue.as_str())?)
        .build()
        .await?;
    drop(view);

    println!("-- close and remove");
    relay.close().await;
    direct.close().await;
    red_handle.close().await;
    Ok(())
}
