//! Hostile input against an operator's pipeline template (a camera's
//! `template`: a file edited by hand, read by `template::load` when the camera
//! starts). Random text and mutations of the built-in templates; none may
//! panic, allocate more than a small multiple of its input, or take long, and
//! every refusal names what was wrong (an unknown placeholder, a missing
//! element). What an accepted template renders to has every placeholder filled.
//! The file itself (not a file, too large, not UTF-8) is checked in
//! `template.rs`'s unit tests.
//!
//! Seeded: `STREETSCOPE_FUZZ_SEED` and `STREETSCOPE_FUZZ_CASES` change the seed
//! and the count (scripts/fuzz.sh runs ten million).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use streetscope_hostile::{check_bounded, hostile, measure, Dictionary, Fuzz, Verdict};
use streetscope_ingest::template::{self, PLACEHOLDERS};

#[global_allocator]
static ALLOC: streetscope_hostile::Meter = streetscope_hostile::Meter;

/// No single input may take this long: a hang detector, with room for a loaded CI machine.
const SLOW: Duration = Duration::from_secs(10);

/// What is worth splicing into a template.
fn dictionary() -> Dictionary {
    let mut t: Vec<Vec<u8>> = [
        "{uri}",
        "{device}",
        "{protocols}",
        "{width}",
        "{height}",
        "{borders}",
        "{format}",
        "{encode}",
        "{",
        "}",
        "{x}",
        "{pattern}",
        "{a b}",
        "{}",
        "{{uri}}",
        "{uri",
        "#",
        "# {comment}",
        "\n",
        "\r\n",
        "\n#",
        "name=letterbox",
        "name=sink",
        "name=\"sink\"",
        "name=\"letterbox\"",
        " ! ",
        "\"",
        "\\",
        "\u{0}",
        "é",
        "\u{202e}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    t.push("{".repeat(10_000).into_bytes());
    t.push("}".repeat(10_000).into_bytes());
    t.push("{uri}".repeat(5_000).into_bytes());
    t.push("{x-".repeat(5_000).into_bytes());
    t.push(format!("{{{}}}", "a".repeat(70_000)).into_bytes());
    t.push("\n".repeat(10_000).into_bytes());
    t.push(vec![0xff, 0xfe, 0xc0, 0x80]);
    Dictionary(t)
}

/// Values for every placeholder, without braces (as ingest fills them).
fn vars() -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("uri", "rtsp://10.0.0.5:554/s1".to_owned()),
        ("device", "/dev/video0".to_owned()),
        ("protocols", "tcp".to_owned()),
    ];
    v.extend(template::frame_vars(640, 640, Some(80)));
    v
}

#[test]
fn pipeline_templates() {
    let seeds: Vec<Vec<u8>> = [
        template::URI,
        template::RTSP,
        template::MJPEG,
        template::V4L2,
        include_str!("../../../pipelines/examples/uri-videoconvertscale.pipeline"),
    ]
    .iter()
    .map(|t| {
        template::check(t).unwrap();
        t.as_bytes().to_vec()
    })
    .collect();
    let vars = vars();
    Fuzz::new("pipeline_template", 20_000).run(hostile(seeds, dictionary(), 256), |bytes| {
        // `load` refuses what is not UTF-8 before anything else (its unit tests).
        let Ok(text) = std::str::from_utf8(&bytes) else { return Ok(Verdict::Refused) };
        let start = Instant::now();
        let ((found, checked), usage) = measure(|| (template::placeholders(text), template::check(text)));
        check_bounded(bytes.len(), usage)?;
        prop_assert!(start.elapsed() < SLOW, "{:?} for {} bytes", start.elapsed(), bytes.len());
        // Each placeholder found is a name, once, written `{name}` in the text.
        for (i, p) in found.iter().enumerate() {
            prop_assert!(!p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
            prop_assert!(!found[..i].contains(p) && text.contains(&format!("{{{p}}}")), "{p:?}");
        }
        match checked {
            Ok(()) => {
                prop_assert!(found.iter().all(|p| PLACEHOLDERS.contains(&p.as_str())), "{found:?}");
                let rendered = template::render(text, &vars);
                // Every placeholder is filled (braces may stay: GStreamer caps
                // write lists `{a, b}`), no comment is left, and the elements
                // ingest needs are there.
                for p in PLACEHOLDERS {
                    prop_assert!(!rendered.contains(&format!("{{{p}}}")), "{{{p}}} left in {rendered}");
                }
                prop_assert!(rendered.lines().all(|l| !l.trim_start().starts_with('#')), "{rendered}");
                for name in ["letterbox", "sink"] {
                    let found =
                        rendered.contains(&format!("name={name}")) || rendered.contains(&format!("name=\"{name}\""));
                    prop_assert!(found, "no {} in {}", name, rendered);
                }
                Ok(Verdict::Accepted)
            }
            Err(e) => {
                // It names the unknown placeholders (all of them) or the missing element.
                if let Some(rest) = e.strip_prefix("unknown placeholder(s) ") {
                    let unknown: Vec<&String> = found.iter().filter(|p| !PLACEHOLDERS.contains(&p.as_str())).collect();
                    prop_assert!(!unknown.is_empty(), "{e}");
                    for p in unknown {
                        prop_assert!(rest.contains(&format!("{{{p}}}")), "{e}");
                    }
                } else {
                    prop_assert!(
                        e == "no element named `letterbox` (see pipelines/templates/uri.pipeline)"
                            || e == "no element named `sink` (see pipelines/templates/uri.pipeline)",
                        "{e}"
                    );
                }
                Ok(Verdict::Refused)
            }
        }
    });
}
