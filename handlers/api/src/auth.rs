//! Who may call the API.
//!
//! In AWS the stack protects the HTTP API with IAM authorization: API Gateway checks the
//! SigV4 signature and hands the caller's identity to the function in
//! `requestContext.authorizer.iam`. A request without it did not come through that route
//! (a misconfigured stage, a direct invoke) and is refused. Locally there is no IAM: a bearer
//! token from the environment stands in, compared in constant time.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use sha2::{Digest, Sha256};

/// How requests are authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// API Gateway's IAM authorizer must have accepted the request.
    Iam,
    /// `Authorization: Bearer <token>` with this token (its SHA-256, so comparisons take the
    /// same time whatever the input's length).
    Bearer([u8; 32]),
}

impl Auth {
    /// Bearer authentication with `token`.
    #[must_use]
    pub fn bearer(token: &str) -> Self {
        Self::Bearer(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `req` is authenticated.
    pub fn allows(&self, req: &Request) -> bool {
        match self {
            Self::Iam => matches!(
                req.request_context_ref(),
                Some(RequestContext::ApiGatewayV2(ctx))
                    if ctx.authorizer.as_ref().is_some_and(|a| a.iam.is_some())
            ),
            Self::Bearer(expected) => {
                let Some(token) = req
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        let (scheme, token) = v.trim().split_once(' ')?;
                        scheme
                            .eq_ignore_ascii_case("bearer")
                            .then_some(token.trim())
                    })
                else {
                    return false;
                };
                let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                given
                    .iter()
                    .zip(expected)
                    .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            }
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Iam => f.write_str("Auth::Iam"),
            Self::Bearer(_) => f.write_str("Auth::Bearer(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;

    fn with_header(value: Option<&str>) -> Request {
        let mut b = http::Request::builder().uri("/campaigns");
        if let Some(v) = value {
            b = b.header("authorization", v);
        }
        b.body(Body::Empty).unwrap()
    }

    #[test]
    fn a_bearer_token_must_match_exactly() {
        let auth = Auth::bearer("s3cret");
        assert!(auth.allows(&with_header(Some("Bearer s3cret"))));
        assert!(auth.allows(&with_header(Some("bearer  s3cret "))));
        assert!(!auth.allows(&with_header(Some("Bearer s3cre"))));
        assert!(!auth.allows(&with_header(Some("Basic s3cret"))));
        assert!(!auth.allows(&with_header(Some("s3cret"))));
        assert!(!auth.allows(&with_header(None)));
    }

    #[test]
    fn iam_needs_the_authorizer_context() {
        assert!(!Auth::Iam.allows(&with_header(Some("Bearer s3cret"))));
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", Auth::bearer("s3cret")), "Auth::Bearer(..)");
    }
}
