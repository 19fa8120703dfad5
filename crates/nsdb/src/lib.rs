//! nsdb
