//! The fast path (`ExecMode::Fast`): posix_spawn from a namespace thread.

mod common;

use nsproc::ExecMode;

all_tests_for_mode!(ExecMode::Fast, nspopen_spawn,);
