//! Loading ONNX Runtime. The library is loaded at run time (ort's `load-dynamic`)
//! so that the CPU and GPU builds differ only in the library they ship.
//!
//! Two builds: the plain one (`ORT_DYLIB_PATH`, else set-up's `onnxruntime`
//! wheel; the GPU images set it to the GPU build) and ONNX Runtime's OpenVINO
//! build (`ORT_OPENVINO_DYLIB_PATH`, else set-up's `onnxruntime-openvino` wheel
//! on x86-64). A detector whose providers name `openvino` loads the OpenVINO
//! build where there is one — unless `ORT_DYLIB_PATH` alone is set, an
//! operator's explicit choice. The plain build otherwise: its own CPU provider
//! (1.31) is faster than the OpenVINO build's (1.24) on the vehicle model
//! (docs/benchmarks.md). One library per process: the first detector loaded
//! decides.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ort::logging::LogLevel;

use streetscope_contracts::config::Provider;

use crate::DetectError;

/// The plain ONNX Runtime build set-up installs (the `onnxruntime` wheel).
pub const ORT_VERSION: &str = "1.31.1";

/// ONNX Runtime's OpenVINO build set-up installs on x86-64 (the
/// `onnxruntime-openvino` wheel, whose newest release is this one). The pinned
/// `ort` crate speaks API 24, which both versions serve.
pub const ORT_OPENVINO_VERSION: &str = "1.24.1";

/// The OpenVINO build: `ORT_OPENVINO_DYLIB_PATH` (the CPU image sets it), else
/// where set-up unpacks the wheel — in `onnxruntime-openvino/` (its Python
/// binding is what `bench detect` compares with), the library, its OpenVINO
/// provider and OpenVINO's plugins side by side in `onnxruntime/capi/` (they
/// find each other by `$ORIGIN`).
pub fn openvino_library() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_OPENVINO_DYLIB_PATH") {
        return PathBuf::from(p);
    }
    openvino_wheel().join("onnxruntime/capi").join(format!("libonnxruntime.so.{ORT_OPENVINO_VERSION}"))
}

/// Where set-up unpacks the `onnxruntime-openvino` wheel: on `PYTHONPATH`, its
/// Python binding (what `bench detect` compares the detector with).
pub fn openvino_wheel() -> PathBuf {
    cache_dir().join("onnxruntime-openvino")
}

/// The plain (or GPU) build: `ORT_DYLIB_PATH`, else set-up's.
pub fn plain_library() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(p);
    }
    cache_dir().join("onnxruntime").join(format!("libonnxruntime.so.{ORT_VERSION}"))
}

/// The library a detector with `providers` loads (see the module's docs).
pub fn library_for(providers: &[Provider]) -> PathBuf {
    let openvino = openvino_library();
    let env = |k| std::env::var_os(k).is_some();
    match choose(providers, env("ORT_DYLIB_PATH"), env("ORT_OPENVINO_DYLIB_PATH"), openvino.is_file()) {
        Build::OpenVino => openvino,
        Build::Plain => plain_library(),
    }
}

/// Which build of ONNX Runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    Plain,
    OpenVino,
}

/// The rule of [`library_for`]: the OpenVINO build for a detector that names
/// `openvino`, where there is one, unless only the plain build was named.
fn choose(providers: &[Provider], plain_named: bool, openvino_named: bool, openvino_present: bool) -> Build {
    let only_plain_named = plain_named && !openvino_named;
    if providers.contains(&Provider::Openvino) && openvino_present && !only_plain_named {
        Build::OpenVino
    } else {
        Build::Plain
    }
}

/// The library this process loaded, or would load for the default providers.
pub fn library_path() -> PathBuf {
    match LOADED.get() {
        Some((path, _)) => path.clone(),
        None => library_for(&Provider::ALL),
    }
}

/// `$STREETSCOPE_CACHE`, else `~/.cache/streetscope`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("STREETSCOPE_CACHE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("streetscope")
}

static LOADED: OnceLock<(PathBuf, Result<ort::environment::Environment, String>)> = OnceLock::new();

/// The process-wide ONNX Runtime environment, loading the library for
/// `providers` on first use; later calls share it (and say so where they would
/// have chosen the other build).
pub fn environment(providers: &[Provider]) -> Result<&'static ort::environment::Environment, DetectError> {
    let wanted = library_for(providers);
    let (path, env) = LOADED.get_or_init(|| {
        let env = if !wanted.is_file() {
            Err("no such file".to_owned())
        } else {
            ort::init_from(&wanted).map_err(|e| e.to_string()).and_then(|b| {
                let env = b.with_name("streetscope").with_logger(Arc::new(forward_log)).build();
                env.inspect(|env| env.set_log_level(ort_log_level())).map_err(|e| e.to_string())
            })
        };
        (wanted.clone(), env)
    });
    if *path != wanted {
        tracing::info!(
            "this process already loaded {}; {} (for providers {providers:?}) is not loaded beside it",
            path.display(),
            wanted.display()
        );
    }
    env.as_ref().map_err(|reason| DetectError::Runtime { path: path.display().to_string(), reason: reason.clone() })
}

/// ONNX Runtime's own messages, as `tracing` events of target `ort`. Its
/// "info" is chatty — the OpenVINO provider writes three lines for every
/// inference — so it is debug here, and verbose is trace; warnings and errors
/// keep their level.
fn forward_log(level: LogLevel, category: &str, id: &str, location: &str, message: &str) {
    match level {
        LogLevel::Verbose => tracing::trace!(target: "ort", category, id, location, "{message}"),
        LogLevel::Info => tracing::debug!(target: "ort", category, id, location, "{message}"),
        LogLevel::Warning => tracing::warn!(target: "ort", category, id, location, "{message}"),
        LogLevel::Error | LogLevel::Fatal => tracing::error!(target: "ort", category, id, location, "{message}"),
    }
}

/// The least severe of ONNX Runtime's messages that [`forward_log`] would
/// show (`RUST_LOG=ort=debug` shows its info): the runtime does not even
/// format the others.
fn ort_log_level() -> LogLevel {
    if tracing::enabled!(target: "ort", tracing::Level::TRACE) {
        LogLevel::Verbose
    } else if tracing::enabled!(target: "ort", tracing::Level::DEBUG) {
        LogLevel::Info
    } else {
        LogLevel::Warning
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_s_info_is_shown_only_when_ort_debug_is_asked_for() {
        use tracing_subscriber::EnvFilter;
        let level = |filter: &str| {
            let subscriber = tracing_subscriber::fmt().with_env_filter(EnvFilter::new(filter)).finish();
            tracing::subscriber::with_default(subscriber, ort_log_level)
        };
        // RUST_LOG=info (a pod's usual setting) shows no per-inference lines.
        assert_eq!(level("info"), LogLevel::Warning);
        assert_eq!(level("warn"), LogLevel::Warning);
        assert_eq!(level("info,ort=debug"), LogLevel::Info);
        assert_eq!(level("ort=trace"), LogLevel::Verbose);
        assert_eq!(level("debug"), LogLevel::Info);
    }

    #[test]
    fn the_openvino_build_is_loaded_for_detectors_that_name_openvino() {
        use Provider::*;
        // Set-up's builds, nothing named: OpenVINO where it is listed and installed.
        assert_eq!(choose(&Provider::ALL, false, false, true), Build::OpenVino);
        assert_eq!(choose(&[Openvino, Cpu], false, false, true), Build::OpenVino);
        assert_eq!(choose(&[Openvino, Cpu], false, false, false), Build::Plain);
        // The plain build's CPU provider is the faster one: `cpu` alone loads it.
        assert_eq!(choose(&[Cpu], false, false, true), Build::Plain);
        assert_eq!(choose(&[Tensorrt, Cuda, Cpu], false, false, true), Build::Plain);
        // The GPU image names its build only: the operator's choice stands.
        assert_eq!(choose(&Provider::ALL, true, false, true), Build::Plain);
        // The CPU image names both.
        assert_eq!(choose(&Provider::ALL, true, true, true), Build::OpenVino);
        assert_eq!(choose(&[Cpu], true, true, true), Build::Plain);
    }
}
