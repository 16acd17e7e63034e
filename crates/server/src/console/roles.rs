//! The roles page: every role's grants as an objects × actions matrix of scopes, its
//! functional permissions and its field rules (read-only; editing is through the API today).

use askama::Template;
use axum::extract::State;
use warden_policy::{Action, ObjectType, Permission};

use super::{render, Console, Nav, PageResult};
use crate::AppState;

struct MatrixRow {
    object: &'static str,
    /// One cell per action of [`Action::ALL`]: the scopes granted, or empty.
    cells: Vec<String>,
}

struct RoleBlock {
    name: String,
    description: String,
    version: i64,
    rows: Vec<MatrixRow>,
    permissions: Vec<&'static str>,
    fields: Vec<String>,
}

#[derive(Template)]
#[template(path = "roles.html")]
struct RolesPage {
    nav: Nav,
    actions: Vec<&'static str>,
    roles: Vec<RoleBlock>,
    /// Grants are shown only to holders of manage_roles or manage_users (the service clears them
    /// for anyone else).
    details: bool,
}

/// `GET /admin/roles`.
pub(super) async fn matrix(State(state): State<AppState>, console: Console) -> PageResult {
    let roles = state.warden.list_roles(&console.subject).await?;
    let details = console.subject.can(Permission::ManageRoles)
        || console.subject.can(Permission::ManageUsers);
    let blocks = roles
        .iter()
        .map(|role| RoleBlock {
            name: role.name.clone(),
            description: role.description.clone(),
            version: role.version,
            rows: ObjectType::ALL
                .iter()
                .filter(|object| role.grants.iter().any(|g| g.object == **object))
                .map(|object| MatrixRow {
                    object: object.as_str(),
                    cells: Action::ALL
                        .iter()
                        .map(|action| {
                            role.grants
                                .iter()
                                .filter(|g| g.object == *object && g.action == *action)
                                .map(|g| g.scope.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .collect(),
                })
                .collect(),
            permissions: role.permissions.iter().map(|p| p.as_str()).collect(),
            fields: role
                .fields
                .iter()
                .map(|f| format!("{}.{}: {}", f.object, f.field, f.access))
                .collect(),
        })
        .collect();
    render(&RolesPage {
        nav: console.nav("roles"),
        actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
        roles: blocks,
        details,
    })
}
