//! Approval policies: which changes wait for whose approval, the small condition language they
//! share (`Criteria`), and who may approve a given request (`Snapshot::approvers`).
//!
//! A policy catches a change by object, operation, changed fields, a condition on the record
//! and who asks; it names its approvers (a superior some levels up, the holders of a role,
//! named users, or — for four eyes on the organisation itself — the holders of a permission)
//! and how many distinct people must approve. Every policy that catches a change becomes one
//! *step* of its request; the change is applied when every step has its approvals.
//!
//! INVARIANT: nobody approves their own request, by any of their accounts: the approvers of a
//! request never include a user who is the same person as the requester (`Model::persons`).

use crate::schema::{schema, Value};
use crate::{
    Action, ObjectType, Permission, RecordRef, RoleId, Snapshot, Timestamp, UnitId, UserId,
};

/// One approval policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalPolicy {
    pub id: i64,
    pub name: String,
    pub object: ObjectType,
    /// The operations it catches: `create`, `update` and/or `delete`.
    pub operations: Vec<Action>,
    /// Only when one of these fields changes (a create sets every field it names); empty:
    /// any change. Deletes are caught whatever the fields.
    pub fields: Vec<String>,
    /// Only when the record (as it will be; for a delete, as it is) meets this condition.
    pub when: Option<Criteria>,
    pub requesters: Requesters,
    pub approvers: Approvers,
    /// How many distinct people among the approvers must approve (N of M).
    pub required: u32,
    /// A request left undecided this long expires (or escalates).
    pub expires_after_ms: Option<i64>,
    /// On expiry, a `superior` step moves one level further up instead of expiring.
    pub escalate: bool,
}

/// Whose changes a policy catches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requesters {
    Anyone,
    /// Holders of the role (active assignments).
    Role(RoleId),
    /// Members of the unit or of any unit below it.
    Unit(UnitId),
}

/// Who approves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approvers {
    /// The requester's superior `levels` up the reporting line (1 = the direct superior).
    Superior { levels: u32 },
    /// Any holder of the role (active assignment).
    Role(RoleId),
    /// Any of these users.
    Users(Vec<UserId>),
    /// Any holder of the functional permission (four eyes on permission changes).
    Permission(Permission),
}

/// A comparison in a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    /// Every operator with its stable name.
    pub const ALL: &'static [(CompareOp, &'static str)] = &[
        (CompareOp::Eq, "eq"),
        (CompareOp::Ne, "ne"),
        (CompareOp::Gt, "gt"),
        (CompareOp::Ge, "gte"),
        (CompareOp::Lt, "lt"),
        (CompareOp::Le, "lte"),
    ];

    pub fn as_str(self) -> &'static str {
        CompareOp::ALL
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("eq", |(_, name)| name)
    }

    pub fn parse(name: &str) -> Option<CompareOp> {
        CompareOp::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(op, _)| *op)
    }
}

/// A condition on a record, shared by approval policies (and, later, sharing and restriction
/// rules). Small on purpose: comparisons of one field with a constant, set membership, change
/// tests, and `all` / `any` / `not`.
#[derive(Debug, Clone, PartialEq)]
pub enum Criteria {
    All(Vec<Criteria>),
    Any(Vec<Criteria>),
    Not(Box<Criteria>),
    /// `field op value`. Integers compare as numbers, text by code points; an empty field
    /// (null) equals only null and is neither greater nor less than anything.
    Compare {
        field: String,
        op: CompareOp,
        value: Value,
    },
    /// The field's value is one of these.
    In {
        field: String,
        values: Vec<Value>,
    },
    /// The change sets the field to another value (a create: to anything but empty).
    Changed(String),
    /// The change raises the field (an empty value is below every value).
    Increased(String),
    /// The change lowers the field (to a smaller value or to empty).
    Decreased(String),
}

/// A change proposed to one record: its values before (none for a create) and after (none for
/// a delete), in schema order, and the record as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Proposal<'a> {
    pub object: ObjectType,
    pub action: Action,
    pub before: Option<&'a [Value]>,
    pub after: Option<&'a [Value]>,
    pub record: &'a RecordRef<'a>,
}

impl Proposal<'_> {
    fn field(&self, name: &str) -> Option<usize> {
        schema(self.object).field(name).map(|(index, _)| index)
    }

    /// The record as it will be (as it is, for a delete).
    fn current(&self, index: usize) -> &Value {
        self.after
            .or(self.before)
            .and_then(|values| values.get(index))
            .unwrap_or(&Value::Null)
    }

    fn old_and_new(&self, index: usize) -> Option<(&Value, &Value)> {
        let after = self.after?.get(index).unwrap_or(&Value::Null);
        let before = self
            .before
            .and_then(|values| values.get(index))
            .unwrap_or(&Value::Null);
        Some((before, after))
    }

    /// Whether the change sets `name` to another value.
    pub fn changes(&self, name: &str) -> bool {
        self.field(name)
            .and_then(|i| self.old_and_new(i))
            .is_some_and(|(before, after)| before != after)
    }
}

/// Orders two values of one field: `None` when they do not compare (different kinds, or one is
/// empty).
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Integer(a), Value::Integer(b)) => Some(a.cmp(b)),
        (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// `current op value`: equality on any values (null equals only null), order only between
/// values of one kind.
pub(crate) fn compare_holds(current: &Value, op: CompareOp, value: &Value) -> bool {
    match op {
        CompareOp::Eq => current == value,
        CompareOp::Ne => current != value,
        CompareOp::Gt => compare(current, value).is_some_and(|o| o.is_gt()),
        CompareOp::Ge => compare(current, value).is_some_and(|o| o.is_ge()),
        CompareOp::Lt => compare(current, value).is_some_and(|o| o.is_lt()),
        CompareOp::Le => compare(current, value).is_some_and(|o| o.is_le()),
    }
}

/// `a < b` where an empty value is below every value.
fn raised(before: &Value, after: &Value) -> bool {
    match (before, after) {
        (_, Value::Null) => false,
        (Value::Null, _) => true,
        (b, a) => compare(b, a) == Some(std::cmp::Ordering::Less),
    }
}

impl Criteria {
    /// Every field the condition names.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Criteria::All(items) | Criteria::Any(items) => {
                items.iter().for_each(|c| c.collect_fields(out))
            }
            Criteria::Not(inner) => inner.collect_fields(out),
            Criteria::Compare { field, .. }
            | Criteria::In { field, .. }
            | Criteria::Changed(field)
            | Criteria::Increased(field)
            | Criteria::Decreased(field) => out.push(field),
        }
    }

    /// Whether the proposal meets the condition. A field the object does not have makes its
    /// test false (compiled policies name only real fields).
    pub fn matches(&self, proposal: &Proposal<'_>) -> bool {
        match self {
            Criteria::All(items) => items.iter().all(|c| c.matches(proposal)),
            Criteria::Any(items) => items.iter().any(|c| c.matches(proposal)),
            Criteria::Not(inner) => !inner.matches(proposal),
            Criteria::Compare { field, op, value } => {
                let Some(index) = proposal.field(field) else {
                    return false;
                };
                compare_holds(proposal.current(index), *op, value)
            }
            Criteria::In { field, values } => proposal
                .field(field)
                .is_some_and(|i| values.contains(proposal.current(i))),
            Criteria::Changed(field) => proposal.changes(field),
            Criteria::Increased(field) => proposal
                .field(field)
                .and_then(|i| proposal.old_and_new(i))
                .is_some_and(|(before, after)| raised(before, after)),
            Criteria::Decreased(field) => proposal
                .field(field)
                .and_then(|i| proposal.old_and_new(i))
                .is_some_and(|(before, after)| raised(after, before)),
        }
    }
}

impl ApprovalPolicy {
    /// The four-eyes policy on changes to the organisation's permissions: one other holder of
    /// `permission` must approve.
    pub fn four_eyes(permission: Permission) -> ApprovalPolicy {
        ApprovalPolicy {
            id: 0,
            name: format!("four eyes ({permission})"),
            object: ObjectType::Customers,
            operations: Vec::new(),
            fields: Vec::new(),
            when: None,
            requesters: Requesters::Anyone,
            approvers: Approvers::Permission(permission),
            required: 1,
            expires_after_ms: None,
            escalate: false,
        }
    }

    /// Whether the policy catches the proposal. A condition that tests a field the requester
    /// may not read counts as met: otherwise whether a change waits (202) or not (204) would
    /// tell them something about that field.
    fn catches(&self, proposal: &Proposal<'_>, readable: impl Fn(&str) -> bool) -> bool {
        self.object == proposal.object
            && self.operations.contains(&proposal.action)
            && (proposal.action == Action::Delete
                || self.fields.is_empty()
                || self.fields.iter().any(|f| proposal.changes(f)))
            && self
                .when
                .as_ref()
                .is_none_or(|c| c.fields().iter().any(|f| !readable(f)) || c.matches(proposal))
    }
}

/// What an approver must be allowed to see: a record (read and `approve` on it), or the
/// organisation (the approvers' own rule decides alone).
#[derive(Debug, Clone, Copy)]
pub enum ApprovalTarget<'a> {
    Record {
        object: ObjectType,
        record: &'a RecordRef<'a>,
    },
    Organisation,
}

impl Snapshot {
    /// Whether changes to roles, assignments, access rules and approval policies wait for a
    /// second administrator.
    pub fn four_eyes(&self) -> bool {
        self.four_eyes
    }

    /// The approval policies, in id order.
    pub fn approval_policies(&self) -> &[ApprovalPolicy] {
        &self.approval_policies
    }

    /// Every policy that catches `proposal` by `requester` at `now`: each is one step of the
    /// approval the change needs (none: it is applied at once).
    pub fn approval_steps(
        &self,
        requester: UserId,
        proposal: &Proposal<'_>,
        now: Timestamp,
    ) -> Vec<&ApprovalPolicy> {
        let levels = self.field_levels(
            requester,
            Action::Read,
            proposal.object,
            proposal.record,
            now,
        );
        let readable = |field: &str| {
            levels
                .of(field)
                .is_some_and(|level| level >= crate::FieldAccess::Read)
        };
        self.approval_policies
            .iter()
            .filter(|policy| self.is_requester(requester, policy.requesters, now))
            .filter(|policy| policy.catches(proposal, readable))
            .collect()
    }

    fn is_requester(&self, user: UserId, requesters: Requesters, now: Timestamp) -> bool {
        match requesters {
            Requesters::Anyone => true,
            Requesters::Role(role) => self.user(user).is_some_and(|u| {
                u.roles()
                    .any(|(id, _, assignment)| id == role && assignment.is_active(now))
            }),
            Requesters::Unit(unit) => self
                .user(user)
                .is_some_and(|u| self.unit_within(u.unit(), unit)),
        }
    }

    /// Whether `unit` is `ancestor` or below it.
    pub fn unit_within(&self, unit: UnitId, ancestor: UnitId) -> bool {
        let mut current = Some(unit);
        while let Some(u) = current {
            if u == ancestor {
                return true;
            }
            current = self.unit_parent(u);
        }
        false
    }

    /// Whether two accounts belong to the same person (every account is its own person unless
    /// the model links it to another).
    pub fn same_person(&self, a: UserId, b: UserId) -> bool {
        match (self.user_index.get(a.0), self.user_index.get(b.0)) {
            (Some(a), Some(b)) => self.persons[a as usize] == self.persons[b as usize],
            _ => a == b,
        }
    }

    /// A stable key that is the same for every account of one person (`person:KEY` for an
    /// account linked to a person, `user:ID` otherwise).
    pub fn person_key(&self, user: UserId) -> String {
        self.user_index.get(user.0).map_or_else(
            || format!("user:{}", user.0),
            |i| self.person_keys[i as usize].clone(),
        )
    }

    /// The users who may approve a step with `approvers` of a request by `requester`, in id
    /// order, with the step escalated `escalations` times: enabled, not the requester by any
    /// account, named by the policy, and — for a record — allowed to read it and to `approve`
    /// on it.
    pub fn approvers(
        &self,
        requester: UserId,
        approvers: &Approvers,
        escalations: u32,
        target: ApprovalTarget<'_>,
        now: Timestamp,
    ) -> Vec<UserId> {
        let named: Vec<UserId> = match approvers {
            Approvers::Superior { levels } => {
                let up = (*levels + escalations).max(1) as usize;
                self.managers_of(requester)
                    .get(up - 1)
                    .copied()
                    .into_iter()
                    .collect()
            }
            Approvers::Role(role) => self
                .users()
                .filter(|u| {
                    u.roles()
                        .any(|(id, _, assignment)| id == *role && assignment.is_active(now))
                })
                .map(|u| u.id())
                .collect(),
            Approvers::Users(users) => users.clone(),
            Approvers::Permission(permission) => self
                .users()
                .filter(|u| self.has_permission(u.id(), *permission, now))
                .map(|u| u.id())
                .collect(),
        };
        let mut eligible: Vec<UserId> = named
            .into_iter()
            .filter(|&user| self.user(user).is_some_and(|u| !u.disabled()))
            .filter(|&user| !self.same_person(user, requester))
            .filter(|&user| match target {
                ApprovalTarget::Organisation => true,
                ApprovalTarget::Record { object, record } => [Action::Read, Action::Approve]
                    .iter()
                    .all(|&action| self.check(user, action, object, record, now).is_allowed()),
            })
            .collect();
        eligible.sort();
        eligible.dedup();
        eligible
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(credit: Option<i64>, region: &str) -> Vec<Value> {
        let s = schema(ObjectType::Customers);
        let mut values = vec![Value::Null; s.fields.len()];
        values[s.field("region").unwrap().0] = Value::Text(region.into());
        if let Some(c) = credit {
            values[s.field("credit_limit").unwrap().0] = Value::Integer(c);
        }
        values
    }

    #[test]
    fn conditions_compare_change_and_combine() {
        let record = &RecordRef::new(UserId(1), UnitId(1));
        let before = customer(Some(10_000), "East");
        let after = customer(Some(250_000), "East");
        let update = Proposal {
            object: ObjectType::Customers,
            action: Action::Update,
            before: Some(&before),
            after: Some(&after),
            record,
        };
        let gt = |n| Criteria::Compare {
            field: "credit_limit".into(),
            op: CompareOp::Gt,
            value: Value::Integer(n),
        };
        assert!(gt(100_000).matches(&update));
        assert!(!gt(300_000).matches(&update));
        assert!(Criteria::Increased("credit_limit".into()).matches(&update));
        assert!(!Criteria::Decreased("credit_limit".into()).matches(&update));
        assert!(Criteria::Changed("credit_limit".into()).matches(&update));
        assert!(!Criteria::Changed("region".into()).matches(&update));
        let east = Criteria::In {
            field: "region".into(),
            values: vec![Value::Text("East".into())],
        };
        assert!(Criteria::All(vec![east.clone(), gt(100_000)]).matches(&update));
        assert!(!Criteria::All(vec![east.clone(), gt(300_000)]).matches(&update));
        assert!(Criteria::Any(vec![east.clone(), gt(300_000)]).matches(&update));
        assert!(!Criteria::Not(Box::new(east)).matches(&update));
        // An empty field compares with nothing but equals null.
        let empty = customer(None, "East");
        let delete = Proposal {
            object: ObjectType::Customers,
            action: Action::Delete,
            before: Some(&empty),
            after: None,
            record,
        };
        assert!(!gt(0).matches(&delete));
        assert!(!Criteria::Compare {
            field: "credit_limit".into(),
            op: CompareOp::Lt,
            value: Value::Integer(0)
        }
        .matches(&delete));
        assert!(Criteria::Compare {
            field: "credit_limit".into(),
            op: CompareOp::Eq,
            value: Value::Null
        }
        .matches(&delete));
        // A delete changes nothing; a create changes what it sets.
        assert!(!Criteria::Changed("region".into()).matches(&delete));
        let create = Proposal {
            object: ObjectType::Customers,
            action: Action::Create,
            before: None,
            after: Some(&after),
            record,
        };
        assert!(Criteria::Increased("credit_limit".into()).matches(&create));
        assert!(!Criteria::Changed("email".into()).matches(&create));
        // Lowering to empty is a decrease.
        let cleared = Proposal {
            object: ObjectType::Customers,
            action: Action::Update,
            before: Some(&before),
            after: Some(&empty),
            record,
        };
        assert!(Criteria::Decreased("credit_limit".into()).matches(&cleared));
        assert!(!Criteria::Increased("credit_limit".into()).matches(&cleared));
    }

    #[test]
    fn operators_round_trip() {
        for (op, name) in CompareOp::ALL {
            assert_eq!(CompareOp::parse(name), Some(*op));
            assert_eq!(op.as_str(), *name);
        }
        assert_eq!(CompareOp::parse(">"), None);
    }
}
