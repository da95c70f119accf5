//! GStreamer pipeline templates, kept as text in `pipelines/templates/`.
//!
//! A template is a `gst-launch` description with `{placeholders}`; lines
//! starting with `#` are comments.

/// The template for any URI that `uridecodebin` understands.
pub const URI: &str = include_str!("../../../pipelines/templates/uri.pipeline");

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_uri_template() {
        let vars = |format: &str, encode: &str| {
            vec![
                ("uri", "file:///a.mp4".to_owned()),
                ("width", "640".to_owned()),
                ("height", "640".to_owned()),
                ("format", format.to_owned()),
                ("encode", encode.to_owned()),
            ]
        };
        let p = render(URI, &vars("RGB", ""));
        assert!(p.contains("uri=\"file:///a.mp4\""));
        assert!(p.contains("format=RGB,width=640,height=640"));
        assert!(!p.contains('{'), "{p}");
        assert!(!p.contains('#'));
        let p = render(URI, &vars("I420", "! jpegenc quality=90"));
        assert!(p.contains("format=I420,width=640,height=640,pixel-aspect-ratio=1/1 ! jpegenc quality=90"), "{p}");
    }
}
