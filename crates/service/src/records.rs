//! Record use cases: list, read, create, update, delete and reveal, each decided by the engine,
//! records and fields alike.

use warden_policy::schema::{schema, FieldKind, Value};
use warden_policy::{
    mask, Action, Decision, Denial, FieldAccess, FieldLevels, ObjectType, OwnedRecordRef, RecordRef,
};
use warden_store::{AccessEntry, NewRecord, Record, RecordChanges, StoreError, Tx};

use crate::approvals::Outcome;
use crate::logging::{entry, log_write};
use crate::{Result, ServiceError, Subject, Warden};

/// A record as the caller may see it, with names resolved for display.
///
/// INVARIANT: `record.values` holds no value the caller may not read: a hidden field's value is
/// `Null` and a masked one's is its masked text; `fields` says which is which, and whoever
/// renders the record leaves hidden fields out.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    pub record: Record,
    pub owner_username: String,
    pub unit_name: String,
    /// The caller's read level of each field of this record.
    pub fields: FieldLevels,
}

impl RecordView {
    /// The fields shown, with their (possibly masked) values, in schema order: hidden fields
    /// are left out.
    pub fn visible_fields(&self) -> impl Iterator<Item = (&'static str, &Value, FieldAccess)> {
        self.fields
            .iter()
            .zip(&self.record.values)
            .filter(|((_, level), _)| *level != FieldAccess::Hidden)
            .map(|((def, level), value)| (def.name, value, level))
    }
}

/// What a list asks for beyond the caller's permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    /// Field equality tests (`?status=active`); an empty value matches an empty field.
    pub matching: Vec<(String, String)>,
    /// A field to sort by. Lists are in id order (stable cursors); a sort by any other field is
    /// refused, and refused as forbidden when the field is hidden from the caller.
    pub sort: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<RecordView>,
    pub next_cursor: Option<String>,
}

/// Input of a create or an update: field values by name, plus the record's owner (a username)
/// and customer. Fields not named are left as they are (update) or empty (create).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordInput {
    pub fields: Vec<(String, Value)>,
    pub owner: Option<String>,
    pub customer_id: Option<i64>,
}

fn view(subject: &Subject, mut record: Record) -> RecordView {
    let snapshot = &subject.snapshot;
    let fields = snapshot.field_levels(
        subject.user,
        Action::Read,
        record.object,
        &record.record_ref(),
        subject.now,
    );
    for (index, value) in record.values.iter_mut().enumerate() {
        match fields.at(index) {
            FieldAccess::Hidden => *value = Value::Null,
            FieldAccess::Masked => *value = mask(value).map_or(Value::Null, Value::Text),
            FieldAccess::Read | FieldAccess::Write => {}
        }
    }
    RecordView {
        fields,
        owner_username: snapshot
            .user(record.owner)
            .map(|u| u.username().to_owned())
            .unwrap_or_default(),
        unit_name: snapshot
            .unit_name(record.unit)
            .unwrap_or_default()
            .to_owned(),
        record,
    }
}

fn forbidden(decision: Decision, action: Action, object: ObjectType) -> ServiceError {
    let why = match decision {
        Decision::Deny(Denial::NoGrant {
            object: o,
            action: a,
        }) => format!("no role grants {a} on {o}"),
        Decision::Deny(Denial::OutOfScope {
            object: o,
            action: a,
        }) => {
            format!("the record is outside the scope of your {a} grants on {o}")
        }
        _ => "not allowed".to_owned(),
    };
    ServiceError::Forbidden(format!(
        "you may not {action} this {}: {why}",
        singular(object)
    ))
}

fn singular(object: ObjectType) -> &'static str {
    match object {
        ObjectType::Customers => "customer",
        ObjectType::Contacts => "contact",
        ObjectType::Deals => "deal",
        ObjectType::Contracts => "contract",
        ObjectType::Activities => "activity",
    }
}

/// Validates named values against the schema; returns them by field position. Unknown and
/// repeated fields are refused first, then fields the caller may not write (`writable`, when
/// given: 403 naming the first), then values that do not fit (422).
fn validate_fields(
    object: ObjectType,
    fields: &[(String, Value)],
    writable: Option<&FieldLevels>,
) -> Result<Vec<(usize, Value)>> {
    let schema = schema(object);
    let mut positions: Vec<usize> = Vec::with_capacity(fields.len());
    for (name, _) in fields {
        let (index, _) = schema.field(name).ok_or_else(|| {
            ServiceError::invalid(name.as_str(), format!("is not a field of {}", object))
        })?;
        if positions.contains(&index) {
            return Err(ServiceError::invalid(name.as_str(), "is given twice"));
        }
        positions.push(index);
    }
    if let Some(levels) = writable {
        for (name, _) in fields {
            let level = levels.of(name).unwrap_or(FieldAccess::Hidden);
            if level != FieldAccess::Write {
                return Err(ServiceError::FieldForbidden {
                    field: name.clone(),
                    message: match level {
                        FieldAccess::Hidden => {
                            "you may not write this field (it is hidden from you)"
                        }
                        _ => "you may not write this field (it is read-only for you)",
                    }
                    .to_owned(),
                });
            }
        }
    }
    positions
        .into_iter()
        .zip(fields)
        .map(|(index, (_, value))| Ok((index, schema.fields[index].validate(value.clone())?)))
        .collect()
}

/// Parses a list's `field=value` test into the field's position and value.
fn parse_matching(object: ObjectType, name: &str, text: &str) -> Result<(usize, Value)> {
    let (index, def) = schema(object).field(name).ok_or_else(|| {
        ServiceError::invalid(
            name,
            format!("is not a field of {object} (nor a list parameter)"),
        )
    })?;
    if text.is_empty() {
        return Ok((index, Value::Null));
    }
    let value = match def.kind {
        FieldKind::Integer { .. } => Value::Integer(
            text.parse()
                .map_err(|_| ServiceError::invalid(name, "must be a whole number"))?,
        ),
        FieldKind::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(ServiceError::invalid(name, "must be true or false")),
        },
        _ => Value::Text(text.to_owned()),
    };
    Ok((index, def.validate(value)?))
}

/// Parses a list cursor (the last id of the previous page).
fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<i64>().ok().filter(|id| *id >= 0).ok_or_else(|| {
                ServiceError::invalid("cursor", "is not a cursor returned by this list")
            })
        })
        .transpose()
}

impl Warden {
    /// One page of the records of `object` the subject may read.
    pub async fn list_records(
        &self,
        subject: &Subject,
        object: ObjectType,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page> {
        let query = ListQuery {
            cursor: cursor.map(str::to_owned),
            limit,
            ..ListQuery::default()
        };
        self.query_records(subject, object, &query).await
    }

    /// One page of the records of `object` the subject may read that match `query`.
    ///
    /// A list may only be narrowed by a field the caller can read on *every* record they can
    /// read (the engine's field floor): otherwise which records match would tell the value of
    /// a field hidden or masked on some of them. Encrypted fields cannot be matched at all.
    pub async fn query_records(
        &self,
        subject: &Subject,
        object: ObjectType,
        query: &ListQuery,
    ) -> Result<Page> {
        // The floor is a walk over the user's roles: only a list narrowed or sorted needs it.
        let narrowed =
            !query.matching.is_empty() || query.sort.as_deref().is_some_and(|s| s != "id");
        let floor = narrowed.then(|| {
            subject
                .snapshot
                .field_floor(subject.user, Action::Read, object, subject.now)
        });
        let readable_everywhere = |name: &str| -> Result<()> {
            match floor.as_ref().and_then(|floor| floor.of(name)) {
                Some(FieldAccess::Read | FieldAccess::Write) | None => Ok(()),
                Some(_) => Err(ServiceError::FieldForbidden {
                    field: name.to_owned(),
                    message: "is hidden or masked on records you can see; lists cannot be \
                              filtered or sorted by it"
                        .to_owned(),
                }),
            }
        };
        if let Some(sort) = query.sort.as_deref().filter(|s| *s != "id") {
            let name = sort.trim_start_matches('-');
            if schema(object).field(name).is_none() {
                return Err(ServiceError::invalid(
                    "sort",
                    format!("`{name}` is not a field of {object}"),
                ));
            }
            readable_everywhere(name)?;
            return Err(ServiceError::invalid(
                "sort",
                "lists are in id order (the cursor follows it); sorting by a field is not offered",
            ));
        }
        let mut matching = Vec::with_capacity(query.matching.len());
        for (name, text) in &query.matching {
            let (index, value) = parse_matching(object, name, text)?;
            readable_everywhere(name)?;
            if schema(object).fields[index].sensitive {
                return Err(ServiceError::invalid(
                    name.as_str(),
                    "is encrypted at rest; lists cannot be filtered by it",
                ));
            }
            matching.push((index, value));
        }
        let limit = query.limit.unwrap_or(self.config.default_page_size);
        if limit == 0 || limit > self.config.max_page_size {
            return Err(ServiceError::invalid(
                "limit",
                format!("must be between 1 and {}", self.config.max_page_size),
            ));
        }
        let after = parse_cursor(query.cursor.as_deref())?;
        let filter = subject
            .snapshot
            .filter(subject.user, Action::Read, object, subject.now);
        let page = self
            .store
            .list_records_matching(object, &filter, &matching, after, limit)
            .await?;
        let items: Vec<RecordView> = page.items.into_iter().map(|r| view(subject, r)).collect();
        self.log_reads(subject, &items, "list").await?;
        Ok(Page {
            items,
            next_cursor: page.next_cursor.map(|id| id.to_string()),
        })
    }

    /// Reads one record: 404 when missing or not readable.
    pub async fn get_record(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
    ) -> Result<RecordView> {
        let record = self.readable(subject, object, id).await?;
        let view = view(subject, record);
        self.log_reads(subject, std::slice::from_ref(&view), "")
            .await?;
        Ok(view)
    }

    /// The record, if it exists and the subject may read it; 404 otherwise (logged).
    async fn readable(&self, subject: &Subject, object: ObjectType, id: i64) -> Result<Record> {
        let Some(record) = self.store.get_record(object, id).await? else {
            let refusal = ServiceError::NotFound;
            return Err(self
                .log_denied(subject, Action::Read, object, Some(id), refusal)
                .await);
        };
        let decision = subject.snapshot.check(
            subject.user,
            Action::Read,
            object,
            &record.record_ref(),
            subject.now,
        );
        if decision.is_allowed() {
            Ok(record)
        } else {
            let refusal = ServiceError::NotFound;
            Err(self
                .log_denied(subject, Action::Read, object, Some(id), refusal)
                .await)
        }
    }

    /// Resolves an owner username to a user the subject can see in the snapshot.
    fn resolve_owner(
        &self,
        subject: &Subject,
        owner: &str,
    ) -> Result<(warden_policy::UserId, warden_policy::UnitId)> {
        let user = subject
            .snapshot
            .user_by_name(owner)
            .filter(|u| !u.disabled())
            .ok_or_else(|| ServiceError::invalid("owner", "no such active user"))?;
        Ok((user.id(), user.unit()))
    }

    /// Creates a record owned by the subject (or by `input.owner`, if the subject's create
    /// scope covers that owner). A create an approval policy catches is held, not applied.
    pub async fn create_record(
        &self,
        subject: &Subject,
        object: ObjectType,
        input: RecordInput,
    ) -> Result<Outcome<RecordView>> {
        let planned = self.plan_create(subject, object, &input).await?;
        self.hold_or_apply(subject, planned, &input).await
    }

    /// Updates a record read at `version`: 404 if not readable, 403 if not updatable (before or,
    /// when the owner changes, after), 409 if it changed meanwhile, 422 on bad fields. An update
    /// an approval policy catches is held, not applied.
    pub async fn update_record(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
        version: Option<i64>,
        input: RecordInput,
    ) -> Result<Outcome<RecordView>> {
        let planned = self
            .plan_update(subject, object, id, version, &input)
            .await?;
        self.hold_or_apply(subject, planned, &input).await
    }

    /// Deletes a record (optionally only at `version`). A delete an approval policy catches is
    /// held, not applied.
    pub async fn delete_record(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
        version: Option<i64>,
    ) -> Result<Outcome<()>> {
        let planned = self.plan_delete(subject, object, id, version).await?;
        Ok(
            match self
                .hold_or_apply(subject, planned, &RecordInput::default())
                .await?
            {
                Outcome::Done(_) => Outcome::Done(()),
                Outcome::Pending(approval) => Outcome::Pending(approval),
            },
        )
    }

    /// Holds a planned change for approval when a policy catches it; applies it otherwise.
    async fn hold_or_apply(
        &self,
        subject: &Subject,
        planned: PlannedChange,
        input: &RecordInput,
    ) -> Result<Outcome<RecordView>> {
        if let Some(approval) = self.hold_record_change(subject, &planned, input).await? {
            return Ok(Outcome::Pending(Box::new(approval)));
        }
        let mut tx = self.store.begin().await?;
        let record = apply_change(&mut tx, subject, planned.object, &planned.change).await?;
        tx.commit().await?;
        // A delete answers with the record as it was (the caller sees only that it is gone).
        let shown = record.or(planned.before).ok_or(ServiceError::NotFound)?;
        Ok(Outcome::Done(view(subject, shown)))
    }

    /// Checks a create and works out the row, without writing.
    pub(crate) async fn plan_create(
        &self,
        subject: &Subject,
        object: ObjectType,
        input: &RecordInput,
    ) -> Result<PlannedChange> {
        let schema = schema(object);
        // The record as it will be: restriction and sharing rules test its values.
        let mut row = vec![Value::Null; schema.fields.len()];
        for (index, value) in validate_fields(object, &input.fields, None)? {
            row[index] = value;
        }
        let (owner, unit) = match &input.owner {
            Some(owner) => self.resolve_owner(subject, owner)?,
            None => {
                let me = subject
                    .snapshot
                    .user(subject.user)
                    .ok_or(ServiceError::Unauthenticated)?;
                (me.id(), me.unit())
            }
        };
        let customer = match (schema.has_customer, input.customer_id) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(ServiceError::invalid(
                    "customer_id",
                    format!("{object} do not belong to a customer"),
                ))
            }
            (true, None) => return Err(ServiceError::invalid("customer_id", "is required")),
            (true, Some(id)) => {
                // An invisible customer and a missing one get the same answer.
                let customer = self
                    .readable(subject, ObjectType::Customers, id)
                    .await
                    .map_err(|e| match e {
                        ServiceError::NotFound => {
                            ServiceError::invalid("customer_id", "no such customer")
                        }
                        other => other,
                    })?;
                Some(customer)
            }
        };
        let prospective = OwnedRecordRef {
            owner,
            unit,
            customer: customer.as_ref().map(|c| (c.owner, c.unit)),
            id: None,
            customer_id: customer.as_ref().map(|c| c.id),
            shares: Vec::new(),
            values: row.clone(),
            customer_shares: customer
                .as_ref()
                .map_or_else(Vec::new, |c| c.shares.clone()),
            customer_values: customer
                .as_ref()
                .map_or_else(Vec::new, |c| c.values.clone()),
        };
        let decision = subject.snapshot.check(
            subject.user,
            Action::Create,
            object,
            &prospective.as_ref(),
            subject.now,
        );
        if !decision.is_allowed() {
            let refusal = forbidden(decision, Action::Create, object);
            return Err(self
                .log_denied(subject, Action::Create, object, None, refusal)
                .await);
        }
        let writable = subject.snapshot.field_levels(
            subject.user,
            Action::Create,
            object,
            &prospective.as_ref(),
            subject.now,
        );
        validate_fields(object, &input.fields, Some(&writable))?;
        for (index, def) in schema.fields.iter().enumerate() {
            if def.required && row[index] == Value::Null {
                return Err(ServiceError::invalid(def.name, "is required"));
            }
        }
        Ok(PlannedChange {
            object,
            record_ref: prospective,
            before: None,
            after: Some(row.clone()),
            change: Change::Create(NewRecord {
                customer_id: customer.map(|c| c.id),
                owner,
                unit,
                values: row,
            }),
        })
    }

    /// Checks an update and works out the changes, without writing.
    pub(crate) async fn plan_update(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
        version: Option<i64>,
        input: &RecordInput,
    ) -> Result<PlannedChange> {
        let record = self.readable(subject, object, id).await?;
        let decision = subject.snapshot.check(
            subject.user,
            Action::Update,
            object,
            &record.record_ref(),
            subject.now,
        );
        if !decision.is_allowed() {
            let refusal = forbidden(decision, Action::Update, object);
            return Err(self
                .log_denied(subject, Action::Update, object, Some(id), refusal)
                .await);
        }
        let version = version.ok_or_else(|| {
            ServiceError::invalid("version", "is required: send the version you read")
        })?;
        if input
            .customer_id
            .is_some_and(|c| Some(c) != record.customer_id)
        {
            return Err(ServiceError::invalid("customer_id", "cannot be changed"));
        }
        let writable = subject.snapshot.field_levels(
            subject.user,
            Action::Update,
            object,
            &record.record_ref(),
            subject.now,
        );
        let values = validate_fields(object, &input.fields, Some(&writable))?;
        let mut changes = RecordChanges {
            values,
            ..RecordChanges::default()
        };
        if let Some(owner) = &input.owner {
            let (owner, unit) = self.resolve_owner(subject, owner)?;
            if owner != record.owner {
                // Handing a record over needs update rights on it as it will be, too: nobody
                // can push a record out of their own reach into someone else's by accident.
                let after = RecordRef {
                    owner,
                    unit,
                    ..record.record_ref()
                };
                let decision = subject.snapshot.check(
                    subject.user,
                    Action::Update,
                    object,
                    &after,
                    subject.now,
                );
                if !decision.is_allowed() {
                    let refusal = ServiceError::Forbidden(format!(
                        "you may not hand this {} to that owner: it would be outside your update scope",
                        singular(object)
                    ));
                    return Err(self
                        .log_denied(subject, Action::Update, object, Some(id), refusal)
                        .await);
                }
                changes.owner = Some(owner);
                changes.unit = Some(unit);
            }
        }
        if version != record.version {
            return Err(StoreError::Conflict.into());
        }
        let mut after = record.values.clone();
        for (index, value) in &changes.values {
            after[*index] = value.clone();
        }
        Ok(PlannedChange {
            object,
            record_ref: record.record_ref().to_owned_ref(),
            after: Some(after),
            change: Change::Update {
                id,
                version,
                changes,
            },
            before: Some(record),
        })
    }

    /// Checks a delete, without writing.
    pub(crate) async fn plan_delete(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
        version: Option<i64>,
    ) -> Result<PlannedChange> {
        let record = self.readable(subject, object, id).await?;
        let decision = subject.snapshot.check(
            subject.user,
            Action::Delete,
            object,
            &record.record_ref(),
            subject.now,
        );
        if !decision.is_allowed() {
            let refusal = forbidden(decision, Action::Delete, object);
            return Err(self
                .log_denied(subject, Action::Delete, object, Some(id), refusal)
                .await);
        }
        if version.is_some_and(|v| v != record.version) {
            return Err(StoreError::Conflict.into());
        }
        Ok(PlannedChange {
            object,
            record_ref: record.record_ref().to_owned_ref(),
            after: None,
            change: Change::Delete {
                id,
                version: Some(record.version),
            },
            before: Some(record),
        })
    }
}

/// A checked change to one record, not yet written.
#[derive(Debug, Clone)]
pub(crate) struct PlannedChange {
    pub(crate) object: ObjectType,
    /// The record as the engine sees it (for a create: as it will be).
    pub(crate) record_ref: OwnedRecordRef,
    /// The record as it is (none for a create).
    pub(crate) before: Option<Record>,
    /// Its values as they will be (none for a delete).
    pub(crate) after: Option<Vec<Value>>,
    pub(crate) change: Change,
}

impl PlannedChange {
    pub(crate) fn action(&self) -> Action {
        match self.change {
            Change::Create(_) => Action::Create,
            Change::Update { .. } => Action::Update,
            Change::Delete { .. } => Action::Delete,
        }
    }

    pub(crate) fn record_id(&self) -> Option<i64> {
        match self.change {
            Change::Create(_) => None,
            Change::Update { id, .. } | Change::Delete { id, .. } => Some(id),
        }
    }

    pub(crate) fn record_version(&self) -> Option<i64> {
        match self.change {
            Change::Create(_) => None,
            Change::Update { version, .. } => Some(version),
            Change::Delete { version, .. } => version,
        }
    }
}

/// The write itself.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Create(NewRecord),
    Update {
        id: i64,
        version: i64,
        changes: RecordChanges,
    },
    /// Only at `version` when given.
    Delete {
        id: i64,
        version: Option<i64>,
    },
}

/// Writes a planned change in `tx`: the new or updated record, or none for a delete. A record
/// changed since it was planned is a conflict (optimistic `version`).
///
/// The write is logged in the same transaction, by `subject` (for an approved change: its
/// requester), with the fields written.
pub(crate) async fn apply_change(
    tx: &mut Tx,
    subject: &Subject,
    object: ObjectType,
    change: &Change,
) -> Result<Option<Record>> {
    let now = subject.now;
    let names = schema(object).fields;
    let (action, id, written): (Action, Option<i64>, Vec<&str>) = match change {
        Change::Create(new) => (
            Action::Create,
            None,
            new.values
                .iter()
                .zip(names)
                .filter(|(value, _)| **value != Value::Null)
                .map(|(_, def)| def.name)
                .collect(),
        ),
        Change::Update { id, changes, .. } => (
            Action::Update,
            Some(*id),
            changes
                .values
                .iter()
                .filter_map(|(index, _)| names.get(*index).map(|def| def.name))
                .chain(changes.owner.map(|_| "owner"))
                .collect(),
        ),
        Change::Delete { id, .. } => (Action::Delete, Some(*id), Vec::new()),
    };
    let record = match change {
        Change::Create(new) => Some(tx.insert_record(object, new, now).await.map_err(|e| {
            match e {
                // The customer was deleted between the check and the insert.
                StoreError::Reference(_) => {
                    ServiceError::invalid("customer_id", "no such customer")
                }
                other => other.into(),
            }
        })?),
        Change::Update {
            id,
            version,
            changes,
        } => Some(
            tx.update_record(object, *id, *version, changes, now)
                .await?,
        ),
        Change::Delete { id, version } => {
            tx.delete_record(object, *id, *version).await?;
            None
        }
    };
    let id = record.as_ref().map(|r| r.id).or(id).unwrap_or_default();
    log_write(tx, subject, action, object, id, written).await?;
    Ok(record)
}

impl Warden {
    /// The full value of one field of one record, for a caller who sees it masked (or in
    /// full): 404 when the record is not readable, 403 when the field is hidden from the
    /// caller. Every reveal is written to the access log, in the same transaction, before the
    /// value is returned.
    pub async fn reveal_field(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
        field: &str,
    ) -> Result<Value> {
        let (index, _) = schema(object).field(field).ok_or_else(|| {
            ServiceError::invalid("field", format!("`{field}` is not a field of {object}"))
        })?;
        let record = self.readable(subject, object, id).await?;
        let level = subject
            .snapshot
            .field_levels(
                subject.user,
                Action::Read,
                object,
                &record.record_ref(),
                subject.now,
            )
            .at(index);
        if level == FieldAccess::Hidden {
            return Err(ServiceError::FieldForbidden {
                field: field.to_owned(),
                message: "is hidden from you; nothing to reveal".to_owned(),
            });
        }
        let mut tx = self.store.begin().await?;
        tx.append_access(&AccessEntry {
            object: Some(object),
            record_id: Some(id),
            fields: vec![field.to_owned()],
            detail: format!("{level} access"),
            ..entry(subject, "reveal")
        })
        .await?;
        tx.commit().await?;
        Ok(record.values.get(index).cloned().unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_validated() {
        assert_eq!(parse_cursor(None).unwrap(), None);
        assert_eq!(parse_cursor(Some("")).unwrap(), None);
        assert_eq!(parse_cursor(Some("42")).unwrap(), Some(42));
        for bad in ["-1", "abc", "1.5", "99999999999999999999"] {
            match parse_cursor(Some(bad)) {
                Err(ServiceError::Invalid { field, .. }) => assert_eq!(field, "cursor"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_and_repeated_fields_are_named() {
        let err = validate_fields(
            ObjectType::Customers,
            &[("colour".into(), Value::Text("red".into()))],
            None,
        )
        .unwrap_err();
        assert!(
            matches!(err, ServiceError::Invalid { ref field, .. } if field == "colour"),
            "{err:?}"
        );
        let err = validate_fields(
            ObjectType::Customers,
            &[
                ("name".into(), Value::Text("a".into())),
                ("name".into(), Value::Text("b".into())),
            ],
            None,
        )
        .unwrap_err();
        assert!(
            matches!(err, ServiceError::Invalid { ref message, .. } if message == "is given twice")
        );
    }
}
