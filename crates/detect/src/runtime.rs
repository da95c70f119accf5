//! Loading ONNX Runtime. The library is loaded at run time (ort's `load-dynamic`)
//! so that the CPU and GPU builds differ only in the library they ship.
//!
//! Which library, once per process: `ORT_DYLIB_PATH` where set (the images set
//! it); else ONNX Runtime's OpenVINO build where set-up installed it (x86-64:
//! the OpenVINO provider, 1.7x the CPU provider on the vehicle model, and the
//! CPU provider too); else the plain CPU build.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::DetectError;

/// The plain ONNX Runtime build set-up installs (the `onnxruntime` wheel).
pub const ORT_VERSION: &str = "1.31.1";

/// ONNX Runtime's OpenVINO build set-up installs on x86-64 (the
/// `onnxruntime-openvino` wheel, whose newest release is this one). The pinned
/// `ort` crate speaks API 24, which both versions serve.
pub const ORT_OPENVINO_VERSION: &str = "1.24.1";

/// Where set-up puts the OpenVINO build: the wheel unpacked in
/// `onnxruntime-openvino/` (its Python binding is the limit `bench detect`
/// compares with), the library, its OpenVINO provider and OpenVINO's plugins
/// side by side in `onnxruntime/capi/` (they find each other by `$ORIGIN`).
pub fn openvino_library() -> PathBuf {
    cache_dir().join("onnxruntime-openvino/onnxruntime/capi").join(format!("libonnxruntime.so.{ORT_OPENVINO_VERSION}"))
}

/// The library this process loads: `ORT_DYLIB_PATH`, else the OpenVINO build
/// where it is installed, else the plain build.
pub fn library_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(p);
    }
    let openvino = openvino_library();
    if openvino.is_file() {
        return openvino;
    }
    cache_dir().join("onnxruntime").join(format!("libonnxruntime.so.{ORT_VERSION}"))
}

/// `$STREETSCOPE_CACHE`, else `~/.cache/streetscope`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("STREETSCOPE_CACHE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("streetscope")
}

static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// The process-wide ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static ort::environment::Environment, DetectError> {
    let path = library_path();
    let env = ENV.get_or_init(|| {
        if !path.is_file() {
            return Err("no such file".to_owned());
        }
        let builder = ort::init_from(&path).map_err(|e| e.to_string())?;
        builder.with_name("streetscope").build().map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|reason| DetectError::Runtime { path: path.display().to_string(), reason: reason.clone() })
}
