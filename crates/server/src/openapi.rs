//! The OpenAPI document, served at `/api/v1/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Warden", description = "Customer data with permissions: who may see, change, export, share and approve what, explained."),
    paths(
        crate::auth::login, crate::auth::logout, crate::auth::me,
        crate::records::list, crate::records::read, crate::records::create, crate::records::update, crate::records::delete,
        crate::admin::list_users, crate::admin::create_user, crate::admin::get_user, crate::admin::patch_user,
        crate::admin::list_units, crate::admin::create_unit, crate::admin::patch_unit,
        crate::admin::list_roles, crate::admin::create_role, crate::admin::get_role, crate::admin::put_role,
        crate::admin::explain, crate::admin::list_objects, crate::admin::put_control,
    ),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "records"), (name = "admin"), (name = "access"))
)]
struct ApiDoc;

/// The OpenAPI document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}
