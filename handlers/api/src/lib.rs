//! The API Lambda behind API Gateway (HTTP API): campaigns, single calls and the do-not-call
//! list. See DESIGN.md section 6; its endpoints land with the API issue.
