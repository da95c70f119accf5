//! A Kafka-protocol broker for tests and benchmarks (a dev-dependency only:
//! nothing that ships in the release binary depends on it): tansu on
//! 127.0.0.1, installed by `scripts/install-broker.sh`, with its durable SQLite
//! store in a folder of the test's. Optionally behind TLS and with SASL/SCRAM
//! users.
//!
//! tansu 0.6 accepts `--cert`/`--key` but serves plain TCP whatever they say
//! (its TLS acceptor is built and never used), so TLS is terminated by `socat`
//! in front of it — real TLS from librdkafka's point of view, with a CA and a
//! server certificate made by `openssl` for the test — and the broker advertises
//! the TLS port. SASL (SCRAM-SHA-256/512) is tansu's own (`--authentication`).
//!
//! Everything started here is killed when the [`TestBroker`] is dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tansu binary: `$STREETSCOPE_TANSU`, else the install script's.
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STREETSCOPE_TANSU") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("STREETSCOPE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/streetscope"));
    cache.join("tansu/bin/tansu")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn wait_listening(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Killed(Option<Child>);

impl Killed {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// TLS material made for one test.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The throwaway CA's certificate: what clients trust.
    pub ca: PathBuf,
    /// The broker's certificate (for 127.0.0.1 and localhost) and key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A client certificate signed by the CA (the broker requires one: mutual
    /// TLS), its key encrypted with the password in `client_key_password`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub client_key_password: PathBuf,
}

/// A running test broker.
pub struct TestBroker {
    dir: PathBuf,
    /// tansu's own (plain) port.
    port: u16,
    /// The port clients use: `port`, or the TLS proxy's.
    client_port: u16,
    tls: Option<TlsFiles>,
    authentication: bool,
    broker: Killed,
    proxy: Killed,
}

impl std::fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBroker").field("port", &self.port).field("client_port", &self.client_port).finish()
    }
}

impl TestBroker {
    /// Plain TCP, no authentication, store in `dir`.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, false, false)
    }

    /// With TLS in front (a CA made here) and/or SASL authentication.
    pub fn start_with(dir: &Path, tls: bool, authentication: bool) -> Self {
        let bin = tansu_bin();
        assert!(bin.exists(), "{} is missing: scripts/install-broker.sh installs the test broker", bin.display());
        std::fs::create_dir_all(dir).expect("broker folder");
        let port = free_port();
        let tls = tls.then(|| make_tls(dir));
        let client_port = if tls.is_some() { free_port() } else { port };
        let mut b = Self {
            dir: dir.to_path_buf(),
            port,
            client_port,
            tls,
            authentication,
            broker: Killed(None),
            proxy: Killed(None),
        };
        b.spawn_broker();
        if let Some(t) = b.tls.clone() {
            let log = dir.join("tls-proxy.log");
            let out = std::fs::File::create(&log).expect("proxy log");
            let child = Command::new("socat")
                .arg(format!(
                    "openssl-listen:{},bind=127.0.0.1,reuseaddr,fork,cert={},key={},cafile={},verify=1",
                    client_port,
                    t.cert.display(),
                    t.key.display(),
                    t.ca.display()
                ))
                .arg(format!("tcp:127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(out)
                .spawn()
                .expect("starting socat (Debian package socat) for the TLS proxy");
            b.proxy = Killed(Some(child));
            wait_listening(client_port, "the TLS proxy", &log);
        }
        b
    }

    fn spawn_broker(&mut self) {
        let log = self.dir.join("broker.log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("broker log");
        let listen = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.client_port);
        let mut cmd = Command::new(tansu_bin());
        cmd.current_dir(&self.dir)
            .args(["broker", "--listener-url", &listen, "--advertised-listener-url", &advertised])
            .args(["--storage-engine", "sqlite://tansu.db", "--silent"])
            .env("RUST_LOG", std::env::var("STREETSCOPE_TEST_BROKER_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        if self.authentication {
            cmd.arg("--authentication");
        }
        self.broker = Killed(Some(cmd.spawn().expect("starting tansu")));
        wait_listening(self.port, "tansu", &log);
    }

    /// `host:port` for clients.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The TLS files, when started with TLS.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Adds a SCRAM user (`mechanism`: `SCRAM-SHA-256` or `SCRAM-SHA-512`).
    /// tansu refuses unauthenticated administration once `--authentication` is
    /// on, so the broker is restarted without it for the change (the users live
    /// in its SQLite store) and then with it again.
    pub fn add_user(&mut self, name: &str, password: &str, mechanism: &str) {
        let m = if mechanism == "SCRAM-SHA-256" { "scram256" } else { "scram512" };
        let auth = self.authentication;
        self.broker.kill();
        self.authentication = false;
        self.spawn_broker();
        let out = Command::new(tansu_bin())
            .args(["user", "create", "--broker", &format!("tcp://127.0.0.1:{}", self.port), name, password])
            .args(["--mechanism", m])
            .output()
            .expect("running tansu user create");
        assert!(out.status.success(), "tansu user create failed: {}", String::from_utf8_lossy(&out.stderr));
        self.authentication = auth;
        self.restart();
    }

    /// Kills the broker (SIGKILL) and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.broker.kill();
        std::thread::sleep(Duration::from_millis(300));
        self.spawn_broker();
    }

    /// What the broker wrote, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate,
/// made with `openssl`.
fn make_tls(dir: &Path) -> TlsFiles {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").current_dir(dir).args(args).output().expect("running openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=streetscope test CA"]
        .iter()
        .chain(&["-keyout", "ca.key", "-out", "ca.pem"])
        .copied()
        .collect::<Vec<_>>());
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
    ]);
    // Signs `{name}.csr` with the CA into `{name}.pem`, with the extensions of `ext`.
    let sign = |name: &str, ext: Option<&str>| {
        let (csr, pem) = (format!("{name}.csr"), format!("{name}.pem"));
        let mut args = vec!["x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"];
        args.extend(["-days", "2", "-out", &pem]);
        if let Some(e) = ext {
            args.extend(["-extfile", e]);
        }
        run(&args);
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("san.ext");
    sign("broker", Some("san.ext"));
    // The client's certificate, its key encrypted (PKCS#8, AES-256) with a password kept in a file.
    std::fs::write(dir.join("client-key-password"), "client-key-pa55\n").expect("client key password");
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-passout",
        "file:client-key-password",
        "-subj",
        "/CN=streetscope-test-client",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
    ]);
    sign("client", None);
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("broker.pem"),
        key: dir.join("broker.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        client_key_password: dir.join("client-key-password"),
    }
}
