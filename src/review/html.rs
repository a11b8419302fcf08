//! HTML output: one escaping function every interpolated string goes through, and the page
//! frame. No template crate is in the tree, and the pages are few and small: `format!` plus
//! [`escape`] keeps what is data and what is markup visible at each call site.

use std::fmt::Write as _;

/// Text safe inside an element or a quoted attribute value: `& < > " '` become entities.
/// Everything that came from an object, a user, a plan or a query goes through here.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `<option>`s of a filter `<select>`: an empty "any" option, then `values`, the chosen one
/// selected.
pub fn options(any: &str, values: &[&str], chosen: Option<&str>) -> String {
    let mut out = format!("<option value=\"\">{}</option>", escape(any));
    for v in values {
        let selected = if Some(*v) == chosen { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{v}\"{selected}>{v}</option>", v = escape(v));
    }
    out
}

/// A hidden CSRF input for a form (empty for bearer-token callers, who need none).
pub fn csrf_input(csrf: Option<&str>) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", escape(csrf.unwrap_or_default()))
}

/// The frame of every page. Styles and script are files of this server (the CSP allows
/// nothing else); `user` is shown with a logout button when there is a session.
pub fn page(title: &str, user: Option<(&str, Option<&str>)>, body: &str) -> String {
    let who = match user {
        Some((name, Some(csrf))) => format!(
            "<form class=\"logout\" method=\"post\" action=\"/logout\">{}<span class=\"user\">{}</span> <button type=\"submit\">Log out</button></form>",
            csrf_input(Some(csrf)),
            escape(name)
        ),
        Some((name, None)) => format!("<span class=\"user\">{}</span>", escape(name)),
        None => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · driftless review</title>\n<link rel=\"stylesheet\" href=\"/assets/review.css\">\n\
         <script src=\"/assets/review.js\" defer></script>\n</head>\n<body>\n\
         <header><a class=\"home\" href=\"/\">driftless review</a>{who}</header>\n{body}\n</body>\n</html>\n",
        title = escape(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_data_is_escaped_everywhere_it_can_break_out() {
        assert_eq!(escape(r#"<script>alert("x")</script> & 'q'"#), "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;");
        assert_eq!(escape("plain-name.1"), "plain-name.1");
        let select = options("any", &["a\"b"], Some("a\"b"));
        assert!(select.contains("value=\"a&quot;b\" selected"), "{select}");
        assert!(page("<t>", Some(("<u>", Some("c\""))), "").contains("&lt;u&gt;"));
        assert_eq!(crate::api::path_segment("a b/c"), "a%20b%2Fc");
    }
}
