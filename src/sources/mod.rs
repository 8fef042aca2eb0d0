//! Sources: where log lines come from.
//!
//! For now the only source is a byte stream (stdin, or a file for
//! `redactd scan`) split into lines by [`lines::LineReader`], which also
//! enforces the line-length limit.

pub mod checkpoint;
pub mod file;
pub mod kafka;
pub mod kubernetes;
pub mod lines;
