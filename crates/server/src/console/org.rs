//! The organisation pages (administrators): the unit tree and the reporting line, and "move a
//! user to a manager" — the exact what-if diff first, then a confirm button that applies the
//! very same change.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use warden_service::{Outcome, UnitView, UserView, WhatIfChange, WhatIfReport};

use super::{render, see_other, Console, Nav, PageResult, Posted};
use crate::error::AppError;
use crate::AppState;

/// Indentation classes stop here: deeper trees still read, just flatter.
const MAX_INDENT: usize = 9;

struct TreeLine {
    indent: usize,
    name: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "org.html")]
struct TreePage {
    nav: Nav,
    units: Vec<TreeLine>,
    people: Vec<TreeLine>,
    usernames: Vec<String>,
    notice: &'static str,
}

fn unit_lines(units: &[UnitView], users: &[UserView]) -> Vec<TreeLine> {
    fn walk(
        units: &[UnitView],
        users: &[UserView],
        parent: Option<&str>,
        depth: usize,
        out: &mut Vec<TreeLine>,
    ) {
        for unit in units.iter().filter(|u| u.parent.as_deref() == parent) {
            // A cycle cannot be stored (the service refuses it); the bound keeps a bug finite.
            if depth > 64 {
                return;
            }
            let members: Vec<&str> = users
                .iter()
                .filter(|u| u.unit == unit.name)
                .map(|u| u.username.as_str())
                .collect();
            out.push(TreeLine {
                indent: depth.min(MAX_INDENT),
                name: unit.name.clone(),
                detail: members.join(", "),
            });
            walk(units, users, Some(&unit.name), depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(units, users, None, 0, &mut out);
    out
}

fn people_lines(users: &[UserView]) -> Vec<TreeLine> {
    fn walk(users: &[UserView], manager: Option<&str>, depth: usize, out: &mut Vec<TreeLine>) {
        for user in users.iter().filter(|u| u.manager.as_deref() == manager) {
            if depth > 64 {
                return;
            }
            let roles: Vec<&str> = user.roles.iter().map(|(r, _)| r.as_str()).collect();
            out.push(TreeLine {
                indent: depth.min(MAX_INDENT),
                name: user.username.clone(),
                detail: format!(
                    "{} · {} · {}{}",
                    user.display_name,
                    user.unit,
                    roles.join(", "),
                    if user.disabled { " · disabled" } else { "" }
                ),
            });
            walk(users, Some(&user.username), depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(users, None, 0, &mut out);
    out
}

/// `GET /admin/org` (needs `manage_users`, as the API's user list).
pub(super) async fn tree(
    State(state): State<AppState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> PageResult {
    let users = state.warden.list_users(&console.subject).await?;
    let units = state.warden.list_units(&console.subject).await?;
    let mut usernames: Vec<String> = users.iter().map(|u| u.username.clone()).collect();
    usernames.sort();
    render(&TreePage {
        nav: console.nav("org"),
        units: unit_lines(&units, &users),
        people: people_lines(&users),
        usernames,
        notice: match params.get("notice").map(String::as_str) {
            Some("moved") => "Moved. The change holds from the next request.",
            _ => "",
        },
    })
}

/// The move a form names: `user`, and `manager` (empty for "no manager").
fn move_of(fields: &[(String, String)]) -> Result<WhatIfChange, AppError> {
    let user = super::form_value(fields, "user").trim();
    if user.is_empty() {
        return Err(AppError::invalid("user", "choose the user to move"));
    }
    let manager = super::form_value(fields, "manager").trim();
    Ok(WhatIfChange::MoveUser {
        user: user.to_owned(),
        manager: Some((!manager.is_empty()).then(|| manager.to_owned())),
        unit: None,
    })
}

pub(super) struct DiffLine {
    pub user: String,
    /// The actions with this same change, e.g. "read, update, delete".
    pub action: String,
    pub gained: u64,
    pub lost: u64,
    pub samples: String,
}

/// The what-if report as lines for people. A change usually alters every action of a user
/// alike: one line for the actions of a user whose change is the same, so the page reads
/// "who gains what", not a long table.
pub(super) fn diff_lines(report: &WhatIfReport) -> Vec<DiffLine> {
    let sample = |ids: &[i64]| {
        ids.iter()
            .map(|id| format!("#{id}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut lines: Vec<DiffLine> = Vec::new();
    for c in &report.changes {
        let samples = if c.gained > 0 {
            sample(&c.gained_samples)
        } else {
            sample(&c.lost_samples)
        };
        match lines.last_mut() {
            Some(last)
                if last.user == c.user
                    && last.gained == c.gained
                    && last.lost == c.lost
                    && last.samples == samples =>
            {
                last.action.push_str(", ");
                last.action.push_str(c.action.as_str());
            }
            _ => lines.push(DiffLine {
                user: c.user.clone(),
                action: c.action.as_str().to_owned(),
                gained: c.gained,
                lost: c.lost,
                samples,
            }),
        }
    }
    lines
}

#[derive(Template)]
#[template(path = "whatif.html")]
struct PreviewPage {
    nav: Nav,
    user: String,
    manager: String,
    lines: Vec<DiffLine>,
    users_examined: usize,
    cells: usize,
}

/// `GET /admin/org/move?user=&manager=`: what the move would change, without changing it.
pub(super) async fn preview(
    State(state): State<AppState>,
    console: Console,
    Query(params): Query<Vec<(String, String)>>,
) -> PageResult {
    let change = move_of(&params)?;
    let report = state.warden.what_if(&console.subject, &change).await?;
    let lines = diff_lines(&report);
    render(&PreviewPage {
        nav: console.nav("org"),
        user: super::form_value(&params, "user").trim().to_owned(),
        manager: super::form_value(&params, "manager").trim().to_owned(),
        lines,
        users_examined: report.users_examined,
        cells: report.cells,
    })
}

/// `POST /admin/org/move`: applies the move read on the preview (through four eyes when on).
pub(super) async fn apply(State(state): State<AppState>, posted: Posted) -> PageResult {
    let change = move_of(&posted.fields)?;
    let outcome = state
        .warden
        .apply_what_if(&posted.console.subject, change)
        .await?;
    Ok(match outcome {
        Outcome::Done(()) => see_other("/admin/org?notice=moved"),
        Outcome::Pending(approval) => see_other(&format!("/approvals/{}?notice=held", approval.id)),
    })
}
