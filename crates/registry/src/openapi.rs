//! The API's OpenAPI 3.1 document, served at `/openapi.json` and committed as
//! `docs/registry-openapi.json` (a test fails when the two differ). The
//! schemas come from the Rust types through schemars, so they cannot drift
//! from what the server accepts.

use schemars::generate::SchemaSettings;
use serde_json::{json, Value};
use streetscope_contracts::registry::{ApiError, CameraSpec, IntersectionSpec};

/// Path of the committed document, from the workspace root.
pub const DOC_PATH: &str = "docs/registry-openapi.json";

/// The OpenAPI document.
pub fn document() -> Value {
    let mut generator =
        SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into()).into_generator();
    let camera = generator.subschema_for::<CameraSpec>();
    let intersection = generator.subschema_for::<IntersectionSpec>();
    let api_error = generator.subschema_for::<ApiError>();
    let mut schemas = serde_json::Map::new();
    for (name, schema) in generator.take_definitions(true) {
        schemas.insert(name, schema);
    }
    let r = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    for (name, schema) in [("CameraSpec", camera), ("IntersectionSpec", intersection), ("ApiError", api_error)] {
        // subschema_for returns a reference when the type is named; keep inline
        // ones (there are none today) under their name too.
        if schema.as_value().get("$ref").is_none() {
            schemas.insert(name.into(), schema.to_value());
        }
    }
    let err =
        |desc: &str| json!({ "description": desc, "content": { "application/json": { "schema": r("ApiError") } } });
    let body = |name: &str| json!({ "required": true, "content": { "application/json": { "schema": r(name) } } });
    let ok = |desc: &str, schema: Value| json!({ "description": desc, "content": { "application/json": { "schema": schema } } });
    let id_param = |what: &str| json!([{ "name": "id", "in": "path", "required": true, "description": format!("The {what}'s id."), "schema": { "type": "string" } }]);
    let list = |key: &str, item: &str| json!({ "type": "object", "required": [key], "properties": { key: { "type": "array", "items": r(item) } } });
    let common = |extra: Vec<(&str, Value)>| {
        let mut m = serde_json::Map::new();
        m.insert("401".into(), err("No bearer token, or not a valid one."));
        for (code, v) in extra {
            m.insert(code.into(), v);
        }
        Value::Object(m)
    };
    let write_errors = |extra: Vec<(&str, Value)>| {
        let mut v = extra;
        v.push(("400", err("Invalid: one entry per offending field in `errors`; nothing was written.")));
        v.push(("403", err("The token may only read.")));
        v.push(("503", err("The registry's table could not be written; nothing was changed.")));
        common(v)
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Streetscope camera registry",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Cameras and intersections of a Streetscope deployment, stored in the compacted topics \
                `streetscope.cameras` and `streetscope.intersections`. Passwords in camera source URLs are stored \
                but never returned: responses carry `***` in their place, and a source sent back with `***` keeps \
                the stored password. See docs/registry.md."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/v1/cameras": {
                "get": {
                    "operationId": "listCameras", "summary": "Every camera, by id.",
                    "parameters": [{ "name": "intersection", "in": "query", "required": false,
                        "description": "Only the cameras of this intersection.", "schema": { "type": "string" } }],
                    "responses": common(vec![("200", ok("The cameras.", list("cameras", "CameraSpec")))])
                },
                "post": {
                    "operationId": "createCamera", "summary": "Registers a camera; its intersection must exist.",
                    "requestBody": body("CameraSpec"),
                    "responses": write_errors(vec![
                        ("201", ok("Created; `Location` names it.", r("CameraSpec"))),
                        ("409", err("A camera with this id exists."))
                    ])
                }
            },
            "/v1/cameras/{id}": {
                "parameters": id_param("camera"),
                "get": {
                    "operationId": "getCamera", "summary": "One camera.",
                    "responses": common(vec![("200", ok("The camera.", r("CameraSpec"))), ("404", err("No such camera."))])
                },
                "put": {
                    "operationId": "replaceCamera", "summary": "Replaces a camera (the whole spec; `id` as in the path).",
                    "requestBody": body("CameraSpec"),
                    "responses": write_errors(vec![
                        ("200", ok("Replaced.", r("CameraSpec"))),
                        ("404", err("No such camera.")),
                        ("409", err("An intersection's approach uses the camera or a line or zone the update removes."))
                    ])
                },
                "patch": {
                    "operationId": "patchCamera", "summary": "Changes some fields of a camera (JSON merge patch, RFC 7386).",
                    "requestBody": { "required": true, "content": { "application/merge-patch+json": { "schema": { "type": "object" } },
                        "application/json": { "schema": { "type": "object" } } } },
                    "responses": write_errors(vec![
                        ("200", ok("Changed.", r("CameraSpec"))),
                        ("404", err("No such camera.")),
                        ("409", err("An intersection's approach uses the camera or a line or zone the patch removes."))
                    ])
                },
                "delete": {
                    "operationId": "deleteCamera", "summary": "Deletes a camera (a tombstone in the cameras topic).",
                    "responses": write_errors(vec![
                        ("204", json!({ "description": "Deleted." })),
                        ("404", err("No such camera.")),
                        ("409", err("An intersection's approach uses the camera."))
                    ])
                }
            },
            "/v1/intersections": {
                "get": {
                    "operationId": "listIntersections", "summary": "Every intersection, by id.",
                    "responses": common(vec![("200", ok("The intersections.", list("intersections", "IntersectionSpec")))])
                },
                "post": {
                    "operationId": "createIntersection",
                    "summary": "Registers an intersection; its approaches name its cameras and their lines or zones.",
                    "requestBody": body("IntersectionSpec"),
                    "responses": write_errors(vec![
                        ("201", ok("Created; `Location` names it.", r("IntersectionSpec"))),
                        ("409", err("An intersection with this id exists."))
                    ])
                }
            },
            "/v1/intersections/{id}": {
                "parameters": id_param("intersection"),
                "get": {
                    "operationId": "getIntersection", "summary": "One intersection.",
                    "responses": common(vec![("200", ok("The intersection.", r("IntersectionSpec"))), ("404", err("No such intersection."))])
                },
                "put": {
                    "operationId": "replaceIntersection", "summary": "Replaces an intersection (`id` as in the path).",
                    "requestBody": body("IntersectionSpec"),
                    "responses": write_errors(vec![
                        ("200", ok("Replaced.", r("IntersectionSpec"))),
                        ("404", err("No such intersection."))
                    ])
                },
                "delete": {
                    "operationId": "deleteIntersection", "summary": "Deletes an intersection that has no cameras.",
                    "responses": write_errors(vec![
                        ("204", json!({ "description": "Deleted." })),
                        ("404", err("No such intersection.")),
                        ("409", err("Cameras belong to the intersection."))
                    ])
                }
            },
            "/healthz": {
                "get": { "operationId": "health", "summary": "Liveness; no token needed.", "security": [],
                    "responses": { "200": { "description": "`ok`", "content": { "text/plain": { "schema": { "type": "string" } } } } } }
            },
            "/metrics": {
                "get": { "operationId": "metrics", "summary": "Prometheus metrics; no token needed.", "security": [],
                    "responses": { "200": { "description": "OpenMetrics text.", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } } } }
            },
            "/openapi.json": {
                "get": { "operationId": "openapi", "summary": "This document; no token needed.", "security": [],
                    "responses": { "200": { "description": "OpenAPI 3.1.", "content": { "application/json": { "schema": { "type": "object" } } } } } }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer",
                    "description": "A token from the registry's tokens file or STREETSCOPE_REGISTRY_TOKENS; role `read` or `write`." }
            },
            "schemas": Value::Object(schemas)
        }
    })
}

/// The document as committed: pretty JSON with a final newline.
pub fn document_text() -> String {
    serde_json::to_string_pretty(&document()).expect("the document serialises") + "\n"
}
