//! The customers pages: the list (only what the caller may read, filtered and paginated as the
//! API does), the record page with its edit form (only writable fields) and delete, and "why
//! can I see this?" (the explain use case).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use warden_policy::schema::{schema, FieldKind, Value};
use warden_policy::{Action, FieldAccess, ObjectType};
use warden_service::{
    ExplainReport, ListQuery, Outcome, RecordInput, RecordView, ShareView, SharingRights,
};

use super::{render, see_other, value_text, Console, Nav, PageResult, Posted};
use crate::error::AppError;
use crate::AppState;

const OBJECT: ObjectType = ObjectType::Customers;

/// Rows per page of the list.
const PAGE_SIZE: u32 = 25;

/// Ids in paths: anything that is not one is simply not found.
pub(super) fn record_id(text: &str) -> Result<i64, AppError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(AppError::not_found)
}

/// One cell of the list.
struct Cell {
    text: String,
    masked: bool,
    /// Hidden from the caller on this record: shown as nothing at all.
    hidden: bool,
}

struct Row {
    id: i64,
    owner: String,
    unit: String,
    cells: Vec<Cell>,
}

#[derive(Template)]
#[template(path = "customers.html")]
struct ListPage {
    nav: Nav,
    /// The columns: the fields readable on at least one record of the page.
    columns: Vec<&'static str>,
    rows: Vec<Row>,
    /// Fields the list may be filtered by (the caller reads them everywhere they read).
    filter_fields: Vec<&'static str>,
    field: String,
    value: String,
    next: Option<String>,
    first_page: bool,
    notice: &'static str,
}

/// A fixed message after a form, chosen by key: nothing from the URL is echoed.
pub(super) fn notice(params: &HashMap<String, String>) -> &'static str {
    match params.get("notice").map(String::as_str) {
        Some("saved") => "Saved.",
        Some("created") => "Created.",
        Some("unchanged") => "Nothing was changed.",
        Some("deleted") => "The customer was deleted.",
        Some("held") => "Your change waits for approval: it is not applied yet.",
        Some("applied") => "Done: the change is applied.",
        Some("decided") => "Your decision is recorded.",
        Some("withdrawn") => "The request is withdrawn.",
        Some("shared") => "Shared. It holds from the next request.",
        Some("team") => "The team member is added.",
        Some("revoked") => "Taken back. It holds from the next request.",
        _ => "",
    }
}

/// `GET /customers?field=&value=&cursor=`.
pub(super) async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> PageResult {
    let field = params.get("field").cloned().unwrap_or_default();
    let value = params.get("value").cloned().unwrap_or_default();
    let mut query = ListQuery {
        cursor: params.get("cursor").filter(|c| !c.is_empty()).cloned(),
        limit: Some(PAGE_SIZE),
        ..ListQuery::default()
    };
    if !field.is_empty() {
        query.matching.push((field.clone(), value.clone()));
    }
    let page = state
        .warden
        .query_records(&console.subject, OBJECT, &query)
        .await?;
    let defs = schema(OBJECT).fields;
    let columns: Vec<&'static str> = defs
        .iter()
        .enumerate()
        .filter(|(index, _)| {
            page.items
                .iter()
                .any(|item| item.fields.at(*index) != FieldAccess::Hidden)
        })
        .map(|(_, def)| def.name)
        .collect();
    let rows = page
        .items
        .iter()
        .map(|item| Row {
            id: item.record.id,
            owner: item.owner_username.clone(),
            unit: item.unit_name.clone(),
            cells: columns
                .iter()
                .map(|name| {
                    let level = item.fields.of(name).unwrap_or(FieldAccess::Hidden);
                    let text = schema(OBJECT)
                        .field(name)
                        .and_then(|(index, _)| item.record.values.get(index))
                        .filter(|_| level != FieldAccess::Hidden)
                        .map(value_text)
                        .unwrap_or_default();
                    Cell {
                        text,
                        masked: level == FieldAccess::Masked,
                        hidden: level == FieldAccess::Hidden,
                    }
                })
                .collect(),
        })
        .collect();
    render(&ListPage {
        nav: console.nav("customers"),
        columns,
        rows,
        // Sensitive fields are encrypted: never filterable (the API answers 422).
        filter_fields: defs
            .iter()
            .filter(|d| !d.sensitive)
            .map(|d| d.name)
            .collect(),
        field,
        value,
        next: page.next_cursor,
        first_page: query.cursor.is_none(),
        notice: notice(&params),
    })
}

/// One field on the record page.
struct FieldRow {
    name: &'static str,
    text: String,
    masked: bool,
    /// Offered in the edit form.
    writable: bool,
    /// A choice field's options (empty for free input).
    choices: Vec<&'static str>,
    input_type: &'static str,
    /// Shown in full after a logged reveal.
    revealed: bool,
}

#[derive(Template)]
#[template(path = "customer.html")]
struct RecordPage {
    nav: Nav,
    id: i64,
    name: String,
    owner: String,
    unit: String,
    version: i64,
    updated: String,
    fields: Vec<FieldRow>,
    can_edit: bool,
    can_delete: bool,
    notice: &'static str,
    shares: Vec<ShareLine>,
    rights: SharingRights,
}

/// One share or team place of the record.
struct ShareLine {
    id: i64,
    kind: &'static str,
    /// e.g. "user rep3".
    with: String,
    access: &'static str,
    created_by: String,
    created_at: String,
    /// The service would let the caller take it back.
    revocable: bool,
}

fn share_lines(shares: &[ShareView], rights: SharingRights, username: &str) -> Vec<ShareLine> {
    shares
        .iter()
        .map(|s| ShareLine {
            id: s.id,
            kind: s.kind.as_str(),
            with: format!("{} {}", s.principal_kind, s.principal),
            access: s.access.as_str(),
            created_by: s.created_by.clone().unwrap_or_default(),
            created_at: super::when(s.created_at),
            revocable: rights.may_revoke(s.kind, s.created_by.as_deref() == Some(username)),
        })
        .collect()
}

fn input_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Email => "email",
        FieldKind::Integer { .. } => "number",
        FieldKind::Date => "date",
        _ => "text",
    }
}

fn allowed(report: &ExplainReport, action: Action) -> bool {
    report
        .actions
        .iter()
        .any(|a| a.action == action && a.allowed)
}

fn field_rows(view: &RecordView, report: &ExplainReport) -> Vec<FieldRow> {
    view.visible_fields()
        .map(|(name, value, level)| {
            let def = schema(OBJECT).field(name).map(|(_, def)| def);
            let writable = level != FieldAccess::Masked
                && report.fields.iter().any(|f| f.field == name && f.writable);
            FieldRow {
                name,
                text: value_text(value),
                masked: level == FieldAccess::Masked,
                writable,
                choices: match def.map(|d| d.kind) {
                    Some(FieldKind::Choice(options)) => options.to_vec(),
                    _ => Vec::new(),
                },
                input_type: def.map_or("text", |d| input_type(d.kind)),
                revealed: false,
            }
        })
        .collect()
}

/// The record page; `revealed` replaces a masked field's text by its full value (already
/// logged by the reveal use case).
async fn record_page(
    state: &AppState,
    console: &Console,
    id: i64,
    notice: &'static str,
    revealed: Option<(&str, String)>,
) -> PageResult {
    let view = state
        .warden
        .get_record(&console.subject, OBJECT, id)
        .await?;
    // The caller's own explanation says which fields they may write and whether they may
    // delete: the engine's answer, not a second guess here.
    let report = state
        .warden
        .explain(&console.subject, &console.subject.username, OBJECT, id)
        .await?;
    // Who may share, manage the team and take back what: the sharing use cases' own rule.
    let rights = state
        .warden
        .sharing_rights(&console.subject, OBJECT, id)
        .await?;
    let shares = state
        .warden
        .list_shares(&console.subject, OBJECT, id)
        .await?;
    let mut fields = field_rows(&view, &report);
    if let Some((name, value)) = revealed {
        if let Some(row) = fields.iter_mut().find(|f| f.name == name) {
            row.text = value;
            row.masked = false;
            row.revealed = true;
        }
    }
    let name = view
        .visible_fields()
        .find(|(name, _, _)| *name == "name")
        .map(|(_, value, _)| value_text(value))
        .unwrap_or_default();
    render(&RecordPage {
        nav: console.nav("customers"),
        id,
        name,
        owner: view.owner_username.clone(),
        unit: view.unit_name.clone(),
        version: view.record.version,
        updated: super::when(view.record.updated_at),
        can_edit: allowed(&report, Action::Update) && fields.iter().any(|f| f.writable),
        can_delete: allowed(&report, Action::Delete),
        fields,
        notice,
        shares: share_lines(&shares, rights, &console.subject.username),
        rights,
    })
}

/// `GET /customers/{id}`: 404 when the caller may not read it, exactly as the API.
pub(super) async fn record(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> PageResult {
    let id = record_id(&id)?;
    record_page(&state, &console, id, notice(&params), None).await
}

/// `POST /customers/{id}/reveal` with `field`: the full value of a masked field, written to
/// the access log before it is shown (a POST: a reveal is an act, not a view).
pub(super) async fn reveal(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let id = record_id(&id)?;
    let field = posted.get("field").to_owned();
    let value = state
        .warden
        .reveal_field(&posted.console.subject, OBJECT, id, &field)
        .await?;
    record_page(
        &state,
        &posted.console,
        id,
        "Revealed. This reveal is recorded in the access log.",
        Some((&field, value_text(&value))),
    )
    .await
}

#[derive(Template)]
#[template(path = "customer_new.html")]
struct NewPage {
    nav: Nav,
}

/// `GET /customers/new`: a customer with a name, owned by the caller (as `POST` with only
/// `name` in the API).
pub(super) async fn new_form(console: Console) -> PageResult {
    render(&NewPage {
        nav: console.nav("customers"),
    })
}

/// `POST /customers/new`.
pub(super) async fn create(State(state): State<AppState>, posted: Posted) -> PageResult {
    let mut input = RecordInput::default();
    for def in schema(OBJECT).fields {
        let text = posted.get(&format!("f.{}", def.name));
        if !text.trim().is_empty() {
            input
                .fields
                .push((def.name.to_owned(), form_field_value(def.name, text)?));
        }
    }
    let outcome = state
        .warden
        .create_record(&posted.console.subject, OBJECT, input)
        .await?;
    Ok(match outcome {
        Outcome::Done(view) => see_other(&format!("/customers/{}?notice=created", view.record.id)),
        Outcome::Pending(approval) => held(approval.id),
    })
}

/// A form's text as the field's value: empty is none, numbers are numbers.
fn form_field_value(name: &str, text: &str) -> Result<Value, AppError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Value::Null);
    }
    match schema(OBJECT).field(name).map(|(_, def)| def.kind) {
        Some(FieldKind::Integer { .. }) => text
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| AppError::invalid(name, "must be a whole number")),
        Some(FieldKind::Bool) => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(AppError::invalid(name, "must be true or false")),
        },
        _ => Ok(Value::Text(text.to_owned())),
    }
}

fn version(posted: &Posted) -> Result<i64, AppError> {
    posted
        .get("version")
        .parse::<i64>()
        .map_err(|_| AppError::invalid("version", "must be a whole number"))
}

/// Where a held change's request is shown.
fn held(approval: i64) -> Response {
    see_other(&format!("/approvals/{approval}?notice=held"))
}

/// `POST /customers/{id}`: the edit form. Only the fields whose value changed are sent, with
/// the version the form was read at (a change meanwhile is a 409, as in the API).
pub(super) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let id = record_id(&id)?;
    let version = version(&posted)?;
    let mut input = RecordInput::default();
    for (key, text) in &posted.fields {
        let Some(name) = key.strip_prefix("f.") else {
            continue;
        };
        if schema(OBJECT).field(name).is_none() {
            return Err(AppError::invalid(name, "is not a field of customers").into());
        }
        let original = posted.get(&format!("o.{name}"));
        if text.trim() == original.trim() {
            continue;
        }
        input
            .fields
            .push((name.to_owned(), form_field_value(name, text)?));
    }
    if input.fields.is_empty() {
        return Ok(see_other(&format!("/customers/{id}?notice=unchanged")));
    }
    let outcome = state
        .warden
        .update_record(&posted.console.subject, OBJECT, id, Some(version), input)
        .await?;
    Ok(match outcome {
        Outcome::Done(_) => see_other(&format!("/customers/{id}?notice=saved")),
        Outcome::Pending(approval) => held(approval.id),
    })
}

/// `POST /customers/{id}/delete`.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let id = record_id(&id)?;
    let version = version(&posted)?;
    let outcome = state
        .warden
        .delete_record(&posted.console.subject, OBJECT, id, Some(version))
        .await?;
    Ok(match outcome {
        Outcome::Done(()) => see_other("/customers?notice=deleted"),
        Outcome::Pending(approval) => held(approval.id),
    })
}

struct ActionLine {
    action: &'static str,
    allowed: bool,
    reasons: Vec<String>,
    denied: String,
}

struct FieldLine {
    field: &'static str,
    level: &'static str,
    writable: bool,
    sensitive: bool,
    because: String,
}

#[derive(Template)]
#[template(path = "explain.html")]
struct ExplainPage {
    nav: Nav,
    id: i64,
    user: String,
    owner: String,
    unit: String,
    actions: Vec<ActionLine>,
    fields: Vec<FieldLine>,
    expired_roles: Vec<String>,
    /// May ask about other users (manage_users or manage_roles).
    can_ask_others: bool,
}

/// `GET /customers/{id}/explain?user=`: why a user (by default the caller) may or may not act
/// on this customer, and what each field is to them.
pub(super) async fn explain(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> PageResult {
    let id = record_id(&id)?;
    let user = params
        .get("user")
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .unwrap_or(&console.subject.username)
        .to_owned();
    let report = state
        .warden
        .explain(&console.subject, &user, OBJECT, id)
        .await?;
    let nav = console.nav("customers");
    render(&ExplainPage {
        can_ask_others: nav.manage_users || nav.manage_roles,
        nav,
        id,
        user: report.user.clone(),
        owner: report.owner.clone(),
        unit: report.unit.clone(),
        actions: report
            .actions
            .iter()
            .map(|a| ActionLine {
                action: a.action.as_str(),
                allowed: a.allowed,
                reasons: a
                    .reasons
                    .iter()
                    .map(|r| {
                        let path = if r.reporting_path.is_empty() {
                            String::new()
                        } else {
                            format!(" (reporting line: {})", r.reporting_path.join(" → "))
                        };
                        match (&r.role, &r.scope) {
                            (Some(role), Some(scope)) => format!(
                                "{role} grants {} on {} with scope {scope}: {}{path}",
                                r.action, r.object, r.because
                            ),
                            _ => format!("{} ({}): {}", r.source.as_str(), r.action, r.because),
                        }
                    })
                    .collect(),
                denied: a.denied_because.clone().unwrap_or_default(),
            })
            .collect(),
        fields: report
            .fields
            .iter()
            .map(|f| FieldLine {
                field: f.field,
                level: f.read.as_str(),
                writable: f.writable,
                sensitive: f.sensitive,
                because: f.because.clone(),
            })
            .collect(),
        expired_roles: report.expired_roles.clone(),
    })
}
