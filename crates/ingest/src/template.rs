//! GStreamer pipeline templates, kept as text in `pipelines/templates/`.
//!
//! A template is a `gst-launch` description with `{placeholders}`; lines
//! starting with `#` are comments. The built-in templates are chosen by the
//! source's kind ([`for_source`]); an operator can replace it per camera with a
//! template file of their own ([`load`]), which is checked: it must exist, and use
//! only the known [`PLACEHOLDERS`].

use std::path::Path;

/// Files, and any URI that `uridecodebin` understands.
pub const URI: &str = include_str!("../../../pipelines/templates/uri.pipeline");
/// RTSP cameras, with the transport chosen per camera.
pub const RTSP: &str = include_str!("../../../pipelines/templates/rtsp.pipeline");
/// HTTP(S) MJPEG cameras.
pub const MJPEG: &str = include_str!("../../../pipelines/templates/mjpeg.pipeline");
/// V4L2 devices.
pub const V4L2: &str = include_str!("../../../pipelines/templates/v4l2.pipeline");

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &["uri", "device", "protocols", "width", "height", "format", "encode"];

/// The built-in template for a source (a path or a URL whose scheme was checked).
pub fn for_source(source: &str) -> &'static str {
    match source.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).as_deref() {
        Some("rtsp" | "rtsps" | "rtspt" | "rtspu") => RTSP,
        Some("http" | "https") => MJPEG,
        Some("v4l2") => V4L2,
        _ => URI,
    }
}

/// Fills a template's placeholders. Values are quoted by the template itself;
/// a value containing a double quote is refused by the caller before this.
pub fn render(template: &str, vars: &[(&str, String)]) -> String {
    let body: Vec<&str> = template.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    let mut text = body.join("\n");
    for (key, value) in vars {
        text = text.replace(&format!("{{{key}}}"), value);
    }
    text
}

/// The placeholders a template uses, in order of first use (comments ignored).
pub fn placeholders(template: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for line in template.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else { break };
            let name = &after[..close];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                if !found.iter().any(|f| f == name) {
                    found.push(name.to_owned());
                }
                rest = &after[close + 1..];
            } else {
                rest = after;
            }
        }
    }
    found
}

/// Checks a template's text: only known placeholders, and the elements the
/// ingest crate needs (`name=letterbox`, `name=sink`).
pub fn check(template: &str) -> Result<(), String> {
    let unknown: Vec<String> =
        placeholders(template).into_iter().filter(|p| !PLACEHOLDERS.contains(&p.as_str())).collect();
    if !unknown.is_empty() {
        let list = unknown.iter().map(|u| format!("{{{u}}}")).collect::<Vec<_>>().join(", ");
        let known = PLACEHOLDERS.iter().map(|u| format!("{{{u}}}")).collect::<Vec<_>>().join(" ");
        return Err(format!("unknown placeholder(s) {list}; known: {known}"));
    }
    let body = render(template, &[]);
    for name in ["letterbox", "sink"] {
        if !body.contains(&format!("name={name}")) && !body.contains(&format!("name=\"{name}\"")) {
            return Err(format!("no element named `{name}` (see pipelines/templates/uri.pipeline)"));
        }
    }
    Ok(())
}

/// Reads and checks an operator's template file. The error names the file and
/// what is wrong with it.
pub fn load(path: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("template {}: cannot read it: {e}", path.display()))?;
    check(&text).map_err(|e| format!("template {}: {e}", path.display()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(format: &str, encode: &str) -> Vec<(&'static str, String)> {
        vec![
            ("uri", "file:///a.mp4".to_owned()),
            ("device", "/dev/video3".to_owned()),
            ("protocols", "tcp".to_owned()),
            ("width", "640".to_owned()),
            ("height", "640".to_owned()),
            ("format", format.to_owned()),
            ("encode", encode.to_owned()),
        ]
    }

    #[test]
    fn renders_the_uri_template() {
        let p = render(URI, &vars("RGB", ""));
        assert!(p.contains("uri=\"file:///a.mp4\""));
        assert!(p.contains("format=RGB,width=640,height=640"));
        assert!(!p.contains('{'), "{p}");
        assert!(!p.contains('#'));
        let p = render(URI, &vars("I420", "! jpegenc quality=90"));
        assert!(p.contains("format=I420,width=640,height=640,pixel-aspect-ratio=1/1 ! jpegenc quality=90"), "{p}");
    }

    #[test]
    fn every_built_in_template_passes_its_checks_and_renders_fully() {
        for t in [URI, RTSP, MJPEG, V4L2] {
            check(t).unwrap();
            let p = render(t, &vars("RGB", ""));
            assert!(!p.contains('{') && !p.contains('#'), "{p}");
        }
        assert!(render(RTSP, &vars("RGB", "")).starts_with("rtspsrc location=\"file:///a.mp4\" protocols=tcp "));
        assert!(render(MJPEG, &vars("RGB", "")).contains("multipartdemux ! image/jpeg ! jpegdec"));
        assert!(render(V4L2, &vars("RGB", "")).starts_with("v4l2src device=\"/dev/video3\" "));
        // The example operator template in pipelines/examples/ is valid too.
        check(include_str!("../../../pipelines/examples/uri-videoconvertscale.pipeline")).unwrap();
    }

    #[test]
    fn templates_are_chosen_by_scheme() {
        assert_eq!(for_source("rtsp://u:p@cam/s"), RTSP);
        assert_eq!(for_source("RTSPS://cam/s"), RTSP);
        assert_eq!(for_source("https://cam/mjpeg"), MJPEG);
        assert_eq!(for_source("v4l2:///dev/video0"), V4L2);
        assert_eq!(for_source("file:///a.mp4"), URI);
        assert_eq!(for_source("/a.mp4"), URI);
    }

    #[test]
    fn operator_templates_are_checked() {
        assert_eq!(placeholders("a {uri} b {x-y} {uri} {} { nope }\n# {comment}"), ["uri", "x-y"]);
        let bad = "videotestsrc pattern={pattern} ! videoconvertscale name=letterbox ! appsink name=sink {fmt}";
        let e = check(bad).unwrap_err();
        assert!(e.starts_with("unknown placeholder(s) {pattern}, {fmt}; known: {uri} {device}"), "{e}");
        let e = check("videotestsrc ! appsink name=sink").unwrap_err();
        assert!(e.contains("`letterbox`"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pipeline");
        let e = load(&missing).unwrap_err();
        assert!(e.starts_with(&format!("template {}: cannot read it", missing.display())), "{e}");
        let file = dir.path().join("bad.pipeline");
        std::fs::write(&file, bad).unwrap();
        assert!(load(&file).unwrap_err().contains("{pattern}"));
        std::fs::write(&file, "# mine\nvideotestsrc ! videoconvertscale name=letterbox ! appsink name=sink").unwrap();
        assert!(load(&file).is_ok());
    }
}
