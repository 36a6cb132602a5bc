//! pipeline crate
