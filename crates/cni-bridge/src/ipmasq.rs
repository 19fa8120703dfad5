//! `ipMasq`: the reference bridge plugin's source NAT, the way it does it
//! (containernetworking/plugins `pkg/ip/ipmasq_linux.go`, v1.1): for each
//! container address, a chain `CNI-<24 hex digits>` in the `nat` table that
//! accepts traffic to the container's subnet and masquerades the rest
//! (multicast excepted), and a jump to it from `POSTROUTING` for the
//! container's source address; all three rules carry the comment
//! `name: "<network>" id: "<container id>"`. The rules are made by running
//! `iptables` / `ip6tables` (with `--wait`) in the plugin's own namespace,
//! the host's, as the reference's iptables library does.

use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::types::Cidr;

/// The chain of a network and a container, as the reference names it
/// (`utils.FormatChainName`): `CNI-` and the first 24 hex digits of the
/// SHA-512 of the network name followed by the container id.
pub(crate) fn chain_name(net: &str, container_id: &str) -> String {
    let digest = sha512(format!("{net}{container_id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("CNI-{}", &hex[..24])
}

/// Go's `%q` of a string (what the reference's comment uses).
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The rules' comment (`utils.FormatComment`).
pub(crate) fn comment(net: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(net), go_quote(container_id))
}

/// Go's `IP.IsGlobalUnicast`: the addresses DEL tears masquerading down
/// for (the reference collects them from the interface it deletes).
pub(crate) fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_link_local()
                || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// One `iptables --wait` (or `ip6tables`) run; its stdout, or why it failed.
async fn run(v6: bool, args: &[&str]) -> Result<String> {
    let prog = if v6 { "ip6tables" } else { "iptables" };
    let out = tokio::process::Command::new(prog)
        .arg("--wait")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| Error::Exec {
            plugin: prog.into(),
            source,
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(Error::Iptables {
        command: format!("{prog} --wait {}", args.join(" ")),
        status: out.status.code(),
        msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Whether an iptables failure says the rule or chain is not there (the
/// reference library's `IsNotExist`, which it ignores on teardown).
fn not_exist(e: &Error) -> bool {
    match e {
        Error::Iptables { status, msg, .. } => {
            *status == Some(1)
                && (msg.contains("does a matching rule exist in that chain?")
                    || msg.contains("No chain/target/match by that name"))
        }
        _ => false,
    }
}

/// `-A` unless `-C` finds the rule (the library's `AppendUnique`).
async fn append_unique(v6: bool, chain: &str, rule: &[&str]) -> Result<()> {
    let mut check = vec!["-t", "nat", "-C", chain];
    check.extend_from_slice(rule);
    match run(v6, &check).await {
        Ok(_) => return Ok(()),
        // `-C` exits 1 when the rule is not there.
        Err(Error::Iptables {
            status: Some(1), ..
        }) => {}
        Err(e) => return Err(e),
    }
    let mut add = vec!["-t", "nat", "-A", chain];
    add.extend_from_slice(rule);
    run(v6, &add).await.map(|_| ())
}

/// The reference's `SetupIPMasq` for one container address (`addr` with
/// its prefix, as IPAM gave it).
pub(crate) async fn setup(addr: &Cidr, chain: &str, comment: &str) -> Result<()> {
    let v6 = !addr.is_ipv4();
    let multicast = if v6 { "ff00::/8" } else { "224.0.0.0/4" };
    let listed = run(v6, &["-t", "nat", "-S"]).await?;
    let exists = listed
        .lines()
        .any(|l| l.strip_prefix("-N ").map(str::trim) == Some(chain));
    if !exists {
        run(v6, &["-t", "nat", "-N", chain]).await?;
    }
    let subnet = addr.to_string();
    append_unique(
        v6,
        chain,
        &[
            "-d",
            &subnet,
            "-j",
            "ACCEPT",
            "-m",
            "comment",
            "--comment",
            comment,
        ],
    )
    .await?;
    append_unique(
        v6,
        chain,
        &[
            "!",
            "-d",
            multicast,
            "-j",
            "MASQUERADE",
            "-m",
            "comment",
            "--comment",
            comment,
        ],
    )
    .await?;
    let ip = addr.addr.to_string();
    append_unique(
        v6,
        "POSTROUTING",
        &[
            "-s",
            &ip,
            "-j",
            chain,
            "-m",
            "comment",
            "--comment",
            comment,
        ],
    )
    .await
}

/// The reference's `TeardownIPMasq`: the jump (and the older `-s
/// <ip>/<prefix>` form of it), then the chain; what is already gone is not
/// an error.
pub(crate) async fn teardown(addr: &Cidr, chain: &str, comment: &str) -> Result<()> {
    let v6 = !addr.is_ipv4();
    let ip = addr.addr.to_string();
    let with_prefix = addr.to_string();
    for src in [ip.as_str(), with_prefix.as_str()] {
        let rule = [
            "-t",
            "nat",
            "-D",
            "POSTROUTING",
            "-s",
            src,
            "-j",
            chain,
            "-m",
            "comment",
            "--comment",
            comment,
        ];
        match run(v6, &rule).await {
            Ok(_) => {}
            Err(e) if not_exist(&e) => {}
            Err(e) => return Err(e),
        }
    }
    for op in ["-F", "-X"] {
        match run(v6, &["-t", "nat", op, chain]).await {
            Ok(_) => {}
            Err(e) if not_exist(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// ADD's masquerading for all the container's addresses; if one fails,
/// what the others made is removed before the error returns.
pub(crate) async fn setup_all(addrs: &[Cidr], net: &str, container_id: &str) -> Result<()> {
    let chain = chain_name(net, container_id);
    let comment = comment(net, container_id);
    for a in addrs {
        if let Err(e) = setup(a, &chain, &comment).await {
            for a in addrs {
                let _ = teardown(a, &chain, &comment).await;
            }
            return Err(e);
        }
    }
    Ok(())
}

/// DEL's teardown for the addresses the container's interface had.
pub(crate) async fn teardown_all(addrs: &[Cidr], net: &str, container_id: &str) -> Result<()> {
    let chain = chain_name(net, container_id);
    let comment = comment(net, container_id);
    for a in addrs {
        teardown(a, &chain, &comment).await?;
    }
    Ok(())
}

/// SHA-512 (FIPS 180-4), for the chain name: the one hash the plugin needs.
fn sha512(data: &[u8]) -> [u8; 64] {
    use sha2::Digest;
    sha2::Sha512::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_known_answers() {
        let hex = |d: [u8; 64]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha512(b"abc")),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        // Two blocks (the padding spills over).
        assert_eq!(
            hex(sha512(&[b'a'; 200])),
            "4b11459c33f52a22ee8236782714c150a3b2c60994e9acee17fe68947a3e6789\
             f31e7668394592da7bef827cddca88c4e6f86e4df7ed1ae6cba71f3e98faee9f"
        );
    }

    #[test]
    fn chain_and_comment_as_the_reference() {
        assert_eq!(chain_name("mynet", "ctr1"), "CNI-5145007e2a8415ce07579739");
        assert_eq!(comment("mynet", "ctr1"), r#"name: "mynet" id: "ctr1""#);
        assert!(is_global_unicast("10.1.0.2".parse().unwrap()));
        assert!(!is_global_unicast("fe80::1".parse().unwrap()));
    }
}
