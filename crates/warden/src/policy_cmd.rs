//! `warden policy`: export the organisation's permission structure as one TOML file, and
//! apply such a file (what-if first, then one atomic change, or one approval request under
//! four eyes). The format and the steps of apply are in `warden_service`'s `policy_file`.
//!
//! stdout carries only the file (export) or the report (apply); where the master key came
//! from goes to stderr, so `warden policy export > policy.toml` is the file alone.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use warden_service::{Config, ItemChangeKind, Outcome, PolicyPlan, Warden};
use warden_store::{Store, SQLITE_FILE};

use crate::{key_file_path, now_ms};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the organisation's policy (units, roles with grants, field and access rules,
    /// object controls, sharing and restriction rules, approval policies, four eyes) as TOML.
    Export(DbArgs),
    /// Make the database match a policy file: print what changes (items, and customers each
    /// user gains and loses), then apply it all in one transaction — or, with four eyes on,
    /// as one approval request for a second administrator.
    Apply(ApplyArgs),
}

/// Where the database and its master key are.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Data directory (SQLite database).
    #[arg(long, default_value = "./warden-data", conflicts_with = "database_url")]
    data: PathBuf,
    /// Database URL instead of a data directory: postgres://… (or sqlite://…).
    #[arg(long, env = "WARDEN_DATABASE_URL")]
    database_url: Option<String>,
    /// The master key file (default: <data>/master.key; required with --database-url unless
    /// WARDEN_MASTER_KEY is set). Created (mode 0600) when the database is new.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The policy file (`-` reads stdin).
    file: PathBuf,
    #[command(flatten)]
    db: DbArgs,
    /// Show what would change, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The user applying the file, who must hold manage_roles (and, under four eyes, waits for
    /// another holder). Optional only while the database has no users (its first policy).
    #[arg(long = "as", value_name = "USERNAME")]
    as_user: Option<String>,
}

impl DbArgs {
    /// Opens (or, for a data directory, creates) the database; says where the key came from
    /// on stderr.
    async fn open(&self, create: bool) -> anyhow::Result<Warden> {
        if !create && self.database_url.is_none() && !self.data.join(SQLITE_FILE).exists() {
            bail!("{} holds no Warden database", self.data.display());
        }
        if create && self.database_url.is_none() {
            std::fs::create_dir_all(&self.data)
                .with_context(|| format!("cannot create {}", self.data.display()))?;
        }
        let key_file = key_file_path(
            &self.data,
            self.database_url.as_deref(),
            self.key_file.as_deref(),
        )?;
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => Store::dir_url(&self.data)?,
        };
        let unlocked = Store::connect_with_key_file(&url, &key_file).await?;
        eprintln!(
            "Using {} (fingerprint {}).",
            unlocked.origin,
            unlocked.store.master_fingerprint()
        );
        Ok(Warden::new(unlocked.store, Config::default()).await?)
    }
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Export(args) => {
            let warden = args.open(false).await?;
            print!("{}", warden.export_policy().await?);
            Ok(())
        }
        PolicyCommand::Apply(args) => apply(args).await,
    }
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the policy file from stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn print_plan(plan: &PolicyPlan) {
    if plan.is_empty() {
        println!("The database already matches the file: nothing to change.");
        return;
    }
    let count = |kind| plan.changes.iter().filter(|c| c.change == kind).count();
    println!(
        "Changes ({} added, {} changed, {} removed):",
        count(ItemChangeKind::Added),
        count(ItemChangeKind::Changed),
        count(ItemChangeKind::Removed)
    );
    print!("{}", plan.changes_text());
    println!();
    if plan.access.is_empty() {
        println!("Access: no user gains or loses any customer.");
    } else {
        println!("Access to customers (user, action, gained, lost):");
        print!("{}", plan.access_text());
    }
}

async fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let text = read_file(&args.file)?;
    let warden = args.db.open(true).await?;
    let now = now_ms();
    let subject = match &args.as_user {
        Some(username) => Some(warden.operator_subject(username, now).await?),
        None => None,
    };
    if args.dry_run {
        let plan = warden.plan_policy(subject.as_ref(), &text, now).await?;
        print_plan(&plan);
        println!();
        println!("Dry run: nothing was changed.");
        return Ok(());
    }
    let (plan, outcome) = warden.apply_policy(subject.as_ref(), &text, now).await?;
    print_plan(&plan);
    if plan.is_empty() {
        return Ok(());
    }
    println!();
    match outcome {
        Outcome::Done(()) => println!("Applied in one transaction."),
        Outcome::Pending(view) => println!(
            "Four eyes is on: approval request {} waits for {} (approve it with POST \
             /api/v1/approvals/{}/approve).",
            view.id,
            view.steps
                .first()
                .map(|s| s.approvers.join(", "))
                .unwrap_or_default(),
            view.id
        ),
    }
    Ok(())
}
