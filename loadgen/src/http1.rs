//! A minimal HTTP/1.1 keep-alive client: one connection, one request at a time.
//!
//! The load generator shares the machine's two cores with everything it measures, so its own
//! cost per request is part of every figure. A general client (reqwest: pooling, header maps,
//! per-request allocations) cost several times what nginx spends answering a 204; this writes a
//! pre-formatted request and reads back the status and the body by Content-Length or chunks.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Connection {
    address: String,
    host: String,
    /// The local address to connect from (`127.0.1.x`): each source address has a port range
    /// of its own, so tens of thousands of connections to one port do not run out of ports.
    source: Option<std::net::IpAddr>,
    stream: Option<BufReader<TcpStream>>,
    line: String,
}

pub struct Response {
    pub status: u16,
    /// `Retry-After` in seconds, when the answer had one (a 503 or 429 does).
    pub retry_after: Option<u64>,
    pub body: Vec<u8>,
}

const TIMEOUT: Duration = Duration::from_secs(10);

impl Connection {
    /// `base` is `http://host:port`.
    pub fn new(base: &str) -> Self {
        let address = base.trim_start_matches("http://").trim_end_matches('/').to_string();
        Self { host: address.clone(), address, source: None, stream: None, line: String::new() }
    }

    /// The same, connecting from `source`.
    pub fn from_source(base: &str, source: std::net::IpAddr) -> Self {
        Self { source: Some(source), ..Self::new(base) }
    }

    /// Opens the connection now (else the first request does).
    pub async fn open(&mut self) -> std::io::Result<()> {
        if self.stream.is_none() {
            let s = match self.source {
                None => TcpStream::connect(&self.address).await?,
                Some(ip) => {
                    let target: std::net::SocketAddr = self
                        .address
                        .parse()
                        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not ip:port"))?;
                    let socket = tokio::net::TcpSocket::new_v4()?;
                    socket.bind((ip, 0).into())?;
                    socket.connect(target).await?
                }
            };
            s.set_nodelay(true)?;
            self.stream = Some(BufReader::with_capacity(16 * 1024, s));
        }
        Ok(())
    }

    /// GET (no body) or POST (JSON body). Reconnects once if a kept-alive connection was closed.
    pub async fn request(&mut self, method: &str, path: &str, json: Option<&str>) -> std::io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(body) = json {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        if let Some(body) = json {
            head.push_str(body);
        }
        for attempt in 0..2 {
            let fresh = self.stream.is_none();
            match tokio::time::timeout(TIMEOUT, self.exchange(head.as_bytes())).await {
                Ok(Ok(r)) => return Ok(r),
                Ok(Err(e)) => {
                    self.stream = None;
                    // A stale keep-alive connection fails at once: retry on a new one. A fresh
                    // connection that fails is a real error.
                    if fresh || attempt == 1 {
                        return Err(e);
                    }
                }
                Err(_) => {
                    self.stream = None;
                    return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 10 s"));
                }
            }
        }
        unreachable!("the loop returns")
    }

    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<Response> {
        self.open().await?;
        let stream = self.stream.as_mut().expect("connected above");
        stream.get_mut().write_all(request).await?;

        self.line.clear();
        if stream.read_line(&mut self.line).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before answering"));
        }
        let status: u16 =
            self.line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("status line"))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        let mut retry_after = None;
        loop {
            self.line.clear();
            if stream.read_line(&mut self.line).await? == 0 {
                return Err(bad("headers cut short"));
            }
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                    close = true;
                } else if name.eq_ignore_ascii_case("retry-after") {
                    retry_after = value.parse().ok();
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                self.line.clear();
                stream.read_line(&mut self.line).await?;
                let size = usize::from_str_radix(self.line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| bad("chunk size"))?;
                let start = body.len();
                body.resize(start + size + 2, 0);
                stream.read_exact(&mut body[start..]).await?;
                body.truncate(start + size);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            stream.read_exact(&mut body).await?;
        } else if status != 204 && status != 304 {
            // No length: the body runs to the end of the connection.
            stream.read_to_end(&mut body).await?;
            close = true;
        }
        if close {
            self.stream = None;
        }
        Ok(Response { status, retry_after, body })
    }
}

/// What went wrong below HTTP, in the words of the benchmark's report.
pub fn failure_kind(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    if e.raw_os_error() == Some(24) {
        return "client_out_of_files"; // EMFILE: this process's own limit, not the server's doing
    }
    match e.kind() {
        ConnectionRefused => "connection_refused",
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => "connection_reset",
        TimedOut => "client_timeout",
        InvalidData => "malformed_response",
        AddrNotAvailable | AddrInUse => "client_out_of_ports",
        _ => "io_error",
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("malformed HTTP response: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request on a connection with the next canned response.
    async fn server(responses: Vec<&'static str>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut reader = BufReader::new(socket);
            for response in responses {
                // Read one request: headers, then a body by Content-Length.
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).await.unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).await.unwrap();
                reader.get_mut().write_all(response.as_bytes()).await.unwrap();
            }
        });
        base
    }

    #[tokio::test]
    async fn lengths_chunks_and_empty_bodies_are_read_on_one_kept_alive_connection() {
        let base = server(vec![
            "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nnope",
        ])
        .await;
        let mut c = Connection::new(&base);
        let r = c.request("POST", "/v", Some("{}")).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (202, b"ok".as_slice()));
        let r = c.request("GET", "/c", None).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"abcde".as_slice()));
        assert_eq!(c.request("GET", "/e", None).await.unwrap().status, 204);
        let r = c.request("GET", "/n", None).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (503, b"nope".as_slice()));
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_not_a_hang() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        assert!(Connection::new(&base).request("GET", "/", None).await.is_err());
    }
}
