//! Policy as code, through the real `warden` binary where it matters: export → apply on an
//! empty database → export gives the same bytes (SQLite always; PostgreSQL when
//! `WARDEN_TEST_POSTGRES_URL` is set); a dry run changes nothing; a bad file is refused naming
//! the place and changes nothing; under four eyes the whole file waits as one request that a
//! second administrator's approval applies; the printed access diff is the real one.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use warden_policy::access::{AccessRules, LoginHours};
use warden_policy::{Action, ObjectType, Snapshot};
use warden_service::{demo, AccessTarget, ApprovalRole, Config, Outcome, Warden};
use warden_store::keys::KEY_FILE;
use warden_store::Store;

const PASSWORD: &str = "policy file test password";
const DIFF_ACTIONS: &[Action] = &[
    Action::Read,
    Action::Update,
    Action::Delete,
    Action::Export,
    Action::Share,
    Action::Approve,
];

/// Where a database is, as the command line names it.
#[derive(Clone)]
enum Place {
    Dir(PathBuf),
    Url { url: String, key_file: PathBuf },
}

impl Place {
    fn args(&self) -> Vec<String> {
        match self {
            Place::Dir(dir) => vec!["--data".into(), dir.display().to_string()],
            Place::Url { url, key_file } => vec![
                "--database-url".into(),
                url.clone(),
                "--key-file".into(),
                key_file.display().to_string(),
            ],
        }
    }

    async fn store(&self) -> Store {
        let (url, key_file) = match self {
            Place::Dir(dir) => {
                std::fs::create_dir_all(dir).unwrap();
                (Store::dir_url(dir).unwrap(), dir.join(KEY_FILE))
            }
            Place::Url { url, key_file } => (url.clone(), key_file.clone()),
        };
        Store::connect_with_key_file(&url, &key_file)
            .await
            .unwrap()
            .store
    }

    async fn warden(&self) -> Warden {
        Warden::new(self.store().await, Config::default())
            .await
            .unwrap()
    }
}

fn warden_cmd(args: &[&str], place: &Place) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .env_remove("WARDEN_MASTER_KEY")
        .env_remove("WARDEN_DATABASE_URL")
        .env("WARDEN_LOG", "warn")
        .stdin(Stdio::null())
        .args(args)
        .args(place.args())
        .output()
        .expect("run warden")
}

fn ok(args: &[&str], place: &Place) -> String {
    let output = warden_cmd(args, place);
    assert!(
        output.status.success(),
        "warden {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn export(place: &Place) -> String {
    ok(&["policy", "export"], place)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The demo organisation, with something of every kind the file holds that the demo lacks:
/// a role's access rules, a sharing rule, a restriction rule, an object control and four eyes.
async fn seed_rich(place: &Place, scratch: &Path) {
    let store = place.store().await;
    demo::seed(&store, 60, PASSWORD, now()).await.unwrap();
    let warden = Warden::new(store, Config::default()).await.unwrap();
    let admin = warden.operator_subject("admin", now()).await.unwrap();
    let support = admin.snapshot.role_by_name("Customer Support").unwrap();
    let rules = AccessRules {
        ip_allow: vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.168.1.0/24".parse().unwrap(),
        ],
        login_hours: Some(LoginHours {
            time_zone: jiff::tz::db().get("Europe/Berlin").unwrap(),
            days: 0b001_1111,
            from: 8 * 60,
            to: 18 * 60,
        }),
        mfa_required: true,
    };
    match warden
        .set_access_rules(&admin, AccessTarget::Role(support), rules)
        .await
        .unwrap()
    {
        Outcome::Done(_) => {}
        Outcome::Pending(_) => panic!("four eyes is off"),
    }
    let mut text = warden.export_policy().await.unwrap();
    text = text.replace("four_eyes = false", "four_eyes = true");
    text = text.replace("deals = \"by_customer\"", "deals = \"own_grants\"");
    text.push_str(
        r#"
[[sharing_rules]]
name = "East to support"
object = "customers"
when = '{"region":"East"}'
access = "read"
share_with = { unit = "Customer Support" }

[[sharing_rules]]
name = "Team 1 to team 2"
object = "customers"
owned_by_unit = "Sales Team 1"
access = "edit"
share_with = { role = "Sales Supervisor" }

[[restriction_rules]]
name = "Support sees active customers"
object = "customers"
actions = ["read", "update"]
only = '{"status":"active"}'
applies_to = { role = "Customer Support" }
"#,
    );
    let file = write(scratch, "rich.toml", &text);
    ok(&["policy", "apply", &file, "--as", "admin"], place);
}

async fn round_trip(source: Place, empty: Place, scratch: &Path) {
    seed_rich(&source, scratch).await;
    let exported = export(&source);
    for needle in [
        "four_eyes = true",
        "deals = \"own_grants\"",
        "name = \"Sales Rep\"",
        "\"customers read own\"",
        "[roles.access]",
        "Europe/Berlin",
        "[[sharing_rules]]",
        "owned_by_unit = \"Sales Team 1\"",
        "[[restriction_rules]]",
        "[[approval_policies]]",
        "credit_limit",
    ] {
        assert!(
            exported.contains(needle),
            "{needle} missing from:\n{exported}"
        );
    }
    // Nothing names a database id: the same file for every database.
    assert!(!exported.contains("id ="), "{exported}");
    let file = write(scratch, "exported.toml", &exported);
    // The empty database has no users: its first policy is applied without --as.
    let report = ok(&["policy", "apply", &file], &empty);
    assert!(report.contains("Applied in one transaction."), "{report}");
    let again = export(&empty);
    assert_eq!(
        again, exported,
        "export → apply on an empty database → export"
    );
    // Applying it once more changes nothing.
    let report = ok(&["policy", "apply", &file], &empty);
    assert!(report.contains("nothing to change"), "{report}");
}

#[tokio::test]
async fn export_apply_on_an_empty_database_export_is_byte_identical_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(
        Place::Dir(dir.path().join("source")),
        Place::Dir(dir.path().join("empty")),
        dir.path(),
    )
    .await;
}

#[tokio::test]
async fn export_apply_on_an_empty_database_export_is_byte_identical_on_postgres() {
    let name = "policy_round_trip_on_postgres";
    let Some(source) = warden_store::testing::fresh_postgres_database(name).await else {
        return;
    };
    let Some(empty) = warden_store::testing::fresh_postgres_database(name).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    round_trip(
        Place::Url {
            url: source,
            key_file: dir.path().join("source.key"),
        },
        Place::Url {
            url: empty,
            key_file: dir.path().join("empty.key"),
        },
        dir.path(),
    )
    .await;
}

/// The demo with Sales Rep widened from their own customers to their whole unit tree.
fn widen_reps(text: &str) -> String {
    let widened = text.replacen("\"customers read own\"", "\"customers read unit_tree\"", 1);
    assert_ne!(widened, text);
    widened
}

async fn demo_place(dir: &Path) -> Place {
    let place = Place::Dir(dir.join("demo"));
    demo::seed(&place.store().await, 80, PASSWORD, now())
        .await
        .unwrap();
    place
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let place = demo_place(dir.path()).await;
    let before = export(&place);
    let epoch = place.store().await.epoch().await.unwrap();
    let file = write(dir.path(), "wide.toml", &widen_reps(&before));
    let report = ok(
        &["policy", "apply", &file, "--dry-run", "--as", "admin"],
        &place,
    );
    assert!(report.contains("~ role `Sales Rep`"), "{report}");
    assert!(report.contains("- grants customers read own"), "{report}");
    assert!(
        report.contains("+ grants customers read unit_tree"),
        "{report}"
    );
    assert!(report.contains("Dry run: nothing was changed."), "{report}");
    assert_eq!(export(&place), before);
    assert_eq!(place.store().await.epoch().await.unwrap(), epoch);
}

#[tokio::test]
async fn an_invalid_file_is_refused_naming_the_place_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let place = demo_place(dir.path()).await;
    let before = export(&place);
    let epoch = place.store().await.epoch().await.unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            before.replacen("\"customers read own\"", "\"customers read everything\"", 1),
            "role `Sales Rep`, grants[",
        ),
        (
            before.replacen("role = \"Administrator\"", "role = \"Nobody\"", 1),
            "no role named `Nobody`",
        ),
        (
            format!(
                "{before}\n[[restriction_rules]]\nname = \"Secret\"\nobject = \"customers\"\n\
                 only = '{{\"bank_account\":\"x\"}}'\napplies_to = {{ role = \"Ghost\" }}\n"
            ),
            "restriction rule `Secret`, only",
        ),
        (
            format!(
                "{before}\n[[sharing_rules]]\nname = \"Loose\"\nobject = \"customers\"\n\
                 when = '{{\"region\":{{\"gt\":3}}}}'\naccess = \"read\"\nshare_with = {{ unit = \"Customer Support\" }}\n"
            ),
            "sharing rule `Loose`, when",
        ),
        (
            format!(
                "{before}\n[[sharing_rules]]\nname = \"Nowhere\"\nobject = \"customers\"\n\
                 owned_by_unit = \"Atlantis\"\naccess = \"read\"\nshare_with = {{ unit = \"Customer Support\" }}\n"
            ),
            "sharing rule `Nowhere`, owned_by_unit: no unit `Atlantis`",
        ),
        (
            before.replacen("name = \"Sales Team 2\"", "name = \"Sales Team 9\"", 1),
            "unit `Sales Team 2`: is not in the file, but",
        ),
        ("four_eyes = maybe\n".to_owned(), "line 1"),
    ];
    for (i, (text, place_named)) in cases.iter().enumerate() {
        let file = write(dir.path(), &format!("bad{i}.toml"), text);
        let output = warden_cmd(&["policy", "apply", &file, "--as", "admin"], &place);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "case {i} was accepted");
        assert!(
            stderr.contains(place_named),
            "case {i}: expected {place_named:?} in:\n{stderr}"
        );
    }
    assert_eq!(export(&place), before);
    assert_eq!(place.store().await.epoch().await.unwrap(), epoch);
}

#[tokio::test]
async fn under_four_eyes_the_whole_file_waits_for_a_second_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let place = demo_place(dir.path()).await;
    {
        let warden = place.warden().await;
        let admin = warden.operator_subject("admin", now()).await.unwrap();
        assert!(matches!(
            warden.set_four_eyes(&admin, true).await.unwrap(),
            Outcome::Done(true)
        ));
    }
    let before = export(&place);
    let mut wanted = widen_reps(&before);
    wanted.push_str("\n[[units]]\nname = \"Sales Team 3\"\nparent = \"Sales\"\n");
    let file = write(dir.path(), "wide.toml", &wanted);
    let report = ok(&["policy", "apply", &file, "--as", "admin"], &place);
    assert!(
        report.contains("Four eyes is on: approval request"),
        "{report}"
    );
    assert_eq!(
        export(&place),
        before,
        "nothing applied before the approval"
    );

    let warden = place.warden().await;
    let admin2 = warden.operator_subject("admin2", now()).await.unwrap();
    let (inbox, _) = warden
        .list_approvals(&admin2, Some("pending"), ApprovalRole::Inbox, None, 50)
        .await
        .unwrap();
    assert_eq!(inbox.len(), 1, "one request for the whole file");
    assert_eq!(inbox[0].operation, "policy.apply");
    // The requester cannot approve it.
    let admin = warden.operator_subject("admin", now()).await.unwrap();
    assert!(warden
        .decide_approval(&admin, inbox[0].id, true, "")
        .await
        .is_err());
    let decided = warden
        .decide_approval(&admin2, inbox[0].id, true, "looks right")
        .await
        .unwrap();
    assert_eq!(decided.state, "applied");
    let after = export(&place);
    assert!(after.contains("\"customers read unit_tree\""), "{after}");
    assert!(after.contains("name = \"Sales Team 3\""), "{after}");
    // Everything the file says, and nothing else: applying it again changes nothing.
    let report = ok(
        &["policy", "apply", &file, "--dry-run", "--as", "admin"],
        &place,
    );
    assert!(report.contains("nothing to change"), "{report}");
}

/// `(user, action, gained, lost)` rows of the printed access diff.
fn printed_access(report: &str) -> Vec<(String, String, i64, i64)> {
    report
        .lines()
        .skip_while(|l| !l.starts_with("Access to customers"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.len(), 4, "{line}");
            (
                words[0].to_owned(),
                words[1].to_owned(),
                words[2].trim_start_matches('+').parse().unwrap(),
                words[3].trim_start_matches('-').parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_printed_access_diff_is_the_real_change() {
    let dir = tempfile::tempdir().unwrap();
    let place = demo_place(dir.path()).await;
    let text = export(&place);
    let file = write(dir.path(), "wide.toml", &widen_reps(&text));
    let report = ok(
        &["policy", "apply", &file, "--dry-run", "--as", "admin"],
        &place,
    );
    let predicted = printed_access(&report);
    assert!(
        predicted
            .iter()
            .any(|(u, a, g, _)| u == "rep1" && a == "read" && *g > 0),
        "rep1 gains their unit's customers:\n{report}"
    );

    let store = place.store().await;
    let before = Snapshot::compile(&store.load_model().await.unwrap()).unwrap();
    let report = ok(&["policy", "apply", &file, "--as", "admin"], &place);
    assert_eq!(printed_access(&report), predicted);
    let after = Snapshot::compile(&store.load_model().await.unwrap()).unwrap();

    let t = now();
    let mut real = Vec::new();
    let mut users: Vec<_> = before
        .users()
        .map(|u| (u.username().to_owned(), u.id()))
        .collect();
    users.sort();
    for (username, user) in users {
        for action in DIFF_ACTIONS {
            let old = before.filter(user, *action, ObjectType::Customers, t);
            let new = after.filter(user, *action, ObjectType::Customers, t);
            let gained = store.count_records(&new, Some(&old)).await.unwrap();
            let lost = store.count_records(&old, Some(&new)).await.unwrap();
            let (was, is) = (
                store.count_records(&old, None).await.unwrap(),
                store.count_records(&new, None).await.unwrap(),
            );
            assert_eq!(is - was, gained - lost, "{username} {action}");
            if gained > 0 || lost > 0 {
                real.push((username.clone(), action.as_str().to_owned(), gained, lost));
            }
        }
    }
    assert_eq!(predicted, real);
}
