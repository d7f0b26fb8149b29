//! DynamoDB Local as a managed process: the official `DynamoDBLocal.jar`, run with the
//! machine's Java on a free loopback port, listening on loopback only.
//!
//! `just setup` puts the jar in `.cache/dynamodb-local/` (from the npm package
//! `amplify-dynamodb-simulator`, which ships it). When `AWS_ENDPOINT_URL_DYNAMODB` is set,
//! that endpoint is used instead and nothing is started.
//!
//! DynamoDB Local 1.25 has no option to choose the address it listens on (its options are
//! `-port`, `-inMemory`, `-dbPath`, `-sharedDb`, `-cors`, `-delayTransientStatuses`,
//! `-optimizeDbBeforeStartup`, `-disableTelemetry`, `-version`, `-help`): its Jetty server
//! listens on every interface. So the jar is started through a launcher of a few lines
//! ([`LAUNCHER`], compiled once with `javac` into the temporary folder) that builds the
//! server as the jar's own `main` does and binds it to `127.0.0.1` before starting it. Where
//! `javac` is missing or the launcher fails, the jar is run as it is, on every interface, and
//! a warning says so; [`DynamoDbLocal::loopback_only`] tells which.
//!
//! The process can be paused (`SIGSTOP`), resumed (`SIGCONT`), killed (`SIGKILL`) and
//! restarted on the same port and folder, so the local stack can be run through a database
//! that stalls or dies (`outdial bench chaos`).

use std::hash::Hasher;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The SDK's own variable for a DynamoDB endpoint.
pub const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_DYNAMODB";
/// Where the jar is looked for first.
pub const JAR_DIR_VAR: &str = "OUTDIAL_DYNAMODB_LOCAL_DIR";

/// How long DynamoDB Local may take to answer after it starts.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a killed or stopped DynamoDB Local may take to let go of its port.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);
/// Lines of DynamoDB Local's stderr kept, to explain an exit.
const STDERR_LINES: usize = 20;

/// The launcher that binds DynamoDB Local to loopback: the jar's own `main`
/// (`ServerRunner.main`) builds the server with `createServerFromCommandLineArgs` and starts
/// it; this does the same, setting the host of the server's connectors in between.
pub const LAUNCHER: &str = r#"import java.lang.reflect.Field;

import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

/** DynamoDB Local, listening on 127.0.0.1 only (written by outdial-local). */
public final class OutdialDynamoDbLocal {
    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        for (Connector connector : server.getConnectors()) {
            ((ServerConnector) connector).setHost("127.0.0.1");
        }
        proxy.start();
    }
}
"#;
const LAUNCHER_CLASS: &str = "OutdialDynamoDbLocal";

/// Where DynamoDB Local keeps its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// In memory: gone when the process stops (tests, the demo).
    InMemory,
    /// In files under this folder (a persistent `outdial dev`); they survive a restart.
    Dir(PathBuf),
}

/// A running DynamoDB Local, stopped when dropped.
///
/// Its control methods take `&self`, so a stack and a fault injector can share it.
#[derive(Debug)]
pub struct DynamoDbLocal {
    endpoint: String,
    port: u16,
    storage: Storage,
    jar_dir: PathBuf,
    /// The JVM's largest heap, in MiB.
    heap_mib: u32,
    process: Mutex<Process>,
}

/// The heap DynamoDB Local gets unless told otherwise: enough for the test suites, each of
/// which runs its own. A long run keeps every item and every stream record (DynamoDB Local
/// keeps them 24 hours) in memory; past this heap the JVM spends its time collecting garbage
/// and every request slows down, so long runs ask for more ([`DynamoDbLocal::start_with_heap`]).
pub const DEFAULT_HEAP_MIB: u32 = 512;

/// One run of the JVM, under its wrapper shell.
#[derive(Debug, Default)]
struct Process {
    /// The wrapper shell; closing its stdin kills the JVM.
    wrapper: Option<Child>,
    stdin: Option<ChildStdin>,
    /// The JVM's pid, while it runs.
    jvm: Option<u32>,
    paused: bool,
    loopback_only: bool,
    stderr: Option<Arc<Mutex<Vec<String>>>>,
}

impl DynamoDbLocal {
    /// Starts DynamoDB Local on a free loopback port and waits until it accepts connections.
    ///
    /// # Errors
    /// When Java or the jar is missing (the message says how to install it), or DynamoDB
    /// Local does not answer within a minute.
    pub fn start(storage: &Storage) -> anyhow::Result<Self> {
        Self::start_with_heap(storage, DEFAULT_HEAP_MIB)
    }

    /// [`DynamoDbLocal::start`] with a JVM heap of at most `heap_mib` MiB.
    ///
    /// # Errors
    /// As [`DynamoDbLocal::start`].
    pub fn start_with_heap(storage: &Storage, heap_mib: u32) -> anyhow::Result<Self> {
        let jar_dir = jar_dir()?;
        if let Storage::Dir(path) = storage {
            std::fs::create_dir_all(path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
        let storage = match storage {
            Storage::InMemory => Storage::InMemory,
            Storage::Dir(path) => Storage::Dir(std::fs::canonicalize(path)?),
        };
        let port = free_port()?;
        let db = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            storage,
            jar_dir,
            heap_mib: heap_mib.max(64),
            process: Mutex::new(Process::default()),
        };
        let process = db.launch()?;
        *db.lock() = process;
        Ok(db)
    }

    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JVM's process id, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.lock().jvm
    }

    /// Whether it listens on loopback only (false where the launcher could not be used).
    #[must_use]
    pub fn loopback_only(&self) -> bool {
        self.lock().loopback_only
    }

    /// Whether it is paused.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.lock().paused
    }

    /// Stops the JVM with `SIGSTOP`: it keeps its port and its connections, and answers
    /// nothing (requests wait, or time out on the client's side) until [`Self::resume`].
    ///
    /// # Errors
    /// When it does not run, or the signal cannot be sent.
    pub fn pause(&self) -> anyhow::Result<()> {
        let mut process = self.lock();
        let pid = process.jvm.context("DynamoDB Local is not running")?;
        signal(pid, "STOP")?;
        process.paused = true;
        Ok(())
    }

    /// Lets a paused JVM run again (`SIGCONT`); the requests it held are answered.
    ///
    /// # Errors
    /// When it does not run, or the signal cannot be sent.
    pub fn resume(&self) -> anyhow::Result<()> {
        let mut process = self.lock();
        let pid = process.jvm.context("DynamoDB Local is not running")?;
        signal(pid, "CONT")?;
        process.paused = false;
        Ok(())
    }

    /// Kills the JVM with `SIGKILL`, as a crash would, and waits until its port is free. What
    /// it had written to its folder ([`Storage::Dir`]) stays there for [`Self::restart`].
    ///
    /// # Errors
    /// When it does not run, or the signal cannot be sent.
    pub fn kill(&self) -> anyhow::Result<()> {
        let mut process = self.lock();
        let pid = process.jvm.context("DynamoDB Local is not running")?;
        signal(pid, "KILL")?;
        process.jvm = None;
        process.paused = false;
        // The wrapper then has nothing left to do: end it too.
        end_wrapper(&mut process);
        drop(process);
        let addr = self.addr();
        let deadline = Instant::now() + EXIT_DEADLINE;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            if Instant::now() > deadline {
                bail!(
                    "DynamoDB Local (pid {pid}) still holds port {} after SIGKILL",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts DynamoDB Local again on the same port with the same storage (killing the
    /// running one first, if any), and waits until it answers. With [`Storage::Dir`] the
    /// tables and their streams are as the last one left them; in memory they are gone.
    ///
    /// # Errors
    /// As [`Self::start`]; also when the port was taken meanwhile.
    pub fn restart(&self) -> anyhow::Result<()> {
        if self.pid().is_some() {
            self.kill()?;
        }
        let process = self.launch()?;
        *self.lock() = process;
        Ok(())
    }

    /// Stops DynamoDB Local and waits for it to exit (also when paused).
    pub fn stop(&self) {
        let mut process = self.lock();
        if process.paused {
            if let Some(pid) = process.jvm {
                let _ = signal(pid, "CONT");
            }
            process.paused = false;
        }
        end_wrapper(&mut process);
        process.jvm = None;
    }

    fn lock(&self) -> MutexGuard<'_, Process> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Starts the JVM under its wrapper, through the loopback launcher when it is available
    /// (falling back to the plain jar when the launcher does not start), and waits until it
    /// accepts connections.
    fn launch(&self) -> anyhow::Result<Process> {
        if let Some(classes) = launcher_classes(&self.jar_dir) {
            match self.spawn(Some(&classes)) {
                Ok(process) => return Ok(process),
                Err(e) => tracing::warn!(
                    error = %format!("{e:#}"),
                    "DynamoDB Local did not start through the loopback launcher; starting the \
                     jar as it is, listening on every interface"
                ),
            }
        }
        self.spawn(None)
    }

    fn spawn(&self, launcher: Option<&Path>) -> anyhow::Result<Process> {
        let dir = &self.jar_dir;
        let jar = dir.join("DynamoDBLocal.jar");
        let main = match launcher {
            // The jar's manifest names its libraries, so the jar on the class path brings them.
            Some(classes) => format!(
                "-cp {} {LAUNCHER_CLASS}",
                shell_quote(&format!("{}:{}", classes.display(), jar.display()))
            ),
            None => format!("-jar {}", shell_quote(&jar.display().to_string())),
        };
        let mut java = format!(
            "exec java -Xmx{heap}m -Djava.library.path={lib} {main} -port {port} -disableTelemetry",
            heap = self.heap_mib,
            lib = shell_quote(&dir.join("DynamoDBLocal_lib").display().to_string()),
            port = self.port,
        );
        match &self.storage {
            Storage::InMemory => java.push_str(" -inMemory -sharedDb"),
            Storage::Dir(path) => {
                java.push_str(&format!(
                    " -sharedDb -dbPath {}",
                    shell_quote(&path.display().to_string())
                ));
            }
        }
        // The JVM runs under a small shell that prints its pid, and kills it when our end of
        // the shell's stdin closes, so DynamoDB Local never outlives this process, even when
        // it is killed. `SIGCONT` after the `SIGTERM` lets a paused JVM act on it.
        let script = format!(
            "{java} </dev/null >/dev/null & j=$!; echo $j; cat >/dev/null; \
             kill $j 2>/dev/null; kill -CONT $j 2>/dev/null; wait $j"
        );
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(script)
            // DynamoDB Local writes a metadata file into its working folder.
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting DynamoDB Local (is `sh` on PATH?)")?;
        let stdin = wrapper.stdin.take();
        let jvm = wrapper.stdout.take().and_then(|out| {
            let mut line = String::new();
            BufReader::new(out).read_line(&mut line).ok()?;
            line.trim().parse::<u32>().ok()
        });
        // stderr is drained all along (a full pipe would block the JVM), keeping its last
        // lines to explain an exit.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = wrapper.stderr.take() {
            let kept = Arc::clone(&stderr);
            std::thread::spawn(move || drain(err, &kept));
        }
        let mut process = Process {
            wrapper: Some(wrapper),
            stdin,
            jvm,
            paused: false,
            loopback_only: launcher.is_some(),
            stderr: Some(stderr),
        };
        let addr = self.addr();
        let started = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(process);
            }
            let exited = process
                .wrapper
                .as_mut()
                .and_then(|w| w.try_wait().ok().flatten());
            if let Some(status) = exited {
                // Let the drain thread take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                let stderr = process
                    .stderr
                    .as_ref()
                    .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).join("\n"))
                    .unwrap_or_default();
                bail!("DynamoDB Local exited ({status}) before answering:\n{stderr}");
            }
            if started.elapsed() > START_DEADLINE {
                if let Some(pid) = process.jvm {
                    let _ = signal(pid, "KILL");
                }
                end_wrapper(&mut process);
                bail!(
                    "DynamoDB Local did not answer on {} within {START_DEADLINE:?}",
                    self.endpoint
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Ends the wrapper: closing its stdin makes it kill the JVM and wait for it; a wrapper that
/// does not exit within [`EXIT_DEADLINE`] is killed.
fn end_wrapper(process: &mut Process) {
    drop(process.stdin.take());
    let Some(mut wrapper) = process.wrapper.take() else {
        return;
    };
    let deadline = Instant::now() + EXIT_DEADLINE;
    while Instant::now() < deadline {
        if matches!(wrapper.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(pid) = process.jvm {
        let _ = signal(pid, "KILL");
    }
    let _ = wrapper.kill();
    let _ = wrapper.wait();
}

fn drain(err: impl Read, kept: &Mutex<Vec<String>>) {
    for line in BufReader::new(err).lines().map_while(Result::ok) {
        let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() == STDERR_LINES {
            kept.remove(0);
        }
        kept.push(line);
    }
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to `pid` with `kill(1)`.
fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running `kill -{signal} {pid}`"))?;
    if !status.success() {
        bail!("`kill -{signal} {pid}` failed ({status})");
    }
    Ok(())
}

/// The folder holding the compiled loopback launcher for the jar in `jar_dir`, compiled on
/// first use (once per machine and jar, in the temporary folder); `None`, with a warning
/// once per process, when it cannot be compiled.
fn launcher_classes(jar_dir: &Path) -> Option<PathBuf> {
    static WARNED: OnceLock<()> = OnceLock::new();
    match compile_launcher(jar_dir) {
        Ok(dir) => Some(dir),
        Err(e) => {
            WARNED.get_or_init(|| {
                tracing::warn!(
                    error = %format!("{e:#}"),
                    "DynamoDB Local 1.25 has no option to listen on loopback only, and its \
                     loopback launcher could not be compiled: it listens on every interface"
                );
            });
            None
        }
    }
}

fn compile_launcher(jar_dir: &Path) -> anyhow::Result<PathBuf> {
    let jar = jar_dir.join("DynamoDBLocal.jar");
    let meta = std::fs::metadata(&jar).with_context(|| format!("reading {}", jar.display()))?;
    let mut hash = Fnv::default();
    hash.write(LAUNCHER.as_bytes());
    hash.write(jar.display().to_string().as_bytes());
    hash.write_u64(meta.len());
    if let Ok(modified) = meta.modified() {
        hash.write_u64(
            modified
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
    }
    let dir = std::env::temp_dir().join(format!("outdial-ddb-launcher-{:016x}", hash.finish()));
    if dir.join(format!("{LAUNCHER_CLASS}.class")).is_file() {
        return Ok(dir);
    }
    // Compiled beside, then renamed into place, so that processes starting at the same time
    // never see half a launcher.
    let work = std::env::temp_dir().join(format!(
        "outdial-ddb-launcher-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let classes = work.join("classes");
    std::fs::create_dir_all(&classes).with_context(|| format!("creating {}", work.display()))?;
    let source = work.join(format!("{LAUNCHER_CLASS}.java"));
    std::fs::write(&source, LAUNCHER)?;
    let compiled = Command::new("javac")
        .arg("-nowarn")
        .arg("-cp")
        .arg(&jar)
        .arg("-d")
        .arg(&classes)
        .arg(&source)
        .stdin(Stdio::null())
        .output();
    let result = match compiled {
        Ok(out) if out.status.success() => match std::fs::rename(&classes, &dir) {
            Ok(()) => Ok(dir.clone()),
            Err(_) if dir.join(format!("{LAUNCHER_CLASS}.class")).is_file() => Ok(dir.clone()),
            Err(e) => Err(e).with_context(|| format!("moving the launcher to {}", dir.display())),
        },
        Ok(out) => Err(anyhow::anyhow!(
            "javac failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(e).context("running javac (a JDK is needed; a JRE has none)"),
    };
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// FNV-1a, a hash that stays the same across builds (the launcher's cache key).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
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

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write;
    use std::net::{IpAddr, UdpSocket};

    use super::*;

    /// A ListTables request, as raw HTTP (DynamoDB Local checks no signature).
    fn list_tables(stream: &mut TcpStream) {
        let body = "{}";
        let request = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n\
             Content-Type: application/x-amz-json-1.0\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, \
             Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
    }

    /// The answer to a ListTables sent on a fresh connection, read for at most `wait`.
    fn answer(stream: &mut TcpStream, wait: Duration) -> Option<String> {
        stream.set_read_timeout(Some(wait)).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) if out.is_empty() => return None,
                Err(_) => break,
            }
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    fn tables(db: &DynamoDbLocal) -> String {
        let mut stream = TcpStream::connect(db.addr()).unwrap();
        list_tables(&mut stream);
        answer(&mut stream, Duration::from_secs(10)).expect("an answer")
    }

    fn create_table(db: &DynamoDbLocal, name: &str) {
        let body = format!(
            r#"{{"TableName":"{name}","KeySchema":[{{"AttributeName":"PK","KeyType":"HASH"}}],"AttributeDefinitions":[{{"AttributeName":"PK","AttributeType":"S"}}],"BillingMode":"PAY_PER_REQUEST"}}"#
        );
        let request = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: DynamoDB_20120810.CreateTable\r\n\
             Content-Type: application/x-amz-json-1.0\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, \
             Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = TcpStream::connect(db.addr()).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let answer = answer(&mut stream, Duration::from_secs(10)).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    /// An address of this machine other than loopback, if it has one.
    fn other_address() -> Option<IpAddr> {
        let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect("192.0.2.1:9").ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    }

    #[test]
    fn a_paused_database_answers_once_resumed_and_a_killed_one_restarts_with_its_data() {
        let dir = std::env::temp_dir().join(format!("outdial-ddb-{}", uuid::Uuid::new_v4()));
        let db = DynamoDbLocal::start(&Storage::Dir(dir.clone())).unwrap();
        let port = db.port();
        create_table(&db, "kept");

        // Loopback only: another address of this machine is refused.
        if db.loopback_only() {
            if let Some(ip) = other_address() {
                let refused =
                    TcpStream::connect_timeout(&(ip, port).into(), Duration::from_millis(500));
                assert!(refused.is_err(), "DynamoDB Local answers on {ip}");
            }
        }

        // Paused: a request is held, and answered once it resumes.
        db.pause().unwrap();
        assert!(db.paused());
        let mut held = TcpStream::connect(db.addr()).unwrap();
        list_tables(&mut held);
        assert_eq!(answer(&mut held, Duration::from_millis(700)), None);
        db.resume().unwrap();
        let late = answer(&mut held, Duration::from_secs(10)).expect("answered after resume");
        assert!(late.contains("kept"), "{late}");

        // Killed: the port is free; restarted: same port, same tables.
        let pid = db.pid().unwrap();
        db.kill().unwrap();
        assert_eq!(db.pid(), None);
        assert!(TcpStream::connect(db.addr()).is_err());
        db.restart().unwrap();
        assert_eq!(db.port(), port);
        assert_ne!(db.pid(), Some(pid));
        assert!(tables(&db).contains("kept"));

        // Stopping a paused one ends it too.
        db.pause().unwrap();
        db.stop();
        assert!(TcpStream::connect(db.addr()).is_err());
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_launcher_cache_key_is_stable() {
        let mut a = Fnv::default();
        a.write(b"outdial");
        let mut b = Fnv::default();
        b.write(b"outdial");
        assert_eq!(a.finish(), b.finish());
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
