//! `warden check`: runs the store's consistency check on a data directory or a database URL,
//! prints every problem, and fails when there is one.

use anyhow::bail;

use crate::audit_cmd::LogArgs;

/// At most this many problems are printed; the count says how many there were.
const SHOWN: usize = 200;

pub async fn run(args: LogArgs) -> anyhow::Result<()> {
    let store = args.open().await?;
    let report = store.check_consistency().await?;
    store.close().await;
    println!(
        "Checked {} units, {} users, {} customers, {} shares and {} access log entries.",
        report.units, report.users, report.customers, report.shares, report.log_entries
    );
    for problem in report.problems.iter().take(SHOWN) {
        println!("  PROBLEM {problem}");
    }
    if report.problems.len() > SHOWN {
        println!("  … and {} more", report.problems.len() - SHOWN);
    }
    match report.problems.len() {
        0 => {
            println!("The database is consistent: 0 problems.");
            Ok(())
        }
        n => bail!("the database is NOT consistent: {n} problem(s) found"),
    }
}
