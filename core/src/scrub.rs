//! Removes secret values from text meant for people (status, events, logs, plan renderings,
//! errors) in every form a value takes on its way there: as written, JSON-escaped (a PEM key's
//! newlines become `\n`, quotes `\"`; escaped twice when JSON sits inside JSON), base64 (how
//! Kubernetes carries Secret data), and line by line (a tool may print one line of a
//! multi-line key). The one scrubber of driftless: the runner, the backends, the Git source
//! and the notifier all use it.

use base64::Engine;

/// The mask a scrubbed value is replaced with.
pub const MASK: &str = "***";

/// Values shorter than this are not scrubbed: replacing every `ab` in a message would
/// mangle it and hide nothing worth hiding.
const SHORTEST: usize = 3;

/// The secrets to remove, in every form, longest first (so a value's parts do not break
/// the whole of a longer one).
#[derive(Clone, Default)]
pub struct Scrubber {
    needles: Vec<String>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} forms)", self.needles.len())
    }
}

impl Scrubber {
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::shortest(secrets, SHORTEST)
    }

    /// Credentials (a password, a token): every one is removed however short it is, since a
    /// message about a login is where it would show.
    pub fn credentials<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::shortest(secrets, 1)
    }

    fn shortest<I, S>(secrets: I, shortest: usize) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut needles: Vec<String> = secrets.into_iter().flat_map(|s| forms(s.as_ref())).filter(|n| n.len() >= shortest).collect();
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Self { needles }
    }

    /// Adds more secrets.
    pub fn with<I, S>(self, more: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let all: Vec<String> = self.needles.into_iter().chain(more.into_iter().map(|s| s.as_ref().to_string())).collect();
        Self::new(all)
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every form of every secret replaced by [`MASK`].
    pub fn scrub(&self, text: &str) -> String {
        self.scrub_with(text, MASK)
    }

    /// The same, with another mask (`<redacted>` where that is the established word).
    pub fn scrub_with(&self, text: &str, mask: &str) -> String {
        let mut out = text.to_string();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), mask);
            }
        }
        out
    }
}

/// Every form `secret` can take in text.
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    let escaped = json_escaped(secret);
    out.push(json_escaped(&escaped));
    out.push(escaped);
    for engine in [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE] {
        let encoded = engine.encode(secret.as_bytes());
        out.push(encoded.trim_end_matches('=').to_string());
        out.push(encoded);
    }
    // A multi-line value (a PEM key) also leaks a line at a time; short lines (`-----BEGIN
    // ...-----` headers are long, but blank or tiny ones) say nothing.
    if secret.contains('\n') {
        for line in secret.lines().map(str::trim).filter(|l| l.len() >= 8 && !l.starts_with("-----")) {
            out.push(json_escaped(line));
            out.push(line.to_string());
        }
    }
    out
}

/// The JSON string body of `s` (without its quotes).
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nQyNTUxOQAAACBhc2VjcmV0a2V5bWF0ZXJpYWw\n-----END OPENSSH PRIVATE KEY-----\n";
    const QUOTED: &str = r#"pa"ss\word"#;

    #[test]
    fn a_multi_line_key_is_scrubbed_raw_json_escaped_base64_and_line_by_line() {
        let s = Scrubber::new([KEY]);
        let json = serde_json::json!({ "content": KEY }).to_string();
        assert!(json.contains("\\n"), "the JSON form escapes newlines: {json}");
        let in_json_in_json = serde_json::json!({ "rendering": json.clone() }).to_string();
        let base64 = base64::engine::general_purpose::STANDARD.encode(KEY);
        let one_line = "error: key line QyNTUxOQAAACBhc2VjcmV0a2V5bWF0ZXJpYWw rejected";
        for text in [KEY.to_string(), json, in_json_in_json, format!("data: {base64}"), one_line.to_string()] {
            let scrubbed = s.scrub(&text);
            assert!(!scrubbed.contains("QyNTUxOQAAACBhc2VjcmV0a2V5bWF0ZXJpYWw"), "{scrubbed}");
            assert!(!scrubbed.contains("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"), "{scrubbed}");
            assert!(!scrubbed.contains(&base64[..20]), "{scrubbed}");
            assert!(scrubbed.contains(MASK), "{scrubbed}");
        }
    }

    #[test]
    fn a_value_with_quotes_and_backslashes_is_scrubbed_in_its_escaped_form() {
        let s = Scrubber::new([QUOTED]);
        let json = serde_json::json!({ "password": QUOTED }).to_string();
        assert!(json.contains(r#"pa\"ss\\word"#), "{json}");
        assert_eq!(s.scrub(&json), r#"{"password":"***"}"#);
        assert_eq!(s.scrub(&format!("the value {QUOTED} is wrong")), "the value *** is wrong");
    }

    #[test]
    fn short_values_are_left_and_longer_ones_win_over_their_parts() {
        let s = Scrubber::new(["ab", "secret", "secret-and-more"]);
        assert_eq!(s.scrub("ab secret-and-more secret"), "ab *** ***");
        assert!(Scrubber::new(Vec::<String>::new()).is_empty());
        assert!(!format!("{:?}", Scrubber::new(["topsecret"])).contains("topsecret"), "Debug shows no secret");
    }
}
