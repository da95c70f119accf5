//! Ultralytics writes model metadata as Python literals: `names` is a dict repr
//! (`{0: 'bick', 1: 'bus'}`) and `imgsz` a list repr (`[640, 640]`).

/// Parses a Python dict repr of `int: str` pairs into names in id order.
/// Returns `None` if the text is not such a dict or the ids are not 0..n.
pub fn parse_names(text: &str) -> Option<Vec<String>> {
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut chars = body.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut id = String::new();
        while let Some(c) = chars.peek().copied().filter(|c| c.is_ascii_digit()) {
            id.push(c);
            chars.next();
        }
        let id: usize = id.parse().ok()?;
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next()? != ':' {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let quote = chars.next().filter(|q| *q == '\'' || *q == '"')?;
        let mut name = String::new();
        loop {
            match chars.next()? {
                '\\' => name.push(chars.next()?),
                c if c == quote => break,
                c => name.push(c),
            }
        }
        pairs.push((id, name));
    }
    pairs.sort_by_key(|(id, _)| *id);
    if pairs.is_empty() || pairs.iter().enumerate().any(|(i, (id, _))| i != *id) {
        return None;
    }
    Some(pairs.into_iter().map(|(_, n)| n).collect())
}

/// Parses `imgsz`: `[h, w]` or a single `n`.
pub fn parse_imgsz(text: &str) -> Option<(u32, u32)> {
    let t = text.trim().trim_start_matches(['[', '(']).trim_end_matches([']', ')']);
    let nums: Vec<u32> = t.split(',').map(|s| s.trim().parse().ok()).collect::<Option<_>>()?;
    match nums.as_slice() {
        [n] => Some((*n, *n)),
        [h, w] => Some((*h, *w)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_vehicle_models_names() {
        let names = parse_names("{0: 'bick', 1: 'bus', 2: 'car', 3: 'lorry', 4: 'tuktuk', 5: 'van'}").unwrap();
        assert_eq!(names, ["bick", "bus", "car", "lorry", "tuktuk", "van"]);
    }

    #[test]
    fn parses_quotes_commas_and_escapes() {
        let names = parse_names(r#"{1: "b, c", 0: 'it\'s'}"#).unwrap();
        assert_eq!(names, ["it's", "b, c"]);
    }

    #[test]
    fn refuses_gaps_and_garbage() {
        assert_eq!(parse_names("{0: 'a', 2: 'c'}"), None);
        assert_eq!(parse_names("['a', 'b']"), None);
        assert_eq!(parse_names("{0: a}"), None);
        assert_eq!(parse_names("{}"), None);
    }

    #[test]
    fn parses_imgsz() {
        assert_eq!(parse_imgsz("[640, 640]"), Some((640, 640)));
        assert_eq!(parse_imgsz("[384, 640]"), Some((384, 640)));
        assert_eq!(parse_imgsz("320"), Some((320, 320)));
        assert_eq!(parse_imgsz("[1, 2, 3]"), None);
    }
}
