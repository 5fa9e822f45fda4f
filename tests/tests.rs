//! One integration-test binary: each module drives the real `gatehouse` binary over HTTP on free
//! loopback ports, with its own temporary data directory.

#![allow(clippy::unwrap_used)]

mod it;
