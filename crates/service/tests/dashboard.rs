//! The console dashboard's per-unit counts agree with the list: for every demo user, the
//! customers counted per unit are exactly those the paged list returns, unit by unit — the
//! counts decide the same cells with the same engine, they are not a second implementation.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use warden_policy::ObjectType;
use warden_service::store::keys::MasterKey;
use warden_service::store::Store;
use warden_service::{demo, Config, LoginRequest, Warden};

const T0: i64 = 1_800_000_000_000;
const PASSWORD: &str = "dashboard test password";
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn per_unit_counts_equal_the_list_for_every_demo_user() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_dir(dir.path(), &MasterKey::generate())
        .await
        .unwrap();
    demo::seed(&store, 60, PASSWORD, T0).await.unwrap();
    let warden = Warden::new(store, Config::default()).await.unwrap();
    for (username, ..) in demo::DEMO_USERS {
        let login = warden
            .login(
                &LoginRequest {
                    username: (*username).into(),
                    password: PASSWORD.into(),
                    totp: None,
                    recovery_code: None,
                },
                CLIENT,
                T0,
            )
            .await
            .unwrap();
        let subject = warden.authenticate(&login.token, CLIENT, T0).await.unwrap();
        let mut listed: BTreeMap<String, u64> = BTreeMap::new();
        let mut cursor = None;
        loop {
            let page = warden
                .list_records(&subject, ObjectType::Customers, cursor.as_deref(), Some(50))
                .await
                .unwrap();
            for item in &page.items {
                *listed.entry(item.unit_name.clone()).or_default() += 1;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let counted: BTreeMap<String, u64> = warden
            .visible_customers_per_unit(&subject)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.unit, c.customers))
            .collect();
        assert_eq!(counted, listed, "{username}");
    }
}
