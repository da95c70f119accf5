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
pub const PLACEHOLDERS: &[&str] = &["uri", "device", "protocols", "width", "height", "borders", "format", "encode"];

/// The placeholders that say what a camera's frames are: the letterbox's size,
/// and raw RGB (the whole letterbox) or JPEG of `jpeg_quality` (the scaled
/// picture alone, in JPEG's colours: full range, BT.601; `videoconvert` does
/// nothing where they already are, as `streetscopeletterbox`'s I420 is, and
/// converts an operator's template's limited-range I420, which a JPEG decoder
/// would read greyer).
pub fn frame_vars(width: u32, height: u32, jpeg_quality: Option<u8>) -> [(&'static str, String); 5] {
    let encode = jpeg_quality.map(|q| {
        format!("! videoconvert ! video/x-raw,format=I420,colorimetry=1:4:0:0 ! jpegenc quality={}", q.clamp(1, 100))
    });
    [
        ("width", width.to_string()),
        ("height", height.to_string()),
        ("borders", encode.is_none().to_string()),
        ("format", if encode.is_some() { "I420" } else { "RGB" }.to_owned()),
        ("encode", encode.unwrap_or_default()),
    ]
}

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
/// A placeholder is the text between a `}` and the last `{` before it, when
/// that is a name of letters, digits, `_` or `-`. One pass over each line: a
/// search for the `}` after every `{` took time quadratic in the line (a line
/// of 2^20 `{` and then a `}`: 38 s; found writing its hostile test).
pub fn placeholders(template: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for line in template.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut open = None;
        for (i, b) in line.bytes().enumerate() {
            match b {
                b'{' => open = Some(i),
                b'}' => {
                    if let Some(o) = open.take() {
                        let name = &line[o + 1..i];
                        if !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                            && !found.iter().any(|f| f == name)
                        {
                            found.push(name.to_owned());
                        }
                    }
                }
                _ => {}
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

/// The largest template file read, in bytes (the built-in ones are under 2 KiB).
pub const MAX_TEMPLATE_BYTES: u64 = 64 * 1024;

/// Reads and checks an operator's template file. The error names the file and
/// what is wrong with it. Only a regular file of at most [`MAX_TEMPLATE_BYTES`]
/// is read: a path such as `/dev/zero` (read to its end, it takes all the
/// memory there is: 2 GB in 1.4 s under `ulimit -v 2000000`) or a FIFO (opening
/// it waits for a writer) is refused before it is opened.
pub fn load(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let fail = |what: String| format!("template {}: {what}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_TEMPLATE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| fail(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(fail(format!("over {MAX_TEMPLATE_BYTES} bytes; a pipeline template is a few lines")));
    }
    let text = String::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8 text: {e}")))?;
    check(&text).map_err(fail)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(jpeg_quality: Option<u8>) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("uri", "file:///a.mp4".to_owned()),
            ("device", "/dev/video3".to_owned()),
            ("protocols", "tcp".to_owned()),
        ];
        v.extend(frame_vars(640, 640, jpeg_quality));
        v
    }

    #[test]
    fn renders_the_uri_template() {
        let p = render(URI, &vars(None));
        assert!(p.contains("uri=\"file:///a.mp4\""));
        assert!(p.contains("streetscopeletterbox name=letterbox width=640 height=640 borders=true"), "{p}");
        assert!(p.contains("! video/x-raw,format=RGB,pixel-aspect-ratio=1/1 \n"), "{p}");
        assert!(!p.contains('{'), "{p}");
        assert!(!p.contains('#'));
        let p = render(URI, &vars(Some(90)));
        assert!(p.contains("width=640 height=640 borders=false"), "{p}");
        assert!(
            p.contains(
                "format=I420,pixel-aspect-ratio=1/1 ! videoconvert ! video/x-raw,format=I420,colorimetry=1:4:0:0 \
                 ! jpegenc quality=90"
            ),
            "{p}"
        );
    }

    #[test]
    fn every_built_in_template_passes_its_checks_and_renders_fully() {
        for t in [URI, RTSP, MJPEG, V4L2] {
            check(t).unwrap();
            let p = render(t, &vars(None));
            assert!(!p.contains('{') && !p.contains('#'), "{p}");
        }
        assert!(render(RTSP, &vars(None)).starts_with("rtspsrc location=\"file:///a.mp4\" protocols=tcp "));
        assert!(render(MJPEG, &vars(None)).contains("multipartdemux ! image/jpeg ! jpegdec"));
        assert!(render(V4L2, &vars(None)).starts_with("v4l2src device=\"/dev/video3\" "));
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

    /// Found writing the hostile test of templates (`tests/hostile_template.rs`).
    #[test]
    fn regressions() {
        // A line of a million `{` then a `}`: the search for the `}` after each
        // `{` made `placeholders` quadratic (38 s); one pass now.
        let line = format!("{}x}} {{uri}} {{a b}} {{}}", "{".repeat(1 << 20));
        let start = std::time::Instant::now();
        assert_eq!(placeholders(&line), ["x", "uri"]);
        assert!(start.elapsed() < std::time::Duration::from_secs(2), "{:?}", start.elapsed());
        assert!(check(&line).unwrap_err().starts_with("unknown placeholder(s) {x}; known:"));
        // Not files: read to its end, /dev/zero takes all the memory there is; a FIFO waits for a writer.
        let e = load(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e, "template /dev/zero: not a regular file");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(load(&fifo).unwrap_err().ends_with(": not a regular file"));
        assert!(load(dir.path()).unwrap_err().ends_with(": not a regular file"));
        // Large files and bytes that are not text: named.
        let big = dir.path().join("big.pipeline");
        let valid = "videotestsrc ! videoconvertscale name=letterbox ! appsink name=sink\n";
        std::fs::write(&big, valid.repeat(1000)).unwrap();
        assert!(load(&big).unwrap_err().ends_with(": over 65536 bytes; a pipeline template is a few lines"));
        std::fs::write(&big, [valid.as_bytes(), &[0xff, 0xfe]].concat()).unwrap();
        assert!(load(&big).unwrap_err().contains(": not UTF-8 text: "));
    }
}
