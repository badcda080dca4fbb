//! What a handler needs from an HTTP request, and Sawtooth's `link` URLs built from it.
//!
//! [`RequestInfo`] keeps the decoded query in order (first value wins, as aiohttp's
//! `request.url.query.get`), the host and scheme (honouring `Forwarded` and `X-Forwarded-*`), and
//! builds URLs exactly like `RouteHandler._build_url` in sawtooth-core's `route_handlers.py`:
//! the original query overridden by the changes, then ordered `head`, `start`, `limit`, then
//! the remaining keys alphabetically; an empty value is written as the bare key.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

/// The parts of a request that handlers read and links echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    scheme: String,
    host: String,
    forwarded_path: String,
    path: String,
    query: Vec<(String, String)>,
}

impl RequestInfo {
    /// Builds the info from a request's head.
    pub fn from_parts(parts: &Parts) -> Self {
        let headers = &parts.headers;
        let scheme = forwarded(headers, "proto").unwrap_or_else(|| "http".to_owned());
        let host = forwarded(headers, "host")
            .or_else(|| {
                headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_else(|| "localhost".to_owned());
        let forwarded_path = forwarded(headers, "path").unwrap_or_default();
        let query = parts
            .uri
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        RequestInfo {
            scheme,
            host,
            forwarded_path,
            path: parts.uri.path().to_owned(),
            query,
        }
    }

    /// The first value of a query parameter.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// This request's URL with the query changed (`Some` sets a key, `None` leaves it as is).
    pub fn link(&self, changes: &[(&str, Option<String>)]) -> String {
        self.link_to(&self.path, changes)
    }

    /// A URL on this server for `path`, with this request's query changed as in [`Self::link`].
    pub fn link_to(&self, path: &str, changes: &[(&str, Option<String>)]) -> String {
        let mut queries: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in &self.query {
            queries.entry(key.clone()).or_insert_with(|| value.clone());
        }
        for (key, value) in changes {
            if let Some(value) = value {
                queries.insert((*key).to_owned(), value.clone());
            }
        }
        let mut parts = Vec::with_capacity(queries.len());
        for key in ["head", "start", "limit"] {
            if let Some(value) = queries.remove(key) {
                parts.push(query_part(key, &value));
            }
        }
        parts.extend(queries.iter().map(|(k, v)| query_part(k, v)));
        let query = if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        };
        format!(
            "{}://{}{}{}{}",
            self.scheme, self.host, self.forwarded_path, path, query
        )
    }
}

fn query_part(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_owned()
    } else {
        format!("{key}={value}")
    }
}

/// `RouteHandler._get_forwarded`: the `key=` value of `Forwarded` (quotes stripped), else
/// `X-Forwarded-<Key>`; `None` when neither is present or both are empty.
fn forwarded(headers: &HeaderMap, key: &str) -> Option<String> {
    if let Some(value) = headers.get("forwarded").and_then(|h| h.to_str().ok()) {
        if let Some(found) = forwarded_param(value, key) {
            return Some(found);
        }
    }
    let name = format!("x-forwarded-{key}");
    headers
        .get(name.as_str())
        .and_then(|h| h.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The regex `(?<=key=).+?(?=[\s,;]|$)`, case-insensitive, first match.
fn forwarded_param(header: &str, key: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    let needle = format!("{}=", key.to_ascii_lowercase());
    let mut from = 0;
    while let Some(pos) = lower[from..].find(&needle) {
        let value_start = from + pos + needle.len();
        let rest = &header[value_start..];
        let mut chars = rest.char_indices();
        if chars.next().is_some() {
            let end = chars
                .find(|(_, c)| c.is_whitespace() || *c == ',' || *c == ';')
                .map_or(rest.len(), |(i, _)| i);
            let value = &rest[..end];
            if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
                return Some(value[1..value.len() - 1].to_owned());
            }
            return Some(value.to_owned());
        }
        from = value_start;
    }
    None
}

impl<S: Send + Sync> FromRequestParts<S> for RequestInfo {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestInfo::from_parts(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn info(uri: &str, headers: &[(&str, &str)]) -> RequestInfo {
        let mut builder = Request::builder().uri(uri).header("host", "api:8008");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        RequestInfo::from_parts(&parts)
    }

    #[test]
    fn links_order_head_start_limit_then_alphabetical() {
        let req = info("/state?reverse&address=1cf1&limit=5&wait=3&head=ab", &[]);
        let link = req.link(&[
            ("start", Some("0x01".into())),
            ("limit", Some("100".into())),
            ("head", None),
        ]);
        assert_eq!(
            link,
            "http://api:8008/state?head=ab&start=0x01&limit=100&address=1cf1&reverse&wait=3"
        );
    }

    #[test]
    fn first_value_wins_and_values_are_decoded() {
        let req = info("/batches?id=a%2Cb&id=c", &[]);
        assert_eq!(req.query("id"), Some("a,b"));
        assert_eq!(req.link(&[]), "http://api:8008/batches?id=a,b");
    }

    #[test]
    fn forwarded_headers_override_scheme_host_and_prefix_the_path() {
        let req = info(
            "/blocks",
            &[
                ("forwarded", "for=1.2.3.4;proto=https;host=\"example.org\""),
                ("x-forwarded-path", "/api"),
            ],
        );
        assert_eq!(
            req.link_to("/batch_statuses", &[("id", Some("x".into()))]),
            "https://example.org/api/batch_statuses?id=x"
        );
        let req = info(
            "/blocks",
            &[("x-forwarded-proto", "https"), ("x-forwarded-host", "h")],
        );
        assert_eq!(req.link(&[]), "https://h/blocks");
    }
}
