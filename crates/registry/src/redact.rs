//! Passwords in camera URLs.
//!
//! The registry stores a camera's source URL as given — the ingest pods need
//! the password to connect, and the compacted topic is the only store — and
//! never shows it: every response, log line and error carries
//! [`redact_source`]'s form, in which the password of the user info and the
//! values of query parameters that look secret are `***`.
//!
//! A client that reads a camera and sends it back (an update) sends the
//! redacted form; [`restore_secrets`] puts the stored secrets back where the
//! rest of the URL is unchanged, so an update need not repeat the password.

pub use streetscope_contracts::redact::{scrub_text, MASK};

/// The source with its password and secret query values replaced by `***`:
/// the one redaction rule of every stage (`streetscope_contracts::redact`).
pub fn redact_source(url: &str) -> String {
    streetscope_contracts::redact::redact_url(url)
}

/// Whether the source holds a secret that [`redact_source`] hides.
pub fn has_secret(url: &str) -> bool {
    redact_source(url) != url
}

/// An updated source sent with `***` where the stored one had secrets: the
/// stored secrets are put back when everything else is unchanged (the client
/// sent what it read), or when only the part after the host changed and the
/// user is the same (a new stream path on the same camera).
/// `Err` when a `***` is left that cannot be resolved.
pub fn restore_secrets(sent: &str, stored: Option<&str>) -> Result<String, &'static str> {
    if !sent.contains(MASK) {
        return Ok(sent.to_owned());
    }
    if let Some(stored) = stored {
        if redact_source(stored) == sent {
            return Ok(stored.to_owned());
        }
        if let (Some(new), Some(old)) = (split_userinfo(sent), split_userinfo(stored)) {
            if new.password == Some(MASK) && old.password.is_some() && new.user == old.user && new.host == old.host {
                let restored =
                    format!("{}://{}:{}@{}{}", new.scheme, new.user, old.password.unwrap_or(""), new.host, new.tail);
                if !restored.contains(MASK) {
                    return Ok(restored);
                }
            }
        }
    }
    Err("`***` stands for a stored password: send the URL as read (unchanged), or the whole URL with its password")
}

struct UrlParts<'a> {
    scheme: &'a str,
    user: &'a str,
    password: Option<&'a str>,
    host: &'a str,
    tail: &'a str,
}

fn split_userinfo(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, host) = authority.rsplit_once('@')?;
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    Some(UrlParts { scheme, user, password, host, tail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_and_secret_params() {
        assert_eq!(redact_source("rtsp://admin:s3cret@10.0.0.5:554/s1"), "rtsp://admin:***@10.0.0.5:554/s1");
        assert_eq!(
            redact_source("http://cam/mjpg?user=a&PWD=s3cret&fps=5#x"),
            "http://cam/mjpg?user=a&PWD=***&fps=5#x"
        );
        assert_eq!(redact_source("rtsp://cam/s1?token=abc"), "rtsp://cam/s1?token=***");
        assert_eq!(redact_source("file:///a.mp4"), "file:///a.mp4");
        assert!(has_secret("rtsp://a:b@h/x"));
        assert!(!has_secret("rtsp://a@h/x"));
    }

    #[test]
    fn scrubs_urls_inside_text() {
        let t = "invalid type: string \"rtsp://admin:s3cret@h/x\", expected f64 at line 1; see https://u:p@w/y ok";
        let s = scrub_text(t);
        assert!(!s.contains("s3cret") && !s.contains(":p@"), "{s}");
        assert!(s.contains("rtsp://admin:***@h/x\""), "{s}");
        assert!(s.ends_with("https://u:***@w/y ok"), "{s}");
        assert_eq!(scrub_text("no urls"), "no urls");
    }

    #[test]
    fn restores_stored_secrets_only_where_unambiguous() {
        let stored = "rtsp://admin:s3cret@10.0.0.5:554/s1?token=t0k";
        let read = redact_source(stored);
        assert_eq!(restore_secrets(&read, Some(stored)).unwrap(), stored);
        assert_eq!(
            restore_secrets("rtsp://admin:***@10.0.0.5:554/s2", Some(stored)).unwrap(),
            "rtsp://admin:s3cret@10.0.0.5:554/s2"
        );
        assert!(restore_secrets("rtsp://root:***@10.0.0.5:554/s1", Some(stored)).is_err());
        assert!(restore_secrets("rtsp://admin:***@10.0.0.6:554/s1", Some(stored)).is_err());
        assert!(restore_secrets("rtsp://admin:***@10.0.0.5/x", None).is_err());
        assert_eq!(restore_secrets("rtsp://a:new@h/x", Some(stored)).unwrap(), "rtsp://a:new@h/x");
    }
}
