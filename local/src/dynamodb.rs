//! DynamoDB Local as a managed process: the official `DynamoDBLocal.jar`, run with the
//! machine's Java on a free loopback port.
//!
//! `just setup` puts the jar in `.cache/dynamodb-local/` (from the npm package
//! `amplify-dynamodb-simulator`, which ships it). When `AWS_ENDPOINT_URL_DYNAMODB` is set,
//! that endpoint is used instead and nothing is started.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The SDK's own variable for a DynamoDB endpoint.
pub const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_DYNAMODB";
/// Where the jar is looked for first.
pub const JAR_DIR_VAR: &str = "OUTDIAL_DYNAMODB_LOCAL_DIR";

/// How long DynamoDB Local may take to answer after it starts.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Where DynamoDB Local keeps its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// In memory: gone when the process stops (tests, the demo).
    InMemory,
    /// In files under this folder (a persistent `outdial dev`).
    Dir(PathBuf),
}

/// A running DynamoDB Local, stopped when dropped.
#[derive(Debug)]
pub struct DynamoDbLocal {
    endpoint: String,
    child: Child,
}

impl DynamoDbLocal {
    /// Starts DynamoDB Local and waits until it accepts connections.
    ///
    /// # Errors
    /// When Java or the jar is missing (the message says how to install it), or DynamoDB
    /// Local does not answer within a minute.
    pub fn start(storage: &Storage) -> anyhow::Result<Self> {
        let dir = jar_dir()?;
        let port = free_port()?;
        // The JVM runs under a small shell that kills it when our end of its stdin closes,
        // so DynamoDB Local never outlives this process, even when it is killed.
        let mut java = format!(
            "exec java -Xmx512m -Djava.library.path={lib} -jar {jar} -port {port} -disableTelemetry",
            lib = shell_quote(&dir.join("DynamoDBLocal_lib")),
            jar = shell_quote(&dir.join("DynamoDBLocal.jar")),
        );
        match storage {
            Storage::InMemory => java.push_str(" -inMemory -sharedDb"),
            Storage::Dir(path) => {
                std::fs::create_dir_all(path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let path = std::fs::canonicalize(path)?;
                java.push_str(&format!(" -sharedDb -dbPath {}", shell_quote(&path)));
            }
        }
        let script =
            format!("{java} </dev/null & j=$!; cat >/dev/null; kill $j 2>/dev/null; wait $j");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            // DynamoDB Local writes a metadata file into its working folder.
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting DynamoDB Local (is `sh` on PATH?)")?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(Self { endpoint, child });
            }
            if let Some(status) = child.try_wait()? {
                let mut stderr = String::new();
                if let Some(err) = child.stderr.take() {
                    for line in BufReader::new(err).lines().map_while(Result::ok).take(20) {
                        stderr.push_str(&line);
                        stderr.push('\n');
                    }
                }
                bail!("DynamoDB Local exited ({status}) before answering:\n{stderr}");
            }
            if started.elapsed() > START_DEADLINE {
                let _ = child.kill();
                bail!("DynamoDB Local did not answer on {endpoint} within {START_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Stops DynamoDB Local and waits for it to exit.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Closing stdin makes the wrapper kill the JVM and wait for it.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The endpoint of a DynamoDB that tests and tools of this process share: the one named by
/// `AWS_ENDPOINT_URL_DYNAMODB`, or a DynamoDB Local started on first use (once per process,
/// so once per test binary) that ends with the process.
///
/// # Errors
/// As [`DynamoDbLocal::start`]; the error is kept, so every caller sees it.
pub fn shared_endpoint() -> anyhow::Result<String> {
    static SHARED: OnceLock<Result<(String, Option<DynamoDbLocal>), String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        if let Some(endpoint) = std::env::var(ENDPOINT_VAR).ok().filter(|e| !e.is_empty()) {
            return Ok((endpoint, None));
        }
        DynamoDbLocal::start(&Storage::InMemory)
            .map(|db| (db.endpoint().to_owned(), Some(db)))
            .map_err(|e| format!("{e:#}"))
    });
    match shared {
        Ok((endpoint, _)) => Ok(endpoint.clone()),
        Err(e) => bail!("{e}"),
    }
}

/// The folder holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib`.
///
/// # Errors
/// When it cannot be found; the message says how to install it.
pub fn jar_dir() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var(JAR_DIR_VAR) {
        candidates.push(PathBuf::from(dir));
    }
    // The workspace this crate was built in, then the current folder and its parents.
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/dynamodb-local"));
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(|d| d.join(".cache/dynamodb-local")));
    }
    candidates
        .into_iter()
        .find(|d| d.join("DynamoDBLocal.jar").is_file())
        .and_then(|d| std::fs::canonicalize(d).ok())
        .with_context(|| {
            format!(
                "DynamoDBLocal.jar not found: run `./run setup` (or `just setup`) in the outdial \
                 checkout, or set {JAR_DIR_VAR} to a folder holding DynamoDBLocal.jar and \
                 DynamoDBLocal_lib"
            )
        })
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
