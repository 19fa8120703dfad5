//! nsproxy
