//! The same rules in casbin (`casbin` 2, the Rust port): one `Enforcer` with an RBAC model
//! whose role graph is split into domains.
//!
//! # Encoding
//!
//! - Request `(sub, subunit, obj, act, owner, unit)`: the user, the user's unit, the object,
//!   the action, and the record's owner and unit. The caller passes the user's unit (casbin
//!   has no entity attributes); it is looked up in an array, outside casbin.
//! - Policy rows `p, role:<id>, customers, <action>, <scope>`: one per grant.
//! - One role graph `g = _, _, _` in four domains. casbin-rs shares one role graph between `g`
//!   and `g2`, so an Administrator role given through `g2` would be inherited down the
//!   reporting line; domains keep the graphs apart:
//!   - `roles`: `user -> role:<id>` (role assignments);
//!   - `line`: `user -> manager` (`g(owner, sub, "line")`: the owner is me or below me);
//!   - `lead`: `user -> lead_of:<manager>` (direct reports only, for `subordinates` depth 1);
//!   - `units`: `unit -> parent unit` (`g(unit, subunit, "units")`: my unit or below it).
//! - Disabled users and expired role assignments are not supported by this encoding (casbin
//!   has no clock and no user attributes); the benchmark world has neither, and the encoder
//!   refuses a model that has them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use anyhow::{anyhow, bail, Result};
use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
use warden_policy::{Action, Model, ObjectType, Scope, UnitId};

/// The casbin model (`.conf`).
pub const MODEL: &str = r#"
[request_definition]
r = sub, subunit, obj, act, owner, unit

[policy_definition]
p = sub, obj, act, scope

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.obj == p.obj && r.act == p.act && g(r.sub, p.sub, "roles") && (p.scope == "all" || (p.scope == "own" && r.owner == r.sub) || (p.scope == "subordinates" && g(r.owner, r.sub, "line")) || (p.scope == "direct_reports" && (r.owner == r.sub || g(r.owner, "lead_of:" + r.sub, "lead"))) || (p.scope == "unit" && r.unit == r.subunit) || (p.scope == "unit_tree" && g(r.unit, r.subunit, "units")))
"#;

/// casbin's state for one model, built once.
pub struct CasbinPeer {
    enforcer: Enforcer,
    /// Names of users, their units' names, and names of units, by position in the model.
    users: Vec<String>,
    user_units: Vec<usize>,
    units: Vec<String>,
    pub policy_rows: usize,
    pub grouping_rows: usize,
}

/// Runs a future that never waits on IO to completion. casbin's setup is `async` but, with a
/// model and policies given as strings, never suspends; no runtime is needed.
fn run_to_completion<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::yield_now();
    }
}

fn scope_name(scope: Scope) -> Result<&'static str> {
    Ok(match scope {
        Scope::All => "all",
        Scope::Own | Scope::Subordinates { depth: Some(0) } => "own",
        Scope::Subordinates { depth: None } => "subordinates",
        Scope::Subordinates { depth: Some(1) } => "direct_reports",
        Scope::Subordinates { depth: Some(d) } => {
            bail!("casbin encoding: subordinates to depth {d} is not supported")
        }
        Scope::Unit => "unit",
        Scope::UnitTree => "unit_tree",
        Scope::Account => bail!("casbin encoding: portal account scopes are not encoded"),
    })
}

/// The policy rows (`p` and `g` lines) encoding `model`.
pub fn policy_text(model: &Model) -> Result<(String, usize, usize)> {
    let mut text = String::new();
    let (mut p_rows, mut g_rows) = (0, 0);
    for role in &model.roles {
        for grant in role
            .grants
            .iter()
            .filter(|g| g.object == ObjectType::Customers)
        {
            let _ = writeln!(
                text,
                "p, role:{}, customers, {}, {}",
                role.id.0,
                grant.action,
                scope_name(grant.scope)?
            );
            p_rows += 1;
        }
    }
    let uses_lead = model.roles.iter().any(|r| {
        r.grants
            .iter()
            .any(|g| g.scope == Scope::Subordinates { depth: Some(1) })
    });
    for user in &model.users {
        if user.disabled {
            bail!(
                "casbin encoding: disabled users are not supported (user {:?})",
                user.id
            );
        }
        for assignment in &user.roles {
            if assignment.expires_at.is_some() {
                bail!(
                    "casbin encoding: expiring roles are not supported (user {:?})",
                    user.id
                );
            }
            let _ = writeln!(text, "g, u{}, role:{}, roles", user.id.0, assignment.role.0);
            g_rows += 1;
        }
        if let Some(manager) = user.manager {
            let _ = writeln!(text, "g, u{}, u{}, line", user.id.0, manager.0);
            g_rows += 1;
            if uses_lead {
                let _ = writeln!(text, "g, u{}, lead_of:u{}, lead", user.id.0, manager.0);
                g_rows += 1;
            }
        }
    }
    for unit in &model.units {
        if let Some(parent) = unit.parent {
            let _ = writeln!(text, "g, unit:{}, unit:{}, units", unit.id.0, parent.0);
            g_rows += 1;
        }
    }
    Ok((text, p_rows, g_rows))
}

impl CasbinPeer {
    /// Builds the enforcer from the model text and the policy rows.
    pub fn build(model: &Model) -> Result<CasbinPeer> {
        let (text, policy_rows, grouping_rows) = policy_text(model)?;
        let enforcer = run_to_completion(async {
            let casbin_model = DefaultModel::from_str(MODEL).await?;
            Enforcer::new(casbin_model, StringAdapter::new(text)).await
        })
        .map_err(|e| anyhow!("casbin: {e}"))?;
        let unit_position: HashMap<UnitId, usize> = model
            .units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id, i))
            .collect();
        let user_units = model
            .users
            .iter()
            .map(|u| {
                unit_position
                    .get(&u.unit)
                    .copied()
                    .ok_or_else(|| anyhow!("unknown unit {:?}", u.unit))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CasbinPeer {
            enforcer,
            users: model.users.iter().map(|u| format!("u{}", u.id.0)).collect(),
            user_units,
            units: model
                .units
                .iter()
                .map(|u| format!("unit:{}", u.id.0))
                .collect(),
            policy_rows,
            grouping_rows,
        })
    }

    /// casbin's decision for `user` doing `action` on a customer owned by `owner` in `unit`
    /// (positions in the model).
    #[inline]
    pub fn is_allowed(
        &self,
        user: usize,
        action: Action,
        owner: usize,
        unit: usize,
    ) -> Result<bool> {
        self.enforcer
            .enforce((
                self.users[user].as_str(),
                self.units[self.user_units[user]].as_str(),
                "customers",
                action.as_str(),
                self.users[owner].as_str(),
                self.units[unit].as_str(),
            ))
            .map_err(|e| anyhow!("casbin: {e}"))
    }
}
