//! The OpenAPI document. Paths are collected from the handlers' `#[utoipa::path]` by the router
//! in `startup`; this holds what is said once for the whole API.

use utoipa::OpenApi;

use crate::accounts::SessionAuth;

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
        (name = "admin", description = "SRE switches (bearer token): the deliberate error path"),
        (name = "paredao-admin", description = "The production team runs the paredões: create, edit, open, close, photos"),
        (name = "auth", description = "The production team's login, session and logout (cookie session, CSRF token)"),
        (name = "accounts", description = "The production team's accounts (admins)"),
        (name = "audit", description = "What the production team did, who, when and from where"),
    ),
    modifiers(&BearerAuth, &SessionAuth)
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the admin endpoints name.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
