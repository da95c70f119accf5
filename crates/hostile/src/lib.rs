//! Hostile inputs for the property tests of every decoder of outside input
//! (frame envelopes, detections, result records, registry bodies, source URLs,
//! TOML configuration, snapshots). Test-only: a dev-dependency, never shipped.
//!
//! - [`bytes`] and [`text`]: random input.
//! - [`mutated`]: mutations of valid encodings — bit flips, truncations,
//!   insertions, big-endian integers that claim gigabytes, tokens from a
//!   [`Dictionary`] (deep nesting, `NaN`, `1e999`, non-UTF-8 bytes, …).
//! - [`Fuzz`]: a seeded proptest runner. `STREETSCOPE_FUZZ_CASES` and
//!   `STREETSCOPE_FUZZ_SEED` override the case count and the seed (scripts/fuzz.sh
//!   runs millions); each run prints one `FUZZ` line with its figures.
//! - [`Meter`]: a global allocator that measures the largest allocation and the
//!   bytes allocated while a decoder runs, so a test can assert that a length
//!   field claiming gigabytes is refused before anything is allocated; and
//!   ends a run whose process would hold more than 4 GiB at once (an input
//!   that floods memory fails at once instead of taking the machine's).
//! - [`abuse`]: clients that abuse an HTTP server (oversized bodies, a byte a
//!   second, bursts of connections) and one that behaves, for the abuse tests
//!   of every server.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

pub mod abuse;

/// The seed when `STREETSCOPE_FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x5747_5245_4554_5343;

/// Random bytes, up to `max_len`.
pub fn bytes(max_len: usize) -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max_len).boxed()
}

/// Random text: any Unicode, and runs of the characters that mean something
/// to JSON and TOML.
pub fn text(max_len: usize) -> BoxedStrategy<Vec<u8>> {
    let syntax = prop::sample::select(
        &[
            "{", "}", "[", "]", "\"", "'", ":", ",", "=", "\n", ".", "-", "e", "0", "1", "9", "a", "true", "null",
            "nan", "inf", "\\",
        ][..],
    );
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..=max_len).prop_map(|c| c.into_iter().collect::<String>().into_bytes()),
        prop::collection::vec(syntax, 0..=max_len / 2).prop_map(|t| t.concat().into_bytes()),
    ]
    .boxed()
}

/// Tokens spliced into encodings: what is worth trying against a format.
#[derive(Debug, Clone)]
pub struct Dictionary(pub Vec<Vec<u8>>);

impl Dictionary {
    /// Tokens for JSON documents.
    pub fn json() -> Self {
        let mut t: Vec<Vec<u8>> = [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            "-1e999",
            "1e-999",
            "-0",
            "18446744073709551616",
            "-1",
            "-9223372036854775809",
            "4294967296",
            "65536",
            "null",
            "true",
            "\"\"",
            "[]",
            "{}",
            "\"\\ud800\"",
            "\"\\u0000\"",
            "\"\\\"",
            ",",
            ":",
            "\"x\":1,",
            "0.1",
            "1.7976931348623157e308",
            "5e-324",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        t.push("[".repeat(10_000).into_bytes());
        t.push("{\"a\":".repeat(5_000).into_bytes());
        t.push(vec![0xff, 0xfe, 0xc0, 0x80]);
        t.push(format!("\"{}\"", "x".repeat(70_000)).into_bytes());
        t.push([b"[", "0,".repeat(50_000).as_bytes(), b"0]"].concat());
        Self(t)
    }

    /// Tokens for TOML documents.
    pub fn toml() -> Self {
        let mut t: Vec<Vec<u8>> = [
            "nan",
            "+inf",
            "-inf",
            "1e999",
            "-0.0",
            "9223372036854775808",
            "-9223372036854775809",
            "0x7fffffffffffffff",
            "1979-05-27T07:32:00Z",
            "''",
            "\"\"",
            "'''",
            "\"\"\"",
            "[]",
            "{}",
            "[[a]]",
            "[a]",
            "a = 1",
            "\n",
            "=",
            ".",
            "\"\\u0000\"",
            "\"\\uD800\"",
            "true",
            "[cameras.lines]",
            "[[cameras]]",
            "[[cameras.zones]]",
            "polygon = [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]",
            "4294967296",
            "-1",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        t.push("[".repeat(10_000).into_bytes());
        t.push("a = ".bytes().chain("[".repeat(5_000).into_bytes()).collect());
        t.push("{a=".repeat(5_000).into_bytes());
        t.push(format!("x{}= 1", ".x".repeat(5_000)).into_bytes());
        t.push(vec![0xff, 0xfe, 0xc0, 0x80]);
        t.push(format!("[{}]", "[0.5, 0.5],".repeat(20_000)).into_bytes());
        Self(t)
    }

    /// Tokens for binary layouts (the integers come from [`INTERESTING`]).
    pub fn binary() -> Self {
        Self(vec![b"SSFR".to_vec(), vec![0xff, 0xd8, 0xff], vec![0; 64], vec![0xff; 64]])
    }
}

/// Integers that break length and count fields.
pub const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x1_0000,
    0x3fff_ffff,
    0x4000_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    u64::MAX,
];

/// One change to an encoding.
#[derive(Debug, Clone)]
enum Edit {
    FlipBit(u32, u8),
    SetByte(u32, u8),
    /// A big-endian integer of 1, 2, 4 or 8 bytes from [`INTERESTING`], over
    /// the bytes at the index (a length field claiming gigabytes).
    Integer(u32, u8, u32),
    Insert(u32, Vec<u8>),
    Remove(u32, u16),
    Truncate(u32),
    Token(u32, u32, bool),
    Duplicate(u32, u16, u32),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<u32>(), 0u8..8).prop_map(|(i, b)| Edit::FlipBit(i, b)),
        (any::<u32>(), any::<u8>()).prop_map(|(i, b)| Edit::SetByte(i, b)),
        (any::<u32>(), 0u8..4, any::<u32>()).prop_map(|(i, w, v)| Edit::Integer(i, w, v)),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<u32>(), 1u16..64).prop_map(|(i, n)| Edit::Remove(i, n)),
        any::<u32>().prop_map(Edit::Truncate),
        (any::<u32>(), any::<u32>(), any::<bool>()).prop_map(|(i, t, r)| Edit::Token(i, t, r)),
        (any::<u32>(), 1u16..256, any::<u32>()).prop_map(|(i, n, at)| Edit::Duplicate(i, n, at)),
    ]
}

/// A position drawn from `v` in `0..n` (`n > 0`).
fn ix(v: u32, n: usize) -> usize {
    v as usize % n
}

fn apply(bytes: &mut Vec<u8>, e: &Edit, dict: &Dictionary) {
    let len = bytes.len();
    let at = |i: &u32| if len == 0 { 0 } else { ix(*i, len) };
    match e {
        Edit::FlipBit(i, b) if len > 0 => bytes[at(i)] ^= 1 << b,
        Edit::SetByte(i, v) if len > 0 => bytes[at(i)] = *v,
        Edit::Integer(i, w, v) => {
            let width = 1usize << w;
            let value = INTERESTING[ix(*v, INTERESTING.len())].to_be_bytes();
            let start = at(i).min(len.saturating_sub(width));
            let end = (start + width).min(len);
            bytes.splice(start..end, value[8 - width..].iter().copied());
        }
        Edit::Insert(i, b) => {
            let p = if len == 0 { 0 } else { ix(*i, len + 1) };
            bytes.splice(p..p, b.iter().copied());
        }
        Edit::Remove(i, n) if len > 0 => {
            let p = at(i);
            bytes.drain(p..(p + *n as usize).min(len));
        }
        Edit::Truncate(i) => bytes.truncate(if len == 0 { 0 } else { ix(*i, len + 1) }),
        Edit::Token(i, t, replace) if !dict.0.is_empty() => {
            let token = &dict.0[ix(*t, dict.0.len())];
            let p = if len == 0 { 0 } else { ix(*i, len + 1) };
            // Replace the next token-long run, or insert.
            let end = if *replace { (p + token.len()).min(len) } else { p };
            bytes.splice(p..end, token.iter().copied());
        }
        Edit::Duplicate(i, n, to) if len > 0 => {
            let p = at(i);
            let run = bytes[p..(p + *n as usize).min(len)].to_vec();
            let q = ix(*to, len + 1);
            bytes.splice(q..q, run);
        }
        _ => {}
    }
}

/// Valid encodings (`seeds`) changed by 1 to 8 edits (bit flips, truncations,
/// insertions, interesting integers, tokens of `dict`).
pub fn mutated(seeds: Vec<Vec<u8>>, dict: Dictionary) -> BoxedStrategy<Vec<u8>> {
    assert!(!seeds.is_empty(), "mutations need a valid encoding to start from");
    (any::<u32>(), prop::collection::vec(edit(), 1..=8))
        .prop_map(move |(s, edits)| {
            let mut b = seeds[ix(s, seeds.len())].clone();
            for e in &edits {
                apply(&mut b, e, &dict);
            }
            b
        })
        .boxed()
}

/// Random input and mutations of `seeds`, about one random input in four.
pub fn hostile(seeds: Vec<Vec<u8>>, dict: Dictionary, random_len: usize) -> BoxedStrategy<Input> {
    prop_oneof![1 => bytes(random_len), 1 => text(random_len), 6 => mutated(seeds, dict)].prop_map(Input).boxed()
}

/// Random input, byte-level mutations, and — about half — value-level
/// mutations of JSON `seeds` ([`json_mutated`]): documents that parse, with
/// values no honest writer sends.
pub fn hostile_json(seeds: Vec<Vec<u8>>, random_len: usize) -> BoxedStrategy<Input> {
    let values: Vec<serde_json::Value> =
        seeds.iter().map(|s| serde_json::from_slice(s).expect("JSON seeds parse")).collect();
    prop_oneof![
        1 => bytes(random_len),
        1 => text(random_len),
        4 => mutated(seeds, Dictionary::json()),
        6 => json_mutated(values),
    ]
    .prop_map(Input)
    .boxed()
}

/// Values that break what reads them: extremes, wrong types, huge and empty things.
fn interesting_json(k: u32) -> serde_json::Value {
    use serde_json::json;
    match k % 24 {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(u64::MAX),
        3 => json!(i64::MIN),
        4 => json!(1.7976931348623157e308),
        5 => json!(-1.7976931348623157e308),
        6 => json!(5e-324),
        7 => json!(0.5),
        8 => json!(1e15),
        9 => json!(4294967296u64),
        10 => json!(""),
        11 => json!("x".repeat(100_000)),
        12 => json!("\u{0}\u{202e}é\u{fffd}"),
        13 => json!(null),
        14 => json!(true),
        15 => json!([]),
        16 => json!({}),
        17 => json!([[0.5, 0.5], [0.5, 0.5]]),
        18 => serde_json::Value::Array(vec![json!([0.25, 0.75]); 10_000]),
        19 => json!(-0.0),
        20 => json!(65536),
        21 => json!("../../../../etc/passwd"),
        22 => json!(1u64 << 53),
        _ => json!(2),
    }
}

/// The nodes of `v` the mutations choose from, counted in the order they are
/// numbered: children before their parent, an array's first 64 elements only.
fn count_nodes(v: &serde_json::Value) -> usize {
    1 + match v {
        serde_json::Value::Array(a) => a.iter().take(64).map(count_nodes).sum(),
        serde_json::Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// One step from a node to a child.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Index(usize),
    Key(String),
}

/// The path to node `n` of `v` (numbered as [`count_nodes`] counts them);
/// `n` must be below `count_nodes(v)`. Counting instead of listing every
/// node's JSON Pointer: a snapshot seed has thousands of nodes, and listing
/// them for every edit cost more than decoding the mutated document.
fn nth_node(v: &serde_json::Value, mut n: usize, path: &mut Vec<Step>) {
    let mut descend = |step: Step, child: &serde_json::Value, n: &mut usize| {
        let k = count_nodes(child);
        if *n < k {
            path.push(step);
            nth_node(child, *n, path);
            true
        } else {
            *n -= k;
            false
        }
    };
    match v {
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate().take(64) {
                if descend(Step::Index(i), x, &mut n) {
                    return;
                }
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                if descend(Step::Key(k.clone()), x, &mut n) {
                    return;
                }
            }
        }
        _ => {}
    }
    debug_assert_eq!(n, 0, "the node is this one");
}

/// The node at `path`, if there is one.
fn node_mut<'a>(mut v: &'a mut serde_json::Value, path: &[Step]) -> Option<&'a mut serde_json::Value> {
    for step in path {
        v = match (v, step) {
            (serde_json::Value::Array(a), Step::Index(i)) => a.get_mut(*i)?,
            (serde_json::Value::Object(o), Step::Key(k)) => o.get_mut(k)?,
            _ => return None,
        };
    }
    Some(v)
}

/// The most bytes one repeat edit of [`json_mutated`] adds to a document.
pub const REPEATED_BYTES: usize = 4 << 20;

/// Documents that still parse: 1 to 4 of their nodes replaced by an
/// interesting value, removed, or (arrays) repeated many times over.
pub fn json_mutated(seeds: Vec<serde_json::Value>) -> BoxedStrategy<Vec<u8>> {
    assert!(!seeds.is_empty(), "mutations need a valid document to start from");
    (any::<u32>(), prop::collection::vec((any::<u32>(), 0u8..4, any::<u32>()), 1..=4))
        .prop_map(move |(s, edits)| {
            let mut doc = seeds[ix(s, seeds.len())].clone();
            let mut path = Vec::new();
            for (node, op, k) in edits {
                path.clear();
                nth_node(&doc, ix(node, count_nodes(&doc)), &mut path);
                match op {
                    // The root itself is only replaced.
                    1 if !path.is_empty() => {
                        let (last, parent) = path.split_last().expect("a child has a parent");
                        match (node_mut(&mut doc, parent), last) {
                            (Some(serde_json::Value::Object(o)), Step::Key(key)) => {
                                o.remove(key);
                            }
                            (Some(serde_json::Value::Array(a)), Step::Index(i)) if *i < a.len() => {
                                a.remove(*i);
                            }
                            _ => {}
                        }
                    }
                    2 => {
                        if let Some(serde_json::Value::Array(a)) = node_mut(&mut doc, &path) {
                            if let Some(first) = a.first().cloned() {
                                // At most REPEATED_BYTES more per edit: a repeat of a repeat
                                // made documents of 600 MB, which take seconds to read for
                                // their size alone (found at volume) and which no topic or
                                // endpoint accepts (messages and bodies are about 1 MiB).
                                let each = serde_json::to_vec(&first).map_or(usize::MAX, |v| v.len() + 1);
                                let times = [2usize, 100, 5_000][ix(k, 3)].min(REPEATED_BYTES / each);
                                a.extend(std::iter::repeat_n(first, times));
                            }
                        }
                    }
                    _ => {
                        if let Some(slot) = node_mut(&mut doc, &path) {
                            *slot = interesting_json(k);
                        }
                    }
                }
            }
            serde_json::to_vec(&doc).expect("a value serialises")
        })
        .boxed()
}

/// One hostile input: bytes that a failure prints as text (`b"..."`, escaped),
/// so that the smallest failing input can be read and kept as a regression test.
#[derive(Clone, PartialEq, Eq)]
pub struct Input(pub Vec<u8>);

impl std::ops::Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Long inputs are cut in the report (`{:#?}` shows them whole); the
        // seed reproduces them whole.
        const SHOWN: usize = 2048;
        let n = self.0.len();
        let shown = if f.alternate() { n } else { n.min(SHOWN) };
        write!(f, "b\"{}\"", self.0[..shown].escape_ascii())?;
        if n > shown {
            write!(f, "… ({} bytes more)", n - shown)?;
        }
        write!(f, " ({n} bytes)")
    }
}

/// What a decoder did with one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Refused,
}

/// A seeded run of one property over many inputs.
#[derive(Debug)]
pub struct Fuzz {
    name: String,
    cases: u32,
    seed: u64,
}

impl Fuzz {
    /// `ci_cases` inputs unless `STREETSCOPE_FUZZ_CASES` says otherwise; the seed
    /// from `STREETSCOPE_FUZZ_SEED` (decimal or 0x-hex), else [`DEFAULT_SEED`].
    pub fn new(name: &str, ci_cases: u32) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cases = env("STREETSCOPE_FUZZ_CASES").map_or(ci_cases, |v| {
            v.replace('_', "").parse().unwrap_or_else(|_| panic!("STREETSCOPE_FUZZ_CASES={v:?}: not a count"))
        });
        let seed = env("STREETSCOPE_FUZZ_SEED").map_or(DEFAULT_SEED, |v| {
            let parsed = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("STREETSCOPE_FUZZ_SEED={v:?}: not a number"))
        });
        let cap = env("STREETSCOPE_FUZZ_MAX_LIVE_BYTES").map_or(DEFAULT_LIVE_CAP, |v| {
            v.replace('_', "").parse().unwrap_or_else(|_| panic!("STREETSCOPE_FUZZ_MAX_LIVE_BYTES={v:?}: not a count"))
        });
        LIVE_CAP.store(cap, Ordering::Relaxed);
        Self { name: name.to_owned(), cases, seed }
    }

    /// Runs `property` on `cases` inputs of `strategy`; a failing input is
    /// shrunk and reported with the seed that reproduces it. Prints one line:
    /// `FUZZ name inputs=N seed=S secs=T per_s=R accepted=A refused=F largest_alloc=B slowest_us=U`
    /// (`U`: the longest one input took, in microseconds, wall clock). With
    /// `STREETSCOPE_FUZZ_SHOW_SLOWEST` set it also prints that input
    /// (`FUZZ_SLOWEST name us=U input`), to tell a slow input from a stalled
    /// process on a loaded machine. With `STREETSCOPE_FUZZ_LAST_INPUT=FILE` it
    /// writes each input to FILE, whole (`{:#?}`), before running it: a run
    /// killed for its memory or time leaves the input that did it there.
    pub fn run<S: Strategy>(&self, strategy: S, property: impl Fn(S::Value) -> Result<Verdict, TestCaseError>)
    where
        S::Value: std::fmt::Debug + Clone,
    {
        let config = Config {
            cases: self.cases,
            failure_persistence: None,
            max_shrink_iters: 10_000,
            max_global_rejects: 0,
            ..Config::default()
        };
        let mut seed = [0u8; 32];
        for (k, chunk) in seed.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&self.seed.wrapping_add(k as u64).to_le_bytes());
        }
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        let (accepted, refused) = (AtomicU64::new(0), AtomicU64::new(0));
        // The longest one input took (generation not included), microseconds:
        // what a hang limit is measured against.
        let slowest = AtomicU64::new(0);
        let show_slowest = std::env::var_os("STREETSCOPE_FUZZ_SHOW_SLOWEST").is_some_and(|v| !v.is_empty());
        let slowest_input = std::cell::RefCell::new(None::<S::Value>);
        let last_input = std::env::var_os("STREETSCOPE_FUZZ_LAST_INPUT").filter(|v| !v.is_empty());
        LARGEST_SEEN.with(|l| l.set(0));
        let start = Instant::now();
        let result = runner.run(&strategy, |input| {
            // A copy only when asked for: it costs as much as some decoders.
            let kept = show_slowest.then(|| input.clone());
            if let Some(file) = &last_input {
                std::fs::write(file, format!("{input:#?}\n")).expect("STREETSCOPE_FUZZ_LAST_INPUT: a writable file");
            }
            let t = Instant::now();
            let verdict = property(input);
            let us = t.elapsed().as_micros() as u64;
            if slowest.fetch_max(us, Ordering::Relaxed) < us && kept.is_some() {
                *slowest_input.borrow_mut() = kept;
            }
            match verdict? {
                Verdict::Accepted => accepted.fetch_add(1, Ordering::Relaxed),
                Verdict::Refused => refused.fetch_add(1, Ordering::Relaxed),
            };
            Ok(())
        });
        let secs = start.elapsed().as_secs_f64();
        if let Err(e) = result {
            panic!("{}: seed {:#x}: {e}", self.name, self.seed);
        }
        let (a, r, slowest) = (accepted.into_inner(), refused.into_inner(), slowest.into_inner());
        println!(
            "FUZZ {} inputs={} seed={:#x} secs={secs:.2} per_s={:.0} accepted={a} refused={r} largest_alloc={} \
             slowest_us={slowest}",
            self.name,
            self.cases,
            self.seed,
            f64::from(self.cases) / secs.max(1e-9),
            LARGEST_SEEN.with(Cell::get),
        );
        if let Some(input) = slowest_input.into_inner() {
            println!("FUZZ_SLOWEST {} us={slowest} {input:?}", self.name);
        }
    }
}

/// What a measured section allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The largest single allocation (or reallocation), bytes.
    pub largest: usize,
    /// Bytes asked for in all, frees not subtracted.
    pub total: usize,
}

/// A global allocator (the system's) that measures what [`measure`] sections
/// allocate. A test binary installs it with
/// `#[global_allocator] static A: streetscope_hostile::Meter = streetscope_hostile::Meter;`.
#[derive(Debug)]
pub struct Meter;

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Bytes the process holds now (allocated through [`Meter`], not yet freed).
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most a fuzz run may hold at once ([`Fuzz::new`] sets it).
static LIVE_CAP: AtomicUsize = AtomicUsize::new(usize::MAX);
/// [`LIVE_CAP`] unless `STREETSCOPE_FUZZ_MAX_LIVE_BYTES` says otherwise: far
/// above any input's bound, and far below the shared machines' memory.
pub const DEFAULT_LIVE_CAP: usize = 4 << 30;

/// Takes `size` more live bytes; false (and nothing taken) past the cap. An
/// input that makes a decoder, or what runs after it, hold gigabytes then
/// ends the run at once (the allocation fails, the process aborts, and
/// `STREETSCOPE_FUZZ_LAST_INPUT` holds the input) instead of taking the
/// machine's memory: a restored snapshot that flooded windows held 20 GB
/// before it was stopped by hand.
fn take(size: usize) -> bool {
    let live = LIVE.fetch_add(size, Ordering::Relaxed).saturating_add(size);
    if live <= LIVE_CAP.load(Ordering::Relaxed) {
        return true;
    }
    LIVE.fetch_sub(size, Ordering::Relaxed);
    // No allocation here: a fixed message, written unbuffered.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"streetscope-hostile: the process would hold more than STREETSCOPE_FUZZ_MAX_LIVE_BYTES (default 4 GiB): \
          an input floods memory; STREETSCOPE_FUZZ_LAST_INPUT=FILE keeps it\n",
    );
    false
}

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
    /// The largest allocation of any section measured during this thread's run.
    static LARGEST_SEEN: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    // `try_with`: allocations while a thread is torn down are not measured.
    if ON.try_with(Cell::get).unwrap_or(false) {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        let _ = TOTAL.try_with(|t| t.set(t.get().saturating_add(size)));
    }
}

// An allocator is unsafe by its nature: this one adds two counters to the
// system allocator and changes nothing else.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if !take(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if !take(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        let old = layout.size();
        if new_size > old && !take(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `dealloc`; the caller's contract for `realloc` is passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            // Nothing changed: the old block stays.
            if new_size > old {
                LIVE.fetch_sub(new_size - old, Ordering::Relaxed);
            }
        } else if new_size < old {
            LIVE.fetch_sub(old - new_size, Ordering::Relaxed);
        }
        p
    }
}

/// Runs `f` and measures what it allocates on this thread. Panics when the
/// test binary has not installed [`Meter`], so a bound is never checked against nothing.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    drop(Vec::<u8>::with_capacity(1));
    assert!(
        INSTALLED.load(Ordering::Relaxed),
        "measure() needs `#[global_allocator] static A: streetscope_hostile::Meter = streetscope_hostile::Meter;`"
    );
    LARGEST.with(|l| l.set(0));
    TOTAL.with(|t| t.set(0));
    ON.with(|o| o.set(true));
    let r = f();
    ON.with(|o| o.set(false));
    let usage = Usage { largest: LARGEST.with(Cell::get), total: TOTAL.with(Cell::get) };
    LARGEST_SEEN.with(|l| l.set(l.get().max(usage.largest)));
    (r, usage)
}

/// Fails the case when a decoder of `input_len` bytes allocated more than a
/// small multiple of its input: `32 × len + 64 KiB` at once, `256 × len + 1 MiB`
/// in all. (A JSON value tree takes up to 16 bytes per input byte — `0,` is a
/// 32-byte value — and twice that while its vector grows.) Any length or count
/// field taken on trust breaks it.
pub fn check_bounded(input_len: usize, usage: Usage) -> Result<(), TestCaseError> {
    check_bounded_by(input_len, usage, 32)
}

/// [`check_bounded`] with `factor × len + 64 KiB` at once and `8 × factor × len + 1 MiB` in all.
pub fn check_bounded_by(input_len: usize, usage: Usage, factor: usize) -> Result<(), TestCaseError> {
    let largest = factor * input_len + (64 << 10);
    let total = 8 * factor * input_len + (1 << 20);
    prop_assert!(
        usage.largest <= largest,
        "allocated {} bytes at once for {input_len} bytes of input (bound {largest})",
        usage.largest
    );
    prop_assert!(
        usage.total <= total,
        "allocated {} bytes in all for {input_len} bytes of input (bound {total})",
        usage.total
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_reproducible_and_change_the_input() {
        let seeds = vec![b"{\"a\": [1, 2, 3]}".to_vec()];
        let sample = |seed: u8| {
            let mut runner =
                TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]));
            let s = mutated(seeds.clone(), Dictionary::json());
            (0..50).map(|_| s.new_tree(&mut runner).unwrap().current()).collect::<Vec<_>>()
        };
        assert_eq!(sample(1), sample(1));
        assert_ne!(sample(1), sample(2));
        assert!(sample(1).iter().filter(|m| **m != seeds[0]).count() > 40);
    }

    /// The JSON Pointers of every node, as the mutations used to list them
    /// before they counted instead (the same seed must give the same inputs).
    fn pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate().take(64) {
                    pointers(x, format!("{at}/{i}"), out);
                }
            }
            serde_json::Value::Object(o) => {
                for (k, x) in o {
                    pointers(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }

    #[test]
    fn nodes_are_numbered_as_their_pointers_were_listed() {
        let mut big = serde_json::json!({"a": [1, {"b/c": [2, 3], "~d": null}], "": {"e": []}});
        big["f"] = serde_json::Value::Array(vec![serde_json::json!({"g": [0.5, 0.5]}); 100]);
        for doc in [serde_json::json!(1), serde_json::json!([]), serde_json::json!({"x": {"y": [[[]]]}}), big] {
            let mut all = Vec::new();
            pointers(&doc, String::new(), &mut all);
            assert_eq!(count_nodes(&doc), all.len());
            for (n, pointer) in all.iter().enumerate() {
                let mut path = Vec::new();
                nth_node(&doc, n, &mut path);
                let mut copy = doc.clone();
                let by_path: *const serde_json::Value = node_mut(&mut copy, &path).unwrap();
                let by_pointer: *const serde_json::Value = copy.pointer_mut(pointer).unwrap();
                assert_eq!(by_path, by_pointer, "node {n}: {path:?} against {pointer:?}");
            }
        }
    }

    #[test]
    fn an_integer_edit_claims_gigabytes() {
        let mut b = vec![0u8; 8];
        let v = INTERESTING.iter().position(|&v| v == 0xffff_ffff).unwrap();
        apply(&mut b, &Edit::Integer(0, 2, v as u32), &Dictionary(Vec::new()));
        assert_eq!(b, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    }
}
