//! An in-memory [`Firewall`] for pure tests of the daemon's logic. Never used in production.
