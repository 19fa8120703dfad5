//! Watches link and address events in three namespaces at once with
//! `tokio::select!`, while another task changes things in each: what a
//! service managing many namespaces does (`ip -n NAME monitor`, times three).
//!
//! Run with `cargo run --example select_events` (as root).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::StreamExt;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netns::{Event, Events, Handle, MulticastGroup, NsName, OpenMode, RunDir};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let pid = std::process::id();
    let names: Vec<NsName> = ["red", "green", "blue"]
        .iter()
        .map(|c| NsName::new(format!("{c}-{pid}")))
        .collect::<std::result::Result<_, _>>()?;
    let result = run(&names).await;
    let dir = RunDir::default();
    for name in &names {
        if dir.open(name).is_ok() {
            dir.remove(name).await?;
            println!("removed namespace {name}");
        }
    }
    result
}

fn describe(event: &Event) -> String {
    match event {
        Event::Overrun => "OVERRUN: events lost, dump again".into(),
        Event::Message(msg) => match &msg.payload {
            NetlinkPayload::InnerMessage(m) => match m {
                RouteNetlinkMessage::NewLink(l) => format!("new link {}", l.header.index),
                RouteNetlinkMessage::DelLink(l) => format!("del link {}", l.header.index),
                RouteNetlinkMessage::NewAddress(a) => format!("new address on {}", a.header.index),
                RouteNetlinkMessage::DelAddress(a) => format!("del address on {}", a.header.index),
                other => format!("{:?}", other.message_type()),
            },
            other => format!("{other:?}"),
        },
        _ => "other".into(),
    }
}

async fn run(names: &[NsName]) -> Result<()> {
    let mut handles = Vec::new();
    let mut streams: Vec<Events> = Vec::new();
    for name in names {
        let h = Handle::open(name, OpenMode::CreateExclusive).await?;
        streams.push(
            h.events(&[MulticastGroup::Link, MulticastGroup::Ipv4Ifaddr])
                .await?,
        );
        println!("created {name} and subscribed to its link and IPv4 address events");
        handles.push(h);
    }

    // Make changes in every namespace, from another task.
    let changes = tokio::spawn(async move {
        for (i, h) in handles.iter().enumerate() {
            h.add_veth("ev0", "ev1").execute().await?;
            let index = h.link_index("ev0").await?;
            let ip = IpAddr::V4(Ipv4Addr::new(10, 9, i as u8, 1));
            h.rtnetlink().address().add(index, ip, 24).execute().await?;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(handles)
    });

    let [red, green, blue] = &mut streams[..] else {
        unreachable!()
    };
    let mut seen = 0;
    let quiet = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(quiet);
    loop {
        let (who, event) = tokio::select! {
            Some(e) = red.next() => (&names[0], e),
            Some(e) = green.next() => (&names[1], e),
            Some(e) = blue.next() => (&names[2], e),
            _ = &mut quiet => break,
        };
        println!("{who}: {}", describe(&event?));
        seen += 1;
        // Stop a moment after the last change.
        if changes.is_finished() {
            quiet
                .as_mut()
                .reset(tokio::time::Instant::now() + Duration::from_millis(300));
        }
    }
    let handles = changes.await?.map_err(|e| e.to_string())?;
    println!("{seen} events from 3 namespaces");
    for h in handles {
        h.close().await;
    }
    Ok(())
}
