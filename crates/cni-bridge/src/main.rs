//! `netns-bridge`: the CNI bridge plugin of the netns toolkit.
//!
//! One process per call, as the CNI spec has it: a current-thread tokio
//! runtime (no worker pool to start for a process that lives a few
//! milliseconds), the configuration read from stdin, the answer written to
//! stdout, exit status 0 or 1.

// The layout of `execute`'s future (host and container sides joined, each
// a chain of netlink requests) nests deeper than rustc's default query
// depth in release builds.
#![recursion_limit = "256"]

use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    let inv = cni_bridge::Invocation::from_env(Vec::new());
    let reply = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => {
            let inv = cni_bridge::Invocation::from_env(stdin);
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(cni_bridge::execute(&inv)),
                Err(source) => error_reply(cni_bridge::Error::Runtime { source }),
            }
        }
        Err(source) => error_reply(cni_bridge::Error::ReadStdin { source }),
    };
    drop(inv);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&reply.stdout);
    let _ = out.flush();
    std::process::exit(if reply.success { 0 } else { 1 });
}

fn error_reply(e: cni_bridge::Error) -> cni_bridge::Reply {
    let body = serde_json::json!({"code": e.code(), "msg": e.to_string()});
    cni_bridge::Reply {
        stdout: format!("{body}\n").into_bytes(),
        success: false,
    }
}
