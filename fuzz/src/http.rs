//! What the HTTP targets (`blob_request`, `rest_request`) share: the byte layout they read a
//! request from (a flags byte, then the request target (`/path?query`) up to the first `\n`,
//! then `name: value` header lines up to an empty line, then the body), and sending it through
//! a router in process.

/// A request as the input spells it (nothing validated yet).
pub(crate) struct RawRequest<'a> {
    /// The first byte: which method, and target-specific bits.
    pub flags: u8,
    /// The request target.
    pub target: &'a [u8],
    /// Header names and values (values trimmed); lines without a colon are skipped.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Everything after the empty line.
    pub body: &'a [u8],
}

/// Splits `data` into a [`RawRequest`]; `None` for empty input.
pub(crate) fn parse(data: &[u8]) -> Option<RawRequest<'_>> {
    let (&flags, rest) = data.split_first()?;
    let (target, mut rest) = split_line(rest);
    let mut headers = Vec::new();
    loop {
        let (line, after) = split_line(rest);
        rest = after;
        if line.is_empty() {
            break;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            headers.push((
                line[..colon].to_vec(),
                line[colon + 1..].trim_ascii().to_vec(),
            ));
        }
    }
    Some(RawRequest {
        flags,
        target,
        headers,
        body: rest,
    })
}

fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[]),
    }
}

/// The single-threaded runtime a target's fixture drives its router on.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Sends `request` through `router` on `runtime` and reads the answer's body (at most
/// `max_body` bytes); returns the status.
pub(crate) fn send(
    runtime: &tokio::runtime::Runtime,
    router: axum::Router,
    request: axum::http::Request<axum::body::Body>,
    max_body: usize,
) -> axum::http::StatusCode {
    use tower::ServiceExt as _;
    runtime.block_on(async {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let _ = axum::body::to_bytes(response.into_body(), max_body).await;
        status
    })
}
