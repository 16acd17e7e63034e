//! The sharing-rule and restriction-rule pages (administrators): every rule, a form for a new
//! one, and delete — each change shown first as the exact what-if diff (`Warden::what_if`),
//! then applied on confirmation by `Warden::apply_what_if` (through four eyes when on), as the
//! organisation's move page does. Forms are read by the API's own parsers
//! (`crate::sharing::sharing_rule_input`, `restriction_rule_input`): conditions are the
//! documented JSON condition form.

use askama::Template;
use axum::extract::{Path, Query, State};
use serde_json::{json, Value as Json};
use warden_policy::{Action, ObjectType, Permission};
use warden_service::store::criteria_to_json;
use warden_service::{
    AudienceInput, Outcome, PrincipalName, RestrictionRuleInput, RuleSourceInput, RuleView,
    SharingRuleInput, WhatIfChange,
};

use super::customers::{notice, record_id};
use super::org::{diff_lines, DiffLine};
use super::{form_value, render, see_other, Console, Nav, PageResult, Posted};
use crate::error::AppError;
use crate::sharing::{
    restriction_rule_input, sharing_rule_input, RestrictionRuleBody, SharingRuleBody,
};
use crate::AppState;

/// One rule as a table row.
struct RuleLine {
    id: i64,
    name: String,
    object: &'static str,
    /// Which records (sharing) or what they must meet (restriction).
    records: String,
    /// Shared with (sharing) or applies to (restriction).
    who: String,
    /// Access given (sharing) or actions narrowed (restriction).
    what: String,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage {
    nav: Nav,
    /// `sharing` or `restriction`.
    kind: &'static str,
    title: &'static str,
    rules: Vec<RuleLine>,
    objects: Vec<&'static str>,
    actions: Vec<&'static str>,
    /// Holders of manage_roles may create and delete (others may only read).
    editable: bool,
    notice: &'static str,
}

#[derive(Template)]
#[template(path = "rule_whatif.html")]
struct RuleWhatIfPage {
    nav: Nav,
    heading: String,
    summary: Vec<String>,
    lines: Vec<DiffLine>,
    users_examined: usize,
    cells: usize,
    counted_in_sql: usize,
    /// Where the confirm form posts, with what.
    action: String,
    hidden: Vec<(String, String)>,
    button: &'static str,
    back: &'static str,
}

fn principal_text(p: &PrincipalName) -> String {
    match p {
        PrincipalName::User(n) => format!("user {n}"),
        PrincipalName::Unit(n) => format!("unit {n} (and below)"),
        PrincipalName::Role(n) => format!("role {n}"),
    }
}

fn sharing_line(view: &RuleView<SharingRuleInput>) -> RuleLine {
    let rule = &view.rule;
    RuleLine {
        id: view.id,
        name: rule.name.clone(),
        object: rule.object.as_str(),
        records: match &rule.source {
            RuleSourceInput::When(c) => criteria_to_json(c).to_string(),
            RuleSourceInput::OwnedByUnit(unit) => format!("owned in unit {unit} (and below)"),
        },
        who: principal_text(&rule.share_with),
        what: rule.access.as_str().to_owned(),
    }
}

fn restriction_line(view: &RuleView<RestrictionRuleInput>) -> RuleLine {
    let rule = &view.rule;
    RuleLine {
        id: view.id,
        name: rule.name.clone(),
        object: rule.object.as_str(),
        records: criteria_to_json(&rule.only).to_string(),
        who: match &rule.applies_to {
            AudienceInput::Everyone => "everyone".to_owned(),
            AudienceInput::Role(n) => format!("role {n}"),
            AudienceInput::Unit(n) => format!("unit {n} (and below)"),
            AudienceInput::ExceptRole(n) => format!("everyone but role {n}"),
        },
        what: if rule.actions.is_empty() {
            "every action".to_owned()
        } else {
            rule.actions
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
    }
}

fn rules_page(
    console: &Console,
    kind: &'static str,
    rules: Vec<RuleLine>,
    params: &std::collections::HashMap<String, String>,
) -> PageResult {
    let (title, current) = if kind == "sharing" {
        ("Sharing rules", "sharing-rules")
    } else {
        ("Restriction rules", "restriction-rules")
    };
    render(&RulesPage {
        nav: console.nav(current),
        kind,
        title,
        rules,
        objects: ObjectType::ALL.iter().map(|o| o.as_str()).collect(),
        actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
        editable: console.subject.can(Permission::ManageRoles),
        notice: match params.get("notice").map(String::as_str) {
            Some("created") => "The rule is in force from the next request.",
            Some("deleted") => "The rule is deleted; that holds from the next request.",
            _ => notice(params),
        },
    })
}

/// `GET /admin/sharing-rules` (the service: manage_roles or view_audit).
pub(super) async fn sharing_list(
    State(state): State<AppState>,
    console: Console,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> PageResult {
    let rules = state.warden.list_sharing_rules(&console.subject).await?;
    rules_page(
        &console,
        "sharing",
        rules.iter().map(sharing_line).collect(),
        &params,
    )
}

/// `GET /admin/restriction-rules` (the service: manage_roles or view_audit).
pub(super) async fn restriction_list(
    State(state): State<AppState>,
    console: Console,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> PageResult {
    let rules = state
        .warden
        .list_restriction_rules(&console.subject)
        .await?;
    rules_page(
        &console,
        "restriction",
        rules.iter().map(restriction_line).collect(),
        &params,
    )
}

/// A condition typed into a form: the documented JSON condition form; empty is none.
fn condition(fields: &[(String, String)], name: &str) -> Result<Option<Json>, AppError> {
    let text = form_value(fields, name).trim();
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| AppError::invalid(name, format!("is not a JSON condition: {e}")))
}

/// A principal from a kind select and a name box, as the API's `{"user": NAME}`.
fn principal_json(kind: &str, name: &str) -> Json {
    let mut map = serde_json::Map::new();
    map.insert(kind.to_owned(), Json::String(name.trim().to_owned()));
    Json::Object(map)
}

/// The sharing rule a form names, read by the API's parser.
fn sharing_input(fields: &[(String, String)]) -> Result<SharingRuleInput, AppError> {
    let unit = form_value(fields, "owned_by_unit").trim();
    sharing_rule_input(SharingRuleBody {
        name: form_value(fields, "name").to_owned(),
        object: form_value(fields, "object").to_owned(),
        when: condition(fields, "when")?,
        owned_by_unit: (!unit.is_empty()).then(|| unit.to_owned()),
        share_with: principal_json(
            form_value(fields, "with_kind"),
            form_value(fields, "with_name"),
        ),
        access: Some(form_value(fields, "access").to_owned()).filter(|a| !a.is_empty()),
    })
}

/// The restriction rule a form names, read by the API's parser.
fn restriction_input(fields: &[(String, String)]) -> Result<RestrictionRuleInput, AppError> {
    let applies = form_value(fields, "applies");
    let applies_to = if applies == "everyone" {
        json!("everyone")
    } else {
        principal_json(applies, form_value(fields, "applies_name"))
    };
    restriction_rule_input(RestrictionRuleBody {
        name: form_value(fields, "name").to_owned(),
        object: form_value(fields, "object").to_owned(),
        applies_to,
        actions: fields
            .iter()
            .filter(|(k, _)| k == "actions")
            .map(|(_, v)| v.clone())
            .collect(),
        only: condition(fields, "only")?
            .ok_or_else(|| AppError::invalid("only", "give the condition records must meet"))?,
    })
}

/// The fields of a form, to carry from the what-if page to its confirm form (not the token:
/// the confirm form has its own).
fn carried(fields: &[(String, String)]) -> Vec<(String, String)> {
    fields
        .iter()
        .filter(|(k, _)| k != "csrf")
        .cloned()
        .collect()
}

async fn what_if_page(
    state: &AppState,
    console: &Console,
    change: &WhatIfChange,
    page: RuleWhatIfPage,
) -> PageResult {
    let report = state.warden.what_if(&console.subject, change).await?;
    render(&RuleWhatIfPage {
        lines: diff_lines(&report),
        users_examined: report.users_examined,
        cells: report.cells,
        counted_in_sql: report.counted_in_sql,
        ..page
    })
}

fn blank_page(console: &Console, current: &'static str) -> RuleWhatIfPage {
    RuleWhatIfPage {
        nav: console.nav(current),
        heading: String::new(),
        summary: Vec::new(),
        lines: Vec::new(),
        users_examined: 0,
        cells: 0,
        counted_in_sql: 0,
        action: String::new(),
        hidden: Vec::new(),
        button: "",
        back: "",
    }
}

fn summary(line: &RuleLine, restriction: bool) -> Vec<String> {
    if restriction {
        vec![
            format!("Applies to: {}", line.who),
            format!("On: {} ({})", line.object, line.what),
            format!("Only records meeting: {}", line.records),
        ]
    } else {
        vec![
            format!("Records: {} {}", line.object, line.records),
            format!("Shared with: {}", line.who),
            format!("Access: {}", line.what),
        ]
    }
}

/// `GET /admin/sharing-rules/new?…`: what the new rule would change, nothing changed yet.
pub(super) async fn sharing_preview(
    State(state): State<AppState>,
    console: Console,
    Query(params): Query<Vec<(String, String)>>,
) -> PageResult {
    let input = sharing_input(&params)?;
    let line = sharing_line(&RuleView {
        id: 0,
        rule: input.clone(),
    });
    let page = RuleWhatIfPage {
        heading: format!("What if the sharing rule “{}” is added?", input.name),
        summary: summary(&line, false),
        action: "/admin/sharing-rules/new".to_owned(),
        hidden: carried(&params),
        button: "Add this rule",
        back: "/admin/sharing-rules",
        ..blank_page(&console, "sharing-rules")
    };
    let change = WhatIfChange::PutSharingRule { id: None, input };
    what_if_page(&state, &console, &change, page).await
}

/// `GET /admin/restriction-rules/new?…`.
pub(super) async fn restriction_preview(
    State(state): State<AppState>,
    console: Console,
    Query(params): Query<Vec<(String, String)>>,
) -> PageResult {
    let input = restriction_input(&params)?;
    let line = restriction_line(&RuleView {
        id: 0,
        rule: input.clone(),
    });
    let page = RuleWhatIfPage {
        heading: format!("What if the restriction rule “{}” is added?", input.name),
        summary: summary(&line, true),
        action: "/admin/restriction-rules/new".to_owned(),
        hidden: carried(&params),
        button: "Add this rule",
        back: "/admin/restriction-rules",
        ..blank_page(&console, "restriction-rules")
    };
    let change = WhatIfChange::PutRestrictionRule { id: None, input };
    what_if_page(&state, &console, &change, page).await
}

/// `GET /admin/sharing-rules/{id}/delete`.
pub(super) async fn sharing_delete_preview(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> PageResult {
    let id = record_id(&id)?;
    let rules = state.warden.list_sharing_rules(&console.subject).await?;
    let rule = rules
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(AppError::not_found)?;
    let line = sharing_line(rule);
    let page = RuleWhatIfPage {
        heading: format!("What if the sharing rule “{}” is deleted?", line.name),
        summary: summary(&line, false),
        action: format!("/admin/sharing-rules/{id}/delete"),
        button: "Delete this rule",
        back: "/admin/sharing-rules",
        ..blank_page(&console, "sharing-rules")
    };
    let change = WhatIfChange::DeleteSharingRule { id };
    what_if_page(&state, &console, &change, page).await
}

/// `GET /admin/restriction-rules/{id}/delete`.
pub(super) async fn restriction_delete_preview(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> PageResult {
    let id = record_id(&id)?;
    let rules = state
        .warden
        .list_restriction_rules(&console.subject)
        .await?;
    let rule = rules
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(AppError::not_found)?;
    let line = restriction_line(rule);
    let page = RuleWhatIfPage {
        heading: format!("What if the restriction rule “{}” is deleted?", line.name),
        summary: summary(&line, true),
        action: format!("/admin/restriction-rules/{id}/delete"),
        button: "Delete this rule",
        back: "/admin/restriction-rules",
        ..blank_page(&console, "restriction-rules")
    };
    let change = WhatIfChange::DeleteRestrictionRule { id };
    what_if_page(&state, &console, &change, page).await
}

/// Applies a change read on its what-if page (four eyes may hold it).
async fn apply(state: &AppState, posted: &Posted, change: WhatIfChange, done: &str) -> PageResult {
    Ok(
        match state
            .warden
            .apply_what_if(&posted.console.subject, change)
            .await?
        {
            Outcome::Done(()) => see_other(done),
            Outcome::Pending(approval) => {
                see_other(&format!("/approvals/{}?notice=held", approval.id))
            }
        },
    )
}

/// `POST /admin/sharing-rules/new`.
pub(super) async fn sharing_create(State(state): State<AppState>, posted: Posted) -> PageResult {
    let input = sharing_input(&posted.fields)?;
    let change = WhatIfChange::PutSharingRule { id: None, input };
    apply(
        &state,
        &posted,
        change,
        "/admin/sharing-rules?notice=created",
    )
    .await
}

/// `POST /admin/restriction-rules/new`.
pub(super) async fn restriction_create(
    State(state): State<AppState>,
    posted: Posted,
) -> PageResult {
    let input = restriction_input(&posted.fields)?;
    let change = WhatIfChange::PutRestrictionRule { id: None, input };
    apply(
        &state,
        &posted,
        change,
        "/admin/restriction-rules?notice=created",
    )
    .await
}

/// `POST /admin/sharing-rules/{id}/delete`.
pub(super) async fn sharing_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let change = WhatIfChange::DeleteSharingRule {
        id: record_id(&id)?,
    };
    apply(
        &state,
        &posted,
        change,
        "/admin/sharing-rules?notice=deleted",
    )
    .await
}

/// `POST /admin/restriction-rules/{id}/delete`.
pub(super) async fn restriction_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let change = WhatIfChange::DeleteRestrictionRule {
        id: record_id(&id)?,
    };
    apply(
        &state,
        &posted,
        change,
        "/admin/restriction-rules?notice=deleted",
    )
    .await
}
