//! The share and team forms of the customer record page: give a share to a user, a unit or a
//! role, add a team member, take either back. Each is the API's sharing use case with the
//! console's subject; the page offers a form only when `Warden::sharing_rights` says the call
//! would be accepted, and a refused call shows the service's own message.

use axum::extract::{Path, State};
use warden_policy::{ObjectType, ShareAccess};
use warden_service::PrincipalName;

use super::customers::record_id;
use super::{see_other, PageResult, Posted};
use crate::error::AppError;
use crate::AppState;

const OBJECT: ObjectType = ObjectType::Customers;

fn access(posted: &Posted) -> Result<ShareAccess, AppError> {
    let text = posted.get("access");
    crate::sharing::access((!text.is_empty()).then_some(text), "access")
}

/// `POST /customers/{id}/shares` with `kind` (user, unit, role), `name` and `access`.
pub(super) async fn share(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let id = record_id(&id)?;
    let name = posted.get("name").trim().to_owned();
    if name.is_empty() {
        return Err(AppError::invalid("with", "name the user, unit or role to share with").into());
    }
    let with = match posted.get("kind") {
        "user" => PrincipalName::User(name),
        "unit" => PrincipalName::Unit(name),
        "role" => PrincipalName::Role(name),
        _ => return Err(AppError::invalid("with", "share with a user, a unit or a role").into()),
    };
    let access = access(&posted)?;
    state
        .warden
        .share_record(&posted.console.subject, OBJECT, id, &with, access)
        .await?;
    Ok(see_other(&format!("/customers/{id}?notice=shared#sharing")))
}

/// `POST /customers/{id}/team` with `user` and `access`.
pub(super) async fn add_member(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let id = record_id(&id)?;
    let user = posted.get("user").trim().to_owned();
    if user.is_empty() {
        return Err(AppError::invalid("user", "name the team member").into());
    }
    let access = access(&posted)?;
    state
        .warden
        .put_team_member(&posted.console.subject, OBJECT, id, &user, access)
        .await?;
    Ok(see_other(&format!("/customers/{id}?notice=team#sharing")))
}

/// `POST /customers/{id}/shares/{share}/revoke`: a share or a team place.
pub(super) async fn revoke(
    State(state): State<AppState>,
    Path((id, share)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let (id, share) = (record_id(&id)?, record_id(&share)?);
    state
        .warden
        .revoke_share(&posted.console.subject, OBJECT, id, share)
        .await?;
    Ok(see_other(&format!(
        "/customers/{id}?notice=revoked#sharing"
    )))
}
