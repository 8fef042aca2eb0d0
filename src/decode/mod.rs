//! Decoding: from the bytes a source read to something the engine can walk.
//!
//! A line is either a JSON value (walked token by token by [`json`]) or
//! text; in text, `key=value` pairs are read as logfmt ([`logfmt`]) so
//! field-name rules apply to them. Container-runtime envelopes (CRI, Docker
//! json-file, [`container`]) unwrap the payload, and the payload goes
//! through the same paths.

pub mod container;
pub mod json;
pub mod logfmt;
