//! Query parameters shared by the list endpoints: ids, paging, sorting and `wait`.
//!
//! Each parser reproduces both halves of Sawtooth's behaviour: the REST API's parsing
//! (`_get_paging_controls`, `_get_sorting_message`, `_set_wait`, `_validate_id`) and the
//! validator's interpretation (`_Pager`, `is_reverse`, `MAX_PAGE_SIZE`, `DEFAULT_PAGE_SIZE`).

use std::time::Duration;

use super::error::ApiError;
use super::json::Json;
use super::request::RequestInfo;

/// The validator's page size when the client gives no `limit`.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page the validator returns.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Whether `id` is a block, batch or transaction id: exactly 128 lowercase hex characters.
pub fn is_resource_id(id: &str) -> bool {
    id.len() == 128 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Fails with code 60 unless `id` is 128 lowercase hex characters.
pub fn validate_id(id: &str) -> Result<(), ApiError> {
    if is_resource_id(id) {
        Ok(())
    } else {
        Err(ApiError::InvalidResourceId(id.to_owned()))
    }
}

/// Whether `address` is a valid state address or prefix: `^([0-9a-f]{2}){0,35}$`.
pub fn is_address_prefix(address: &str) -> bool {
    address.len() % 2 == 0
        && address.len() <= 70
        && address
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The comma-separated `id` filter, each id validated; `None` when absent.
pub fn filter_ids(req: &RequestInfo) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = req.query("id") else {
        return Ok(None);
    };
    let ids: Vec<String> = raw.split(',').map(str::to_owned).collect();
    for id in &ids {
        validate_id(id)?;
    }
    Ok(Some(ids))
}

/// The validated `head` query, if any.
pub fn head_id(req: &RequestInfo) -> Result<Option<String>, ApiError> {
    match req.query("head") {
        Some(head) => {
            validate_id(head)?;
            Ok(Some(head.to_owned()))
        }
        None => Ok(None),
    }
}

/// The client's `start` and `limit` as given (echoed in `paging`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PagingControls {
    /// The `start` query, verbatim.
    pub start: Option<String>,
    /// The `limit` query, parsed.
    pub limit: Option<i64>,
}

impl PagingControls {
    /// Parses `start` and `limit`; a `limit` that is not a positive integer is code 53.
    pub fn parse(req: &RequestInfo) -> Result<Self, ApiError> {
        let limit = match req.query("limit") {
            Some(raw) => {
                let limit = parse_python_int(raw).ok_or(ApiError::CountInvalid)?;
                if limit <= 0 {
                    return Err(ApiError::CountInvalid);
                }
                Some(limit)
            }
            None => None,
        };
        Ok(PagingControls {
            start: req.query("start").map(str::to_owned),
            limit,
        })
    }

    /// The validator's page size: `min(limit, 1000) or 100`.
    pub fn page_size(&self) -> usize {
        match self.limit {
            Some(limit) => usize::try_from(limit).map_or(MAX_PAGE_SIZE, |l| l.min(MAX_PAGE_SIZE)),
            None => DEFAULT_PAGE_SIZE,
        }
    }

    /// The start position the validator uses (an empty `start` means none).
    pub fn start(&self) -> Option<&str> {
        self.start.as_deref().filter(|s| !s.is_empty())
    }

    /// The `paging` object's echo of the client's controls.
    pub fn echo(&self) -> Vec<(String, Json)> {
        vec![
            ("limit".to_owned(), self.limit.map_or(Json::Null, Json::Int)),
            (
                "start".to_owned(),
                self.start.clone().map_or(Json::Null, Json::Str),
            ),
        ]
    }
}

/// Python's `int(s)` for the values a client plausibly sends (sign, surrounding whitespace,
/// digits with single underscores between them).
pub fn parse_python_int(raw: &str) -> Option<i64> {
    let s = raw.trim();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    let value: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -value } else { value })
}

/// Whether the list is reversed: a bare `reverse` or `reverse=<key>` reverses, `reverse=false`
/// (any case) is ignored, any other sort key list is code 57.
pub fn reverse(req: &RequestInfo, key: &str) -> Result<bool, ApiError> {
    match req.query("reverse") {
        None => Ok(false),
        Some("") => Ok(true),
        Some(value) if value.to_lowercase() == "false" => Ok(false),
        Some(value) if value == key => Ok(true),
        Some(_) => Err(ApiError::SortInvalid),
    }
}

/// The `wait` query as the validator's timeout: `None` for no wait; a bare or unusable value
/// waits 95 % of the REST timeout; `0` waits the validator's default of 300 s.
pub fn wait(req: &RequestInfo, rest_timeout: Duration) -> Option<Duration> {
    let raw = req.query("wait").unwrap_or("false");
    if raw.to_lowercase() == "false" {
        return None;
    }
    let default = Duration::from_secs((rest_timeout.as_secs_f64() * 0.95) as u64);
    match parse_python_int(raw).and_then(|n| u32::try_from(n).ok()) {
        Some(0) => Some(Duration::from_secs(300)),
        Some(n) => Some(Duration::from_secs(u64::from(n))),
        None => Some(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_parsing() {
        assert_eq!(parse_python_int(" 42 "), Some(42));
        assert_eq!(parse_python_int("+7"), Some(7));
        assert_eq!(parse_python_int("-3"), Some(-3));
        assert_eq!(parse_python_int("1_000"), Some(1000));
        assert_eq!(parse_python_int("1__0"), None);
        assert_eq!(parse_python_int("0x10"), None);
        assert_eq!(parse_python_int(""), None);
    }

    #[test]
    fn ids_and_addresses() {
        assert!(is_resource_id(&"a".repeat(128)));
        assert!(!is_resource_id(&"A".repeat(128)));
        assert!(!is_resource_id(&"a".repeat(127)));
        assert!(is_address_prefix(""));
        assert!(is_address_prefix("1cf126"));
        assert!(!is_address_prefix("1cf12"));
        assert!(!is_address_prefix(&"0".repeat(72)));
    }
}
