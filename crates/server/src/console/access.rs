//! The access-rules page (administrators): the IP allow-list, login hours and second-factor
//! requirement of each role and user — shown and edited through the service's
//! `access_rules` / `set_access_rules` (the API's `/roles/{id}/access`, `/users/{name}/access`),
//! the form read by the API's own parser (`crate::security::rules_from_body`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use warden_policy::access::AccessRules;
use warden_policy::{Permission, RoleId};
use warden_service::{AccessTarget, Outcome, ServiceError};

use super::{form_value, render, see_other, Console, Nav, PageResult, Posted};
use crate::error::AppError;
use crate::security::{rules_from_body, rules_to_body, AccessRulesJson, LoginHoursJson, DAYS};
use crate::AppState;

/// One role's rules in a line.
struct RoleLine {
    target: String,
    name: String,
    summary: String,
}

/// The edit form of one role's or user's rules.
struct Editing {
    /// `role:ID` or `user:NAME`.
    target: String,
    label: String,
    ip_allow: String,
    hours_on: bool,
    time_zone: String,
    days: Vec<(&'static str, bool)>,
    from: String,
    to: String,
    mfa_required: bool,
}

#[derive(Template)]
#[template(path = "access_rules.html")]
struct AccessPage {
    nav: Nav,
    roles: Vec<RoleLine>,
    /// `(target, label)` for the picker: roles, and users for user managers.
    targets: Vec<(String, String)>,
    editing: Option<Editing>,
    notice: &'static str,
}

fn summary(rules: &AccessRules) -> String {
    let body = rules_to_body(rules);
    let mut parts = Vec::new();
    if !body.ip_allow.is_empty() {
        parts.push(format!("from {}", body.ip_allow.join(", ")));
    }
    if let Some(h) = &body.login_hours {
        parts.push(format!(
            "{} {}–{} ({})",
            h.days.join(" "),
            h.from,
            h.to,
            h.time_zone
        ));
    }
    if body.mfa_required {
        parts.push("second factor required".to_owned());
    }
    if parts.is_empty() {
        "no rule: any address, any time".to_owned()
    } else {
        parts.join(" · ")
    }
}

/// `role:ID` or `user:NAME` as the service's target.
fn target(text: &str) -> Result<AccessTarget<'_>, AppError> {
    match text.split_once(':') {
        Some(("role", id)) => id
            .parse::<i64>()
            .map(|id| AccessTarget::Role(RoleId(id)))
            .map_err(|_| AppError::not_found()),
        Some(("user", name)) if !name.is_empty() => Ok(AccessTarget::User(name)),
        _ => Err(AppError::invalid("target", "choose a role or a user")),
    }
}

/// `GET /admin/access-rules?target=`: every role's rules (manage_roles), and the form of the
/// chosen role or user.
pub(super) async fn page(
    State(state): State<AppState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> PageResult {
    let subject = &console.subject;
    let (roles_allowed, users_allowed) = (
        subject.can(Permission::ManageRoles),
        subject.can(Permission::ManageUsers),
    );
    if !roles_allowed && !users_allowed {
        return Err(ServiceError::Forbidden(
            "access rules are managed with manage_roles (roles) or manage_users (users)".into(),
        )
        .into());
    }
    let mut roles = Vec::new();
    let mut targets = Vec::new();
    if roles_allowed {
        for role in state.warden.list_roles(subject).await? {
            let rules = state
                .warden
                .access_rules(subject, AccessTarget::Role(role.id))
                .await?;
            let target = format!("role:{}", role.id.0);
            targets.push((target.clone(), format!("role {}", role.name)));
            roles.push(RoleLine {
                target,
                name: role.name.clone(),
                summary: summary(&rules),
            });
        }
    }
    if users_allowed {
        let mut users = state.warden.list_users(subject).await?;
        users.sort_by(|a, b| a.username.cmp(&b.username));
        targets.extend(users.iter().map(|u| {
            (
                format!("user:{}", u.username),
                format!("user {}", u.username),
            )
        }));
    }
    let chosen = params.get("target").map(String::as_str).unwrap_or_default();
    let editing = if chosen.is_empty() {
        None
    } else {
        let rules = state.warden.access_rules(subject, target(chosen)?).await?;
        let body = rules_to_body(&rules);
        let hours = body.login_hours.as_ref();
        Some(Editing {
            target: chosen.to_owned(),
            label: targets
                .iter()
                .find(|(t, _)| t == chosen)
                .map_or_else(|| chosen.to_owned(), |(_, label)| label.clone()),
            ip_allow: body.ip_allow.join("\n"),
            hours_on: hours.is_some(),
            time_zone: hours.map_or_else(|| "UTC".to_owned(), |h| h.time_zone.clone()),
            days: DAYS
                .iter()
                .map(|d| (*d, hours.is_some_and(|h| h.days.iter().any(|x| x == d))))
                .collect(),
            from: hours.map_or_else(|| "09:00".to_owned(), |h| h.from.clone()),
            to: hours.map_or_else(|| "18:00".to_owned(), |h| h.to.clone()),
            mfa_required: body.mfa_required,
        })
    };
    render(&AccessPage {
        nav: console.nav("access-rules"),
        roles,
        targets,
        editing,
        notice: match params.get("notice").map(String::as_str) {
            Some("saved") => "Saved. The rules hold from the next request, on every node.",
            _ => "",
        },
    })
}

/// `POST /admin/access-rules`: the form as the API's body, parsed and checked by its parser.
pub(super) async fn save(State(state): State<AppState>, posted: Posted) -> PageResult {
    let fields = &posted.fields;
    let chosen = form_value(fields, "target").to_owned();
    let checked = |name: &str| !form_value(fields, name).is_empty();
    let body = AccessRulesJson {
        ip_allow: form_value(fields, "ip_allow")
            .split(|c: char| c == '\n' || c == ',' || c.is_whitespace())
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect(),
        login_hours: checked("hours_on").then(|| LoginHoursJson {
            time_zone: form_value(fields, "time_zone").trim().to_owned(),
            days: fields
                .iter()
                .filter(|(k, _)| k == "days")
                .map(|(_, v)| v.clone())
                .collect(),
            from: form_value(fields, "from").trim().to_owned(),
            to: form_value(fields, "to").trim().to_owned(),
        }),
        mfa_required: checked("mfa_required"),
    };
    let rules = rules_from_body(body)?;
    let outcome = state
        .warden
        .set_access_rules(&posted.console.subject, target(&chosen)?, rules)
        .await?;
    Ok(match outcome {
        Outcome::Done(_) => see_other(&format!(
            "/admin/access-rules?target={}&notice=saved",
            urlencoding(&chosen)
        )),
        Outcome::Pending(approval) => see_other(&format!("/approvals/{}?notice=held", approval.id)),
    })
}

/// A query-string value: the target names a user, whose name may hold any character.
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
