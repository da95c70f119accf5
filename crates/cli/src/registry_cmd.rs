//! `streetscope registry` (the camera registry's API server) and its clients,
//! `streetscope cameras …` and `streetscope intersections …`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use streetscope_contracts::http::HttpServerConfig;
use streetscope_contracts::registry::{CameraSpec, IntersectionSpec};
use streetscope_registry::auth::Tokens;
use streetscope_registry::client::{self, Client, DEFAULT_URL};
use streetscope_registry::{Registry, RegistryServer};
use streetscope_transport::{MemoryTable, TableLog};

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// The cluster configuration (TOML with `[kafka]`): cameras and
    /// intersections live in its compacted topics `kafka.topics.cameras` and
    /// `kafka.topics.intersections`.
    #[arg(long, env = "STREETSCOPE_CLUSTER_CONFIG", required_unless_present = "in_memory")]
    cluster: Option<PathBuf>,
    /// Overrides `kafka.brokers` of the cluster configuration.
    #[arg(long, env = "STREETSCOPE_BROKERS")]
    brokers: Option<String>,
    /// Keep cameras and intersections in this process's memory only, lost at
    /// exit: for trying the API without Kafka. Ingest pods see nothing.
    #[arg(long, conflicts_with = "cluster")]
    in_memory: bool,
    /// Address to serve the API on.
    #[arg(long, env = "STREETSCOPE_REGISTRY_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Tokens file: one `TOKEN [read|write]` per line (default role `write`).
    /// Tokens in STREETSCOPE_REGISTRY_TOKENS are added.
    #[arg(long, env = "STREETSCOPE_REGISTRY_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,
}

/// Runs the registry API until Ctrl-C or SIGTERM.
pub fn registry(args: RegistryArgs) -> anyhow::Result<ExitCode> {
    let tokens = Tokens::load(args.tokens_file.as_deref())?;
    let rt = crate::cluster::runtime("registry")?;
    rt.block_on(async {
        if args.in_memory {
            tracing::warn!("--in-memory: cameras and intersections are lost when the registry stops");
            let tables = (MemoryTable::new("streetscope.cameras"), MemoryTable::new("streetscope.intersections"));
            serve(args.listen, tables, tokens, &Default::default()).await
        } else {
            let cluster = crate::cluster::ClusterArgs {
                cluster: args.cluster.clone().context("--cluster or --in-memory is needed")?,
                brokers: args.brokers.clone(),
                status_addr: None,
                stop_timeout: crate::cluster::DEFAULT_STOP_TIMEOUT_S,
                group_instance_id: None,
            }
            .load()?;
            let k = &cluster.kafka;
            let tables = (
                streetscope_transport::kafka::KafkaTable::new(k, &k.topics.cameras.name)?,
                streetscope_transport::kafka::KafkaTable::new(k, &k.topics.intersections.name)?,
            );
            serve(args.listen, tables, tokens, &cluster.registry).await
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn serve<T: TableLog>(
    listen: SocketAddr,
    (cameras, intersections): (T, T),
    tokens: Tokens,
    http: &HttpServerConfig,
) -> anyhow::Result<()> {
    let registry = Registry::open(cameras, intersections).await.context("loading the registry's tables")?;
    let server = RegistryServer::start_with(listen, Arc::new(registry), tokens, http)
        .await
        .with_context(|| format!("starting the registry API on {listen}"))?;
    eprintln!("registry API on {} (OpenAPI at /openapi.json)", server.url());
    crate::cluster::shutdown_signal().await;
    tracing::info!("stopping the registry API");
    server.shutdown().await?;
    Ok(())
}

/// How the clients reach the registry.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The registry's URL.
    #[arg(long, global = true, env = "STREETSCOPE_REGISTRY_URL", default_value = DEFAULT_URL)]
    url: String,
    /// The bearer token. Prefer the STREETSCOPE_TOKEN variable or --token-file:
    /// a flag's value shows in the process list.
    #[arg(long, global = true, env = "STREETSCOPE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the bearer token (its first line); wins over --token.
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
}

impl ClientArgs {
    fn client(&self) -> anyhow::Result<Client> {
        let token = match &self.token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading the token file {}", p.display()))?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned(),
            ),
            None => self.token.clone(),
        };
        Ok(Client::new(&self.url, token))
    }
}

#[derive(Debug, Args)]
pub struct CamerasArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: CamerasCommand,
}

/// A camera given by flags (for `add`; for `update`, the fields to change).
#[derive(Debug, Args)]
struct CameraFlags {
    /// A spec file (TOML, or JSON when it ends in .json) instead of flags.
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// The intersection's id.
    #[arg(long)]
    intersection: Option<String>,
    /// The source URL (rtsp://, rtsps://, http://, https://, file:///).
    #[arg(long)]
    source: Option<String>,
    /// Frames per second to sample.
    #[arg(long)]
    sample_fps: Option<f64>,
    /// A counting line: NAME=X1,Y1,X2,Y2[:FORWARD/BACKWARD] (repeatable; on
    /// update, replaces all lines).
    #[arg(long = "line", value_name = "LINE")]
    lines: Vec<String>,
    /// Registered but not run by ingest.
    #[arg(long, conflicts_with = "enable")]
    disable: bool,
    /// Run by ingest (update).
    #[arg(long)]
    enable: bool,
}

impl CameraFlags {
    /// The given fields as a JSON object.
    fn fields(&self) -> anyhow::Result<Map<String, Value>> {
        let mut m = Map::new();
        if let Some(v) = &self.intersection {
            m.insert("intersection".into(), json!(v));
        }
        if let Some(v) = &self.source {
            m.insert("source".into(), json!(v));
        }
        if let Some(v) = self.sample_fps {
            m.insert("sample_fps".into(), json!(v));
        }
        if !self.lines.is_empty() {
            let lines = self.lines.iter().map(|l| crate::run::parse_line(l)).collect::<anyhow::Result<Vec<_>>>()?;
            m.insert("lines".into(), serde_json::to_value(lines)?);
        }
        if self.disable || self.enable {
            m.insert("enabled".into(), json!(self.enable));
        }
        Ok(m)
    }
}

#[derive(Debug, Subcommand)]
enum CamerasCommand {
    /// Registers a camera, from a spec file or flags.
    Add {
        /// The camera's id (with flags; a spec file has its own).
        id: Option<String>,
        #[command(flatten)]
        spec: CameraFlags,
    },
    /// Changes a camera: replaced by a spec file, or the fields given by flags
    /// changed. A source read back with `***` keeps the stored password.
    Update {
        id: String,
        #[command(flatten)]
        spec: CameraFlags,
    },
    /// Deletes a camera.
    Rm { id: String },
    /// Lists the cameras (passwords shown as ***).
    List {
        /// Only the cameras of this intersection.
        #[arg(long)]
        intersection: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Prints a camera's spec as JSON (password shown as ***).
    Get { id: String },
}

pub fn cameras(args: CamerasArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.client()?;
    match args.command {
        CamerasCommand::Add { id, spec } => {
            let camera: CameraSpec = match &spec.file {
                Some(path) => client::read_spec(path)?,
                None => {
                    let mut fields = spec.fields()?;
                    fields.insert("id".into(), json!(id.context("give the camera's id, or --file")?));
                    serde_json::from_value(Value::Object(fields)).context("the camera flags")?
                }
            };
            let c = client.create_camera(&camera)?;
            println!("camera {} registered at intersection {}", c.camera.id, c.camera.intersection);
        }
        CamerasCommand::Update { id, spec } => {
            let c = match &spec.file {
                Some(path) => {
                    let camera: CameraSpec = client::read_spec(path)?;
                    anyhow::ensure!(
                        camera.id() == id,
                        "{}: the spec's id is {:?}, not {id:?}",
                        path.display(),
                        camera.id()
                    );
                    client.replace_camera(&camera)?
                }
                None => {
                    let fields = spec.fields()?;
                    anyhow::ensure!(!fields.is_empty(), "nothing to change: give --file or fields to change");
                    client.patch_camera(&id, &Value::Object(fields))?
                }
            };
            println!("camera {} updated", c.camera.id);
        }
        CamerasCommand::Rm { id } => {
            client.delete_camera(&id)?;
            println!("camera {id} deleted");
        }
        CamerasCommand::List { intersection, json } => {
            let cams = client.list_cameras(intersection.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&cams)?);
            } else {
                print!("{}", client::cameras_table(&cams));
            }
        }
        CamerasCommand::Get { id } => println!("{}", serde_json::to_string_pretty(&client.get_camera(&id)?)?),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct IntersectionsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: IntersectionsCommand,
}

#[derive(Debug, Args)]
struct IntersectionFlags {
    /// A spec file (TOML, or JSON when it ends in .json) instead of flags.
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// A name for people.
    #[arg(long)]
    name: Option<String>,
    /// Free text for operators.
    #[arg(long)]
    description: Option<String>,
    /// Latitude, degrees.
    #[arg(long, requires = "lon", allow_hyphen_values = true)]
    lat: Option<f64>,
    /// Longitude, degrees.
    #[arg(long, requires = "lat", allow_hyphen_values = true)]
    lon: Option<f64>,
}

impl IntersectionFlags {
    fn apply(&self, spec: &mut IntersectionSpec) {
        if let Some(n) = &self.name {
            spec.name = Some(n.clone());
        }
        if let Some(d) = &self.description {
            spec.description = Some(d.clone());
        }
        if let (Some(lat), Some(lon)) = (self.lat, self.lon) {
            spec.location = Some(streetscope_contracts::registry::GeoLocation { lat, lon });
        }
    }
}

#[derive(Debug, Subcommand)]
enum IntersectionsCommand {
    /// Registers an intersection, from a spec file or flags. Approaches need
    /// the intersection's cameras: add them, then `update --file`.
    Add {
        /// The intersection's id (with flags; a spec file has its own).
        id: Option<String>,
        #[command(flatten)]
        spec: IntersectionFlags,
    },
    /// Changes an intersection: replaced by a spec file, or the fields given by flags changed.
    Update {
        id: String,
        #[command(flatten)]
        spec: IntersectionFlags,
    },
    /// Deletes an intersection (it must have no cameras).
    Rm { id: String },
    /// Lists the intersections.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Prints an intersection's spec as JSON.
    Get { id: String },
}

pub fn intersections(args: IntersectionsArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.client()?;
    match args.command {
        IntersectionsCommand::Add { id, spec } => {
            let inter: IntersectionSpec = match &spec.file {
                Some(path) => client::read_spec(path)?,
                None => {
                    let mut i: IntersectionSpec =
                        serde_json::from_value(json!({ "id": id.context("give the intersection's id, or --file")? }))?;
                    spec.apply(&mut i);
                    i
                }
            };
            let i = client.create_intersection(&inter)?;
            println!("intersection {} registered", i.id);
        }
        IntersectionsCommand::Update { id, spec } => {
            let inter = match &spec.file {
                Some(path) => {
                    let i: IntersectionSpec = client::read_spec(path)?;
                    anyhow::ensure!(i.id == id, "{}: the spec's id is {:?}, not {id:?}", path.display(), i.id);
                    i
                }
                None => {
                    let mut i = client.get_intersection(&id)?;
                    spec.apply(&mut i);
                    i
                }
            };
            client.replace_intersection(&inter)?;
            println!("intersection {id} updated");
        }
        IntersectionsCommand::Rm { id } => {
            client.delete_intersection(&id)?;
            println!("intersection {id} deleted");
        }
        IntersectionsCommand::List { json } => {
            let all = client.list_intersections()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", client::intersections_table(&all));
            }
        }
        IntersectionsCommand::Get { id } => {
            println!("{}", serde_json::to_string_pretty(&client.get_intersection(&id)?)?)
        }
    }
    Ok(ExitCode::SUCCESS)
}
