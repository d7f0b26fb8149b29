//! `outdial dev` keeps its interface: each endpoint on a line of its own as `<name>: <url>`,
//! then a `curl` line that starts a campaign; it stops cleanly on SIGTERM and leaves the
//! simulator's report, which `outdial sim report` reads. `--callees FILE` picks the callee of
//! some numbers, and a file it cannot use is refused before anything starts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn dev_prints_its_endpoints_serves_a_campaign_and_stops_cleanly_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("outdial-dev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One number of the example is busy, another opts out; the rest take the usual mix.
    std::fs::write(
        dir.join("callees.json"),
        r#"{"+15555550102": "busy", "+15555550103": "opts-out"}"#,
    )
    .unwrap();
    let started = Instant::now();
    let mut dev = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args([
            "dev",
            "--port",
            "0",
            "--console-port",
            "0",
            "--callees",
            "callees.json",
            "--events",
        ])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    let mut endpoints = std::collections::BTreeMap::new();
    for name in ["api", "lambda", "chime", "dynamodb", "events", "console"] {
        let line = lines.next().unwrap().unwrap();
        let (key, url) = line.split_once(": ").unwrap();
        assert_eq!(key, name, "{line}");
        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
        endpoints.insert(name, url.to_owned());
    }
    let curl = lines.next().unwrap().unwrap();
    assert!(curl.starts_with("curl "), "{curl}");
    assert!(curl.contains(&endpoints["api"]), "{curl}");
    let startup = started.elapsed();
    // `--events`: the outcome events, one JSON line each, from here on.
    let (printed, events) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if printed.send(line).is_err() {
                break;
            }
        }
    });

    // What the curl line does, with the example campaign of the repository.
    let token = curl
        .split("Authorization: Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap()
        .to_owned();
    let example = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/campaign.json"
    ))
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answer = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/campaigns", endpoints["api"]))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("idempotency-key", "example-1")
            .body(example)
            .send()
            .await
            .unwrap()
    });
    assert_eq!(answer.status().as_u16(), 202);

    // The console (`console: URL`) lists the campaign through the same API.
    let (console, token) = endpoints["console"].split_once("/?token=").unwrap();
    let listed = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{console}/api/campaigns"))
            .header("x-outdial-console", token)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    assert_eq!(
        listed["campaigns"][0]["name"], "Appointment reminders",
        "{listed}"
    );

    // The running stack's simulator report, found through .outdial/dev.json.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = Command::new(env!("CARGO_BIN_EXE_outdial"))
            .args(["sim", "report", "--json"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            report.status.success(),
            "{}",
            String::from_utf8_lossy(&report.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(report.stdout.trim_ascii()).unwrap();
        if report["placed_per_number"].as_object().unwrap().len() == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the example's five calls were not placed: {report}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Each placed call was printed as a `Call Placed` event.
    let mut placed = std::collections::BTreeSet::new();
    while placed.len() < 5 {
        let line = events
            .recv_timeout(Duration::from_secs(30))
            .expect("five Call Placed events printed");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["source"], "outdial", "{line}");
        if event["detail-type"] == "Call Placed" {
            placed.insert(event["detail"]["call_id"].as_str().unwrap().to_owned());
        }
    }

    // SIGTERM: a clean stop that writes the report and removes the state file.
    let killed = Command::new("kill")
        .args(["-TERM", &dev.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = dev.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(dir.join(".outdial/sim-report.json").is_file());
    assert!(!dir.join(".outdial/dev.json").exists());
    let report = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["sim", "report"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8(report.stdout).unwrap();
    assert!(text.contains("0 double dials; 0 violations"), "{text}");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".outdial/sim-report.json")).unwrap())
            .unwrap();
    let callee_of = |number: &str| {
        written["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["to"] == number)
            .map(|c| c["callee"]["kind"].clone())
    };
    assert_eq!(callee_of("+15555550102"), Some("busy".into()), "{written}");
    assert_eq!(
        callee_of("+15555550103"),
        Some("opts_out".into()),
        "{written}"
    );
    // Every placement is counted under a purpose too.
    for (number, placed) in written["placed_per_number"].as_object().unwrap() {
        let per_purpose: u64 = written["placed_per_number_purpose"][number]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(Some(per_purpose), placed.as_u64(), "{number}: {written}");
    }
    eprintln!("outdial dev printed its endpoints after {startup:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_callees_file_it_cannot_use_is_refused_with_the_number_and_the_personas() {
    let dir = std::env::temp_dir().join(format!("outdial-callees-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            r#"{"+15555550100": "maybe"}"#,
            vec!["+15555550100", "\"maybe\""],
        ),
        (r#"{"5555550100": "busy"}"#, vec!["5555550100", "E.164"]),
        (r#"["+15555550100"]"#, vec!["JSON object", "an array"]),
        ("{", vec!["not JSON"]),
    ];
    for (i, (text, names)) in cases.iter().enumerate() {
        let file = dir.join(format!("callees-{i}.json"));
        std::fs::write(&file, text).unwrap();
        for command in ["dev", "demo"] {
            let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
                .args([command, "--callees"])
                .arg(&file)
                .current_dir(&dir)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{command} {text}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(stderr.contains(&*file.to_string_lossy()), "{stderr}");
            for name in names {
                assert!(
                    stderr.contains(name),
                    "{command} {text}: {name} in {stderr}"
                );
            }
            if text.starts_with("{\"+") {
                assert!(
                    stderr.contains("confirms, declines, opts-out, silent, busy, no-answer, fails, hangs-up, voicemail"),
                    "{stderr}"
                );
            }
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["demo", "--callees", "no-such-file.json"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("reading the callees file no-such-file.json"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
