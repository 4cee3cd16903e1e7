//! What the HTTP benches share: a release `gnocchid serve` child on a fresh
//! data directory and a minimal blocking HTTP/1.1 keep-alive client (a few
//! microseconds of client CPU per request, so figures are the server's).

#![allow(dead_code)] // Each bench uses its own part.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// `admin:` in basic auth: the admin identity of the default policy.
const AUTH: &str = "Basic YWRtaW46";

/// Creates a metric under `policy`; returns its id.
pub(crate) fn create_metric(client: &mut Client, policy: &str) -> String {
    let body = serde_json::json!({"archive_policy_name": policy});
    let reply = client.expect("POST", "/v1/metric", &body, 201);
    let created: Value = serde_json::from_slice(&reply).unwrap();
    created["id"].as_str().unwrap().to_owned()
}

pub(crate) fn wait_processed(client: &mut Client) {
    loop {
        let status = client.ok("GET", "/v1/status?details=false", &Value::Null);
        if status["storage"]["summary"]["measures"].as_u64() == Some(0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn now_minute() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now - now % 60
}

pub(crate) fn iso(epoch_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(epoch_seconds, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// A `gnocchid serve` child on a fresh data directory, killed on drop.
pub(crate) struct Server {
    pub(crate) child: Option<Child>,
    pub(crate) port: u16,
    _data: Option<tempfile::TempDir>,
}

impl Server {
    pub(crate) fn start() -> Server {
        let data = match std::env::var_os("GNOCCHID_BENCH_DIR") {
            Some(dir) => tempfile::tempdir_in(dir),
            None => tempfile::tempdir(),
        }
        .unwrap();
        // Another build (`GNOCCHID_BENCH_BIN`) for before/after figures.
        let binary = std::env::var_os("GNOCCHID_BENCH_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_gnocchid").into());
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(
                std::env::var("GNOCCHID_BENCH_SERVER_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting gnocchid");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Server {
            child: Some(child),
            port,
            _data: Some(data),
        }
    }

    pub(crate) fn none() -> Server {
        Server {
            child: None,
            port: 0,
            _data: None,
        }
    }

    /// User + system CPU seconds of the server so far, from `/proc`.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        let Some(child) = &self.child else { return 0.0 };
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks: f64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
            .unwrap_or(0.0);
        ticks / 100.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) struct Client {
    stream: BufReader<TcpStream>,
    request: Vec<u8>,
}

impl Client {
    pub(crate) fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream: BufReader::new(stream),
            request: Vec::with_capacity(4096),
        }
    }

    pub(crate) fn raw(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.request.clear();
        let _ = write!(
            self.request,
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {AUTH}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.request.extend_from_slice(body);
        self.stream.get_mut().write_all(&self.request).unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.stream.read_line(&mut line).unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.trim().eq_ignore_ascii_case("chunked");
            }
        }
        let mut reply = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).unwrap();
                let size = usize::from_str_radix(line.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                reply.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(length) = length {
            reply.resize(length, 0);
            self.stream.read_exact(&mut reply).unwrap();
        }
        (status, reply)
    }

    pub(crate) fn expect(
        &mut self,
        method: &str,
        path: &str,
        body: &Value,
        status: u16,
    ) -> Vec<u8> {
        let bytes = match body {
            Value::Null => Vec::new(),
            other => serde_json::to_vec(other).unwrap(),
        };
        let (got, reply) = self.raw(method, path, &bytes);
        assert_eq!(
            got,
            status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&reply)
        );
        reply
    }

    pub(crate) fn ok(&mut self, method: &str, path: &str, body: &Value) -> Value {
        let reply = self.expect(method, path, body, 200);
        serde_json::from_slice(&reply).unwrap_or_else(|err| {
            panic!(
                "{method} {path}: {err}: {}",
                String::from_utf8_lossy(&reply)
            )
        })
    }
}
