//! Approval deadlines with time passed in: a rep's delete left undecided escalates one superior
//! up each time its deadline passes (supervisor1 → manager → admin), then expires; the
//! webhook outbox holds one delivery per step; an escalated-away approver can no longer decide.
//! Access reviews past their due date close by themselves.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::net::{IpAddr, Ipv4Addr};

use warden_policy::ObjectType;
use warden_service::store::keys::MasterKey;
use warden_service::store::Store;
use warden_service::{demo, Config, LoginRequest, Outcome, ServiceError, Subject, Warden};

const T0: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;
const PASSWORD: &str = "approvals test password";
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn subject(warden: &Warden, username: &str, now: i64) -> Subject {
    let login = warden
        .login(
            &LoginRequest {
                username: username.into(),
                password: PASSWORD.into(),
                totp: None,
                recovery_code: None,
            },
            CLIENT,
            now,
        )
        .await
        .unwrap();
    warden
        .authenticate(&login.token, CLIENT, now)
        .await
        .unwrap()
}

#[tokio::test]
async fn undecided_deletes_escalate_up_the_reporting_line_then_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_dir(dir.path(), &MasterKey::generate())
        .await
        .unwrap();
    demo::seed(&store, 40, PASSWORD, T0).await.unwrap();
    let warden = Warden::new(store, Config::default()).await.unwrap();

    let rep1 = subject(&warden, "rep1", T0).await;
    let page = warden
        .list_records(&rep1, ObjectType::Customers, None, Some(5))
        .await
        .unwrap();
    let customer = page.items[0].record.id;
    let approval = match warden
        .delete_record(&rep1, ObjectType::Customers, customer, None)
        .await
        .unwrap()
    {
        Outcome::Pending(approval) => approval,
        Outcome::Done(()) => panic!("a rep's delete must wait"),
    };
    assert_eq!(approval.steps[0].approvers, vec!["supervisor1"]);
    // The demo policy's deadline: three days.
    assert_eq!(approval.expires_at, Some(T0 + 72 * HOUR));

    // Before the deadline nothing moves.
    assert_eq!(warden.sweep_approvals(T0 + 71 * HOUR).await.unwrap(), 0);
    // After it: one level up, to the manager, with a new deadline.
    let t1 = T0 + 73 * HOUR;
    assert_eq!(warden.sweep_approvals(t1).await.unwrap(), 1);
    let manager = subject(&warden, "manager", t1).await;
    let view = warden.get_approval(&manager, approval.id).await.unwrap();
    assert_eq!(view.state, "pending");
    assert_eq!(view.steps[0].approvers, vec!["manager"]);
    assert_eq!(view.steps[0].escalations, 1);
    assert_eq!(view.expires_at, Some(t1 + 72 * HOUR));
    assert!(view.can_decide);
    // supervisor1 was escalated away: the request is no longer theirs to see or decide.
    let supervisor1 = subject(&warden, "supervisor1", t1).await;
    assert!(matches!(
        warden
            .decide_approval(&supervisor1, approval.id, true, "")
            .await,
        Err(ServiceError::NotFound)
    ));

    // Again: to the administrator (the manager's superior).
    let t2 = t1 + 73 * HOUR;
    assert_eq!(warden.sweep_approvals(t2).await.unwrap(), 1);
    let admin = subject(&warden, "admin", t2).await;
    let view = warden.get_approval(&admin, approval.id).await.unwrap();
    assert_eq!(view.steps[0].approvers, vec!["admin"]);
    // Nobody above the administrator: the next deadline ends it.
    let t3 = t2 + 73 * HOUR;
    assert_eq!(warden.sweep_approvals(t3).await.unwrap(), 1);
    let rep1 = subject(&warden, "rep1", t3).await;
    let view = warden.get_approval(&rep1, approval.id).await.unwrap();
    assert_eq!(view.state, "expired");
    let events: Vec<&str> = view.events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        events,
        ["requested", "escalated", "escalated", "expired"],
        "{view:?}"
    );
    // Expired: nothing applied, and nobody can decide it any more.
    assert!(warden
        .get_record(&rep1, ObjectType::Customers, customer)
        .await
        .is_ok());
    let admin = subject(&warden, "admin", t3).await;
    assert!(matches!(
        warden.decide_approval(&admin, approval.id, true, "").await,
        Err(ServiceError::Conflict(_) | ServiceError::NotFound)
    ));
    // Every step went to the webhook outbox, in the transaction that made it.
    let outbox = warden.store().due_webhooks(t3, 100).await.unwrap();
    let announced: Vec<String> = outbox
        .iter()
        .map(|d| {
            let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
            body["event"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        announced,
        [
            "approval.requested",
            "approval.escalated",
            "approval.escalated",
            "approval.expired"
        ]
    );
    // The outbox carries identifiers, never a customer's field values.
    let name = page.items[0].record.values[0].clone();
    if let warden_policy::schema::Value::Text(name) = name {
        assert!(outbox.iter().all(|d| !d.body.contains(&name)));
    }
}

#[tokio::test]
async fn a_request_nobody_can_approve_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_dir(dir.path(), &MasterKey::generate())
        .await
        .unwrap();
    demo::seed(&store, 10, PASSWORD, T0).await.unwrap();
    let warden = Warden::new(store, Config::default()).await.unwrap();
    // rep1 loses their superior: their deletes would wait for nobody.
    let admin = subject(&warden, "admin", T0).await;
    let moved = warden
        .update_user(
            &admin,
            "rep1",
            warden_service::UserUpdate {
                manager: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(moved, Outcome::Done(_)), "a move is not held");
    let rep1 = subject(&warden, "rep1", T0 + 1).await;
    let page = warden
        .list_records(&rep1, ObjectType::Customers, None, Some(1))
        .await
        .unwrap();
    let refused = warden
        .delete_record(&rep1, ObjectType::Customers, page.items[0].record.id, None)
        .await;
    match refused {
        Err(ServiceError::Conflict(message)) => {
            assert!(
                message.contains("Rep deletes wait for their superior"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// An access review left undecided past its due date closes by itself with the campaign's
/// rule: here "revoke", so rep2 loses the Sales Rep role and with it their customers, on the
/// very next request; a decision to keep is honoured.
#[tokio::test]
async fn an_undecided_review_closes_at_its_due_date() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_dir(dir.path(), &MasterKey::generate())
        .await
        .unwrap();
    demo::seed(&store, 20, PASSWORD, T0).await.unwrap();
    let warden = Warden::new(store, Config::default()).await.unwrap();
    let admin = subject(&warden, "admin", T0).await;
    let campaign = warden
        .open_campaign(
            &admin,
            warden_service::CampaignInput {
                name: "Sales reps, quarterly".into(),
                scope: warden_service::ReviewScope::Role("Sales Rep".into()),
                due_at: T0 + 24 * HOUR,
                revoke_undecided: true,
            },
        )
        .await
        .unwrap();
    // supervisor1 keeps rep1; rep2 is left undecided.
    let supervisor1 = subject(&warden, "supervisor1", T0).await;
    let rep1_item = campaign
        .items
        .iter()
        .find(|i| i.user == supervisor1.snapshot.user_by_name("rep1").unwrap().id())
        .unwrap()
        .id;
    warden
        .decide_review_item(
            &supervisor1,
            campaign.campaign.id,
            rep1_item,
            false,
            "still selling",
        )
        .await
        .unwrap();
    assert_eq!(warden.close_due_campaigns(T0 + 23 * HOUR).await.unwrap(), 0);
    let rep2 = subject(&warden, "rep2", T0 + 23 * HOUR).await;
    assert!(!warden
        .list_records(&rep2, ObjectType::Customers, None, Some(5))
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(warden.close_due_campaigns(T0 + 25 * HOUR).await.unwrap(), 1);
    // Closed once: the next sweep finds nothing.
    assert_eq!(warden.close_due_campaigns(T0 + 26 * HOUR).await.unwrap(), 0);
    let rep2 = subject(&warden, "rep2", T0 + 25 * HOUR).await;
    assert!(warden
        .list_records(&rep2, ObjectType::Customers, None, Some(5))
        .await
        .unwrap()
        .items
        .is_empty());
    let rep1 = subject(&warden, "rep1", T0 + 25 * HOUR).await;
    assert!(!warden
        .list_records(&rep1, ObjectType::Customers, None, Some(5))
        .await
        .unwrap()
        .items
        .is_empty());
}
