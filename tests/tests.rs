//! One integration-test binary: each module drives the real `gatehouse` binary over HTTP on free
//! loopback ports, with its own temporary data directory.

mod it;
