//! What-if on the seeded world: each kind of proposed change the API takes is computed by
//! `Warden::what_if` (as `POST /api/v1/access/whatif` calls it), timed over a few runs, and
//! summarised (users examined and changed, records gained and lost, differences counted in
//! SQL). Nothing is applied: the world is left as it was for the HTTP phase.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{anyhow, Result};
use warden_policy::schema::Value;
use warden_policy::{
    Action, CompareOp, Criteria, Grant, ObjectType, RoleId, Scope, ShareAccess, UserId,
};
use warden_service::{
    AudienceInput, PrincipalName, RestrictionRuleInput, RoleInput, RuleSourceInput,
    SharingRuleInput, Warden, WhatIfChange, WhatIfReport,
};

use crate::report::{StoreFigures, WhatIfFigures};
use crate::store_bench::{ms, percentile, round, subject};
use crate::world::{roles, World};

/// What the what-if runs need of the seeded world.
pub struct Setting<'a> {
    pub world: &'a World,
    pub warden: &'a Warden,
    /// Who asks (the world's Administrator, who holds every permission).
    pub admin: Option<UserId>,
    /// A sales rep's username (given a second role).
    pub rep: Option<String>,
    /// The manager persona (dense index): their unit receives the share and the rule.
    pub manager: Option<usize>,
    pub roles: &'a [RoleId],
    pub customers: &'a [i64],
    pub runs: usize,
}

impl Setting<'_> {
    fn role_name(&self, role: i64) -> Option<&str> {
        self.world
            .model
            .roles
            .iter()
            .find(|r| r.id == RoleId(role))
            .map(|r| r.name.as_str())
    }

    /// The manager persona's unit, by name.
    fn manager_unit(&self) -> Option<String> {
        let manager = self.manager?;
        let unit = self.world.model.users[manager].unit;
        self.world
            .model
            .units
            .iter()
            .find(|u| u.id == unit)
            .map(|u| u.name.clone())
    }

    /// The change of each kind that this world allows, in the order they are reported.
    async fn proposals(
        &self,
        figures: &StoreFigures,
    ) -> Result<Vec<(&'static str, String, WhatIfChange)>> {
        let mut out = Vec::new();
        if let (Some(user), Some(boss)) =
            (&figures.move_manager_user, &figures.move_manager_new_boss)
        {
            out.push((
                "move_user",
                format!("{user} (the moved manager) under {boss}"),
                WhatIfChange::MoveUser {
                    user: user.clone(),
                    manager: Some(Some(boss.clone())),
                    unit: None,
                },
            ));
        }
        let rep_role = self
            .world
            .model
            .roles
            .iter()
            .position(|r| r.id == RoleId(roles::SALES_REP));
        if let Some(index) = rep_role {
            let id = self.roles[index];
            let model = self.warden.store().load_model().await?;
            let stored = model
                .roles
                .iter()
                .find(|r| r.id == id)
                .ok_or_else(|| anyhow!("the Sales Rep role is not stored"))?;
            let mut grants = stored.grants.clone();
            grants.push(Grant {
                object: ObjectType::Customers,
                action: Action::Read,
                scope: Scope::Unit,
            });
            out.push((
                "update_role",
                "Sales Rep also reads its unit's customers".to_owned(),
                WhatIfChange::UpdateRole {
                    id,
                    version: None,
                    input: RoleInput {
                        name: stored.name.clone(),
                        description: String::new(),
                        grants,
                        permissions: stored.permissions.clone(),
                        fields: stored.fields.clone(),
                    },
                },
            ));
        }
        if let (Some(rep), Some(sales_rep), Some(director)) = (
            &self.rep,
            self.role_name(roles::SALES_REP),
            self.role_name(roles::REGIONAL_DIRECTOR),
        ) {
            out.push((
                "set_roles",
                format!("{rep} becomes Sales Rep and Regional Director"),
                WhatIfChange::SetRoles {
                    user: rep.clone(),
                    roles: vec![(sales_rep.to_owned(), None), (director.to_owned(), None)],
                },
            ));
        }
        if let (Some(unit), Some(&customer)) = (self.manager_unit(), self.customers.first()) {
            out.push((
                "share_record",
                format!("customer {customer} shared with {unit} (read)"),
                WhatIfChange::ShareRecord {
                    object: ObjectType::Customers,
                    id: customer,
                    with: PrincipalName::Unit(unit.clone()),
                    access: ShareAccess::Read,
                },
            ));
            out.push((
                "put_sharing_rule",
                format!("customers with region East shared with {unit} (read)"),
                WhatIfChange::PutSharingRule {
                    id: None,
                    input: SharingRuleInput {
                        name: "bench: East to one unit".to_owned(),
                        object: ObjectType::Customers,
                        source: RuleSourceInput::When(Criteria::Compare {
                            field: "region".to_owned(),
                            op: CompareOp::Eq,
                            value: Value::Text("East".to_owned()),
                        }),
                        share_with: PrincipalName::Unit(unit),
                        access: ShareAccess::Read,
                    },
                },
            ));
        }
        if let Some(assistant) = self.role_name(roles::BRANCH_ASSISTANT) {
            out.push((
                "put_restriction_rule",
                "Branch Assistants see only active customers".to_owned(),
                WhatIfChange::PutRestrictionRule {
                    id: None,
                    input: RestrictionRuleInput {
                        name: "bench: assistants see active customers".to_owned(),
                        object: ObjectType::Customers,
                        applies_to: AudienceInput::Role(assistant.to_owned()),
                        actions: Vec::new(),
                        only: Criteria::Compare {
                            field: "status".to_owned(),
                            op: CompareOp::Eq,
                            value: Value::Text("active".to_owned()),
                        },
                    },
                },
            ));
        }
        Ok(out)
    }
}

/// Times every kind of what-if the world allows; fills `figures.whatif`.
pub async fn measure(setting: &Setting<'_>, figures: &mut StoreFigures) -> Result<()> {
    let Some(admin) = setting.admin else {
        eprintln!("no administrator in this world: what-if is not measured");
        return Ok(());
    };
    let proposals = setting.proposals(figures).await?;
    eprintln!(
        "what-if: {} kinds of change, {} runs each…",
        proposals.len(),
        setting.runs
    );
    for (kind, proposal, change) in proposals {
        let subject = subject(setting.warden, admin).await?;
        let mut times = Vec::with_capacity(setting.runs);
        let mut last: Option<WhatIfReport> = None;
        for _ in 0..setting.runs.max(1) {
            let started = Instant::now();
            let report = setting.warden.what_if(&subject, &change).await?;
            times.push(ms(started.elapsed()));
            if let Some(previous) = &last {
                anyhow::ensure!(
                    *previous == report,
                    "what-if {kind} gave two different answers on an unchanged world"
                );
            }
            last = Some(report);
        }
        let report = last.ok_or_else(|| anyhow!("no what-if run"))?;
        times.sort_by(f64::total_cmp);
        let users_changed: BTreeSet<&str> =
            report.changes.iter().map(|c| c.user.as_str()).collect();
        let figure = WhatIfFigures {
            kind,
            proposal,
            ms_p50: round(percentile(&times, 50.0), 2),
            ms_max: round(times.last().copied().unwrap_or_default(), 2),
            runs: times.len(),
            users_examined: report.users_examined,
            users_changed: users_changed.len(),
            gained: report.changes.iter().map(|c| c.gained).sum(),
            lost: report.changes.iter().map(|c| c.lost).sum(),
            counted_in_sql: report.counted_in_sql,
        };
        eprintln!(
            "  {kind}: {:.1} ms; {} examined, {} changed, +{} / -{}, {} counted in SQL",
            figure.ms_p50,
            figure.users_examined,
            figure.users_changed,
            figure.gained,
            figure.lost,
            figure.counted_in_sql
        );
        figures.whatif.push(figure);
    }
    Ok(())
}
