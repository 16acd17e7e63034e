//! The roles pages: every role's grants as an objects × actions matrix of scopes, its
//! functional permissions and its field rules; and the editor (a scope picker per grant, a
//! hidden/masked/read/write picker per field), whose change is shown as a what-if before a
//! confirm button applies it through the API's own role update.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use warden_policy::schema::schema;
use warden_policy::{Action, FieldAccess, FieldRule, Grant, ObjectType, Permission, RoleId, Scope};
use warden_service::{Outcome, RoleInput, RoleView, ServiceError, WhatIfChange};

use super::customers::record_id;
use super::org::{diff_lines, DiffLine};
use super::{form_value, render, see_other, Console, Nav, PageResult, Posted};
use crate::error::AppError;
use crate::AppState;

struct MatrixRow {
    object: &'static str,
    /// One cell per action of [`Action::ALL`]: the scopes granted, or empty.
    cells: Vec<String>,
}

struct RoleBlock {
    id: i64,
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
    /// Holders of manage_roles may edit grants.
    editable: bool,
    notice: &'static str,
}

/// `GET /admin/roles`.
pub(super) async fn matrix(
    State(state): State<AppState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> PageResult {
    let roles = state.warden.list_roles(&console.subject).await?;
    let details = console.subject.can(Permission::ManageRoles)
        || console.subject.can(Permission::ManageUsers);
    let blocks = roles
        .iter()
        .map(|role| RoleBlock {
            id: role.id.0,
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
        editable: console.subject.can(Permission::ManageRoles),
        notice: match params.get("notice").map(String::as_str) {
            Some("saved") => "Saved. The new grants hold from the next request.",
            _ => "",
        },
    })
}

/// The scopes a cell offers (a `subordinates` grant with a depth keeps its own option).
const SCOPES: &[&str] = &["own", "subordinates", "unit", "unit_tree", "all"];

/// A grant's scope as a form value: its name, and `:depth` for a limited `subordinates`.
fn scope_value(scope: Scope) -> String {
    match scope.depth() {
        Some(depth) => format!("{}:{depth}", scope.name()),
        None => scope.name().to_owned(),
    }
}

fn parse_scope(field: &str, value: &str) -> Result<Scope, AppError> {
    let (name, depth) = match value.split_once(':') {
        Some((name, depth)) => (
            name,
            Some(
                depth
                    .parse::<u32>()
                    .map_err(|_| AppError::invalid(field, "the depth must be a whole number"))?,
            ),
        ),
        None => (value, None),
    };
    Scope::parse(name, depth).map_err(|e| AppError::invalid(field, e.to_string()))
}

/// The grants a form names: `g.OBJECT.ACTION` = scope, empty for none.
fn grants_of(fields: &[(String, String)]) -> Result<Vec<Grant>, AppError> {
    let mut grants = Vec::new();
    for (key, value) in fields {
        let Some(cell) = key.strip_prefix("g.") else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let (object, action) = cell
            .split_once('.')
            .ok_or_else(|| AppError::invalid(key.as_str(), "is not a grant"))?;
        grants.push(Grant {
            object: ObjectType::parse(object)
                .map_err(|e| AppError::invalid(key.as_str(), e.to_string()))?,
            action: Action::parse(action)
                .map_err(|e| AppError::invalid(key.as_str(), e.to_string()))?,
            scope: parse_scope(key, value)?,
        });
    }
    Ok(grants)
}

/// The role a route names, as the caller may read it.
async fn role_of(state: &AppState, console: &Console, id: &str) -> PageResult<RoleView> {
    let id = record_id(id)?;
    console.subject.require(Permission::ManageRoles)?;
    state
        .warden
        .list_roles(&console.subject)
        .await?
        .into_iter()
        .find(|role| role.id == RoleId(id))
        .ok_or_else(|| AppError::not_found().into())
}

/// The field rules a form names: `f.OBJECT.FIELD` = hidden, masked, read or write; empty for
/// the schema's default (no rule). A form without the field grid (no `fields_grid` marker)
/// keeps the role's rules: only the grid may take a rule away.
fn field_rules_of(
    role: &RoleView,
    fields: &[(String, String)],
) -> Result<Vec<FieldRule>, AppError> {
    if form_value(fields, "fields_grid").is_empty() {
        return Ok(role.fields.clone());
    }
    let mut rules = Vec::new();
    for (key, value) in fields {
        let Some(cell) = key.strip_prefix("f.") else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let (object, field) = cell
            .split_once('.')
            .ok_or_else(|| AppError::invalid(key.as_str(), "is not a field"))?;
        rules.push(FieldRule {
            object: ObjectType::parse(object)
                .map_err(|e| AppError::invalid(key.as_str(), e.to_string()))?,
            field: field.to_owned(),
            access: FieldAccess::parse(value)
                .map_err(|e| AppError::invalid(key.as_str(), e.to_string()))?,
        });
    }
    Ok(rules)
}

/// The role's content with the form's grants and field rules; name, description and
/// permissions as they are.
fn with_changes(role: &RoleView, grants: Vec<Grant>, fields: Vec<FieldRule>) -> RoleInput {
    RoleInput {
        name: role.name.clone(),
        description: role.description.clone(),
        grants,
        permissions: role.permissions.clone(),
        fields,
    }
}

/// One row of the field security grid: a field of an object and the role's rule for it.
struct FieldRow {
    object: &'static str,
    field: &'static str,
    /// What the field is without a rule (sensitive fields hidden, others by the grants).
    default: &'static str,
    /// The role's rule, or empty for the default.
    current: &'static str,
}

struct EditCell {
    action: &'static str,
    current: String,
    options: Vec<String>,
}

struct EditRow {
    object: &'static str,
    cells: Vec<EditCell>,
}

#[derive(Template)]
#[template(path = "role_edit.html")]
struct EditPage {
    nav: Nav,
    id: i64,
    name: String,
    version: i64,
    actions: Vec<&'static str>,
    rows: Vec<EditRow>,
    field_rows: Vec<FieldRow>,
    levels: Vec<&'static str>,
}

/// `GET /admin/roles/{id}/edit` (needs `manage_roles`): the grants as a matrix of scope pickers.
pub(super) async fn edit(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> PageResult {
    let role = role_of(&state, &console, &id).await?;
    let mut rows = Vec::new();
    for object in ObjectType::ALL {
        let mut cells = Vec::new();
        for action in Action::ALL {
            let granted: Vec<Scope> = role
                .grants
                .iter()
                .filter(|g| g.object == *object && g.action == *action)
                .map(|g| g.scope)
                .collect();
            if granted.len() > 1 {
                // One picker holds one scope: editing here would silently drop the others.
                return Err(ServiceError::Conflict(format!(
                    "{} grants {action} on {object} with several scopes; edit it through the API (PUT /api/v1/roles/{})",
                    role.name, role.id.0
                ))
                .into());
            }
            let current = granted.first().map(|s| scope_value(*s)).unwrap_or_default();
            let mut options: Vec<String> = SCOPES.iter().map(|s| (*s).to_owned()).collect();
            if !current.is_empty() && !options.contains(&current) {
                options.push(current.clone());
            }
            cells.push(EditCell {
                action: action.as_str(),
                current,
                options,
            });
        }
        rows.push(EditRow {
            object: object.as_str(),
            cells,
        });
    }
    let field_rows = ObjectType::ALL
        .iter()
        .flat_map(|object| {
            let rules = &role.fields;
            schema(*object).fields.iter().map(move |def| FieldRow {
                object: object.as_str(),
                field: def.name,
                default: def.default_access().as_str(),
                current: rules
                    .iter()
                    .find(|r| r.object == *object && r.field == def.name)
                    .map_or("", |r| r.access.as_str()),
            })
        })
        .collect();
    render(&EditPage {
        nav: console.nav("roles"),
        id: role.id.0,
        name: role.name.clone(),
        version: role.version,
        actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
        rows,
        field_rows,
        levels: FieldAccess::ALL.iter().map(|a| a.as_str()).collect(),
    })
}

#[derive(Template)]
#[template(path = "role_whatif.html")]
struct PreviewPage {
    nav: Nav,
    id: i64,
    name: String,
    version: i64,
    lines: Vec<DiffLine>,
    users_examined: usize,
    cells: usize,
    /// Users whose best level of a field changes: "user action object.field", before, after.
    field_lines: Vec<(String, &'static str, &'static str)>,
    /// The role's field rules that change: "object.field", before, after ("" for the default).
    rule_lines: Vec<(String, String, String)>,
    /// The proposed grants and field rules as the form's fields, carried to the confirm button.
    grants: Vec<(String, String)>,
}

/// The rules of `after` that differ from `before`, as "object.field", old and new level.
fn rule_changes(before: &[FieldRule], after: &[FieldRule]) -> Vec<(String, String, String)> {
    let level = |rules: &[FieldRule], object: ObjectType, field: &str| {
        rules
            .iter()
            .find(|r| r.object == object && r.field == field)
            .map_or_else(|| "default".to_owned(), |r| r.access.as_str().to_owned())
    };
    let mut lines = Vec::new();
    for object in ObjectType::ALL {
        for def in schema(*object).fields {
            let (old, new) = (
                level(before, *object, def.name),
                level(after, *object, def.name),
            );
            if old != new {
                lines.push((format!("{object}.{}", def.name), old, new));
            }
        }
    }
    lines
}

fn version_of(fields: &[(String, String)]) -> Result<i64, AppError> {
    form_value(fields, "version")
        .parse::<i64>()
        .map_err(|_| AppError::invalid("version", "must be a whole number"))
}

/// `GET /admin/roles/{id}/preview?version=&g.OBJECT.ACTION=…`: the what-if of the new grants.
pub(super) async fn preview(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(fields): Query<Vec<(String, String)>>,
) -> PageResult {
    let role = role_of(&state, &console, &id).await?;
    let version = version_of(&fields)?;
    let grants = grants_of(&fields)?;
    let rules = field_rules_of(&role, &fields)?;
    let rule_lines = rule_changes(&role.fields, &rules);
    let change = WhatIfChange::UpdateRole {
        id: role.id,
        version: Some(version),
        input: with_changes(&role, grants, rules),
    };
    let report = state.warden.what_if(&console.subject, &change).await?;
    render(&PreviewPage {
        nav: console.nav("roles"),
        id: role.id.0,
        name: role.name.clone(),
        version,
        lines: diff_lines(&report),
        users_examined: report.users_examined,
        cells: report.cells,
        field_lines: report
            .field_changes
            .iter()
            .map(|c| {
                (
                    format!("{} {} {}.{}", c.user, c.action, c.object, c.field),
                    c.before.as_str(),
                    c.after.as_str(),
                )
            })
            .collect(),
        rule_lines,
        grants: fields
            .into_iter()
            .filter(|(key, value)| {
                (key.starts_with("g.") || key.starts_with("f.") || key == "fields_grid")
                    && !value.is_empty()
            })
            .collect(),
    })
}

/// `POST /admin/roles/{id}`: applies the grants read on the preview, at the version read (a
/// role changed meanwhile is a conflict; four eyes holds it when on).
pub(super) async fn apply(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let role = role_of(&state, &posted.console, &id).await?;
    let change = WhatIfChange::UpdateRole {
        id: role.id,
        version: Some(version_of(&posted.fields)?),
        input: with_changes(
            &role,
            grants_of(&posted.fields)?,
            field_rules_of(&role, &posted.fields)?,
        ),
    };
    let outcome = state
        .warden
        .apply_what_if(&posted.console.subject, change)
        .await?;
    Ok(match outcome {
        Outcome::Done(()) => see_other("/admin/roles?notice=saved"),
        Outcome::Pending(approval) => see_other(&format!("/approvals/{}?notice=held", approval.id)),
    })
}
