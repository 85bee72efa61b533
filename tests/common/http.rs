//! A static file server on 127.0.0.1 for tests of remote reads: HTTP/1.1 GET and HEAD with
//! single `Range: bytes=a-b` requests (what GDAL's `/vsicurl/` sends), keep-alive, a count
//! of the body bytes it sent, and stop / restart on the same port. Python's http.server does
//! not answer range requests, so GDAL refuses it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running server over one folder.
pub struct FileServer {
    root: PathBuf,
    port: u16,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    trigger: Arc<Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    /// Serves `root` on a free port of 127.0.0.1.
    pub fn start(root: &Path) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut s = FileServer {
            root: root.to_path_buf(),
            port,
            stop: Arc::new(AtomicBool::new(false)),
            sent: Arc::new(AtomicU64::new(0)),
            requests: Arc::new(AtomicU64::new(0)),
            trigger: Arc::new(Mutex::new(None)),
            thread: None,
        };
        s.spawn(listener);
        s
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Body bytes sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Goes down (port closed, the request unanswered) when a request's path contains
    /// `text`: a server that dies in the middle of a run, at a known point.
    pub fn stop_when_requested(&self, text: &str) {
        *self.trigger.lock().unwrap() = Some(text.to_string());
    }

    /// Stops answering: the port is closed (connections are refused).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    /// Serves again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        *self.trigger.lock().unwrap() = None;
        self.stop = Arc::new(AtomicBool::new(false));
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.spawn(listener);
    }

    fn spawn(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let (root, stop, sent, reqs, trig) = (
            self.root.clone(),
            self.stop.clone(),
            self.sent.clone(),
            self.requests.clone(),
            self.trigger.clone(),
        );
        self.thread = Some(std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let c = Counters {
                            stop: stop.clone(),
                            sent: sent.clone(),
                            reqs: reqs.clone(),
                            trigger: trig.clone(),
                        };
                        let root = root.clone();
                        workers.push(std::thread::spawn(move || serve(conn, &root, &c)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        }));
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the connections of one server share.
struct Counters {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    reqs: Arc<AtomicU64>,
    trigger: Arc<Mutex<Option<String>>>,
}

/// Answers the requests of one connection until it closes or the server stops.
fn serve(conn: TcpStream, root: &Path, c: &Counters) {
    let (stop, sent, reqs) = (&*c.stop, &*c.sent, &*c.reqs);
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut out = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut head = Vec::new();
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) => head.push(line.trim_end().to_string()),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
        let body_len: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; body_len];
        if body_len > 0 && reader.read_exact(&mut body).is_err() {
            return;
        }
        let target = head.first().cloned().unwrap_or_default();
        if let Some(t) = c.trigger.lock().unwrap().as_deref() {
            if target.contains(t) {
                stop.store(true, Ordering::SeqCst);
                return;
            }
        }
        reqs.fetch_add(1, Ordering::SeqCst);
        if answer(&mut out, &head, root, sent).is_err() {
            return;
        }
    }
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Writes the response to one request.
fn answer(
    out: &mut TcpStream,
    head: &[String],
    root: &Path,
    sent: &AtomicU64,
) -> std::io::Result<()> {
    let first: Vec<&str> = head
        .first()
        .map(|l| l.split(' ').collect())
        .unwrap_or_default();
    let (method, target) = (
        first.first().copied().unwrap_or(""),
        first.get(1).copied().unwrap_or("/"),
    );
    let rel = target
        .split('?')
        .next()
        .unwrap_or("")
        .trim_start_matches('/');
    let path = root.join(rel);
    let data = match (rel.contains(".."), std::fs::read(&path)) {
        (false, Ok(d)) => d,
        _ => {
            let msg = b"not found";
            write!(
                out,
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
                msg.len()
            )?;
            return out.write_all(msg);
        }
    };
    let total = data.len();
    let range = header(head, "range").and_then(|r| parse_range(r, total));
    let (status, lo, hi) = match range {
        Some((lo, hi)) => ("206 Partial Content", lo, hi),
        None => ("200 OK", 0, total.saturating_sub(1)),
    };
    let len = if total == 0 { 0 } else { hi + 1 - lo };
    let mut h = format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\n");
    if range.is_some() {
        h.push_str(&format!("Content-Range: bytes {lo}-{hi}/{total}\r\n"));
    }
    h.push_str("\r\n");
    out.write_all(h.as_bytes())?;
    if method == "HEAD" || len == 0 {
        return Ok(());
    }
    sent.fetch_add(len as u64, Ordering::SeqCst);
    out.write_all(&data[lo..=hi])
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `total` bytes.
fn parse_range(r: &str, total: usize) -> Option<(usize, usize)> {
    let spec = r.strip_prefix("bytes=")?.split(',').next()?.trim();
    let (a, b) = spec.split_once('-')?;
    let last = total.checked_sub(1)?;
    let (lo, hi) = match (a.parse::<usize>().ok(), b.parse::<usize>().ok()) {
        (Some(lo), Some(hi)) => (lo, hi.min(last)),
        (Some(lo), None) => (lo, last),
        (None, Some(n)) => (total.saturating_sub(n), last),
        (None, None) => return None,
    };
    (lo <= hi).then_some((lo, hi))
}
