//! The OpenAPI document. Paths are collected from the handlers' `#[utoipa::path]` by the router
//! in `startup`; this holds what is said once for the whole API.

use utoipa::OpenApi;

/// Where the spec is served (stable: the pages' tests and external clients read it there).
pub const SPEC_PATH: &str = "/api-docs/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Paredão API",
        description = "Live elimination vote: cast votes, read the viewers' results and the production team's statistics. \
                       A vote is answered 202 only once it is durable in the message queue. Every error is JSON: \
                       `{\"error\": code, \"message\": text}`.",
    ),
    tags(
        (name = "paredao", description = "The paredão and its participants"),
        (name = "votes", description = "Casting votes"),
        (name = "results", description = "Viewers' percentages and production statistics, served from memory"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;
