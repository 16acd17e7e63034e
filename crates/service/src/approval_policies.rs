//! Administration of approval policies and of the four-eyes setting (needs `manage_roles`):
//! names in, ids stored, every change through [`OrgChange`] so that four eyes covers it.

use warden_policy::{Action, ApprovalPolicy, Approvers, Criteria, ObjectType, Requesters};

use crate::approvals::Outcome;
use crate::four_eyes::{Created, OrgChange};
use crate::{Result, ServiceError, Subject, Warden};

/// Whose changes a policy catches, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RequestersInput {
    #[default]
    Anyone,
    Role(String),
    Unit(String),
}

/// Who approves, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproversInput {
    Superior(u32),
    Role(String),
    Users(Vec<String>),
}

/// A policy as the admin API takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalPolicyInput {
    pub name: String,
    pub object: ObjectType,
    pub operations: Vec<Action>,
    pub fields: Vec<String>,
    pub when: Option<Criteria>,
    pub requesters: RequestersInput,
    pub approvers: ApproversInput,
    pub required: u32,
    pub expires_after_hours: Option<u32>,
    pub escalate: bool,
}

/// A policy as the admin API shows it (names resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalPolicyView {
    pub id: i64,
    pub version: i64,
    pub input: ApprovalPolicyInput,
}

impl Warden {
    /// Checks a policy and resolves its names on the subject's snapshot.
    pub(crate) fn resolve_policy(
        subject: &Subject,
        id: i64,
        input: &ApprovalPolicyInput,
    ) -> Result<ApprovalPolicy> {
        let snapshot = &subject.snapshot;
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ServiceError::invalid("name", "must be 1 to 100 characters"));
        }
        if input.operations.is_empty() {
            return Err(ServiceError::invalid(
                "operations",
                "name at least one of create, update, delete",
            ));
        }
        if let Some(op) = input
            .operations
            .iter()
            .find(|a| !matches!(a, Action::Create | Action::Update | Action::Delete))
        {
            return Err(ServiceError::invalid(
                "operations",
                format!("`{op}` cannot wait for approval (only create, update and delete)"),
            ));
        }
        let schema = warden_policy::schema::schema(input.object);
        let named = input
            .fields
            .iter()
            .map(String::as_str)
            .chain(input.when.iter().flat_map(|c| c.fields()));
        for field in named {
            if schema.field(field).is_none() {
                return Err(ServiceError::invalid(
                    "fields",
                    format!("`{field}` is not a field of {}", input.object),
                ));
            }
        }
        let role = |name: &str, field: &str| {
            snapshot
                .role_by_name(name)
                .ok_or_else(|| ServiceError::invalid(field, format!("no role named `{name}`")))
        };
        let requesters = match &input.requesters {
            RequestersInput::Anyone => Requesters::Anyone,
            RequestersInput::Role(name) => Requesters::Role(role(name, "requesters")?),
            RequestersInput::Unit(name) => {
                Requesters::Unit(snapshot.unit_by_name(name).ok_or_else(|| {
                    ServiceError::invalid("requesters", format!("no unit named `{name}`"))
                })?)
            }
        };
        let approvers = match &input.approvers {
            ApproversInput::Superior(levels) if (1..=16).contains(levels) => {
                Approvers::Superior { levels: *levels }
            }
            ApproversInput::Superior(_) => {
                return Err(ServiceError::invalid(
                    "approvers",
                    "superior takes 1 to 16 levels",
                ))
            }
            ApproversInput::Role(name) => Approvers::Role(role(name, "approvers")?),
            ApproversInput::Users(names) => Approvers::Users(
                names
                    .iter()
                    .map(|n| {
                        snapshot.user_by_name(n).map(|u| u.id()).ok_or_else(|| {
                            ServiceError::invalid("approvers", format!("no user named `{n}`"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        if input.required == 0 || input.required > 100 {
            return Err(ServiceError::invalid(
                "required",
                "must be between 1 and 100",
            ));
        }
        if let Approvers::Users(users) = &approvers {
            if (input.required as usize) > users.len() {
                return Err(ServiceError::invalid(
                    "required",
                    format!(
                        "needs {} approvals but names only {} approvers",
                        input.required,
                        users.len()
                    ),
                ));
            }
        }
        if input.expires_after_hours == Some(0) {
            return Err(ServiceError::invalid(
                "expires_after_hours",
                "must be at least 1",
            ));
        }
        Ok(ApprovalPolicy {
            id,
            name: name.to_owned(),
            object: input.object,
            operations: input.operations.clone(),
            fields: input.fields.clone(),
            when: input.when.clone(),
            requesters,
            approvers,
            required: input.required,
            expires_after_ms: input.expires_after_hours.map(|h| i64::from(h) * 3_600_000),
            escalate: input.escalate,
        })
    }

    fn policy_view(subject: &Subject, policy: &ApprovalPolicy, version: i64) -> ApprovalPolicyView {
        let snapshot = &subject.snapshot;
        let role = |id| snapshot.role_name(id).unwrap_or_default().to_owned();
        ApprovalPolicyView {
            id: policy.id,
            version,
            input: ApprovalPolicyInput {
                name: policy.name.clone(),
                object: policy.object,
                operations: policy.operations.clone(),
                fields: policy.fields.clone(),
                when: policy.when.clone(),
                requesters: match policy.requesters {
                    Requesters::Anyone => RequestersInput::Anyone,
                    Requesters::Role(r) => RequestersInput::Role(role(r)),
                    Requesters::Unit(u) => {
                        RequestersInput::Unit(snapshot.unit_name(u).unwrap_or_default().to_owned())
                    }
                },
                approvers: match &policy.approvers {
                    Approvers::Superior { levels } => ApproversInput::Superior(*levels),
                    Approvers::Role(r) => ApproversInput::Role(role(*r)),
                    Approvers::Users(users) => ApproversInput::Users(
                        users
                            .iter()
                            .filter_map(|u| snapshot.user(*u).map(|u| u.username().to_owned()))
                            .collect(),
                    ),
                    Approvers::Permission(p) => ApproversInput::Role(format!("holders of {p}")),
                },
                required: policy.required,
                expires_after_hours: policy
                    .expires_after_ms
                    .map(|ms| u32::try_from(ms / 3_600_000).unwrap_or(u32::MAX)),
                escalate: policy.escalate,
            },
        }
    }

    /// Every approval policy (any authenticated user may read them: people should know which
    /// of their changes will wait, and for whom).
    pub async fn list_approval_policies(
        &self,
        subject: &Subject,
    ) -> Result<Vec<ApprovalPolicyView>> {
        Ok(self
            .store
            .approval_policies()
            .await?
            .iter()
            .map(|row| Self::policy_view(subject, &row.policy, row.version))
            .collect())
    }

    async fn approval_policy(&self, subject: &Subject, id: i64) -> Result<ApprovalPolicyView> {
        self.list_approval_policies(subject)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or(ServiceError::NotFound)
    }

    /// Creates a policy (needs `manage_roles`; waits for a second administrator under four eyes).
    pub async fn create_approval_policy(
        &self,
        subject: &Subject,
        input: ApprovalPolicyInput,
    ) -> Result<Outcome<ApprovalPolicyView>> {
        let policy = Self::resolve_policy(subject, 0, &input)?;
        match self
            .submit_org_change(subject, OrgChange::CreatePolicy(policy))
            .await?
        {
            Outcome::Done(Created::Policy(id)) => {
                let subject = self.refreshed(subject).await?;
                Ok(Outcome::Done(self.approval_policy(&subject, id).await?))
            }
            Outcome::Done(_) => Err(ServiceError::Internal("no policy created".into())),
            Outcome::Pending(view) => Ok(Outcome::Pending(view)),
        }
    }

    /// Replaces a policy (only at `version`, when given).
    pub async fn update_approval_policy(
        &self,
        subject: &Subject,
        id: i64,
        version: Option<i64>,
        input: ApprovalPolicyInput,
    ) -> Result<Outcome<ApprovalPolicyView>> {
        subject.require(warden_policy::Permission::ManageRoles)?;
        let current = self.approval_policy(subject, id).await?;
        if version.is_some_and(|v| v != current.version) {
            return Err(ServiceError::Conflict(
                "the policy was changed by someone else; read it again".into(),
            ));
        }
        let policy = Self::resolve_policy(subject, id, &input)?;
        match self
            .submit_org_change(
                subject,
                OrgChange::UpdatePolicy {
                    policy,
                    version: Some(current.version),
                },
            )
            .await?
        {
            Outcome::Done(_) => {
                let subject = self.refreshed(subject).await?;
                Ok(Outcome::Done(self.approval_policy(&subject, id).await?))
            }
            Outcome::Pending(view) => Ok(Outcome::Pending(view)),
        }
    }

    /// Deletes a policy. Requests it caught already keep their steps.
    pub async fn delete_approval_policy(&self, subject: &Subject, id: i64) -> Result<Outcome<()>> {
        subject.require(warden_policy::Permission::ManageRoles)?;
        self.approval_policy(subject, id).await?;
        Ok(
            match self
                .submit_org_change(subject, OrgChange::DeletePolicy(id))
                .await?
            {
                Outcome::Done(_) => Outcome::Done(()),
                Outcome::Pending(view) => Outcome::Pending(view),
            },
        )
    }

    /// Whether four eyes is on.
    pub fn four_eyes(&self, subject: &Subject) -> bool {
        subject.snapshot.four_eyes()
    }

    /// Turns four eyes on (at once) or off (under four eyes, that waits for a second
    /// administrator too).
    pub async fn set_four_eyes(&self, subject: &Subject, on: bool) -> Result<Outcome<bool>> {
        Ok(
            match self
                .submit_org_change(subject, OrgChange::SetFourEyes(on))
                .await?
            {
                Outcome::Done(_) => Outcome::Done(on),
                Outcome::Pending(view) => Outcome::Pending(view),
            },
        )
    }

    /// The subject on the snapshot of the current epoch (after a change it made).
    pub(crate) async fn refreshed(&self, subject: &Subject) -> Result<Subject> {
        let snapshot = self.current_snapshot().await?;
        Ok(Subject {
            snapshot,
            ..subject.clone()
        })
    }
}
