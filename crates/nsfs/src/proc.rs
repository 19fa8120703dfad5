//! Which names a process's namespace has, and which processes are inside.
// TODO(nsfs helper): implement.
