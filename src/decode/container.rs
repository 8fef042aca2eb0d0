//! Container-runtime log envelopes: CRI (containerd, CRI-O) and Docker
//! json-file.
//!
//! A container runtime does not write the application's lines as they are:
//! it wraps each one in an envelope with a timestamp and the stream, and it
//! splits long lines (16 KiB by default) into partial records:
//!
//! - CRI: `<RFC3339Nano time> <stdout|stderr> <P|F>[:tags] <message>`;
//!   `P` is a partial record continued by the next one of the same stream,
//!   `F` the full (or final) one.
//! - Docker json-file: `{"log":"...\n","stream":"stdout","time":"..."}`; a
//!   `log` without its trailing newline is partial.
//!
//! [`Decoder`] undoes both: it joins partial records per stream (stdout and
//! stderr interleave freely) up to a size cap, and hands out whole
//! [`Record`]s. [`write_event`] then writes the event the agent emits: one
//! JSON object with the time, the stream, optional Kubernetes metadata and
//! the message. The engine redacts that object like any JSON line, and a
//! message that is itself JSON is walked field by field (embedded JSON in a
//! string value is parsed by the engine; with `merge_json` it is embedded
//! as an object).
//!
//! Fail closed: a line in neither format, or a join that grows past the
//! cap, still becomes an event (its raw text as the message, redacted as
//! text) and is counted in [`Record::problem`]; nothing is dropped and
//! nothing skips the engine.
//!
//! Why by hand: no crate parses CRI lines, and the Docker envelope is three
//! fields that `serde_json` reads for us.

use std::borrow::Cow;

use serde::Deserialize;

/// Which envelope a source's lines are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Cri,
    Docker,
    /// Each line by its look: `{` starts a Docker record, anything else is
    /// tried as CRI.
    Auto,
}

/// The stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// What went wrong with a record (it is still emitted, as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The line is not in the source's format.
    MalformedEnvelope,
    /// Partial records were joined past the cap; this record is a cut of
    /// the message, the rest follows as further records.
    PartialOverflow,
}

impl Problem {
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::MalformedEnvelope => "malformed_envelope",
            Problem::PartialOverflow => "partial_overflow",
        }
    }
}

/// One decoded container log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The runtime's timestamp, as written; `None` for malformed lines.
    pub time: Option<String>,
    pub stream: Option<Stream>,
    /// The message, joined, without the trailing newline.
    pub message: Vec<u8>,
    pub problem: Option<Problem>,
}

struct Pending {
    time: String,
    message: Vec<u8>,
    /// File offset of the first line of the join.
    start: u64,
}

/// Joins one file's envelope lines into records; see the module doc.
pub struct Decoder {
    format: Format,
    max_message: usize,
    /// Unfinished joins, per stream.
    pending: [Option<Pending>; 2],
}

/// One parsed envelope line.
struct Envelope<'a> {
    time: Cow<'a, str>,
    stream: Stream,
    partial: bool,
    message: Cow<'a, [u8]>,
}

impl Decoder {
    /// `max_message`: the largest joined message; a join past it is cut.
    pub fn new(format: Format, max_message: usize) -> Decoder {
        Decoder {
            format,
            max_message: max_message.max(1),
            pending: [None, None],
        }
    }

    /// Takes one envelope line (without its newline) that starts at file
    /// offset `start`; pushes the records it completes onto `out`.
    pub fn feed(&mut self, line: &[u8], start: u64, out: &mut Vec<Record>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let env = match self.format {
            Format::Cri => parse_cri(line),
            Format::Docker => parse_docker(line),
            Format::Auto if line.first() == Some(&b'{') => parse_docker(line),
            Format::Auto => parse_cri(line),
        };
        let Some(env) = env else {
            out.push(Record {
                time: None,
                stream: None,
                message: line.to_vec(),
                problem: Some(Problem::MalformedEnvelope),
            });
            return;
        };
        let slot = &mut self.pending[env.stream.index()];
        let mut p = slot.take().unwrap_or_else(|| Pending {
            time: env.time.into_owned(),
            message: Vec::new(),
            start,
        });
        p.message.extend_from_slice(&env.message);
        if !env.partial {
            out.push(Record {
                time: Some(p.time),
                stream: Some(env.stream),
                message: p.message,
                problem: None,
            });
        } else if p.message.len() >= self.max_message {
            out.push(Record {
                time: Some(p.time),
                stream: Some(env.stream),
                message: p.message,
                problem: Some(Problem::PartialOverflow),
            });
        } else {
            *slot = Some(p);
        }
    }

    /// The file offset up to which everything read is in emitted records:
    /// `end` unless a join is still open, then where it started. A
    /// checkpoint must not pass it, or a restart would lose the join's
    /// first parts.
    pub fn safe_offset(&self, end: u64) -> u64 {
        self.pending
            .iter()
            .flatten()
            .map(|p| p.start)
            .min()
            .unwrap_or(end)
            .min(end)
    }

    /// The file ended for good (rotated away and drained, or deleted):
    /// unfinished joins are emitted as they are.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        let mut rest: Vec<(Stream, Pending)> = Vec::new();
        for (s, slot) in [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .zip(self.pending.iter_mut())
        {
            if let Some(p) = slot.take() {
                rest.push((s, p));
            }
        }
        rest.sort_by_key(|(_, p)| p.start);
        out.extend(rest.into_iter().map(|(s, p)| Record {
            time: Some(p.time),
            stream: Some(s),
            message: p.message,
            problem: None,
        }));
    }

    /// Forgets open joins (the file was truncated).
    pub fn reset(&mut self) {
        self.pending = [None, None];
    }
}

fn parse_cri(line: &[u8]) -> Option<Envelope<'_>> {
    let (time, rest) = split_space(line)?;
    let (stream, rest) = split_space(rest)?;
    let (tags, message) = split_space(rest).unwrap_or((rest, &[]));
    // The time is RFC 3339: starts with a year.
    if time.len() < 20 || !time[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match tags.split(|b| *b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return None,
    };
    Some(Envelope {
        time: String::from_utf8_lossy(time),
        stream,
        partial,
        message: Cow::Borrowed(message),
    })
}

fn split_space(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(b' ', s)?;
    Some((&s[..i], &s[i + 1..]))
}

#[derive(Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow, default)]
    time: Cow<'a, str>,
}

fn parse_docker(line: &[u8]) -> Option<Envelope<'_>> {
    let d: DockerLine<'_> = serde_json::from_slice(line).ok()?;
    let stream = match &*d.stream {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let (message, partial) = match d.log {
        Cow::Borrowed(s) => match s.strip_suffix('\n') {
            Some(m) => (Cow::Borrowed(m.as_bytes()), false),
            None => (Cow::Borrowed(s.as_bytes()), true),
        },
        Cow::Owned(mut s) => {
            let partial = !s.ends_with('\n');
            if !partial {
                s.pop();
            }
            (Cow::Owned(s.into_bytes()), partial)
        }
    };
    Some(Envelope {
        time: d.time,
        stream,
        partial,
        message,
    })
}

/// Names of the fields of an emitted event; an empty name leaves the field
/// out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fields {
    pub time: String,
    pub stream: String,
    pub message: String,
    /// The object holding the Kubernetes metadata.
    pub kubernetes: String,
    /// Embed a message that is a JSON object as an object rather than as a
    /// string (the engine redacts it field by field either way).
    pub merge_json: bool,
}

impl Default for Fields {
    fn default() -> Fields {
        Fields {
            time: "time".into(),
            stream: "stream".into(),
            message: "message".into(),
            kubernetes: "kubernetes".into(),
            merge_json: false,
        }
    }
}

/// Writes the event for `rec` as one JSON object (no newline) to `out`.
/// `metadata` is a JSON object already serialized (the Kubernetes
/// metadata), or `None`. The message is made valid UTF-8 (invalid bytes
/// become U+FFFD); the return value says whether that happened.
pub fn write_event(rec: &Record, metadata: Option<&[u8]>, f: &Fields, out: &mut Vec<u8>) -> bool {
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, name: &str| {
        out.push(if first { b'{' } else { b',' });
        first = false;
        json_string(out, name);
        out.push(b':');
    };
    if let (false, Some(t)) = (f.time.is_empty(), &rec.time) {
        key(out, &f.time);
        json_string(out, t);
    }
    if let (false, Some(s)) = (f.stream.is_empty(), rec.stream) {
        key(out, &f.stream);
        json_string(out, s.as_str());
    }
    if let (false, Some(m)) = (f.kubernetes.is_empty(), metadata) {
        key(out, &f.kubernetes);
        out.extend_from_slice(m);
    }
    let (text, lossy) = match String::from_utf8_lossy(&rec.message) {
        Cow::Borrowed(s) => (Cow::Borrowed(s), false),
        Cow::Owned(s) => (Cow::Owned(s), true),
    };
    let message = if f.message.is_empty() {
        "message"
    } else {
        &f.message
    };
    key(out, message);
    if f.merge_json && rec.problem.is_none() && is_json_object(&text) {
        out.extend_from_slice(text.as_bytes());
    } else {
        json_string(out, &text);
    }
    out.push(b'}');
    lossy
}

/// A JSON object on one line, safe to embed as it is.
fn is_json_object(s: &str) -> bool {
    let t = s.trim();
    t.starts_with('{')
        && !s.contains(['\n', '\r'])
        && serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
}

/// Appends `s` as a JSON string literal.
pub fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail, and a &str always serializes.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(format: Format, lines: &[&str]) -> Vec<Record> {
        let mut d = Decoder::new(format, 1 << 20);
        let mut out = Vec::new();
        let mut off = 0;
        for l in lines {
            d.feed(l.as_bytes(), off, &mut out);
            off += l.len() as u64 + 1;
        }
        d.finish(&mut out);
        out
    }

    fn msgs(r: &[Record]) -> Vec<String> {
        r.iter()
            .map(|r| String::from_utf8(r.message.clone()).unwrap())
            .collect()
    }

    #[test]
    fn cri_full_and_partial_lines_are_joined_per_stream() {
        let r = feed_all(
            Format::Cri,
            &[
                "2026-11-22T10:00:00.000000001Z stdout P hello ",
                "2026-11-22T10:00:00.000000002Z stderr F boom",
                "2026-11-22T10:00:00.000000003Z stdout P big ",
                "2026-11-22T10:00:00.000000004Z stdout F world",
                "2026-11-22T10:00:00.000000005Z stdout F",
            ],
        );
        assert_eq!(msgs(&r), ["boom", "hello big world", ""]);
        assert_eq!(r[0].stream, Some(Stream::Stderr));
        assert_eq!(r[1].stream, Some(Stream::Stdout));
        // The join keeps the time of its first part.
        assert_eq!(r[1].time.as_deref(), Some("2026-11-22T10:00:00.000000001Z"));
        assert!(r.iter().all(|r| r.problem.is_none()));
    }

    #[test]
    fn cri_tags_after_the_partial_flag_are_accepted() {
        let r = feed_all(
            Format::Cri,
            &["2026-11-22T10:00:00Z stdout F:x msg with  spaces"],
        );
        assert_eq!(msgs(&r), ["msg with  spaces"]);
    }

    #[test]
    fn docker_partial_records_are_joined_and_the_newline_dropped() {
        let r = feed_all(
            Format::Docker,
            &[
                r#"{"log":"part one, ","stream":"stdout","time":"2026-11-22T10:00:00Z"}"#,
                r#"{"log":"err\n","stream":"stderr","time":"2026-11-22T10:00:01Z"}"#,
                r#"{"log":"part \"two\"\n","stream":"stdout","time":"2026-11-22T10:00:02Z"}"#,
            ],
        );
        assert_eq!(msgs(&r), ["err", "part one, part \"two\""]);
    }

    #[test]
    fn auto_tells_the_formats_apart_per_line() {
        let r = feed_all(
            Format::Auto,
            &[
                r#"{"log":"a\n","stream":"stdout","time":"t"}"#,
                "2026-11-22T10:00:00Z stderr F b",
            ],
        );
        assert_eq!(msgs(&r), ["a", "b"]);
    }

    #[test]
    fn lines_in_neither_format_become_text_records_marked_malformed() {
        for (f, l) in [
            (Format::Cri, "just some text"),
            (Format::Cri, "2026-11-22T10:00:00Z stdin F x"),
            (Format::Cri, "2026-11-22T10:00:00Z stdout Q x"),
            (Format::Docker, r#"{"log":"trunc"#),
            (Format::Docker, r#"{"msg":"no log field"}"#),
        ] {
            let r = feed_all(f, &[l]);
            assert_eq!(msgs(&r), [l], "{l}");
            assert_eq!(r[0].problem, Some(Problem::MalformedEnvelope), "{l}");
        }
    }

    #[test]
    fn a_join_past_the_cap_is_cut_and_marked() {
        let mut d = Decoder::new(Format::Cri, 10);
        let mut out = Vec::new();
        d.feed(b"2026-11-22T10:00:00Z stdout P 123456", 0, &mut out);
        assert!(out.is_empty());
        d.feed(b"2026-11-22T10:00:00Z stdout P 789012", 40, &mut out);
        d.feed(b"2026-11-22T10:00:00Z stdout F end", 80, &mut out);
        assert_eq!(msgs(&out), ["123456789012", "end"]);
        assert_eq!(out[0].problem, Some(Problem::PartialOverflow));
        assert_eq!(out[1].problem, None);
    }

    #[test]
    fn safe_offset_stops_at_an_open_join() {
        let mut d = Decoder::new(Format::Cri, 1 << 20);
        let mut out = Vec::new();
        d.feed(b"2026-11-22T10:00:00Z stdout P a", 100, &mut out);
        d.feed(b"2026-11-22T10:00:00Z stderr F b", 140, &mut out);
        assert_eq!(d.safe_offset(180), 100);
        d.feed(b"2026-11-22T10:00:00Z stdout F c", 180, &mut out);
        assert_eq!(d.safe_offset(220), 220);
    }

    #[test]
    fn events_are_json_with_metadata_and_escaped_messages() {
        let rec = Record {
            time: Some("2026-11-22T10:00:00Z".into()),
            stream: Some(Stream::Stderr),
            message: b"say \"hi\"\t\xff".to_vec(),
            problem: None,
        };
        let mut out = Vec::new();
        let lossy = write_event(
            &rec,
            Some(br#"{"namespace":"ns"}"#),
            &Fields::default(),
            &mut out,
        );
        assert!(lossy);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream"], "stderr");
        assert_eq!(v["kubernetes"]["namespace"], "ns");
        assert_eq!(v["message"], "say \"hi\"\t\u{fffd}");
    }

    #[test]
    fn merge_json_embeds_json_messages_as_objects() {
        let rec = Record {
            time: None,
            stream: Some(Stream::Stdout),
            message: br#"{"a":1}"#.to_vec(),
            problem: None,
        };
        let f = Fields {
            merge_json: true,
            time: String::new(),
            ..Fields::default()
        };
        let mut out = Vec::new();
        write_event(&rec, None, &f, &mut out);
        assert_eq!(out, br#"{"stream":"stdout","message":{"a":1}}"#);
        let bad = Record {
            message: br#"{"a":1"#.to_vec(),
            ..rec
        };
        out.clear();
        write_event(&bad, None, &f, &mut out);
        assert_eq!(out, br#"{"stream":"stdout","message":"{\"a\":1"}"#);
    }
}
