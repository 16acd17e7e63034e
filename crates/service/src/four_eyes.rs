//! Changes to the organisation's permissions — roles, role assignments, access rules, approval
//! policies and the four-eyes setting itself — as one kind of value (`OrgChange`) that is
//! either applied at once or, with four eyes on, held until a second holder of the permission
//! it needs approves it. Applying re-checks the requester's permission on the snapshot of the
//! moment.

use serde_json::{json, Value as Json};
use warden_policy::access::AccessRules;
use warden_policy::{
    AccessOwner, Action, ApprovalPolicy, ApprovalTarget, FieldAccess, FieldRule, Grant, ObjectType,
    Permission, RoleAssignment, RoleId, Scope, UserId,
};
use warden_policy::{RestrictionRule, SharingRule};
use warden_store::{
    policy_from_json, policy_to_json, restriction_rule_from_json, restriction_rule_to_json,
    rules_from_json, rules_to_json, sharing_rule_from_json, sharing_rule_to_json, ApprovalRow,
    NewApprovalRequest, Tx, FOUR_EYES,
};

use crate::approvals::{ApprovalView, Outcome};
use crate::{Result, RoleInput, ServiceError, Subject, Warden};

/// One change to the organisation's permissions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OrgChange {
    CreateRole(RoleInput),
    UpdateRole {
        id: RoleId,
        version: Option<i64>,
        input: RoleInput,
    },
    SetUserRoles {
        user: UserId,
        username: String,
        roles: Vec<RoleAssignment>,
        /// The assignments when the change was asked for: a held change applies only to them.
        before: Vec<RoleAssignment>,
    },
    SetAccessRules {
        owner: AccessOwner,
        rules: AccessRules,
        /// The rules when the change was asked for.
        before: AccessRules,
    },
    /// Links an account to a natural person (or unlinks it).
    SetPerson {
        user: UserId,
        username: String,
        person: Option<String>,
    },
    /// Sets another user's password (the argon2id hash; never shown).
    SetPassword {
        user: UserId,
        username: String,
        hash: String,
    },
    /// Whether an object's records are decided by their own grants or by their customer.
    SetControl {
        object: ObjectType,
        control: warden_policy::Control,
    },
    CreatePolicy(ApprovalPolicy),
    UpdatePolicy {
        policy: ApprovalPolicy,
        version: Option<i64>,
    },
    DeletePolicy(i64),
    SetFourEyes(bool),
    /// A new sharing rule, or (with an id) a replacement.
    PutSharingRule(SharingRule),
    DeleteSharingRule(i64),
    /// A new restriction rule, or (with an id) a replacement.
    PutRestrictionRule(RestrictionRule),
    DeleteRestrictionRule(i64),
    /// A whole policy file (`warden policy apply`), written as one change.
    ApplyPolicy(Box<crate::policy_file::PolicyChange>),
}

/// What applying a change created, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    Nothing,
    Role(RoleId),
    Policy(i64),
    Rule(i64),
}

impl OrgChange {
    /// The permission a requester must hold, and a second person must hold to approve.
    fn permission(&self) -> Permission {
        match self {
            OrgChange::SetUserRoles { .. }
            | OrgChange::SetPerson { .. }
            | OrgChange::SetPassword { .. }
            | OrgChange::SetAccessRules {
                owner: AccessOwner::User(_),
                ..
            } => Permission::ManageUsers,
            _ => Permission::ManageRoles,
        }
    }

    fn operation(&self) -> &'static str {
        match self {
            OrgChange::CreateRole(_) => "role.create",
            OrgChange::UpdateRole { .. } => "role.update",
            OrgChange::SetUserRoles { .. } => "user.roles",
            OrgChange::SetAccessRules { .. } => "access_rules.set",
            OrgChange::CreatePolicy(_) => "approval_policy.create",
            OrgChange::UpdatePolicy { .. } => "approval_policy.update",
            OrgChange::DeletePolicy(_) => "approval_policy.delete",
            OrgChange::SetFourEyes(_) => "settings.four_eyes",
            OrgChange::SetPerson { .. } => "user.person",
            OrgChange::SetPassword { .. } => "user.password",
            OrgChange::SetControl { .. } => "object.control",
            OrgChange::PutSharingRule(_) => "sharing_rule.put",
            OrgChange::DeleteSharingRule(_) => "sharing_rule.delete",
            OrgChange::PutRestrictionRule(_) => "restriction_rule.put",
            OrgChange::DeleteRestrictionRule(_) => "restriction_rule.delete",
            OrgChange::ApplyPolicy(_) => "policy.apply",
        }
    }

    fn summary(&self, requester: &str) -> String {
        let what = match self {
            OrgChange::CreateRole(input) => format!("create the role `{}`", input.name),
            OrgChange::UpdateRole { input, .. } => format!("change the role `{}`", input.name),
            OrgChange::SetUserRoles { username, .. } => format!("change the roles of {username}"),
            OrgChange::SetAccessRules { owner, .. } => match owner {
                AccessOwner::Role(id) => format!("change the access rules of role {}", id.0),
                AccessOwner::User(id) => format!("change the access rules of user {}", id.0),
            },
            OrgChange::CreatePolicy(p) => format!("create the approval policy `{}`", p.name),
            OrgChange::UpdatePolicy { policy, .. } => {
                format!("change the approval policy `{}`", policy.name)
            }
            OrgChange::DeletePolicy(id) => format!("delete approval policy {id}"),
            OrgChange::SetFourEyes(on) => {
                format!("turn four eyes {}", if *on { "on" } else { "off" })
            }
            OrgChange::SetPerson { username, .. } => {
                format!("change which person {username}'s account belongs to")
            }
            OrgChange::SetPassword { username, .. } => format!("set a new password for {username}"),
            OrgChange::SetControl { object, .. } => {
                format!("change how access to {object} is decided")
            }
            OrgChange::PutSharingRule(rule) => format!("set the sharing rule `{}`", rule.name),
            OrgChange::DeleteSharingRule(id) => format!("delete sharing rule {id}"),
            OrgChange::PutRestrictionRule(rule) => {
                format!("set the restriction rule `{}`", rule.name)
            }
            OrgChange::DeleteRestrictionRule(id) => format!("delete restriction rule {id}"),
            OrgChange::ApplyPolicy(change) => change.summary.clone(),
        };
        format!("{requester} asks to {what}")
    }

    fn to_json(&self) -> Json {
        let op = self.operation();
        match self {
            OrgChange::CreateRole(input) => json!({"op": op, "role": role_to_json(input)}),
            OrgChange::UpdateRole { id, version, input } => {
                json!({"op": op, "id": id.0, "version": version, "role": role_to_json(input)})
            }
            OrgChange::SetUserRoles {
                user,
                username,
                roles,
                before,
            } => json!({
                "op": op, "user": user.0, "username": username,
                "roles": assignments_to_json(roles), "before": assignments_to_json(before),
            }),
            OrgChange::SetAccessRules {
                owner,
                rules,
                before,
            } => {
                let (kind, id) = match owner {
                    AccessOwner::Role(r) => ("role", r.0),
                    AccessOwner::User(u) => ("user", u.0),
                };
                json!({"op": op, "owner": {"kind": kind, "id": id}, "rules": rules_to_json(rules),
                       "before": rules_to_json(before)})
            }
            OrgChange::SetPerson {
                user,
                username,
                person,
            } => json!({"op": op, "user": user.0, "username": username, "person": person}),
            OrgChange::SetPassword {
                user,
                username,
                hash,
            } => json!({"op": op, "user": user.0, "username": username, "hash": hash}),
            OrgChange::SetControl { object, control } => json!({
                "op": op, "object": object.as_str(),
                "control": match control {
                    warden_policy::Control::OwnGrants => "own_grants",
                    warden_policy::Control::ByCustomer => "by_customer",
                },
            }),
            OrgChange::CreatePolicy(policy) => json!({"op": op, "policy": policy_to_json(policy)}),
            OrgChange::UpdatePolicy { policy, version } => {
                json!({"op": op, "policy": policy_to_json(policy), "version": version})
            }
            OrgChange::DeletePolicy(id) => json!({"op": op, "id": id}),
            OrgChange::SetFourEyes(on) => json!({"op": op, "on": on}),
            OrgChange::PutSharingRule(rule) => json!({
                "op": op, "id": rule.id, "name": rule.name, "object": rule.object.as_str(),
                "definition": sharing_rule_to_json(rule),
            }),
            OrgChange::PutRestrictionRule(rule) => json!({
                "op": op, "id": rule.id, "name": rule.name, "object": rule.object.as_str(),
                "definition": restriction_rule_to_json(rule),
            }),
            OrgChange::DeleteSharingRule(id) | OrgChange::DeleteRestrictionRule(id) => {
                json!({"op": op, "id": id})
            }
            OrgChange::ApplyPolicy(change) => change.to_json(op),
        }
    }

    fn from_json(text: &str) -> Result<OrgChange> {
        let bad = |m: &str| ServiceError::Internal(format!("organisation change: {m}"));
        let v: Json = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let int = |v: &Json| v.as_i64().ok_or_else(|| bad("not a number"));
        Ok(match v["op"].as_str().unwrap_or_default() {
            "role.create" => OrgChange::CreateRole(role_from_json(&v["role"])?),
            "role.update" => OrgChange::UpdateRole {
                id: RoleId(int(&v["id"])?),
                version: v["version"].as_i64(),
                input: role_from_json(&v["role"])?,
            },
            "user.roles" => OrgChange::SetUserRoles {
                user: UserId(int(&v["user"])?),
                username: v["username"].as_str().unwrap_or_default().to_owned(),
                roles: assignments_from_json(&v["roles"])?,
                before: assignments_from_json(&v["before"])?,
            },
            "access_rules.set" => OrgChange::SetAccessRules {
                owner: match v["owner"]["kind"].as_str() {
                    Some("role") => AccessOwner::Role(RoleId(int(&v["owner"]["id"])?)),
                    _ => AccessOwner::User(UserId(int(&v["owner"]["id"])?)),
                },
                rules: rules_from_json(&v["rules"].to_string()).map_err(|m| bad(&m))?,
                before: rules_from_json(&v["before"].to_string()).map_err(|m| bad(&m))?,
            },
            "user.person" => OrgChange::SetPerson {
                user: UserId(int(&v["user"])?),
                username: v["username"].as_str().unwrap_or_default().to_owned(),
                person: v["person"].as_str().map(str::to_owned),
            },
            "user.password" => OrgChange::SetPassword {
                user: UserId(int(&v["user"])?),
                username: v["username"].as_str().unwrap_or_default().to_owned(),
                hash: v["hash"].as_str().ok_or_else(|| bad("hash"))?.to_owned(),
            },
            "object.control" => OrgChange::SetControl {
                object: ObjectType::parse(v["object"].as_str().unwrap_or_default())
                    .map_err(|e| bad(&e.to_string()))?,
                control: match v["control"].as_str() {
                    Some("own_grants") => warden_policy::Control::OwnGrants,
                    Some("by_customer") => warden_policy::Control::ByCustomer,
                    _ => return Err(bad("control")),
                },
            },
            "approval_policy.create" => OrgChange::CreatePolicy(policy_from_json(&v["policy"])?),
            "approval_policy.update" => OrgChange::UpdatePolicy {
                policy: policy_from_json(&v["policy"])?,
                version: v["version"].as_i64(),
            },
            "approval_policy.delete" => OrgChange::DeletePolicy(int(&v["id"])?),
            "settings.four_eyes" => OrgChange::SetFourEyes(v["on"].as_bool().unwrap_or(true)),
            op @ ("sharing_rule.put" | "restriction_rule.put") => {
                let id = int(&v["id"])?;
                let name = v["name"].as_str().unwrap_or_default().to_owned();
                let object = ObjectType::parse(v["object"].as_str().unwrap_or_default())
                    .map_err(|e| bad(&e.to_string()))?;
                if op == "sharing_rule.put" {
                    OrgChange::PutSharingRule(
                        sharing_rule_from_json(id, name, object, &v["definition"])
                            .map_err(|m| bad(&m))?,
                    )
                } else {
                    OrgChange::PutRestrictionRule(
                        restriction_rule_from_json(id, name, object, &v["definition"])
                            .map_err(|m| bad(&m))?,
                    )
                }
            }
            "sharing_rule.delete" => OrgChange::DeleteSharingRule(int(&v["id"])?),
            "restriction_rule.delete" => OrgChange::DeleteRestrictionRule(int(&v["id"])?),
            "policy.apply" => {
                OrgChange::ApplyPolicy(Box::new(crate::policy_file::PolicyChange::from_json(&v)?))
            }
            other => return Err(bad(&format!("unknown operation `{other}`"))),
        })
    }
}

fn assignments_to_json(roles: &[RoleAssignment]) -> Json {
    Json::Array(
        roles
            .iter()
            .map(|a| json!({"role": a.role.0, "expires_at": a.expires_at}))
            .collect(),
    )
}

fn assignments_from_json(v: &Json) -> Result<Vec<RoleAssignment>> {
    let bad = |m: &str| ServiceError::Internal(format!("stored role assignments: {m}"));
    v.as_array()
        .ok_or_else(|| bad("not a list"))?
        .iter()
        .map(|a| {
            Ok(RoleAssignment {
                role: RoleId(a["role"].as_i64().ok_or_else(|| bad("role"))?),
                expires_at: a["expires_at"].as_i64(),
            })
        })
        .collect()
}

fn role_to_json(input: &RoleInput) -> Json {
    json!({
        "name": input.name,
        "description": input.description,
        "grants": input.grants.iter().map(|g| json!({
            "object": g.object.as_str(), "action": g.action.as_str(),
            "scope": g.scope.name(), "depth": g.scope.depth(),
        })).collect::<Vec<_>>(),
        "permissions": input.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "fields": input.fields.iter().map(|f| json!({
            "object": f.object.as_str(), "field": f.field, "access": f.access.as_str(),
        })).collect::<Vec<_>>(),
    })
}

fn role_from_json(v: &Json) -> Result<RoleInput> {
    let bad = |m: String| ServiceError::Internal(format!("stored role: {m}"));
    let text = |v: &Json| v.as_str().unwrap_or_default().to_owned();
    let list = |v: &Json| v.as_array().cloned().unwrap_or_default();
    Ok(RoleInput {
        name: text(&v["name"]),
        description: text(&v["description"]),
        grants: list(&v["grants"])
            .iter()
            .map(|g| {
                Ok(Grant {
                    object: ObjectType::parse(&text(&g["object"]))
                        .map_err(|e| bad(e.to_string()))?,
                    action: Action::parse(&text(&g["action"])).map_err(|e| bad(e.to_string()))?,
                    scope: Scope::parse(&text(&g["scope"]), g["depth"].as_u64().map(|d| d as u32))
                        .map_err(|e| bad(e.to_string()))?,
                })
            })
            .collect::<Result<Vec<_>>>()?,
        permissions: list(&v["permissions"])
            .iter()
            .map(|p| Permission::parse(&text(p)).map_err(|e| bad(e.to_string())))
            .collect::<Result<Vec<_>>>()?,
        fields: list(&v["fields"])
            .iter()
            .map(|f| {
                Ok(FieldRule {
                    object: ObjectType::parse(&text(&f["object"]))
                        .map_err(|e| bad(e.to_string()))?,
                    field: text(&f["field"]),
                    access: FieldAccess::parse(&text(&f["access"]))
                        .map_err(|e| bad(e.to_string()))?,
                })
            })
            .collect::<Result<Vec<_>>>()?,
    })
}

/// Writes one change in `tx` and bumps the permission epoch with it.
///
/// The change is logged in the same transaction, as made by `subject` (for an approved change,
/// its requester; the approval's own events say who approved).
pub(crate) async fn write_change(
    tx: &mut Tx,
    subject: &Subject,
    change: &OrgChange,
) -> Result<Created> {
    let now = subject.now;
    crate::logging::log_change(
        tx,
        subject,
        change.operation(),
        &[],
        change.summary(&subject.username),
    )
    .await?;
    let taken = |what: String| {
        move |e: warden_store::StoreError| match e {
            warden_store::StoreError::Duplicate(_) => ServiceError::Conflict(what),
            other => other.into(),
        }
    };
    let created = match change {
        OrgChange::CreateRole(input) => Created::Role(
            tx.insert_role(&input.name, &input.description, input.contents(), now)
                .await
                .map_err(taken(format!("a role named `{}` exists", input.name)))?,
        ),
        OrgChange::UpdateRole { id, version, input } => {
            let current = tx.role_version(*id).await?.ok_or(ServiceError::NotFound)?;
            if version.is_some_and(|v| v != current) {
                return Err(ServiceError::Conflict(
                    "the role was changed by someone else since".into(),
                ));
            }
            tx.update_role(*id, &input.name, &input.description, input.contents(), now)
                .await
                .map_err(taken(format!("a role named `{}` exists", input.name)))?;
            Created::Nothing
        }
        OrgChange::SetUserRoles { user, roles, .. } => {
            tx.set_user_roles(*user, roles).await?;
            Created::Nothing
        }
        OrgChange::SetAccessRules { owner, rules, .. } => {
            let empty = *rules == AccessRules::default();
            tx.set_access_rules(*owner, (!empty).then_some(rules))
                .await?;
            Created::Nothing
        }
        OrgChange::CreatePolicy(policy) => {
            Created::Policy(tx.insert_approval_policy(policy, now).await.map_err(taken(
                format!("an approval policy named `{}` exists", policy.name),
            ))?)
        }
        OrgChange::UpdatePolicy { policy, version } => {
            tx.update_approval_policy(policy, *version, now)
                .await
                .map_err(taken(format!(
                    "an approval policy named `{}` exists",
                    policy.name
                )))?;
            Created::Nothing
        }
        OrgChange::DeletePolicy(id) => {
            tx.delete_approval_policy(*id).await?;
            Created::Nothing
        }
        OrgChange::SetFourEyes(on) => {
            tx.set_setting(FOUR_EYES, if *on { "on" } else { "off" })
                .await?;
            Created::Nothing
        }
        OrgChange::SetPerson { user, person, .. } => {
            tx.set_person(*user, person.as_deref()).await?;
            Created::Nothing
        }
        OrgChange::SetPassword { user, hash, .. } => {
            tx.set_password_hash(*user, hash, now).await?;
            tx.delete_sessions_of(*user).await?;
            Created::Nothing
        }
        OrgChange::SetControl { object, control } => {
            tx.set_control(*object, *control).await?;
            Created::Nothing
        }
        OrgChange::PutSharingRule(rule) => {
            let taken = taken(format!("a sharing rule named `{}` exists", rule.name));
            if rule.id == 0 {
                Created::Rule(tx.insert_sharing_rule(rule, now).await.map_err(taken)?)
            } else {
                tx.update_sharing_rule(rule, now).await.map_err(taken)?;
                Created::Rule(rule.id)
            }
        }
        OrgChange::PutRestrictionRule(rule) => {
            let taken = taken(format!("a restriction rule named `{}` exists", rule.name));
            if rule.id == 0 {
                Created::Rule(tx.insert_restriction_rule(rule, now).await.map_err(taken)?)
            } else {
                tx.update_restriction_rule(rule, now).await.map_err(taken)?;
                Created::Rule(rule.id)
            }
        }
        OrgChange::DeleteSharingRule(id) => {
            tx.delete_rule(false, *id).await?;
            Created::Nothing
        }
        OrgChange::DeleteRestrictionRule(id) => {
            tx.delete_rule(true, *id).await?;
            Created::Nothing
        }
        OrgChange::ApplyPolicy(change) => {
            // The plan is made just before writing (see `policy_file`), never stored.
            let plan = change
                .plan
                .as_ref()
                .ok_or_else(|| ServiceError::Internal("a policy file without its plan".into()))?;
            crate::policy_file::write_plan(tx, plan, now).await?;
            Created::Nothing
        }
    };
    tx.bump_epoch().await?;
    Ok(created)
}

impl Warden {
    /// Applies a change to the organisation's permissions at once, or — with four eyes on —
    /// holds it for a second holder of the permission it needs. Turning four eyes *on* never
    /// waits (it only adds a check).
    pub(crate) async fn submit_org_change(
        &self,
        subject: &Subject,
        change: OrgChange,
    ) -> Result<Outcome<Created>> {
        let permission = change.permission();
        subject.require(permission)?;
        let snapshot = &subject.snapshot;
        let waits = snapshot.four_eyes() && change != OrgChange::SetFourEyes(true);
        if !waits {
            let mut tx = self.store.begin().await?;
            let created = write_change(&mut tx, subject, &change).await?;
            tx.commit().await?;
            return Ok(Outcome::Done(created));
        }
        let policy = ApprovalPolicy::four_eyes(permission);
        let approvers = snapshot.approvers(
            subject.user,
            &policy.approvers,
            0,
            ApprovalTarget::Organisation,
            subject.now,
        );
        if approvers.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "four eyes is on, but nobody else holds the {permission} permission to approve \
                 this change"
            )));
        }
        let request = NewApprovalRequest {
            kind: "organisation".into(),
            operation: change.operation().to_owned(),
            object: None,
            record_id: None,
            record_version: None,
            requester_id: subject.user,
            requester: subject.username.clone(),
            summary: change.summary(&subject.username),
            payload: change.to_json().to_string(),
            steps: crate::approvals::four_eyes_steps(&policy),
            expires_at: None,
        };
        let view: ApprovalView = self.hold_request(subject, &request).await?;
        Ok(Outcome::Pending(Box::new(view)))
    }

    /// Applies an approved organisation change in `tx`, as its requester (who must still hold
    /// the permission it needs, and every permission of a role they assign), and only to the
    /// state the request was made against: assignments or access rules changed meanwhile are a
    /// conflict, like a role or a policy at another version.
    pub(crate) async fn apply_organisation_change(
        &self,
        tx: &mut Tx,
        approver: &Subject,
        row: &ApprovalRow,
    ) -> Result<()> {
        let mut change = OrgChange::from_json(&row.payload)?;
        let requester = self.subject_for(approver, row.requester_id, &row.requester)?;
        requester.require(change.permission())?;
        if let OrgChange::ApplyPolicy(held) = &change {
            change =
                OrgChange::ApplyPolicy(Box::new(self.replan_held_policy(&requester, held).await?));
        }
        let snapshot = &approver.snapshot;
        match &change {
            OrgChange::SetUserRoles {
                user,
                roles,
                before,
                ..
            } => {
                let current: Vec<RoleAssignment> = snapshot
                    .user(*user)
                    .ok_or(ServiceError::NotFound)?
                    .roles()
                    .map(|(_, _, assignment)| assignment)
                    .collect();
                if !same_assignments(&current, before) {
                    return Err(ServiceError::Conflict(
                        "the user's roles changed since the request".into(),
                    ));
                }
                for assignment in roles {
                    if let Some(missing) = snapshot
                        .role_permissions(assignment.role)
                        .into_iter()
                        .find(|p| !requester.can(*p))
                    {
                        return Err(ServiceError::Forbidden(format!(
                            "the requester no longer holds the {missing} permission a role they assign carries"
                        )));
                    }
                }
            }
            OrgChange::SetAccessRules { owner, before, .. }
                if self.store.access_rules(*owner).await? != *before =>
            {
                return Err(ServiceError::Conflict(
                    "the access rules changed since the request".into(),
                ));
            }
            _ => {}
        }
        write_change(tx, &requester, &change).await?;
        Ok(())
    }
}

/// Two sets of role assignments, regardless of order.
fn same_assignments(a: &[RoleAssignment], b: &[RoleAssignment]) -> bool {
    let key = |r: &RoleAssignment| (r.role, r.expires_at);
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}

impl OrgChange {
    /// The user a change is about, who may not approve it (no approving one's own promotion).
    pub(crate) fn affected_user(&self) -> Option<UserId> {
        match self {
            OrgChange::SetUserRoles { user, .. }
            | OrgChange::SetPerson { user, .. }
            | OrgChange::SetPassword { user, .. }
            | OrgChange::SetAccessRules {
                owner: AccessOwner::User(user),
                ..
            } => Some(*user),
            _ => None,
        }
    }

    /// What an approver sees of the change: everything but a password's hash, with role names.
    pub(crate) fn describe(&self, snapshot: &warden_policy::Snapshot) -> Json {
        let mut value = self.to_json();
        if let Some(object) = value.as_object_mut() {
            object.remove("hash");
            for key in ["roles", "before"] {
                if let (OrgChange::SetUserRoles { .. }, Some(Json::Array(items))) =
                    (self, object.get_mut(key))
                {
                    for item in items {
                        let name = item["role"]
                            .as_i64()
                            .and_then(|id| snapshot.role_name(RoleId(id)))
                            .unwrap_or_default()
                            .to_owned();
                        item["name"] = json!(name);
                    }
                }
            }
        }
        value
    }

    /// Reads a stored change (for the approvals module).
    pub(crate) fn parse(text: &str) -> Result<OrgChange> {
        OrgChange::from_json(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_through_their_stored_form() {
        let role = RoleInput {
            name: "Analyst".into(),
            description: "reads".into(),
            grants: vec![Grant {
                object: ObjectType::Customers,
                action: Action::Read,
                scope: Scope::Subordinates { depth: Some(2) },
            }],
            permissions: vec![Permission::ViewAudit],
            fields: vec![FieldRule {
                object: ObjectType::Customers,
                field: "credit_limit".into(),
                access: FieldAccess::Masked,
            }],
        };
        let changes = [
            OrgChange::CreateRole(role.clone()),
            OrgChange::UpdateRole {
                id: RoleId(3),
                version: Some(2),
                input: role,
            },
            OrgChange::SetUserRoles {
                user: UserId(5),
                username: "rep2".into(),
                roles: vec![RoleAssignment {
                    role: RoleId(4),
                    expires_at: Some(99),
                }],
                before: vec![],
            },
            OrgChange::SetAccessRules {
                owner: AccessOwner::Role(RoleId(1)),
                rules: AccessRules {
                    ip_allow: vec!["10.0.0.0/8".parse().expect("a network")],
                    login_hours: None,
                    mfa_required: true,
                },
                before: AccessRules::default(),
            },
            OrgChange::SetPerson {
                user: UserId(5),
                username: "rep2".into(),
                person: Some("E-7".into()),
            },
            OrgChange::SetPassword {
                user: UserId(5),
                username: "rep2".into(),
                hash: "$argon2id$…".into(),
            },
            OrgChange::SetControl {
                object: ObjectType::Deals,
                control: warden_policy::Control::OwnGrants,
            },
            OrgChange::DeletePolicy(4),
            OrgChange::SetFourEyes(false),
        ];
        for change in changes {
            let text = change.to_json().to_string();
            assert_eq!(OrgChange::from_json(&text).unwrap(), change, "{text}");
        }
    }
}
