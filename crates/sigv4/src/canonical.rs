//! The SigV4 canonical request (non-S3 rules: normalized path, URI-encoded again).

use crate::{RequestParts, SigV4Error};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but the unreserved characters A-Z a-z 0-9 - _ . ~ is encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn request(
    req: &RequestParts,
    signed_headers: &[String],
    payload_hash: &str,
) -> Result<String, SigV4Error> {
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&uri(req.path));
    out.push('\n');
    out.push_str(&query(req.query.unwrap_or("")));
    out.push('\n');
    for name in signed_headers {
        let mut values = req.values(name).peekable();
        if values.peek().is_none() {
            return Err(SigV4Error::InvalidSignature(format!(
                "signed header '{name}' is missing from the request"
            )));
        }
        out.push_str(name);
        out.push(':');
        let joined: Vec<String> = values
            .map(|v| trim_value(&String::from_utf8_lossy(v)))
            .collect();
        out.push_str(&joined.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

/// Trims and collapses inner runs of spaces.
fn trim_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Normalizes dot segments, then encodes each segment (the wire path is encoded once already,
/// so this is AWS's "double encoding" for non-S3 services).
fn uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(
        &segments
            .iter()
            .map(|s| utf8_percent_encode(s, UNRESERVED).to_string())
            .collect::<Vec<_>>()
            .join("/"),
    );
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

fn query(q: &str) -> String {
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let enc = |s: &str| {
                let decoded = percent_decode_str(s).decode_utf8_lossy().to_string();
                utf8_percent_encode(&decoded, UNRESERVED).to_string()
            };
            (enc(k), enc(v))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries() {
        assert_eq!(uri("/"), "/");
        assert_eq!(uri(""), "/");
        assert_eq!(uri("/a/./b/../c"), "/a/c");
        assert_eq!(uri("/a%20b/"), "/a%2520b/");
        assert_eq!(query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(query("x=a%20b"), "x=a%20b");
        assert_eq!(trim_value("  a   b  "), "a b");
    }
}
