//! Loading ONNX Runtime. The library is loaded at run time (ort's `load-dynamic`)
//! so that the CPU and GPU builds differ only in the library they ship.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::DetectError;

/// The ONNX Runtime version the pinned `ort` crate speaks (API 31).
pub const ORT_VERSION: &str = "1.31.1";

/// Where the library is looked for: `ORT_DYLIB_PATH`, else the set-up script's cache.
pub fn library_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(p);
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
    env.as_ref().map_err(|reason| DetectError::Runtime {
        path: path.display().to_string(),
        version: ORT_VERSION,
        reason: reason.clone(),
    })
}
