//! nsproc
