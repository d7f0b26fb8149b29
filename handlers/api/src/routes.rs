//! The API's routes, as data: the handler routes on the request's own path (API Gateway's
//! path parameters may be absent, and the local HTTP API sends none), and the OpenAPI test
//! reads the same table.

use http::Method;

use crate::problem::ApiError;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ListCampaigns,
    CreateCampaign,
    GetCampaign,
    AppendContacts,
    PauseCampaign,
    ResumeCampaign,
    CancelCampaign,
    ListCalls,
    ExportResults,
    CreateCall,
    GetCall,
    HangUp,
    GetDoNotCall,
    AddDoNotCall,
    RemoveDoNotCall,
    GetPolicy,
    PutPolicy,
    ListNumbers,
    PutNumber,
    DeleteNumber,
    RestoreNumber,
}

/// One route: method, path template (`{name}` matches one path segment), endpoint, and
/// every status it can answer with (`docs/openapi.json` documents exactly these; a test
/// checks both that and the statuses the handler's tests see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub template: &'static str,
    pub endpoint: Endpoint,
    pub statuses: &'static [u16],
}

const fn route_of(
    method: Method,
    template: &'static str,
    endpoint: Endpoint,
    statuses: &'static [u16],
) -> Route {
    Route {
        method,
        template,
        endpoint,
        statuses,
    }
}

/// Every route. Besides these statuses, any path may answer 404 (no route) or 405 (another
/// method, with `Allow`).
pub const ROUTES: &[Route] = &[
    route_of(
        Method::GET,
        "/campaigns",
        Endpoint::ListCampaigns,
        &[200, 400, 401, 500, 503],
    ),
    route_of(
        Method::POST,
        "/campaigns",
        Endpoint::CreateCampaign,
        &[202, 400, 401, 409, 413, 415, 422, 500, 503],
    ),
    route_of(
        Method::GET,
        "/campaigns/{id}",
        Endpoint::GetCampaign,
        &[200, 401, 404, 500, 503],
    ),
    route_of(
        Method::POST,
        "/campaigns/{id}/contacts",
        Endpoint::AppendContacts,
        &[202, 400, 401, 404, 409, 413, 415, 422, 500, 503],
    ),
    route_of(
        Method::POST,
        "/campaigns/{id}/pause",
        Endpoint::PauseCampaign,
        &[202, 400, 401, 404, 409, 422, 500, 503],
    ),
    route_of(
        Method::POST,
        "/campaigns/{id}/resume",
        Endpoint::ResumeCampaign,
        &[202, 400, 401, 404, 409, 422, 500, 503],
    ),
    route_of(
        Method::POST,
        "/campaigns/{id}/cancel",
        Endpoint::CancelCampaign,
        &[202, 400, 401, 404, 409, 422, 500, 503],
    ),
    route_of(
        Method::GET,
        "/campaigns/{id}/calls",
        Endpoint::ListCalls,
        &[200, 400, 401, 404, 500, 503],
    ),
    route_of(
        Method::GET,
        "/campaigns/{id}/results",
        Endpoint::ExportResults,
        &[200, 400, 401, 404, 500, 503],
    ),
    route_of(
        Method::POST,
        "/calls",
        Endpoint::CreateCall,
        &[202, 400, 401, 404, 409, 413, 415, 422, 500, 503],
    ),
    route_of(
        Method::GET,
        "/calls/{id}",
        Endpoint::GetCall,
        &[200, 401, 404, 500, 503],
    ),
    route_of(
        Method::POST,
        "/calls/{id}/hangup",
        Endpoint::HangUp,
        &[202, 400, 401, 404, 409, 422, 500, 503],
    ),
    route_of(
        Method::GET,
        "/dnc/{e164}",
        Endpoint::GetDoNotCall,
        &[200, 400, 401, 404, 500, 503],
    ),
    route_of(
        Method::PUT,
        "/dnc/{e164}",
        Endpoint::AddDoNotCall,
        &[204, 400, 401, 422, 500, 503],
    ),
    route_of(
        Method::DELETE,
        "/dnc/{e164}",
        Endpoint::RemoveDoNotCall,
        &[204, 400, 401, 404, 500, 503],
    ),
    route_of(
        Method::GET,
        "/policy",
        Endpoint::GetPolicy,
        &[200, 401, 500, 503],
    ),
    route_of(
        Method::PUT,
        "/policy",
        Endpoint::PutPolicy,
        &[200, 400, 401, 413, 415, 500, 503],
    ),
    route_of(
        Method::GET,
        "/numbers",
        Endpoint::ListNumbers,
        &[200, 400, 401, 500, 503],
    ),
    route_of(
        Method::PUT,
        "/numbers/{e164}",
        Endpoint::PutNumber,
        &[200, 400, 401, 409, 413, 415, 500, 503],
    ),
    route_of(
        Method::DELETE,
        "/numbers/{e164}",
        Endpoint::DeleteNumber,
        &[204, 400, 401, 404, 500, 503],
    ),
    route_of(
        Method::POST,
        "/numbers/{e164}/restore",
        Endpoint::RestoreNumber,
        &[200, 400, 401, 404, 409, 422, 500, 503],
    ),
];

impl Endpoint {
    /// Whether the endpoint reads a body (and so is held to the body limit).
    #[must_use]
    pub fn takes_body(self) -> bool {
        matches!(
            self,
            Self::CreateCampaign
                | Self::AppendContacts
                | Self::CreateCall
                | Self::PutPolicy
                | Self::PutNumber
        )
    }
}

/// A request matched to its route, with its one path parameter (percent-decoded) if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub endpoint: Endpoint,
    pub template: &'static str,
    pub param: Option<String>,
}

/// Finds the route for `method` and `path`.
///
/// # Errors
/// [`ApiError::NotFound`] when no route has this path, [`ApiError::MethodNotAllowed`] (with
/// the methods it has) when one has it but not with this method.
pub fn route(method: &Method, path: &str) -> Result<Matched, ApiError> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let mut allow: Vec<&str> = Vec::new();
    for route in ROUTES {
        let Some(param) = matches(route.template, &segments) else {
            continue;
        };
        if route.method == method {
            let param = param.map(percent_decode).transpose()?;
            return Ok(Matched {
                endpoint: route.endpoint,
                template: route.template,
                param,
            });
        }
        allow.push(route.method.as_str());
    }
    if allow.is_empty() {
        Err(ApiError::NotFound(format!("no route for {path}")))
    } else {
        Err(ApiError::MethodNotAllowed {
            allow: allow.join(", "),
        })
    }
}

/// The raw parameter segment when `segments` fit `template`.
fn matches<'a>(template: &str, segments: &[&'a str]) -> Option<Option<&'a str>> {
    let parts: Vec<&str> = template.split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut param = None;
    for (part, segment) in parts.iter().zip(segments) {
        if part.starts_with('{') {
            if segment.is_empty() {
                return None;
            }
            param = Some(*segment);
        } else if part != segment {
            return None;
        }
    }
    Some(param)
}

/// Decodes `%XX` escapes (a path segment's `+` stays a `+`: in a path it is no space).
fn percent_decode(raw: &str) -> Result<String, ApiError> {
    let bad = || ApiError::NotFound("the path has a malformed escape".into());
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_with_their_parameter_decoded() {
        let m = route(&Method::GET, "/campaigns/cmp_1").unwrap();
        assert_eq!(m.endpoint, Endpoint::GetCampaign);
        assert_eq!(m.param.as_deref(), Some("cmp_1"));
        let m = route(&Method::PUT, "/dnc/%2B15555550100").unwrap();
        assert_eq!(m.param.as_deref(), Some("+15555550100"));
        let m = route(&Method::PUT, "/dnc/+15555550100").unwrap();
        assert_eq!(m.param.as_deref(), Some("+15555550100"));
        let m = route(&Method::POST, "/numbers/%2B15555550100/restore").unwrap();
        assert_eq!(m.endpoint, Endpoint::RestoreNumber);
        assert_eq!(m.param.as_deref(), Some("+15555550100"));
        assert_eq!(
            route(&Method::GET, "/numbers").unwrap().endpoint,
            Endpoint::ListNumbers
        );
        assert_eq!(
            route(&Method::POST, "/campaigns/").unwrap().endpoint,
            Endpoint::CreateCampaign
        );
        assert_eq!(
            route(&Method::GET, "/campaigns").unwrap().endpoint,
            Endpoint::ListCampaigns
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
        assert!(matches!(
            route(&Method::GET, "/nope"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route(&Method::GET, "/campaigns//calls"),
            Err(ApiError::NotFound(_))
        ));
        match route(&Method::POST, "/dnc/+1") {
            Err(ApiError::MethodNotAllowed { allow }) => assert_eq!(allow, "GET, PUT, DELETE"),
            other => panic!("{other:?}"),
        }
        match route(&Method::GET, "/numbers/+15555550100") {
            Err(ApiError::MethodNotAllowed { allow }) => assert_eq!(allow, "PUT, DELETE"),
            other => panic!("{other:?}"),
        }
        match route(&Method::DELETE, "/campaigns") {
            Err(ApiError::MethodNotAllowed { allow }) => assert_eq!(allow, "GET, POST"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            route(&Method::POST, "/dnc/%zz"),
            Err(ApiError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            route(&Method::PUT, "/dnc/%zz"),
            Err(ApiError::NotFound(_))
        ));
    }
}
