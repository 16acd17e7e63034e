//! Record use cases: list, read, create, update, delete, each decided by the engine.

use warden_policy::schema::{schema, Value};
use warden_policy::{Action, Decision, Denial, ObjectType, RecordRef};
use warden_store::{NewRecord, Record, RecordChanges, StoreError};

use crate::{Result, ServiceError, Subject, Warden};

/// A record as the caller may see it, with names resolved for display.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    pub record: Record,
    pub owner_username: String,
    pub unit_name: String,
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

fn view(subject: &Subject, record: Record) -> RecordView {
    let snapshot = &subject.snapshot;
    RecordView {
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

/// Validates named values against the schema; returns them by field position.
fn validate_fields(object: ObjectType, fields: &[(String, Value)]) -> Result<Vec<(usize, Value)>> {
    let schema = schema(object);
    let mut out: Vec<(usize, Value)> = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        let (index, def) = schema.field(name).ok_or_else(|| {
            ServiceError::invalid(name.as_str(), format!("is not a field of {}", object))
        })?;
        if out.iter().any(|(i, _)| *i == index) {
            return Err(ServiceError::invalid(name.as_str(), "is given twice"));
        }
        out.push((index, def.validate(value.clone())?));
    }
    Ok(out)
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
        let limit = limit.unwrap_or(self.config.default_page_size);
        if limit == 0 || limit > self.config.max_page_size {
            return Err(ServiceError::invalid(
                "limit",
                format!("must be between 1 and {}", self.config.max_page_size),
            ));
        }
        let after = parse_cursor(cursor)?;
        let filter = subject
            .snapshot
            .filter(subject.user, Action::Read, object, subject.now);
        let page = self
            .store
            .list_records(object, &filter, after, limit)
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(|r| view(subject, r)).collect(),
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
        Ok(view(subject, record))
    }

    /// The record, if it exists and the subject may read it; 404 otherwise.
    async fn readable(&self, subject: &Subject, object: ObjectType, id: i64) -> Result<Record> {
        let record = self
            .store
            .get_record(object, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
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
            Err(ServiceError::NotFound)
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
    /// scope covers that owner).
    pub async fn create_record(
        &self,
        subject: &Subject,
        object: ObjectType,
        input: RecordInput,
    ) -> Result<RecordView> {
        let schema = schema(object);
        let values = validate_fields(object, &input.fields)?;
        let mut row = vec![Value::Null; schema.fields.len()];
        for (index, value) in values {
            row[index] = value;
        }
        for (index, def) in schema.fields.iter().enumerate() {
            if def.required && row[index] == Value::Null {
                return Err(ServiceError::invalid(def.name, "is required"));
            }
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
                Some((customer.id, (customer.owner, customer.unit)))
            }
        };
        let prospective = RecordRef {
            owner,
            unit,
            customer: customer.map(|(_, c)| c),
        };
        let decision = subject.snapshot.check(
            subject.user,
            Action::Create,
            object,
            &prospective,
            subject.now,
        );
        if !decision.is_allowed() {
            return Err(forbidden(decision, Action::Create, object));
        }
        let mut tx = self.store.begin().await?;
        let record = tx
            .insert_record(
                object,
                &NewRecord {
                    customer_id: customer.map(|(id, _)| id),
                    owner,
                    unit,
                    values: row,
                },
                subject.now,
            )
            .await
            .map_err(|e| match e {
                // The customer was deleted between the check and the insert.
                StoreError::Reference(_) => {
                    ServiceError::invalid("customer_id", "no such customer")
                }
                other => other.into(),
            })?;
        tx.commit().await?;
        Ok(view(subject, record))
    }

    /// Updates a record read at `version`: 404 if not readable, 403 if not updatable (before or,
    /// when the owner changes, after), 409 if it changed meanwhile, 422 on bad fields.
    pub async fn update_record(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
        version: Option<i64>,
        input: RecordInput,
    ) -> Result<RecordView> {
        let record = self.readable(subject, object, id).await?;
        let decision = subject.snapshot.check(
            subject.user,
            Action::Update,
            object,
            &record.record_ref(),
            subject.now,
        );
        if !decision.is_allowed() {
            return Err(forbidden(decision, Action::Update, object));
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
        let values = validate_fields(object, &input.fields)?;
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
                    customer: record.customer,
                };
                let decision = subject.snapshot.check(
                    subject.user,
                    Action::Update,
                    object,
                    &after,
                    subject.now,
                );
                if !decision.is_allowed() {
                    return Err(ServiceError::Forbidden(format!(
                        "you may not hand this {} to that owner: it would be outside your update scope",
                        singular(object)
                    )));
                }
                changes.owner = Some(owner);
                changes.unit = Some(unit);
            }
        }
        if version != record.version {
            return Err(StoreError::Conflict.into());
        }
        let mut tx = self.store.begin().await?;
        let updated = tx
            .update_record(object, id, version, &changes, subject.now)
            .await?;
        tx.commit().await?;
        Ok(view(subject, updated))
    }

    /// Deletes a record (optionally only at `version`).
    pub async fn delete_record(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
        version: Option<i64>,
    ) -> Result<()> {
        let record = self.readable(subject, object, id).await?;
        let decision = subject.snapshot.check(
            subject.user,
            Action::Delete,
            object,
            &record.record_ref(),
            subject.now,
        );
        if !decision.is_allowed() {
            return Err(forbidden(decision, Action::Delete, object));
        }
        let mut tx = self.store.begin().await?;
        tx.delete_record(object, id, version).await?;
        tx.commit().await?;
        Ok(())
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
        )
        .unwrap_err();
        assert!(
            matches!(err, ServiceError::Invalid { ref message, .. } if message == "is given twice")
        );
    }
}
