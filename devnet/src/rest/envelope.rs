//! The response envelopes: `{data, head, link, paging}` and friends.
//!
//! Mirrors `_wrap_response`, `_wrap_paginated_response` and `_get_metadata` of sawtooth-core's
//! `route_handlers.py`, together with the validator's `_Pager.paginate_resources`. A [`Page`] is
//! what the validator reports (its actual `start` and `limit`, and `next`); the envelope `link`
//! carries those, while `paging` echoes the client's controls and adds `next_position` and
//! `next` when more items exist.

use axum::http::StatusCode;
use axum::response::Response;

use super::error::{json_response, ApiError};
use super::json::Json;
use super::params::PagingControls;
use super::request::RequestInfo;

/// The validator's `ClientPagingResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Position of the first item returned (empty when nothing was listed).
    pub start: String,
    /// The page size applied (0 when nothing was listed).
    pub limit: usize,
    /// Position of the first item of the next page (empty on the last page).
    pub next: String,
}

/// Cuts one page out of `items`, positions given by `position`: `start` must name an item
/// (code 54 otherwise); an empty list is an empty page whatever the controls.
pub fn paginate<T>(
    items: Vec<T>,
    controls: &PagingControls,
    position: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Page), ApiError> {
    if items.is_empty() {
        return Ok((items, Page::default()));
    }
    let limit = controls.page_size();
    let start_index = match controls.start() {
        Some(start) => items
            .iter()
            .position(|item| position(item) == start)
            .ok_or(ApiError::PagingInvalid)?,
        None => 0,
    };
    let next = items
        .get(start_index + limit)
        .map(&position)
        .unwrap_or_default();
    let start = position(&items[start_index]);
    let page: Vec<T> = items.into_iter().skip(start_index).take(limit).collect();
    Ok((page, Page { start, limit, next }))
}

/// A 200 JSON response of `envelope` (plus `data` when given).
pub fn wrap(envelope: Vec<(String, Json)>, data: Option<Json>) -> Response {
    wrap_with_status(StatusCode::OK, envelope, data)
}

/// A JSON response of `envelope` (plus `data` when given) with `status`.
pub fn wrap_with_status(
    status: StatusCode,
    mut envelope: Vec<(String, Json)>,
    data: Option<Json>,
) -> Response {
    if let Some(data) = data {
        envelope.push(("data".to_owned(), data));
    }
    json_response(status, Json::Obj(envelope).to_python_pretty())
}

/// `_get_metadata`: the request's own link (with `head` set when given), and `head` itself.
pub fn metadata(req: &RequestInfo, head: Option<&str>) -> Vec<(String, Json)> {
    let mut envelope = vec![(
        "link".to_owned(),
        Json::Str(req.link(&[("head", head.map(str::to_owned))])),
    )];
    if let Some(head) = head {
        envelope.push(("head".to_owned(), Json::str(head)));
    }
    envelope
}

/// `_wrap_paginated_response`: `{data, head, link, paging}`.
pub fn paginated(
    req: &RequestInfo,
    controls: &PagingControls,
    page: &Page,
    head: &str,
    data: Vec<Json>,
) -> Response {
    let link = req.link(&[
        ("head", Some(head.to_owned())),
        ("start", Some(page.start.clone())),
        ("limit", Some(page.limit.to_string())),
    ]);
    let mut paging = controls.echo();
    if !page.next.is_empty() {
        paging.push(("next_position".to_owned(), Json::str(page.next.as_str())));
        let next = req.link(&[
            ("head", Some(head.to_owned())),
            ("limit", controls.limit.map(|l| l.to_string())),
            ("start", Some(page.next.clone())),
        ]);
        paging.push(("next".to_owned(), Json::Str(next)));
    }
    wrap(
        vec![
            ("head".to_owned(), Json::str(head)),
            ("link".to_owned(), Json::Str(link)),
            ("paging".to_owned(), Json::Obj(paging)),
        ],
        Some(Json::Arr(data)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controls(start: Option<&str>, limit: Option<i64>) -> PagingControls {
        PagingControls {
            start: start.map(str::to_owned),
            limit,
        }
    }

    #[test]
    fn pages_follow_the_validator_pager() {
        let items: Vec<u32> = (0..250).collect();
        let (page, info) =
            paginate(items.clone(), &controls(None, None), |i| i.to_string()).unwrap();
        assert_eq!(page.len(), 100);
        assert_eq!(
            info,
            Page {
                start: "0".into(),
                limit: 100,
                next: "100".into()
            }
        );
        let (page, info) = paginate(items.clone(), &controls(Some("200"), Some(5000)), |i| {
            i.to_string()
        })
        .unwrap();
        assert_eq!(page.len(), 50);
        assert_eq!(
            info,
            Page {
                start: "200".into(),
                limit: 1000,
                next: String::new()
            }
        );
        assert_eq!(
            paginate(items, &controls(Some("x"), None), |i| i.to_string()).unwrap_err(),
            ApiError::PagingInvalid
        );
        let (page, info) = paginate(Vec::<u32>::new(), &controls(Some("x"), Some(3)), |i| {
            i.to_string()
        })
        .unwrap();
        assert!(page.is_empty());
        assert_eq!(info, Page::default());
    }
}
