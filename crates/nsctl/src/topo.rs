//! `nsctl topo`: declared topologies (nstopo) from the command line.
//!
//! ```text
//! nsctl [-j [-p]] topo apply [--dry-run] [--no-rollback] FILE
//! nsctl [-j [-p]] topo diff [--exit-code] FILE
//! nsctl [-j [-p]] topo destroy [--dry-run] FILE
//! nsctl [-j [-p]] topo show FILE
//! nsctl topo draw [--format dot|mermaid|svg] [-o OUT] FILE
//! ```
//!
//! Not in ip, so not bound by ip's grammar: the subcommands take options
//! after them (clap's). Errors print nstopo's words (a malformed file names
//! its file, line and column; an invalid one lists every problem) and exit
//! 255 for a bad file or value, 2 when the kernel refused a request, 1
//! otherwise.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nsdb::{Namespace, View};
use nsfs::{NsName, RunDir};
use nstopo::{Change, DrawFormat, Drawing, Event, OnError, Options, Report, Topology};

use crate::error::{Error, Result};
use crate::json::{self, Style};

/// The `topo` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TopoCommand {
    /// Bring the kernel to the declared state (from nothing, a partial
    /// build or a running topology that differs), touching only what the
    /// topology owns; report what was created, changed and removed.
    Apply {
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// On a failure, keep what was done (and report it) instead of
        /// rolling it back; the next apply completes it.
        #[arg(long)]
        no_rollback: bool,
        /// The topology file.
        file: PathBuf,
    },
    /// List every difference between the file and the kernel (what apply
    /// would do).
    Diff {
        /// Exit 3 if there are differences (0 if none), as `git diff
        /// --exit-code`: for scripts and CI checks of drift.
        #[arg(long)]
        exit_code: bool,
        /// The topology file.
        file: PathBuf,
    },
    /// Remove everything the topology owns (its namespaces), and nothing
    /// else.
    Destroy {
        /// Print what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// The topology file.
        file: PathBuf,
    },
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
        TopoCommand::Apply {
            dry_run,
            no_rollback,
            file,
        } => {
            let on_error = if no_rollback {
                OnError::Stop
            } else {
                OnError::Rollback
            };
            apply(
                style,
                &file,
                Options::default().dry_run(dry_run).on_error(on_error),
            )
            .await
        }
        TopoCommand::Diff { exit_code, file } => diff(style, &file, exit_code).await,
        TopoCommand::Destroy { dry_run, file } => destroy(style, &file, dry_run).await,
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

// ---------------------------------------------------------------- apply

/// Shows an apply's progress on standard error: a bar on a terminal, a
/// line per tenth of the plan otherwise. Returns the options with the hook
/// and the bar (to clear once the apply ends).
fn with_progress(options: Options, what: &'static str) -> (Options, Option<ProgressBar>) {
    if io::stderr().is_terminal() {
        let bar = ProgressBar::hidden();
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(what);
        let b = bar.clone();
        let options = options.progress(move |e| match e {
            Event::Planned { total } => b.set_length(*total as u64),
            Event::Applied { done, .. } => b.set_position(*done as u64),
            Event::RolledBack { change } => b.println(format!("rolled back: {change}")),
            _ => {}
        });
        (options, Some(bar))
    } else {
        let options = options.progress(move |e| match e {
            Event::Planned { total } => eprintln!("{what}: {total} changes"),
            Event::Applied { done, total, .. } => {
                // Ten lines at most, and the last.
                let step = (*total / 10).max(1);
                if done % step == 0 || done == total {
                    eprintln!("{what}: {done}/{total}");
                }
            }
            Event::RolledBack { change } => eprintln!("{what}: rolled back: {change}"),
            _ => {}
        });
        (options, None)
    }
}

/// Whether a change creates, changes or removes an object.
fn kind_of(change: &Change) -> &'static str {
    match change {
        Change::CreateNamespace { .. }
        | Change::CreateBridge { .. }
        | Change::CreateVeth { .. }
        | Change::AddAddress { .. }
        | Change::AddRoute { .. } => "created",
        Change::SetLink { .. } | Change::SetSysctl { .. } => "changed",
        _ => "removed",
    }
}

/// The report in words: each change under created, changed or removed,
/// then the totals.
fn print_report(report: &Report, done: &str) {
    let mut out = String::new();
    for section in ["created", "changed", "removed"] {
        let changes: Vec<&Change> = report
            .plan
            .changes
            .iter()
            .filter(|c| kind_of(c) == section)
            .collect();
        if changes.is_empty() {
            continue;
        }
        out.push_str(&format!("{section}:\n"));
        for c in changes {
            out.push_str(&format!("    {c}\n"));
        }
    }
    out.push_str(&format!(
        "{done}: {} created, {} changed, {} removed",
        report.created, report.changed, report.removed
    ));
    if !report.dry_run {
        out.push_str(&format!(" ({} requests)", report.requests));
    }
    out.push('\n');
    print!("{out}");
}

async fn apply(style: Style, file: &Path, options: Options) -> Result {
    let topo = read("apply", file)?;
    let (options, bar) = if style.json {
        (options, None)
    } else {
        with_progress(options, "apply")
    };
    let res = nstopo::apply(&topo, options).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = res.map_err(topo_err("apply"))?;
    if style.json {
        print!("{}", json::render(&report, style.pretty));
    } else if report.dry_run {
        print_report(&report, "plan");
    } else {
        print_report(&report, "applied");
    }
    Ok(0)
}

/// The exit code of `topo diff --exit-code` when there are differences
/// (1, 2 and 255 are errors).
const DIFFERENCES: u8 = 3;

async fn diff(style: Style, file: &Path, exit_code: bool) -> Result {
    let topo = read("diff", file)?;
    let changes = nstopo::diff(&topo, Options::default())
        .await
        .map_err(topo_err("diff"))?;
    if style.json {
        print!("{}", json::render(&changes, style.pretty));
    } else if changes.is_empty() {
        println!("no differences");
    } else {
        for c in &changes {
            println!("{c}");
        }
    }
    Ok(if exit_code && !changes.is_empty() {
        DIFFERENCES
    } else {
        0
    })
}

async fn destroy(style: Style, file: &Path, dry_run: bool) -> Result {
    let topo = read("destroy", file)?;
    let options = Options::default().dry_run(dry_run);
    let (options, bar) = if style.json || dry_run {
        (options, None)
    } else {
        with_progress(options, "destroy")
    };
    let res = nstopo::destroy(&topo, options).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = res.map_err(topo_err("destroy"))?;
    if style.json {
        print!("{}", json::render(&report, style.pretty));
    } else {
        print_report(&report, if dry_run { "plan" } else { "destroyed" });
    }
    Ok(0)
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
