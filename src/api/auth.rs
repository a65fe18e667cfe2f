//! `Authorization: Bearer <token>` on every `/api/` route, checked
//! against `ext.api_tokens` in constant time.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use blake2::{Blake2b512, Digest};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::ApiState;

/// Both sides are hashed first, so the comparison takes the same time
/// whatever the lengths; every configured token is compared, so the time
/// does not tell which one (or whether any) matched.
pub fn token_accepted(given: &str, tokens: &[String]) -> bool {
    let given = Blake2b512::digest(given.as_bytes());
    let mut ok = subtle::Choice::from(0);
    for t in tokens {
        ok |= Blake2b512::digest(t.as_bytes()).ct_eq(&given);
    }
    bool::from(ok)
}

/// The middleware: 401 with `WWW-Authenticate: Bearer` unless the request
/// carries an accepted token.
pub async fn require_token(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    match check(&state, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Ok when `req` carries an accepted token; the 401 otherwise.
pub fn check(state: &ApiState, req: &Request) -> Result<(), ApiError> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let accepted = match given {
        Some(t) if !t.is_empty() => token_accepted(t, &state.shared().role.ext.api_tokens),
        _ => false,
    };
    if accepted {
        return Ok(());
    }
    let detail = if given.is_none() {
        "missing `Authorization: Bearer <token>`"
    } else {
        "token not accepted"
    };
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        detail,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly() {
        let tokens = vec!["alpha-token".to_owned(), "beta".to_owned()];
        assert!(token_accepted("alpha-token", &tokens));
        assert!(token_accepted("beta", &tokens));
        for bad in ["", "alpha", "alpha-token ", "Beta", "betaa"] {
            assert!(!token_accepted(bad, &tokens), "{bad}");
        }
        assert!(!token_accepted("beta", &[]));
    }
}
