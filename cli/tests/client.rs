//! The `campaign` commands sign their requests with SigV4 for `execute-api` when no bearer
//! token is given (a deployed API uses IAM authorization), from the AWS credentials of the
//! environment.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;

#[test]
fn without_a_token_requests_are_signed_for_execute_api_with_the_environment_s_credentials() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    // A stand-in for API Gateway that records the request's headers and answers 404.
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            headers.push(line.trim().to_owned());
        }
        let body = r#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no campaign cmp_1"}"#;
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        headers
    });
    let dir = std::env::temp_dir().join(format!("outdial-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["campaign", "report", "cmp_1", "--api", &api])
        .current_dir(&dir)
        .env_remove("OUTDIAL_API_TOKEN")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        )
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"))
        .output()
        .unwrap();
    let headers = server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("404 Not Found: no campaign cmp_1"),
        "{stderr}"
    );
    let authorization = headers
        .iter()
        .find(|h| h.to_ascii_lowercase().starts_with("authorization:"))
        .unwrap_or_else(|| panic!("no authorization header in {headers:?}"));
    assert!(
        authorization.contains("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/eu-west-1/execute-api/aws4_request"),
        "{authorization}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("x-amz-date:"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
