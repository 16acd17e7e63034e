//! The web console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver), against the real `warden demo` on a fresh SQLite database.
//!
//! Without `chromium` and `chromedriver` installed the test says it is skipped and passes;
//! `.ci/run` installs both and sets `WARDEN_REQUIRE_BROWSER`, so in CI it always runs. With `WARDEN_SCREENSHOTS=DIR` it also
//! saves screenshots of the main pages into DIR (`docs/screenshots` for the README).

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
#![allow(clippy::expect_used, reason = "a failed expect is a failed test")]

#[path = "e2e/harness.rs"]
#[allow(dead_code, reason = "the harness serves several test binaries")]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use harness::{Api, Backend, Body, Server, PASSWORD};
use reqwest::Method;
use serde_json::json;

/// Where Debian puts them (`apt-get install chromium chromium-driver`); overridable.
fn browser_paths() -> Result<(PathBuf, PathBuf), String> {
    let chromium = std::env::var_os("WARDEN_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let driver = std::env::var_os("WARDEN_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    for path in [&chromium, &driver] {
        if !path.exists() {
            return Err(format!(
                "{} is not installed (apt-get install -y chromium chromium-driver)",
                path.display()
            ));
        }
    }
    Ok((chromium, driver))
}

/// A running chromedriver, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(path: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn browser(&self, chromium: &Path) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium.display().to_string(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--lang=en-GB"],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session");
        Browser {
            client,
            shots: std::env::var_os("WARDEN_SCREENSHOTS").map(PathBuf::from),
        }
    }
}

/// The browser and where screenshots go, if anywhere.
struct Browser {
    client: Client,
    shots: Option<PathBuf>,
}

impl Browser {
    async fn open(&self, base: &str, path: &str) {
        self.client
            .goto(&format!("{base}{path}"))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .text()
            .await
            .unwrap()
    }

    async fn click(&self, css: &str) {
        let element = match self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no `{css}` to click on {}: {e}\n{}",
                self.path().await,
                self.source().await
            ),
        };
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Clicks what leads to another page, and returns once the new page has replaced the old
    /// one (a form's submission is not awaited by the click itself: reading right after it
    /// could read the old page).
    async fn follow(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        // The old document's element goes stale once the new document is there.
        while old.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "clicking `{css}` led nowhere");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("main"))
            .await
            .unwrap();
    }

    async fn fill(&self, css: &str, value: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        element.clear().await.unwrap();
        element.send_keys(value).await.unwrap();
    }

    async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in `{css}`: {e}"));
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn all_texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(element.text().await.unwrap());
        }
        out
    }

    async fn screenshot(&self, name: &str) {
        let Some(dir) = &self.shots else {
            return;
        };
        std::fs::create_dir_all(dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn sign_in(&self, base: &str, user: &str) {
        self.open(base, "/login").await;
        self.fill("#username", user).await;
        self.fill("#password", PASSWORD).await;
        self.follow("#sign-in").await;
        assert_eq!(self.text("#whoami").await, user, "signed in as {user}");
    }

    /// Signs out from whatever page is open (error pages keep the navigation bar too).
    async fn sign_out(&self) {
        self.follow("header form[action='/logout'] button").await;
        self.text("#sign-in").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    let (chromium, chromedriver) = match browser_paths() {
        Ok(paths) => paths,
        Err(why) if std::env::var_os("WARDEN_REQUIRE_BROWSER").is_some() => {
            panic!("WARDEN_REQUIRE_BROWSER is set but {why}")
        }
        Err(why) => {
            println!("skipped: the console's browser tests need Chromium: {why}");
            eprintln!("skipped: the console's browser tests need Chromium: {why}");
            return;
        }
    };
    let server = Server::start(Backend::Sqlite).await;
    let api = Api::login_everyone(&server).await;
    let driver = Driver::start(&chromedriver).await;
    let browser = driver.browser(&chromium).await;
    let base = server.base.as_str();

    browser.open(base, "/login").await;
    browser.screenshot("login").await;

    rep1_sees_only_rep1s_customers(&browser, base).await;
    a_form_without_its_csrf_token_is_refused(&browser, &api, base).await;
    support_sees_no_bank_account(&browser, base).await;
    supervisor1_approves_rep1s_pending_delete(&browser, &api, base).await;
    rep1_shares_a_customer_with_rep3(&browser, &api, base).await;
    admin_moves_a_user_after_reading_the_what_if(&browser, &api, base).await;
    admin_adds_a_sharing_rule_after_reading_the_what_if(&browser, &api, base).await;
    admin_reads_restriction_and_access_rules(&browser, base).await;
    admin_views_as_rep1(&browser, &api, base).await;
    the_auditor_reads_the_access_log(&browser, base).await;
    admin_adds_an_approval_policy_and_a_reps_change_waits(&browser, &api, base).await;
    admin_hides_a_field_from_support_through_the_grid(&browser, &api, base).await;
    the_console_speaks_chinese(&browser, base).await;
    on_a_phone(&browser, base).await;

    browser.client.close().await.unwrap();
}

async fn rep1_sees_only_rep1s_customers(browser: &Browser, base: &str) {
    browser.sign_in(base, "rep1").await;
    browser.screenshot("dashboard-rep1").await;
    browser.open(base, "/customers").await;
    let owners = browser.all_texts("#customers td.owner").await;
    assert!(!owners.is_empty(), "rep1 sees customers");
    assert!(
        owners.iter().all(|o| o == "rep1"),
        "rep1 sees only rep1's customers: {owners:?}"
    );
    // The next page, through the API's cursor, is still only rep1's.
    browser.follow("#next-page").await;
    let more = browser.all_texts("#customers td.owner").await;
    assert!(
        !more.is_empty() && more.iter().all(|o| o == "rep1"),
        "{more:?}"
    );
    browser.open(base, "/customers").await;
    browser.screenshot("customers").await;
    // Another rep's customer is not found, exactly as in the API (customer 2 is rep2's).
    browser.open(base, "/customers/2").await;
    assert_eq!(browser.text("h1").await, "Not found");
    browser.open(base, "/customers/1").await;
    assert_eq!(browser.text("#record-name").await, "Acme Trading");
    browser.screenshot("record").await;
    browser.follow("#why").await;
    let explained = browser.text("#explain-actions").await;
    assert!(explained.contains("rep1 owns the record"), "{explained}");
    browser.sign_out().await;
}

async fn a_form_without_its_csrf_token_is_refused(browser: &Browser, api: &Api, base: &str) {
    browser.sign_in(base, "rep1").await;
    browser.open(base, "/customers/1").await;
    let before = api
        .request(
            Method::GET,
            "/api/v1/customers/1",
            Some(api.token("rep1")),
            Body::None,
        )
        .await;
    // The form as a forger would post it: everything but the token.
    browser
        .client
        .execute(
            "document.querySelector('#edit-form input[name=csrf]').remove();\
             document.querySelector('#f-phone').value = '+1 555 0000';",
            vec![],
        )
        .await
        .unwrap();
    browser.follow("#edit-form button[type=submit]").await;
    assert_eq!(browser.text("h1").await, "Refused");
    assert!(browser.source().await.contains("HTTP 403"));
    let after = api
        .request(
            Method::GET,
            "/api/v1/customers/1",
            Some(api.token("rep1")),
            Body::None,
        )
        .await;
    assert_eq!(
        before.body["version"], after.body["version"],
        "nothing was written"
    );
    // With its token, the same form is accepted.
    browser.open(base, "/customers/1").await;
    browser.fill("#f-phone", "+86 21 5555 0199").await;
    browser.follow("#edit-form button[type=submit]").await;
    assert_eq!(browser.text(".notice").await, "Saved.");
    assert_eq!(
        browser.text("dd[data-field=phone]").await.trim(),
        "+86 21 5555 0199"
    );
    browser.sign_out().await;
}

async fn support_sees_no_bank_account(browser: &Browser, base: &str) {
    browser.sign_in(base, "support").await;
    browser.open(base, "/customers").await;
    let list = browser.source().await;
    assert!(
        list.contains("Acme Trading"),
        "support reads every customer"
    );
    assert!(!list.contains("bank_account"), "no bank account column");
    assert!(!list.contains("credit_limit"), "no credit limit column");
    browser.open(base, "/customers/1").await;
    let record = browser.text("#fields").await;
    assert!(record.contains("Acme Trading"));
    assert!(
        browser
            .client
            .find_all(Locator::Css("dd[data-field=bank_account]"))
            .await
            .unwrap()
            .is_empty(),
        "no bank account on the record page"
    );
    assert!(!browser.source().await.contains("bank_account"));
    browser.sign_out().await;
}

async fn supervisor1_approves_rep1s_pending_delete(browser: &Browser, api: &Api, base: &str) {
    // rep1's delete waits for their superior (the API answers 202 with the request).
    let held = api
        .request(
            Method::DELETE,
            "/api/v1/customers/5",
            Some(api.token("rep1")),
            Body::None,
        )
        .await;
    assert_eq!(held.status, 202, "{}", held.text);
    let request = held.body["approval"]["id"].as_i64().unwrap();

    browser.sign_in(base, "supervisor1").await;
    browser.open(base, "/approvals").await;
    let row = format!("#approvals tr[data-id='{request}'] a");
    browser.screenshot("approvals").await;
    browser.follow(&row).await;
    assert_eq!(browser.text("#request-state").await, "pending");
    browser.screenshot("approval-request").await;
    browser
        .fill("#comment", "duplicate of another account")
        .await;
    browser.follow("#approve").await;
    assert_eq!(browser.text("#request-state").await, "applied");
    browser.open(base, "/customers/5").await;
    assert_eq!(
        browser.text("h1").await,
        "Not found",
        "the customer is gone"
    );
    browser.sign_out().await;

    let gone = api
        .request(
            Method::GET,
            "/api/v1/customers/5",
            Some(api.token("rep1")),
            Body::None,
        )
        .await;
    assert_eq!(gone.status, 404);
}

async fn admin_moves_a_user_after_reading_the_what_if(browser: &Browser, api: &Api, base: &str) {
    browser.sign_in(base, "admin").await;
    browser.screenshot("dashboard").await;
    browser.open(base, "/admin/org").await;
    browser.select("#move-user", "rep3").await;
    browser.select("#move-manager", "supervisor1").await;
    browser.screenshot("organisation").await;
    browser.follow("#preview").await;
    // Read the what-if before anything changes: supervisor1 gains rep3's customers,
    // supervisor2 loses them.
    let diff = browser.text("#whatif").await;
    assert!(diff.contains("supervisor1"), "{diff}");
    assert!(diff.contains("supervisor2"), "{diff}");
    let rows = browser.all_texts("#whatif tbody tr").await;
    assert!(
        rows.iter()
            .any(|r| r.starts_with("supervisor1 read") && r.contains('+')),
        "supervisor1 gains read: {rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("supervisor2 read") && r.contains('−')),
        "supervisor2 loses read: {rows:?}"
    );
    browser.screenshot("what-if").await;
    let still = api
        .request(
            Method::GET,
            "/api/v1/users/rep3",
            Some(api.token("admin")),
            Body::None,
        )
        .await;
    assert_eq!(still.body["manager"], "supervisor2", "nothing applied yet");
    browser.follow("#confirm").await;
    assert!(browser.text("#notice").await.starts_with("Moved"));
    assert_eq!(browser.path().await, "/admin/org?notice=moved");
    let moved = api
        .request(
            Method::GET,
            "/api/v1/users/rep3",
            Some(api.token("admin")),
            Body::None,
        )
        .await;
    assert_eq!(moved.body["manager"], "supervisor1", "{}", moved.text);
    browser.open(base, "/admin/roles").await;
    browser.screenshot("roles").await;

    // Editing a role's grants goes through the same what-if: supervisors stop exporting.
    let link = browser
        .client
        .find(Locator::XPath("//h2[contains(., 'Sales Supervisor')]/a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    browser.open(base, &link).await;
    browser
        .select("select[name='g.customers.export']", "")
        .await;
    browser.follow("#preview").await;
    let rows = browser.all_texts("#whatif tbody tr").await;
    assert!(
        rows.iter()
            .any(|r| r.starts_with("supervisor1 export") && r.contains('−')),
        "supervisor1 loses export: {rows:?}"
    );
    assert!(
        rows.iter().all(|r| !r.contains("read")),
        "nobody's read changes: {rows:?}"
    );
    browser.screenshot("role-what-if").await;
    browser.follow("#confirm").await;
    assert!(browser.text("#notice").await.starts_with("Saved"));
    let export = api
        .request(
            Method::GET,
            "/api/v1/customers?limit=1",
            Some(api.token("supervisor1")),
            Body::None,
        )
        .await;
    assert_eq!(export.status, 200, "reading is untouched");
    browser.sign_out().await;
}

/// The ids of the customers list's rows, every page followed.
async fn listed_ids(browser: &Browser, base: &str) -> Vec<i64> {
    browser.open(base, "/customers").await;
    let mut ids = Vec::new();
    loop {
        for row in browser
            .client
            .find_all(Locator::Css("#customers tbody tr"))
            .await
            .unwrap()
        {
            ids.push(row.attr("data-id").await.unwrap().unwrap().parse().unwrap());
        }
        if browser
            .client
            .find_all(Locator::Css("#next-page"))
            .await
            .unwrap()
            .is_empty()
        {
            return ids;
        }
        browser.follow("#next-page").await;
    }
}

async fn scroll_to(browser: &Browser, css: &str) {
    browser
        .client
        .execute(
            &format!("document.querySelector({css:?}).scrollIntoView();"),
            vec![],
        )
        .await
        .unwrap();
}

async fn rep1_shares_a_customer_with_rep3(browser: &Browser, api: &Api, base: &str) {
    // Customer 1 (Acme Trading) is rep1's: rep3 cannot see it yet.
    browser.sign_in(base, "rep3").await;
    assert!(!listed_ids(browser, base).await.contains(&1));
    browser.open(base, "/customers/1").await;
    assert_eq!(browser.text("h1").await, "Not found");
    browser.sign_out().await;

    browser.sign_in(base, "rep1").await;
    browser.open(base, "/customers/1").await;
    assert!(browser.text("#no-shares").await.contains("Not shared"));
    browser.select("#share-kind", "user").await;
    browser.fill("#share-name", "rep3").await;
    browser.select("#share-access", "read").await;
    browser.follow("#share").await;
    assert!(browser.text(".notice").await.starts_with("Shared"));
    let shares = browser.all_texts("#shares tbody tr").await;
    assert!(
        shares.len() == 1 && shares[0].contains("user rep3") && shares[0].contains("read"),
        "{shares:?}"
    );
    scroll_to(browser, "#sharing").await;
    browser.screenshot("record-sharing").await;
    browser.sign_out().await;

    // rep3 now finds it in their own list, and reads it — but may not share it on.
    browser.sign_in(base, "rep3").await;
    let ids = listed_ids(browser, base).await;
    assert!(ids.contains(&1), "the shared customer is in rep3's list");
    browser.open(base, "/customers").await;
    let owners = browser.all_texts("#customers td.owner").await;
    assert!(owners.iter().any(|o| o == "rep1"), "{owners:?}");
    browser.open(base, "/customers/1").await;
    assert_eq!(browser.text("#record-name").await, "Acme Trading");
    assert!(
        browser
            .client
            .find_all(Locator::Css("#share-form, #team-form, #shares button"))
            .await
            .unwrap()
            .is_empty(),
        "a share opens the record, never the right to share it"
    );
    browser.sign_out().await;

    // The API agrees: the same share, and rep3 reads it.
    let listed = api.get("rep1", "/api/v1/customers/1/shares").await;
    assert_eq!(
        listed.body["items"][0]["with"]["user"], "rep3",
        "{}",
        listed.text
    );
    assert_eq!(api.get("rep3", "/api/v1/customers/1").await.status, 200);

    // rep1 takes it back; rep3's next request no longer finds it.
    browser.sign_in(base, "rep1").await;
    browser.open(base, "/customers/1").await;
    browser.follow("#shares tbody tr button").await;
    assert!(browser.text(".notice").await.starts_with("Taken back"));
    browser.sign_out().await;
    assert_eq!(api.get("rep3", "/api/v1/customers/1").await.status, 404);
}

async fn admin_adds_a_sharing_rule_after_reading_the_what_if(
    browser: &Browser,
    api: &Api,
    base: &str,
) {
    browser.sign_in(base, "admin").await;
    browser.follow("nav a[href='/admin/sharing-rules']").await;
    assert!(browser.text("#no-rules").await.contains("No sharing rules"));
    browser.fill("#rule-name", "East to rep4").await;
    browser.select("#rule-object", "customers").await;
    browser.select("#rule-with-kind", "user").await;
    browser.fill("#rule-with-name", "rep4").await;
    browser.select("#rule-access", "read").await;
    browser
        .fill("#rule-condition", r#"{"region": "East"}"#)
        .await;
    browser.follow("#preview").await;
    // The what-if first: rep4 gains read of the East customers of other owners; nothing is
    // applied yet.
    let rows = browser.all_texts("#whatif tbody tr").await;
    assert!(
        rows.iter()
            .any(|r| r.starts_with("rep4 read") && r.contains('+')),
        "rep4 gains read: {rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.starts_with("rep4 ")),
        "nobody else changes: {rows:?}"
    );
    assert!(browser.text("#rule-summary").await.contains("user rep4"));
    browser.screenshot("sharing-rule-what-if").await;
    let none = api.get("admin", "/api/v1/sharing-rules").await;
    assert_eq!(
        none.body["items"].as_array().map(Vec::len),
        Some(0),
        "{}",
        none.text
    );
    let before = api.all_customers("rep4", 100).await.len();

    browser.follow("#confirm").await;
    assert!(browser.text("#notice").await.contains("in force"));
    let names = browser.all_texts("#rules td.name").await;
    assert_eq!(names, vec!["East to rep4".to_owned()]);
    browser.screenshot("sharing-rules").await;
    let rules = api.get("admin", "/api/v1/sharing-rules").await;
    assert_eq!(
        rules.body["items"][0]["when"]["region"]["eq"], "East",
        "{}",
        rules.text
    );
    let after = api.all_customers("rep4", 100).await;
    assert!(
        after.len() > before,
        "rep4 reads more now: {before} → {}",
        after.len()
    );
    assert!(
        after
            .iter()
            .all(|c| c["owner"] == "rep4" || c["region"] == "East"),
        "what rep4 gained is East"
    );

    // Deleting shows its what-if too (rep4 would lose them); cancelled here.
    browser.follow("#rules a.delete").await;
    let rows = browser.all_texts("#whatif tbody tr").await;
    assert!(
        rows.iter()
            .any(|r| r.starts_with("rep4 read") && r.contains('−')),
        "rep4 would lose read: {rows:?}"
    );
    browser.sign_out().await;
}

async fn admin_reads_restriction_and_access_rules(browser: &Browser, base: &str) {
    browser.sign_in(base, "admin").await;
    browser
        .follow("nav a[href='/admin/restriction-rules']")
        .await;
    browser.fill("#rule-name", "Support sees active").await;
    browser.select("#rule-applies", "role").await;
    browser.fill("#rule-applies-name", "Customer Support").await;
    browser
        .fill("#rule-condition", r#"{"status": "active"}"#)
        .await;
    browser.screenshot("restriction-rules").await;
    browser.follow("#preview").await;
    let rows = browser.all_texts("#whatif tbody tr").await;
    assert!(
        !rows.is_empty()
            && rows
                .iter()
                .all(|r| r.starts_with("support ") && !r.contains('+')),
        "support alone loses, nobody gains: {rows:?}"
    );
    browser.screenshot("restriction-what-if").await;
    // Not applied: the later tests read as support.
    browser.follow("#confirm-form a").await;
    assert!(browser
        .text("#no-rules")
        .await
        .contains("No restriction rules"));

    browser.follow("nav a[href='/admin/access-rules']").await;
    let roles = browser.text("#role-rules").await;
    assert!(roles.contains("Sales Rep"), "{roles}");
    browser.select("#target", "user:rep4").await;
    browser.follow("#target-form button").await;
    assert_eq!(browser.text("#editing").await, "user rep4");
    browser.screenshot("access-rules").await;
    browser.sign_out().await;
}

async fn admin_views_as_rep1(browser: &Browser, api: &Api, base: &str) {
    // The nav offers admin pages only to those who hold the permissions.
    browser.sign_in(base, "rep1").await;
    let nav = browser.text("#nav-links").await;
    for page in ["Organisation", "Sharing rules", "Access rules"] {
        assert!(!nav.contains(page), "rep1's bar has no {page}: {nav}");
    }
    browser.sign_out().await;

    browser.sign_in(base, "admin").await;
    browser.open(base, "/admin/org").await;
    browser.select("#view-as-user", "rep1").await;
    browser.follow("#view-as").await;
    assert_eq!(browser.path().await, "/customers");
    let banner = browser.text("#view-as-banner").await;
    assert!(
        banner.contains("Viewing as rep1") && banner.contains("read only"),
        "{banner}"
    );
    assert_eq!(
        browser.text("#whoami").await,
        "admin",
        "who is at the keyboard"
    );
    browser.screenshot("view-as").await;
    // Exactly rep1's customers, every page.
    let mut seen = listed_ids(browser, base).await;
    seen.sort_unstable();
    let mut rep1s: Vec<i64> = api
        .all_customers("rep1", 100)
        .await
        .iter()
        .map(harness::id)
        .collect();
    rep1s.sort_unstable();
    assert_eq!(seen, rep1s, "the view shows exactly rep1's customers");
    let nav = browser.text("#nav-links").await;
    assert!(!nav.contains("Organisation"), "rep1's bar: {nav}");

    // rep1's record page, as rep1 sees it — but a POST from the view is refused.
    browser.open(base, "/customers/1").await;
    assert!(browser.text("#view-as-banner").await.contains("rep1"));
    let before = api.get("rep1", "/api/v1/customers/1").await;
    browser.fill("#f-phone", "+1 555 0101").await;
    browser.follow("#edit-form button[type=submit]").await;
    assert_eq!(browser.text("h1").await, "Not allowed");
    assert!(browser.text("#error-message").await.contains("read-only"));
    assert!(browser.source().await.contains("HTTP 403"));
    assert!(browser.text("#view-as-banner").await.contains("rep1"));
    let after = api.get("rep1", "/api/v1/customers/1").await;
    assert_eq!(
        before.body["version"], after.body["version"],
        "nothing written"
    );

    // Logged as the API's view-as is: under the administrator's name.
    let log = api
        .get("auditor", "/api/v1/audit?actor=admin%20(as%20rep1)&limit=5")
        .await;
    assert!(
        log.body["items"].as_array().is_some_and(|i| !i.is_empty()),
        "{}",
        log.text
    );
    let issued = api
        .get("auditor", "/api/v1/audit?action=view_as.issue")
        .await;
    assert!(issued.text.contains("as rep1"), "{}", issued.text);

    // Exit: the administrator's own eyes again.
    browser.follow("#exit-view-as").await;
    assert_eq!(browser.path().await, "/admin/org");
    assert!(browser
        .client
        .find_all(Locator::Css("#view-as-banner"))
        .await
        .unwrap()
        .is_empty());
    browser.open(base, "/customers").await;
    let owners = browser.all_texts("#customers td.owner").await;
    assert!(owners.iter().any(|o| o != "rep1"), "{owners:?}");
    browser.sign_out().await;
}

async fn the_auditor_reads_the_access_log(browser: &Browser, base: &str) {
    browser.sign_in(base, "auditor").await;
    browser.open(base, "/audit?actor=supervisor1").await;
    let log = browser.text("#log").await;
    assert!(log.contains("supervisor1"), "{log}");
    let export = browser
        .client
        .find(Locator::Css("#export"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(export, "/api/v1/audit?format=csv&actor=supervisor1");
    browser.screenshot("access-log").await;
    browser.sign_out().await;
}

/// An approval policy made through the console's form (the service checks it, and a mistake
/// comes back on the form) holds a rep's next change; then it is edited and deleted there.
async fn admin_adds_an_approval_policy_and_a_reps_change_waits(
    browser: &Browser,
    api: &Api,
    base: &str,
) {
    let before = api
        .request(
            Method::GET,
            "/api/v1/customers/1",
            Some(api.token("rep1")),
            Body::None,
        )
        .await;
    assert_ne!(before.body["status"], "prospect", "{}", before.text);

    browser.sign_in(base, "admin").await;
    browser.open(base, "/approvals").await;
    browser.follow("#policies-link").await;
    browser.follow("#new-policy").await;
    let name = "Reps turning a customer into a prospect need their superior";
    browser.fill("#p-name", name).await;
    browser.select("#p-object", "customers").await;
    browser.fill("#p-fields", "status").await;
    browser.select("#p-req-kind", "role").await;
    browser.fill("#p-req-name", "Sales Rep").await;
    browser.select("#p-appr-kind", "superior").await;
    browser.fill("#p-appr-value", "1").await;
    // A condition on a field customers do not have: refused by the service, shown on the form
    // with what was typed kept.
    browser.fill("#p-condition", r#"{"colour": "red"}"#).await;
    browser.follow("#save-policy").await;
    let error = browser.text("#form-error").await;
    assert!(error.contains("colour"), "{error}");
    let kept = browser
        .client
        .find(Locator::Css("#p-name"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some(name));
    browser
        .fill("#p-condition", r#"{"status": "prospect"}"#)
        .await;
    browser.screenshot("approval-policy-form").await;
    browser.follow("#save-policy").await;
    assert_eq!(
        browser.path().await,
        "/approvals/policies?notice=created",
        "{}",
        browser.source().await
    );
    let table = browser.text("#policies").await;
    assert!(table.contains(name), "{table}");
    assert!(table.contains("role Sales Rep"), "{table}");
    browser.screenshot("approval-policies").await;
    let listed = api
        .request(
            Method::GET,
            "/api/v1/approval-policies",
            Some(api.token("admin")),
            Body::None,
        )
        .await;
    let policy = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("the API lists the policy: {}", listed.text))
        .clone();
    assert_eq!(policy["when"], json!({"status": {"eq": "prospect"}}));
    assert_eq!(policy["requesters"], json!({"role": "Sales Rep"}));
    browser.sign_out().await;

    // rep1 turns their customer back into a prospect through the record's form: it waits
    // for supervisor1.
    browser.sign_in(base, "rep1").await;
    browser.open(base, "/customers/1").await;
    browser.select("#f-status", "prospect").await;
    browser.follow("#edit-form button[type=submit]").await;
    assert!(
        browser.path().await.starts_with("/approvals/"),
        "{}",
        browser.path().await
    );
    assert!(browser.text("#notice").await.contains("waits for approval"));
    assert_eq!(browser.text("#request-state").await, "pending");
    let steps = browser.source().await;
    assert!(steps.contains(name), "the request names the new policy");
    let after = api
        .request(
            Method::GET,
            "/api/v1/customers/1",
            Some(api.token("rep1")),
            Body::None,
        )
        .await;
    assert_eq!(after.body["status"], before.body["status"], "not applied");
    browser.follow("#withdraw").await;
    browser.sign_out().await;

    // The administrator renames the policy through the same form, then deletes it.
    browser.sign_in(base, "admin").await;
    browser.open(base, "/approvals/policies").await;
    let row = format!("#policies tr[data-id='{}']", policy["id"]);
    browser.follow(&format!("{row} a.edit")).await;
    let requesters = browser
        .client
        .find(Locator::Css("#p-req-name"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        requesters.as_deref(),
        Some("Sales Rep"),
        "the form shows the policy"
    );
    browser.fill("#p-name", "Back to prospect waits").await;
    browser.follow("#save-policy").await;
    assert_eq!(browser.path().await, "/approvals/policies?notice=saved");
    assert!(browser.text(&row).await.contains("Back to prospect waits"));
    // Under four eyes the form's change becomes a request for a second administrator.
    let admin =
        |method: Method, path: &'static str, user: &'static str, body: serde_json::Value| {
            api.request(method, path, Some(api.token(user)), Body::Json(body))
        };
    let on = admin(
        Method::PUT,
        "/api/v1/settings/four-eyes",
        "admin",
        json!({"on": true}),
    )
    .await;
    assert_eq!(on.status, 200, "{}", on.text);
    browser.open(base, "/approvals/policies").await;
    browser.text("#four-eyes").await;
    browser.follow(&format!("{row} a.edit")).await;
    browser.fill("#p-expires", "48").await;
    browser.follow("#save-policy").await;
    let held = browser.path().await;
    assert!(held.ends_with("?notice=held"), "{held}");
    assert_eq!(browser.text("#request-state").await, "pending");
    let id = held
        .trim_start_matches("/approvals/")
        .trim_end_matches("?notice=held")
        .to_owned();
    let policies = || {
        api.request(
            Method::GET,
            "/api/v1/approval-policies",
            Some(api.token("admin")),
            Body::None,
        )
    };
    let expiry = |listed: &serde_json::Value| {
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == policy["id"])
            .map(|p| p["expires_after_hours"].clone())
    };
    assert_eq!(expiry(&policies().await.body), Some(json!(null)), "waits");
    let approve = |id: String| async move {
        let path = format!("/api/v1/approvals/{id}/approve");
        let done = api
            .request(Method::POST, &path, Some(api.token("admin2")), Body::None)
            .await;
        assert_eq!(done.status, 200, "{}", done.text);
    };
    approve(id).await;
    assert_eq!(expiry(&policies().await.body), Some(json!(48)), "applied");
    let off = admin(
        Method::PUT,
        "/api/v1/settings/four-eyes",
        "admin",
        json!({"on": false}),
    )
    .await;
    assert_eq!(off.status, 202, "{}", off.text);
    approve(off.body["approval"]["id"].to_string()).await;
    browser.open(base, "/approvals/policies").await;
    browser.text("#policies").await;
    assert!(!browser.source().await.contains("id=\"four-eyes\""));
    browser.click(&format!("{row} button.delete")).await;
    browser.client.accept_alert().await.unwrap();
    assert!(browser.text("#notice").await.contains("deleted"));
    assert!(!browser.source().await.contains("Back to prospect waits"));
    browser.sign_out().await;
}

/// The field security grid of the role editor: support stops seeing customers' phone numbers,
/// on the record page and through the API alike.
async fn admin_hides_a_field_from_support_through_the_grid(
    browser: &Browser,
    api: &Api,
    base: &str,
) {
    browser.sign_in(base, "support").await;
    browser.open(base, "/customers/1").await;
    browser.text("dd[data-field=phone]").await;
    browser.sign_out().await;

    browser.sign_in(base, "admin").await;
    browser.open(base, "/admin/roles").await;
    let link = browser
        .client
        .find(Locator::XPath("//h2[contains(., 'Customer Support')]/a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    browser.open(base, &link).await;
    browser
        .select("select[name='f.customers.phone']", "hidden")
        .await;
    scroll_to(browser, "#field-grid").await;
    browser.screenshot("role-fields").await;
    browser.follow("#preview").await;
    let rules = browser.text("#rule-changes").await;
    assert!(rules.contains("customers.phone"), "{rules}");
    let changes = browser.all_texts("#field-changes tbody tr").await;
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("support read customers.phone") && c.contains("hidden")),
        "support loses the phone: {changes:?}"
    );
    browser.screenshot("role-fields-what-if").await;
    browser.follow("#confirm").await;
    assert!(browser.text("#notice").await.starts_with("Saved"));
    browser.sign_out().await;

    browser.sign_in(base, "support").await;
    browser.open(base, "/customers/1").await;
    browser.text("#fields").await;
    assert!(
        browser
            .client
            .find_all(Locator::Css("dd[data-field=phone]"))
            .await
            .unwrap()
            .is_empty(),
        "no phone on the record page"
    );
    browser.sign_out().await;
    let read = api
        .request(
            Method::GET,
            "/api/v1/customers/1",
            Some(api.token("support")),
            Body::None,
        )
        .await;
    assert_eq!(read.status, 200);
    assert!(read.body.get("phone").is_none(), "{}", read.text);
}

/// The language switch: Chinese from the login page on (a cookie), back to English.
async fn the_console_speaks_chinese(browser: &Browser, base: &str) {
    browser.open(base, "/login").await;
    browser.follow("#lang-zh").await;
    assert_eq!(browser.path().await, "/login");
    assert_eq!(browser.text("h1").await, "登录");
    browser.sign_in(base, "rep1").await;
    browser.open(base, "/customers").await;
    let nav = browser.text("#nav-links").await;
    assert!(nav.contains("客户") && nav.contains("审批"), "{nav}");
    assert_eq!(browser.text("main h1").await, "客户");
    browser.screenshot("customers-zh").await;
    browser.open(base, "/approvals?tab=mine").await;
    assert_eq!(browser.text("main h1").await, "审批");
    browser.open(base, "/customers/1").await;
    assert!(browser.text("#sharing h2").await.contains("相关团队"));
    browser.follow("#lang-en").await;
    assert_eq!(browser.path().await, "/customers/1");
    assert!(browser.text("#nav-links").await.contains("Customers"));
    browser.sign_out().await;
}

/// A phone-sized window: the navigation folds behind "Menu", and the script served under the
/// CSP (no inline script) unfolds it.
async fn on_a_phone(browser: &Browser, base: &str) {
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.sign_in(base, "rep1").await;
    browser.open(base, "/customers").await;
    let nav = browser.client.find(Locator::Id("nav-links")).await.unwrap();
    assert!(!nav.is_displayed().await.unwrap(), "folded on a phone");
    browser.click("#nav-toggle").await;
    assert!(nav.is_displayed().await.unwrap(), "the script unfolds it");
    browser.screenshot("customers-phone").await;
    browser.client.set_window_size(1280, 900).await.unwrap();
    browser.sign_out().await;
}

/// A console client over plain HTTP: no browser, redirects not followed, cookies by hand.
struct Http {
    client: reqwest::Client,
    base: String,
}

/// The `name=value` of a `Set-Cookie` header, and the whole header.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let pair = v.split(';').next().unwrap_or_default().to_owned();
            (pair, v.to_owned())
        })
}

/// The value of `<input … name="NAME" value="…">` in a page.
fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

impl Http {
    fn new(base: &str) -> Http {
        Http {
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
        }
    }

    async fn get(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }

    async fn post(
        &self,
        path: &str,
        cookie: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// Signs `user` in through the console's form; the session cookie and its CSRF token.
    async fn sign_in(&self, user: &str) -> (String, String) {
        let (login_cookie, token) = self.login_form().await;
        let reply = self
            .post(
                "/login",
                &login_cookie,
                &[("csrf", &token), ("username", user), ("password", PASSWORD)],
                &[],
            )
            .await;
        assert_eq!(reply.status(), 303, "sign-in of {user}");
        let (session, _) = set_cookie(&reply, "warden_session").unwrap();
        let page = self
            .get("/customers/new", &session)
            .await
            .text()
            .await
            .unwrap();
        (session, input_value(&page, "csrf").expect("a csrf field"))
    }

    /// The login form's CSRF cookie and token.
    async fn login_form(&self) -> (String, String) {
        let form = self.get("/login", "").await;
        let (cookie, _) = set_cookie(&form, "warden_login_csrf").expect("a login CSRF cookie");
        let token = input_value(&form.text().await.unwrap(), "csrf").expect("a csrf field");
        (cookie, token)
    }
}

/// The stylesheet a page links.
fn page_text_link(html: &str) -> String {
    let at = html.find("<link rel=\"stylesheet\" href=\"").unwrap() + 29;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The console's own security over HTTP (no browser needed): headers, cookie flags, CSRF on
/// the login form and on every form after it, the TOTP step, and sign-out.
#[tokio::test]
async fn the_console_over_http() {
    let server = Server::start_with(Backend::Sqlite, &["--trusted-proxy", "127.0.0.1/32"]).await;
    let api = Api::login_everyone(&server).await;
    let http = Http::new(&server.base);

    // Every page: a strict CSP, no sniffing, no framing, no caching.
    let page = http.get("/login", "").await;
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header("content-security-policy");
    for part in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "script-src 'self'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    let href = page_text_link(&http.get("/login", "").await.text().await.unwrap());
    assert!(href.starts_with("/static/console.css?v="), "{href}");
    let css = http.get(&href, "").await;
    assert!(css.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));

    // The login form refuses a post without its CSRF token (another site cannot sign a
    // browser in), and accepts one with it.
    let (login_cookie, token) = http.login_form().await;
    let forged = http
        .post(
            "/login",
            &login_cookie,
            &[("username", "rep1"), ("password", PASSWORD)],
            &[],
        )
        .await;
    assert_eq!(forged.status(), 403);
    let signed_in = http
        .post(
            "/login",
            &login_cookie,
            &[
                ("csrf", &token),
                ("username", "rep1"),
                ("password", PASSWORD),
            ],
            &[],
        )
        .await;
    assert_eq!(signed_in.status(), 303);
    let (session, flags) = set_cookie(&signed_in, "warden_session").expect("a session cookie");
    assert!(
        flags.contains("HttpOnly") && flags.contains("SameSite=Strict"),
        "{flags}"
    );
    assert!(
        !flags.contains("Secure"),
        "plain HTTP: no Secure flag ({flags})"
    );

    // Behind a trusted proxy that says https, the cookie is Secure.
    let (login_cookie, token) = http.login_form().await;
    let over_tls = http
        .post(
            "/login",
            &login_cookie,
            &[
                ("csrf", &token),
                ("username", "rep1"),
                ("password", PASSWORD),
            ],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    let (_, flags) = set_cookie(&over_tls, "warden_session").unwrap();
    assert!(flags.contains("Secure"), "{flags}");

    // A signed-in form without the session's token, or with another session's, is refused.
    let record = http.get("/customers/1", &session).await;
    assert_eq!(record.status(), 200);
    let html = record.text().await.unwrap();
    let csrf = input_value(&html, "csrf").expect("a csrf field");
    let version = input_value(&html, "version").expect("a version field");
    let edit = |csrf: String| {
        let (http, session, version) = (&http, session.clone(), version.clone());
        async move {
            http.post(
                "/customers/1",
                &session,
                &[
                    ("csrf", &csrf),
                    ("version", &version),
                    ("o.phone", ""),
                    ("f.phone", "+86 21 5555 0142"),
                ],
                &[],
            )
            .await
            .status()
        }
    };
    assert_eq!(edit(String::new()).await, 403);
    assert_eq!(edit("0".repeat(64)).await, 403);
    let unchanged = api
        .request(
            Method::GET,
            "/api/v1/customers/1",
            Some(api.token("rep1")),
            Body::None,
        )
        .await;
    assert_eq!(unchanged.body["version"].to_string(), version);
    assert_eq!(edit(csrf.clone()).await, 303);

    // Without a session, pages send to the login form; another rep's record is a 404.
    assert_eq!(http.get("/customers", "").await.status(), 303);
    let other = http.get("/customers/2", &session).await;
    assert_eq!(other.status(), 404);
    let other = other.text().await.unwrap();
    assert!(
        other.contains("id=\"whoami\">rep1<") && other.contains("Not found"),
        "an error page keeps the navigation: {other}"
    );

    // Sign out ends the session at once.
    assert_eq!(
        http.post("/logout", &session, &[("csrf", &csrf)], &[])
            .await
            .status(),
        303
    );
    assert_eq!(http.get("/customers", &session).await.status(), 303);

    // A masked field's full value comes only through a reveal, which is logged first.
    let (manager, csrf) = http.sign_in("manager").await;
    let page = http
        .get("/customers/1", &manager)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"reveal-bank_account\""),
        "masked for the manager"
    );
    let full = api
        .request(
            Method::GET,
            "/api/v1/customers/1",
            Some(api.token("finance")),
            Body::None,
        )
        .await
        .body["bank_account"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !page.contains(&full),
        "the masked page does not hold the value"
    );
    let revealed = http
        .post(
            "/customers/1/reveal",
            &manager,
            &[("csrf", &csrf), ("field", "bank_account")],
            &[],
        )
        .await;
    assert_eq!(revealed.status(), 200);
    assert!(revealed.text().await.unwrap().contains(&full));
    let log = api
        .request(
            Method::GET,
            "/api/v1/audit?actor=manager&action=reveal",
            Some(api.token("auditor")),
            Body::None,
        )
        .await;
    assert_eq!(
        log.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        log.text
    );

    // A change that waits for approval opens the pending request, not an error.
    let (finance, csrf) = http.sign_in("finance").await;
    let page = http
        .get("/customers/1", &finance)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("name=\"f.name\""),
        "finance may not change the name"
    );
    let limit = input_value(&page, "o.credit_limit").expect("credit_limit is writable");
    let version = input_value(&page, "version").unwrap();
    let held = http
        .post(
            "/customers/1",
            &finance,
            &[
                ("csrf", &csrf),
                ("version", &version),
                ("o.credit_limit", &limit),
                ("f.credit_limit", "150000"),
            ],
            &[],
        )
        .await;
    assert_eq!(held.status(), 303);
    let location = held.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/approvals/"), "{location}");
    let request = http.get(&location, &finance).await.text().await.unwrap();
    assert!(request.contains("waits for approval"), "{request}");
    assert!(
        request.contains("id=\"withdraw\""),
        "the requester may withdraw"
    );

    // The dashboard counts what the list shows.
    let (rep1, _) = http.sign_in("rep1").await;
    let dashboard = http.get("/", &rep1).await.text().await.unwrap();
    assert!(
        dashboard.contains(&format!("id=\"visible-total\">{}<", harness::CUSTOMERS / 4)),
        "{dashboard}"
    );

    // Everyone may read which of their changes will wait.
    let policies = http
        .get("/approvals/policies", &rep1)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        policies.contains("Rep deletes wait for their superior"),
        "{policies}"
    );
    assert!(policies.contains("the direct superior"), "{policies}");

    // The access log viewer's CSV export is the API's, reached with the console's session.
    let (auditor, _) = http.sign_in("auditor").await;
    let viewer = http
        .get("/audit?actor=manager&action=reveal", &auditor)
        .await
        .text()
        .await
        .unwrap();
    let at = viewer.find("id=\"export\" href=\"").unwrap() + 18;
    // Attribute text as the browser reads it: askama writes `&` as `&#38;`.
    let export = viewer[at..at + viewer[at..].find('"').unwrap()]
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let csv = http.get(&export, &auditor).await;
    assert_eq!(csv.status(), 200, "{export}");
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("id,at,actor,action"), "{csv}");
    assert_eq!(csv.lines().count(), 2, "one reveal by the manager: {csv}");

    // A new customer from the console is the caller's.
    let (rep3, csrf) = http.sign_in("rep3").await;
    let created = http
        .post(
            "/customers/new",
            &rep3,
            &[
                ("csrf", &csrf),
                ("f.name", "Lotus Foods"),
                ("f.region", "East"),
            ],
            &[],
        )
        .await;
    assert_eq!(created.status(), 303);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let page = http.get(&location, &rep3).await.text().await.unwrap();
    assert!(
        page.contains("Lotus Foods") && page.contains("<strong>rep3</strong>"),
        "{page}"
    );

    // An account with a second factor: the password, then the code (a recovery code here).
    let rep2 = api.token("rep2");
    let start = api
        .request(Method::POST, "/api/v1/me/mfa/totp", Some(rep2), Body::None)
        .await;
    let secret = start.body["secret"].as_str().unwrap().to_owned();
    let totp = totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        totp_rs::Secret::Encoded(secret).to_bytes().unwrap(),
        None,
        "rep2".to_owned(),
    )
    .unwrap();
    let confirmed = api
        .request(
            Method::POST,
            "/api/v1/me/mfa/totp/confirm",
            Some(rep2),
            Body::Json(json!({"code": totp.generate_current().unwrap()})),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let recovery = confirmed.body["recovery_codes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let (login_cookie, token) = http.login_form().await;
    let first = http
        .post(
            "/login",
            &login_cookie,
            &[
                ("csrf", &token),
                ("username", "rep2"),
                ("password", PASSWORD),
            ],
            &[],
        )
        .await;
    assert_eq!(first.status(), 401, "the code is due");
    assert!(set_cookie(&first, "warden_session").is_none());
    let (login_cookie, _) = set_cookie(&first, "warden_login_csrf").unwrap();
    let step = first.text().await.unwrap();
    assert!(step.contains("name=\"totp\""), "{step}");
    let token = input_value(&step, "csrf").unwrap();
    let wrong = http
        .post(
            "/login",
            &login_cookie,
            &[
                ("csrf", &token),
                ("username", "rep2"),
                ("password", PASSWORD),
                ("totp", "000000"),
            ],
            &[],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let (login_cookie, _) = set_cookie(&wrong, "warden_login_csrf").unwrap();
    let token = input_value(&wrong.text().await.unwrap(), "csrf").unwrap();
    let second = http
        .post(
            "/login",
            &login_cookie,
            &[
                ("csrf", &token),
                ("username", "rep2"),
                ("password", PASSWORD),
                ("totp", &recovery),
            ],
            &[],
        )
        .await;
    assert_eq!(second.status(), 303);
    let (session, _) = set_cookie(&second, "warden_session").unwrap();
    let list = http.get("/customers", &session).await.text().await.unwrap();
    assert!(list.contains("<td class=\"owner\">rep2</td>"));
    assert!(!list.contains("<td class=\"owner\">rep1</td>"));

    // An access review: the admin opens it, supervisor1 revokes rep2's role, the admin closes.
    let (admin, admin_csrf) = http.sign_in("admin").await;
    let opened = http
        .post(
            "/reviews",
            &admin,
            &[
                ("csrf", &admin_csrf),
                ("name", "Q4 sales"),
                ("scope", "role:Sales Rep"),
                ("due", "2099-12-31"),
                ("undecided", "keep"),
            ],
            &[],
        )
        .await;
    assert_eq!(opened.status(), 303);
    let campaign = opened.headers()["location"].to_str().unwrap().to_owned();
    let (supervisor, csrf) = http.sign_in("supervisor1").await;
    let index = http
        .get("/reviews", &supervisor)
        .await
        .text()
        .await
        .unwrap();
    assert!(index.contains("Q4 sales"), "{index}");
    let items = http.get(&campaign, &supervisor).await.text().await.unwrap();
    let at = items
        .find("<td>rep2</td>")
        .expect("rep2's item for supervisor1");
    let row = &items[..at];
    let item = &row[row.rfind("data-item=\"").unwrap() + 11..];
    let item = &item[..item.find('"').unwrap()];
    assert!(
        !items.contains("<td>rep3</td>"),
        "only supervisor1's reports"
    );
    let decided = http
        .post(
            &format!("{campaign}/items/{item}"),
            &supervisor,
            &[
                ("csrf", &csrf),
                ("decision", "revoke"),
                ("comment", "moved"),
            ],
            &[],
        )
        .await;
    assert_eq!(decided.status(), 303);
    let closed = http
        .post(
            &format!("{campaign}/close"),
            &admin,
            &[("csrf", &admin_csrf)],
            &[],
        )
        .await;
    assert_eq!(closed.status(), 303);
    let after = http.get(&campaign, &supervisor).await.text().await.unwrap();
    assert!(after.contains("revoked"), "{after}");
    let rep2_now = http.get("/customers", &session).await.text().await.unwrap();
    assert!(
        !rep2_now.contains("<td class=\"owner\">rep2</td>"),
        "rep2's revoked role holds from the next request"
    );

    sharing_access_rules_and_view_as_over_http(&http, &api, &admin, &admin_csrf).await;
}

/// The new forms' refusals are the service's, as pages (never a 500), and what they accept is
/// what the API then answers.
async fn sharing_access_rules_and_view_as_over_http(
    http: &Http,
    api: &Api,
    admin: &str,
    admin_csrf: &str,
) {
    let (rep1, csrf) = http.sign_in("rep1").await;
    let share = |path: &'static str, name: &'static str| {
        let (rep1, csrf) = (rep1.clone(), csrf.clone());
        async move {
            let reply = http
                .post(
                    path,
                    &rep1,
                    &[
                        ("csrf", &csrf),
                        ("kind", "user"),
                        ("name", name),
                        ("access", "read"),
                    ],
                    &[],
                )
                .await;
            (reply.status(), reply.text().await.unwrap())
        }
    };
    let (status, page) = share("/customers/1/shares", "nobody").await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("no user `nobody`"), "{page}");
    let (status, _) = share("/customers/2/shares", "rep3").await;
    assert_eq!(status, 404, "rep2's customer does not exist for rep1");
    // A team place: by the owner; the API lists it.
    let team = http
        .post(
            "/customers/1/team",
            &rep1,
            &[("csrf", &csrf), ("user", "rep4"), ("access", "edit")],
            &[],
        )
        .await;
    assert_eq!(team.status(), 303);
    let listed = api.get("rep1", "/api/v1/customers/1/shares").await;
    assert!(
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "team" && s["with"]["user"] == "rep4"),
        "{}",
        listed.text
    );
    // rep4, a team member but not the owner's superior, is offered no team form.
    let (rep4, rep4_csrf) = http.sign_in("rep4").await;
    let page = http.get("/customers/1", &rep4).await.text().await.unwrap();
    assert!(!page.contains("id=\"team-form\""), "{page}");
    let refused = http
        .post(
            "/customers/1/team",
            &rep4,
            &[("csrf", &rep4_csrf), ("user", "rep3"), ("access", "read")],
            &[],
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("managed by its owner"));

    // View as needs both user and role management: the service's refusal, as a page.
    let refused = http
        .post("/view-as", &rep1, &[("csrf", &csrf), ("user", "rep2")], &[])
        .await;
    assert_eq!(refused.status(), 403);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("needs manage_users and manage_roles"));
    // A view-as cookie of someone else's view shows nothing: rep1 stays rep1.
    let issued = api
        .post("admin", "/api/v1/access/view-as", json!({"user": "rep3"}))
        .await;
    let token = issued.body["token"].as_str().unwrap().to_owned();
    let page = http
        .get("/customers", &format!("{rep1}; warden_view_as={token}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("view-as-banner"), "{page}");
    assert!(page.contains("<td class=\"owner\">rep1</td>"));
    // The administrator's own: a page view through rep3's eyes, and no POST at all.
    let viewing = format!("{admin}; warden_view_as={token}");
    let page = http.get("/customers", &viewing).await.text().await.unwrap();
    assert!(page.contains("id=\"viewing-as\">rep3<"), "{page}");
    assert!(page.contains("<td class=\"owner\">rep3</td>"));
    assert!(!page.contains("<td class=\"owner\">rep1</td>"));
    // Every page is rep3's: the dashboard and approvals render, the admin pages are refused
    // as they would be to rep3 — the banner stays on each.
    for (path, status) in [("/", 200), ("/approvals", 200), ("/admin/org", 403)] {
        let reply = http.get(path, &viewing).await;
        assert_eq!(reply.status(), status, "{path}");
        let page = reply.text().await.unwrap();
        assert!(page.contains("id=\"viewing-as\">rep3<"), "{path}: {page}");
    }
    let refused = http
        .post(
            "/customers/new",
            &viewing,
            &[("csrf", admin_csrf), ("f.name", "Forged Ltd")],
            &[],
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("read-only"));
    let exit = http
        .post("/view-as/exit", &viewing, &[("csrf", admin_csrf)], &[])
        .await;
    assert_eq!(exit.status(), 303);
    let after = api
        .request(Method::GET, "/api/v1/customers", Some(&token), Body::None)
        .await;
    assert_eq!(after.status, 401, "leaving the view ends its token");
    // A cookie left behind (another tab) shows the administrator's own view, and says so.
    let page = http.get("/customers", &viewing).await.text().await.unwrap();
    assert!(!page.contains("view-as-banner"), "{page}");
    assert!(page.contains("id=\"view-as-ended\""), "{page}");
    assert!(page.contains("id=\"whoami\">admin<"));

    // Access rules: the API's parser names the bad field; a good change is the API's.
    let save = |ip: &'static str| {
        let (admin, csrf) = (admin.to_owned(), admin_csrf.to_owned());
        async move {
            let reply = http
                .post(
                    "/admin/access-rules",
                    &admin,
                    &[
                        ("csrf", &csrf),
                        ("target", "user:rep4"),
                        ("ip_allow", ip),
                        ("time_zone", "UTC"),
                        ("from", "09:00"),
                        ("to", "18:00"),
                    ],
                    &[],
                )
                .await;
            (reply.status(), reply.text().await.unwrap())
        }
    };
    let (status, page) = save("10.0.0.0/33").await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("ip_allow[0]"), "{page}");
    let (status, _) = save("127.0.0.1/32").await;
    assert_eq!(status, 303);
    let rules = api.get("admin", "/api/v1/users/rep4/access").await;
    assert_eq!(
        rules.body["ip_allow"],
        json!(["127.0.0.1/32"]),
        "{}",
        rules.text
    );
    let page = http
        .get("/admin/access-rules?target=user:rep4", admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("127.0.0.1/32"), "{page}");
    let (status, _) = save("").await;
    assert_eq!(status, 303);
    // Without manage_roles or manage_users: refused.
    assert_eq!(http.get("/admin/access-rules", &rep1).await.status(), 403);

    // A sharing rule's condition is the documented JSON form; anything else names `when`.
    let bad = http
        .get(
            "/admin/sharing-rules/new?name=x&object=customers&with_kind=user&with_name=rep4&when=%7Bregion",
            admin,
        )
        .await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("when"));
    // Rules are read by manage_roles or view_audit only.
    assert_eq!(http.get("/admin/sharing-rules", &rep1).await.status(), 403);

    // A restriction rule through the form, then deleted after its own what-if.
    let created = http
        .post(
            "/admin/restriction-rules/new",
            admin,
            &[
                ("csrf", admin_csrf),
                ("name", "No VIP outside Finance"),
                ("object", "customers"),
                ("applies", "except_role"),
                ("applies_name", "Finance"),
                ("actions", "read"),
                ("actions", "update"),
                ("only", r#"{"not": {"vip": true}}"#),
            ],
            &[],
        )
        .await;
    assert_eq!(created.status(), 303);
    let rules = api.get("admin", "/api/v1/restriction-rules").await;
    let rule = &rules.body["items"][0];
    assert_eq!(
        rule["applies_to"]["except_role"], "Finance",
        "{}",
        rules.text
    );
    assert_eq!(rule["actions"], json!(["read", "update"]), "{}", rules.text);
    let id = rule["id"].as_i64().unwrap();
    let preview = http
        .get(&format!("/admin/restriction-rules/{id}/delete"), admin)
        .await;
    assert_eq!(preview.status(), 200);
    assert!(preview.text().await.unwrap().contains("id=\"whatif\""));
    let deleted = http
        .post(
            &format!("/admin/restriction-rules/{id}/delete"),
            admin,
            &[("csrf", admin_csrf)],
            &[],
        )
        .await;
    assert_eq!(deleted.status(), 303);
    let rules = api.get("admin", "/api/v1/restriction-rules").await;
    assert_eq!(rules.body["items"], json!([]), "{}", rules.text);
    // Only manage_roles changes rules: the auditor reads them but may not add one.
    let (auditor, auditor_csrf) = http.sign_in("auditor").await;
    assert_eq!(
        http.get("/admin/restriction-rules", &auditor)
            .await
            .status(),
        200
    );
    let refused = http
        .post(
            "/admin/restriction-rules/new",
            &auditor,
            &[
                ("csrf", &auditor_csrf),
                ("name", "x"),
                ("object", "customers"),
                ("applies", "everyone"),
                ("only", r#"{"status": "active"}"#),
            ],
            &[],
        )
        .await;
    assert_eq!(refused.status(), 403);
}
