//! Bisects ONNX Runtime session settings on the detector's model: bare
//! `session.run` on one prepared input, each configuration in its own session,
//! measured interleaved (A B C A B C ...) so that machine noise hits all alike.
//!
//! ```sh
//! cargo run --release -p streetscope-detect --example session_options -- \
//!     MODEL ROUNDS RUNS_PER_ROUND CONFIG [CONFIG...]
//! ```
//! A CONFIG is comma-separated `key=value` settings on top of ort's defaults
//! (`ep::CPU::default()` and nothing else):
//! `threads=N` (intra-op), `inter=N`, `arena=0|1`, `spin=0|1` (intra-op
//! spinning), `pattern=0|1` (memory pattern), `opt=0|1|2|3|99` (graph
//! optimisation), `log=verbose|warning` (session log level), `conv=1` (convert
//! the input to fp16 on every run, as the detector did, for models with an fp16 input), `cpu_ep=0` (do not
//! register the CPU provider explicitly), `cfg:KEY=VALUE` (a session configuration entry, e.g.
//! `cfg:session.dynamic_block_base=4`). `python:N` is ONNX Runtime's Python
//! binding with N intra-op threads (tools/python/ort_bare.py as a child process,
//! same library version, input and model). Prints per configuration the median milliseconds of each round and
//! the median of rounds.

use std::time::Instant;

use half::f16;
use ndarray::Array4;
use ort::ep::{self, ExecutionProvider};
use ort::logging::LogLevel;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use streetscope_contracts::config::Provider;

struct Config {
    name: String,
    session: Option<Session>,
    convert: bool,
    /// `python:THREADS`: tools/python/ort_bare.py --serve as a child process.
    python: Option<(std::process::Child, std::io::BufReader<std::process::ChildStdout>)>,
}

fn python(model: &str, threads: &str) -> Config {
    use std::io::BufRead;
    let py = streetscope_detect::runtime::cache_dir().join("venv/bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/python/ort_bare.py");
    let mut child = std::process::Command::new(py)
        .args([script, "--model", model, "--threads", threads, "--serve"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("ready"), "{line}");
    Config { name: format!("python threads={threads}"), session: None, convert: false, python: Some((child, out)) }
}

fn build(model: &str, spec: &str) -> ort::Result<Config> {
    if let Some(t) = spec.strip_prefix("python:") {
        return Ok(python(model, t));
    }
    let env = streetscope_detect::runtime::environment(&[Provider::Cpu]).expect("ONNX Runtime");
    let mut b = Session::builder(env)?;
    let mut arena = false;
    let mut cpu_ep = true;
    let mut convert = false;
    for kv in spec.split(',').filter(|s| !s.is_empty() && *s != "default") {
        let (k, v) = kv.split_once('=').expect("key=value");
        b = match k {
            "threads" => b.with_intra_threads(v.parse().unwrap())?,
            "inter" => b.with_inter_threads(v.parse().unwrap())?,
            "arena" => {
                arena = v == "1";
                b
            }
            "cpu_ep" => {
                cpu_ep = v == "1";
                b
            }
            "conv" => {
                convert = v == "1";
                b
            }
            "spin" => b.with_intra_op_spinning(v == "1")?,
            "pattern" => b.with_memory_pattern(v == "1")?,
            "opt" => b.with_optimization_level(match v {
                "0" => GraphOptimizationLevel::Disable,
                "1" => GraphOptimizationLevel::Level1,
                "2" => GraphOptimizationLevel::Level2,
                "3" => GraphOptimizationLevel::Level3,
                _ => GraphOptimizationLevel::All,
            })?,
            "log" => b.with_log_level(match v {
                "verbose" => LogLevel::Verbose,
                "info" => LogLevel::Info,
                "error" => LogLevel::Error,
                _ => LogLevel::Warning,
            })?,
            // Any session configuration key of ONNX Runtime
            // (onnxruntime_session_options_config_keys.h), e.g.
            // `cfg:session.dynamic_block_base=4`.
            k if k.starts_with("cfg:") => b.with_config_entry(&k[4..], v)?,
            other => panic!("unknown setting {other}"),
        };
    }
    if cpu_ep {
        ep::CPU::default().with_arena_allocator(arena).register(&mut b)?;
    }
    let session = b.commit_from_file(model)?;
    Ok(Config { name: spec.to_owned(), session: Some(session), convert, python: None })
}

fn main() -> ort::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, rounds, runs, specs @ ..] = args.as_slice() else {
        eprintln!("usage: session_options MODEL ROUNDS RUNS_PER_ROUND CONFIG [CONFIG...]");
        std::process::exit(2);
    };
    let (rounds, runs): (usize, usize) = (rounds.parse().unwrap(), runs.parse().unwrap());
    let mut configs = specs.iter().map(|s| build(model, s)).collect::<ort::Result<Vec<_>>>()?;
    let input_f32 = Array4::<f32>::from_elem((1, 3, 640, 640), 114.0 / 255.0);
    let input_f16 = input_f32.mapv(f16::from_f32);
    let first = configs.iter().find_map(|c| c.session.as_ref()).expect("one ort configuration");
    let input_type = first.inputs()[0].dtype().tensor_type();
    let fp16 = input_type == Some(ort::value::TensorElementType::Float16);
    // A uint8 model (det_u8) takes the letterboxed bytes, [1, 640, 640, 3].
    let u8_input = (input_type == Some(ort::value::TensorElementType::Uint8))
        .then(|| Array4::<u8>::from_elem((1, 640, 640, 3), 114));
    let name = first.inputs()[0].name().to_owned();
    let mut scratch: Vec<f16> = Vec::new();
    let mut run = |c: &mut Config| -> ort::Result<f64> {
        if let Some((child, out)) = &mut c.python {
            use std::io::{BufRead, Write};
            writeln!(child.stdin.as_mut().unwrap(), "1").unwrap();
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            return Ok(v["ms_median"].as_f64().unwrap());
        }
        let session = c.session.as_mut().unwrap();
        let t = Instant::now();
        if let Some(bytes) = &u8_input {
            session.run(ort::inputs![name.as_str() => TensorRef::from_array_view(bytes)?])?;
        } else if fp16 {
            if c.convert {
                scratch.clear();
                scratch.extend(input_f32.iter().map(|v| f16::from_f32(*v)));
                let view = ndarray::ArrayView4::from_shape((1, 3, 640, 640), scratch.as_slice()).unwrap();
                session.run(ort::inputs![name.as_str() => TensorRef::from_array_view(view)?])?;
            } else {
                session.run(ort::inputs![name.as_str() => TensorRef::from_array_view(&input_f16)?])?;
            }
        } else {
            session.run(ort::inputs![name.as_str() => TensorRef::from_array_view(&input_f32)?])?;
        }
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    for c in &mut configs {
        for _ in 0..3 {
            run(c)?;
        }
    }
    let mut medians: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for r in 0..rounds {
        for (i, c) in configs.iter_mut().enumerate() {
            let mut t: Vec<f64> = (0..runs).map(|_| run(c)).collect::<ort::Result<_>>()?;
            t.sort_by(f64::total_cmp);
            medians[i].push(t[t.len() / 2]);
            eprintln!("round {} {:<40} {:.1} ms", r + 1, c.name, t[t.len() / 2]);
        }
    }
    for (c, m) in configs.iter().zip(&mut medians) {
        m.sort_by(f64::total_cmp);
        println!("{:<48} median of rounds {:.1} ms  (rounds: {:?})", c.name, m[m.len() / 2], m);
    }
    Ok(())
}
