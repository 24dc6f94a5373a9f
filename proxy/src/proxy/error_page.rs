//! Aside's own answers: the JSON error page of a failed request and its
//! status, and the JSON answer of `PURGE`.

use super::*;

/// Writes Aside's own JSON answer (`PURGE`, a request no route takes, a 504 for
/// `only-if-cached`) with `cache_status` as its `Cache-Status`.
pub(super) async fn respond_json(
    session: &mut Session,
    status: u16,
    cache_status: &str,
    body: serde_json::Value,
) -> Result<()> {
    let body = Bytes::from(body.to_string());
    let mut resp = ResponseHeader::build(status, Some(3))?;
    resp.insert_header(header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header("cache-status", cache_status)?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// Answer a failed request with Aside's JSON error (no response header has
/// left yet); counted as an `error` request.
pub(super) async fn write_error(
    session: &mut Session,
    status: u16,
    body: String,
    cache_status: &str,
    retry_after: Option<&str>,
) {
    if let Ok(mut resp) = ResponseHeader::build(status, Some(5)) {
        let _ = resp.insert_header(header::CONTENT_TYPE, "application/json");
        let _ = resp.insert_header(header::CONTENT_LENGTH, body.len().to_string());
        if let Some(seconds) = retry_after {
            let _ = resp.insert_header(header::RETRY_AFTER, seconds);
        }
        let _ = resp.insert_header("cache-status", cache_status);
        let _ = resp.insert_header("x-cache", "MISS");
        if session
            .write_response_header(Box::new(resp), false)
            .await
            .is_ok()
        {
            let _ = session
                .write_response_body(Some(Bytes::from(body)), true)
                .await;
        }
    }
    crate::metrics::record_request("error");
}

/// The status of the error answer for a failure before any response header
/// left; 0 when the client is gone and nothing can be written.
pub(super) fn error_status(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::WriteTimedout => 504,
        // A read timeout on the client side is a slow request (408); on the
        // origin side, a slow origin (504).
        ErrorType::ReadTimedout if e.esource() == &ErrorSource::Downstream => 408,
        ErrorType::ReadTimedout => 504,
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 502,
        },
    }
}
