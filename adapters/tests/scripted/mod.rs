//! A scripted HTTP/1.1 server on loopback for the client suites: it answers each request,
//! on whichever connection it comes, with the next of its answers, and reports every request
//! it read (line, headers, body, and the number of the connection it came on).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;

use outdial_adapters::wire::Origin;

/// One request as the server read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The connection it came on, from 1.
    pub connection: usize,
    /// The request line, without its line end.
    pub line: String,
    /// The headers, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads one request (head and `content-length` body) from `reader`, or `None` at the end of
/// the connection.
fn read_request(reader: &mut BufReader<TcpStream>, connection: usize) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header == "\r\n" {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let (name, value) = (name.to_ascii_lowercase(), value.trim().to_owned());
        if name == "content-length" {
            length = value.parse().ok()?;
        }
        headers.push((name, value));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        connection,
        line: line.trim_end().to_owned(),
        headers,
        body,
    })
}

/// A server that answers each request with the next of `answers` (whole responses, head and
/// body) and reports each request. A connection ends after an answer that closes it or has
/// neither a length nor chunks; the server stops when its answers run out.
pub fn server<A>(answers: Vec<A>) -> (Origin, mpsc::Receiver<Seen>)
where
    A: AsRef<[u8]> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().expect("its address").port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut answers = answers.into_iter();
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { return };
            let Ok(read_half) = stream.try_clone() else {
                return;
            };
            let mut reader = BufReader::new(read_half);
            let mut writer = stream;
            while let Some(seen) = read_request(&mut reader, n + 1) {
                let _ = tx.send(seen);
                let Some(answer) = answers.next() else { return };
                let answer = answer.as_ref();
                if writer.write_all(answer).is_err() {
                    break;
                }
                let has = |what: &[u8]| {
                    answer
                        .windows(what.len())
                        .any(|w| w.eq_ignore_ascii_case(what))
                };
                // Closing, or a body without length or chunks that runs to the end.
                if has(b"connection: close") || !(has(b"content-length") || has(b"chunked")) {
                    break;
                }
            }
        }
    });
    (
        Origin {
            tls: false,
            host: "127.0.0.1".into(),
            port,
        },
        rx,
    )
}
