//! The one redaction rule: what of a URL never reaches a log line, a metric,
//! an error or an API response. Ingest, the registry, the stages' status
//! endpoints and logs all use it.
//!
//! A URL keeps its scheme, user name, host, path and harmless query
//! parameters; the password of its user info and the values of query
//! parameters that look secret (`token=`, `password=`, `key=`, …) become `***`.

/// What replaces a secret.
pub const MASK: &str = "***";

/// Query parameters whose values are secrets (compared case-insensitively).
pub const SECRET_PARAMS: &[&str] =
    &["password", "passwd", "pass", "pwd", "secret", "token", "key", "apikey", "api_key", "auth", "access_token"];

/// The URL with its password and secret query values replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let url = redact_userinfo(url);
    let Some(q) = url.find('?') else { return url };
    let (head, rest) = url.split_at(q + 1);
    let (query, fragment) = match rest.find('#') {
        Some(h) => rest.split_at(h),
        None => (rest, ""),
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !v.is_empty() && SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                format!("{k}={MASK}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}{}{fragment}", query.join("&"))
}

/// The URL with the password of its user info replaced by `***`.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a well-formed URL (a mistyped scheme, control characters): a
        // `user:password@` in it is hidden all the same.
        return redact_bare_userinfo(url);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') { format!("{user}:{MASK}") } else { user.to_owned() };
            format!("{scheme}://{masked}@{}{tail}", &authority[at + 1..])
        }
        // No user info in the authority; one after it (`rtsp:///user:pw@h/s`,
        // an empty authority: found at volume) is hidden all the same.
        None => format!("{scheme}://{authority}{}", redact_bare_userinfo(tail)),
    }
}

/// `…user:password@host…` without a `://` before it: the password hidden.
fn redact_bare_userinfo(text: &str) -> String {
    let Some(at) = text.rfind('@') else { return text.to_owned() };
    let start = text[..at].rfind('/').map_or(0, |s| s + 1);
    match text[start..at].find(':') {
        Some(colon) => format!("{}{MASK}{}", &text[..start + colon + 1], &text[at..]),
        None => text.to_owned(),
    }
}

/// Replaces every URL inside free text (a parser's error quoting a request, a
/// GStreamer message naming its location) by its redacted form.
pub fn scrub_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find("://") {
        // The URL starts at the scheme: letters, digits, '+', '-', '.' before "://".
        let start = rest[..p]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || "+-.".contains(*c))
            .last()
            .map_or(p, |(i, _)| i);
        let end = rest[p..].find(|c: char| c.is_whitespace() || "\"'`<>\\".contains(c)).map_or(rest.len(), |e| p + e);
        scrub_bare(&rest[..start], &mut out);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    scrub_bare(rest, &mut out);
    out
}

/// Text with no `://`: each word holding `user:password@` gets its password
/// hidden all the same (a refused field's value `"//user:pw@10.0.0.5/s1"`,
/// its scheme cut off into another field, showed the password; found at
/// volume, seed 0x5747524545545343).
fn scrub_bare(text: &str, out: &mut String) {
    let stop = |c: char| c.is_whitespace() || "\"'`<>\\".contains(c);
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let start = rest[..at].char_indices().rev().find(|&(_, c)| stop(c)).map_or(0, |(i, c)| i + c.len_utf8());
        // The '@' is not a stop, so the word goes past it: each turn moves on.
        let end = rest[at..].find(stop).map_or(rest.len(), |e| at + e);
        out.push_str(&rest[..start]);
        out.push_str(&redact_bare_userinfo(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_secret_parameters_never_show() {
        assert_eq!(redact_url("rtsp://admin:hunter2@10.0.0.5:554/s1"), "rtsp://admin:***@10.0.0.5:554/s1");
        assert_eq!(redact_url("rtsp://admin@10.0.0.5/s1"), "rtsp://admin@10.0.0.5/s1", "no password, nothing hidden");
        assert_eq!(
            redact_url("https://cam.example/mjpeg?channel=2&Token=abc&key=k1#top"),
            "https://cam.example/mjpeg?channel=2&Token=***&key=***#top"
        );
        assert_eq!(redact_url("http://u:p@h/x?password=s"), "http://u:***@h/x?password=***");
        assert_eq!(redact_url("/videos/clip.mp4"), "/videos/clip.mp4");
        assert_eq!(redact_url("rtsp://h/x?token="), "rtsp://h/x?token=", "an empty value hides nothing");
        // Found by the volume fuzz run (docs/fuzzing.md): no "://", the password showed.
        assert_eq!(redact_url("rtsp\x7f//user:pw@10.0.0.5/s1"), "rtsp\x7f//user:***@10.0.0.5/s1");
        assert_eq!(redact_url("user:pw@10.0.0.5"), "user:***@10.0.0.5");
        assert_eq!(redact_url("/videos/a@b.mp4"), "/videos/a@b.mp4");
        assert_eq!(redact_url("rtsp:///user:pw@10.0.0.5:554/s1"), "rtsp:///user:***@10.0.0.5:554/s1");
        assert_eq!(redact_url("file:///srv/a@b.mp4"), "file:///srv/a@b.mp4");
    }

    #[test]
    fn urls_inside_text_are_scrubbed() {
        let t = "could not open \"rtsp://a:pw@h/s?token=t\": refused; see http://docs/x";
        assert_eq!(scrub_text(t), "could not open \"rtsp://a:***@h/s?token=***\": refused; see http://docs/x");
        // Found at volume: a URL whose scheme was cut off into another field.
        assert_eq!(scrub_text("\"//user:pw@10.0.0.5:554/s1\""), "\"//user:***@10.0.0.5:554/s1\"");
        assert_eq!(scrub_text("a user:pw@h and b@c, é x:y@z"), "a user:***@h and b@c, é x:***@z");
        assert_eq!(scrub_text("mail me@example.org"), "mail me@example.org");
    }
}
