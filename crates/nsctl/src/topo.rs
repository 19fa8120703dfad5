//! `nsctl topo`: declared topologies (nstopo) from the command line.
//!
//! ```text
//! nsctl [-j [-p]] topo show FILE
//! nsctl topo draw [--format dot|mermaid|svg] [-o OUT] FILE
//! ```
//!
//! Not in ip, so not bound by ip's grammar: the subcommands take options
//! after them (clap's). Errors print nstopo's words (a malformed file names
//! its file, line and column; an invalid one lists every problem) and exit
//! 255 for a bad file or value, 1 otherwise.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use nsdb::{Namespace, View};
use nsfs::{NsName, RunDir};
use nstopo::{DrawFormat, Drawing, Topology};

use crate::error::{Error, Result};
use crate::json::{self, Style};

/// The `topo` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TopoCommand {
    /// Print the topology as read and checked (with -j, as JSON); a file
    /// that cannot be right gets every problem listed, with its line.
    Show {
        /// The topology file (YAML, or JSON if it ends in .json).
        file: PathBuf,
    },
    /// Draw the live topology: the declared nodes as the kernel has them,
    /// veth pairs labelled with interfaces and addresses, bridges as nodes.
    Draw {
        /// dot (Graphviz), mermaid, or svg (rendered by Graphviz's `dot`).
        #[arg(short = 'f', long, default_value = "dot")]
        format: String,
        /// Write here instead of standard output.
        #[arg(short = 'o', long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// The topology file.
        file: PathBuf,
    },
}

/// Runs a `topo` subcommand; returns the exit code.
pub(crate) async fn run(style: Style, command: TopoCommand) -> Result {
    match command {
        TopoCommand::Show { file } => show(style, &file),
        TopoCommand::Draw {
            format,
            output,
            file,
        } => draw(&format, output.as_deref(), &file).await,
    }
}

fn topo_err(op: &'static str) -> impl FnOnce(nstopo::Error) -> Error {
    move |source| Error::Topo { op, source }
}

fn read(op: &'static str, file: &Path) -> Result<Topology> {
    Topology::from_path(file).map_err(topo_err(op))
}

// ---------------------------------------------------------------- show

fn show(style: Style, file: &Path) -> Result {
    let topo = match Topology::from_path(file) {
        Ok(t) => t,
        Err(nstopo::Error::Invalid { file, problems }) if style.json => {
            // The problems are the answer: JSON on standard output too.
            #[derive(serde::Serialize)]
            struct Problems<'a> {
                file: Option<String>,
                problems: &'a [nstopo::Problem],
            }
            print!(
                "{}",
                json::render(
                    &Problems {
                        file: file.clone(),
                        problems: &problems
                    },
                    style.pretty
                )
            );
            return Err(Error::Topo {
                op: "show",
                source: nstopo::Error::Invalid { file, problems },
            });
        }
        Err(e) => return Err(topo_err("show")(e)),
    };
    if style.json {
        print!("{}", json::render(&topo, style.pretty));
        return Ok(0);
    }
    let mut out = String::new();
    describe(&topo, &mut out);
    print!("{out}");
    Ok(0)
}

/// The topology in words, one object a line.
fn describe(topo: &Topology, out: &mut String) {
    use std::fmt::Write as _;
    let joined = |v: &[nstopo::IfAddr]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        out,
        "topology {}: {} nodes, {} links",
        topo.name,
        topo.nodes.len(),
        topo.links.len()
    );
    for n in &topo.nodes {
        let _ = writeln!(out, "node {}", n.name);
        for (k, v) in &n.sysctls {
            let _ = writeln!(out, "    sysctl {k} = {v}");
        }
        if !n.loopback.is_empty() {
            let _ = writeln!(out, "    lo {}", joined(&n.loopback));
        }
        for b in &n.bridges {
            let _ = write!(out, "    bridge {}", b.name);
            if !b.addresses.is_empty() {
                let _ = write!(out, " {}", joined(&b.addresses));
            }
            if let Some(mtu) = b.mtu {
                let _ = write!(out, " mtu {mtu}");
            }
            if !b.up {
                out.push_str(" down");
            }
            out.push('\n');
        }
        for r in &n.routes {
            let _ = writeln!(out, "    route {r}");
        }
    }
    for l in &topo.links {
        let _ = write!(out, "link");
        for (i, e) in l.ends().into_iter().enumerate() {
            if i == 1 {
                out.push_str(" <->");
            }
            let _ = write!(out, " {e}");
            if !e.addresses.is_empty() {
                let _ = write!(out, " {}", joined(&e.addresses));
            }
            if let Some(m) = &e.master {
                let _ = write!(out, " master {m}");
            }
            if let Some(mtu) = e.mtu {
                let _ = write!(out, " mtu {mtu}");
            }
            if let Some(mac) = &e.mac {
                let _ = write!(out, " mac {mac}");
            }
            if !e.up {
                out.push_str(" down");
            }
        }
        out.push('\n');
    }
}

// ---------------------------------------------------------------- draw

/// The topology's nodes that exist, in declaration order (a view covers
/// only existing namespaces), and the names of those that do not.
fn existing_nodes(topo: &Topology) -> Result<(Vec<Namespace>, Vec<String>)> {
    let dir = RunDir::default();
    let (mut present, mut missing) = (Vec::new(), Vec::new());
    for n in &topo.nodes {
        // Names were checked when the file was read.
        let name = NsName::new(&n.name).map_err(|_| Error::InvalidName {
            name: n.name.clone(),
        })?;
        if dir.open(&name).is_ok() {
            present.push(Namespace::Named(name));
        } else {
            missing.push(n.name.clone());
        }
    }
    Ok((present, missing))
}

async fn draw(format: &str, output: Option<&Path>, file: &Path) -> Result {
    let format: DrawFormat = format.parse().map_err(topo_err("draw"))?;
    let topo = read("draw", file)?;
    let (order, missing) = existing_nodes(&topo)?;
    if !missing.is_empty() {
        eprintln!(
            "nsctl topo draw: {} of {} nodes do not exist and are not drawn: {}",
            missing.len(),
            topo.nodes.len(),
            missing.join(", ")
        );
    }
    let mut builder = View::builder();
    for ns in &order {
        builder = builder.namespace(ns.clone());
    }
    let view = builder
        .build()
        .await
        .map_err(|source| Error::TopoView { source })?;
    let drawing = Drawing::of_namespaces(&view.snapshot(), &order).title(topo.name.clone());
    drop(view);
    let bytes = drawing.render(format).await.map_err(topo_err("draw"))?;
    match output {
        Some(path) => std::fs::write(path, &bytes).map_err(|source| Error::Output {
            path: path.to_owned(),
            source,
        })?,
        None => {
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .map_err(|source| Error::Output {
                    path: "standard output".into(),
                    source,
                })?;
        }
    }
    Ok(0)
}
