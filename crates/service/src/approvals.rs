//! Approval workflows: a change an approval policy catches is held as a pending request (the
//! full intended change, encrypted, with the record's version) until its approvers decide;
//! approval applies it atomically with the request's move to `applied`, or ends in `conflict`
//! when the record changed meanwhile. Every step is recorded and announced to the webhook.
//!
//! INVARIANT: a request leaves `pending` once (the store's conditional state move), so a change
//! is applied at most once however many approvers decide at the same moment; and nobody
//! decides a request of their own, from any of their accounts.

use serde_json::{json, Map, Value as Json};
use warden_policy::schema::Value;
use warden_policy::{
    Action, ApprovalPolicy, ApprovalTarget, FieldAccess, ObjectType, OwnedRecordRef, Permission,
    Proposal, Snapshot, Timestamp, UserId,
};
use warden_store::{
    policy_from_json, policy_to_json, value_from_json, value_to_json, ApprovalEvent,
    ApprovalListing, ApprovalRow, ApprovalVote, NewApprovalRequest, StoreError, Tx,
};

use crate::records::{apply_change, PlannedChange};
use crate::{RecordInput, Result, ServiceError, Subject, Warden};

/// What a change did: applied at once, or held for approval.
/// A held change must be answered as such (202), never dropped as if it were applied.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    Done(T),
    Pending(Box<ApprovalView>),
}

/// The states of a request.
pub const PENDING: &str = "pending";
const APPLIED: &str = "applied";
const REJECTED: &str = "rejected";
const CONFLICT: &str = "conflict";
const EXPIRED: &str = "expired";
const WITHDRAWN: &str = "withdrawn";

/// How many requests a listing looks at, at most, to fill one page of those the caller may see.
const SCAN_LIMIT: u32 = 5_000;

/// One step of a request as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepView {
    pub policy: String,
    /// Who may approve it now (usernames).
    pub approvers: Vec<String>,
    pub required: u32,
    /// Who has approved it (usernames).
    pub approved_by: Vec<String>,
    /// How many times it moved one superior up.
    pub escalations: u32,
}

/// A field of the intended change, as the viewer may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedField {
    pub field: String,
    /// `None` when hidden from the viewer.
    pub value: Option<Value>,
    pub access: FieldAccess,
}

/// One step of a request's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventView {
    pub at: Timestamp,
    pub actor: String,
    pub event: String,
    pub comment: String,
}

/// A request as its viewer may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalView {
    pub id: i64,
    pub kind: String,
    pub operation: String,
    pub object: Option<ObjectType>,
    pub record_id: Option<i64>,
    pub record_version: Option<i64>,
    pub requester: String,
    pub summary: String,
    pub state: String,
    pub reason: String,
    pub steps: Vec<StepView>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    /// The proposed field values (record changes), as the viewer may see them.
    pub fields: Vec<ProposedField>,
    /// The proposed owner (username), when the change hands the record over.
    pub owner: Option<String>,
    /// For a change to the organisation: what it changes (JSON; never a password's hash).
    pub organisation_change: Option<String>,
    /// Whether the viewer may approve or reject it now.
    pub can_decide: bool,
    /// The history (single reads only; empty in lists).
    pub events: Vec<EventView>,
}

/// Which requests a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApprovalRole {
    /// Those the caller requested or may decide (default).
    #[default]
    Involved,
    /// Those the caller may decide now (the inbox).
    Inbox,
    /// Those the caller requested.
    Mine,
    /// Every request (holders of `manage_roles` or `view_audit`).
    All,
}

/// One step as stored with the request: the policy as it was when it caught the change.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    policy: ApprovalPolicy,
    escalations: u32,
}

fn steps_to_json(steps: &[Step]) -> String {
    Json::Array(
        steps
            .iter()
            .map(|s| json!({"policy": policy_to_json(&s.policy), "escalations": s.escalations}))
            .collect(),
    )
    .to_string()
}

fn steps_from_json(text: &str) -> Result<Vec<Step>> {
    let corrupt = |m: &str| ServiceError::Internal(format!("approval steps: {m}"));
    let value: Json = serde_json::from_str(text).map_err(|e| corrupt(&e.to_string()))?;
    value
        .as_array()
        .ok_or_else(|| corrupt("not a list"))?
        .iter()
        .map(|step| {
            Ok(Step {
                policy: policy_from_json(&step["policy"])?,
                escalations: step["escalations"].as_u64().unwrap_or(0).min(64) as u32,
            })
        })
        .collect()
}

/// The one step of a four-eyes request.
pub(crate) fn four_eyes_steps(policy: &ApprovalPolicy) -> String {
    steps_to_json(&[Step {
        policy: policy.clone(),
        escalations: 0,
    }])
}

/// The intended change of a record request, as stored (encrypted) with it.
fn record_payload(planned: &PlannedChange, input: &RecordInput) -> String {
    let fields: Map<String, Json> = input
        .fields
        .iter()
        .map(|(name, value)| (name.clone(), value_to_json(value)))
        .collect();
    json!({
        "op": planned.action().as_str(),
        "object": planned.object.as_str(),
        "id": planned.record_id(),
        "version": planned.record_version(),
        "fields": fields,
        "owner": input.owner,
        "customer_id": input.customer_id,
    })
    .to_string()
}

/// The record change a request holds.
struct RecordPayload {
    action: Action,
    object: ObjectType,
    id: Option<i64>,
    version: Option<i64>,
    input: RecordInput,
}

fn parse_record_payload(text: &str) -> Result<RecordPayload> {
    let corrupt = |m: String| ServiceError::Internal(format!("approval payload: {m}"));
    let value: Json = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let action = Action::parse(value["op"].as_str().unwrap_or_default())
        .map_err(|e| corrupt(e.to_string()))?;
    let object = ObjectType::parse(value["object"].as_str().unwrap_or_default())
        .map_err(|e| corrupt(e.to_string()))?;
    let fields = value["fields"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| Ok((k.clone(), value_from_json(v).map_err(corrupt)?)))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(RecordPayload {
        action,
        object,
        id: value["id"].as_i64(),
        version: value["version"].as_i64(),
        input: RecordInput {
            fields,
            owner: value["owner"].as_str().map(str::to_owned),
            customer_id: value["customer_id"].as_i64(),
        },
    })
}

fn summary(planned: &PlannedChange, input: &RecordInput, requester: &str) -> String {
    let what = match planned.record_id() {
        Some(id) => format!("{} {id}", planned.object),
        None => format!("a new record of {}", planned.object),
    };
    let mut fields: Vec<&str> = input.fields.iter().map(|(n, _)| n.as_str()).collect();
    if input.owner.is_some() {
        fields.push("owner");
    }
    match planned.action() {
        Action::Delete => format!("{requester} asks to delete {what}"),
        Action::Create => format!("{requester} asks to create {what}"),
        _ => format!("{requester} asks to change {} of {what}", fields.join(", ")),
    }
}

/// The webhook's body for one state change: identifiers only, never field values.
fn webhook_body(row: &ApprovalRow, event: &str, actor: &str, at: Timestamp) -> String {
    json!({
        "event": format!("approval.{event}"),
        "at": at,
        "actor": actor,
        "approval": {
            "id": row.id,
            "state": row.state,
            "operation": row.operation,
            "object": row.object.map(|o| o.as_str()),
            "record_id": row.record_id,
            "requester": row.requester,
            "summary": row.summary,
        },
    })
    .to_string()
}

/// Records one step in the request's history and queues its webhook, in `tx`.
async fn record_event(
    tx: &mut Tx,
    row: &ApprovalRow,
    event: &str,
    actor: (Option<UserId>, &str),
    comment: &str,
    now: Timestamp,
) -> Result<()> {
    tx.append_approval_event(
        row.id,
        &ApprovalEvent {
            at: now,
            actor_id: actor.0,
            actor: actor.1.to_owned(),
            event: event.to_owned(),
            comment: comment.to_owned(),
        },
    )
    .await?;
    tx.enqueue_webhook(&webhook_body(row, event, actor.1, now), now)
        .await?;
    // The access log records every step too, in the same transaction (identifiers only).
    tx.append_access(&warden_store::AccessEntry {
        id: 0,
        at: now,
        actor_id: actor.0,
        actor: actor.1.to_owned(),
        action: format!("approval.{event}"),
        object: row.object,
        record_id: row.record_id,
        fields: Vec::new(),
        client: None,
        outcome: "ok".to_owned(),
        detail: format!("request {} ({}): {}", row.id, row.operation, row.summary),
    })
    .await?;
    Ok(())
}

fn check_comment(comment: &str) -> Result<String> {
    if comment.chars().count() > 2_000 {
        return Err(ServiceError::invalid(
            "comment",
            "must be at most 2000 characters",
        ));
    }
    Ok(comment.to_owned())
}

impl Warden {
    /// Holds a planned record change for approval when a policy catches it: stores the
    /// request (state `pending`) and answers with it; `None` when no policy catches it.
    pub(crate) async fn hold_record_change(
        &self,
        subject: &Subject,
        planned: &PlannedChange,
        input: &RecordInput,
    ) -> Result<Option<ApprovalView>> {
        let snapshot = &subject.snapshot;
        let record = planned.record_ref.as_ref();
        let proposal = Proposal {
            object: planned.object,
            action: planned.action(),
            before: planned.before.as_ref().map(|r| r.values.as_slice()),
            after: planned.after.as_deref(),
            record: &record,
        };
        let policies = snapshot.approval_steps(subject.user, &proposal, subject.now);
        if policies.is_empty() {
            return Ok(None);
        }
        let target = ApprovalTarget::Record {
            object: planned.object,
            record: &record,
        };
        let steps: Vec<Step> = policies
            .into_iter()
            .map(|policy| Step {
                policy: policy.clone(),
                escalations: 0,
            })
            .collect();
        // A request nobody can approve would wait for ever: refuse it now, saying why.
        for step in &steps {
            let approvers =
                snapshot.approvers(subject.user, &step.policy.approvers, 0, target, subject.now);
            let people = distinct_people(snapshot, &approvers);
            if people < step.policy.required as usize {
                return Err(ServiceError::Conflict(format!(
                    "this change needs approval under \"{}\", but only {} of the {} approvals it \
                     needs can be given (approvers must be someone else who may read and approve \
                     this record)",
                    step.policy.name, people, step.policy.required
                )));
            }
        }
        let request = NewApprovalRequest {
            kind: "record".into(),
            operation: planned.action().as_str().to_owned(),
            object: Some(planned.object),
            record_id: planned.record_id(),
            record_version: planned.record_version(),
            requester_id: subject.user,
            requester: subject.username.clone(),
            summary: summary(planned, input, &subject.username),
            payload: record_payload(planned, input),
            steps: steps_to_json(&steps),
            expires_at: expiry(&steps, subject.now),
        };
        self.hold_request(subject, &request).await.map(Some)
    }

    /// Stores a request and answers with the requester's view of it.
    pub(crate) async fn hold_request(
        &self,
        subject: &Subject,
        request: &NewApprovalRequest,
    ) -> Result<ApprovalView> {
        let id = self.store_request(subject, request).await?;
        self.approval_view(subject, id, false).await
    }

    /// Writes a new request with its first event and webhook; returns its id.
    async fn store_request(&self, subject: &Subject, request: &NewApprovalRequest) -> Result<i64> {
        let mut tx = self.store.begin().await?;
        let id = tx.insert_approval_request(request, subject.now).await?;
        let row = tx
            .approval_for_update(id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        record_event(
            &mut tx,
            &row,
            "requested",
            (Some(subject.user), &subject.username),
            "",
            subject.now,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The record a request is about, as the engine sees it now: the stored record for an
    /// update or delete (none once it is gone), the prospective one for a create.
    async fn request_target(
        &self,
        snapshot: &Snapshot,
        row: &ApprovalRow,
    ) -> Result<Option<OwnedRecordRef>> {
        let (Some(object), "record") = (row.object, row.kind.as_str()) else {
            return Ok(None);
        };
        match row.record_id {
            Some(id) => Ok(self
                .store
                .get_record(object, id)
                .await?
                .map(|r| r.record_ref().to_owned_ref())),
            None => {
                let payload = parse_record_payload(&row.payload)?;
                let owner = match &payload.input.owner {
                    Some(name) => snapshot.user_by_name(name),
                    None => snapshot.user(row.requester_id),
                };
                let Some(owner) = owner else { return Ok(None) };
                let customer = match payload.input.customer_id {
                    Some(id) => match self.store.get_record(ObjectType::Customers, id).await? {
                        Some(c) => Some(c),
                        None => return Ok(None),
                    },
                    None => None,
                };
                Ok(Some(OwnedRecordRef {
                    owner: owner.id(),
                    unit: owner.unit(),
                    customer: customer.as_ref().map(|c| (c.owner, c.unit)),
                    id: None,
                    customer_id: customer.as_ref().map(|c| c.id),
                    shares: Vec::new(),
                    values: Vec::new(),
                    customer_shares: customer
                        .as_ref()
                        .map_or_else(Vec::new, |c| c.shares.clone()),
                    customer_values: customer.map_or_else(Vec::new, |c| c.values),
                }))
            }
        }
    }

    /// Who may approve each step now (user ids), given the request's target.
    fn step_approvers(
        &self,
        snapshot: &Snapshot,
        row: &ApprovalRow,
        steps: &[Step],
        target: Option<&OwnedRecordRef>,
        now: Timestamp,
    ) -> Vec<Vec<UserId>> {
        let affected = (row.kind == "organisation")
            .then(|| crate::four_eyes::OrgChange::parse(&row.payload).ok())
            .flatten()
            .and_then(|change| change.affected_user());
        let record = target.map(OwnedRecordRef::as_ref);
        steps
            .iter()
            .map(|step| {
                let target = match (row.kind.as_str(), row.object, record.as_ref()) {
                    ("record", Some(object), Some(record)) => {
                        ApprovalTarget::Record { object, record }
                    }
                    // The record is gone: nobody can approve a change to it.
                    ("record", _, _) => return Vec::new(),
                    _ => ApprovalTarget::Organisation,
                };
                let mut approvers = snapshot.approvers(
                    row.requester_id,
                    &step.policy.approvers,
                    step.escalations,
                    target,
                    now,
                );
                // Nobody approves a change about themselves (their own promotion, say).
                if let Some(affected) = affected {
                    approvers.retain(|&a| !snapshot.same_person(a, affected));
                }
                approvers
            })
            .collect()
    }

    /// Whether the subject oversees every request (reads them all, decides none by it).
    fn oversees(subject: &Subject) -> bool {
        subject.can(Permission::ManageRoles) || subject.can(Permission::ViewAudit)
    }

    /// Builds the view of a request for `subject`; `NotFound` when they may not see it.
    async fn view_row(
        &self,
        subject: &Subject,
        row: &ApprovalRow,
        with_events: bool,
    ) -> Result<ApprovalView> {
        let snapshot = &subject.snapshot;
        let steps = steps_from_json(&row.steps)?;
        let target = self.request_target(snapshot, row).await?;
        let approvers = self.step_approvers(snapshot, row, &steps, target.as_ref(), subject.now);
        let is_requester = snapshot.same_person(subject.user, row.requester_id);
        let is_approver = approvers.iter().any(|a| a.contains(&subject.user));
        let votes = self.store.approval_votes(row.id).await?;
        let my_person = snapshot.person_key(subject.user);
        let decided = votes.iter().any(|v| v.person == my_person);
        // Deciders keep seeing what they decided, even once the record is gone.
        if !is_requester && !is_approver && !decided && !Self::oversees(subject) {
            return Err(ServiceError::NotFound);
        }
        let name = |id: UserId| {
            snapshot
                .user(id)
                .map(|u| u.username().to_owned())
                .unwrap_or_else(|| format!("#{}", id.0))
        };
        let step_views = steps
            .iter()
            .zip(&approvers)
            .map(|(step, approvers)| StepView {
                policy: step.policy.name.clone(),
                approvers: approvers.iter().map(|&u| name(u)).collect(),
                required: step.policy.required,
                approved_by: votes
                    .iter()
                    .filter(|v| v.decision == "approve")
                    .filter(|v| {
                        approvers
                            .iter()
                            .any(|&a| snapshot.person_key(a) == v.person)
                    })
                    .map(|v| name(v.user_id))
                    .collect(),
                escalations: step.escalations,
            })
            .collect();
        let (fields, owner) = self.proposed_fields(subject, row, target.as_ref())?;
        let events = if with_events {
            self.store
                .approval_events(row.id)
                .await?
                .into_iter()
                .map(|e| EventView {
                    at: e.at,
                    actor: e.actor,
                    event: e.event,
                    comment: e.comment,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(ApprovalView {
            id: row.id,
            kind: row.kind.clone(),
            operation: row.operation.clone(),
            object: row.object,
            record_id: row.record_id,
            record_version: row.record_version,
            requester: row.requester.clone(),
            summary: row.summary.clone(),
            state: row.state.clone(),
            reason: row.reason.clone(),
            steps: step_views,
            created_at: row.created_at,
            updated_at: row.updated_at,
            expires_at: row.expires_at,
            fields,
            owner,
            organisation_change: (row.kind == "organisation")
                .then(|| crate::four_eyes::OrgChange::parse(&row.payload).ok())
                .flatten()
                .map(|change| change.describe(snapshot).to_string()),
            can_decide: row.state == PENDING && is_approver && !is_requester && !decided,
            events,
        })
    }

    /// The proposed values, each at the viewer's read level on the record (an approver who
    /// may not see a field sees that it changes, not its value).
    fn proposed_fields(
        &self,
        subject: &Subject,
        row: &ApprovalRow,
        target: Option<&OwnedRecordRef>,
    ) -> Result<(Vec<ProposedField>, Option<String>)> {
        let (Some(object), "record") = (row.object, row.kind.as_str()) else {
            return Ok((Vec::new(), None));
        };
        let payload = parse_record_payload(&row.payload)?;
        let levels = target.map(|record| {
            subject.snapshot.field_levels(
                subject.user,
                Action::Read,
                object,
                &record.as_ref(),
                subject.now,
            )
        });
        let fields = payload
            .input
            .fields
            .iter()
            .map(|(name, value)| {
                let access = levels
                    .as_ref()
                    .and_then(|l| l.of(name))
                    .unwrap_or(FieldAccess::Hidden);
                let value = match access {
                    FieldAccess::Hidden => None,
                    FieldAccess::Masked => {
                        Some(warden_policy::mask(value).map_or(Value::Null, Value::Text))
                    }
                    FieldAccess::Read | FieldAccess::Write => Some(value.clone()),
                };
                ProposedField {
                    field: name.clone(),
                    value,
                    access,
                }
            })
            .collect();
        Ok((fields, payload.input.owner))
    }

    async fn approval_view(
        &self,
        subject: &Subject,
        id: i64,
        with_events: bool,
    ) -> Result<ApprovalView> {
        let row = self
            .store
            .approval(id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        self.view_row(subject, &row, with_events).await
    }

    /// One request with its history: for its requester, its approvers, and overseers.
    pub async fn get_approval(&self, subject: &Subject, id: i64) -> Result<ApprovalView> {
        self.approval_view(subject, id, true).await
    }

    /// The requests the caller may see, in id order after `cursor`, by state and role.
    pub async fn list_approvals(
        &self,
        subject: &Subject,
        state: Option<&str>,
        role: ApprovalRole,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<ApprovalView>, Option<i64>)> {
        if let Some(state) = state {
            if ![PENDING, APPLIED, REJECTED, CONFLICT, EXPIRED, WITHDRAWN].contains(&state) {
                return Err(ServiceError::invalid(
                    "state",
                    "must be pending, applied, rejected, conflict, expired or withdrawn",
                ));
            }
        }
        if role == ApprovalRole::All && !Self::oversees(subject) {
            return Err(ServiceError::Forbidden(
                "listing every request needs the manage_roles or view_audit permission".into(),
            ));
        }
        if limit == 0 || limit > self.config.max_page_size {
            return Err(ServiceError::invalid(
                "limit",
                format!("must be between 1 and {}", self.config.max_page_size),
            ));
        }
        let mut items = Vec::new();
        let mut after = cursor;
        let mut scanned = 0u32;
        loop {
            let rows = self
                .store
                .approvals(&ApprovalListing {
                    state: state.map(str::to_owned),
                    requester: (role == ApprovalRole::Mine).then_some(subject.user),
                    after,
                    limit: 200,
                })
                .await?;
            let exhausted = rows.len() < 200;
            for row in &rows {
                after = Some(row.id);
                scanned += 1;
                let view = match self.view_row(subject, row, false).await {
                    Ok(view) => view,
                    Err(ServiceError::NotFound) => continue,
                    Err(other) => return Err(other),
                };
                let mine = subject.snapshot.same_person(subject.user, row.requester_id);
                let keep = match role {
                    ApprovalRole::All => true,
                    ApprovalRole::Mine => row.requester_id == subject.user,
                    ApprovalRole::Inbox => view.can_decide,
                    ApprovalRole::Involved => {
                        mine || view
                            .steps
                            .iter()
                            .any(|s| s.approvers.contains(&subject.username))
                    }
                };
                if keep {
                    items.push(view);
                    if items.len() == limit as usize {
                        return Ok((items, after));
                    }
                }
            }
            if exhausted {
                return Ok((items, None));
            }
            if scanned >= SCAN_LIMIT {
                return Ok((items, after));
            }
        }
    }

    /// How many requests wait for the caller's decision.
    pub async fn inbox_count(&self, subject: &Subject) -> Result<usize> {
        let (items, _) = self
            .list_approvals(
                subject,
                Some(PENDING),
                ApprovalRole::Inbox,
                None,
                self.config.max_page_size,
            )
            .await?;
        Ok(items.len())
    }

    /// Approves or rejects a pending request. The requester never may (by any account); an
    /// approver must be among a step's approvers now (for a record: allowed to read it and to
    /// `approve` on it). The last approval needed applies the change in the same transaction
    /// as the request's move to `applied`; if the record changed meanwhile, nothing is applied
    /// and the request ends in `conflict`.
    pub async fn decide_approval(
        &self,
        subject: &Subject,
        id: i64,
        approve: bool,
        comment: &str,
    ) -> Result<ApprovalView> {
        let comment = check_comment(comment)?;
        let snapshot = subject.snapshot.clone();
        let row = self
            .store
            .approval(id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let view = self.view_row(subject, &row, false).await?;
        if snapshot.same_person(subject.user, row.requester_id) {
            return Err(ServiceError::Forbidden(
                "you cannot decide your own request".into(),
            ));
        }
        if row.state != PENDING {
            return Err(ServiceError::Conflict(format!(
                "this request is already {}",
                row.state
            )));
        }
        if !view.can_decide {
            let approvers: Vec<&String> = view.steps.iter().flat_map(|s| &s.approvers).collect();
            return Err(if approvers.contains(&&subject.username) {
                ServiceError::Conflict("you have decided this request already".into())
            } else {
                ServiceError::Forbidden("you are not among the approvers of this request".into())
            });
        }
        let vote = ApprovalVote {
            person: snapshot.person_key(subject.user),
            user_id: subject.user,
            decision: if approve { "approve" } else { "reject" }.to_owned(),
            at: subject.now,
            comment: comment.clone(),
        };
        let actor = (Some(subject.user), subject.username.as_str());
        let mut tx = self.store.begin().await?;
        // The row lock (PostgreSQL) or the single writer (SQLite): deciders take turns here,
        // and each sees what the one before did. Everything below is decided on the locked row
        // (a sweep may have escalated it since it was first read).
        let locked = tx
            .approval_for_update(id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if locked.state != PENDING {
            return Err(ServiceError::Conflict(format!(
                "this request is already {}",
                locked.state
            )));
        }
        if locked.expires_at.is_some_and(|at| at <= subject.now) {
            return Err(ServiceError::Conflict(
                "this request's deadline has passed: it is being escalated or expired".into(),
            ));
        }
        let steps = steps_from_json(&locked.steps)?;
        let target = self.request_target(&snapshot, &locked).await?;
        let approvers =
            self.step_approvers(&snapshot, &locked, &steps, target.as_ref(), subject.now);
        if !approvers.iter().any(|a| a.contains(&subject.user)) {
            return Err(ServiceError::Forbidden(
                "you are not among the approvers of this request".into(),
            ));
        }
        tx.insert_approval_vote(id, &vote)
            .await
            .map_err(|e| match e {
                StoreError::Duplicate(_) => {
                    ServiceError::Conflict("you have decided this request already".into())
                }
                other => other.into(),
            })?;
        if !approve {
            move_or_conflict(&mut tx, &locked, REJECTED, &comment, subject.now).await?;
            let row = ApprovalRow {
                state: REJECTED.into(),
                ..locked
            };
            record_event(&mut tx, &row, "rejected", actor, &comment, subject.now).await?;
            tx.commit().await?;
            return self.approval_view(subject, id, true).await;
        }
        record_event(&mut tx, &locked, "approved", actor, &comment, subject.now).await?;
        let votes = tx.approval_votes_in_tx(id).await?;
        let complete = steps.iter().zip(&approvers).all(|(step, approvers)| {
            approvals_counted(&snapshot, approvers, &votes) >= step.policy.required as usize
        });
        if !complete {
            tx.commit().await?;
            return self.approval_view(subject, id, true).await;
        }
        match self.apply_request(&mut tx, subject, &locked).await {
            Ok(()) => {
                move_or_conflict(&mut tx, &locked, APPLIED, "", subject.now).await?;
                let row = ApprovalRow {
                    state: APPLIED.into(),
                    ..locked
                };
                record_event(&mut tx, &row, "applied", actor, "", subject.now).await?;
                tx.commit().await?;
            }
            Err(error) => {
                drop(tx);
                let reason = conflict_reason(&error)?;
                self.end_in_conflict(subject, &locked, &vote, &reason)
                    .await?;
            }
        }
        self.approval_view(subject, id, true).await
    }

    /// Applies a request's change in `tx`, re-checked as its requester on the current
    /// snapshot (someone who lost the right meanwhile has their change refused).
    async fn apply_request(
        &self,
        tx: &mut Tx,
        approver: &Subject,
        row: &ApprovalRow,
    ) -> Result<()> {
        match row.kind.as_str() {
            "record" => {
                let payload = parse_record_payload(&row.payload)?;
                let requester = self.subject_for(approver, row.requester_id, &row.requester)?;
                let planned = match payload.action {
                    Action::Create => {
                        self.plan_create(&requester, payload.object, &payload.input)
                            .await?
                    }
                    Action::Update => {
                        let id = payload.id.ok_or(ServiceError::NotFound)?;
                        self.plan_update(
                            &requester,
                            payload.object,
                            id,
                            payload.version,
                            &payload.input,
                        )
                        .await?
                    }
                    _ => {
                        let id = payload.id.ok_or(ServiceError::NotFound)?;
                        self.plan_delete(&requester, payload.object, id, payload.version)
                            .await?
                    }
                };
                apply_change(tx, &requester, planned.object, &planned.change).await?;
                Ok(())
            }
            _ => self.apply_organisation_change(tx, approver, row).await,
        }
    }

    /// The requester as a subject on the approver's snapshot and time.
    pub(crate) fn subject_for(
        &self,
        approver: &Subject,
        user: UserId,
        username: &str,
    ) -> Result<Subject> {
        let exists = approver.snapshot.user(user).is_some_and(|u| !u.disabled());
        if !exists {
            return Err(ServiceError::Forbidden(format!(
                "{username} is no longer an active user"
            )));
        }
        Ok(Subject {
            user,
            username: username.to_owned(),
            snapshot: approver.snapshot.clone(),
            now: approver.now,
            client: approver.client,
            session_hash: String::new(),
            mfa_pending: false,
            viewer: None,
        })
    }

    async fn end_in_conflict(
        &self,
        subject: &Subject,
        row: &ApprovalRow,
        vote: &ApprovalVote,
        reason: &str,
    ) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let locked = tx
            .approval_for_update(row.id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if locked.state != PENDING {
            return Err(ServiceError::Conflict(format!(
                "this request is already {}",
                locked.state
            )));
        }
        tx.insert_approval_vote(row.id, vote).await?;
        let actor = (Some(subject.user), subject.username.as_str());
        record_event(
            &mut tx,
            &locked,
            "approved",
            actor,
            &vote.comment,
            subject.now,
        )
        .await?;
        move_or_conflict(&mut tx, &locked, CONFLICT, reason, subject.now).await?;
        let ended = ApprovalRow {
            state: CONFLICT.into(),
            ..locked
        };
        record_event(&mut tx, &ended, "conflict", actor, reason, subject.now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Withdraws a pending request (its requester only).
    pub async fn withdraw_approval(
        &self,
        subject: &Subject,
        id: i64,
        comment: &str,
    ) -> Result<ApprovalView> {
        let comment = check_comment(comment)?;
        let row = self
            .store
            .approval(id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        self.view_row(subject, &row, false).await?;
        if row.requester_id != subject.user {
            return Err(ServiceError::Forbidden(
                "only the requester can withdraw a request".into(),
            ));
        }
        let mut tx = self.store.begin().await?;
        let locked = tx
            .approval_for_update(id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if !tx
            .move_approval(id, PENDING, WITHDRAWN, &comment, subject.now)
            .await?
        {
            return Err(ServiceError::Conflict(format!(
                "this request is already {}",
                locked.state
            )));
        }
        let ended = ApprovalRow {
            state: WITHDRAWN.into(),
            ..row
        };
        record_event(
            &mut tx,
            &ended,
            "withdrawn",
            (Some(subject.user), &subject.username),
            &comment,
            subject.now,
        )
        .await?;
        tx.commit().await?;
        self.approval_view(subject, id, true).await
    }

    /// Expires or escalates the pending requests whose deadline has passed at `now`: a step
    /// that escalates and whose requester has a further superior moves one level up with a new
    /// deadline; otherwise the request ends `expired`. Returns how many requests it touched.
    pub async fn sweep_approvals(&self, now: Timestamp) -> Result<usize> {
        let snapshot = self.current_snapshot().await?;
        let due = self.store.expired_approvals(now).await?;
        let mut touched = 0;
        for id in due {
            let mut tx = self.store.begin().await?;
            let Some(row) = tx.approval_for_update(id).await? else {
                continue;
            };
            if row.state != PENDING || row.expires_at.is_none_or(|at| at > now) {
                continue;
            }
            let mut steps = steps_from_json(&row.steps)?;
            let superiors = snapshot.managers_of(row.requester_id).len() as u32;
            // Only steps still short of their approvals move up: approvals given stay given.
            let votes = tx.approval_votes_in_tx(id).await?;
            let target = self.request_target(&snapshot, &row).await?;
            let approvers = self.step_approvers(&snapshot, &row, &steps, target.as_ref(), now);
            let short: Vec<bool> = steps
                .iter()
                .zip(&approvers)
                .map(|(step, a)| {
                    approvals_counted(&snapshot, a, &votes) < step.policy.required as usize
                })
                .collect();
            let mut escalated = false;
            for (step, _) in steps.iter_mut().zip(short).filter(|(_, short)| *short) {
                if let (true, warden_policy::Approvers::Superior { levels }) =
                    (step.policy.escalate, &step.policy.approvers)
                {
                    if levels + step.escalations < superiors {
                        step.escalations += 1;
                        escalated = true;
                    }
                }
            }
            let system = (None, "warden");
            if escalated {
                tx.escalate_approval(id, &steps_to_json(&steps), expiry(&steps, now), now)
                    .await?;
                record_event(
                    &mut tx,
                    &row,
                    "escalated",
                    system,
                    "the deadline passed",
                    now,
                )
                .await?;
            } else {
                tx.move_approval(id, PENDING, EXPIRED, "the deadline passed", now)
                    .await?;
                let ended = ApprovalRow {
                    state: EXPIRED.into(),
                    ..row
                };
                record_event(
                    &mut tx,
                    &ended,
                    "expired",
                    system,
                    "the deadline passed",
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            touched += 1;
        }
        Ok(touched)
    }
}

/// How many distinct people among `approvers` have approved.
fn approvals_counted(snapshot: &Snapshot, approvers: &[UserId], votes: &[ApprovalVote]) -> usize {
    let persons: Vec<String> = approvers.iter().map(|&a| snapshot.person_key(a)).collect();
    votes
        .iter()
        .filter(|v| v.decision == "approve" && persons.contains(&v.person))
        .count()
}

/// How many distinct people are among `users`.
fn distinct_people(snapshot: &Snapshot, users: &[UserId]) -> usize {
    let mut persons: Vec<String> = users.iter().map(|&u| snapshot.person_key(u)).collect();
    persons.sort();
    persons.dedup();
    persons.len()
}

/// Moves a locked pending request to `to`; a request no longer pending (which the lock makes
/// impossible, and which would otherwise go unnoticed) fails the transaction.
async fn move_or_conflict(
    tx: &mut Tx,
    row: &ApprovalRow,
    to: &str,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    if tx.move_approval(row.id, PENDING, to, reason, now).await? {
        Ok(())
    } else {
        Err(ServiceError::Conflict(
            "this request was decided by someone else at the same moment".into(),
        ))
    }
}

/// The earliest deadline of the steps that have one, from `now`.
fn expiry(steps: &[Step], now: Timestamp) -> Option<Timestamp> {
    steps
        .iter()
        .filter_map(|s| s.policy.expires_after_ms)
        .min()
        .map(|ms| now.saturating_add(ms))
}

/// Why an approved change could not be applied, in words for the request's record; an
/// internal failure stays an error.
fn conflict_reason(error: &ServiceError) -> Result<String> {
    Ok(match error {
        ServiceError::Conflict(_) => {
            "the record changed after the request was made; nothing was applied".to_owned()
        }
        ServiceError::NotFound => {
            "the record is gone, or the requester may no longer see it; nothing was applied"
                .to_owned()
        }
        ServiceError::Forbidden(m) | ServiceError::FieldForbidden { message: m, .. } => {
            format!("the requester may no longer make this change ({m}); nothing was applied")
        }
        ServiceError::Invalid { field, message } => {
            format!("the change is no longer valid ({field}: {message}); nothing was applied")
        }
        other => return Err(ServiceError::Internal(other.to_string())),
    })
}
