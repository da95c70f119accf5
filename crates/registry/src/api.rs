//! The REST API over axum.
//!
//! `/v1/cameras` and `/v1/intersections` need a bearer token (GET: any role;
//! POST, PUT, PATCH, DELETE: `write`); `/healthz`, `/metrics` and
//! `/openapi.json` are open. Every error is JSON ([`ApiError`]). Camera sources
//! leave the API redacted ([`redact_source`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use streetscope_contracts::http::HttpServerConfig;
use streetscope_contracts::registry::{ApiError, ApiFieldError, CameraSpec, IntersectionSpec};
use streetscope_http::Limits;
use streetscope_telemetry::metrics::{render_registry, RegistrySample, RequestSample};
use streetscope_transport::TableLog;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::{Role, Tokens};
use crate::redact::{redact_source, scrub_text};
use crate::store::{parse_error, Kind, Registry, RegistryError};

struct App<T: TableLog> {
    registry: Arc<Registry<T>>,
    tokens: Tokens,
    /// Requests answered, by (method, route, status).
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
}

/// The API's routes over `registry`, with `tokens` guarding `/v1`.
pub fn router<T: TableLog>(registry: Arc<Registry<T>>, tokens: Tokens) -> Router {
    let app = Arc::new(App { registry, tokens, requests: Mutex::default() });
    let v1 = Router::new()
        .route("/v1/cameras", get(list_cameras::<T>).post(create_camera::<T>))
        .route(
            "/v1/cameras/{id}",
            get(get_camera::<T>).put(replace_camera::<T>).patch(patch_camera::<T>).delete(delete_camera::<T>),
        )
        .route("/v1/intersections", get(list_intersections::<T>).post(create_intersection::<T>))
        .route(
            "/v1/intersections/{id}",
            get(get_intersection::<T>).put(replace_intersection::<T>).delete(delete_intersection::<T>),
        )
        .route_layer(middleware::from_fn_with_state(app.clone(), authenticate::<T>));
    let open = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::<T>))
        .route("/openapi.json", get(|| async { Json(crate::openapi::document()) }));
    v1.merge(open)
        .route_layer(middleware::from_fn_with_state(app.clone(), count_request::<T>))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint".into(), Vec::new()) })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint has no such method".into(),
                Vec::new(),
            )
        })
        .with_state(app)
}

/// A running API server.
#[derive(Debug)]
pub struct RegistryServer {
    addr: SocketAddr,
    scheme: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RegistryServer {
    /// Binds `addr` (port 0 picks a free port) and serves `registry` with the
    /// default limits until [`RegistryServer::shutdown`] or the runtime ends.
    pub async fn start<T: TableLog>(
        addr: SocketAddr,
        registry: Arc<Registry<T>>,
        tokens: Tokens,
    ) -> std::io::Result<Self> {
        Self::start_with(addr, registry, tokens, &HttpServerConfig::default()).await
    }

    /// [`RegistryServer::start`] with the limits and TLS of `http` (validated).
    pub async fn start_with<T: TableLog>(
        addr: SocketAddr,
        registry: Arc<Registry<T>>,
        tokens: Tokens,
        http: &HttpServerConfig,
    ) -> std::io::Result<Self> {
        let tls = match &http.tls {
            Some(files) => Some(
                streetscope_http::tls_acceptor(&files.cert_file, &files.key_file)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let limits = Limits::of(http);
        let task = tokio::spawn(streetscope_http::serve(listener, router(registry, tokens), limits, tls, async move {
            let _ = stopped.await;
        }));
        tracing::info!(
            max_body_bytes = limits.max_body_bytes,
            max_connections = limits.max_connections,
            "registry API listening on {scheme}://{addr}"
        );
        Ok(Self { addr, scheme, stop: Some(stop), task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://ADDR` (`https://ADDR` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops accepting, finishes the requests in flight, and returns.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Serves until the server stops by itself (it does not, short of an IO error).
    pub async fn wait(mut self) -> std::io::Result<()> {
        (&mut self.task).await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Serves `router` on `listener` with the default limits until `shutdown`
/// resolves, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    streetscope_http::serve(listener, router, Limits::default(), None, shutdown).await
}

/// The most refused fields an answer lists, and the most characters of a
/// value it shows: a body of 5,000 copies of one bad line was answered with
/// every field of every copy, an answer three times the body (over 1 MiB for
/// 340 KB; found at volume, seed 0x5747524545545343). The message still
/// gives the number of fields refused.
pub const MAX_LISTED_ERRORS: usize = 100;
/// See [`MAX_LISTED_ERRORS`].
pub const MAX_SHOWN_VALUE_CHARS: usize = 200;

fn error(status: StatusCode, error: &str, mut message: String, errors: Vec<ApiFieldError>) -> Response {
    if errors.len() > MAX_LISTED_ERRORS {
        message.push_str(&format!(" (the first {MAX_LISTED_ERRORS} are listed)"));
    }
    // A value is shown as sent, but never with a password: any field may hold
    // a URL with one (an id did, found at volume, seed 0x5747524545545343).
    let errors = errors
        .into_iter()
        .take(MAX_LISTED_ERRORS)
        .map(|e| {
            let mut value = scrub_text(&e.value);
            if let Some((cut, _)) = value.char_indices().nth(MAX_SHOWN_VALUE_CHARS) {
                let more = value.len() - cut;
                value.truncate(cut);
                value.push_str(&format!("… ({more} bytes more)"));
            }
            ApiFieldError { value, ..e }
        })
        .collect();
    let body = ApiError { error: error.into(), message: scrub_text(&message), errors };
    (status, Json(body)).into_response()
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            RegistryError::Invalid { kind, errors } => error(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("invalid {}: {} field(s) refused; nothing was written", kind.name(), errors.len()),
                errors.into_iter().map(Into::into).collect(),
            ),
            RegistryError::NotFound { .. } => error(StatusCode::NOT_FOUND, "not_found", message, Vec::new()),
            RegistryError::Exists { .. } => error(StatusCode::CONFLICT, "conflict", message, Vec::new()),
            RegistryError::Conflict { errors, .. } => {
                error(StatusCode::CONFLICT, "conflict", message, errors.into_iter().map(Into::into).collect())
            }
            RegistryError::Storage(e) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the registry could not reach its storage, nothing was changed: {e}"),
                Vec::new(),
            ),
        }
    }
}

async fn authenticate<T: TableLog>(State(app): State<Arc<App<T>>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(role) = presented.and_then(|t| app.tokens.role_of(t)) else {
        let message = if presented.is_some() {
            "the bearer token is not valid"
        } else {
            "this endpoint needs a bearer token (Authorization: Bearer TOKEN)"
        };
        let mut resp = error(StatusCode::UNAUTHORIZED, "unauthorized", message.into(), Vec::new());
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"streetscope-registry\""));
        return resp;
    };
    let needs = if matches!(*req.method(), Method::GET | Method::HEAD) { Role::Read } else { Role::Write };
    if role < needs {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token may only read; changes need a token with the `write` role".into(),
            Vec::new(),
        );
    }
    next.run(req).await
}

async fn count_request<T: TableLog>(State(app): State<Arc<App<T>>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or("(unmatched)", |m| m.as_str()).to_owned();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    tracing::debug!(%method, %route, status, "request");
    *app.requests.lock().unwrap_or_else(|p| p.into_inner()).entry((method, route, status)).or_default() += 1;
    resp
}

async fn metrics<T: TableLog>(State(app): State<Arc<App<T>>>) -> Response {
    let counts = app.registry.counts().await;
    let requests = app
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|((method, route, status), count)| RequestSample {
            method: method.clone(),
            route: route.clone(),
            status: *status,
            count: *count,
        })
        .collect();
    let text = render_registry(&RegistrySample {
        cameras: counts.cameras,
        cameras_enabled: counts.cameras_enabled,
        intersections: counts.intersections,
        skipped_records: counts.skipped_records,
        requests,
    });
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}

/// A camera as the API shows it: the source's secrets replaced by `***`.
pub fn camera_view(mut spec: CameraSpec) -> CameraSpec {
    spec.camera.source = redact_source(&spec.camera.source);
    spec
}

/// A body as a `V`: first whether it is JSON at all, then what it holds. Both
/// passes read the text; the spec is not read from a parsed JSON value, which
/// tells serde each array's length so that it reserves room for all of it
/// before checking one element (an intersection whose `approaches` were 5,000
/// integers, 10 KB, took 520 KB at once; found at volume, seed 0x5747524545545346).
fn parse_body<V: DeserializeOwned>(kind: Kind, body: &Bytes) -> Result<V, RegistryError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| RegistryError::Invalid {
        kind,
        errors: vec![streetscope_contracts::config::FieldError::new(
            "(body)",
            "",
            format!("not a JSON document: {}", scrub_text(&e.to_string())),
        )],
    })?;
    serde_json::from_slice(body).map_err(|e| parse_error(kind, &e))
}

fn query_param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

#[derive(Serialize)]
struct CameraList {
    cameras: Vec<CameraSpec>,
}

#[derive(Serialize)]
struct IntersectionList {
    intersections: Vec<IntersectionSpec>,
}

fn created<V: Serialize>(location: String, body: V) -> Response {
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn list_cameras<T: TableLog>(State(app): State<Arc<App<T>>>, uri: Uri) -> Response {
    let filter = query_param(&uri, "intersection");
    let cameras = app
        .registry
        .cameras()
        .await
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.camera.intersection == f))
        .map(camera_view)
        .collect();
    Json(CameraList { cameras }).into_response()
}

async fn get_camera<T: TableLog>(State(app): State<Arc<App<T>>>, Path(id): Path<String>) -> Response {
    match app.registry.camera(&id).await {
        Some(c) => Json(camera_view(c)).into_response(),
        None => RegistryError::NotFound { kind: Kind::Camera, id }.into_response(),
    }
}

async fn create_camera<T: TableLog>(State(app): State<Arc<App<T>>>, body: Bytes) -> Response {
    let result = async {
        let spec: CameraSpec = parse_body(Kind::Camera, &body)?;
        app.registry.create_camera(spec).await
    };
    match result.await {
        Ok(c) => created(format!("/v1/cameras/{}", c.id()), camera_view(c)),
        Err(e) => e.into_response(),
    }
}

async fn replace_camera<T: TableLog>(State(app): State<Arc<App<T>>>, Path(id): Path<String>, body: Bytes) -> Response {
    let result = async {
        let spec: CameraSpec = parse_body(Kind::Camera, &body)?;
        app.registry.replace_camera(&id, spec).await
    };
    match result.await {
        Ok(c) => Json(camera_view(c)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn patch_camera<T: TableLog>(State(app): State<Arc<App<T>>>, Path(id): Path<String>, body: Bytes) -> Response {
    let result = async {
        let patch: serde_json::Value = parse_body(Kind::Camera, &body)?;
        app.registry.patch_camera(&id, &patch).await
    };
    match result.await {
        Ok(c) => Json(camera_view(c)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn delete_camera<T: TableLog>(State(app): State<Arc<App<T>>>, Path(id): Path<String>) -> Response {
    match app.registry.delete_camera(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_intersections<T: TableLog>(State(app): State<Arc<App<T>>>) -> Response {
    Json(IntersectionList { intersections: app.registry.intersections().await }).into_response()
}

async fn get_intersection<T: TableLog>(State(app): State<Arc<App<T>>>, Path(id): Path<String>) -> Response {
    match app.registry.intersection(&id).await {
        Some(i) => Json(i).into_response(),
        None => RegistryError::NotFound { kind: Kind::Intersection, id }.into_response(),
    }
}

async fn create_intersection<T: TableLog>(State(app): State<Arc<App<T>>>, body: Bytes) -> Response {
    let result = async {
        let spec: IntersectionSpec = parse_body(Kind::Intersection, &body)?;
        app.registry.create_intersection(spec).await
    };
    match result.await {
        Ok(i) => created(format!("/v1/intersections/{}", i.id), i),
        Err(e) => e.into_response(),
    }
}

async fn replace_intersection<T: TableLog>(
    State(app): State<Arc<App<T>>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let spec: IntersectionSpec = parse_body(Kind::Intersection, &body)?;
        app.registry.replace_intersection(&id, spec).await
    };
    match result.await {
        Ok(i) => Json(i).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn delete_intersection<T: TableLog>(State(app): State<Arc<App<T>>>, Path(id): Path<String>) -> Response {
    match app.registry.delete_intersection(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
