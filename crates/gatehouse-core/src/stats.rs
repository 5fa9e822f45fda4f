//! Counters the proxy keeps and `GET /status` reports. Relaxed atomics: no lock on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};

/// Connection and request counters, as Kong's `/status` `server` section names them.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections accepted since start.
    pub connections_accepted: AtomicU64,
    /// Connections closed since start.
    pub connections_closed: AtomicU64,
    /// Requests handled since start.
    pub total_requests: AtomicU64,
}

impl ProxyStats {
    /// The `server` object of `GET /status`.
    pub fn to_json(&self) -> serde_json::Value {
        let accepted = self.connections_accepted.load(Ordering::Relaxed);
        let closed = self.connections_closed.load(Ordering::Relaxed);
        let active = accepted.saturating_sub(closed);
        serde_json::json!({
            "connections_accepted": accepted,
            "connections_handled": accepted,
            "connections_active": active,
            "connections_reading": 0,
            "connections_writing": active,
            "connections_waiting": 0,
            "total_requests": self.total_requests.load(Ordering::Relaxed),
        })
    }
}
