//! The fast path (`ExecMode::Fast`): posix_spawn from a namespace thread.

mod common;

use nsproc::ExecMode;

tests_for_mode!(
    ExecMode::Fast,
    exit_code_3,
    sigterm_is_signal,
    cat_echoes_stdin,
    output_collects_both_streams,
    child_is_in_the_namespace,
    ip_link_lists_the_namespace_links,
    env_cwd_arg0_pgroup,
    missing_binary,
    not_executable,
    missing_namespace,
    only_stdio_fds_in_child,
    given_fd_as_stdout,
    kill_on_drop_kills,
    kill_kills,
    process_group_is_killable_as_a_whole,
    pidfd_names_the_child,
    concurrent_spawns_across_namespaces,
    nspopen_spawn,
);
