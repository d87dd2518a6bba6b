//! Extra `redis-server` processes a test starts for itself: one with AOF
//! that the test can kill and start again on the same port and data, and a
//! three-node Redis Cluster. Each lives in its own temporary folder on free
//! ports and is killed when dropped.

/// The machine's Redis, which every test shares under a key prefix of its own.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on, with `port + 10000` free as well (a cluster
/// node's bus port).
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind port 0")
            .local_addr()
            .expect("local addr")
            .port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli is installed (apt-get install redis-tools)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_until(what: &str, wait: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {wait:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One `redis-server` with its data in `dir`.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a Redis with AOF on (`appendfsync always`) in `dir`.
    pub fn start_aof(dir: &Path) -> Self {
        Self::start_with(
            dir,
            &["--appendonly", "yes", "--appendfsync", "always"],
            free_port(),
        )
    }

    pub fn start_with(dir: &Path, extra: &[&str], port: u16) -> Self {
        let mut server = Self {
            port,
            dir: dir.to_owned(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `kill -9`: nothing is flushed beyond what `appendfsync` wrote.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.kill();
        std::fs::create_dir_all(&self.dir).expect("redis dir");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let port = self.port;
        wait_until("redis-server answers PING", Duration::from_secs(10), || {
            redis_cli(port, &["PING"]).is_some_and(|o| o.trim() == "PONG")
        });
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three masters, no replicas, every slot assigned.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<RedisServer> = (0..3)
            .map(|n| {
                let port = free_port();
                let conf = format!("nodes-{port}.conf");
                RedisServer::start_with(
                    &dir.path().join(format!("node{n}")),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &conf,
                        "--cluster-node-timeout",
                        "2000",
                        "--appendonly",
                        "no",
                    ],
                    port,
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addrs.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        assert!(
            redis_cli(nodes[0].port, &create).is_some(),
            "redis-cli --cluster create succeeds"
        );
        for node in &nodes {
            let port = node.port;
            wait_until("the cluster is ok", Duration::from_secs(20), || {
                redis_cli(port, &["CLUSTER", "INFO"])
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            });
        }
        Self { nodes, _dir: dir }
    }

    /// The seeds, comma-separated, as `LEADCHAT_REDIS_URL` takes them.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many keys each node holds.
    pub fn keys_per_node(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|n| {
                redis_cli(n.port, &["DBSIZE"])
                    .and_then(|o| o.trim().parse().ok())
                    .unwrap_or(0)
            })
            .collect()
    }
}
