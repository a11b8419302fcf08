//! Error text for people: one line naming every cause, never a value.

/// An error and its sources as one line (`a: b: c`), each cause once: libraries often repeat
/// their source's text in their own message.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// A Kubernetes API error as a person reads it: the API's own message and code.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn a_chain_names_each_cause_once() {
        let e = E(
            "dispatch failure: io error: connection refused",
            Some(Box::new(E("io error: connection refused", Some(Box::new(E("connection refused", None)))))),
        );
        assert_eq!(chain(&e), "dispatch failure: io error: connection refused");
        let e = E("request failed", Some(Box::new(E("timed out", None))));
        assert_eq!(chain(&e), "request failed: timed out");
    }
}
