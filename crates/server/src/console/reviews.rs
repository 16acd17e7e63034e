//! Access reviews: for reviewers, the campaigns with items for them and each of their
//! reports' role assignments to keep or revoke; for holders of `manage_users`, every campaign,
//! opening one and closing it.

use askama::Template;
use axum::extract::{Path, State};
use warden_policy::Permission;
use warden_service::{CampaignInput, CampaignView, ReviewScope, ServiceError};

use super::customers::record_id;
use super::{render, see_other, when, Console, Nav, PageResult, Posted};
use crate::AppState;

/// Campaign ids come from one sequence and campaigns are never deleted; the store has no
/// listing of campaigns yet, so the index reads them by id until this many ids in a row are
/// missing (a sequence may skip a value after a failed insert).
const MISSING_IN_A_ROW: u32 = 3;
/// At most this many campaigns are read for the index.
const MAX_CAMPAIGNS: i64 = 500;

struct CampaignLine {
    id: i64,
    name: String,
    state: String,
    due: String,
    mine: usize,
    undecided: usize,
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct IndexPage {
    nav: Nav,
    campaigns: Vec<CampaignLine>,
}

fn invalid(field: &str, message: &str) -> ServiceError {
    ServiceError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The caller's items of every campaign, newest campaign first.
async fn my_campaigns(state: &AppState, console: &Console) -> PageResult<Vec<CampaignView>> {
    let mut found = Vec::new();
    let mut missing = 0;
    let mut id = 1;
    while missing < MISSING_IN_A_ROW && id <= MAX_CAMPAIGNS {
        match state.warden.my_review_items(&console.subject, id).await {
            Ok(view) => {
                missing = 0;
                found.push(view);
            }
            Err(ServiceError::NotFound) => missing += 1,
            Err(other) => return Err(other.into()),
        }
        id += 1;
    }
    found.reverse();
    Ok(found)
}

/// `GET /reviews`.
pub(super) async fn index(State(state): State<AppState>, console: Console) -> PageResult {
    let campaigns = my_campaigns(&state, &console).await?;
    // Those who open and close campaigns see every one; reviewers those with items for them.
    let all = console.subject.can(Permission::ManageUsers);
    render(&IndexPage {
        nav: console.nav("reviews"),
        campaigns: campaigns
            .iter()
            .filter(|c| all || !c.items.is_empty())
            .map(|c| CampaignLine {
                id: c.campaign.id,
                name: c.campaign.name.clone(),
                state: c.campaign.state.clone(),
                due: when(c.campaign.due_at),
                mine: c.items.len(),
                undecided: c.items.iter().filter(|i| i.decision.is_none()).count(),
            })
            .collect(),
    })
}

struct ItemLine {
    id: i64,
    user: String,
    role: String,
    decision: String,
    outcome: String,
    comment: String,
}

#[derive(Template)]
#[template(path = "review.html")]
struct CampaignPage {
    nav: Nav,
    id: i64,
    name: String,
    state: String,
    due: String,
    undecided_rule: String,
    items: Vec<ItemLine>,
    can_close: bool,
}

/// `GET /reviews/{id}`: the caller's items of one campaign.
pub(super) async fn campaign(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> PageResult {
    let id = record_id(&id)?;
    let view = state.warden.my_review_items(&console.subject, id).await?;
    let snapshot = &console.subject.snapshot;
    render(&CampaignPage {
        can_close: view.campaign.state == "open" && console.subject.can(Permission::ManageUsers),
        nav: console.nav("reviews"),
        id,
        name: view.campaign.name.clone(),
        state: view.campaign.state.clone(),
        due: when(view.campaign.due_at),
        undecided_rule: view.campaign.undecided.clone(),
        items: view
            .items
            .iter()
            .map(|item| ItemLine {
                id: item.id,
                user: snapshot
                    .user(item.user)
                    .map(|u| u.username().to_owned())
                    .unwrap_or_else(|| format!("user {}", item.user.0)),
                role: snapshot
                    .role_name(item.role)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("role {}", item.role.0)),
                decision: item.decision.clone().unwrap_or_default(),
                outcome: item.outcome.clone().unwrap_or_default(),
                comment: item.comment.clone(),
            })
            .collect(),
    })
}

/// `POST /reviews/{id}/items/{item}` with `decision` = keep | revoke and a `comment`.
pub(super) async fn decide(
    State(state): State<AppState>,
    Path((id, item)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let id = record_id(&id)?;
    let item = record_id(&item)?;
    let revoke = match posted.get("decision") {
        "keep" => false,
        "revoke" => true,
        _ => {
            return Err(ServiceError::Invalid {
                field: "decision".into(),
                message: "must be keep or revoke".into(),
            }
            .into())
        }
    };
    state
        .warden
        .decide_review_item(
            &posted.console.subject,
            id,
            item,
            revoke,
            posted.get("comment"),
        )
        .await?;
    Ok(see_other(&format!("/reviews/{id}")))
}

/// `POST /reviews` (needs `manage_users`): opens a campaign — `name`, `scope` (`all`,
/// `unit:NAME` or `role:NAME`), `due` (a date, the end of that day in UTC) and `undecided`
/// (`keep` or `revoke`).
pub(super) async fn open(State(state): State<AppState>, posted: Posted) -> PageResult {
    let scope = match posted.get("scope").trim() {
        "" | "all" => ReviewScope::All,
        other => match other.split_once(':') {
            Some(("unit", unit)) => ReviewScope::Unit(unit.trim().to_owned()),
            Some(("role", role)) => ReviewScope::Role(role.trim().to_owned()),
            _ => return Err(invalid("scope", "must be all, unit:NAME or role:NAME").into()),
        },
    };
    let due = posted.get("due").trim();
    let due_at = format!("{due}T23:59:59Z")
        .parse::<jiff::Timestamp>()
        .map_err(|_| invalid("due", "must be a date such as 2026-12-31"))?
        .as_millisecond();
    let revoke_undecided = match posted.get("undecided") {
        "revoke" => true,
        "" | "keep" => false,
        _ => return Err(invalid("undecided", "must be keep or revoke").into()),
    };
    let view = state
        .warden
        .open_campaign(
            &posted.console.subject,
            CampaignInput {
                name: posted.get("name").to_owned(),
                scope,
                due_at,
                revoke_undecided,
            },
        )
        .await?;
    Ok(see_other(&format!("/reviews/{}", view.campaign.id)))
}

/// `POST /reviews/{id}/close` (needs `manage_users`): decisions apply, revocations hold from
/// the next request.
pub(super) async fn close(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let id = record_id(&id)?;
    state
        .warden
        .close_campaign(&posted.console.subject, id)
        .await?;
    Ok(see_other(&format!("/reviews/{id}")))
}
