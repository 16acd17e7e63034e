//! Access beyond the hierarchy, and limits on all access: shares and record teams (on one
//! record), sharing rules (by a condition on the record, or by the owning unit), restriction
//! rules (which narrow every grant and share), and the portal bound of external users.
//!
//! How they combine, for one user, action and record (the record that decides: the record
//! itself, or its customer for an object controlled by its customer):
//!
//! ```text
//! allowed = (a role grant's scope covers it  ∨  a share or team place names the user
//!            ∨  a sharing rule covers it and names the user)
//!           ∧  every restriction rule that applies to the user holds on it
//!           ∧  (not a portal user  ∨  it belongs to the user's customer account)
//! ```
//!
//! Shares, team places and sharing rules give `read` or `edit` (read and update); never
//! delete, share or transfer, which stay with the owner's grants.
//!
//! INVARIANT: a portal user reaches nothing outside their own customer account, whatever
//! their roles, shares or rules say: the account bound is a conjunct of every decision and
//! of every filter.

use crate::schema::{schema, FieldKind, Value};
use crate::{Action, CompareOp, Criteria, ObjectType, RoleId, UnitId, UserId};

/// Who a share, a team place or a sharing rule gives access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// One user.
    User(UserId),
    /// Members of the unit and of every unit below it.
    Unit(UnitId),
    /// Holders of the role (active assignments).
    Role(RoleId),
}

impl Principal {
    /// The stable name of the kind (`user`, `unit`, `role`).
    pub fn kind(self) -> &'static str {
        match self {
            Principal::User(_) => "user",
            Principal::Unit(_) => "unit",
            Principal::Role(_) => "role",
        }
    }

    /// The id of the user, unit or role.
    pub fn id(self) -> i64 {
        match self {
            Principal::User(id) => id.0,
            Principal::Unit(id) => id.0,
            Principal::Role(id) => id.0,
        }
    }

    /// Builds a principal from its kind's name and id.
    pub fn from_parts(kind: &str, id: i64) -> Option<Principal> {
        match kind {
            "user" => Some(Principal::User(UserId(id))),
            "unit" => Some(Principal::Unit(UnitId(id))),
            "role" => Some(Principal::Role(RoleId(id))),
            _ => None,
        }
    }
}

/// What a share, a team place or a sharing rule gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShareAccess {
    /// Read the record.
    Read,
    /// Read and update it.
    Edit,
}

impl ShareAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareAccess::Read => "read",
            ShareAccess::Edit => "edit",
        }
    }

    pub fn parse(name: &str) -> Option<ShareAccess> {
        match name {
            "read" => Some(ShareAccess::Read),
            "edit" => Some(ShareAccess::Edit),
            _ => None,
        }
    }

    /// Whether this access allows `action` (on the record that decides).
    pub fn allows(self, action: Action) -> bool {
        match action {
            Action::Read => true,
            Action::Update => self == ShareAccess::Edit,
            _ => false,
        }
    }

    /// The least access that allows `action`, if any does.
    pub fn needed_for(action: Action) -> Option<ShareAccess> {
        match action {
            Action::Read => Some(ShareAccess::Read),
            Action::Update => Some(ShareAccess::Edit),
            _ => None,
        }
    }
}

/// Whether an entry on a record is a share (given by someone allowed to share) or a place in
/// the record's team (managed by the owner and their superiors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShareKind {
    Share,
    Team,
}

impl ShareKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareKind::Share => "share",
            ShareKind::Team => "team",
        }
    }

    pub fn parse(name: &str) -> Option<ShareKind> {
        match name {
            "share" => Some(ShareKind::Share),
            "team" => Some(ShareKind::Team),
            _ => None,
        }
    }
}

/// One share or team place on a record, as the store loads it with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Share {
    pub kind: ShareKind,
    pub principal: Principal,
    pub access: ShareAccess,
}

/// Which records a sharing rule opens.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleSource {
    /// Records meeting a condition on their fields.
    Criteria(Criteria),
    /// Records of the unit or of any unit below it.
    OwnedByUnit(UnitId),
}

/// "Records of `object` that `source` picks are shared with `share_with`, for `access`."
#[derive(Debug, Clone, PartialEq)]
pub struct SharingRule {
    pub id: i64,
    pub name: String,
    pub object: ObjectType,
    pub source: RuleSource,
    pub share_with: Principal,
    pub access: ShareAccess,
}

/// Whom a restriction rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    Everyone,
    /// Holders of the role (active assignments).
    Role(RoleId),
    /// Members of the unit and of every unit below it.
    Unit(UnitId),
    /// Everyone who does not hold the role.
    ExceptRole(RoleId),
}

/// "For `applies_to`, `actions` on `object` reach only records meeting `only`", whatever
/// grants, shares and sharing rules say.
#[derive(Debug, Clone, PartialEq)]
pub struct RestrictionRule {
    pub id: i64,
    pub name: String,
    pub object: ObjectType,
    pub applies_to: Audience,
    /// The actions it narrows; empty: every action.
    pub actions: Vec<Action>,
    pub only: Criteria,
}

impl RestrictionRule {
    /// Whether the rule narrows `action`.
    pub fn narrows(&self, action: Action) -> bool {
        self.actions.is_empty() || self.actions.contains(&action)
    }
}

/// Why a condition cannot be used by a sharing or restriction rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadCondition {
    /// The field at fault, when there is one.
    pub field: Option<String>,
    pub message: String,
}

impl Criteria {
    /// Whether the record with `values` (in `object`'s schema order) meets the condition. A
    /// missing value is empty (null). Change tests (`changed`, `increased`, `decreased`) do not
    /// hold on a record at rest; rules refuse them ([`Criteria::check_for_records`]).
    ///
    /// The store evaluates the same condition in SQL (`crates/store/src/sql.rs`); both treat
    /// null the same way: a comparison with an empty field is false unless it compares with
    /// null itself, and `not` is plain negation.
    pub fn holds(&self, object: ObjectType, values: &[Value]) -> bool {
        let value_of = |field: &str| {
            schema(object)
                .field(field)
                .and_then(|(index, _)| values.get(index))
                .unwrap_or(&Value::Null)
        };
        match self {
            Criteria::All(items) => items.iter().all(|c| c.holds(object, values)),
            Criteria::Any(items) => items.iter().any(|c| c.holds(object, values)),
            Criteria::Not(inner) => !inner.holds(object, values),
            Criteria::Compare { field, op, value } => {
                crate::approval::compare_holds(value_of(field), *op, value)
            }
            Criteria::In { field, values: set } => set.contains(value_of(field)),
            Criteria::Changed(_) | Criteria::Increased(_) | Criteria::Decreased(_) => false,
        }
    }

    /// Refuses a condition that a rule on `object`'s records cannot use: unknown or encrypted
    /// fields (ciphertext cannot be compared in SQL), change tests, values of the wrong kind,
    /// and ordering comparisons on anything but numbers, dates and text.
    pub fn check_for_records(&self, object: ObjectType) -> Result<(), BadCondition> {
        let bad = |field: &str, message: String| BadCondition {
            field: Some(field.to_owned()),
            message,
        };
        match self {
            Criteria::All(items) | Criteria::Any(items) => {
                items.iter().try_for_each(|c| c.check_for_records(object))
            }
            Criteria::Not(inner) => inner.check_for_records(object),
            Criteria::Changed(field) | Criteria::Increased(field) | Criteria::Decreased(field) => {
                Err(bad(
                    field,
                    format!("`{field}`: change tests have no meaning for a rule on records"),
                ))
            }
            Criteria::Compare { field, op, value } => {
                let kind = rule_field_kind(object, field).map_err(|m| bad(field, m))?;
                check_value_kind(kind, value).map_err(|m| bad(field, format!("`{field}`: {m}")))?;
                if !matches!(op, CompareOp::Eq | CompareOp::Ne) && matches!(kind, FieldKind::Bool) {
                    return Err(bad(field, format!("`{field}` is yes/no: only eq and ne")));
                }
                Ok(())
            }
            Criteria::In { field, values } => {
                let kind = rule_field_kind(object, field).map_err(|m| bad(field, m))?;
                values.iter().try_for_each(|value| {
                    check_value_kind(kind, value).map_err(|m| bad(field, format!("`{field}`: {m}")))
                })
            }
        }
    }
}

fn rule_field_kind(object: ObjectType, field: &str) -> Result<FieldKind, String> {
    let Some((_, def)) = schema(object).field(field) else {
        return Err(format!("`{field}` is not a field of {object}"));
    };
    if def.sensitive {
        return Err(format!(
            "`{field}` is encrypted at rest: a rule cannot test it"
        ));
    }
    Ok(def.kind)
}

fn check_value_kind(kind: FieldKind, value: &Value) -> Result<(), String> {
    match (kind, value) {
        (_, Value::Null) => Ok(()),
        (FieldKind::Integer { .. }, Value::Integer(_)) => Ok(()),
        (FieldKind::Bool, Value::Bool(_)) => Ok(()),
        (
            FieldKind::Text { .. } | FieldKind::Email | FieldKind::Choice(_) | FieldKind::Date,
            Value::Text(_),
        ) => Ok(()),
        (kind, _) => Err(format!("the value must be {}", kind_name(kind))),
    }
}

fn kind_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Integer { .. } => "a number",
        FieldKind::Bool => "true or false",
        _ => "text",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(region: &str, status: Option<&str>) -> Vec<Value> {
        let mut values = vec![Value::Null; schema(ObjectType::Customers).fields.len()];
        let (r, _) = schema(ObjectType::Customers)
            .field("region")
            .expect("customers have a region");
        values[r] = Value::Text(region.into());
        if let Some(status) = status {
            let (s, _) = schema(ObjectType::Customers)
                .field("status")
                .expect("customers have a status");
            values[s] = Value::Text(status.into());
        }
        values
    }

    fn eq(field: &str, value: Value) -> Criteria {
        Criteria::Compare {
            field: field.into(),
            op: CompareOp::Eq,
            value,
        }
    }

    #[test]
    fn conditions_hold_on_records_with_nulls_as_sql_does() {
        let east = customer("East", None);
        let active = customer("West", Some("active"));
        let is_active = eq("status", Value::Text("active".into()));
        assert!(eq("region", Value::Text("East".into())).holds(ObjectType::Customers, &east));
        assert!(!is_active.holds(ObjectType::Customers, &east));
        assert!(is_active.holds(ObjectType::Customers, &active));
        // `not` is plain negation: an empty status is "not active".
        let not_active = Criteria::Not(Box::new(is_active));
        assert!(not_active.holds(ObjectType::Customers, &east));
        assert!(eq("status", Value::Null).holds(ObjectType::Customers, &east));
        assert!(!Criteria::Changed("region".into()).holds(ObjectType::Customers, &east));
    }

    #[test]
    fn rules_refuse_encrypted_fields_change_tests_and_wrong_kinds() {
        let customers = ObjectType::Customers;
        assert!(eq("region", Value::Text("East".into()))
            .check_for_records(customers)
            .is_ok());
        assert!(eq("vip", Value::Bool(true))
            .check_for_records(customers)
            .is_ok());
        let encrypted = eq("credit_limit", Value::Integer(5)).check_for_records(customers);
        assert_eq!(
            encrypted.map_err(|e| e.field),
            Err(Some("credit_limit".to_owned()))
        );
        assert!(Criteria::Changed("region".into())
            .check_for_records(customers)
            .is_err());
        assert!(eq("vip", Value::Text("yes".into()))
            .check_for_records(customers)
            .is_err());
        assert!(eq("nope", Value::Null)
            .check_for_records(customers)
            .is_err());
        let ordered_bool = Criteria::Compare {
            field: "vip".into(),
            op: CompareOp::Gt,
            value: Value::Bool(false),
        };
        assert!(ordered_bool.check_for_records(customers).is_err());
    }

    #[test]
    fn share_access_covers_read_and_update_only() {
        assert!(ShareAccess::Read.allows(Action::Read));
        assert!(!ShareAccess::Read.allows(Action::Update));
        assert!(ShareAccess::Edit.allows(Action::Update));
        for action in [
            Action::Create,
            Action::Delete,
            Action::Share,
            Action::Export,
        ] {
            assert!(!ShareAccess::Edit.allows(action), "{action}");
        }
    }
}
