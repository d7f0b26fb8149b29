//! A lean, blocking HTTP/1.1 client for a function that makes one request at a time: one
//! kept-alive connection per host (TLS by rustls for `https`), a request written in one
//! `write`, the answer read by its `Content-Length` or chunks.
//!
//! The SMA function answers one event at a time, and each event makes one DynamoDB request.
//! The SDK's default client (a pooled hyper client on tokio's reactor) spent about 130 µs of
//! CPU per request on this work against DynamoDB Local, six times what a blocking exchange on
//! one socket costs, and CPU is what a 128 MB Lambda has least of. [`LeanHttp`] plugs into
//! the SDK as its HTTP client, so signing, retries and (de)serialisation stay the SDK's; the
//! Lambda Runtime API loop in [`crate::lambda`] uses [`Connection`] too, and the SMA's event
//! write ([`crate::direct`]) goes over the SDK client's own connection with
//! [`LeanHttp::exchange`].
//!
//! Blocking is sound there because nothing else runs beside the one request: the function's
//! runtime is single-threaded and idle while it waits. The SDK's timeouts cannot interrupt a
//! blocking call, so every connect, write and read has a socket timeout of its own.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use socket2::SockRef;

/// The most response headers read.
const MAX_HEADERS: usize = 64;
/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The largest response body accepted (a DynamoDB item is at most 400 KB; its JSON a little
/// more; a Lambda event at most 6 MB).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// The most one read takes from the socket.
const READ_CHUNK: usize = 16 * 1024;

/// Where a connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute `http` or `https` URL, and the path and query after it.
    ///
    /// # Errors
    /// When the URL is not absolute `http(s)://host[:port][/...]`.
    pub fn split(url: &str) -> io::Result<(Self, &str)> {
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not an http(s) URL: {url}"),
            )
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        let default = if tls { 443 } else { 80 };
        let port_of = |p: &str| p.parse::<u16>().map_err(|_| bad());
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            // An IPv6 literal: `[::1]` or `[::1]:9001`.
            let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, default),
                _ => (host, port_of(after.strip_prefix(':').ok_or_else(bad)?)?),
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, port_of(port)?),
                None => (authority, default),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok((
            Self {
                tls,
                host: host.to_owned(),
                port,
            },
            path,
        ))
    }

    /// The `Host` header's value: the host, and the port unless it is the scheme's default.
    #[must_use]
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// A response: status, headers (names lower-cased), body.
///
/// The headers are kept as one string and where each name and value lies in it: a response
/// reads its head with two allocations rather than two for every header (three exchanges an
/// SMA event, about a dozen headers each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    head: String,
    fields: Vec<(Range<usize>, Range<usize>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response of `status` with `headers` (names taken in lower case) and `body`.
    #[must_use]
    pub fn new<'a>(
        status: u16,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        body: Vec<u8>,
    ) -> Self {
        let mut head = String::new();
        let mut fields = Vec::new();
        for (name, value) in headers {
            let start = head.len();
            head.extend(name.chars().map(|c| c.to_ascii_lowercase()));
            let middle = head.len();
            head.push_str(&String::from_utf8_lossy(value));
            fields.push((start..middle, middle..head.len()));
        }
        Self {
            status,
            head,
            fields,
            body,
        }
    }

    /// The first header named `name` (lower case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Every header as received, in order: names in lower case.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|(name, value)| (&self.head[name.clone()], &self.head[value.clone()]))
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

/// One kept-alive HTTP/1.1 connection.
pub struct Connection {
    origin: Origin,
    /// The `Host` header's value, made once.
    authority: String,
    stream: Stream,
    /// Bytes read past the last response (none with a well-behaved server).
    buffer: Vec<u8>,
    /// Where each read lands before it joins `buffer`: made once per connection.
    scratch: Box<[u8]>,
    /// The server said it closes the connection after its last answer.
    closing: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `origin` within `connect` (TLS with `tls` when the origin asks for it);
    /// every later read and write waits at most `io` (`None`: as long as it takes).
    ///
    /// # Errors
    /// When the name does not resolve, the connection or the TLS session cannot be set up.
    pub fn open(
        origin: &Origin,
        tls: Option<&Arc<rustls::ClientConfig>>,
        connect: Duration,
        io: Option<Duration>,
    ) -> io::Result<Self> {
        let mut last = None;
        let mut tcp = None;
        for addr in (origin.host.as_str(), origin.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, connect) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            last.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} has no address", origin.host),
                )
            })
        })?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(io)?;
        tcp.set_write_timeout(io)?;
        let stream = if origin.tls {
            let config = tls.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an https origin needs a TLS configuration",
                )
            })?;
            let name = rustls::pki_types::ServerName::try_from(origin.host.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let session = rustls::ClientConnection::new(Arc::clone(config), name)
                .map_err(io::Error::other)?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(session, tcp)))
        } else {
            Stream::Plain(tcp)
        };
        Ok(Self {
            origin: origin.clone(),
            authority: origin.authority(),
            stream,
            buffer: Vec::new(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            closing: false,
        })
    }

    /// Whether the connection can carry another request: the server has not closed it (or
    /// sent anything unasked) while it was idle. On TLS, records that carry no data (a TLS 1.3
    /// session ticket) are taken in on the way; a close or any data means no.
    #[must_use]
    pub fn reusable(&mut self) -> bool {
        if self.closing || !self.buffer.is_empty() {
            return false;
        }
        // One peek that does not wait: nothing to read is the usual answer, and needs
        // nothing more.
        let mut byte = [MaybeUninit::<u8>::uninit(); 1];
        match SockRef::from(self.stream.tcp())
            .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
            Ok(_) => {}
        }
        // Something is there: the end of the connection, data nobody asked for, or (on TLS)
        // a record that carries no data, such as a session ticket, which is taken in.
        let Stream::Tls(tls) = &mut self.stream else {
            return false;
        };
        if tls.sock.set_nonblocking(true).is_err() {
            return false;
        }
        let idle =
            matches!(tls.read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        tls.sock.set_nonblocking(false).is_ok() && idle
    }

    /// Whether the server left the connection open after its last answer.
    #[must_use]
    pub fn keeps_alive(&self) -> bool {
        !self.closing
    }

    /// Sends one request and reads its response. `headers` must not include `Host` or
    /// `Content-Length`, which are written here.
    ///
    /// # Errors
    /// On any I/O error or timeout, or a response that is not HTTP/1.x or too large; the
    /// connection must not be used again then.
    pub fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut request = Vec::with_capacity(256 + body.len());
        request.extend_from_slice(method.as_bytes());
        request.push(b' ');
        request.extend_from_slice(path.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        request.extend_from_slice(self.authority.as_bytes());
        request.extend_from_slice(b"\r\n");
        for (name, value) in headers {
            request.extend_from_slice(name.as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            write!(request, "content-length: {}\r\n", body.len())?;
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        self.stream.write_all(&request)?;
        self.stream.flush()?;
        self.read_response(method == "HEAD")
    }

    fn fill(&mut self) -> io::Result<()> {
        let n = self.stream.read(&mut self.scratch)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buffer.extend_from_slice(&self.scratch[..n]);
        Ok(())
    }

    fn read_response(&mut self, head_only: bool) -> io::Result<Response> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let (status, mut response, head_len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&self.buffer) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = parsed.code.ok_or_else(|| invalid("no status".into()))?;
                    let head = Response::new(
                        status,
                        parsed.headers.iter().map(|h| (h.name, h.value)),
                        Vec::new(),
                    );
                    break (status, head, len);
                }
                Ok(httparse::Status::Partial) if self.buffer.len() < MAX_HEAD => self.fill()?,
                Ok(httparse::Status::Partial) => {
                    return Err(invalid("response head too large".into()));
                }
                Err(e) => return Err(invalid(format!("unreadable response: {e}"))),
            }
        };
        self.closing = response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let length = response.header("content-length");
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let bodiless = head_only || status == 204 || status == 304 || (100..200).contains(&status);
        if let (Some(length), false, false) = (length, chunked, bodiless) {
            // A body of known length (a chunked encoding overrides the length), taken from
            // behind the head in one copy.
            let length: usize = length
                .trim()
                .parse()
                .map_err(|_| invalid(format!("bad content-length {length}")))?;
            if length > MAX_BODY {
                return Err(invalid(format!(
                    "response body of {length} bytes is too large"
                )));
            }
            let end = head_len + length;
            while self.buffer.len() < end {
                self.fill()?;
            }
            response.body = self.buffer[head_len..end].to_vec();
            self.buffer.drain(..end);
            return Ok(response);
        }
        self.buffer.drain(..head_len);
        if (100..200).contains(&status) {
            // An interim answer (100 Continue): the real one follows.
            return self.read_response(head_only);
        }
        if bodiless {
            return Ok(response);
        }
        if chunked {
            response.body = self.read_chunked()?;
        } else {
            // Neither: the body runs to the end of the connection.
            self.closing = true;
            loop {
                match self.fill() {
                    Ok(()) if self.buffer.len() <= MAX_BODY => {}
                    Ok(()) => return Err(invalid("response body too large".into())),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            response.body = std::mem::take(&mut self.buffer);
        }
        Ok(response)
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if self.buffer.len() > MAX_HEAD {
                    return Err(invalid("chunk size line too long"));
                }
                self.fill()?;
            };
            let line = std::str::from_utf8(&self.buffer[..line_end])
                .map_err(|_| invalid("unreadable chunk size"))?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| invalid("unreadable chunk size"))?;
            self.buffer.drain(..line_end + 2);
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    if let Some(i) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                        self.buffer.drain(..i + 2);
                        if i == 0 {
                            return Ok(body);
                        }
                    } else {
                        self.fill()?;
                    }
                }
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("response body too large"));
            }
            while self.buffer.len() < size + 2 {
                self.fill()?;
            }
            body.extend(self.buffer.drain(..size));
            self.buffer.drain(..2);
        }
    }
}

/// The TLS configuration for `https` origins: the system's root certificates.
///
/// # Errors
/// When no root certificate can be loaded.
pub fn tls_config() -> io::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A certificate the parser refuses is skipped, as browsers and the SDK do.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no root certificates found: {:?}", found.errors),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The SDK's HTTP client for a function that makes one request at a time: a blocking
/// exchange on one kept-alive connection per origin (see the module's documentation).
#[derive(Clone)]
pub struct LeanHttp {
    shared: Arc<Shared>,
}

struct Shared {
    tls: Option<Arc<rustls::ClientConfig>>,
    io: Duration,
    idle: Mutex<Option<Connection>>,
    /// Where the SDK's last request went: the origin and path its endpoint resolved to.
    endpoint: Mutex<Option<(Origin, String)>>,
}

impl std::fmt::Debug for LeanHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanHttp")
            .field("io", &self.shared.io)
            .finish_non_exhaustive()
    }
}

impl LeanHttp {
    /// A client whose reads and writes each wait at most `io`; `https` origins use `tls`
    /// (see [`tls_config`]), `http` ones (local stand-ins) need none.
    #[must_use]
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>, io: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                tls,
                io,
                idle: Mutex::new(None),
                endpoint: Mutex::new(None),
            }),
        }
    }

    /// The origin and path of the SDK's last request through this client: where its
    /// endpoint resolution sent it (`None` before its first request).
    #[must_use]
    pub fn endpoint(&self) -> Option<(Origin, String)> {
        self.shared
            .endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One exchange on the client's kept-alive connection (the SDK's requests share it),
    /// opening a new one within `connect` when there is none to `origin` or it was closed.
    ///
    /// # Errors
    /// As [`Connection::open`] and [`Connection::exchange`].
    pub fn exchange(
        &self,
        origin: &Origin,
        connect: Duration,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> io::Result<Response> {
        self.shared
            .exchange(origin, connect, method, path, headers, body)
    }
}

impl Shared {
    fn exchange(
        &self,
        origin: &Origin,
        connect: Duration,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = idle
            .take()
            .filter(|c| c.origin == *origin)
            .and_then(|mut c| c.reusable().then_some(c));
        let mut connection = match kept {
            Some(c) => c,
            None => Connection::open(origin, self.tls.as_ref(), connect, Some(self.io))?,
        };
        let response = connection.exchange(method, path, headers, body)?;
        if connection.keeps_alive() {
            *idle = Some(connection);
        }
        Ok(response)
    }
}

#[derive(Debug, Clone)]
struct LeanConnector {
    shared: Arc<Shared>,
    connect: Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl HttpClient for LeanHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(LeanConnector {
            shared: Arc::clone(&self.shared),
            connect: settings.connect_timeout().unwrap_or(self.shared.io),
        })
    }
}

impl HttpConnector for LeanConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::ready(self.send(&request))
    }
}

impl LeanConnector {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let io_error = |e: io::Error| {
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) {
                ConnectorError::timeout(e.into())
            } else {
                ConnectorError::io(e.into())
            }
        };
        let (origin, path) =
            Origin::split(request.uri()).map_err(|e| ConnectorError::user(e.into()))?;
        let body = request.body().bytes().ok_or_else(|| {
            ConnectorError::user("a streaming request body is not supported by this client".into())
        })?;
        let headers: Vec<(&str, &[u8])> = request
            .headers()
            .iter()
            .filter(|(name, _)| {
                !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length")
            })
            .map(|(name, value)| (name, value.as_bytes()))
            .collect();
        {
            let mut endpoint = self
                .shared
                .endpoint
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if endpoint
                .as_ref()
                .is_none_or(|(o, p)| *o != origin || p != path)
            {
                *endpoint = Some((origin.clone(), path.to_owned()));
            }
        }
        let response = self
            .shared
            .exchange(
                &origin,
                self.connect,
                request.method(),
                path,
                &headers,
                body,
            )
            .map_err(io_error)?;
        let status = StatusCode::try_from(response.status)
            .map_err(|e| ConnectorError::other(e.into(), None))?;
        let mut out = HttpResponse::new(status, SdkBody::empty());
        for (name, value) in response.headers() {
            out.headers_mut().append(name.to_owned(), value.to_owned());
        }
        *out.body_mut() = SdkBody::from(response.body);
        Ok(out)
    }
}
