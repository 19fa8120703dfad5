//! The workspace root package of the netns toolkit: it holds the runnable
//! examples (`examples/`) and the cross-crate integration tests (`tests/`).
//! The README below is compiled as a doc test, so its quick start stays true.
#![doc = include_str!("../README.md")]
