//! The dashboard at `/`: small server-rendered charts (inline SVG) of the customers the caller
//! may see per unit, the approvals waiting, and dormant role assignments (for those who may
//! read the reviews' reports).

use askama::Template;
use axum::extract::State;
use warden_policy::Permission;
use warden_service::{ApprovalRole, PENDING};

use super::{render, Console, Nav, PageResult};
use crate::AppState;

/// Width of the bars' area in SVG units.
const BAR_SPACE: u64 = 160;
/// Height of one bar's row.
const ROW: usize = 26;
/// How many days without use make a role assignment dormant on the dashboard.
const DORMANT_DAYS: u32 = 90;

/// One bar of a horizontal bar chart, laid out here so the template only places it.
pub(crate) struct Bar {
    label: String,
    value: u64,
    width: u64,
    y: usize,
    text_y: usize,
}

pub(crate) struct Chart {
    bars: Vec<Bar>,
    height: usize,
}

fn chart(values: Vec<(String, u64)>) -> Chart {
    let max = values.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let bars: Vec<Bar> = values
        .into_iter()
        .enumerate()
        .map(|(index, (label, value))| Bar {
            width: (value * BAR_SPACE / max).max(u64::from(value > 0)),
            label,
            value,
            y: index * ROW,
            text_y: index * ROW + 16,
        })
        .collect();
    Chart {
        height: (bars.len() * ROW).max(ROW),
        bars,
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    visible_total: u64,
    per_unit: Chart,
    approvals: Chart,
    /// Shown to holders of view_audit or manage_users (the report's permission).
    dormant: Option<Chart>,
    dormant_total: usize,
    dormant_days: u32,
}

/// `GET /`.
pub(super) async fn page(State(state): State<AppState>, console: Console) -> PageResult {
    let subject = &console.subject;
    let per_unit = state.warden.visible_customers_per_unit(subject).await?;
    let inbox = state.warden.inbox_count(subject).await?;
    let (mine, _) = state
        .warden
        .list_approvals(subject, Some(PENDING), ApprovalRole::Mine, None, 200)
        .await?;
    let reports = subject.can(Permission::ViewAudit) || subject.can(Permission::ManageUsers);
    let (dormant, dormant_total) = if reports {
        let grants = state
            .warden
            .dormant_permissions(subject, DORMANT_DAYS)
            .await?;
        let mut per_role: Vec<(String, u64)> = Vec::new();
        for grant in &grants {
            match per_role.iter_mut().find(|(role, _)| *role == grant.role) {
                Some((_, n)) => *n += 1,
                None => per_role.push((grant.role.clone(), 1)),
            }
        }
        per_role.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        (Some(chart(per_role)), grants.len())
    } else {
        (None, 0)
    };
    render(&DashboardPage {
        nav: console.nav("dashboard"),
        visible_total: per_unit.iter().map(|c| c.customers).sum(),
        per_unit: chart(
            per_unit
                .into_iter()
                .map(|c| (c.unit, c.customers))
                .collect(),
        ),
        approvals: chart(vec![
            ("waiting for you".to_owned(), inbox as u64),
            ("your requests pending".to_owned(), mine.len() as u64),
        ]),
        dormant,
        dormant_total,
        dormant_days: DORMANT_DAYS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_a_small_value_stays_visible() {
        let c = chart(vec![("a".into(), 1000), ("b".into(), 1), ("c".into(), 0)]);
        let widths: Vec<u64> = c.bars.iter().map(|b| b.width).collect();
        assert_eq!(widths, vec![BAR_SPACE, 1, 0]);
        assert_eq!(c.height, 3 * ROW);
        assert_eq!(chart(Vec::new()).height, ROW);
    }
}
