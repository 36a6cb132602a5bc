//! api crate
