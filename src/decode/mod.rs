//! Decoding: from the bytes a source read to something the engine can walk.
//!
//! Today a line is either a JSON value (walked token by token by [`json`]),
//! or text. Container-runtime envelopes (CRI, Docker json-file) will live
//! here too: they unwrap the payload, and the payload goes through the same
//! two paths.

pub mod container;
pub mod json;
