//! A minimal HTTP/1.1 endpoint for the HTTP sink tests.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Answers every request with `status`, one request per connection, and
/// keeps the gunzipped bodies of the requests it accepted (2xx) with the
/// time each arrived. A slow collector takes `base` plus `per_line` for each
/// line of a request before it answers.
pub struct Endpoint {
    bodies: Arc<Mutex<Vec<(u128, String)>>>,
    pub requests: Arc<AtomicUsize>,
}

/// Microseconds since the Unix epoch (what the load test's lines carry).
pub fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

impl Endpoint {
    pub fn start(listener: std::net::TcpListener, status: u16) -> Endpoint {
        Endpoint::slow(listener, status, Duration::ZERO, Duration::ZERO)
    }

    pub fn slow(
        listener: std::net::TcpListener,
        status: u16,
        base: Duration,
        per_line: Duration,
    ) -> Endpoint {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (b, r) = (bodies.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let Some(body) = read_request(&mut conn) else {
                    continue;
                };
                let mut text = String::new();
                let _ = flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text);
                let n = u32::try_from(text.lines().count()).unwrap_or(u32::MAX);
                std::thread::sleep(base + per_line * n);
                r.fetch_add(1, Ordering::SeqCst);
                if (200..300).contains(&status) {
                    b.lock().unwrap().push((unix_micros(), text));
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Endpoint { bodies, requests }
    }

    /// Every line accepted so far, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.arrivals().into_iter().map(|(_, l)| l).collect()
    }

    /// Every line accepted so far with its arrival time (Unix µs).
    pub fn arrivals(&self) -> Vec<(u128, String)> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(t, b)| b.lines().map(|l| (*t, l.to_string())).collect::<Vec<_>>())
            .collect()
    }

    pub fn line_count(&self) -> usize {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.lines().count())
            .sum()
    }
}

/// The body of one request (`None` when the peer went away early).
fn read_request(conn: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    let (head_end, len) = loop {
        let n = conn.read(&mut tmp).unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, len);
        }
    };
    while buf.len() < head_end + len {
        let n = conn.read(&mut tmp).unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    Some(buf[head_end..head_end + len].to_vec())
}
