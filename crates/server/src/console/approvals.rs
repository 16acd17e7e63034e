//! The approvals pages: the inbox (requests the caller may decide now), "my requests", one
//! request with its proposed change and history, and approve / reject / withdraw (the
//! approval policies are `policies.rs`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use warden_service::{ApprovalRole, ApprovalView, PENDING};

use super::customers::{notice, record_id};
use super::{render, see_other, value_text, when, Console, Nav, PageResult, Posted};
use crate::error::AppError;
use crate::AppState;

/// Requests per page.
const PAGE_SIZE: u32 = 50;

struct Line {
    id: i64,
    summary: String,
    requester: String,
    state: String,
    created: String,
    /// The record, when the request is about one the caller may open.
    record_link: Option<String>,
    approvers: String,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ListPage {
    nav: Nav,
    tab: &'static str,
    state: String,
    lines: Vec<Line>,
    next: Option<i64>,
    can_see_all: bool,
}

fn record_link(view: &ApprovalView) -> Option<String> {
    match (view.object, view.record_id) {
        (Some(warden_policy::ObjectType::Customers), Some(id))
            if view.operation != "delete" || view.state == PENDING =>
        {
            Some(format!("/customers/{id}"))
        }
        _ => None,
    }
}

/// `GET /approvals?tab=inbox|mine|all&state=&cursor=`.
pub(super) async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> PageResult {
    let (tab, role) = match params.get("tab").map(String::as_str) {
        Some("mine") => ("mine", ApprovalRole::Mine),
        Some("all") => ("all", ApprovalRole::All),
        _ => ("inbox", ApprovalRole::Inbox),
    };
    // The inbox is what waits for a decision; the other tabs show every state by default.
    let wanted = match params.get("state").map(String::as_str) {
        Some("any") => String::new(),
        Some(state) if !state.is_empty() => state.to_owned(),
        _ if tab == "inbox" => PENDING.to_owned(),
        _ => String::new(),
    };
    let cursor = params
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| AppError::invalid("cursor", "is not a cursor of this list"))
        })
        .transpose()?;
    let (items, next) = state
        .warden
        .list_approvals(
            &console.subject,
            (!wanted.is_empty()).then_some(wanted.as_str()),
            role,
            cursor,
            PAGE_SIZE,
        )
        .await?;
    let nav = console.nav("approvals");
    render(&ListPage {
        can_see_all: nav.manage_roles || nav.view_audit,
        nav,
        tab,
        state: wanted,
        lines: items
            .iter()
            .map(|view| Line {
                id: view.id,
                summary: view.summary.clone(),
                requester: view.requester.clone(),
                state: view.state.clone(),
                created: when(view.created_at),
                record_link: record_link(view),
                approvers: view
                    .steps
                    .iter()
                    .flat_map(|s| s.approvers.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
        next,
    })
}

struct StepLine {
    policy: String,
    approvers: String,
    approved_by: String,
    required: u32,
}

struct FieldLine {
    field: String,
    /// `None` when the value is hidden from the viewer (it changes, but not to what).
    value: Option<String>,
    masked: bool,
}

struct EventLine {
    at: String,
    actor: String,
    event: String,
    comment: String,
}

#[derive(Template)]
#[template(path = "approval.html")]
struct RequestPage {
    nav: Nav,
    id: i64,
    summary: String,
    operation: String,
    kind: String,
    requester: String,
    state: String,
    reason: String,
    created: String,
    expires: String,
    record_link: Option<String>,
    steps: Vec<StepLine>,
    fields: Vec<FieldLine>,
    owner: Option<String>,
    organisation_change: Option<String>,
    events: Vec<EventLine>,
    can_decide: bool,
    can_withdraw: bool,
    notice: &'static str,
}

/// `GET /approvals/{id}`: 404 unless the caller requested, may decide or oversees it.
pub(super) async fn one(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> PageResult {
    let id = record_id(&id)?;
    let view = state.warden.get_approval(&console.subject, id).await?;
    render(&RequestPage {
        nav: console.nav("approvals"),
        id,
        summary: view.summary.clone(),
        operation: view.operation.clone(),
        kind: view.kind.clone(),
        requester: view.requester.clone(),
        can_withdraw: view.state == PENDING && view.requester == console.subject.username,
        state: view.state.clone(),
        reason: view.reason.clone(),
        created: when(view.created_at),
        expires: view.expires_at.map(when).unwrap_or_default(),
        record_link: record_link(&view),
        steps: view
            .steps
            .iter()
            .map(|s| StepLine {
                policy: s.policy.clone(),
                approvers: s.approvers.join(", "),
                approved_by: s.approved_by.join(", "),
                required: s.required,
            })
            .collect(),
        fields: view
            .fields
            .iter()
            .map(|f| FieldLine {
                field: f.field.clone(),
                value: f.value.as_ref().map(value_text),
                masked: f.access == warden_policy::FieldAccess::Masked,
            })
            .collect(),
        owner: view.owner.clone(),
        organisation_change: view.organisation_change.clone(),
        events: view
            .events
            .iter()
            .map(|e| EventLine {
                at: when(e.at),
                actor: e.actor.clone(),
                event: e.event.clone(),
                comment: e.comment.clone(),
            })
            .collect(),
        can_decide: view.can_decide,
        notice: notice(&params),
    })
}

/// `POST /approvals/{id}/approve|reject|withdraw` with an optional `comment`.
pub(super) async fn decide(
    State(state): State<AppState>,
    Path((id, decision)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let id = record_id(&id)?;
    let subject = &posted.console.subject;
    let comment = posted.get("comment");
    let view = match decision.as_str() {
        "approve" => {
            state
                .warden
                .decide_approval(subject, id, true, comment)
                .await?
        }
        "reject" => {
            state
                .warden
                .decide_approval(subject, id, false, comment)
                .await?
        }
        "withdraw" => {
            state.warden.withdraw_approval(subject, id, comment).await?;
            return Ok(see_other(&format!("/approvals/{id}?notice=withdrawn")));
        }
        _ => return Err(AppError::not_found().into()),
    };
    let notice = if view.state == "applied" {
        "applied"
    } else {
        "decided"
    };
    Ok(see_other(&format!("/approvals/{id}?notice={notice}")))
}
