//! The access log end to end: reads (single and every record of a list page), writes,
//! refusals, logins, logouts and permission changes appear with actor, record, fields and
//! client; only `view_audit` holders read it, as JSON pages, CSV or JSON lines, without
//! customer values; `warden audit verify` passes on an intact log and names the entry altered,
//! removed or inserted directly in the database; and when the log cannot be written, the
//! request fails and returns no data.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use sqlx::{AnyConnection, Connection, Executor};

use crate::harness::{id, Api, Server};

/// The master key the audit servers are started with (the CLI needs it to check signatures).
pub const KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

/// Where the server keeps its data: a data directory, or a PostgreSQL URL.
pub enum Db<'a> {
    Sqlite(&'a std::path::Path),
    Postgres(&'a str),
}

impl Db<'_> {
    fn url(&self) -> String {
        match self {
            Db::Sqlite(dir) => format!("sqlite://{}", dir.join("warden.db").display()),
            Db::Postgres(url) => (*url).to_owned(),
        }
    }

    fn args(&self) -> Vec<String> {
        match self {
            Db::Sqlite(dir) => vec!["--data".into(), dir.display().to_string()],
            Db::Postgres(url) => vec!["--database-url".into(), (*url).to_owned()],
        }
    }

    async fn connect(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        AnyConnection::connect(&self.url()).await.unwrap()
    }

    async fn execute(&self, sql: &str) {
        let mut conn = self.connect().await;
        conn.execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.close().await.unwrap();
    }

    async fn scalar(&self, sql: &str) -> i64 {
        let mut conn = self.connect().await;
        let value: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        value
    }
}

/// `warden audit ARGS…` with the servers' master key; (success, stdout + stderr).
async fn warden_audit(args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("audit")
        .args(args)
        .env_remove("WARDEN_DATABASE_URL")
        .env("WARDEN_MASTER_KEY", KEY)
        .env("WARDEN_LOG", "warn")
        .output()
        .await
        .expect("run the warden binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn verify(db: &Db<'_>) -> (bool, String) {
    let mut args = vec!["verify".to_owned()];
    args.extend(db.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    warden_audit(&args).await
}

/// Every entry matching `query` (e.g. `actor=rep1&action=read`), paging through the cursor.
async fn entries(api: &Api, user: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let reply = api
            .get(user, &format!("/api/v1/audit?{query}&limit=100{cursor}"))
            .await;
        assert_eq!(
            reply.status, 200,
            "[{}] audit?{query}: {}",
            api.name, reply.text
        );
        out.extend(reply.body["items"].as_array().unwrap().iter().cloned());
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return out,
        }
    }
}

fn fields(entry: &Value) -> BTreeSet<String> {
    entry["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

/// What each kind of access leaves in the log, and who may read it.
pub async fn what_is_logged(server: &Server) {
    let api = Api::login_everyone(server).await;
    let name = api.name;

    // Logins, with the client's address; a refused one too.
    let logins = entries(&api, "auditor", "actor=rep1&action=login").await;
    assert!(
        logins
            .iter()
            .any(|e| e["outcome"] == "ok" && e["client"] == "127.0.0.1"),
        "[{name}] rep1's login: {logins:?}"
    );
    assert_eq!(api.login("rep2", "not-the-password").await.status, 401);
    let refused = entries(&api, "auditor", "actor=rep2&action=login").await;
    assert!(
        refused
            .iter()
            .any(|e| e["outcome"] == "denied" && e["client"] == "127.0.0.1"),
        "[{name}] rep2's refused login: {refused:?}"
    );

    // A single read by rep1: actor, record and the sensitive fields returned.
    let page = api.get("rep1", "/api/v1/customers?limit=1").await;
    let customer = page.body["items"][0].clone();
    let cid = id(&customer);
    let read = api.get("rep1", &format!("/api/v1/customers/{cid}")).await;
    assert_eq!(read.status, 200, "[{name}] {}", read.text);
    let logged = entries(
        &api,
        "auditor",
        &format!("actor=rep1&record={cid}&action=read"),
    )
    .await;
    let single: Vec<&Value> = logged.iter().filter(|e| e["detail"] == "").collect();
    assert_eq!(
        single.len(),
        1,
        "[{name}] one entry for one read: {logged:?}"
    );
    let entry = single[0];
    assert_eq!(entry["actor"], "rep1");
    assert_eq!(entry["object"], "customers");
    assert_eq!(entry["record_id"], json!(cid));
    assert_eq!(entry["outcome"], "ok");
    assert_eq!(
        fields(entry),
        BTreeSet::from(["credit_limit".to_owned()]),
        "[{name}] rep1 reads credit_limit (bank_account is hidden from reps)"
    );
    // The manager sees bank_account masked: named as masked, not as returned.
    assert_eq!(
        api.get("manager", &format!("/api/v1/customers/{cid}"))
            .await
            .status,
        200
    );
    let by_manager = entries(&api, "auditor", &format!("actor=manager&record={cid}")).await;
    assert_eq!(
        fields(&by_manager[0]),
        BTreeSet::from(["credit_limit".to_owned()])
    );
    assert_eq!(by_manager[0]["detail"], "masked: bank_account");

    // A list page of 50: 50 read entries, one per record returned.
    let list = api.get("rep1", "/api/v1/customers?limit=50").await;
    let listed: BTreeSet<i64> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(listed.len(), 50, "[{name}] rep1 owns 50 of the 200");
    let list_entries: Vec<Value> = entries(&api, "auditor", "actor=rep1&action=read")
        .await
        .into_iter()
        .filter(|e| e["detail"] == "list")
        .collect();
    // The first page of size 1 above was a list too.
    assert_eq!(list_entries.len(), 51, "[{name}] {list_entries:?}");
    let logged_ids: BTreeSet<i64> = list_entries[1..]
        .iter()
        .map(|e| e["record_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        logged_ids, listed,
        "[{name}] the records returned, each once"
    );

    // A refusal: rep3 asks for rep1's customer (404) and may not delete it either.
    assert_eq!(
        api.get("rep3", &format!("/api/v1/customers/{cid}"))
            .await
            .status,
        404
    );
    let denied = entries(&api, "auditor", &format!("actor=rep3&record={cid}")).await;
    assert!(
        denied
            .iter()
            .any(|e| e["outcome"] == "denied" && e["action"] == "read"),
        "[{name}] {denied:?}"
    );

    // A write: the fields changed, by name.
    let version = read.body["version"].as_i64().unwrap();
    let patched = api
        .patch(
            "rep1",
            &format!("/api/v1/customers/{cid}"),
            json!({"phone": "+86 21 5555 0199", "version": version}),
        )
        .await;
    assert_eq!(patched.status, 200, "[{name}] {}", patched.text);
    let writes = entries(&api, "auditor", &format!("record={cid}&action=update")).await;
    assert_eq!(writes.len(), 1, "[{name}] {writes:?}");
    assert_eq!(fields(&writes[0]), BTreeSet::from(["phone".to_owned()]));

    // A permission change and a logout.
    let changed = api
        .patch(
            "admin",
            "/api/v1/users/rep4",
            json!({"display_name": "Rep Four"}),
        )
        .await;
    assert_eq!(changed.status, 200, "[{name}] {}", changed.text);
    let changes = entries(&api, "auditor", "actor=admin&action=user.update").await;
    assert!(
        changes.iter().any(|e| e["detail"] == "user rep4"
            && fields(e) == BTreeSet::from(["display_name".to_owned()])),
        "[{name}] {changes:?}"
    );
    assert_eq!(
        api.request(
            reqwest::Method::POST,
            "/api/v1/logout",
            Some(api.token("rep2")),
            crate::harness::Body::None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        entries(&api, "auditor", "actor=rep2&action=logout")
            .await
            .len(),
        1
    );

    // Only view_audit holders read the log; the auditor sees identifiers, never values.
    for user in ["rep1", "manager", "supervisor1", "support", "finance"] {
        let reply = api.get(user, "/api/v1/audit?limit=1").await;
        assert_eq!(
            reply.status, 403,
            "[{name}] {user} reads the log: {}",
            reply.text
        );
    }
    assert_eq!(api.get("admin", "/api/v1/audit?limit=1").await.status, 200);
    let everything = api.get("auditor", "/api/v1/audit?limit=1000").await.text;
    let customer_name = customer["name"].as_str().unwrap();
    assert!(
        !everything.contains(customer_name) && !everything.contains("5555 0199"),
        "[{name}] the log holds no customer value"
    );
    // The old form (?object=&id=) still answers.
    let old = api
        .get(
            "auditor",
            &format!("/api/v1/audit?object=customers&id={cid}"),
        )
        .await;
    assert_eq!(old.status, 200);
    assert!(old.body["items"].as_array().unwrap().len() >= 3);

    // Exports: every matching entry.
    let csv = api
        .get("auditor", "/api/v1/audit?actor=rep1&action=read&format=csv")
        .await;
    assert_eq!(csv.status, 200);
    let mut lines = csv.text.lines();
    assert_eq!(
        lines.next(),
        Some("id,at,actor,action,object,record_id,fields,client,outcome,detail")
    );
    assert_eq!(
        lines.count(),
        52,
        "[{name}] 51 list reads and one single read"
    );
    let jsonl = api
        .get(
            "auditor",
            &format!("/api/v1/audit?record={cid}&format=jsonl"),
        )
        .await;
    let rows: Vec<Value> = jsonl
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.iter().all(|r| r["record_id"] == json!(cid)) && rows.len() >= 5);
    assert_eq!(
        api.get("auditor", "/api/v1/audit?format=xml").await.body["field"],
        "format"
    );
}

/// `warden audit verify` passes on the intact log and names the entry altered, removed or
/// inserted directly in the database; the server is idle meanwhile.
pub async fn tampering(server: &Server, db: Db<'_>) {
    let api = Api::login_everyone(server).await;
    let name = api.name;
    api.get("rep1", "/api/v1/customers?limit=20").await;
    let (ok, text) = verify(&db).await;
    assert!(ok && text.contains("is intact"), "[{name}] {text}");

    let target = db
        .scalar("SELECT MIN(id) FROM access_log WHERE action = 'read'")
        .await
        + 5;
    let last = db.scalar("SELECT MAX(id) FROM access_log").await;

    // Altered: a field name taken out of an entry.
    db.execute(&format!(
        "UPDATE access_log SET fields = '' WHERE id = {target}"
    ))
    .await;
    let (ok, text) = verify(&db).await;
    assert!(
        !ok && text.contains(&format!("entry {target} was altered")),
        "[{name}] {text}"
    );
    db.execute(&format!(
        "UPDATE access_log SET fields = 'credit_limit' WHERE id = {target}"
    ))
    .await;
    let (ok, text) = verify(&db).await;
    assert!(ok, "[{name}] put back: {text}");

    // Removed.
    db.execute(&format!(
        "CREATE TABLE kept AS SELECT * FROM access_log WHERE id = {target}"
    ))
    .await;
    db.execute(&format!("DELETE FROM access_log WHERE id = {target}"))
        .await;
    let (ok, text) = verify(&db).await;
    assert!(
        !ok && text.contains(&format!("entry {target} was removed")),
        "[{name}] {text}"
    );
    db.execute("INSERT INTO access_log SELECT * FROM kept")
        .await;
    db.execute("DROP TABLE kept").await;
    assert!(verify(&db).await.0, "[{name}] restored");

    // Inserted: a row that is not part of the chain.
    let forged = last + 1;
    db.execute(&format!(
        "INSERT INTO access_log (id, at, actor, action, object, record_id, fields, outcome, detail) \
         VALUES ({forged}, 1, 'rep1', 'read', 'customers', 1, '', 'ok', '')"
    ))
    .await;
    let (ok, text) = verify(&db).await;
    assert!(
        !ok && text.contains(&format!("entry {forged} was inserted")),
        "[{name}] {text}"
    );
    db.execute(&format!("DELETE FROM access_log WHERE id = {forged}"))
        .await;
    let (ok, text) = verify(&db).await;
    assert!(ok, "[{name}] {text}");

    // The server appends on after all that, and the log stays intact.
    assert_eq!(
        api.get("rep1", "/api/v1/customers?limit=5").await.status,
        200
    );
    assert!(verify(&db).await.0);

    // Retention: everything so far into a signed archive; the rest still verifies.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.jsonl");
    let file_arg = file.display().to_string();
    let mut args = vec!["archive".to_owned()];
    args.extend(db.args());
    args.extend([
        "--before".into(),
        "2999-01-01".into(),
        "--out".into(),
        file_arg.clone(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, text) = warden_audit(&args).await;
    assert!(ok && text.contains("Archived"), "[{name}] {text}");
    assert_eq!(
        api.get("rep1", "/api/v1/customers?limit=5").await.status,
        200
    );
    let (ok, text) = verify(&db).await;
    assert!(ok, "[{name}] after archival: {text}");
    let (ok, text) = warden_audit(&["verify", "--archive", &file_arg]).await;
    assert!(ok && text.contains("is intact"), "[{name}] {text}");
    let archived = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, archived.replacen("\"rep1\"", "\"rep3\"", 1)).unwrap();
    let (ok, text) = warden_audit(&["verify", "--archive", &file_arg]).await;
    assert!(!ok && text.contains("NOT intact"), "[{name}] {text}");
}

/// A request whose log entry cannot be written fails, and returns no data.
pub async fn a_log_failure_fails_the_request(server: &Server, db: Db<'_>) {
    let api = Api::login_everyone(server).await;
    let name = api.name;
    let page = api.get("rep1", "/api/v1/customers?limit=1").await;
    let customer = page.body["items"][0].clone();
    let cid = id(&customer);
    let path = format!("/api/v1/customers/{cid}");
    let version = customer["version"].as_i64().unwrap();
    let (down, up) = match db {
        Db::Sqlite(_) => (
            vec![
                "CREATE TRIGGER access_log_down BEFORE INSERT ON access_log \
                  BEGIN SELECT RAISE(ABORT, 'the access log is down'); END",
            ],
            vec!["DROP TRIGGER access_log_down"],
        ),
        Db::Postgres(_) => (
            vec![
                "CREATE FUNCTION access_log_down() RETURNS trigger AS $$ BEGIN \
                 RAISE EXCEPTION 'the access log is down'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER access_log_down BEFORE INSERT ON access_log \
                 FOR EACH ROW EXECUTE FUNCTION access_log_down()",
            ],
            vec![
                "DROP TRIGGER access_log_down ON access_log",
                "DROP FUNCTION access_log_down()",
            ],
        ),
    };
    for sql in &down {
        db.execute(sql).await;
    }
    let read = api.get("rep1", &path).await;
    assert_eq!(read.status, 500, "[{name}] {}", read.text);
    let customer_name = customer["name"].as_str().unwrap();
    assert!(
        !read.text.contains(customer_name),
        "[{name}] no data: {}",
        read.text
    );
    let list = api.get("rep1", "/api/v1/customers?limit=10").await;
    assert_eq!(list.status, 500, "[{name}] {}", list.text);
    assert!(!list.text.contains(customer_name));
    let write = api
        .patch(
            "rep1",
            &path,
            json!({"phone": "+86 10 0000 0000", "version": version}),
        )
        .await;
    assert_eq!(write.status, 500, "[{name}] {}", write.text);
    let refused = api.get("rep3", &path).await;
    assert_eq!(
        refused.status, 500,
        "[{name}] a refusal that cannot be logged fails too"
    );
    assert_eq!(api.login("rep2", "wrong-password-here").await.status, 500);
    for sql in &up {
        db.execute(sql).await;
    }
    let read = api.get("rep1", &path).await;
    assert_eq!(read.status, 200, "[{name}] {}", read.text);
    assert_eq!(
        read.body["version"].as_i64(),
        Some(version),
        "[{name}] the write whose log failed changed nothing"
    );
    assert_ne!(read.body["phone"], "+86 10 0000 0000");
}

/// An access review: supervisor1 revokes rep2's role; at close rep2 loses access on the next
/// request, rep1 (kept) does not; a second campaign revokes what is left undecided.
pub async fn access_reviews(server: &Server) {
    let api = Api::login_everyone(server).await;
    let name = api.name;
    let campaign = json!({"name": "Q4 review", "scope": {"all": true}, "due": "2099-12-31", "undecided": "keep"});
    assert_eq!(
        api.post("rep1", "/api/v1/reviews", campaign.clone())
            .await
            .status,
        403
    );
    let opened = api.post("admin", "/api/v1/reviews", campaign).await;
    assert_eq!(opened.status, 201, "[{name}] {}", opened.text);
    let cid = opened.body["id"].as_i64().unwrap();
    assert_eq!(opened.body["state"], "open");

    let mine = api
        .get("supervisor1", &format!("/api/v1/reviews/{cid}/items"))
        .await;
    assert_eq!(mine.status, 200, "[{name}] {}", mine.text);
    let items = mine.body["items"].as_array().unwrap().clone();
    let reviewed: BTreeSet<&str> = items.iter().map(|i| i["user"].as_str().unwrap()).collect();
    assert_eq!(
        reviewed,
        BTreeSet::from(["rep1", "rep2"]),
        "[{name}] supervisor1's reports"
    );
    assert!(items
        .iter()
        .all(|i| i["reviewer"] == "supervisor1" && i["role"] == "Sales Rep"));
    let item_of = |user: &str| {
        items
            .iter()
            .find(|i| i["user"] == user)
            .map(|i| i["id"].as_i64().unwrap())
            .unwrap()
    };
    let (rep1_item, rep2_item) = (item_of("rep1"), item_of("rep2"));

    let rep2_customer = id(&api.get("rep2", "/api/v1/customers?limit=1").await.body["items"][0]);
    let rep1_customer = id(&api.get("rep1", "/api/v1/customers?limit=1").await.body["items"][0]);
    let rep2_path = format!("/api/v1/customers/{rep2_customer}");
    let rep1_path = format!("/api/v1/customers/{rep1_customer}");
    assert_eq!(api.get("rep2", &rep2_path).await.status, 200);

    // Only the assigned reviewer decides.
    let decide = |item: i64| format!("/api/v1/reviews/{cid}/items/{item}");
    let revoke = json!({"decision": "revoke", "comment": "moved to support"});
    assert_eq!(
        api.post("supervisor2", &decide(rep2_item), revoke.clone())
            .await
            .status,
        404
    );
    assert_eq!(
        api.post(
            "supervisor1",
            &decide(rep2_item),
            json!({"decision": "maybe"})
        )
        .await
        .field(),
        "decision"
    );
    assert_eq!(
        api.post("supervisor1", &decide(rep2_item), revoke.clone())
            .await
            .status,
        200
    );
    assert_eq!(
        api.post(
            "supervisor1",
            &decide(rep1_item),
            json!({"decision": "keep"})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        api.get("rep2", &rep2_path).await.status,
        200,
        "[{name}] not before close"
    );

    assert_eq!(
        api.post(
            "supervisor1",
            &format!("/api/v1/reviews/{cid}/close"),
            json!({})
        )
        .await
        .status,
        403
    );
    let closed = api
        .post("admin", &format!("/api/v1/reviews/{cid}/close"), json!({}))
        .await;
    assert_eq!(closed.status, 200, "[{name}] {}", closed.text);
    let outcome = |user: &str| {
        closed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["user"] == user && i["role"] == "Sales Rep")
            .map(|i| i["outcome"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(outcome("rep2"), "revoked");
    assert_eq!(outcome("rep1"), "kept");
    // rep2 loses access on the very next request; rep1 keeps it.
    assert_eq!(
        api.get("rep2", &rep2_path).await.status,
        404,
        "[{name}] revoked at close"
    );
    assert_eq!(api.get("rep1", &rep1_path).await.status, 200);
    assert_eq!(
        api.post("supervisor1", &decide(rep1_item), revoke.clone())
            .await
            .status,
        404
    );
    assert_eq!(
        api.post("admin", &format!("/api/v1/reviews/{cid}/close"), json!({}))
            .await
            .status,
        409
    );

    // Evidence for the auditor, and the log of the revocation.
    let evidence = api
        .get("auditor", &format!("/api/v1/reviews/{cid}/evidence"))
        .await;
    assert_eq!(evidence.status, 200);
    assert!(evidence.text.contains("moved to support"));
    assert_eq!(
        api.get("rep1", &format!("/api/v1/reviews/{cid}/evidence"))
            .await
            .status,
        403
    );
    let revocations = entries(&api, "auditor", "action=review.revoke").await;
    assert_eq!(revocations.len(), 1, "[{name}] {revocations:?}");
    assert!(revocations[0]["detail"]
        .as_str()
        .unwrap()
        .contains("user rep2; role Sales Rep"));

    // Undecided items follow the campaign's rule at close.
    let second = api
        .post(
            "admin",
            "/api/v1/reviews",
            json!({"name": "reps", "scope": {"role": "Sales Rep"}, "due": "2099-12-31", "undecided": "revoke"}),
        )
        .await;
    assert_eq!(second.status, 201, "[{name}] {}", second.text);
    let second_id = second.body["id"].as_i64().unwrap();
    let users: BTreeSet<&str> = second.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["user"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        BTreeSet::from(["rep1", "rep3", "rep4"]),
        "[{name}] rep2 no longer holds it"
    );
    let closed = api
        .post(
            "admin",
            &format!("/api/v1/reviews/{second_id}/close"),
            json!({}),
        )
        .await;
    assert_eq!(closed.status, 200);
    assert_eq!(
        api.get("rep1", &rep1_path).await.status,
        404,
        "[{name}] undecided, revoked"
    );
}

/// The review reports: privileged accounts, dormant role assignments (from the log) and
/// separation-of-duty conflicts (default and given rules).
pub async fn review_reports(server: &Server) {
    let api = Api::login_everyone(server).await;
    let name = api.name;
    assert_eq!(
        api.get("rep1", "/api/v1/reports/privileged").await.status,
        403
    );
    let privileged = api.get("auditor", "/api/v1/reports/privileged").await;
    assert_eq!(privileged.status, 200, "[{name}] {}", privileged.text);
    let users: BTreeSet<&str> = privileged.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["username"].as_str().unwrap())
        .collect();
    assert!(
        users.contains("admin") && users.contains("auditor") && !users.contains("rep1"),
        "[{name}] {users:?}"
    );

    // rep1 reads customers; rep3 only logged in: rep3's Sales Rep role is dormant, rep1's not.
    api.get("rep1", "/api/v1/customers?limit=1").await;
    let dormant = api.get("auditor", "/api/v1/reports/dormant?days=30").await;
    assert_eq!(dormant.status, 200, "[{name}] {}", dormant.text);
    let dormant: BTreeSet<(String, String)> = dormant.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["username"].as_str().unwrap().to_owned(),
                i["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        dormant.contains(&("rep3".to_owned(), "Sales Rep".to_owned())),
        "[{name}] {dormant:?}"
    );
    assert!(
        !dormant.contains(&("rep1".to_owned(), "Sales Rep".to_owned())),
        "[{name}] {dormant:?}"
    );

    // Nobody is Finance and Sales Rep in the demo; give rep4 Finance and the default rule finds it.
    let sod = api.get("auditor", "/api/v1/reports/sod").await;
    assert_eq!(sod.body["items"], json!([]), "[{name}] {}", sod.text);
    let given = api
        .patch(
            "admin",
            "/api/v1/users/rep4",
            json!({"roles": ["Sales Rep", "Finance"]}),
        )
        .await;
    assert_eq!(given.status, 200, "[{name}] {}", given.text);
    let sod = api.get("auditor", "/api/v1/reports/sod").await;
    assert_eq!(
        sod.body["items"],
        json!([{"username": "rep4", "roles": ["Finance", "Sales Rep"]}])
    );
    let sod = api
        .get(
            "auditor",
            "/api/v1/reports/sod?rules=Administrator%7CAuditor,Sales%20Rep%7CFinance",
        )
        .await;
    assert_eq!(
        sod.body["items"],
        json!([{"username": "rep4", "roles": ["Sales Rep", "Finance"]}]),
        "[{name}] {}",
        sod.text
    );
    assert_eq!(
        api.get("auditor", "/api/v1/reports/sod?rules=Finance")
            .await
            .field(),
        "rules"
    );
}
