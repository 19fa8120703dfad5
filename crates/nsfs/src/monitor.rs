//! Watching a run directory for namespaces added and removed.
// TODO(nsfs helper): implement.
