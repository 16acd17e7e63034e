//! The demo organisation of the brief, seeded deterministically: the same names in the docs,
//! the tests and the screenshots.

use warden_policy::schema::{schema, Value};
use warden_policy::{
    Action, FieldAccess, FieldRule, Grant, ObjectType, Permission, RoleAssignment, RoleId, Scope,
    Timestamp, UnitId, UserId,
};
use warden_policy::{ApprovalPolicy, Approvers, Requesters};
use warden_store::{NewRecord, NewUser, RoleContents, Store};

use crate::auth::hash_password;
use crate::{Result, ServiceError};

/// The demo's users: (username, display name, unit, manager, role).
pub const DEMO_USERS: &[(&str, &str, &str, Option<&str>, &str)] = &[
    ("admin", "Ada Admin", "Head Office", None, "Administrator"),
    ("admin2", "Abe Admin", "Head Office", None, "Administrator"),
    (
        "manager",
        "Mei Manager",
        "Sales",
        Some("admin"),
        "Sales Manager",
    ),
    (
        "supervisor1",
        "Sam Supervisor",
        "Sales Team 1",
        Some("manager"),
        "Sales Supervisor",
    ),
    (
        "supervisor2",
        "Sia Supervisor",
        "Sales Team 2",
        Some("manager"),
        "Sales Supervisor",
    ),
    (
        "rep1",
        "Ravi Rep",
        "Sales Team 1",
        Some("supervisor1"),
        "Sales Rep",
    ),
    (
        "rep2",
        "Rosa Rep",
        "Sales Team 1",
        Some("supervisor1"),
        "Sales Rep",
    ),
    (
        "rep3",
        "Ren Rep",
        "Sales Team 2",
        Some("supervisor2"),
        "Sales Rep",
    ),
    (
        "rep4",
        "Rui Rep",
        "Sales Team 2",
        Some("supervisor2"),
        "Sales Rep",
    ),
    (
        "support",
        "Sol Support",
        "Customer Support",
        None,
        "Customer Support",
    ),
    ("finance", "Fei Finance", "Finance", None, "Finance"),
    ("auditor", "Aud Auditor", "Audit", None, "Auditor"),
    (
        "portal-acme",
        "Acme Trading (portal)",
        "Portal Users",
        None,
        "Portal Read-only",
    ),
];

/// The demo's units: (name, parent).
const DEMO_UNITS: &[(&str, Option<&str>)] = &[
    ("Head Office", None),
    ("Sales", Some("Head Office")),
    ("Sales Team 1", Some("Sales")),
    ("Sales Team 2", Some("Sales")),
    ("Customer Support", Some("Head Office")),
    ("Finance", Some("Head Office")),
    ("Audit", Some("Head Office")),
    ("Portal Users", None),
];

/// The sales reps, who own the demo's customers in turn.
pub const DEMO_REPS: &[&str] = &["rep1", "rep2", "rep3", "rep4"];

fn grants(objects: &[ObjectType], actions: &[Action], scope: Scope) -> Vec<Grant> {
    objects
        .iter()
        .flat_map(|&object| {
            actions.iter().map(move |&action| Grant {
                object,
                action,
                scope,
            })
        })
        .collect()
}

/// Field rules: `access` for each named field of `object`.
fn field_rules(object: ObjectType, fields: &[&str], access: FieldAccess) -> Vec<FieldRule> {
    fields
        .iter()
        .map(|field| FieldRule {
            object,
            field: (*field).to_owned(),
            access,
        })
        .collect()
}

/// `access` for every field of every object (Finance's read-only view of everything).
fn every_field(access: FieldAccess) -> Vec<FieldRule> {
    ObjectType::ALL
        .iter()
        .flat_map(|&object| {
            schema(object).fields.iter().map(move |def| FieldRule {
                object,
                field: def.name.to_owned(),
                access,
            })
        })
        .collect()
}

/// A demo role: name, description, grants, functional permissions and field rules.
pub type DemoRole = (
    &'static str,
    &'static str,
    Vec<Grant>,
    Vec<Permission>,
    Vec<FieldRule>,
);

/// The demo's roles. Field security: Support never sees `credit_limit` or `bank_account`
/// (hidden by default, being sensitive); Finance sees every field and may change only the
/// financial ones; reps and supervisors see `credit_limit` read-only and never `bank_account`;
/// the manager sees `bank_account` masked (the full value only through a logged reveal).
pub fn demo_roles() -> Vec<DemoRole> {
    use Action::*;
    let customers = &[ObjectType::Customers];
    const C: ObjectType = ObjectType::Customers;
    const K: ObjectType = ObjectType::Contracts;
    let team = Scope::Subordinates { depth: None };
    let sales_actions = &[Read, Create, Update, Delete, Export, Share];
    vec![
        (
            "Administrator",
            "Holds the whole system: every record, every setting.",
            grants(ObjectType::ALL, Action::ALL, Scope::All),
            Permission::ALL.to_vec(),
            [
                field_rules(C, &["credit_limit", "bank_account"], FieldAccess::Write),
                field_rules(K, &["value", "terms"], FieldAccess::Write),
            ]
            .concat(),
        ),
        (
            "Sales Manager",
            "Manages the sales team's customers (everyone below them in the reporting line).",
            [
                grants(customers, sales_actions, team),
                grants(customers, &[Approve], team),
            ]
            .concat(),
            vec![],
            [
                field_rules(C, &["credit_limit"], FieldAccess::Read),
                field_rules(C, &["bank_account"], FieldAccess::Masked),
                field_rules(K, &["value", "terms"], FieldAccess::Write),
            ]
            .concat(),
        ),
        (
            "Sales Supervisor",
            "Manages their team's customers (everyone below them in the reporting line).",
            [
                grants(customers, sales_actions, team),
                grants(customers, &[Approve], team),
            ]
            .concat(),
            vec![],
            [
                field_rules(C, &["credit_limit"], FieldAccess::Read),
                field_rules(K, &["value", "terms"], FieldAccess::Write),
            ]
            .concat(),
        ),
        (
            "Sales Rep",
            "Works on their own customers.",
            grants(
                customers,
                &[Read, Create, Update, Delete, Share],
                Scope::Own,
            ),
            vec![],
            [
                field_rules(C, &["credit_limit"], FieldAccess::Read),
                field_rules(K, &["value", "terms"], FieldAccess::Write),
            ]
            .concat(),
        ),
        (
            "Customer Support",
            "Reads and updates every customer, never their financial fields; cannot delete.",
            grants(customers, &[Read, Update], Scope::All),
            vec![],
            vec![],
        ),
        (
            "Finance",
            "Reads every customer and maintains their financial data, and nothing else.",
            grants(customers, &[Read, Update, Export], Scope::All),
            vec![],
            [
                every_field(FieldAccess::Read),
                field_rules(C, &["credit_limit", "bank_account"], FieldAccess::Write),
            ]
            .concat(),
        ),
        (
            "Auditor",
            "Reads the access log; no customer data.",
            vec![],
            vec![Permission::ViewAudit],
            vec![],
        ),
        (
            "Portal Read-only",
            "External user: reads their own company's records only, portal-visible fields only.",
            grants(ObjectType::ALL, &[Read], Scope::Account),
            vec![],
            vec![],
        ),
        (
            "Portal Editor",
            "External user: reads and updates their own company's records (portal-visible fields).",
            grants(ObjectType::ALL, &[Read, Update], Scope::Account),
            vec![],
            vec![],
        ),
        (
            "Portal Admin",
            "External user: also adds and removes their company's contacts, deals and activities.",
            [
                grants(ObjectType::ALL, &[Read, Update], Scope::Account),
                grants(&ObjectType::ALL[1..], &[Create, Delete], Scope::Account),
            ]
            .concat(),
            vec![],
            vec![],
        ),
    ]
}

/// The demo's approval policies (the brief): a rep's delete of a customer waits for the rep's
/// direct superior (escalating one level up after three days); any change of a customer's
/// `credit_limit` waits for an Administrator other than the requester.
fn demo_approval_policies(roles: &[(&str, RoleId)]) -> Result<Vec<ApprovalPolicy>> {
    let role = |name: &str| {
        roles
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, id)| *id)
            .ok_or_else(|| ServiceError::Internal(format!("demo role {name}")))
    };
    Ok(vec![
        ApprovalPolicy {
            id: 0,
            name: "Rep deletes wait for their superior".into(),
            object: ObjectType::Customers,
            operations: vec![Action::Delete],
            fields: vec![],
            when: None,
            requesters: Requesters::Role(role("Sales Rep")?),
            approvers: Approvers::Superior { levels: 1 },
            required: 1,
            expires_after_ms: Some(3 * 24 * 3_600_000),
            escalate: true,
        },
        ApprovalPolicy {
            id: 0,
            name: "Credit limit changes need a second administrator".into(),
            object: ObjectType::Customers,
            operations: vec![Action::Create, Action::Update],
            fields: vec!["credit_limit".into()],
            when: None,
            requesters: Requesters::Anyone,
            approvers: Approvers::Role(role("Administrator")?),
            required: 1,
            expires_after_ms: None,
            escalate: false,
        },
    ])
}

/// A small deterministic generator (SplitMix64), so the demo is the same on every machine.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Golden",
    "Blue",
    "Eastern",
    "Silver",
    "Northern",
    "Bright",
    "Harbour",
    "Summit",
    "Pacific",
    "Jade",
    "Red",
    "Evergreen",
];
const SECOND: &[&str] = &[
    "River", "Lotus", "Peak", "Bridge", "Star", "Field", "Crane", "Stone", "Wave", "Pine",
    "Orchid", "Harvest",
];
const KIND: &[&str] = &[
    "Trading",
    "Logistics",
    "Foods",
    "Textiles",
    "Electronics",
    "Machinery",
    "Pharma",
    "Software",
    "Retail",
    "Energy",
];
const SUFFIX: &[&str] = &["Co.", "Ltd.", "Group", "Holdings", "Inc."];
const REGIONS: &[&str] = &["East", "West", "North", "South"];
const STATUSES: &[&str] = &["active", "active", "active", "prospect", "inactive"];

/// The demo customer with index `i` (0 is "Acme Trading", owned by rep1).
fn demo_customer(i: usize, seq: &mut Sequence) -> Vec<Value> {
    let name = if i == 0 {
        "Acme Trading".to_owned()
    } else {
        format!(
            "{} {} {} {} #{i}",
            seq.pick(FIRST),
            seq.pick(SECOND),
            seq.pick(KIND),
            seq.pick(SUFFIX)
        )
    };
    let kind = seq.pick(KIND);
    let slug: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect::<String>()
        .to_lowercase();
    vec![
        Value::Text(name),
        Value::Text(format!("info@{slug}.example")),
        Value::Text(format!(
            "+86 21 {:04} {:04}",
            seq.next() % 10_000,
            seq.next() % 10_000
        )),
        Value::Text(kind.to_owned()),
        Value::Text(seq.pick(REGIONS).to_owned()),
        Value::Text(seq.pick(STATUSES).to_owned()),
        Value::Integer(((seq.next() % 200) as i64 + 1) * 5_000),
        Value::Text(format!(
            "CN{:02} {:04} {:04} {:04} {:04}",
            seq.next() % 100,
            seq.next() % 10_000,
            seq.next() % 10_000,
            seq.next() % 10_000,
            seq.next() % 10_000
        )),
        // Every 25th customer is a key account (none of the demo's rules tests it; the README
        // shows a restriction rule that does).
        Value::Bool(i % 25 == 7),
    ]
}

/// What seeding produced.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub users: Vec<(String, UserId)>,
    pub customers: usize,
}

/// Seeds the demo organisation into an empty store: units, roles, users (all with
/// `password`), `customers` customers spread over the four reps, and a few contacts and deals.
pub async fn seed(
    store: &Store,
    customers: usize,
    password: &str,
    now: Timestamp,
) -> Result<Seeded> {
    if !store.is_empty().await? {
        return Err(ServiceError::Conflict(
            "the database already holds an organisation".into(),
        ));
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
    let mut tx = store.begin().await?;
    let mut units: Vec<(&str, UnitId)> = Vec::new();
    for (name, parent) in DEMO_UNITS {
        let parent = parent.and_then(|p| units.iter().find(|(n, _)| *n == p).map(|(_, id)| *id));
        let id = tx.insert_unit(name, parent, now).await?;
        units.push((name, id));
    }
    let mut roles: Vec<(&str, RoleId)> = Vec::new();
    for (name, description, grants, permissions, fields) in demo_roles() {
        let id = tx
            .insert_role(
                name,
                description,
                RoleContents {
                    grants: &grants,
                    permissions: &permissions,
                    fields: &fields,
                },
                now,
            )
            .await?;
        roles.push((name, id));
    }
    for policy in demo_approval_policies(&roles)? {
        tx.insert_approval_policy(&policy, now).await?;
    }
    let mut users: Vec<(String, UserId)> = Vec::new();
    for (username, display_name, unit, manager, role) in DEMO_USERS {
        let unit = units
            .iter()
            .find(|(n, _)| n == unit)
            .map(|(_, id)| *id)
            .ok_or_else(|| ServiceError::Internal(format!("demo unit {unit}")))?;
        let manager = manager.and_then(|m| users.iter().find(|(n, _)| n == m).map(|(_, id)| *id));
        let id = tx
            .insert_user(
                &NewUser {
                    username: (*username).to_owned(),
                    display_name: (*display_name).to_owned(),
                    unit,
                    manager,
                    password_hash: hash.clone(),
                },
                now,
            )
            .await?;
        let role = roles
            .iter()
            .find(|(n, _)| n == role)
            .map(|(_, id)| *id)
            .ok_or_else(|| ServiceError::Internal(format!("demo role {role}")))?;
        tx.set_user_roles(
            id,
            &[RoleAssignment {
                role,
                expires_at: None,
            }],
        )
        .await?;
        users.push(((*username).to_owned(), id));
    }
    let rep = |i: usize| -> Result<(UserId, UnitId)> {
        let name = DEMO_REPS[i % DEMO_REPS.len()];
        let id = users
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
            .ok_or_else(|| ServiceError::Internal("demo rep".into()))?;
        let unit_name = DEMO_USERS
            .iter()
            .find(|u| u.0 == name)
            .map(|u| u.2)
            .unwrap_or_default();
        let unit = units
            .iter()
            .find(|(n, _)| *n == unit_name)
            .map(|(_, id)| *id)
            .ok_or_else(|| ServiceError::Internal("demo unit".into()))?;
        Ok((id, unit))
    };
    let mut seq = Sequence(0x005E_ED0F_3A2D_E11E);
    let mut batch = Vec::with_capacity(10_000);
    let mut customer_ids = Vec::with_capacity(customers);
    for i in 0..customers {
        let (owner, unit) = rep(i)?;
        batch.push(NewRecord {
            customer_id: None,
            owner,
            unit,
            values: demo_customer(i, &mut seq),
        });
        if batch.len() == 10_000 || i + 1 == customers {
            customer_ids.extend(
                tx.insert_records(ObjectType::Customers, &batch, now)
                    .await?,
            );
            batch.clear();
        }
    }
    // A contact and a deal for the first customers, so the child objects have data to show.
    let mut contacts = Vec::new();
    let mut deals = Vec::new();
    for (i, id) in customer_ids.iter().take(200).enumerate() {
        let (owner, unit) = rep(i)?;
        contacts.push(NewRecord {
            customer_id: Some(*id),
            owner,
            unit,
            values: vec![
                Value::Text(format!(
                    "{} {}",
                    seq.pick(&["Li", "Wang", "Zhang", "Chen", "Liu", "Maria", "John", "Aiko"]),
                    seq.pick(&["Wei", "Fang", "Jun", "Smith", "Garcia", "Tanaka"])
                )),
                Value::Text(format!("contact{i}@example.com")),
                Value::Null,
                Value::Text(
                    seq.pick(&["Buyer", "CFO", "Procurement Lead", "Owner"])
                        .to_owned(),
                ),
            ],
        });
        deals.push(NewRecord {
            customer_id: Some(*id),
            owner,
            unit,
            values: vec![
                Value::Text(format!("Deal {i}")),
                Value::Integer(((seq.next() % 100) as i64 + 1) * 1_000),
                Value::Text(
                    seq.pick(&["prospecting", "proposal", "negotiation", "won", "lost"])
                        .to_owned(),
                ),
                Value::Text(format!(
                    "2027-{:02}-{:02}",
                    seq.next() % 12 + 1,
                    seq.next() % 28 + 1
                )),
            ],
        });
    }
    tx.insert_records(ObjectType::Contacts, &contacts, now)
        .await?;
    // Portal users belong to the first customer, "Acme Trading".
    if let Some(acme) = customer_ids.first() {
        for (username, _, unit, _, _) in DEMO_USERS {
            if *unit == "Portal Users" {
                if let Some((_, id)) = users.iter().find(|(n, _)| n == username) {
                    tx.set_portal_account(*id, Some(*acme)).await?;
                }
            }
        }
    }
    tx.insert_records(ObjectType::Deals, &deals, now).await?;
    tx.bump_epoch().await?;
    tx.commit().await?;
    Ok(Seeded { users, customers })
}
