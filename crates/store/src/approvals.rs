//! Approvals in the database: policies (as JSON with ids), requests with their encrypted
//! intended change, votes, the event trail, settings, and the webhook outbox.
//!
//! A request moves out of `pending` only through [`Tx::move_approval`], an `UPDATE … WHERE
//! state = 'pending'`: two deciders racing on PostgreSQL serialise on the row (the second sees
//! zero rows changed), and SQLite has one writer at a time. A decision therefore takes effect
//! exactly once.

use serde_json::{json, Map, Value as Json};
use sqlx::Row;
use warden_policy::schema::Value;
use warden_policy::{
    Action, ApprovalPolicy, Approvers, CompareOp, Criteria, ObjectType, Permission, Requesters,
    RoleId, Timestamp, UnitId, UserId,
};

use crate::crypto::FieldRef;
use crate::{Backend, Result, Store, StoreError, Tx};

/// The setting that turns four eyes on permission changes on (`on`) or off.
pub const FOUR_EYES: &str = "four_eyes";

fn corrupt(column: &'static str, message: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "approval_policies",
        column,
        message: message.to_string(),
    }
}

/// A field value as JSON (shared with the API's condition form).
pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Text(t) => json!(t),
        Value::Integer(i) => json!(i),
        Value::Bool(b) => json!(b),
    }
}

/// A JSON scalar as a field value.
pub fn value_from_json(value: &Json) -> std::result::Result<Value, String> {
    match value {
        Json::Null => Ok(Value::Null),
        Json::String(s) => Ok(Value::Text(s.clone())),
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Integer)
            .ok_or_else(|| format!("{n} is not a whole number")),
        other => Err(format!("{other} is not a text, number, boolean or null")),
    }
}

/// A condition as JSON: `{"all": […]}`, `{"any": […]}`, `{"not": …}`, `{"changed": FIELD}`,
/// `{"increased": FIELD}`, `{"decreased": FIELD}`, `{"in": {FIELD: [values]}}`, or
/// `{FIELD: value}` / `{FIELD: {"gt": value}}` (several fields: all of them).
pub fn criteria_to_json(criteria: &Criteria) -> Json {
    match criteria {
        Criteria::All(items) => {
            json!({"all": items.iter().map(criteria_to_json).collect::<Vec<_>>()})
        }
        Criteria::Any(items) => {
            json!({"any": items.iter().map(criteria_to_json).collect::<Vec<_>>()})
        }
        Criteria::Not(inner) => json!({"not": criteria_to_json(inner)}),
        Criteria::Changed(f) => json!({"changed": f}),
        Criteria::Increased(f) => json!({"increased": f}),
        Criteria::Decreased(f) => json!({"decreased": f}),
        Criteria::In { field, values } => {
            json!({"in": {field: values.iter().map(value_to_json).collect::<Vec<_>>()}})
        }
        Criteria::Compare { field, op, value } => {
            let mut inner = Map::new();
            inner.insert(op.as_str().to_owned(), value_to_json(value));
            json!({ field: Json::Object(inner) })
        }
    }
}

/// Parses the JSON form of a condition (see [`criteria_to_json`]); field names are checked
/// when the policy is compiled.
pub fn criteria_from_json(value: &Json) -> std::result::Result<Criteria, String> {
    let object = value.as_object().ok_or("a condition is a JSON object")?;
    if object.is_empty() {
        return Err("an empty condition".into());
    }
    let field_name = |v: &Json, key: &str| -> std::result::Result<String, String> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("`{key}` takes a field name"))
    };
    let mut terms = Vec::with_capacity(object.len());
    for (key, v) in object {
        let term = match key.as_str() {
            "all" | "any" => {
                let items = v
                    .as_array()
                    .ok_or_else(|| format!("`{key}` takes a list of conditions"))?
                    .iter()
                    .map(criteria_from_json)
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                if key == "all" {
                    Criteria::All(items)
                } else {
                    Criteria::Any(items)
                }
            }
            "not" => Criteria::Not(Box::new(criteria_from_json(v)?)),
            "changed" => Criteria::Changed(field_name(v, key)?),
            "increased" => Criteria::Increased(field_name(v, key)?),
            "decreased" => Criteria::Decreased(field_name(v, key)?),
            "in" => {
                let inner = v
                    .as_object()
                    .filter(|m| m.len() == 1)
                    .ok_or("`in` takes {FIELD: [values]}")?;
                let (field, values) = inner.iter().next().ok_or("`in` takes {FIELD: [values]}")?;
                let values = values
                    .as_array()
                    .ok_or("`in` takes {FIELD: [values]}")?
                    .iter()
                    .map(value_from_json)
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Criteria::In {
                    field: field.clone(),
                    values,
                }
            }
            field => match v {
                Json::Object(ops) => {
                    let mut compares = Vec::with_capacity(ops.len());
                    for (op, value) in ops {
                        let op = CompareOp::parse(op).ok_or_else(|| {
                            format!("unknown comparison `{op}` (eq, ne, gt, gte, lt, lte)")
                        })?;
                        compares.push(Criteria::Compare {
                            field: field.to_owned(),
                            op,
                            value: value_from_json(value)?,
                        });
                    }
                    match compares.len() {
                        0 => return Err(format!("`{field}` has no comparison")),
                        1 => compares.remove(0),
                        _ => Criteria::All(compares),
                    }
                }
                scalar => Criteria::Compare {
                    field: field.to_owned(),
                    op: CompareOp::Eq,
                    value: value_from_json(scalar)?,
                },
            },
        };
        terms.push(term);
    }
    Ok(if terms.len() == 1 {
        terms.remove(0)
    } else {
        Criteria::All(terms)
    })
}

/// The stored form of a policy (ids, not names).
fn definition_json(policy: &ApprovalPolicy) -> Json {
    json!({
        "object": policy.object.as_str(),
        "operations": policy.operations.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "fields": policy.fields,
        "when": policy.when.as_ref().map(criteria_to_json),
        "requesters": match policy.requesters {
            Requesters::Anyone => json!("anyone"),
            Requesters::Role(r) => json!({"role": r.0}),
            Requesters::Unit(u) => json!({"unit": u.0}),
        },
        "approvers": match &policy.approvers {
            Approvers::Superior { levels } => json!({"superior": levels}),
            Approvers::Role(r) => json!({"role": r.0}),
            Approvers::Users(users) => json!({"users": users.iter().map(|u| u.0).collect::<Vec<_>>()}),
            Approvers::Permission(p) => json!({"permission": p.as_str()}),
        },
        "required": policy.required,
        "expires_after_ms": policy.expires_after_ms,
        "escalate": policy.escalate,
    })
}

/// A policy with its id and name as JSON (how a request keeps the policies that caught it).
pub fn policy_to_json(policy: &ApprovalPolicy) -> Json {
    let mut value = definition_json(policy);
    value["id"] = json!(policy.id);
    value["name"] = json!(policy.name);
    value
}

/// Reads [`policy_to_json`]'s form back.
pub fn policy_from_json(value: &Json) -> Result<ApprovalPolicy> {
    policy_from_value(
        value["id"].as_i64().unwrap_or_default(),
        value["name"].as_str().unwrap_or_default().to_owned(),
        value,
    )
}

fn policy_from_definition(id: i64, name: String, text: &str) -> Result<ApprovalPolicy> {
    let d: Json = serde_json::from_str(text).map_err(|e| corrupt("definition", e))?;
    policy_from_value(id, name, &d)
}

fn policy_from_value(id: i64, name: String, d: &Json) -> Result<ApprovalPolicy> {
    let int = |v: &Json, what: &'static str| v.as_i64().ok_or_else(|| corrupt("definition", what));
    let object = ObjectType::parse(d["object"].as_str().unwrap_or_default())
        .map_err(|e| corrupt("definition", e))?;
    let operations = d["operations"]
        .as_array()
        .ok_or_else(|| corrupt("definition", "operations"))?
        .iter()
        .map(|a| {
            Action::parse(a.as_str().unwrap_or_default()).map_err(|e| corrupt("definition", e))
        })
        .collect::<Result<Vec<_>>>()?;
    let fields = d["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let when = match &d["when"] {
        Json::Null => None,
        c => Some(criteria_from_json(c).map_err(|e| corrupt("definition", e))?),
    };
    let requesters = match &d["requesters"] {
        Json::Object(m) if m.contains_key("role") => {
            Requesters::Role(RoleId(int(&m["role"], "role")?))
        }
        Json::Object(m) if m.contains_key("unit") => {
            Requesters::Unit(UnitId(int(&m["unit"], "unit")?))
        }
        _ => Requesters::Anyone,
    };
    let a = &d["approvers"];
    let approvers = if let Some(levels) = a.get("superior") {
        Approvers::Superior {
            levels: int(levels, "superior")?.clamp(1, 64) as u32,
        }
    } else if let Some(role) = a.get("role") {
        Approvers::Role(RoleId(int(role, "role")?))
    } else if let Some(users) = a.get("users").and_then(Json::as_array) {
        Approvers::Users(
            users
                .iter()
                .map(|u| int(u, "users").map(UserId))
                .collect::<Result<Vec<_>>>()?,
        )
    } else if let Some(p) = a.get("permission").and_then(Json::as_str) {
        Approvers::Permission(Permission::parse(p).map_err(|e| corrupt("definition", e))?)
    } else {
        return Err(corrupt("definition", "approvers"));
    };
    Ok(ApprovalPolicy {
        id,
        name,
        object,
        operations,
        fields,
        when,
        requesters,
        approvers,
        required: int(&d["required"], "required")?.clamp(1, 1_000) as u32,
        expires_after_ms: d["expires_after_ms"].as_i64(),
        escalate: d["escalate"].as_bool().unwrap_or(false),
    })
}

/// A stored policy with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalPolicyRow {
    pub policy: ApprovalPolicy,
    pub version: i64,
}

pub(crate) async fn read_policies(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
) -> Result<Vec<ApprovalPolicyRow>> {
    sqlx::query("SELECT id, name, definition, version FROM approval_policies ORDER BY id")
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| {
            Ok(ApprovalPolicyRow {
                policy: policy_from_definition(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    &row.try_get::<String, _>(2)?,
                )?,
                version: row.try_get(3)?,
            })
        })
        .collect()
}

pub(crate) async fn read_setting(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    key: &str,
) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

/// A change waiting for approval, to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApprovalRequest {
    /// `record` or `organisation`.
    pub kind: String,
    /// What would be done (`delete`, `update`, `create`, `role.update`, …).
    pub operation: String,
    pub object: Option<ObjectType>,
    pub record_id: Option<i64>,
    pub record_version: Option<i64>,
    pub requester_id: UserId,
    pub requester: String,
    /// One line for people (no sensitive value).
    pub summary: String,
    /// The intended change (JSON); stored encrypted.
    pub payload: String,
    /// The steps (JSON).
    pub steps: String,
    pub expires_at: Option<Timestamp>,
}

/// A stored request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRow {
    pub id: i64,
    pub kind: String,
    pub operation: String,
    pub object: Option<ObjectType>,
    pub record_id: Option<i64>,
    pub record_version: Option<i64>,
    pub requester_id: UserId,
    pub requester: String,
    pub summary: String,
    /// The intended change, decrypted.
    pub payload: String,
    pub steps: String,
    pub state: String,
    /// Why it ended as it did (a conflict's cause, a rejection's comment).
    pub reason: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// One person's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalVote {
    pub person: String,
    pub user_id: UserId,
    pub decision: String,
    pub at: Timestamp,
    pub comment: String,
}

/// One step in a request's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalEvent {
    pub at: Timestamp,
    pub actor_id: Option<UserId>,
    pub actor: String,
    pub event: String,
    pub comment: String,
}

/// A webhook delivery waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub body: String,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
}

fn payload_field(id: i64) -> FieldRef {
    FieldRef {
        table: "approval_requests",
        id,
        column: "payload",
    }
}

const REQUEST_COLUMNS: &str =
    "id, kind, operation, object, record_id, record_version, requester_id, \
     requester, summary, payload, steps, state, reason, created_at, updated_at, expires_at";

fn decode_request(keys: &crate::crypto::Keys, row: &sqlx::any::AnyRow) -> Result<ApprovalRow> {
    let id: i64 = row.try_get(0)?;
    let object: Option<String> = row.try_get(3)?;
    Ok(ApprovalRow {
        id,
        kind: row.try_get(1)?,
        operation: row.try_get(2)?,
        object: object
            .map(|o| ObjectType::parse(&o))
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                table: "approval_requests",
                column: "object",
                message: e.to_string(),
            })?,
        record_id: row.try_get(4)?,
        record_version: row.try_get(5)?,
        requester_id: UserId(row.try_get(6)?),
        requester: row.try_get(7)?,
        summary: row.try_get(8)?,
        payload: keys.decrypt(payload_field(id), &row.try_get::<String, _>(9)?)?,
        steps: row.try_get(10)?,
        state: row.try_get(11)?,
        reason: row.try_get(12)?,
        created_at: row.try_get(13)?,
        updated_at: row.try_get(14)?,
        expires_at: row.try_get(15)?,
    })
}

/// Which requests a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalListing {
    pub state: Option<String>,
    pub requester: Option<UserId>,
    pub after: Option<i64>,
    pub limit: u32,
}

impl Tx {
    /// Sets a setting.
    pub async fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        sqlx::query("DELETE FROM settings WHERE key = $1")
            .bind(key)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2)")
            .bind(key)
            .bind(value)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Links an account to a natural person (`None`: its own person).
    pub async fn set_person(&mut self, user: UserId, person: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE users SET person = $1 WHERE id = $2")
            .bind(person)
            .bind(user.0)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Stores a new policy (its `id` is ignored); returns the id.
    pub async fn insert_approval_policy(
        &mut self,
        policy: &ApprovalPolicy,
        now: Timestamp,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO approval_policies (name, definition, created_at, updated_at) \
             VALUES ($1, $2, $3, $3) RETURNING id",
        )
        .bind(policy.name.as_str())
        .bind(definition_json(policy).to_string())
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    /// Replaces a policy (only at `version`, when given).
    pub async fn update_approval_policy(
        &mut self,
        policy: &ApprovalPolicy,
        version: Option<i64>,
        now: Timestamp,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE approval_policies SET name = $1, definition = $2, updated_at = $3, \
             version = version + 1 WHERE id = $4 AND ($5 IS NULL OR version = $5)",
        )
        .bind(policy.name.as_str())
        .bind(definition_json(policy).to_string())
        .bind(now)
        .bind(policy.id)
        .bind(version)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    /// Deletes a policy. Requests it already caught keep their steps.
    pub async fn delete_approval_policy(&mut self, id: i64) -> Result<()> {
        let done = sqlx::query("DELETE FROM approval_policies WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Stores a request in state `pending`; returns its id.
    pub async fn insert_approval_request(
        &mut self,
        request: &NewApprovalRequest,
        now: Timestamp,
    ) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO approval_requests (kind, operation, object, record_id, record_version, \
             requester_id, requester, summary, payload, steps, state, created_at, updated_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '', $9, 'pending', $10, $10, $11) \
             RETURNING id",
        )
        .bind(request.kind.as_str())
        .bind(request.operation.as_str())
        .bind(request.object.map(|o| o.as_str()))
        .bind(request.record_id)
        .bind(request.record_version)
        .bind(request.requester_id.0)
        .bind(request.requester.as_str())
        .bind(request.summary.as_str())
        .bind(request.steps.as_str())
        .bind(now)
        .bind(request.expires_at)
        .fetch_one(&mut *self.tx)
        .await?;
        // The payload's ciphertext is bound to the row id, known only now.
        let sealed = self.keys.encrypt(payload_field(id), &request.payload)?;
        sqlx::query("UPDATE approval_requests SET payload = $1 WHERE id = $2")
            .bind(sealed)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(id)
    }

    /// A request, read for deciding it. On PostgreSQL the row is locked until the transaction
    /// ends (SQLite's writer is alone already).
    pub async fn approval_for_update(&mut self, id: i64) -> Result<Option<ApprovalRow>> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM approval_requests WHERE id = $1{lock}"
        ))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|row| decode_request(&self.keys, &row)).transpose()
    }

    /// Moves a request from `from` to `to` (with a reason); false when it was not in `from`
    /// (someone else decided first).
    pub async fn move_approval(
        &mut self,
        id: i64,
        from: &str,
        to: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE approval_requests SET state = $1, reason = $2, updated_at = $3 \
             WHERE id = $4 AND state = $5",
        )
        .bind(to)
        .bind(reason)
        .bind(now)
        .bind(id)
        .bind(from)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces a pending request's steps and expiry (an escalation).
    pub async fn escalate_approval(
        &mut self,
        id: i64,
        steps: &str,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE approval_requests SET steps = $1, expires_at = $2, updated_at = $3 \
             WHERE id = $4 AND state = 'pending'",
        )
        .bind(steps)
        .bind(expires_at)
        .bind(now)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records one person's decision; `Duplicate` when that person has decided already.
    pub async fn insert_approval_vote(&mut self, request: i64, vote: &ApprovalVote) -> Result<()> {
        sqlx::query(
            "INSERT INTO approval_votes (request_id, person, user_id, decision, at, comment) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(request)
        .bind(vote.person.as_str())
        .bind(vote.user_id.0)
        .bind(vote.decision.as_str())
        .bind(vote.at)
        .bind(vote.comment.as_str())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// The decisions on a request so far, inside this transaction.
    pub async fn approval_votes_in_tx(&mut self, request: i64) -> Result<Vec<ApprovalVote>> {
        let rows = sqlx::query(
            "SELECT person, user_id, decision, at, comment FROM approval_votes \
             WHERE request_id = $1 ORDER BY at, person",
        )
        .bind(request)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(decode_vote).collect()
    }

    /// Appends a step to a request's history.
    pub async fn append_approval_event(
        &mut self,
        request: i64,
        event: &ApprovalEvent,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO approval_events (request_id, at, actor_id, actor, event, comment) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(request)
        .bind(event.at)
        .bind(event.actor_id.map(|u| u.0))
        .bind(event.actor.as_str())
        .bind(event.event.as_str())
        .bind(event.comment.as_str())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Queues a webhook delivery (sent after the transaction commits, by the delivery loop).
    pub async fn enqueue_webhook(&mut self, body: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_outbox (created_at, body, next_attempt_at) VALUES ($1, $2, $1)",
        )
        .bind(now)
        .bind(body)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

fn decode_vote(row: &sqlx::any::AnyRow) -> Result<ApprovalVote> {
    Ok(ApprovalVote {
        person: row.try_get(0)?,
        user_id: UserId(row.try_get(1)?),
        decision: row.try_get(2)?,
        at: row.try_get(3)?,
        comment: row.try_get(4)?,
    })
}

impl Store {
    /// Every approval policy with its version.
    pub async fn approval_policies(&self) -> Result<Vec<ApprovalPolicyRow>> {
        let mut tx = self.pool.begin().await?;
        let rows = read_policies(&mut tx).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// A setting's value.
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// One request.
    pub async fn approval(&self, id: i64) -> Result<Option<ApprovalRow>> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM approval_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| decode_request(&self.keys, &row)).transpose()
    }

    /// Requests in id order, by state and/or requester, after a cursor.
    pub async fn approvals(&self, listing: &ApprovalListing) -> Result<Vec<ApprovalRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM approval_requests \
             WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR requester_id = $2) AND id > $3 \
             ORDER BY id LIMIT $4"
        ))
        .bind(listing.state.as_deref())
        .bind(listing.requester.map(|u| u.0))
        .bind(listing.after.unwrap_or(0))
        .bind(i64::from(listing.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| decode_request(&self.keys, row))
            .collect()
    }

    /// Pending requests whose deadline has passed at `now`.
    pub async fn expired_approvals(&self, now: Timestamp) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM approval_requests WHERE state = 'pending' \
             AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The decisions on a request.
    pub async fn approval_votes(&self, request: i64) -> Result<Vec<ApprovalVote>> {
        let rows = sqlx::query(
            "SELECT person, user_id, decision, at, comment FROM approval_votes \
             WHERE request_id = $1 ORDER BY at, person",
        )
        .bind(request)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_vote).collect()
    }

    /// A request's history, oldest first.
    pub async fn approval_events(&self, request: i64) -> Result<Vec<ApprovalEvent>> {
        sqlx::query(
            "SELECT at, actor_id, actor, event, comment FROM approval_events \
             WHERE request_id = $1 ORDER BY id",
        )
        .bind(request)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(ApprovalEvent {
                at: row.try_get(0)?,
                actor_id: row.try_get::<Option<i64>, _>(1)?.map(UserId),
                actor: row.try_get(2)?,
                event: row.try_get(3)?,
                comment: row.try_get(4)?,
            })
        })
        .collect()
    }

    /// Webhook deliveries due at `now`, oldest first.
    pub async fn due_webhooks(&self, now: Timestamp, limit: u32) -> Result<Vec<WebhookDelivery>> {
        sqlx::query(
            "SELECT id, body, attempts, next_attempt_at FROM webhook_outbox \
             WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(WebhookDelivery {
                id: row.try_get(0)?,
                body: row.try_get(1)?,
                attempts: row.try_get(2)?,
                next_attempt_at: row.try_get(3)?,
            })
        })
        .collect()
    }

    /// Takes a due delivery for this process until `lease_until` (another server process sees
    /// it as not due meanwhile); false when another process took it first.
    pub async fn claim_webhook(
        &self,
        delivery: &WebhookDelivery,
        lease_until: Timestamp,
    ) -> Result<bool> {
        // Each of these writes goes through a `Tx` (the SQLite writer lock): see
        // `Store::touch_session`.
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE webhook_outbox SET next_attempt_at = $1 \
             WHERE id = $2 AND next_attempt_at = $3 AND delivered_at IS NULL",
        )
        .bind(lease_until)
        .bind(delivery.id)
        .bind(delivery.next_attempt_at)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a delivery sent.
    pub async fn webhook_delivered(&self, id: i64, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE webhook_outbox SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }

    /// Records a failed attempt and when to try again.
    pub async fn webhook_failed(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = $1, \
             last_error = $2 WHERE id = $3",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_round_trip_through_json() {
        let text = r#"{"all": [{"region": "East"}, {"credit_limit": {"gt": 100000, "lte": 500000}},
            {"in": {"status": ["active", "prospect"]}}, {"not": {"changed": "owner"}},
            {"any": [{"increased": "credit_limit"}, {"decreased": "credit_limit"}]}]}"#;
        let parsed = criteria_from_json(&serde_json::from_str(text).unwrap()).unwrap();
        let again = criteria_from_json(&criteria_to_json(&parsed)).unwrap();
        assert_eq!(parsed, again);
        for bad in [
            r#"{}"#,
            r#"[]"#,
            r#"{"credit_limit": {"above": 1}}"#,
            r#"{"all": {"region": "East"}}"#,
            r#"{"in": {"status": "active"}}"#,
            r#"{"changed": 3}"#,
            r#"{"credit_limit": 1.5}"#,
        ] {
            assert!(
                criteria_from_json(&serde_json::from_str(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn policies_round_trip_through_their_stored_form() {
        let policy = ApprovalPolicy {
            id: 7,
            name: "credit".into(),
            object: ObjectType::Customers,
            operations: vec![Action::Create, Action::Update],
            fields: vec!["credit_limit".into()],
            when: Some(Criteria::Increased("credit_limit".into())),
            requesters: Requesters::Unit(UnitId(3)),
            approvers: Approvers::Users(vec![UserId(1), UserId(2)]),
            required: 2,
            expires_after_ms: Some(86_400_000),
            escalate: true,
        };
        let text = definition_json(&policy).to_string();
        assert_eq!(
            policy_from_definition(7, "credit".into(), &text).unwrap(),
            policy
        );
    }
}
