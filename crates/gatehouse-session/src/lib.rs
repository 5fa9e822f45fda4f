//! Encrypted, authenticated cookie sessions.
