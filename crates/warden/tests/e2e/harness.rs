//! The harness of the end-to-end suite: the real `warden` binary started as a child process
//! on a free port (killed when the guard drops), and a small HTTP client that logs every demo
//! user in and answers each request with its status and JSON body. When a test ends without
//! panicking, the guard's last step is `warden check` on the server's database (SQLite data
//! directory or PostgreSQL): any inconsistency the test left behind fails it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde_json::Value;

/// The password every demo user gets.
pub const PASSWORD: &str = "e2e-demo-password-42";
/// How many customers the demo is seeded with.
pub const CUSTOMERS: usize = 200;
/// The demo's users (PRODUCT.md, "Demo organisation").
pub const USERS: &[&str] = &[
    "admin",
    "admin2",
    "manager",
    "supervisor1",
    "supervisor2",
    "rep1",
    "rep2",
    "rep3",
    "rep4",
    "support",
    "finance",
    "auditor",
    "portal-acme",
];
/// The demo's sales reps, who own every seeded customer.
pub const REPS: &[&str] = &["rep1", "rep2", "rep3", "rep4"];

/// Processes launched so far: names each one's output files.
static LAUNCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How long the server may take to seed and come up.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// Where the demo keeps its data.
pub enum Backend {
    /// A fresh SQLite data directory.
    Sqlite,
    /// A fresh PostgreSQL database (its URL).
    Postgres(String),
}

/// A running `warden demo`; killed (and reaped) on drop. When dropped during a panic, it
/// prints the server's output so a failed check comes with the server's side of the story.
pub struct Server {
    child: Child,
    pub name: &'static str,
    pub base: String,
    stdout: PathBuf,
    stderr: PathBuf,
    /// The SQLite data directory, if the server has one.
    data: Option<PathBuf>,
    /// How `warden check` and a restart reach the database.
    database: Database,
    /// Whether the guard runs `warden check` when dropped outside a panic.
    final_check: bool,
    /// The data directory and the output files; removed after the child is gone.
    _dir: Arc<tempfile::TempDir>,
}

/// Where a server's database is, as arguments of `warden check` / `warden serve`, and the
/// environment it was started with (the master key may be in `WARDEN_MASTER_KEY`).
#[derive(Clone)]
struct Database {
    args: Vec<OsString>,
    env: Vec<(String, String)>,
}

impl Database {
    fn new(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Database {
        Database {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

impl Server {
    /// Seeds the demo (200 customers) on `backend` and serves it; returns once `/healthz`
    /// answers. Fails with the server's output if it exits or does not come up in time.
    pub async fn start(backend: Backend) -> Server {
        Server::start_with(backend, &[]).await
    }

    /// [`Server::start`] with further arguments for `warden demo` (e.g. `--trusted-proxy`).
    pub async fn start_with(backend: Backend, extra_args: &[&str]) -> Server {
        Server::start_with_env(backend, extra_args, &[]).await
    }

    /// [`Server::start_with`] with further environment variables (e.g. `WARDEN_MASTER_KEY`).
    pub async fn start_with_env(
        backend: Backend,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let name = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        };
        let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
        let data = match backend {
            Backend::Sqlite => Some(dir.path().join("data")),
            Backend::Postgres(_) => None,
        };
        let key_file = dir.path().join("master.key");
        let database = match (&backend, &data) {
            (Backend::Postgres(url), _) => Database::new(
                &[
                    "--database-url".as_ref(),
                    url.as_ref(),
                    "--key-file".as_ref(),
                    key_file.as_os_str(),
                ],
                env,
            ),
            (Backend::Sqlite, Some(data)) => {
                Database::new(&["--data".as_ref(), data.as_os_str()], env)
            }
            (Backend::Sqlite, None) => unreachable!("SQLite has a data directory"),
        };
        Server::launch(name, dir.clone(), data.clone(), database, |command| {
            command.arg("demo");
            match (&backend, &data) {
                (Backend::Postgres(url), _) => command
                    .arg("--database-url")
                    .arg(url)
                    .arg("--key-file")
                    .arg(key_file.as_path()),
                (Backend::Sqlite, Some(data)) => command.arg("--data").arg(data),
                (Backend::Sqlite, None) => unreachable!("SQLite has a data directory"),
            };
            command
                .args(["--customers", &CUSTOMERS.to_string()])
                .args(["--password", PASSWORD])
                .args(extra_args)
                .envs(env.iter().copied());
        })
        .await
    }

    /// `warden serve --data DATA` on an existing data directory (e.g. a restored one).
    pub async fn serve_data(data: &Path, env: &[(&str, &str)], extra_args: &[&str]) -> Server {
        let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
        let database = Database::new(&["--data".as_ref(), data.as_os_str()], env);
        Server::launch("sqlite", dir, Some(data.to_owned()), database, |command| {
            command
                .arg("serve")
                .arg("--data")
                .arg(data)
                .args(extra_args)
                .envs(env.iter().copied());
        })
        .await
    }

    /// The SQLite data directory (a demo on SQLite, or the one given to `serve_data`).
    pub fn data_dir(&self) -> &Path {
        self.data
            .as_deref()
            .expect("a server with a data directory")
    }

    /// Starts the binary with the arguments `configure` adds, then `--listen`; retries on
    /// another port when the one picked was taken.
    async fn launch(
        name: &'static str,
        dir: Arc<tempfile::TempDir>,
        data: Option<PathBuf>,
        database: Database,
        configure: impl Fn(&mut Command),
    ) -> Server {
        let started = Instant::now();
        // The port is free when picked but could be taken before the child binds it: then the
        // child exits with "cannot listen", and we try another (the data is already seeded).
        for attempt in 1..=3 {
            let listen = format!("127.0.0.1:{}", free_port());
            // Several processes (restarts, a second node) may share the directory.
            let n = LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let stdout = dir.path().join(format!("stdout.{n}.{attempt}.log"));
            let stderr = dir.path().join(format!("stderr.{n}.{attempt}.log"));
            let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
            command
                .env_remove("WARDEN_DATABASE_URL")
                .env_remove("WARDEN_MASTER_KEY");
            configure(&mut command);
            command
                .args(["--listen", &listen])
                .env_remove("WARDEN_DEMO_PASSWORD")
                .env("WARDEN_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(File::create(&stdout).expect("a stdout file"))
                .stderr(File::create(&stderr).expect("a stderr file"));
            let child = command.spawn().expect("start the warden binary");
            let mut server = Server {
                child,
                name,
                base: format!("http://{listen}"),
                stdout,
                stderr,
                data: data.clone(),
                database: database.clone(),
                final_check: true,
                _dir: dir.clone(),
            };
            match server.wait_until_up().await {
                Ok(()) => {
                    eprintln!(
                        "e2e [{name}] warden started and serving at {} after {} ms",
                        server.base,
                        started.elapsed().as_millis()
                    );
                    return server;
                }
                Err(output) if output.contains("cannot listen") && attempt < 3 => {
                    server.final_check = false;
                    eprintln!("e2e [{name}] {listen} was taken; trying another port");
                }
                Err(output) => {
                    panic!("e2e [{name}] warden did not come up at {listen}:\n{output}")
                }
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Polls `/healthz`; `Err(output)` when the child exits or the deadline passes.
    async fn wait_until_up(&mut self) -> Result<(), String> {
        let http = http_client();
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return Err(format!("it exited with {status}\n{}", self.output()));
            }
            if let Ok(response) = http
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                if status == 200 && text == "ok" {
                    return Ok(());
                }
                return Err(format!(
                    "GET /healthz answered {status} {text:?}\n{}",
                    self.output()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on /healthz within {} s\n{}",
                    STARTUP_DEADLINE.as_secs(),
                    self.output()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the server printed so far.
    pub fn output(&self) -> String {
        let read = |path: &PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            read(&self.stdout),
            read(&self.stderr)
        )
    }
}

impl Server {
    /// Kills the server with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `warden serve` on the same database (after [`Server::kill`]), on a new port; returns
    /// once `/healthz` answers.
    pub async fn restart(&mut self) {
        self.kill();
        let database = self.database.clone();
        let mut fresh = Server::launch(
            self.name,
            self._dir.clone(),
            self.data.clone(),
            database.clone(),
            |command| {
                command
                    .arg("serve")
                    .args(&database.args)
                    .envs(database.env.iter().map(|(k, v)| (k, v)));
            },
        )
        .await;
        // The old guard's child is gone; only the new one is checked when dropped.
        std::mem::swap(self, &mut fresh);
        fresh.final_check = false;
    }

    /// A second `warden serve` on the same database (a second node behind a load balancer),
    /// with the same master key; returns once `/healthz` answers. The first node's guard runs
    /// the final check.
    pub async fn second_node(&self) -> Server {
        let database = self.database.clone();
        let mut node = Server::launch(
            self.name,
            self._dir.clone(),
            self.data.clone(),
            database.clone(),
            |command| {
                command
                    .arg("serve")
                    .args(&database.args)
                    .envs(database.env.iter().map(|(k, v)| (k, v)));
            },
        )
        .await;
        node.final_check = false;
        node
    }

    /// `warden check` on the server's database: (exit status ok, what it printed).
    pub fn check(&self) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_warden"))
            .env_remove("WARDEN_DATABASE_URL")
            .env_remove("WARDEN_MASTER_KEY")
            .arg("check")
            .args(&self.database.args)
            .envs(self.database.env.iter().map(|(k, v)| (k, v)))
            .env("WARDEN_LOG", "warn")
            .output()
            .expect("run warden check");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("e2e [{}] server output:\n{}", self.name, self.output());
            return;
        }
        if !self.final_check {
            return;
        }
        // The last step of every test that got this far: the database it leaves behind is
        // consistent (the server is stopped first, so nothing writes meanwhile).
        let (ok, text) = self.check();
        assert!(
            ok,
            "e2e [{}] warden check after the test found problems:\n{text}\n{}",
            self.name,
            self.output()
        );
        eprintln!(
            "e2e [{}] warden check: {}",
            self.name,
            text.lines().last().unwrap_or_default()
        );
    }
}

/// One answer: the status, and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<String>,
}

impl Reply {
    /// `field` of a 422 body.
    pub fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or_default()
    }
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(Value),
    /// Sent as it is, with `Content-Type: application/json`.
    Raw(&'a str),
}

/// The demo's HTTP API, with a token for every demo user.
pub struct Api {
    http: reqwest::Client,
    pub base: String,
    /// The backend's name, for assertion messages.
    pub name: &'static str,
    tokens: HashMap<String, String>,
}

impl Api {
    /// Logs every demo user in.
    pub async fn login_everyone(server: &Server) -> Api {
        let mut api = Api {
            http: http_client(),
            base: server.base.clone(),
            name: server.name,
            tokens: HashMap::new(),
        };
        for user in USERS {
            let reply = api.login(user, PASSWORD).await;
            assert_eq!(
                reply.status, 200,
                "[{}] login of {user}: {}",
                api.name, reply.text
            );
            let token = reply.body["token"]
                .as_str()
                .unwrap_or_else(|| {
                    panic!("[{}] login of {user}: no token: {}", api.name, reply.text)
                })
                .to_owned();
            api.tokens.insert((*user).to_owned(), token);
        }
        api
    }

    /// The same logins against another server: another node on the same database.
    pub fn on(&self, server: &Server) -> Api {
        Api {
            http: http_client(),
            base: server.base.clone(),
            name: server.name,
            tokens: self.tokens.clone(),
        }
    }

    /// The token `user` logged in with.
    pub fn token(&self, user: &str) -> &str {
        self.tokens
            .get(user)
            .unwrap_or_else(|| panic!("no token for {user}"))
    }

    pub async fn login(&self, username: &str, password: &str) -> Reply {
        self.request(
            Method::POST,
            "/api/v1/login",
            None,
            Body::Json(serde_json::json!({"username": username, "password": password})),
        )
        .await
    }

    /// Any request; `token` goes into `Authorization: Bearer`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body<'_>,
    ) -> Reply {
        self.request_with_headers(method, path, token, body, &[])
            .await
    }

    /// [`Api::request`] with further request headers (e.g. `X-Forwarded-For`).
    pub async fn request_with_headers(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body<'_>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw(text) => request
                .header("content-type", "application/json")
                .body(text.to_owned()),
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("[{}] {method} {path}: {e}", self.name));
        let status = response.status().as_u16();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("[{}] {method} {path}: reading the body: {e}", self.name));
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            text,
            www_authenticate,
            retry_after,
        }
    }

    pub async fn get(&self, user: &str, path: &str) -> Reply {
        self.request(Method::GET, path, Some(self.token(user)), Body::None)
            .await
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(self.token(user)), Body::Json(body))
            .await
    }

    pub async fn patch(&self, user: &str, path: &str, body: Value) -> Reply {
        self.request(
            Method::PATCH,
            path,
            Some(self.token(user)),
            Body::Json(body),
        )
        .await
    }

    pub async fn delete(&self, user: &str, path: &str) -> Reply {
        self.request(Method::DELETE, path, Some(self.token(user)), Body::None)
            .await
    }

    /// Every customer `user` may read, paging through `next_cursor` `limit` at a time;
    /// checks the pages are in ascending id order without repeats.
    pub async fn all_customers(&self, user: &str, limit: usize) -> Vec<Value> {
        let mut items: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..=CUSTOMERS * 2 {
            let mut url = Url::parse(&format!("{}/api/v1/customers", self.base)).expect("a URL");
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
            if let Some(cursor) = &cursor {
                url.query_pairs_mut().append_pair("cursor", cursor);
            }
            let path = &url.as_str()[self.base.len()..];
            let reply = self.get(user, path).await;
            assert_eq!(
                reply.status, 200,
                "[{}] {user}: GET {path}: {}",
                self.name, reply.text
            );
            let page = reply.body["items"].as_array().unwrap_or_else(|| {
                panic!(
                    "[{}] {user}: GET {path}: no items: {}",
                    self.name, reply.text
                )
            });
            assert!(
                page.len() <= limit,
                "[{}] {user}: GET {path}: {} items on a page of {limit}",
                self.name,
                page.len()
            );
            items.extend(page.iter().cloned());
            match &reply.body["next_cursor"] {
                Value::Null => {
                    let ids: Vec<i64> = items.iter().map(id).collect();
                    assert!(
                        ids.windows(2).all(|w| w[0] < w[1]),
                        "[{}] {user}: the pages are not in strictly ascending id order: {ids:?}",
                        self.name
                    );
                    return items;
                }
                Value::String(next) => {
                    assert!(
                        !page.is_empty(),
                        "[{}] {user}: GET {path}: an empty page with a next_cursor",
                        self.name
                    );
                    cursor = Some(next.clone());
                }
                other => panic!(
                    "[{}] {user}: GET {path}: next_cursor is {other}, not a string or null",
                    self.name
                ),
            }
        }
        panic!("[{}] {user}: the list never ends", self.name)
    }
}

/// The `id` of a record.
pub fn id(record: &Value) -> i64 {
    record["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("a record without an id: {record}"))
}

/// The ids of records.
pub fn ids(records: &[Value]) -> BTreeSet<i64> {
    records.iter().map(id).collect()
}

/// Who owns what, as the administrator sees it right after seeding.
#[derive(Debug, Clone)]
pub struct Truth {
    pub owner_of: BTreeMap<i64, String>,
}

impl Truth {
    /// The customers owned by any of `owners`.
    pub fn owned_by(&self, owners: &[&str]) -> BTreeSet<i64> {
        self.owner_of
            .iter()
            .filter(|(_, owner)| owners.contains(&owner.as_str()))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every customer.
    pub fn all(&self) -> BTreeSet<i64> {
        self.owner_of.keys().copied().collect()
    }

    /// The first customers of `owner`, in id order.
    pub fn some_of(&self, owner: &str, n: usize) -> Vec<i64> {
        self.owned_by(&[owner]).into_iter().take(n).collect()
    }
}
