//! Cross-crate integration tests of nsdb live in `tests/tests/`: several nodes on loopback and a
//! real browser. This library is empty on purpose.
