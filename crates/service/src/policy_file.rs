//! Policy as code: the organisation's permission structure as one reviewable TOML file
//! (`warden policy export`), and making a database match such a file (`warden policy apply`).
//!
//! **What the file holds**: units (with their parents), roles (description, functional
//! permissions, grants, field rules, access rules), how each object's records are decided
//! (`controls`), sharing rules, restriction rules, approval policies and the four-eyes
//! setting. Everything is named by name, never by database id, and written in one order
//! (sections as listed, items sorted by name, grants by object, action and scope, field rules
//! by object and field), so two databases with the same policy export the same bytes.
//! Conditions are the API's JSON condition form, as a string.
//!
//! **What it does not hold**: users and who holds which role. Accounts carry passwords and
//! second factors; role assignments change every day, expire, and are certified by access
//! reviews — operational data, not policy, and different in every environment a file is
//! applied to. A file may still *name* a user (an approval policy's approvers, a sharing rule
//! for one user); such a name must exist in the database the file is applied to. Access rules
//! of single users stay with the users and are left as they are.
//!
//! **Apply**, step by step ([`Warden::plan_policy`], [`Warden::apply_policy`]):
//! 1. read the organisation at one permission epoch and parse the file;
//! 2. build the target model from the current one: items are matched by name (a renamed item
//!    is a removal and an addition), new units and roles get provisional ids, and every name
//!    is resolved and every condition checked (`Criteria::check_for_records`) before
//!    anything is written — an error names the item and the place, and nothing changes;
//! 3. compile both models and report the structural diff (items added, changed, removed)
//!    and the access diff (per user and action, the customers gained and lost, counted in SQL
//!    as "after and not before" and "before and not after");
//! 4. unless it is a dry run, submit the whole change as one [`OrgChange::ApplyPolicy`]:
//!    written in one transaction (one access-log entry, one epoch bump), or with four eyes on
//!    held as one approval request for a second holder of `manage_roles`. The transaction
//!    first locks the epoch and refuses if it moved since the plan was made; an approved
//!    request is re-planned on the database of the moment and refused if the policy changed
//!    since the request (users moving or changing roles does not count).
//!
//! Removing a unit or a role is refused while anything still uses it (users, records, shares,
//! role holders): apply never takes access away from a person silently.
//!
//! **Bootstrap**: on a database without users, `apply` may run without a user (the operator
//! holds the data directory and its master key, as for `restore`); the log names the actor
//! `policy-bootstrap`. Once users exist, every apply acts as a named user holding
//! `manage_roles`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use warden_policy::{
    AccessOwner, Action, ApprovalPolicy, Approvers, Audience, Control, Criteria, FieldAccess,
    FieldRule, Grant, Model, ObjectType, Permission, Principal, Requesters, RestrictionRule,
    RoleDef, RoleId, RuleSource, Scope, ShareAccess, SharingRule, Snapshot, Timestamp, UnitDef,
    UnitId, UserId,
};
use warden_store::{criteria_from_json, criteria_to_json, rules_from_json, rules_to_json, Tx};

use crate::approval_policies::{ApprovalPolicyInput, ApproversInput, RequestersInput};
use crate::approvals::Outcome;
use crate::four_eyes::OrgChange;
use crate::{Result, ServiceError, Subject, Warden};

/// The first lines of every exported file (no date or database: exports must compare equal).
const HEADER: &str = "# Warden policy file. `warden policy apply FILE --dry-run` shows what \
applying it would change;\n# items are matched by name. Users and their roles are not part \
of it.\n\n";

/// The actor named in the access log for an apply on a database without users.
pub const BOOTSTRAP_ACTOR: &str = "policy-bootstrap";

/// The actions the access diff reports (create reaches no existing record).
const DIFF_ACTIONS: &[Action] = &[
    Action::Read,
    Action::Update,
    Action::Delete,
    Action::Export,
    Action::Share,
    Action::Approve,
];

// ---------------------------------------------------------------------------------------------
// The file's form. Private: only this module reads and writes it, and converts explicitly.
// Scalars come before tables in every struct (TOML writes a table's values before its
// sub-tables).

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    four_eyes: bool,
    /// Object → `own_grants` | `by_customer` (customers are always decided by their own).
    #[serde(default)]
    controls: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    units: Vec<UnitEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<RoleEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sharing_rules: Vec<SharingEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    restriction_rules: Vec<RestrictionEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    approval_policies: Vec<PolicyEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitEntry {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleEntry {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: Vec<String>,
    /// `"OBJECT ACTION SCOPE"`, or `"OBJECT ACTION subordinates DEPTH"`.
    #[serde(default)]
    grants: Vec<String>,
    /// Object → field → `hidden` | `masked` | `read` | `write` (only what differs from the
    /// schema's default).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    fields: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access: Option<AccessEntry>,
}

/// A role's access rules, in the stored form of `rules_to_json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessEntry {
    #[serde(default)]
    mfa_required: bool,
    #[serde(default)]
    ip_allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login_hours: Option<HoursEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursEntry {
    time_zone: String,
    days: u8,
    from: u16,
    to: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharingEntry {
    name: String,
    object: String,
    /// A condition (JSON), or …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    when: Option<String>,
    /// … the records of a unit and the units below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owned_by_unit: Option<String>,
    access: String,
    share_with: NamedPrincipal,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedPrincipal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestrictionEntry {
    name: String,
    object: String,
    /// Empty: every action.
    #[serde(default)]
    actions: Vec<String>,
    only: String,
    applies_to: NamedAudience,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedAudience {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    everyone: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    except_role: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    name: String,
    object: String,
    operations: Vec<String>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    when: Option<String>,
    #[serde(default = "one")]
    required: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_after_hours: Option<u32>,
    #[serde(default)]
    escalate: bool,
    #[serde(default)]
    requesters: NamedRequesters,
    approvers: NamedApprovers,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedRequesters {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    anyone: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedApprovers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    superior: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    users: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------------------
// Public views.

/// How one item of the file differs between the database and the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemChangeKind {
    Added,
    Changed,
    Removed,
}

/// One item added, changed or removed by applying a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyItemChange {
    /// `unit`, `role`, `sharing rule`, `restriction rule`, `approval policy`, `control`,
    /// `setting`.
    pub kind: &'static str,
    pub name: String,
    pub change: ItemChangeKind,
    /// For a change, what changed (`+ customers read all`, `parent: "A" → "B"`).
    pub details: Vec<String>,
}

/// Customers one user gains and loses for one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAccessChange {
    pub user: String,
    pub action: Action,
    pub gained: i64,
    pub lost: i64,
}

/// What applying a file would do (or did).
#[derive(Debug, Clone)]
pub struct PolicyPlan {
    pub changes: Vec<PolicyItemChange>,
    pub access: Vec<PolicyAccessChange>,
    /// The file in its canonical form (what an export will print once it is applied).
    pub canonical: String,
    /// The SHA-256 of the current export: what a held request was planned against.
    pub before: String,
    epoch: i64,
    current: State,
    target: State,
    current_doc: Doc,
    target_doc: Doc,
    new_units: BTreeSet<i64>,
    new_roles: BTreeSet<i64>,
}

impl PolicyPlan {
    /// Whether applying the file changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The structural diff as text, one line per item and detail.
    pub fn changes_text(&self) -> String {
        let mut out = String::new();
        for item in &self.changes {
            let sign = match item.change {
                ItemChangeKind::Added => '+',
                ItemChangeKind::Changed => '~',
                ItemChangeKind::Removed => '-',
            };
            out.push_str(&format!("{sign} {} `{}`\n", item.kind, item.name));
            for detail in &item.details {
                out.push_str(&format!("    {detail}\n"));
            }
        }
        out
    }

    /// The access diff as text, one line per user and action.
    pub fn access_text(&self) -> String {
        let mut out = String::new();
        for row in &self.access {
            out.push_str(&format!(
                "{:<16} {:<8} +{} -{}\n",
                row.user, row.action, row.gained, row.lost
            ));
        }
        out
    }

    fn summary(&self) -> String {
        let count = |k| self.changes.iter().filter(|c| c.change == k).count();
        let mut names: Vec<String> = self
            .changes
            .iter()
            .take(8)
            .map(|c| format!("{} `{}`", c.kind, c.name))
            .collect();
        if self.changes.len() > 8 {
            names.push(format!("{} more", self.changes.len() - 8));
        }
        format!(
            "apply a policy file: {} added, {} changed, {} removed ({})",
            count(ItemChangeKind::Added),
            count(ItemChangeKind::Changed),
            count(ItemChangeKind::Removed),
            names.join(", ")
        )
    }
}

/// The change a policy file makes, as held in an approval request: the file itself, and the
/// export it was planned against. The plan is made again just before writing.
#[derive(Debug, Clone)]
pub(crate) struct PolicyChange {
    pub file: String,
    pub before: String,
    pub summary: String,
    pub plan: Option<Arc<PolicyPlan>>,
}

impl PartialEq for PolicyChange {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file && self.before == other.before && self.summary == other.summary
    }
}

impl PolicyChange {
    pub(crate) fn to_json(&self, op: &str) -> Json {
        json!({"op": op, "file": self.file, "before": self.before, "summary": self.summary})
    }

    pub(crate) fn from_json(v: &Json) -> Result<PolicyChange> {
        let text = |key: &str| {
            v[key].as_str().map(str::to_owned).ok_or_else(|| {
                ServiceError::Internal(format!("organisation change: policy file `{key}`"))
            })
        };
        Ok(PolicyChange {
            file: text("file")?,
            before: text("before")?,
            summary: text("summary")?,
            plan: None,
        })
    }
}

/// The organisation as far as the file is concerned.
#[derive(Debug, Clone, Default)]
struct State {
    model: Model,
    descriptions: HashMap<RoleId, String>,
}

fn invalid(place: impl Into<String>, message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(place, message)
}

fn check_name(place: &str, name: &str) -> Result<()> {
    if name.trim() != name
        || name.is_empty()
        || name.chars().count() > 100
        || name.chars().any(char::is_control)
    {
        return Err(invalid(
            place,
            "a name is 1 to 100 characters, without control characters or surrounding spaces",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Export: a model in names.

fn grant_text(grant: &Grant) -> String {
    match grant.scope.depth() {
        Some(depth) => format!(
            "{} {} {} {depth}",
            grant.object,
            grant.action,
            grant.scope.name()
        ),
        None => format!("{} {} {}", grant.object, grant.action, grant.scope.name()),
    }
}

fn scope_rank(scope: Scope) -> (u8, u32) {
    match scope {
        Scope::Own => (0, 0),
        Scope::Subordinates { depth } => (1, depth.unwrap_or(u32::MAX)),
        Scope::Unit => (2, 0),
        Scope::UnitTree => (3, 0),
        Scope::All => (4, 0),
        Scope::Account => (5, 0),
    }
}

fn criteria_text(criteria: &Criteria) -> String {
    criteria_to_json(criteria).to_string()
}

fn control_name(control: Control) -> &'static str {
    match control {
        Control::OwnGrants => "own_grants",
        Control::ByCustomer => "by_customer",
    }
}

fn effective_control(model: &Model, object: ObjectType) -> Control {
    if object == ObjectType::Customers {
        return Control::OwnGrants;
    }
    model
        .controls
        .iter()
        .rev()
        .find(|(o, _)| *o == object)
        .map_or(Control::ByCustomer, |(_, c)| *c)
}

fn export_doc(state: &State) -> Result<Doc> {
    let model = &state.model;
    let unit_name = |id: UnitId| -> Result<String> {
        model
            .units
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.name.clone())
            .ok_or_else(|| ServiceError::Internal(format!("unknown unit {}", id.0)))
    };
    let role_name = |id: RoleId| -> Result<String> {
        model
            .roles
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.name.clone())
            .ok_or_else(|| ServiceError::Internal(format!("unknown role {}", id.0)))
    };
    let user_name = |id: UserId| -> Result<String> {
        model
            .users
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.username.clone())
            .ok_or_else(|| ServiceError::Internal(format!("unknown user {}", id.0)))
    };

    let controls = ObjectType::ALL
        .iter()
        .filter(|o| **o != ObjectType::Customers)
        .map(|o| {
            (
                o.as_str().to_owned(),
                control_name(effective_control(model, *o)).to_owned(),
            )
        })
        .collect();

    let mut units = model
        .units
        .iter()
        .map(|u| {
            Ok(UnitEntry {
                name: u.name.clone(),
                parent: u.parent.map(unit_name).transpose()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    units.sort_by(|a, b| a.name.cmp(&b.name));

    let mut roles = Vec::with_capacity(model.roles.len());
    for role in &model.roles {
        let mut grants = role.grants.clone();
        grants.sort_by_key(|g| (g.object.index(), g.action.index(), scope_rank(g.scope)));
        grants.dedup();
        let mut permissions: Vec<String> = role
            .permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect();
        permissions.sort();
        permissions.dedup();
        let mut fields: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for rule in &role.fields {
            fields
                .entry(rule.object.as_str().to_owned())
                .or_default()
                .insert(rule.field.clone(), rule.access.as_str().to_owned());
        }
        let access = model
            .access_rules
            .iter()
            .find(|(owner, _)| *owner == AccessOwner::Role(role.id))
            .filter(|(_, rules)| *rules != Default::default())
            .map(|(_, rules)| {
                serde_json::from_value::<AccessEntry>(strip_nulls(rules_to_json(rules)))
                    .map_err(|e| ServiceError::Internal(format!("access rules: {e}")))
            })
            .transpose()?;
        roles.push(RoleEntry {
            name: role.name.clone(),
            description: state
                .descriptions
                .get(&role.id)
                .cloned()
                .unwrap_or_default(),
            permissions,
            grants: grants.iter().map(grant_text).collect(),
            fields,
            access,
        });
    }
    roles.sort_by(|a, b| a.name.cmp(&b.name));

    let principal = |p: Principal| -> Result<NamedPrincipal> {
        Ok(match p {
            Principal::User(id) => NamedPrincipal {
                user: Some(user_name(id)?),
                ..Default::default()
            },
            Principal::Unit(id) => NamedPrincipal {
                unit: Some(unit_name(id)?),
                ..Default::default()
            },
            Principal::Role(id) => NamedPrincipal {
                role: Some(role_name(id)?),
                ..Default::default()
            },
        })
    };
    let mut sharing_rules = model
        .sharing_rules
        .iter()
        .map(|rule| {
            let (when, owned_by_unit) = match &rule.source {
                RuleSource::Criteria(c) => (Some(criteria_text(c)), None),
                RuleSource::OwnedByUnit(u) => (None, Some(unit_name(*u)?)),
            };
            Ok(SharingEntry {
                name: rule.name.clone(),
                object: rule.object.as_str().to_owned(),
                when,
                owned_by_unit,
                access: rule.access.as_str().to_owned(),
                share_with: principal(rule.share_with)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    sharing_rules.sort_by(|a, b| a.name.cmp(&b.name));

    let mut restriction_rules = model
        .restriction_rules
        .iter()
        .map(|rule| {
            let applies_to = match rule.applies_to {
                Audience::Everyone => NamedAudience {
                    everyone: true,
                    ..Default::default()
                },
                Audience::Role(r) => NamedAudience {
                    role: Some(role_name(r)?),
                    ..Default::default()
                },
                Audience::Unit(u) => NamedAudience {
                    unit: Some(unit_name(u)?),
                    ..Default::default()
                },
                Audience::ExceptRole(r) => NamedAudience {
                    except_role: Some(role_name(r)?),
                    ..Default::default()
                },
            };
            Ok(RestrictionEntry {
                name: rule.name.clone(),
                object: rule.object.as_str().to_owned(),
                actions: sorted_actions(&rule.actions),
                only: criteria_text(&rule.only),
                applies_to,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    restriction_rules.sort_by(|a, b| a.name.cmp(&b.name));

    let mut approval_policies = model
        .approval_policies
        .iter()
        .map(|policy| {
            let requesters = match policy.requesters {
                Requesters::Anyone => NamedRequesters {
                    anyone: true,
                    ..Default::default()
                },
                Requesters::Role(r) => NamedRequesters {
                    role: Some(role_name(r)?),
                    ..Default::default()
                },
                Requesters::Unit(u) => NamedRequesters {
                    unit: Some(unit_name(u)?),
                    ..Default::default()
                },
            };
            let approvers = match &policy.approvers {
                Approvers::Superior { levels } => NamedApprovers {
                    superior: Some(*levels),
                    ..Default::default()
                },
                Approvers::Role(r) => NamedApprovers {
                    role: Some(role_name(*r)?),
                    ..Default::default()
                },
                Approvers::Users(users) => {
                    let mut names = users
                        .iter()
                        .map(|u| user_name(*u))
                        .collect::<Result<Vec<_>>>()?;
                    names.sort();
                    NamedApprovers {
                        users: Some(names),
                        ..Default::default()
                    }
                }
                // The admin API never stores these (they are the built-in four-eyes step).
                Approvers::Permission(p) => {
                    return Err(ServiceError::Internal(format!(
                        "approval policy `{}` is approved by holders of {p}, which a policy \
                         file cannot hold",
                        policy.name
                    )))
                }
            };
            let mut fields = policy.fields.clone();
            fields.sort();
            Ok(PolicyEntry {
                name: policy.name.clone(),
                object: policy.object.as_str().to_owned(),
                operations: sorted_actions(&policy.operations),
                fields,
                when: policy.when.as_ref().map(criteria_text),
                required: policy.required,
                expires_after_hours: policy
                    .expires_after_ms
                    .map(|ms| u32::try_from(ms / 3_600_000).unwrap_or(u32::MAX)),
                escalate: policy.escalate,
                requesters,
                approvers,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    approval_policies.sort_by(|a, b| a.name.cmp(&b.name));

    Ok(Doc {
        four_eyes: model.four_eyes,
        controls,
        units,
        roles,
        sharing_rules,
        restriction_rules,
        approval_policies,
    })
}

fn sorted_actions(actions: &[Action]) -> Vec<String> {
    let mut actions = actions.to_vec();
    actions.sort_by_key(|a| a.index());
    actions.dedup();
    actions.iter().map(|a| a.as_str().to_owned()).collect()
}

/// Drops `null` members (TOML has no null; a missing key reads back as `None`).
fn strip_nulls(value: Json) -> Json {
    match value {
        Json::Object(map) => Json::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

fn render(doc: &Doc) -> Result<String> {
    let body = toml::to_string_pretty(doc)
        .map_err(|e| ServiceError::Internal(format!("policy file not written: {e}")))?;
    Ok(format!("{HEADER}{body}"))
}

fn digest(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Parse: a file into the target model.

fn parse_doc(text: &str) -> Result<Doc> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().to_owned();
        let place = match e.span() {
            Some(span) => {
                let line = text
                    .get(..span.start)
                    .map_or(0, |before| before.matches('\n').count())
                    + 1;
                format!("line {line}")
            }
            None => "file".to_owned(),
        };
        invalid(place, message)
    })
}

fn parse_grant(place: &str, text: &str) -> Result<Grant> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let bad = |m: String| invalid(place, m);
    let (object, action, scope, depth) = match words.as_slice() {
        [o, a, s] => (*o, *a, *s, None),
        [o, a, s, d] => (
            *o,
            *a,
            *s,
            Some(d.parse::<u32>().map_err(|_| {
                bad(format!(
                    "`{d}` is not a depth (a whole number of levels below)"
                ))
            })?),
        ),
        _ => {
            return Err(bad(format!(
                "`{text}` is not \"OBJECT ACTION SCOPE\" (e.g. \"customers read own\")"
            )))
        }
    };
    if depth.is_some() && scope != "subordinates" {
        return Err(bad(format!(
            "only `subordinates` takes a depth, not `{scope}`"
        )));
    }
    Ok(Grant {
        object: ObjectType::parse(object).map_err(|e| bad(e.to_string()))?,
        action: Action::parse(action).map_err(|e| bad(e.to_string()))?,
        scope: Scope::parse(scope, depth).map_err(|e| bad(e.to_string()))?,
    })
}

fn parse_condition(place: &str, object: ObjectType, text: &str) -> Result<Criteria> {
    let value: Json = serde_json::from_str(text)
        .map_err(|e| invalid(place, format!("not a JSON condition: {e}")))?;
    let criteria = criteria_from_json(&value).map_err(|m| invalid(place, m))?;
    criteria
        .check_for_records(object)
        .map_err(|e| invalid(place, e.message))?;
    Ok(criteria)
}

/// Runs `text` through the file's parsers (the whole file, a grant, a condition of every
/// object): the fuzzing entry point. Only a panic is a finding.
pub(crate) fn exercise_parsers(text: &str) {
    let _ = parse_doc(text);
    let _ = parse_grant("g", text);
    for object in ObjectType::ALL {
        let _ = parse_condition("c", *object, text);
    }
}

fn parse_object(place: &str, text: &str) -> Result<ObjectType> {
    ObjectType::parse(text).map_err(|e| invalid(place, e.to_string()))
}

/// Ids for items the database does not hold yet: above every id in use, so that they never
/// meet a row of the database in the access diff's SQL.
struct Provisional(i64);

impl Provisional {
    fn take(&mut self) -> i64 {
        self.0 += 1;
        self.0
    }
}

/// Builds the target state from the current one and the file, resolving every name and
/// checking every condition.
fn build_target(warden_subject: &Subject, current: &State, doc: &Doc) -> Result<State> {
    let model = &current.model;
    let mut next_unit = Provisional(model.units.iter().map(|u| u.id.0).max().unwrap_or(0));
    let mut next_role = Provisional(model.roles.iter().map(|r| r.id.0).max().unwrap_or(0));

    // Units: ids kept by name, parents resolved within the file.
    let mut unit_ids: HashMap<&str, UnitId> = HashMap::new();
    for (i, unit) in doc.units.iter().enumerate() {
        let place = format!("units[{i}]");
        check_name(&format!("{place}.name"), &unit.name)?;
        let id = model
            .units
            .iter()
            .find(|u| u.name == unit.name)
            .map_or_else(|| UnitId(next_unit.take()), |u| u.id);
        if unit_ids.insert(unit.name.as_str(), id).is_some() {
            return Err(invalid(
                place,
                format!("a second unit named `{}`", unit.name),
            ));
        }
    }
    let mut units = Vec::with_capacity(doc.units.len());
    for unit in &doc.units {
        let parent = match &unit.parent {
            None => None,
            Some(name) => Some(*unit_ids.get(name.as_str()).ok_or_else(|| {
                invalid(
                    format!("unit `{}`", unit.name),
                    format!("parent `{name}` is not a unit of the file"),
                )
            })?),
        };
        units.push(UnitDef {
            id: unit_ids[unit.name.as_str()],
            name: unit.name.clone(),
            parent,
        });
    }
    for unit in &units {
        let mut at = unit.parent;
        for _ in 0..=units.len() {
            match at {
                Some(p) if p == unit.id => {
                    return Err(invalid(
                        format!("unit `{}`", unit.name),
                        "is below itself (its parents form a cycle)",
                    ))
                }
                Some(p) => at = units.iter().find(|u| u.id == p).and_then(|u| u.parent),
                None => break,
            }
        }
    }
    for removed in model
        .units
        .iter()
        .filter(|u| !unit_ids.contains_key(u.name.as_str()))
    {
        let members = model.users.iter().filter(|u| u.unit == removed.id).count();
        if members > 0 {
            return Err(invalid(
                format!("unit `{}`", removed.name),
                format!(
                    "is not in the file, but {members} users belong to it: keep it, or move \
                     them first"
                ),
            ));
        }
    }

    // Roles.
    let mut roles: Vec<RoleDef> = Vec::with_capacity(doc.roles.len());
    let mut descriptions = HashMap::new();
    let mut access_rules: Vec<(AccessOwner, warden_policy::access::AccessRules)> = model
        .access_rules
        .iter()
        .filter(|(owner, _)| matches!(owner, AccessOwner::User(_)))
        .cloned()
        .collect();
    for (i, entry) in doc.roles.iter().enumerate() {
        check_name(&format!("roles[{i}].name"), &entry.name)?;
        let place = format!("role `{}`", entry.name);
        if roles.iter().any(|r| r.name == entry.name) {
            return Err(invalid(
                format!("roles[{i}]"),
                format!("a second role named `{}`", entry.name),
            ));
        }
        let id = model
            .roles
            .iter()
            .find(|r| r.name == entry.name)
            .map_or_else(|| RoleId(next_role.take()), |r| r.id);
        if entry.description.chars().count() > 1000 {
            return Err(invalid(
                format!("{place}, description"),
                "at most 1000 characters",
            ));
        }
        let grants = entry
            .grants
            .iter()
            .enumerate()
            .map(|(g, text)| parse_grant(&format!("{place}, grants[{g}]"), text))
            .collect::<Result<Vec<_>>>()?;
        let permissions = entry
            .permissions
            .iter()
            .enumerate()
            .map(|(p, text)| {
                Permission::parse(text)
                    .map_err(|e| invalid(format!("{place}, permissions[{p}]"), e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut fields = Vec::new();
        for (object_name, rules) in &entry.fields {
            let object = parse_object(&format!("{place}, fields.{object_name}"), object_name)?;
            for (field, access) in rules {
                let at = format!("{place}, fields.{object_name}.{field}");
                if warden_policy::schema::schema(object).field(field).is_none() {
                    return Err(invalid(at, format!("`{field}` is not a field of {object}")));
                }
                fields.push(FieldRule {
                    object,
                    field: field.clone(),
                    access: FieldAccess::parse(access).map_err(|e| invalid(at, e.to_string()))?,
                });
            }
        }
        if let Some(access) = &entry.access {
            let text =
                serde_json::to_string(access).map_err(|e| ServiceError::Internal(e.to_string()))?;
            let rules =
                rules_from_json(&text).map_err(|m| invalid(format!("{place}, access"), m))?;
            access_rules.push((AccessOwner::Role(id), rules));
        }
        descriptions.insert(id, entry.description.clone());
        roles.push(RoleDef {
            id,
            name: entry.name.clone(),
            grants,
            permissions,
            fields,
        });
    }
    for removed in model
        .roles
        .iter()
        .filter(|r| !roles.iter().any(|t| t.name == r.name))
    {
        let holders = model
            .users
            .iter()
            .filter(|u| u.roles.iter().any(|a| a.role == removed.id))
            .count();
        if holders > 0 {
            return Err(invalid(
                format!("role `{}`", removed.name),
                format!(
                    "is not in the file, but {holders} users hold it: keep it, or take it from \
                     them first"
                ),
            ));
        }
    }

    let mut controls = Vec::new();
    for (object_name, control) in &doc.controls {
        let place = format!("controls.{object_name}");
        let object = parse_object(&place, object_name)?;
        let control = match control.as_str() {
            "own_grants" => Control::OwnGrants,
            "by_customer" => Control::ByCustomer,
            other => {
                return Err(invalid(
                    place,
                    format!("`{other}` is neither own_grants nor by_customer"),
                ))
            }
        };
        if object == ObjectType::Customers && control != Control::OwnGrants {
            return Err(invalid(
                place,
                "customers are always decided by their own grants",
            ));
        }
        if object != ObjectType::Customers {
            controls.push((object, control));
        }
    }

    let mut target = Model {
        epoch: model.epoch,
        units,
        users: model.users.clone(),
        roles,
        controls,
        access_rules,
        mfa_enrolled: model.mfa_enrolled.clone(),
        approval_policies: Vec::new(),
        four_eyes: doc.four_eyes,
        persons: model.persons.clone(),
        sharing_rules: Vec::new(),
        restriction_rules: Vec::new(),
    };
    // Rules and policies resolve their names on the organisation the file makes.
    let interim = Arc::new(Snapshot::compile(&target).map_err(|e| invalid("file", e.to_string()))?);
    let subject = Subject {
        snapshot: interim.clone(),
        ..warden_subject.clone()
    };
    let mut next_rule = Provisional(
        model
            .sharing_rules
            .iter()
            .map(|r| r.id)
            .chain(model.restriction_rules.iter().map(|r| r.id))
            .chain(model.approval_policies.iter().map(|p| p.id))
            .max()
            .unwrap_or(0),
    );

    for (i, entry) in doc.sharing_rules.iter().enumerate() {
        check_name(&format!("sharing_rules[{i}].name"), &entry.name)?;
        let place = format!("sharing rule `{}`", entry.name);
        if target.sharing_rules.iter().any(|r| r.name == entry.name) {
            return Err(invalid(
                format!("sharing_rules[{i}]"),
                format!("a second sharing rule named `{}`", entry.name),
            ));
        }
        let object = parse_object(&format!("{place}, object"), &entry.object)?;
        let source = match (&entry.when, &entry.owned_by_unit) {
            (Some(when), None) => {
                RuleSource::Criteria(parse_condition(&format!("{place}, when"), object, when)?)
            }
            (None, Some(unit)) => {
                RuleSource::OwnedByUnit(interim.unit_by_name(unit).ok_or_else(|| {
                    invalid(
                        format!("{place}, owned_by_unit"),
                        format!("no unit `{unit}`"),
                    )
                })?)
            }
            _ => {
                return Err(invalid(
                    place,
                    "give exactly one of `when` (a condition) and `owned_by_unit`",
                ))
            }
        };
        let share_with =
            resolve_principal(&interim, &format!("{place}, share_with"), &entry.share_with)?;
        let access = ShareAccess::parse(&entry.access).ok_or_else(|| {
            invalid(
                format!("{place}, access"),
                format!("`{}` is neither read nor edit", entry.access),
            )
        })?;
        let id = model
            .sharing_rules
            .iter()
            .find(|r| r.name == entry.name)
            .map_or_else(|| next_rule.take(), |r| r.id);
        target.sharing_rules.push(SharingRule {
            id,
            name: entry.name.clone(),
            object,
            source,
            share_with,
            access,
        });
    }

    for (i, entry) in doc.restriction_rules.iter().enumerate() {
        check_name(&format!("restriction_rules[{i}].name"), &entry.name)?;
        let place = format!("restriction rule `{}`", entry.name);
        if target
            .restriction_rules
            .iter()
            .any(|r| r.name == entry.name)
        {
            return Err(invalid(
                format!("restriction_rules[{i}]"),
                format!("a second restriction rule named `{}`", entry.name),
            ));
        }
        let object = parse_object(&format!("{place}, object"), &entry.object)?;
        let only = parse_condition(&format!("{place}, only"), object, &entry.only)?;
        let actions = entry
            .actions
            .iter()
            .map(|a| {
                Action::parse(a).map_err(|e| invalid(format!("{place}, actions"), e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let at = format!("{place}, applies_to");
        let role = |name: &str| {
            interim
                .role_by_name(name)
                .ok_or_else(|| invalid(at.clone(), format!("no role `{name}`")))
        };
        let a = &entry.applies_to;
        let applies_to = match (a.everyone, &a.role, &a.unit, &a.except_role) {
            (true, None, None, None) => Audience::Everyone,
            (false, Some(r), None, None) => Audience::Role(role(r)?),
            (false, None, Some(u), None) => Audience::Unit(
                interim
                    .unit_by_name(u)
                    .ok_or_else(|| invalid(at.clone(), format!("no unit `{u}`")))?,
            ),
            (false, None, None, Some(r)) => Audience::ExceptRole(role(r)?),
            _ => {
                return Err(invalid(
                    at,
                    "give exactly one of everyone = true, role, unit, except_role",
                ))
            }
        };
        let id = model
            .restriction_rules
            .iter()
            .find(|r| r.name == entry.name)
            .map_or_else(|| next_rule.take(), |r| r.id);
        target.restriction_rules.push(RestrictionRule {
            id,
            name: entry.name.clone(),
            object,
            applies_to,
            actions,
            only,
        });
    }

    for (i, entry) in doc.approval_policies.iter().enumerate() {
        check_name(&format!("approval_policies[{i}].name"), &entry.name)?;
        let place = format!("approval policy `{}`", entry.name);
        if target
            .approval_policies
            .iter()
            .any(|p| p.name == entry.name)
        {
            return Err(invalid(
                format!("approval_policies[{i}]"),
                format!("a second approval policy named `{}`", entry.name),
            ));
        }
        let object = parse_object(&format!("{place}, object"), &entry.object)?;
        let when = entry
            .when
            .as_deref()
            .map(|w| {
                let value: Json = serde_json::from_str(w).map_err(|e| {
                    invalid(
                        format!("{place}, when"),
                        format!("not a JSON condition: {e}"),
                    )
                })?;
                criteria_from_json(&value).map_err(|m| invalid(format!("{place}, when"), m))
            })
            .transpose()?;
        let operations = entry
            .operations
            .iter()
            .map(|a| {
                Action::parse(a).map_err(|e| invalid(format!("{place}, operations"), e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let r = &entry.requesters;
        let requesters = match (r.anyone, &r.role, &r.unit) {
            (_, None, None) => RequestersInput::Anyone,
            (false, Some(role), None) => RequestersInput::Role(role.clone()),
            (false, None, Some(unit)) => RequestersInput::Unit(unit.clone()),
            _ => {
                return Err(invalid(
                    format!("{place}, requesters"),
                    "give one of anyone = true, role, unit",
                ))
            }
        };
        let a = &entry.approvers;
        let approvers = match (a.superior, &a.role, &a.users) {
            (Some(levels), None, None) => ApproversInput::Superior(levels),
            (None, Some(role), None) => ApproversInput::Role(role.clone()),
            (None, None, Some(users)) => ApproversInput::Users(users.clone()),
            _ => {
                return Err(invalid(
                    format!("{place}, approvers"),
                    "give exactly one of superior, role, users",
                ))
            }
        };
        let input = ApprovalPolicyInput {
            name: entry.name.clone(),
            object,
            operations,
            fields: entry.fields.clone(),
            when,
            requesters,
            approvers,
            required: entry.required,
            expires_after_hours: entry.expires_after_hours,
            escalate: entry.escalate,
        };
        let id = model
            .approval_policies
            .iter()
            .find(|p| p.name == entry.name)
            .map_or_else(|| next_rule.take(), |p| p.id);
        let policy = Warden::resolve_policy(&subject, id, &input).map_err(|e| match e {
            ServiceError::Invalid { field, message } => {
                invalid(format!("{place}, {field}"), message)
            }
            other => other,
        })?;
        target.approval_policies.push(policy);
    }

    // The whole target must compile: the engine's own checks, once more.
    Snapshot::compile(&target).map_err(|e| invalid("file", e.to_string()))?;
    Ok(State {
        model: target,
        descriptions,
    })
}

fn resolve_principal(
    snapshot: &Snapshot,
    place: &str,
    named: &NamedPrincipal,
) -> Result<Principal> {
    match (&named.user, &named.unit, &named.role) {
        (Some(user), None, None) => snapshot
            .user_by_name(user)
            .map(|u| Principal::User(u.id()))
            .ok_or_else(|| invalid(place, format!("no user `{user}` in the database"))),
        (None, Some(unit), None) => snapshot
            .unit_by_name(unit)
            .map(Principal::Unit)
            .ok_or_else(|| invalid(place, format!("no unit `{unit}`"))),
        (None, None, Some(role)) => snapshot
            .role_by_name(role)
            .map(Principal::Role)
            .ok_or_else(|| invalid(place, format!("no role `{role}`"))),
        _ => Err(invalid(place, "give exactly one of user, unit, role")),
    }
}

// ---------------------------------------------------------------------------------------------
// The structural diff: item by item, by name, on the canonical form.

fn entry_json<T: Serialize>(entry: &T) -> Json {
    serde_json::to_value(entry).unwrap_or(Json::Null)
}

/// What differs between two entries of one item: list members added and removed, other
/// values as `key: old → new`.
fn entry_details(before: &Json, after: &Json) -> Vec<String> {
    let empty = serde_json::Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    let mut details = Vec::new();
    for key in keys {
        let (old, new) = (b.get(key), a.get(key));
        if old == new {
            continue;
        }
        let strings = |v: Option<&Json>| -> Option<Vec<String>> {
            match v {
                None => Some(Vec::new()),
                Some(Json::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                Some(_) => None,
            }
        };
        match (strings(old), strings(new)) {
            (Some(old), Some(new)) => {
                for item in old.iter().filter(|i| !new.contains(i)) {
                    details.push(format!("- {key} {item}"));
                }
                for item in new.iter().filter(|i| !old.contains(i)) {
                    details.push(format!("+ {key} {item}"));
                }
            }
            _ => {
                let show = |v: Option<&Json>| v.map_or_else(|| "none".to_owned(), Json::to_string);
                details.push(format!("{key}: {} → {}", show(old), show(new)));
            }
        }
    }
    details
}

fn diff_items<T: Serialize>(
    kind: &'static str,
    before: &[T],
    after: &[T],
    name: impl Fn(&T) -> &str,
    out: &mut Vec<PolicyItemChange>,
) {
    let old: BTreeMap<&str, &T> = before.iter().map(|e| (name(e), e)).collect();
    let new: BTreeMap<&str, &T> = after.iter().map(|e| (name(e), e)).collect();
    for (n, entry) in &new {
        match old.get(n) {
            None => out.push(PolicyItemChange {
                kind,
                name: (*n).to_owned(),
                change: ItemChangeKind::Added,
                details: Vec::new(),
            }),
            Some(previous) => {
                let details = entry_details(&entry_json(previous), &entry_json(entry));
                if !details.is_empty() {
                    out.push(PolicyItemChange {
                        kind,
                        name: (*n).to_owned(),
                        change: ItemChangeKind::Changed,
                        details,
                    });
                }
            }
        }
    }
    for n in old.keys().filter(|n| !new.contains_key(*n)) {
        out.push(PolicyItemChange {
            kind,
            name: (*n).to_owned(),
            change: ItemChangeKind::Removed,
            details: Vec::new(),
        });
    }
}

fn structural_diff(before: &Doc, after: &Doc) -> Vec<PolicyItemChange> {
    let mut out = Vec::new();
    if before.four_eyes != after.four_eyes {
        out.push(PolicyItemChange {
            kind: "setting",
            name: "four_eyes".into(),
            change: ItemChangeKind::Changed,
            details: vec![format!(
                "four_eyes: {} → {}",
                before.four_eyes, after.four_eyes
            )],
        });
    }
    for (object, control) in &after.controls {
        let old = before
            .controls
            .get(object)
            .map_or("by_customer", String::as_str);
        if old != control {
            out.push(PolicyItemChange {
                kind: "control",
                name: object.clone(),
                change: ItemChangeKind::Changed,
                details: vec![format!("{old} → {control}")],
            });
        }
    }
    diff_items("unit", &before.units, &after.units, |e| &e.name, &mut out);
    diff_items("role", &before.roles, &after.roles, |e| &e.name, &mut out);
    diff_items(
        "sharing rule",
        &before.sharing_rules,
        &after.sharing_rules,
        |e| &e.name,
        &mut out,
    );
    diff_items(
        "restriction rule",
        &before.restriction_rules,
        &after.restriction_rules,
        |e| &e.name,
        &mut out,
    );
    diff_items(
        "approval policy",
        &before.approval_policies,
        &after.approval_policies,
        |e| &e.name,
        &mut out,
    );
    out
}

// ---------------------------------------------------------------------------------------------
// Writing a plan in one transaction.

fn remap_unit(map: &HashMap<i64, i64>, id: UnitId) -> UnitId {
    UnitId(map.get(&id.0).copied().unwrap_or(id.0))
}

fn remap_role(map: &HashMap<i64, i64>, id: RoleId) -> RoleId {
    RoleId(map.get(&id.0).copied().unwrap_or(id.0))
}

/// Provisional unit and role ids replaced by the ones the database gave.
struct IdMaps {
    units: HashMap<i64, i64>,
    roles: HashMap<i64, i64>,
}

impl IdMaps {
    fn principal(&self, p: Principal) -> Principal {
        match p {
            Principal::Unit(u) => Principal::Unit(remap_unit(&self.units, u)),
            Principal::Role(r) => Principal::Role(remap_role(&self.roles, r)),
            user => user,
        }
    }

    fn sharing_rule(&self, rule: &SharingRule) -> SharingRule {
        let mut rule = rule.clone();
        if let RuleSource::OwnedByUnit(u) = rule.source {
            rule.source = RuleSource::OwnedByUnit(remap_unit(&self.units, u));
        }
        rule.share_with = self.principal(rule.share_with);
        rule
    }

    fn restriction_rule(&self, rule: &RestrictionRule) -> RestrictionRule {
        let mut rule = rule.clone();
        rule.applies_to = match rule.applies_to {
            Audience::Role(r) => Audience::Role(remap_role(&self.roles, r)),
            Audience::ExceptRole(r) => Audience::ExceptRole(remap_role(&self.roles, r)),
            Audience::Unit(u) => Audience::Unit(remap_unit(&self.units, u)),
            Audience::Everyone => Audience::Everyone,
        };
        rule
    }

    fn policy(&self, policy: &ApprovalPolicy) -> ApprovalPolicy {
        let mut policy = policy.clone();
        policy.requesters = match policy.requesters {
            Requesters::Role(r) => Requesters::Role(remap_role(&self.roles, r)),
            Requesters::Unit(u) => Requesters::Unit(remap_unit(&self.units, u)),
            Requesters::Anyone => Requesters::Anyone,
        };
        if let Approvers::Role(r) = policy.approvers {
            policy.approvers = Approvers::Role(remap_role(&self.roles, r));
        }
        policy
    }
}

/// Writes a plan in `tx`: refused unless the organisation is still at the plan's epoch.
/// The caller logs the change and bumps the epoch (once) in the same transaction.
pub(crate) async fn write_plan(tx: &mut Tx, plan: &PolicyPlan, now: Timestamp) -> Result<()> {
    if tx.lock_epoch().await? != plan.epoch {
        return Err(ServiceError::Conflict(
            "the organisation changed while the policy file was being applied; apply it again"
                .into(),
        ));
    }
    let current = &plan.current.model;
    let target = &plan.target.model;
    let in_target_units: BTreeSet<&str> = target.units.iter().map(|u| u.name.as_str()).collect();
    let in_target_roles: BTreeSet<&str> = target.roles.iter().map(|r| r.name.as_str()).collect();

    // Rules and policies the file drops go first: they may name a unit or role it drops.
    for rule in &current.sharing_rules {
        if !target.sharing_rules.iter().any(|r| r.name == rule.name) {
            tx.delete_rule(false, rule.id).await?;
        }
    }
    for rule in &current.restriction_rules {
        if !target.restriction_rules.iter().any(|r| r.name == rule.name) {
            tx.delete_rule(true, rule.id).await?;
        }
    }
    for policy in &current.approval_policies {
        if !target
            .approval_policies
            .iter()
            .any(|p| p.name == policy.name)
        {
            tx.delete_approval_policy(policy.id).await?;
        }
    }

    // Units, parents before children (so no move ever makes a cycle on the way).
    let mut maps = IdMaps {
        units: HashMap::new(),
        roles: HashMap::new(),
    };
    let mut placed: BTreeSet<i64> = BTreeSet::new();
    while placed.len() < target.units.len() {
        let before = placed.len();
        for unit in &target.units {
            if placed.contains(&unit.id.0) || unit.parent.is_some_and(|p| !placed.contains(&p.0)) {
                continue;
            }
            let parent = unit.parent.map(|p| remap_unit(&maps.units, p));
            if plan.new_units.contains(&unit.id.0) {
                let id = tx
                    .insert_unit(&unit.name, parent, now)
                    .await
                    .map_err(ServiceError::from)?;
                maps.units.insert(unit.id.0, id.0);
            } else if current
                .units
                .iter()
                .any(|u| u.id == unit.id && u.parent != parent)
            {
                tx.update_unit(unit.id, None, Some(parent)).await?;
            }
            placed.insert(unit.id.0);
        }
        if placed.len() == before {
            return Err(ServiceError::Internal(
                "the file's units form a cycle".into(),
            ));
        }
    }

    // Roles: new ones created, changed ones replaced (the entries compare in names).
    let current_roles: HashMap<&str, &RoleEntry> = plan
        .current_doc
        .roles
        .iter()
        .map(|r| (r.name.as_str(), r))
        .collect();
    for (role, entry) in target
        .roles
        .iter()
        .zip(ordered_roles(&plan.target_doc, target))
    {
        let description = plan
            .target
            .descriptions
            .get(&role.id)
            .map_or("", String::as_str);
        let contents = warden_store::RoleContents {
            grants: &role.grants,
            permissions: &role.permissions,
            fields: &role.fields,
        };
        if plan.new_roles.contains(&role.id.0) {
            let id = tx
                .insert_role(&role.name, description, contents, now)
                .await?;
            maps.roles.insert(role.id.0, id.0);
        } else {
            let unchanged = current_roles.get(role.name.as_str()).is_some_and(|old| {
                old.description == entry.description
                    && old.permissions == entry.permissions
                    && old.grants == entry.grants
                    && old.fields == entry.fields
            });
            if !unchanged {
                tx.update_role(role.id, &role.name, description, contents, now)
                    .await?;
            }
        }
        let owner = AccessOwner::Role(remap_role(&maps.roles, role.id));
        let rules_of = |model: &Model, id: RoleId| {
            model
                .access_rules
                .iter()
                .find(|(o, _)| *o == AccessOwner::Role(id))
                .map(|(_, r)| r.clone())
                .unwrap_or_default()
        };
        let wanted = rules_of(target, role.id);
        let had = if plan.new_roles.contains(&role.id.0) {
            Default::default()
        } else {
            rules_of(current, role.id)
        };
        if wanted != had {
            let empty = wanted == Default::default();
            tx.set_access_rules(owner, (!empty).then_some(&wanted))
                .await?;
        }
    }

    // Rules and policies: replaced when they differ, created when new.
    for rule in &target.sharing_rules {
        let rule = maps.sharing_rule(rule);
        match current.sharing_rules.iter().find(|r| r.name == rule.name) {
            Some(old) if *old == rule => {}
            Some(_) => tx.update_sharing_rule(&rule, now).await?,
            None => {
                tx.insert_sharing_rule(&rule, now).await?;
            }
        }
    }
    for rule in &target.restriction_rules {
        let rule = maps.restriction_rule(rule);
        match current
            .restriction_rules
            .iter()
            .find(|r| r.name == rule.name)
        {
            Some(old) if *old == rule => {}
            Some(_) => tx.update_restriction_rule(&rule, now).await?,
            None => {
                tx.insert_restriction_rule(&rule, now).await?;
            }
        }
    }
    for policy in &target.approval_policies {
        let policy = maps.policy(policy);
        match current
            .approval_policies
            .iter()
            .find(|p| p.name == policy.name)
        {
            Some(old) if *old == policy => {}
            Some(_) => tx.update_approval_policy(&policy, None, now).await?,
            None => {
                tx.insert_approval_policy(&policy, now).await?;
            }
        }
    }

    // Roles and units the file drops, once nothing the file keeps names them; deepest units
    // first.
    for role in current
        .roles
        .iter()
        .filter(|r| !in_target_roles.contains(r.name.as_str()))
    {
        tx.delete_role(role.id, &role.name).await?;
    }
    let depth = |unit: &UnitDef| {
        let mut d = 0;
        let mut at = unit.parent;
        while let Some(p) = at {
            d += 1;
            at = current
                .units
                .iter()
                .find(|u| u.id == p)
                .and_then(|u| u.parent);
            if d > current.units.len() {
                break;
            }
        }
        d
    };
    let mut dropped: Vec<&UnitDef> = current
        .units
        .iter()
        .filter(|u| !in_target_units.contains(u.name.as_str()))
        .collect();
    dropped.sort_by_key(|u| std::cmp::Reverse(depth(u)));
    for unit in dropped {
        tx.delete_unit(unit.id, &unit.name).await?;
    }

    for object in ObjectType::ALL
        .iter()
        .filter(|o| **o != ObjectType::Customers)
    {
        let wanted = effective_control(target, *object);
        if wanted != effective_control(current, *object) {
            tx.set_control(*object, wanted).await?;
        }
    }
    if target.four_eyes != current.four_eyes {
        tx.set_setting(
            warden_store::FOUR_EYES,
            if target.four_eyes { "on" } else { "off" },
        )
        .await?;
    }
    Ok(())
}

/// The target doc's role entries in the order of the target model's roles.
fn ordered_roles<'a>(doc: &'a Doc, model: &Model) -> Vec<&'a RoleEntry> {
    model
        .roles
        .iter()
        .filter_map(|r| doc.roles.iter().find(|e| e.name == r.name))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The use cases.

impl Warden {
    /// The organisation at one epoch, with the roles' descriptions.
    async fn policy_state(&self) -> Result<State> {
        // The model and the role rows are two reads: take them at one epoch.
        for _ in 0..5 {
            let epoch = self.store.epoch().await?;
            let rows = self.store.roles().await?;
            let model = self.store.load_model().await?;
            if model.epoch == epoch {
                return Ok(State {
                    model,
                    descriptions: rows.into_iter().map(|r| (r.id, r.description)).collect(),
                });
            }
        }
        Err(ServiceError::Conflict(
            "the organisation keeps changing; try again".into(),
        ))
    }

    /// The organisation's policy as a TOML file (an operator command: no user).
    pub async fn export_policy(&self) -> Result<String> {
        render(&export_doc(&self.policy_state().await?)?)
    }

    /// The policy file, for a holder of `manage_roles` (the API).
    pub async fn export_policy_as(&self, subject: &Subject) -> Result<String> {
        subject.require(Permission::ManageRoles)?;
        self.export_policy().await
    }

    /// A subject for an operator command acting as `username` (the operator holds the data
    /// directory and its master key; the user's own permissions are what is checked).
    pub async fn operator_subject(&self, username: &str, now: Timestamp) -> Result<Subject> {
        let snapshot = self.current_snapshot().await?;
        let user = snapshot
            .user_by_name(username)
            .filter(|u| !u.disabled())
            .map(|u| u.id())
            .ok_or_else(|| invalid("as", format!("no enabled user `{username}`")))?;
        Ok(Subject {
            user,
            username: username.to_owned(),
            snapshot,
            now,
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            session_hash: String::new(),
            mfa_pending: false,
            viewer: None,
        })
    }

    /// The subject of an apply without a user: allowed only while the database has no users.
    async fn bootstrap_subject(&self, now: Timestamp) -> Result<Subject> {
        let snapshot = self.current_snapshot().await?;
        if snapshot.users().next().is_some() {
            return Err(invalid(
                "as",
                "the database has users: name the user who applies the file (--as USERNAME)",
            ));
        }
        Ok(Subject {
            user: UserId(0),
            username: BOOTSTRAP_ACTOR.to_owned(),
            snapshot,
            now,
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            session_hash: String::new(),
            mfa_pending: false,
            viewer: None,
        })
    }

    /// What applying `file` would change, checked whole; nothing is written. `subject`
    /// `None` is the bootstrap of a database without users.
    pub async fn plan_policy(
        &self,
        subject: Option<&Subject>,
        file: &str,
        now: Timestamp,
    ) -> Result<PolicyPlan> {
        let subject = match subject {
            Some(s) => {
                s.require(Permission::ManageRoles)?;
                s.clone()
            }
            None => self.bootstrap_subject(now).await?,
        };
        self.make_plan(&subject, file).await
    }

    async fn make_plan(&self, subject: &Subject, file: &str) -> Result<PolicyPlan> {
        let doc = parse_doc(file)?;
        let current = self.policy_state().await?;
        let current_doc = export_doc(&current)?;
        let target = build_target(subject, &current, &doc)?;
        let target_doc = export_doc(&target)?;
        let changes = structural_diff(&current_doc, &target_doc);
        let before =
            Snapshot::compile(&current.model).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let after = Snapshot::compile(&target.model).map_err(|e| invalid("file", e.to_string()))?;
        let access = if changes.is_empty() {
            Vec::new()
        } else {
            self.access_diff(&before, &after, subject.now).await?
        };
        let known_units: BTreeSet<i64> = current.model.units.iter().map(|u| u.id.0).collect();
        let known_roles: BTreeSet<i64> = current.model.roles.iter().map(|r| r.id.0).collect();
        Ok(PolicyPlan {
            changes,
            access,
            canonical: render(&target_doc)?,
            before: digest(&render(&current_doc)?),
            epoch: current.model.epoch,
            new_units: target
                .model
                .units
                .iter()
                .map(|u| u.id.0)
                .filter(|id| !known_units.contains(id))
                .collect(),
            new_roles: target
                .model
                .roles
                .iter()
                .map(|r| r.id.0)
                .filter(|id| !known_roles.contains(id))
                .collect(),
            current,
            target,
            current_doc,
            target_doc,
        })
    }

    /// Per user and action, the customers gained and lost: two counts in SQL for each pair
    /// whose filter changes (pairs with the same filter before and after cannot change).
    async fn access_diff(
        &self,
        before: &Snapshot,
        after: &Snapshot,
        now: Timestamp,
    ) -> Result<Vec<PolicyAccessChange>> {
        let mut users: Vec<(String, UserId)> = before
            .users()
            .map(|u| (u.username().to_owned(), u.id()))
            .collect();
        users.sort();
        let mut out = Vec::new();
        for (username, user) in users {
            for action in DIFF_ACTIONS {
                let old = before.filter(user, *action, ObjectType::Customers, now);
                let new = after.filter(user, *action, ObjectType::Customers, now);
                if old == new {
                    continue;
                }
                let gained = self.store.count_records(&new, Some(&old)).await?;
                let lost = self.store.count_records(&old, Some(&new)).await?;
                if gained > 0 || lost > 0 {
                    out.push(PolicyAccessChange {
                        user: username.clone(),
                        action: *action,
                        gained,
                        lost,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Plans `file` and applies it as one change: at once, or — with four eyes on — held as
    /// one approval request. Returns the plan with the outcome; a file that changes nothing
    /// writes nothing.
    pub async fn apply_policy(
        &self,
        subject: Option<&Subject>,
        file: &str,
        now: Timestamp,
    ) -> Result<(PolicyPlan, Outcome<()>)> {
        let plan = self.plan_policy(subject, file, now).await?;
        if plan.is_empty() {
            return Ok((plan, Outcome::Done(())));
        }
        let plan = Arc::new(plan);
        let change = OrgChange::ApplyPolicy(Box::new(PolicyChange {
            file: plan.canonical.clone(),
            before: plan.before.clone(),
            summary: plan.summary(),
            plan: Some(plan.clone()),
        }));
        let outcome = match subject {
            Some(subject) => match self.submit_org_change(subject, change).await? {
                Outcome::Done(_) => Outcome::Done(()),
                Outcome::Pending(view) => Outcome::Pending(view),
            },
            None => {
                // No user can hold a permission yet: the bootstrap writes directly (four eyes
                // cannot be on without users to approve).
                let subject = self.bootstrap_subject(now).await?;
                let mut tx = self.store.begin().await?;
                crate::four_eyes::write_change(&mut tx, &subject, &change).await?;
                tx.commit().await?;
                Outcome::Done(())
            }
        };
        let plan = Arc::try_unwrap(plan).unwrap_or_else(|shared| (*shared).clone());
        Ok((plan, outcome))
    }

    /// For an approved policy file: the plan made again on the database of the moment,
    /// refused if the policy changed since the request.
    pub(crate) async fn replan_held_policy(
        &self,
        requester: &Subject,
        held: &PolicyChange,
    ) -> Result<PolicyChange> {
        let plan = self.make_plan(requester, &held.file).await?;
        if plan.before != held.before {
            return Err(ServiceError::Conflict(
                "the organisation's policy changed since the request".into(),
            ));
        }
        Ok(PolicyChange {
            plan: Some(Arc::new(plan)),
            ..held.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_read_back_from_their_text() {
        for text in [
            "customers read own",
            "deals update subordinates 2",
            "customers read subordinates",
            "contacts export unit_tree",
            "customers read account",
        ] {
            let grant = parse_grant("g", text).unwrap();
            assert_eq!(grant_text(&grant), text);
        }
        for bad in [
            "customers read",
            "customers read everything",
            "customers read own 2",
        ] {
            assert!(parse_grant("g", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn details_name_list_members_and_values() {
        let before = json!({"grants": ["customers read own"], "description": "a"});
        let after = json!({"grants": ["customers read all"], "description": "b"});
        assert_eq!(
            entry_details(&before, &after),
            vec![
                "description: \"a\" → \"b\"".to_owned(),
                "- grants customers read own".to_owned(),
                "+ grants customers read all".to_owned(),
            ]
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let err = parse_doc("four_eyes = false\n\n[[units]]\nname = \n").unwrap_err();
        assert!(err.to_string().starts_with("line 4"), "{err}");
    }

    /// Fragments of policy files: random sequences of them are often valid TOML, so the
    /// parsers behind the TOML reader are reached too.
    const FRAGMENTS: &[&str] = &[
        "four_eyes = true",
        "four_eyes = \"yes\"",
        "[controls]",
        "contacts = \"by_customer\"",
        "deals = \"no_such_control\"",
        "[[units]]",
        "name = \"Sales\"",
        "parent = \"Head Office\"",
        "[[roles]]",
        "name = \"Sales Rep\"",
        "grants = [\"customers read own\", \"deals update subordinates 2\"]",
        "grants = [\"customers read subordinates 99999999999\"]",
        "permissions = [\"manage_users\"]",
        "[[roles.fields]]",
        "object = \"customers\"",
        "field = \"credit_limit\"",
        "access = \"masked\"",
        "[[sharing_rules]]",
        "when = '{\"field\": \"region\", \"eq\": \"EMEA\"}'",
        "when = '{\"not\": {\"any\": [{\"field\": \"vip\", \"eq\": true}]}}'",
        "when = '{\"all\": []}'",
        "when = '{\"region\": \"EMEA\", \"status\": {\"ne\": \"inactive\"}}'",
        "when = '{\"in\": {\"status\": [\"active\", 1, null]}}'",
        "only = '{\"credit_limit\": {\"gt\": 9223372036854775807}}'",
        "owned_by_unit = \"Sales\"",
        "share_with = { role = \"Auditor\" }",
        "[[restriction_rules]]",
        "only = '{\"field\": \"credit_limit\", \"gt\": -1}'",
        "applies_to = { everyone = true }",
        "[[approval_policies]]",
        "operations = [\"delete\"]",
        "approvers = { superior = 1 }",
        "expires_after_hours = 4294967295",
        "name = \"\"",
        "x = [[[[[[[[[[1]]]]]]]]]]",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        #[test]
        fn no_text_panics_the_policy_file_parsers(text in proptest::prelude::any::<String>()) {
            exercise_parsers(&text);
        }

        #[test]
        fn no_fragment_sequence_panics_the_policy_file_parsers(
            lines in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..24),
        ) {
            exercise_parsers(&lines.join("\n"));
        }
    }
}
