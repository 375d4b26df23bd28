//! A real Prometheus (Debian's, unpacked by scripts/install-deps.sh) scraping an exporter under
//! test every second, and its query API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::exporter::{free_port, try_get};

/// Where scripts/install-deps.sh unpacks Debian's prometheus package.
pub const PROMETHEUS: &str = "/var/cache/netbpf/prometheus/usr/bin/prometheus";

/// A Prometheus scraping 127.0.0.1:`target` as job "netbpf"; killed and its data removed when
/// dropped.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl Prometheus {
    /// Started and scraping (`up` is 1) before it returns.
    pub fn scraping(target: u16) -> Prometheus {
        assert!(
            std::path::Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: scripts/install-deps.sh installs it (CI runs it first)"
        );
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("netbpf-prom-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: netbpf\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"),
        )
        .unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let p = Prometheus { child, dir, port };
        p.wait("up{job=\"netbpf\"}", 1.0);
        p
    }

    /// An instant query: the value of the first series, if any.
    pub fn query(&self, query: &str) -> Option<f64> {
        let q: String = query
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (_, body) = try_get(
            self.port,
            &format!("/api/v1/query?query={q}"),
            "application/json",
        )?;
        // The body may be chunked: the JSON object is between the first '{' and the last '}'.
        let json = &body[body.find('{')?..=body.rfind('}')?];
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Polls until the query has the wanted value (Prometheus scrapes every second; a bound,
    /// not a timed assertion).
    pub fn wait(&self, query: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(query);
            if last == Some(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("Prometheus: {query} is {last:?}, not {want}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
