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

const H0: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];
const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// SHA-512 (FIPS 180-4), for the chain name: the one hash the plugin needs.
fn sha512(data: &[u8]) -> [u8; 64] {
    let mut h = H0;
    let bit_len = (data.len() as u128) * 8;
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 128 != 112 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(128) {
        let mut w = [0u64; 80];
        for (i, word) in block.chunks_exact(8).enumerate() {
            w[i] = u64::from_be_bytes(word.try_into().unwrap_or([0; 8]));
        }
        for i in 16..80 {
            let s0 = w[i - 15].rotate_right(1) ^ w[i - 15].rotate_right(8) ^ (w[i - 15] >> 7);
            let s1 = w[i - 2].rotate_right(19) ^ w[i - 2].rotate_right(61) ^ (w[i - 2] >> 6);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..80 {
            let s1 = e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 64];
    for (i, x) in h.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&x.to_be_bytes());
    }
    out
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
