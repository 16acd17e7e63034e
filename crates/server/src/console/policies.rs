//! The approval policies pages: the list (open to everyone, as in the API), and for holders of
//! `manage_roles` a form to create, edit and delete a policy, posted to the same use cases as
//! `/api/v1/approval-policies` (under four eyes the change waits, and the page says so).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use serde_json::{json, Value as Json};
use warden_policy::{ObjectType, Permission};
use warden_service::store::criteria_to_json;
use warden_service::{
    ApprovalPolicyInput, ApprovalPolicyView, ApproversInput, Outcome, RequestersInput, ServiceError,
};

use super::customers::record_id;
use super::{render, see_other, Console, Nav, PageResult, Posted};
use crate::approvals::{policy_input, PolicyBody};
use crate::error::AppError;
use crate::AppState;

/// The operations a policy may catch (the service refuses any other).
const OPERATIONS: &[&str] = &["create", "update", "delete"];

struct PolicyLine {
    id: i64,
    name: String,
    object: &'static str,
    operations: String,
    fields: String,
    condition: String,
    requesters: String,
    approvers: String,
    deadline: String,
}

#[derive(Template)]
#[template(path = "policies.html")]
struct ListPage {
    nav: Nav,
    policies: Vec<PolicyLine>,
    editable: bool,
    four_eyes: bool,
    notice: &'static str,
}

fn requesters_text(requesters: &RequestersInput) -> String {
    match requesters {
        RequestersInput::Anyone => "anyone".to_owned(),
        RequestersInput::Role(role) => format!("role {role}"),
        RequestersInput::Unit(unit) => format!("unit {unit} and below"),
    }
}

fn approvers_text(required: u32, approvers: &ApproversInput) -> String {
    let who = match approvers {
        ApproversInput::Superior(1) => "the direct superior".to_owned(),
        ApproversInput::Superior(n) => format!("the superior {n} levels up"),
        ApproversInput::Role(role) => format!("role {role}"),
        ApproversInput::Users(users) => users.join(", "),
    };
    format!("{required} of {who}")
}

/// `GET /approvals/policies`: which changes wait for whom (open to everyone, as in the API,
/// so people know which of their changes will wait); edit and delete for `manage_roles`.
pub(super) async fn list(
    State(state): State<AppState>,
    console: Console,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> PageResult {
    let policies = state
        .warden
        .list_approval_policies(&console.subject)
        .await?;
    render(&ListPage {
        nav: console.nav("approvals"),
        editable: console.subject.can(Permission::ManageRoles),
        four_eyes: state.warden.four_eyes(&console.subject),
        notice: match params.get("notice").map(String::as_str) {
            Some("created") => "The policy is created. It catches changes from the next request.",
            Some("saved") => "The policy is saved. It holds from the next request.",
            Some("deleted") => "The policy is deleted. Requests it caught keep their steps.",
            _ => "",
        },
        policies: policies
            .iter()
            .map(|view| {
                let p = &view.input;
                PolicyLine {
                    id: view.id,
                    name: p.name.clone(),
                    object: p.object.as_str(),
                    operations: p
                        .operations
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    fields: p.fields.join(", "),
                    condition: p
                        .when
                        .as_ref()
                        .map(|c| criteria_to_json(c).to_string())
                        .unwrap_or_default(),
                    requesters: requesters_text(&p.requesters),
                    approvers: approvers_text(p.required, &p.approvers),
                    deadline: match p.expires_after_hours {
                        Some(hours) if p.escalate => format!("{hours} h, then one level up"),
                        Some(hours) => format!("{hours} h, then expires"),
                        None => String::new(),
                    },
                }
            })
            .collect(),
    })
}

/// The form's values as text, so that a refused form comes back exactly as it was typed.
#[derive(Debug, Clone)]
struct PolicyForm {
    name: String,
    object: String,
    operations: Vec<String>,
    fields: String,
    condition: String,
    /// anyone, role or unit
    requesters_kind: String,
    requesters_name: String,
    /// superior, role or users
    approvers_kind: String,
    /// Levels up (superior), a role's name, or usernames separated by commas.
    approvers_value: String,
    required: String,
    expires: String,
    escalate: bool,
}

impl Default for PolicyForm {
    fn default() -> Self {
        PolicyForm {
            name: String::new(),
            object: ObjectType::Customers.as_str().to_owned(),
            operations: vec!["update".to_owned()],
            fields: String::new(),
            condition: String::new(),
            requesters_kind: "anyone".to_owned(),
            requesters_name: String::new(),
            approvers_kind: "superior".to_owned(),
            approvers_value: "1".to_owned(),
            required: "1".to_owned(),
            expires: String::new(),
            escalate: false,
        }
    }
}

impl PolicyForm {
    fn of(input: &ApprovalPolicyInput) -> PolicyForm {
        let (requesters_kind, requesters_name) = match &input.requesters {
            RequestersInput::Anyone => ("anyone", String::new()),
            RequestersInput::Role(name) => ("role", name.clone()),
            RequestersInput::Unit(name) => ("unit", name.clone()),
        };
        let (approvers_kind, approvers_value) = match &input.approvers {
            ApproversInput::Superior(levels) => ("superior", levels.to_string()),
            ApproversInput::Role(name) => ("role", name.clone()),
            ApproversInput::Users(users) => ("users", users.join(", ")),
        };
        PolicyForm {
            name: input.name.clone(),
            object: input.object.as_str().to_owned(),
            operations: input
                .operations
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            fields: input.fields.join(", "),
            condition: input
                .when
                .as_ref()
                .map(|c| criteria_to_json(c).to_string())
                .unwrap_or_default(),
            requesters_kind: requesters_kind.to_owned(),
            requesters_name,
            approvers_kind: approvers_kind.to_owned(),
            approvers_value,
            required: input.required.to_string(),
            expires: input
                .expires_after_hours
                .map(|h| h.to_string())
                .unwrap_or_default(),
            escalate: input.escalate,
        }
    }

    fn posted(posted: &Posted) -> PolicyForm {
        PolicyForm {
            name: posted.get("name").to_owned(),
            object: posted.get("object").to_owned(),
            operations: posted
                .fields
                .iter()
                .filter(|(key, _)| key == "operations")
                .map(|(_, value)| value.clone())
                .collect(),
            fields: posted.get("fields").to_owned(),
            condition: posted.get("condition").to_owned(),
            requesters_kind: posted.get("requesters_kind").to_owned(),
            requesters_name: posted.get("requesters_name").to_owned(),
            approvers_kind: posted.get("approvers_kind").to_owned(),
            approvers_value: posted.get("approvers_value").to_owned(),
            required: posted.get("required").to_owned(),
            expires: posted.get("expires").to_owned(),
            escalate: !posted.get("escalate").is_empty(),
        }
    }

    fn has(&self, operation: &str) -> bool {
        self.operations.iter().any(|o| o == operation)
    }

    /// The API's body for these values: the form is read by the API's own reader
    /// ([`policy_input`]), so console and API accept exactly the same policies.
    fn body(&self, version: Option<i64>) -> Result<PolicyBody, AppError> {
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let name = self.requesters_name.trim();
        let requesters = match self.requesters_kind.as_str() {
            "anyone" => json!("anyone"),
            "role" => json!({ "role": name }),
            "unit" => json!({ "unit": name }),
            _ => {
                return Err(AppError::invalid(
                    "requesters",
                    "choose anyone, a role or a unit",
                ))
            }
        };
        let value = self.approvers_value.trim();
        let approvers = match self.approvers_kind.as_str() {
            "superior" => json!({ "superior": value.parse::<u32>().map_err(|_| {
                AppError::invalid("approvers", "the superior takes a number of levels up (1: the direct superior)")
            })? }),
            "role" => json!({ "role": value }),
            "users" => json!({ "users": list(value) }),
            _ => {
                return Err(AppError::invalid(
                    "approvers",
                    "choose a superior, a role or named users",
                ))
            }
        };
        let condition = self.condition.trim();
        let when = if condition.is_empty() {
            None
        } else {
            Some(serde_json::from_str::<Json>(condition).map_err(|e| {
                AppError::invalid("condition", format!("is not JSON ({e}); see the example"))
            })?)
        };
        let number = |text: &str, field: &str| -> Result<Option<u32>, AppError> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse::<u32>()
                .map(Some)
                .map_err(|_| AppError::invalid(field.to_owned(), "must be a whole number"))
        };
        Ok(PolicyBody {
            name: self.name.clone(),
            object: self.object.clone(),
            operations: self.operations.clone(),
            fields: list(&self.fields),
            when,
            requesters: Some(requesters),
            approvers,
            required: Some(number(&self.required, "required")?.unwrap_or(1)),
            expires_after_hours: number(&self.expires, "expires")?,
            escalate: self.escalate,
            version,
        })
    }
}

#[derive(Template)]
#[template(path = "policy_edit.html")]
struct EditPage {
    nav: Nav,
    /// `None` for a new policy.
    id: Option<i64>,
    version: i64,
    form: PolicyForm,
    objects: Vec<&'static str>,
    operations: &'static [&'static str],
    roles: Vec<String>,
    units: Vec<String>,
    /// Each object's fields, for the hint beside the fields box.
    object_fields: Vec<(&'static str, String)>,
    /// The service's refusal of the last submission, shown above the form.
    error: String,
    four_eyes: bool,
}

async fn edit_page(
    state: &AppState,
    console: &Console,
    id: Option<i64>,
    version: i64,
    form: PolicyForm,
    error: String,
) -> PageResult<EditPage> {
    let roles = state
        .warden
        .list_roles(&console.subject)
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    let units = state
        .warden
        .list_units(&console.subject)
        .await?
        .into_iter()
        .map(|u| u.name)
        .collect();
    Ok(EditPage {
        nav: console.nav("approvals"),
        id,
        version,
        form,
        objects: ObjectType::ALL.iter().map(|o| o.as_str()).collect(),
        operations: OPERATIONS,
        roles,
        units,
        object_fields: ObjectType::ALL
            .iter()
            .map(|o| {
                let names: Vec<&str> = warden_policy::schema::schema(*o)
                    .fields
                    .iter()
                    .map(|f| f.name)
                    .collect();
                (o.as_str(), names.join(", "))
            })
            .collect(),
        error,
        four_eyes: state.warden.four_eyes(&console.subject),
    })
}

/// The policy a route names (404 when there is none).
async fn policy_of(
    state: &AppState,
    console: &Console,
    id: &str,
) -> PageResult<ApprovalPolicyView> {
    let id = record_id(id)?;
    state
        .warden
        .list_approval_policies(&console.subject)
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| AppError::not_found().into())
}

/// `GET /approvals/policies/new` (needs `manage_roles`).
pub(super) async fn new_form(State(state): State<AppState>, console: Console) -> PageResult {
    console.subject.require(Permission::ManageRoles)?;
    let page = edit_page(
        &state,
        &console,
        None,
        0,
        PolicyForm::default(),
        String::new(),
    )
    .await?;
    render(&page)
}

/// `GET /approvals/policies/{id}` (needs `manage_roles`): the policy in the form.
pub(super) async fn edit_form(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> PageResult {
    console.subject.require(Permission::ManageRoles)?;
    let view = policy_of(&state, &console, &id).await?;
    let page = edit_page(
        &state,
        &console,
        Some(view.id),
        view.version,
        PolicyForm::of(&view.input),
        String::new(),
    )
    .await?;
    render(&page)
}

/// A refusal the person filling the form can mend (a wrong value, a policy changed
/// meanwhile): the form again, as typed, with the service's words above it.
fn mendable(error: &AppError) -> Option<(StatusCode, String)> {
    match error {
        AppError::Service(e @ ServiceError::Invalid { .. }) => {
            Some((StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
        }
        AppError::Service(e @ ServiceError::Conflict(_)) => {
            Some((StatusCode::CONFLICT, e.to_string()))
        }
        _ => None,
    }
}

/// Creates (`id` none) or replaces a policy from the posted form.
async fn save(state: &AppState, posted: Posted, id: Option<i64>) -> PageResult {
    let form = PolicyForm::posted(&posted);
    let version = posted.get("version").parse::<i64>().ok();
    let console = &posted.console;
    let result = async {
        let (input, version) = policy_input(form.body(version)?)?;
        let outcome = match id {
            None => {
                state
                    .warden
                    .create_approval_policy(&console.subject, input)
                    .await?
            }
            Some(id) => {
                state
                    .warden
                    .update_approval_policy(&console.subject, id, version, input)
                    .await?
            }
        };
        Ok::<_, AppError>(outcome)
    }
    .await;
    match result {
        Ok(Outcome::Done(_)) => Ok(see_other(match id {
            None => "/approvals/policies?notice=created",
            Some(_) => "/approvals/policies?notice=saved",
        })),
        Ok(Outcome::Pending(approval)) => Ok(see_other(&format!(
            "/approvals/{}?notice=held",
            approval.id
        ))),
        Err(error) => {
            let Some((status, message)) = mendable(&error) else {
                return Err(error.into());
            };
            let page = edit_page(state, console, id, version.unwrap_or(0), form, message).await?;
            Ok((status, Html(page.render()?)).into_response())
        }
    }
}

/// `POST /approvals/policies/new`.
pub(super) async fn create(State(state): State<AppState>, posted: Posted) -> PageResult {
    save(&state, posted, None).await
}

/// `POST /approvals/policies/{id}` with the `version` the form was read at.
pub(super) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let id = record_id(&id)?;
    save(&state, posted, Some(id)).await
}

/// `POST /approvals/policies/{id}/delete`.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let id = record_id(&id)?;
    Ok(
        match state
            .warden
            .delete_approval_policy(&posted.console.subject, id)
            .await?
        {
            Outcome::Done(()) => see_other("/approvals/policies?notice=deleted"),
            Outcome::Pending(approval) => {
                see_other(&format!("/approvals/{}?notice=held", approval.id))
            }
        },
    )
}
