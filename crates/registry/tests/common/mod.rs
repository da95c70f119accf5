//! A registry server on 127.0.0.1:0 over in-memory tables, driven by blocking
//! HTTP calls from the test thread.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use streetscope_contracts::http::HttpServerConfig;
use streetscope_registry::auth::{Role, Tokens};
use streetscope_registry::{Registry, RegistryServer};
use streetscope_transport::{MemoryTable, TableLog};

pub const WRITE: &str = "write-token-0123456789abcdef";
pub const READ: &str = "read-token-0123456789abcdef";

pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub cameras: MemoryTable,
    pub intersections: MemoryTable,
    pub server: Option<RegistryServer>,
    pub http: HttpServerConfig,
    agent: ureq::Agent,
}

pub struct Answer {
    pub status: u16,
    pub text: String,
    pub www_authenticate: Option<String>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The `field`s of an error body.
    pub fn fields(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|a| a.iter().map(|e| e["field"].as_str().unwrap_or("").to_owned()).collect())
            .unwrap_or_default()
    }
}

pub fn tokens() -> Tokens {
    Tokens::default().with(WRITE, Role::Write).with(READ, Role::Read)
}

impl Harness {
    pub fn new() -> Self {
        Self::with_http(HttpServerConfig::default())
    }

    /// A server with the limits and TLS of `http`.
    pub fn with_http(http: HttpServerConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let cameras = MemoryTable::new("streetscope.cameras");
        let intersections = MemoryTable::new("streetscope.intersections");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut h = Self { rt, cameras, intersections, server: None, http, agent };
        h.start();
        h
    }

    /// Starts a server over the same tables (a new registry, rebuilt from them).
    pub fn start(&mut self) {
        let (c, i, http) = (self.cameras.clone(), self.intersections.clone(), self.http.clone());
        let server = self.rt.block_on(async {
            let registry = Registry::open(c, i).await.unwrap();
            RegistryServer::start_with("127.0.0.1:0".parse().unwrap(), Arc::new(registry), tokens(), &http)
                .await
                .unwrap()
        });
        self.server = Some(server);
    }

    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown()).unwrap();
        }
    }

    pub fn url(&self) -> String {
        self.server.as_ref().unwrap().url()
    }

    /// Both tables as they are stored.
    pub fn tables(&self) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>) {
        self.rt
            .block_on(async { (self.cameras.read_all().await.unwrap(), self.intersections.read_all().await.unwrap()) })
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
        let url = format!("{}{path}", self.url());
        let auth = token.map(|t| format!("Bearer {t}"));
        macro_rules! a {
            ($r:expr) => {{
                let r = $r;
                match &auth {
                    Some(a) => r.header("Authorization", a),
                    None => r,
                }
            }};
        }
        let body = body.unwrap_or("").to_owned();
        let resp = match method {
            "GET" => a!(self.agent.get(&url)).call(),
            "DELETE" => a!(self.agent.delete(&url)).call(),
            "POST" => a!(self.agent.post(&url)).content_type("application/json").send(body),
            "PUT" => a!(self.agent.put(&url)).content_type("application/json").send(body),
            "PATCH" => a!(self.agent.patch(&url)).content_type("application/json").send(body),
            m => panic!("{m}"),
        };
        let mut resp = resp.unwrap();
        let www_authenticate =
            resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap_or_default().to_owned());
        Answer { status: resp.status().as_u16(), text: resp.body_mut().read_to_string().unwrap(), www_authenticate }
    }

    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.call("POST", path, Some(WRITE), Some(&body.to_string()))
    }

    pub fn get(&self, path: &str) -> Answer {
        self.call("GET", path, Some(READ), None)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn intersection(id: &str) -> Value {
    serde_json::json!({ "id": id, "name": format!("Intersection {id}") })
}

pub fn camera(id: &str, intersection: &str, source: &str) -> Value {
    serde_json::json!({
        "id": id,
        "intersection": intersection,
        "source": source,
        "sample_fps": 5,
        "lines": [
            { "name": "north", "start": [0.1, 0.4], "end": [0.9, 0.4], "forward": "in", "backward": "out" },
            { "name": "south", "start": [0.1, 0.8], "end": [0.9, 0.8] }
        ]
    })
}
