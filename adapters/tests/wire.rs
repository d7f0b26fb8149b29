//! The lean HTTP/1.1 client and the Runtime API loop, against small servers on loopback: the
//! framings a server may answer with, keep-alive and its end, timeouts, and the loop's
//! answers, errors and panics through the local Runtime API.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

mod scripted;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use outdial_adapters::lambda::{RuntimeApi as Client, serve};
use outdial_adapters::wire::{Connection, Origin, Response};
use outdial_local::runtime_api::{Answer, RuntimeApi};
use scripted::server;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

fn open(origin: &Origin) -> Connection {
    Connection::open(origin, None, WAIT, Some(WAIT)).unwrap()
}

#[test]
fn urls_split_into_origin_and_path() {
    let (o, path) = Origin::split("https://dynamodb.us-east-1.amazonaws.com/").unwrap();
    assert_eq!(
        (o.tls, o.host.as_str(), o.port, path),
        (true, "dynamodb.us-east-1.amazonaws.com", 443, "/")
    );
    let (o, path) = Origin::split("http://127.0.0.1:8000").unwrap();
    assert_eq!(
        (o.tls, o.host.as_str(), o.port, path),
        (false, "127.0.0.1", 8000, "/")
    );
    let (o, path) = Origin::split("http://[::1]:9001/a/b?c=d").unwrap();
    assert_eq!((o.host.as_str(), o.port, path), ("::1", 9001, "/a/b?c=d"));
    let (o, path) = Origin::split("http://[::1]/x").unwrap();
    assert_eq!((o.host.as_str(), o.port, path), ("::1", 80, "/x"));
    for bad in [
        "ftp://x",
        "127.0.0.1:80",
        "http://",
        "http://host:port/",
        "http://[::1",
        "http://[::1]x/",
    ] {
        assert!(Origin::split(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_response_keeps_its_headers_in_order_with_names_in_lower_case() {
    let (origin, _requests) = server::<&[u8]>(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Amz-Crc32: 1\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Empty:\r\n\r\nok",
    ]);
    let r = open(&origin).exchange("GET", "/", &[], b"").unwrap();
    assert_eq!(
        r.headers().collect::<Vec<_>>(),
        [
            ("content-length", "2"),
            ("x-amz-crc32", "1"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("x-empty", ""),
        ]
    );
    // The first of a repeated header; a name asked in lower case only.
    assert_eq!(r.header("set-cookie"), Some("a=1"));
    assert_eq!(r.header("X-Amz-Crc32"), None);
    assert_eq!(r.body, b"ok");
    let made = Response::new(201, [("X-A", &b"1"[..]), ("b", b"\xff")], b"x".to_vec());
    assert_eq!(
        made.headers().collect::<Vec<_>>(),
        [("x-a", "1"), ("b", "\u{fffd}")]
    );
}

#[test]
fn a_kept_alive_connection_carries_length_and_chunked_answers() {
    let (origin, requests) = server::<&[u8]>(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Thing: a\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ]);
    let mut c = open(&origin);
    let r = c
        .exchange("POST", "/one", &[("x-amz-target", b"T")], b"{}")
        .unwrap();
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("x-thing")),
        (200, &b"hello"[..], Some("a"))
    );
    assert!(c.reusable());
    let r = c.exchange("GET", "/two", &[], b"").unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcdefg"[..]));
    let r = c.exchange("GET", "/three", &[], b"").unwrap();
    assert_eq!((r.status, r.body.len()), (204, 0));
    let seen: Vec<(usize, String)> = requests
        .try_iter()
        .map(|seen| (seen.connection, seen.line))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, "POST /one HTTP/1.1".to_owned()),
            (1, "GET /two HTTP/1.1".to_owned()),
            (1, "GET /three HTTP/1.1".to_owned()),
        ],
        "all three on one connection"
    );
}

#[test]
fn a_closed_or_closing_connection_is_not_reused() {
    let (origin, _) = server::<&[u8]>(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\n\r\nto the end",
    ]);
    let mut c = open(&origin);
    let r = c.exchange("GET", "/", &[], b"").unwrap();
    assert_eq!(r.body, b"ok");
    assert!(!c.keeps_alive() && !c.reusable());
    // The server has closed it: a new one, whose answer has no length and runs to the end.
    thread::sleep(Duration::from_millis(50));
    let mut c = open(&origin);
    let r = c.exchange("GET", "/", &[], b"").unwrap();
    assert_eq!(r.body, b"to the end");
    assert!(!c.reusable());
}

#[test]
fn an_idle_connection_the_server_closed_is_seen_before_use() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = Origin {
        tls: false,
        host: "127.0.0.1".into(),
        port: listener.local_addr().unwrap().port(),
    };
    let accepted = thread::spawn(move || drop(listener.accept().unwrap()));
    let mut c = open(&origin);
    accepted.join().unwrap();
    thread::sleep(Duration::from_millis(50));
    assert!(!c.reusable());
}

#[test]
fn a_silent_server_times_out_and_garbage_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = Origin {
        tls: false,
        host: "127.0.0.1".into(),
        port: listener.local_addr().unwrap().port(),
    };
    thread::spawn(move || {
        let (mut silent, _) = listener.accept().unwrap();
        let (mut garbage, _) = listener.accept().unwrap();
        garbage.write_all(b"SSH-2.0-nope\r\n\r\n").unwrap();
        thread::sleep(Duration::from_secs(2));
        let _ = silent.flush();
    });
    let mut c = Connection::open(&origin, None, WAIT, Some(Duration::from_millis(200))).unwrap();
    let err = c.exchange("GET", "/", &[], b"").unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    let mut c = open(&origin);
    let err = c.exchange("GET", "/", &[], b"").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}

/// The loop on a thread of its own, serving a handler that echoes, fails on `"panic"`.
fn serving(api: &RuntimeApi) -> thread::JoinHandle<anyhow::Result<()>> {
    let mut client = Client::at(&api.address()).unwrap();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        serve(&runtime, &mut client, |event: Value| async move {
            assert!(event != json!("panic"), "asked to panic");
            tokio::task::yield_now().await;
            json!({"echo": event})
        })
    })
}

#[tokio::test]
async fn the_loop_answers_reports_and_goes_on() {
    let api = RuntimeApi::start().await.unwrap();
    let loop_thread = serving(&api);
    let answer = api.invoke(r#"{"n": 1}"#, WAIT).await.unwrap();
    assert_eq!(
        answer,
        Answer::Response(json!({"echo": {"n": 1}}).to_string().into())
    );

    let Answer::Error(body) = api.invoke("not json", WAIT).await.unwrap() else {
        panic!("an event that is not JSON is an error")
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorType"], "Runtime.UnmarshalError");

    let Answer::Error(body) = api.invoke(r#""panic""#, WAIT).await.unwrap() else {
        panic!("a panic is an error")
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorType"], "Runtime.Panic");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("asked to panic")
    );

    // The loop goes on after both.
    let answer = api.invoke("2", WAIT).await.unwrap();
    assert_eq!(
        answer,
        Answer::Response(json!({"echo": 2}).to_string().into())
    );

    // Without its Runtime API the loop ends with an error.
    drop(api);
    let ended = tokio::task::spawn_blocking(move || loop_thread.join().unwrap())
        .await
        .unwrap();
    assert!(ended.is_err());
}

#[test]
fn tls_carries_requests_on_one_session() {
    use std::sync::Arc;
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = key.cert.der().clone();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.key_pair.serialize_der().into()),
            )
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let session = rustls::ServerConnection::new(Arc::clone(&server_config)).unwrap();
            let mut tls = rustls::StreamOwned::new(session, stream);
            let mut served = 0;
            loop {
                // Requests here have no body: read to the end of each head.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                if !head.ends_with(b"\r\n\r\n") {
                    break;
                }
                served += 1;
                let body = format!("request {served}");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                tls.write_all(answer.as_bytes()).unwrap();
                tls.flush().unwrap();
                let _ = tx.send(served);
            }
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let origin = Origin {
        tls: true,
        host: "localhost".into(),
        port,
    };
    let mut c = Connection::open(&origin, Some(&client_config), WAIT, Some(WAIT)).unwrap();
    let r = c.exchange("GET", "/", &[], b"").unwrap();
    assert_eq!(r.body, b"request 1");
    // Session tickets the server sent after the handshake do not make it look used.
    thread::sleep(Duration::from_millis(50));
    assert!(c.reusable());
    let r = c.exchange("GET", "/", &[], b"").unwrap();
    assert_eq!(r.body, b"request 2", "the same session served both");
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), 1);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), 2);
}
