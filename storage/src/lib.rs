//! storage crate
