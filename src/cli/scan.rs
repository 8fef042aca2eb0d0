//! `redactd scan`: audit existing files. Reports where values are, never the
//! values themselves.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{ScanArgs, is_broken_pipe, load_ruleset};
use crate::engine::{Finding, Ruleset, Scratch, Stats};
use crate::sources::lines::{Chunk, LineReader};

pub fn run(args: &ScanArgs) -> Result<i32> {
    let rs = load_ruleset(&args.rules, &[])?;
    let mut files = Vec::new();
    for p in &args.paths {
        collect_files(p, &mut files).with_context(|| format!("scan {}", p.display()))?;
    }
    let mut scratch = Scratch::new(&rs);
    scratch.collect_findings();
    let mut stats = Stats::new(&rs);
    let mut out = io::BufWriter::new(io::stdout().lock());
    let (mut found, mut errors) = (0u64, 0u64);
    for f in &files {
        match scan_file(
            &rs,
            f,
            args.max_line_bytes,
            &mut scratch,
            &mut stats,
            &mut out,
        ) {
            Ok(n) => found += n,
            Err(e) if is_broken_pipe(&e) => return Ok(i32::from(found > 0)),
            Err(e) => {
                errors += 1;
                eprintln!("redactd: scan {}: {e}", f.display());
            }
        }
    }
    let _ = out.flush();
    eprintln!(
        "redactd: scanned {} files, {} lines: {} findings{}",
        files.len() as u64 - errors,
        stats.lines,
        found,
        if errors > 0 {
            format!(", {errors} files unreadable")
        } else {
            String::new()
        }
    );
    Ok(if errors > 0 { 2 } else { i32::from(found > 0) })
}

fn collect_files(p: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if std::fs::metadata(p)?.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            // Do not follow symlinked directories: a link loop would never end.
            if std::fs::symlink_metadata(&e)?.file_type().is_symlink() && e.is_dir() {
                continue;
            }
            collect_files(&e, out)?;
        }
    } else {
        out.push(p.to_path_buf());
    }
    Ok(())
}

fn scan_file(
    rs: &Ruleset,
    path: &Path,
    max_line: usize,
    scratch: &mut Scratch,
    stats: &mut Stats,
    out: &mut impl Write,
) -> io::Result<u64> {
    let mut reader = LineReader::new(File::open(path)?, max_line);
    let (mut line_no, mut piece_offset, mut found) = (0u64, 0usize, 0u64);
    while let Some(chunk) = reader.next(|| {})? {
        let (offset, findings) = match chunk {
            Chunk::Line { data, .. } => {
                line_no += 1;
                rs.redact_line(data, scratch, stats);
                (0, scratch.take_findings())
            }
            Chunk::Piece {
                data, first, last, ..
            } => {
                if first {
                    line_no += 1;
                    piece_offset = 0;
                }
                rs.redact_fragment(data, scratch, stats);
                let at = piece_offset;
                piece_offset = if last { 0 } else { piece_offset + data.len() };
                (at, scratch.take_findings())
            }
        };
        for f in findings {
            found += 1;
            report(out, path, line_no, offset, rs, &f)?;
        }
    }
    Ok(found)
}

fn report(
    out: &mut impl Write,
    path: &Path,
    line: u64,
    base: usize,
    rs: &Ruleset,
    f: &Finding,
) -> io::Result<()> {
    let rule = &rs.rules()[f.rule as usize];
    writeln!(
        out,
        "{}:{}:{}: {} [{}] {} ({} bytes)",
        path.display(),
        line,
        base + f.offset + 1,
        rule.id,
        rule.category.as_str(),
        f.preview,
        f.len
    )
}
