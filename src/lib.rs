//! Examples and integration tests of the netns toolkit live in `examples/` and `tests/`.
