//! Real `redis-server` processes for the Redis store's tests: one server or
//! a three-node cluster on free ports of 127.0.0.1, with a throw-away
//! directory each, killed when dropped (a panicking test included).
//!
//! Each server also gets a watchdog shell that kills it and removes its
//! directory once the test process is gone, so that servers held in statics
//! (which are never dropped) do not outlive the test run.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "redis-cli";
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A unique, empty directory under the system's temp dir.
fn temp_dir(what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "tower-cis-{what}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("cannot create a temp dir");
    dir
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("cannot bind a port").local_addr().unwrap().port()
}

/// Sends one command over a fresh connection and returns the raw reply.
pub fn raw_command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(&encode(args))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// A command in RESP.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends a signal to a process with `kill`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill").arg(signal).arg(pid.to_string()).status().expect("cannot run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// One `redis-server`.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    watchdog: Option<Child>,
}

impl RedisServer {
    /// A fresh, empty server on a free port.
    pub fn start() -> RedisServer {
        Self::start_with(Vec::new(), |_| Vec::new())
    }

    /// A fresh, empty server on `port`, which must be free.
    pub fn start_on(port: u16) -> RedisServer {
        let mut server = RedisServer { port, dir: temp_dir("redis"), extra: Vec::new(), child: None, watchdog: None };
        assert!(server.launch(), "redis-server did not start on port {port}");
        server
    }

    /// A fresh server with more arguments, made by `extra` from the
    /// server's directory. Tries a few ports in case one is taken meanwhile.
    fn start_with(base: Vec<String>, extra: impl Fn(&Path) -> Vec<String>) -> RedisServer {
        let dir = temp_dir("redis");
        let mut args = base;
        args.extend(extra(&dir));
        for _ in 0..5 {
            let mut server =
                RedisServer { port: free_port(), dir: dir.clone(), extra: args.clone(), child: None, watchdog: None };
            if server.launch() {
                return server;
            }
            // Nothing to clean up but the directory, which the next attempt reuses.
            server.dir = PathBuf::new();
        }
        panic!("redis-server did not start");
    }

    /// Starts the process on `self.port` and waits until it answers PING.
    fn launch(&mut self) -> bool {
        let port = self.port.to_string();
        let mut command = Command::new(REDIS_SERVER);
        command
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join(format!("redis-{port}.log")))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("cannot start redis-server");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if raw_command(self.port, &["PING"]).is_ok_and(|reply| reply == "+PONG") {
                break;
            }
            if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.watchdog = Some(watchdog(child.id(), &self.dir));
        self.child = Some(child);
        true
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is not running").id()
    }

    /// Stops the process (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    /// Kills the process (SIGKILL); its data is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }

    /// Starts a fresh (empty) process on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.launch() {
            assert!(Instant::now() < deadline, "redis-server did not restart on port {}", self.port);
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A plain synchronous connection, for looking at what the store wrote.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("bad url")
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("cannot connect to the test server")
    }

    /// Runs `MONITOR` on a raw connection of its own.
    pub fn monitor(&self) -> Monitor {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("cannot connect for MONITOR");
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut writer = stream.try_clone().unwrap();
        writer.write_all(&encode(&["MONITOR"])).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("no answer to MONITOR");
        assert_eq!(line.trim_end(), "+OK");
        Monitor { reader }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A shell that kills `pid` and removes `dir` once this test process ends.
fn watchdog(pid: u32, dir: &Path) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(r#"while kill -0 "$0" 2>/dev/null && kill -0 "$1" 2>/dev/null; do sleep 0.2; done; kill -9 "$1" 2>/dev/null; rm -rf "$2""#)
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start the watchdog")
}

/// The commands a server executes, as `MONITOR` reports them.
pub struct Monitor {
    reader: BufReader<TcpStream>,
}

impl Monitor {
    /// The lines reported before one that holds `marker`.
    pub fn lines_until(&mut self, marker: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = self.reader.read_line(&mut line).expect("MONITOR went quiet");
            assert!(read > 0, "MONITOR connection closed");
            if line.contains(marker) {
                return lines;
            }
            lines.push(line.trim_end().to_owned());
        }
    }
}

/// A three-node Redis Cluster, no replicas.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|n| {
                RedisServer::start_with(Vec::new(), move |_| {
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &format!("nodes-{n}.conf"),
                        "--cluster-port",
                        &free_port().to_string(),
                        "--cluster-node-timeout",
                        "5000",
                    ]
                    .map(String::from)
                    .to_vec()
                })
            })
            .collect();
        let addresses: Vec<String> = nodes.iter().map(|node| format!("127.0.0.1:{}", node.port())).collect();
        let output = Command::new(REDIS_CLI)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run redis-cli");
        assert!(output.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&output.stdout));
        let deadline = Instant::now() + START_TIMEOUT;
        for node in &nodes {
            loop {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut node.connection()).unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not become ready");
                thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// One server shared by every test of this binary.
pub fn shared_server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// One cluster shared by every test of this binary.
pub fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

/// A key prefix no other store of this run uses.
pub fn unique_prefix() -> String {
    let id = tower_cis::SessionId::generate().expect("no randomness").to_string();
    format!("t{}:", &id[..12])
}
