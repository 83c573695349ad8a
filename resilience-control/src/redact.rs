//! [`redact_url`]: the one rule for showing a connection URL to people.

/// `url` with any password replaced by `***` (the user name, host, port and path stay), so it
/// can be printed, logged or put in an error. A password in the query (`?password=...`) is
/// hidden too. Text that is not a URL comes back with anything shaped like `user:password@`
/// hidden all the same.
///
/// # Examples
///
/// ```
/// use resilience_control::redact_url;
///
/// assert_eq!(redact_url("redis://:S3cret@10.0.0.5:6379/0"), "redis://:***@10.0.0.5:6379/0");
/// assert_eq!(redact_url("rediss://app:pw@cache:6380"), "rediss://app:***@cache:6380");
/// assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// assert_eq!(redact_url("redis://h/?password=x&db=1"), "redis://h/?password=***&db=1");
/// assert_eq!(redact_url("redis:/app:pw@h:1"), "redis:/app:***@h:1", "a typo in the scheme");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL after all (a typo in the scheme, say): still hide what looks like
        // `user:password@`.
        return redact_credentials(url);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    // Whatever the URL's shape, nothing like `user:password@` survives anywhere in it.
    redact_credentials(&format!("{scheme}://{authority}{tail}"))
}

/// `text` with every URL's password hidden (see [`redact_url`]), and the value of any
/// `token`, `password`, `secret` or `routing_key` assignment it quotes replaced by `***`: for
/// messages that echo what they were given, such as a TOML parser's account of a bad line.
///
/// # Examples
///
/// ```
/// use resilience_control::redact_text;
///
/// let message = "3 | redis_url = \"redis://:pw@db:6379\nand admin_token = \"abcdefgh\"";
/// let shown = redact_text(message);
/// assert!(!shown.contains("pw@") && !shown.contains("abcdefgh"), "{shown}");
/// // A URL broken across lines leaves bare credentials: hidden too.
/// assert_eq!(redact_text("4 | app:pw@db:6379\""), "4 | app:***@db:6379\"");
/// ```
pub fn redact_text(text: &str) -> String {
    let urls = redact_credentials(&redact_urls(text));
    urls.split_inclusive('\n')
        .map(|line| {
            let lower = line.to_ascii_lowercase();
            let secret = ["token", "password", "secret", "routing_key"]
                .iter()
                .any(|word| lower.contains(word));
            match line.find('=') {
                Some(at) if secret => {
                    let end = if line.ends_with('\n') { "\n" } else { "" };
                    format!("{}= ***{end}", &line[..at])
                }
                _ => line.to_owned(),
            }
        })
        .collect()
}

/// Every bare `user:password@host` in `text` (a URL broken across lines, say) with the password
/// hidden.
fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&redact_word(word));
    }
    out
}

/// `word` with the password before each `@` hidden: from the first `:` of the segment that
/// ends at the `@` (segments start after `/ " ' ` ( = @` or whitespace).
fn redact_word(word: &str) -> String {
    let mut hidden: Vec<(usize, usize)> = Vec::new();
    for (at, _) in word.match_indices('@') {
        let start = word[..at]
            .char_indices()
            .rev()
            .find(|&(_, c)| c.is_whitespace() || "/\"'`(=@".contains(c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        if let Some(colon) = word[start..at].find(':') {
            let from = start + colon + 1;
            if from < at && &word[from..at] != "***" {
                hidden.push((from, at));
            }
        }
    }
    let mut out = String::with_capacity(word.len());
    let mut last = 0;
    for (from, to) in hidden {
        out.push_str(&word[last..from]);
        out.push_str("***");
        last = to;
    }
    out.push_str(&word[last..]);
    out
}

/// Every `scheme://user:password@` in `text` with the password hidden.
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || "/?#\"'`<>".contains(c))
            .unwrap_or(after.len());
        let (authority, tail) = after.split_at(end);
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***@{host}")),
                None => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shapes the `config` fuzz target found leaking (or panicking) before the rule covered them.
    #[test]
    fn found_by_fuzzing() {
        for (text, secret) in [
            ("3 | fail:pw1@h:1\"", "pw1"),           // a URL broken across lines
            ("2 | fail:x:pw2@h:1\"ET@h:1\"", "pw2"), // two `@` in one word
            ("redis:/.:pw3@h:1", "pw3"),             // a typo in the scheme
            ("is://uET?x = \t:pw4@\r", "pw4"),       // credentials in a garbage query
            ("\"redis://qREpw5T@h:1\u{85}s:\u{0}u:pw5@h,:x", "pw5"), // multi-byte whitespace
        ] {
            let shown = redact_text(text);
            assert!(
                !shown.contains(&format!(":{secret}@")),
                "{text:?} -> {shown:?}"
            );
            let shown = redact_url(text);
            assert!(
                !shown.contains(&format!(":{secret}@")),
                "{text:?} -> {shown:?}"
            );
        }
    }
}
