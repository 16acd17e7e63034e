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
        crate::records::list, crate::records::read, crate::records::create, crate::records::update, crate::records::delete, crate::records::reveal,
        crate::admin::list_users, crate::admin::create_user, crate::admin::get_user, crate::admin::patch_user,
        crate::admin::list_units, crate::admin::create_unit, crate::admin::patch_unit,
        crate::admin::list_roles, crate::admin::create_role, crate::admin::get_role, crate::admin::put_role,
        crate::admin::explain, crate::admin::list_objects, crate::admin::put_control,
        crate::admin::what_if, crate::admin::apply_what_if,
        crate::audit::entries,
        crate::approvals::list, crate::approvals::get_one, crate::approvals::approve, crate::approvals::reject, crate::approvals::withdraw,
        crate::approvals::list_policies, crate::approvals::create_policy, crate::approvals::put_policy, crate::approvals::delete_policy,
        crate::approvals::put_four_eyes,
        crate::reviews::open, crate::reviews::items, crate::reviews::decide, crate::reviews::close, crate::reviews::evidence,
        crate::reviews::privileged, crate::reviews::dormant, crate::reviews::sod,
        crate::security::change_password, crate::security::start_totp, crate::security::confirm_totp,
        crate::security::create_token, crate::security::view_as, crate::security::list_tokens, crate::security::revoke_token, crate::security::unlock,
        crate::security::get_role_access, crate::security::put_role_access, crate::security::get_user_access, crate::security::put_user_access,
        crate::sharing::list_shares, crate::sharing::create_share, crate::sharing::delete_share, crate::sharing::add_member, crate::sharing::remove_member,
        crate::sharing::list_sharing_rules, crate::sharing::create_sharing_rule, crate::sharing::replace_sharing_rule, crate::sharing::delete_sharing_rule,
        crate::sharing::list_restriction_rules, crate::sharing::create_restriction_rule, crate::sharing::replace_restriction_rule, crate::sharing::delete_restriction_rule,
    ),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "records"), (name = "admin"), (name = "access"), (name = "security"), (name = "audit"), (name = "approvals"), (name = "reviews"), (name = "sharing"))
)]
struct ApiDoc;

/// The OpenAPI document as JSON. One handler serves the records routes of every object
/// (`/api/v1/{object}…`); the document lists them per object (`/api/v1/customers`,
/// `/api/v1/customers/{id}`, …), each with its own operation id, so that clients find them
/// by name.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let generic: Vec<String> = doc
        .paths
        .paths
        .keys()
        .filter(|path| path.starts_with("/api/v1/{object}"))
        .cloned()
        .collect();
    for path in generic {
        let Some(item) = doc.paths.paths.remove(&path) else {
            continue;
        };
        for object in warden_policy::ObjectType::ALL {
            let mut item = item.clone();
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                if let Some(parameters) = &mut operation.parameters {
                    parameters.retain(|p| p.name != "object");
                }
                operation.operation_id = operation
                    .operation_id
                    .as_ref()
                    .map(|id| format!("{id}_{}", object.as_str()));
            }
            doc.paths
                .paths
                .insert(path.replace("{object}", object.as_str()), item);
        }
    }
    doc
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}
