//! The namespace thread: the one place where code runs inside a namespace.
//!
//! A namespace switch (`setns`) is per thread, so it must never happen on a
//! thread the application's runtime owns: tasks migrate between workers, and
//! a blocking-pool thread spawned while its creator sits in a foreign namespace
//! is born there for good. The [`Executor`] owns a small pool of plain OS
//! threads. Each job switches its thread into the target namespace, runs, and
//! switches back to the *home* namespace (the one the executor was created in);
//! a thread that cannot switch back exits instead of running anything else.
//!
//! # Why one small pool that switches there and back
//!
//! Measured with `cargo run --release -p nsfs --example measure_executor` on
//! the 2-vCPU VM this was built on (medians of 20,000 sequential calls, three
//! runs, the machine shared with other builds):
//!
//! | | median | p90 |
//! |---|---|---|
//! | `setns` there and back on a plain thread | 2.2 us | 2.3 us |
//! | closure in a namespace, pool of 2 (`run_in`, switch there and back) | 8.0-8.2 us | 8.7-10 us |
//! | same, no switch (`run_home`: what a thread that stays in, or lives in, the namespace costs) | 5.1-5.2 us | 6.3-6.5 us |
//! | closure in a namespace, pool of 1 | 5.3-5.4 us | 5.9-6.1 us |
//! | 64 closures in flight, per closure: pool 1 / 2 / 4 / 8 | 5.5 / 3.1 / 3.2 / 6.1 us | |
//! | 1,000 idle threads (one per namespace) | +8.8 MiB RSS, 24 ms to start | |
//!
//! Hence:
//! - **Switch there and back after every job.** Staying in the last namespace
//!   would save about 3 us per call, only when consecutive calls go to the same
//!   namespace, and it would let an idle thread keep a removed namespace (and
//!   its veth peers, routes, sockets) alive indefinitely.
//! - **One pool for every namespace, not a thread per namespace.** A thread
//!   living in its namespace answers in the same ~5 us as a pool thread that
//!   needs no switch, so a thread per namespace buys under 3 us a call and
//!   costs 1,000 threads (about 9 MiB and 24 ms to start) for 1,000 open
//!   namespaces.
//! - **Pool size `clamp(available_parallelism, 2, 8)`** for the global
//!   executor: two threads on two cores halve the cost of calls in flight
//!   together (3.1 against 5.5 us) and keep one slow closure from blocking
//!   every other; more threads than cores only add wake-ups (pool 8: 6.1 us).
//! - **Jobs wait in a mutex-guarded queue and wake exactly one idle thread**,
//!   the one idle the longest. The first version shared one `mpsc::Receiver`
//!   behind a mutex: a job woke the thread blocked in `recv` and then the one
//!   blocked on the mutex, and a call with two threads cost 11-28 us (p90
//!   29-33 us). The second used a condition variable; idle threads now park
//!   each on its own (`std::thread::park`) in a list, so that a job can pick
//!   its thread, which lending a CPU needs (below). Waking the one idle the
//!   longest keeps what the condition variable measured; waking the most
//!   recently idle was tried and cost 45 us a call instead of 7.4 on the same
//!   run (`measure_executor`, pool 2), as a lone thread does here.
//!
//! # Lending the caller's CPU: [`Executor::run_in_short`]
//!
//! On this VM a thread woken on the *other* vCPU, idle and halted, starts
//! 12-17 us later; one woken on the waker's own vCPU starts in 2-3 us. The
//! scheduler sends a woken thread to an idle CPU whenever there is one, so a
//! job from an otherwise idle program pays that twice: once to wake the
//! namespace thread, once to wake the caller with the answer. Timed inside a
//! `Handle::open` pattern (a netlink socket made in a namespace, 1,000 calls
//! interleaved with a root-namespace rtnetlink connection), the hop was 34 us:
//! 17 to start the job, 2.6 of job, 15 to get the answer back, with the
//! thread on the other CPU in 87-97 % of calls.
//!
//! `run_in_short` confines an idle thread to the caller's CPU
//! (`sched_setaffinity`, about 1 us) before waking it, then yields that CPU
//! (`sched_yield`) until the answer is in, for at most 50 us, instead of
//! parking: the thread runs on the caller's CPU as soon as it is yielded, and
//! no wake-up crosses CPUs. The same hop took 11 us (5.3 + 2.4 + 3.3), in
//! every run. `cargo run --release -p nsfs --example measure_handoff`, no-op
//! closures, two runs:
//!
//! | awaited from | `run_in` median (p90) | `run_in_short` median (p90) |
//! |---|---|---|
//! | current-thread `block_on` | 8.2-8.5 (37-41) us | 7.7-8.0 (7.7-8.1) us |
//! | multi-thread `block_on` | 7.5-16.5 (39-48) us | 7.3-7.7 (7.4-7.7) us |
//! | task on an idle multi-thread runtime | 16-17.5 (34-51) us | 7.4-7.7 (7.4-7.7) us |
//! | task, the other worker busy | 7.8-11.2 (11-28) us | 7.2-7.6 (7.4-7.7) us |
//!
//! The thread keeps that confinement until it runs a job of another kind,
//! which first restores the affinity the thread was born with. Only short
//! jobs whose caller waits anyway should lend: the caller's thread (possibly
//! a runtime worker) does nothing else for up to 50 us. The toolkit uses it
//! for making sockets inside a namespace.
//!
//! # Two lanes: a user's closure never stalls the toolkit's own jobs
//!
//! The toolkit's own jobs (a socket made inside a namespace, a name created
//! or removed, `pids`, a process spawned with `posix_spawn`, an agent
//! started) share the threads with users' closures ([`NetNs::run`]), which
//! may run for as long as they like. With one queue, two such closures on a
//! two-CPU machine held both threads, and every socket, create and spawn of
//! the process waited behind them, without bound. So jobs come in two lanes:
//!
//! - **closures** ([`run_in`](Executor::run_in), [`run_home`](Executor::run_home),
//!   [`run_in_new`](Executor::run_in_new), [`NetNs::run`]): at most
//!   [`size`](Executor::size) run at once; more wait their turn;
//! - **toolkit jobs** ([`run_in_short`](Executor::run_in_short),
//!   [`NetNs::run_short`], [`NetNs::run_toolkit`], and anything submitted
//!   through [`Executor::toolkit`]): taken first, by any idle thread, and
//!   the pool has one thread more than `size`, so at least one thread is
//!   always free of closures.
//!
//! Toolkit jobs finish promptly by rule (none waits on another party), so
//! they only ever wait behind each other, briefly. Growing the pool on
//! demand was the alternative: it needs a cap (or long closures grow it
//! without bound), and at the cap it stalls again; each growth costs a
//! thread start (24-48 us here, see the first table). The reserved thread
//! costs 8 KiB of memory while parked, and only exists once a toolkit job
//! found no idle thread. `cargo run --release -p nsfs --example
//! measure_executor` and `measure_handoff`, same machine, loaded by other
//! builds (load average 6-8), medians (p90):
//!
//! | | one lane (before) | two lanes |
//! |---|---|---|
//! | `run_in_short`, current-thread `block_on` / multi-thread `block_on` / idle task / other worker busy | 9.0-13.5 / 9.0-9.3 / 9.0-13.6 / 11.6-12.7 us | 12.4-12.5 / 9.1-9.4 / 9.2-9.5 / 9.2-9.4 us |
//! | global executor, all idle: `run_in_short` / create + remove | | 9.3 (12.0) us / 632 (876) us |
//! | global executor, every closure thread held by a long `NetNs::run`: `run_in_short` / create + remove | never finish | 9.1 (9.3) us / 598 (756) us |
//!
//! The hot path is unchanged within the noise (two interleaved runs of
//! each binary): a toolkit job adds no syscall and no lock, only which
//! queue it goes to. Two more interleaved pairs on a quieter machine (load
//! average 6), with the DEBUG span every submission now has (see the crate
//! docs): `run_in_short` 8.4-8.8 us before, 8.5-8.9 us with lanes and span,
//! in the four settings above; the span alone, with no subscriber, costs
//! 4 ns a call. Closures alone never start the extra thread: when they
//! could (a closure that found no thread idle started one, up to `size + 1`),
//! the pool's threads took turns three ways instead of two, each colder, and
//! sequential `run_home`/`run_in` from `block_on` took 8-17 us against 6-9 us
//! before; with the rule, 6.3-7.7 / 7.6-8.6 us against 6.0-6.9 / 7.9-9.1 us.
//!
//! See also `docs/architecture.md`.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;

use nix::sched::{
    CloneFlags, CpuSet, sched_getaffinity, sched_getcpu, sched_setaffinity, sched_yield, setns,
    unshare,
};
use nix::unistd::{Pid, gettid};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::sync::oneshot::error::TryRecvError;

use tracing::Instrument;

use crate::trace::{self, op_span};
use crate::{Error, NetNs, Result};

type Job = Box<dyn FnOnce(&mut Worker<'_>) + Send>;
type Panic = Box<dyn Any + Send>;

/// A pool of namespace threads.
///
/// Most code uses the process-wide [`Executor::global`] through
/// [`NetNs::run`]. A separate executor is useful to keep long-running closures
/// away from the global pool.
///
/// At most [`size`](Executor::size) closures run at once; the pool has one
/// thread more, which closures never occupy, so the toolkit's own short jobs
/// (the [toolkit lane](Executor::toolkit)) never wait behind a closure (see
/// the module docs). Threads are started on demand, from the thread that
/// submits a job, when no thread is idle: up to `size` for a closure, up to
/// `size + 1` for a toolkit job. They live until the executor is dropped. Each thread starts by
/// making sure it is in the home namespace. Because the threads outlive what
/// they start, a child process spawned from one of them can use
/// `PR_SET_PDEATHSIG` safely.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsfs::Result<()> {
/// use nsfs::{Executor, NetNs};
///
/// let exec = Executor::new(1)?;
/// let init = NetNs::from_pid(1)?;
/// let id = exec.run_in(&init, || NetNs::current_thread().map(|ns| ns.id())).await??;
/// assert_eq!(id, init.id());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Executor {
    shared: Arc<Shared>,
    lane: Lane,
}

/// Which jobs a submission competes with (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    /// Users' closures: at most [`Executor::size`] run at once.
    Closures,
    /// The toolkit's own short jobs: they may take any idle thread, and the
    /// reserved threads are theirs alone.
    Toolkit,
}

#[derive(Debug)]
struct Shared {
    queue: Arc<Queue>,
    home: NetNs,
    /// Threads at most: the closures' share plus [`RESERVED`].
    threads: usize,
    live: Arc<AtomicUsize>,
}

/// Threads of every executor that closures never occupy: at most
/// `size` of its `size + RESERVED` threads run closures at once.
const RESERVED: usize = 1;

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the queue ends every thread once the jobs queued are done.
        self.queue.close();
    }
}

/// The jobs waiting for a thread, and the threads waiting for a job.
///
/// Each idle thread parks on its own (`std::thread::park`), so a job can
/// wake a chosen thread, and lend it the submitter's CPU before it wakes (see
/// the module docs). A plain job wakes the thread idle the longest, as the
/// condition variable this replaced did.
///
/// Two lanes: toolkit jobs are taken first, by any thread; a closure is
/// taken only while fewer than `closure_cap` closures run, so the other
/// threads are always free for toolkit jobs.
struct Queue {
    state: Mutex<QueueState>,
    closure_cap: usize,
}

#[derive(Default)]
struct QueueState {
    /// Toolkit jobs, in order.
    jobs: VecDeque<Queued>,
    /// Closures, in order.
    closures: VecDeque<Queued>,
    /// Closures taken by a thread and not finished yet.
    closures_running: usize,
    closed: bool,
    /// Idle threads, the longest idle first. A thread is on it only while it
    /// parks (or is about to) with no job to take.
    idle: VecDeque<Idle>,
}

/// A queued job. A short one (see [`Executor::run_in_short`]) may run on a
/// thread confined to its submitter's CPU; any other makes its thread give
/// that confinement back first.
struct Queued {
    job: Job,
    short: bool,
    closure: bool,
}

/// An idle thread, as a job submitter sees it.
struct Idle {
    thread: Thread,
    tid: Pid,
    /// Whether the thread knows the affinity to go back to (it could read it
    /// when it started): only then may it be confined to a submitter's CPU.
    lendable: bool,
    /// Set when a submitter confined the thread to its own CPU; the thread
    /// clears it when it gives its affinity back.
    lent: Arc<AtomicBool>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Queue")
            .field("jobs", &state.jobs.len())
            .field("closures", &state.closures.len())
            .field("closures_running", &state.closures_running)
            .field("closure_cap", &self.closure_cap)
            .field("idle", &state.idle.len())
            .field("closed", &state.closed)
            .finish()
    }
}

/// What [`Queue::push`] did.
struct Pushed {
    /// An idle thread was confined to the submitter's CPU for the job.
    lent: bool,
    /// No idle thread was woken for a job that may run now: start one.
    needs_thread: bool,
}

impl Queue {
    fn new(closure_cap: usize) -> Queue {
        Queue {
            state: Mutex::default(),
            closure_cap,
        }
    }

    /// Queues `job` in `lane` and wakes an idle thread, if any and if the
    /// job may run now (a closure may wait for a running one to finish);
    /// gives `job` back if the queue is closed.
    ///
    /// With `cpu` (toolkit lane only), the most recently idle thread is
    /// confined to that CPU before it is woken, and the answer says whether
    /// it was (no idle thread, or a CPU the thread may not use, and it is
    /// not).
    fn push(&self, job: Job, lane: Lane, cpu: Option<usize>) -> std::result::Result<Pushed, Job> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.closed {
            return Err(job);
        }
        let closure = lane == Lane::Closures;
        let queued = Queued {
            job,
            short: cpu.is_some(),
            closure,
        };
        if closure {
            state.closures.push_back(queued);
            if state.closures_running >= self.closure_cap {
                // A thread that finishes a closure takes it.
                return Ok(Pushed {
                    lent: false,
                    needs_thread: false,
                });
            }
        } else {
            state.jobs.push_back(queued);
        }
        let (idle, lent) = match cpu {
            None => (state.idle.pop_front(), false),
            Some(cpu) => {
                let idle = state.idle.pop_back();
                let lent = idle.as_ref().is_some_and(|idle| {
                    if !idle.lendable {
                        return false;
                    }
                    let mut set = CpuSet::new();
                    let ok = set.set(cpu).is_ok() && sched_setaffinity(idle.tid, &set).is_ok();
                    if ok {
                        idle.lent.store(true, Ordering::Release);
                    }
                    ok
                });
                (idle, lent)
            }
        };
        drop(state);
        let needs_thread = idle.is_none();
        if let Some(idle) = idle {
            idle.thread.unpark();
        }
        Ok(Pushed { lent, needs_thread })
    }

    /// The next job this thread may take, waiting for one; `None` once
    /// closed with nothing this thread may take. `me` describes the calling
    /// thread; `finished_closure` says that its last job was a closure.
    fn pop(&self, me: &Idle, finished_closure: bool) -> Option<Queued> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if finished_closure {
            state.closures_running -= 1;
        }
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closures_running < self.closure_cap
                && let Some(job) = state.closures.pop_front()
            {
                state.closures_running += 1;
                return Some(job);
            }
            if state.closed {
                // Closures still queued wait for a thread that runs one.
                return None;
            }
            state.idle.push_back(Idle {
                thread: me.thread.clone(),
                tid: me.tid,
                lendable: me.lendable,
                lent: Arc::clone(&me.lent),
            });
            drop(state);
            // An unpark given before this park makes it return at once; a
            // spurious return just goes round the loop.
            std::thread::park();
            state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            // Woken by a push, this thread was taken off the list; woken
            // otherwise, it takes itself off before looking for a job.
            if let Some(at) = state.idle.iter().position(|t| t.tid == me.tid) {
                state.idle.remove(at);
            }
        }
    }

    /// A thread leaves the pool (`in_closure`: right after running a
    /// closure). If it was the last, the jobs still queued are dropped, so
    /// their callers get [`Error::Thread`] rather than wait for ever (the
    /// next submission starts a thread again).
    fn retire(&self, live: &AtomicUsize, in_closure: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if in_closure {
            state.closures_running -= 1;
        }
        if live.fetch_sub(1, Ordering::AcqRel) == 1 {
            let orphans = std::mem::take(&mut state.jobs);
            let closures = std::mem::take(&mut state.closures);
            drop(state);
            drop(orphans);
            drop(closures);
        } else if in_closure && !state.closures.is_empty() {
            // The closure slot it held is free: an idle thread may take the
            // next closure.
            let idle = state.idle.pop_front();
            drop(state);
            if let Some(idle) = idle {
                idle.thread.unpark();
            }
        }
    }

    /// Drops the queued jobs if no thread is left to run them.
    fn fail_all_if_no_thread(&self, live: &AtomicUsize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if live.load(Ordering::Acquire) == 0 {
            let orphans = std::mem::take(&mut state.jobs);
            let closures = std::mem::take(&mut state.closures);
            drop(state);
            drop(orphans);
            drop(closures);
        }
    }

    fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.closed = true;
        let idle = std::mem::take(&mut state.idle);
        drop(state);
        for idle in idle {
            idle.thread.unpark();
        }
    }
}

/// What a job may do to its thread. The worker loop restores the home
/// namespace after every job.
pub(crate) struct Worker<'a> {
    home: &'a NetNs,
    away: bool,
}

impl Worker<'_> {
    /// Switches this thread into `ns` (no switch if it is the home namespace).
    pub(crate) fn enter(&mut self, ns: &NetNs) -> io::Result<()> {
        if ns.id() == self.home.id() {
            return Ok(());
        }
        // A failed setns changes nothing: the thread is still home, and must
        // not be sent "back" (which may fail the same way, e.g. EPERM, and
        // would end the thread for nothing).
        setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        self.away = true;
        Ok(())
    }

    /// Moves this thread into a new, empty network namespace.
    pub(crate) fn enter_new(&mut self) -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        self.away = true;
        Ok(())
    }

    /// Switches back home. `false` means the thread is stranded and must exit.
    fn restore(&mut self) -> bool {
        if !self.away {
            return true;
        }
        match setns(self.home, CloneFlags::CLONE_NEWNET) {
            Ok(()) => {
                self.away = false;
                true
            }
            Err(err) => {
                tracing::error!(%err, "namespace thread cannot return home; it exits");
                false
            }
        }
    }
}

impl Executor {
    /// The process-wide executor, created on first use with the calling
    /// thread's namespace as home and room for
    /// `clamp(available_parallelism, 2, 8)` closures at once (plus the
    /// thread reserved for toolkit jobs).
    ///
    /// It lives for the whole process: once used, it keeps one fd (its home
    /// namespace) and its threads (parked when idle, at most `size() + 1`,
    /// about 8 KiB of memory each) until the process exits, even after every
    /// handle, socket and child of the toolkit is dropped. A program that
    /// must not keep them can use its own [`Executor::new`], whose threads
    /// end when the last clone of it is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Thread`] if the home namespace cannot be opened (no `/proc`,
    /// no fd left); the next call tries again.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let exec = nsfs::Executor::global()?;
    /// println!("{} closures at once at most", exec.size());
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn global() -> Result<&'static Executor> {
        Executor::global_sized(|| {
            std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
        })
    }

    /// Creates the process-wide executor (see [`Executor::global`]) with
    /// room for `threads` closures at once (at least one), unless it exists
    /// already; returns it either way (then with the size it has).
    ///
    /// For a program that knows its need before its first namespace job: a
    /// short-lived process that runs a closure or two (a CNI plugin) skips
    /// the `available_parallelism()` lookup `global` makes on first use (it
    /// reads `/proc/self/cgroup` and cgroup files: about 0.1 ms). Threads
    /// start on demand either way.
    ///
    /// # Errors
    ///
    /// As [`Executor::global`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let exec = nsfs::Executor::init_global(1)?;
    /// assert!(std::ptr::eq(exec, nsfs::Executor::global()?));
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn init_global(threads: usize) -> Result<&'static Executor> {
        Executor::global_sized(|| threads)
    }

    fn global_sized(size: impl FnOnce() -> usize) -> Result<&'static Executor> {
        static GLOBAL: OnceLock<Executor> = OnceLock::new();
        if let Some(exec) = GLOBAL.get() {
            return Ok(exec);
        }
        // A failure is not remembered (it may be passing: `EMFILE`), so the
        // next call tries again. Two first callers racing may both make an
        // executor; the loser's, which has no thread yet, is dropped.
        let exec = Executor::new(size()).map_err(|e| Error::Thread { source: e.into() })?;
        Ok(GLOBAL.get_or_init(|| exec))
    }

    /// A new pool that runs at most `threads` closures at once (at least
    /// one), plus one thread reserved for the [toolkit lane](Executor::toolkit),
    /// whose home is the calling thread's network namespace.
    ///
    /// Its threads end once the last clone of it is dropped and the jobs
    /// queued are done.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] if the calling thread's namespace cannot be opened.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let exec = nsfs::Executor::new(1)?;
    /// assert_eq!(exec.size(), 1);
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn new(threads: usize) -> Result<Executor> {
        let home = NetNs::current_thread()?;
        let size = threads.max(1);
        Ok(Executor {
            shared: Arc::new(Shared {
                queue: Arc::new(Queue::new(size)),
                home,
                threads: size + RESERVED,
                live: Arc::new(AtomicUsize::new(0)),
            }),
            lane: Lane::Closures,
        })
    }

    /// The most closures this executor runs at once (its threads are one
    /// more: see [`toolkit`](Executor::toolkit)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// assert!(nsfs::Executor::global()?.size() >= 2);
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn size(&self) -> usize {
        self.shared.queue.closure_cap
    }

    /// This executor, submitting to the toolkit's lane: jobs submitted
    /// through the executor returned ([`run_in`](Executor::run_in),
    /// [`run_home`](Executor::run_home), [`run_in_new`](Executor::run_in_new))
    /// never wait behind closures submitted the ordinary way, however long
    /// those run, only behind other toolkit jobs.
    ///
    /// Each executor keeps one thread that runs nothing but toolkit jobs,
    /// and toolkit jobs also take any idle thread (see the module docs). This
    /// is for the toolkit's own jobs that finish promptly whatever the
    /// caller does: making a socket, creating or removing a name, spawning a
    /// process with `posix_spawn`. Never submit anything here that waits on
    /// another party (a channel, a lock, the network, a child's exit): it
    /// would stall every other crate's sockets and spawns, which is what the
    /// lane exists to prevent. [`Executor::run_in_short`] and
    /// [`NetNs::run_short`] always use this lane; [`NetNs::run_toolkit`] is
    /// [`run_in`](Executor::run_in) on it, on the global executor.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(ns: nsfs::NetNs) -> nsfs::Result<()> {
    /// let exec = nsfs::Executor::global()?.toolkit();
    /// let child = exec
    ///     .run_in(&ns, || std::process::Command::new("true").spawn())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn toolkit(&self) -> Executor {
        Executor {
            shared: Arc::clone(&self.shared),
            lane: Lane::Toolkit,
        }
    }

    /// The home namespace: where the threads are between jobs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let exec = nsfs::Executor::new(1)?;
    /// assert_eq!(exec.home().id(), nsfs::NetNs::current_thread()?.id());
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn home(&self) -> &NetNs {
        &self.shared.home
    }

    /// Runs `f` inside `ns` on one of this executor's threads. See
    /// [`NetNs::run`] for the rules `f` must follow.
    ///
    /// # Cancel safety
    ///
    /// `f` is queued at the first poll. If the future is dropped after that,
    /// `f` still runs to completion and its result is dropped; dropped before
    /// its first poll, nothing happens.
    ///
    /// # Errors
    ///
    /// [`Error::Enter`] if the thread could not enter `ns` (`f` was not
    /// called); [`Error::Thread`] if no thread could be started (or the last one left the
    /// pool, unable to switch back home, before running it).
    ///
    /// # Panics
    ///
    /// Resumes a panic of `f` in the caller.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(ns: nsfs::NetNs) -> nsfs::Result<()> {
    /// let exec = nsfs::Executor::global()?;
    /// let links = exec.run_in(&ns, || std::fs::read_to_string("/proc/thread-self/net/dev")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn run_in<F, R>(&self, ns: &NetNs, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let span = op_span!("run_in", ns.describe().display());
        span.record("inode", ns.id().ino);
        let ns = ns.clone();
        let job = self.submit(move |w| match w.enter(&ns) {
            Ok(()) => Ok(catch_unwind(AssertUnwindSafe(f))),
            Err(source) => Err(Error::Enter {
                path: ns.describe(),
                source,
            }),
        });
        traced(span, job, |_| None).await
    }

    /// Runs a short `f` inside `ns`, as [`run_in`](Executor::run_in) does,
    /// lending it the calling thread's CPU: for closures of a few
    /// microseconds (a `socket(2)`, a `bind(2)`, a `setsockopt(2)`) whose
    /// caller waits for them.
    ///
    /// An idle namespace thread is confined to the CPU the caller runs on
    /// before it is woken, and the caller yields that CPU (`sched_yield`)
    /// until the answer is there, for up to 50 us, instead of parking; after
    /// that it awaits as `run_in` does. The thread runs where the caller's
    /// caches are and no wake-up crosses CPUs: on the 2-vCPU VM this was
    /// built on, a netlink socket made this way took 11 us against 34 us for
    /// `run_in` when the scheduler put the thread on the other, idle CPU (see
    /// the module docs). The thread gets its own affinity back before it runs
    /// any other kind of job.
    ///
    /// The caller's thread is busy for the whole wait (at most 50 us), like a
    /// system call: do not use this for anything that blocks or takes longer,
    /// use [`run_in`](Executor::run_in). If no thread is idle, or the CPU
    /// cannot be lent (a thread whose affinity excludes it, a caller with a
    /// real-time scheduling policy, whose `sched_yield` would not let a
    /// normal thread run), this is `run_in`.
    ///
    /// # Cancel safety
    ///
    /// As [`run_in`](Executor::run_in).
    ///
    /// # Errors
    ///
    /// As [`run_in`](Executor::run_in).
    ///
    /// # Panics
    ///
    /// Resumes a panic of `f` in the caller.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(ns: nsfs::NetNs) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::net::UdpSocket;
    ///
    /// let exec = nsfs::Executor::global()?;
    /// let socket = exec.run_in_short(&ns, || UdpSocket::bind("127.0.0.1:0")).await??;
    /// # Ok(()) }
    /// ```
    pub async fn run_in_short<F, R>(&self, ns: &NetNs, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let span = op_span!("run_in_short", ns.describe().display());
        span.record("inode", ns.id().ino);
        let ns = ns.clone();
        // A real-time caller's `sched_yield` would not let the thread run.
        let cpu = sched_getcpu().ok().filter(|_| crate::sys::time_shared());
        let job = self.submit_on(
            move |w| match w.enter(&ns) {
                Ok(()) => Ok(catch_unwind(AssertUnwindSafe(f))),
                Err(source) => Err(Error::Enter {
                    path: ns.describe(),
                    source,
                }),
            },
            Lane::Toolkit,
            cpu,
        );
        traced(span, job, |_| None).await
    }

    /// Runs `f` in the home namespace on one of this executor's threads: for
    /// blocking work that must not run on a runtime thread, or a child process
    /// that must be started from a thread that outlives it.
    ///
    /// # Cancel safety
    ///
    /// `f` is queued at the first poll. If the future is dropped after that,
    /// `f` still runs to completion and its result is dropped; dropped before
    /// its first poll, nothing happens.
    ///
    /// # Errors
    ///
    /// [`Error::Thread`] if no thread could be started (or the last one left the
    /// pool, unable to switch back home, before running it).
    ///
    /// # Panics
    ///
    /// Resumes a panic of `f` in the caller.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsfs::Result<()> {
    /// let n = nsfs::Executor::global()?.run_home(|| 2 + 2).await?;
    /// assert_eq!(n, 4);
    /// # Ok(()) }
    /// ```
    pub async fn run_home<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let home = &self.shared.home;
        let span = op_span!("run_home", home.describe().display());
        span.record("inode", home.id().ino);
        traced(span, self.run_home_untraced(f), |_| None).await
    }

    /// [`run_home`](Executor::run_home) with no span of its own, for this
    /// crate's operations, which have theirs.
    pub(crate) async fn run_home_untraced<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit(move |_| Ok(catch_unwind(AssertUnwindSafe(f))))
            .await
    }

    /// Makes a new, anonymous network namespace, runs `f` inside it, and
    /// returns a handle on it with `f`'s result. The namespace lives as long as
    /// the handle, or anything `f` left in it (a bind mount, a socket).
    ///
    /// # Cancel safety
    ///
    /// `f` is queued at the first poll. If the future is dropped after that,
    /// `f` still runs and its result is dropped; the namespace is freed when
    /// nothing holds it. Dropped before its first poll, nothing happens.
    ///
    /// # Errors
    ///
    /// [`Error::Create`] if the namespace could not be made (`f` was not
    /// called); [`Error::Thread`] if no thread could be started (or the last one left the
    /// pool, unable to switch back home, before running it).
    ///
    /// # Panics
    ///
    /// Resumes a panic of `f` in the caller.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsfs::Result<()> {
    /// let (ns, ()) = nsfs::Executor::global()?.run_in_new(|| ()).await?;
    /// assert_ne!(ns.id(), nsfs::NetNs::current_thread()?.id());
    /// # Ok(()) }
    /// ```
    pub async fn run_in_new<F, R>(&self, f: F) -> Result<(NetNs, R)>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let created = |step, source| Error::Create {
            path: "(anonymous)".into(),
            step,
            source,
        };
        let span = op_span!("run_in_new", "(new)");
        let job = self.submit(move |w| {
            w.enter_new().map_err(|e| created("unshare", e))?;
            let ns = NetNs::current_thread()?;
            Ok(catch_unwind(AssertUnwindSafe(f)).map(|r| (ns, r)))
        });
        traced(span, job, |(ns, _)| Some(ns.id().ino)).await
    }

    /// Runs a job that drives the worker itself, for this crate's lifecycle
    /// operations (which need `enter_new` followed by work in the home
    /// namespace).
    pub(crate) async fn run_worker<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Worker<'_>) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.submit(move |w| Ok(catch_unwind(AssertUnwindSafe(|| f(w)))))
            .await?
    }

    async fn submit<F, R>(&self, job: F) -> Result<R>
    where
        F: FnOnce(&mut Worker<'_>) -> Result<std::result::Result<R, Panic>> + Send + 'static,
        R: Send + 'static,
    {
        self.submit_on(job, self.lane, None).await
    }

    /// Queues `job` and waits for its answer. With `cpu` (the CPU the calling
    /// thread runs on), an idle thread is confined to that CPU and, if that
    /// worked, waited for without parking, for up to [`LEND_WAIT`].
    async fn submit_on<F, R>(&self, job: F, lane: Lane, cpu: Option<usize>) -> Result<R>
    where
        F: FnOnce(&mut Worker<'_>) -> Result<std::result::Result<R, Panic>> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, mut rx) = oneshot::channel();
        let lent = self.send(
            Box::new(move |w| {
                let _ = tx.send(job(w));
            }),
            lane,
            cpu,
        )?;
        if lent {
            // The thread is queued on this CPU: yielding it lets the thread
            // run at once, with no cross-CPU wake-up either way.
            let deadline = Instant::now() + LEND_WAIT;
            loop {
                match rx.try_recv() {
                    Ok(answer) => return unpack(Some(answer)),
                    Err(TryRecvError::Closed) => return unpack(None),
                    Err(TryRecvError::Empty) if Instant::now() < deadline => {
                        let _ = sched_yield();
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
        }
        unpack(rx.await.ok())
    }

    /// Queues `job`, then makes sure a thread will run it. In that order: a
    /// thread that exits (see [`Queue::retire`]) either fails the job, or has
    /// left the pool before the job is queued, and a new one is started.
    fn send(&self, job: Job, lane: Lane, cpu: Option<usize>) -> Result<bool> {
        let Pushed { lent, needs_thread } =
            self.shared
                .queue
                .push(job, lane, cpu)
                .map_err(|_| Error::Thread {
                    source: io::Error::other("executor shut down"),
                })?;
        if !needs_thread {
            return Ok(lent);
        }
        // Closures alone never start the reserved thread: a pool busy with
        // closures only keeps `size` threads, as warm as before the lanes.
        let limit = match lane {
            Lane::Closures => self.size(),
            Lane::Toolkit => self.shared.threads,
        };
        match self.ensure_thread(limit) {
            // The pool's other threads will run it.
            Err(_) if self.shared.live.load(Ordering::Acquire) > 0 => Ok(lent),
            Err(err) => {
                self.shared.queue.fail_all_if_no_thread(&self.shared.live);
                Err(err)
            }
            Ok(()) => Ok(lent),
        }
    }

    /// Starts a thread if the pool has fewer than `limit`. Called on the
    /// submitting thread, so a new thread is born in the submitter's namespace
    /// and moves home before it runs anything.
    fn ensure_thread(&self, limit: usize) -> Result<()> {
        let live = &self.shared.live;
        let mut n = live.load(Ordering::Acquire);
        while n < limit {
            match live.compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return self.start_thread(),
                Err(now) => n = now,
            }
        }
        Ok(())
    }

    fn start_thread(&self) -> Result<()> {
        let queue = Arc::clone(&self.shared.queue);
        let home = self.shared.home.clone();
        let live = Arc::clone(&self.shared.live);
        let spawned = std::thread::Builder::new()
            .name("netns-exec".into())
            .spawn(move || {
                let in_closure = worker_loop(&queue, &home);
                queue.retire(&live, in_closure);
            });
        match spawned {
            Ok(_) => Ok(()),
            Err(source) => {
                self.shared.live.fetch_sub(1, Ordering::AcqRel);
                Err(Error::Thread { source })
            }
        }
    }
}

/// Awaits `job` inside `span`, then records its outcome (see the crate's
/// tracing docs). With no subscriber this costs about 4 ns a call
/// (`measure_handoff`).
async fn traced<R>(
    span: tracing::Span,
    job: impl Future<Output = Result<R>>,
    inode: impl FnOnce(&R) -> Option<u64>,
) -> Result<R> {
    let result = job.instrument(span.clone()).await;
    trace::finish(&span, &result, inode);
    result
}

/// How long a caller that lent its CPU (see [`Executor::run_in_short`])
/// waits for the answer without parking. A short job takes 5-10 us there.
const LEND_WAIT: Duration = Duration::from_micros(50);

/// A job's answer as the caller sees it; `None` if the job was dropped
/// unrun or its thread died.
fn unpack<R>(answer: Option<Result<std::result::Result<R, Panic>>>) -> Result<R> {
    match answer {
        Some(Ok(Ok(value))) => Ok(value),
        Some(Ok(Err(panic))) => resume_unwind(panic),
        Some(Err(err)) => Err(err),
        None => Err(Error::Thread {
            source: io::Error::other("namespace thread exited before answering"),
        }),
    }
}

/// Runs jobs until the queue closes (`false`) or the thread cannot go home
/// (`true` if that was after a closure, whose slot it still holds).
fn worker_loop(queue: &Queue, home: &NetNs) -> bool {
    // A thread is born in its creator's namespace: make sure it is home
    // (with no `setns` if it is: that needs privileges the process may have
    // dropped since the executor was made).
    let born_home = NetNs::current_thread().is_ok_and(|ns| ns.id() == home.id());
    let mut worker = Worker {
        home,
        away: !born_home,
    };
    if !worker.restore() {
        return false;
    }
    // The affinity this thread was born with, to go back to after a short
    // job confined it to its submitter's CPU.
    let affinity = sched_getaffinity(Pid::from_raw(0)).ok();
    let me = Idle {
        thread: std::thread::current(),
        tid: gettid(),
        lendable: affinity.is_some(),
        lent: Arc::new(AtomicBool::new(false)),
    };
    let mut finished_closure = false;
    while let Some(Queued {
        job,
        short,
        closure,
    }) = queue.pop(&me, finished_closure)
    {
        if !short
            && me.lent.swap(false, Ordering::AcqRel)
            && let Some(affinity) = &affinity
            && let Err(err) = sched_setaffinity(Pid::from_raw(0), affinity)
        {
            tracing::warn!(%err, "namespace thread cannot give back its CPU affinity");
        }
        job(&mut worker);
        if !worker.restore() {
            return closure;
        }
        finished_closure = closure;
    }
    false
}
