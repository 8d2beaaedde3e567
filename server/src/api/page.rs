//! `limit` and `offset` of list endpoints: default 50, max 500.

use super::error::ApiError;

/// Default page size.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest page size.
pub const MAX_LIMIT: u64 = 500;

/// Largest offset: the databases take signed 64-bit offsets.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// Validates `limit`/`offset` query values into `(limit, offset)`.
pub fn page(limit: Option<u64>, offset: Option<u64>) -> Result<(u64, u64), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    let offset = offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::validation(format!(
            "offset must be at most {MAX_OFFSET}, got {offset}"
        )));
    }
    Ok((limit, offset))
}
