//! One HTTP/1.1 request to the admin API per call, over hyper's connection API
//! (already a dependency for the admin listener), with connect and answer timeouts.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::CliError;

/// Connecting to a loopback admin API takes microseconds; a firewall that drops packets would hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A purge of a large cache can take a while; anything longer is a stuck server.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// The admin API caps its own answers; this only bounds a misbehaving peer.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Where the admin API is and how to authenticate.
#[derive(Clone, Debug)]
pub struct Admin {
    /// The address connected to (named in connection errors).
    pub addr: SocketAddr,
    /// Bearer token; `None` sends no `Authorization` (only `/healthz` then answers).
    pub token: Option<String>,
}

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// `{"data": ...}`, kept as raw text so that values print exactly as stored.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl Answer {
    /// The raw `data` text of a success envelope.
    ///
    /// # Errors
    /// The body is not a `{"data": ...}` object.
    pub fn data(&self) -> Result<&str, CliError> {
        serde_json::from_slice::<Envelope<'_>>(&self.body)
            .map(|e| e.data.get())
            .map_err(|e| CliError::Failed(format!("unexpected answer from the admin API: {e}")))
    }

    /// The `data` parsed into `T`.
    ///
    /// # Errors
    /// The body does not have the expected shape.
    pub fn parse<T: for<'de> Deserialize<'de>>(&self) -> Result<T, CliError> {
        serde_json::from_str(self.data()?)
            .map_err(|e| CliError::Failed(format!("unexpected answer from the admin API: {e}")))
    }
}

impl Admin {
    /// Send one request; a non-2xx status becomes [`CliError::Api`] with the API's message.
    ///
    /// # Errors
    /// Connection failures (naming the address), timeouts, and error answers.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<String>,
        headers: &[(&str, String)],
    ) -> Result<Answer, CliError> {
        let answer = self.send(method, path_and_query, body, headers).await?;
        if answer.status.is_success() || answer.status == StatusCode::NOT_MODIFIED {
            return Ok(answer);
        }
        let (code, message) = match serde_json::from_slice::<ErrorEnvelope>(&answer.body) {
            Ok(e) => (e.error.code, e.error.message),
            Err(_) => (
                "unknown".to_owned(),
                String::from_utf8_lossy(&answer.body).trim().to_owned(),
            ),
        };
        Err(CliError::Api {
            status: answer.status.as_u16(),
            code,
            message,
        })
    }

    /// `GET` shorthand.
    ///
    /// # Errors
    /// As [`Admin::call`].
    pub async fn get(&self, path_and_query: &str) -> Result<Answer, CliError> {
        self.call(Method::GET, path_and_query, None, &[]).await
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<String>,
        headers: &[(&str, String)],
    ) -> Result<Answer, CliError> {
        let addr = self.addr;
        let connect_err = |e: &dyn std::fmt::Display| {
            CliError::Connect(format!("cannot connect to the admin API at {addr}: {e}"))
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err(&"timed out"))?
            .map_err(|e| connect_err(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect_err(&e))?;
        let driver = tokio::spawn(conn);

        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::HOST, addr.to_string())
            .header(
                header::USER_AGENT,
                concat!("aside/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(token) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CliError::Usage(format!("invalid request: {e}")))?;

        let exchange = async {
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Answer { status, body })
        };
        let result = tokio::time::timeout(ANSWER_TIMEOUT, exchange).await;
        driver.abort();
        match result {
            Err(_) => Err(CliError::Connect(format!(
                "the admin API at {addr} did not answer within {}s",
                ANSWER_TIMEOUT.as_secs()
            ))),
            Ok(Err(e)) => Err(CliError::Connect(format!(
                "request to the admin API at {addr} failed: {e}"
            ))),
            Ok(Ok(answer)) => Ok(answer),
        }
    }
}
