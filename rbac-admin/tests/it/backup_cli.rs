//! `rbac-admin backup ...` subcommands, run through the library entry point with a real policy
//! database and a real application database.

use crate::backup_support;

use backup_support::*;
use clap::Parser;
use rbac_admin::backup::cli::{BackupArgs, run};
use rbac_admin::cli::Format;
use rbac_admin::context::Context;
use rbac_admin::error::Exit;

#[derive(Debug, Parser)]
struct Harness {
    #[command(flatten)]
    args: BackupArgs,
}

struct Cli {
    env: Env,
    config: std::path::PathBuf,
    policy_url: String,
}

impl Cli {
    fn new() -> Cli {
        let env = Env::new(100);
        let config = env.dir.path().join("backup.toml");
        std::fs::write(&config, env.config_text("")).unwrap();
        let policy_url = format!("sqlite://{}", env.dir.path().join("policy.db").display());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = rbac_core::store::Store::connect(&policy_url).await.unwrap();
            let policy = rbac_core::Policy::from_toml_str(POLICY).unwrap();
            store
                .import(&rbac_core::store::ChangeContext::new("setup"), &policy)
                .await
                .unwrap();
        });
        Cli {
            env,
            config,
            policy_url,
        }
    }

    fn run(&self, actor: &str, format: Format, args: &[&str]) -> (Result<Exit, String>, String) {
        let mut argv = vec!["backup", "--config", self.config.to_str().unwrap()];
        argv.extend_from_slice(args);
        let parsed = Harness::try_parse_from(argv).unwrap();
        let ctx = Context {
            db_url: self.policy_url.clone(),
            actor: Some(actor.into()),
            comment: None,
            format,
            color: false,
            interactive: false,
            progress_bars: false,
        };
        let mut out = Vec::new();
        let result = run(&ctx, &parsed.args, &mut out).map_err(|e| format!("{:?}: {e}", e.exit()));
        (result, String::from_utf8(out).unwrap())
    }
}

#[test]
fn create_list_verify_restore_and_logs_from_the_command_line() {
    let cli = Cli::new();
    let (r, out) = cli.run("ops", Format::Text, &["create"]);
    assert_eq!(r, Ok(Exit::Ok), "{out}");
    assert!(out.starts_with("created "), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();

    let (r, out) = cli.run("ops", Format::Json, &["list"]);
    assert_eq!(r, Ok(Exit::Ok));
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["scope"], "all");

    let (r, out) = cli.run("ops", Format::Text, &["verify", &id, "--deep"]);
    assert_eq!(r, Ok(Exit::Ok));
    assert!(out.contains(": ok ("), "{out}");

    exec(&cli.env.db, "DELETE FROM invoices WHERE id <= 10;");
    let (r, out) = cli.run("ops", Format::Text, &["restore", &id, "--dry-run"]);
    assert_eq!(r, Ok(Exit::Ok));
    assert!(out.starts_with("dry run from"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("invoices") && l.split_whitespace().nth(1) == Some("10")),
        "{out}"
    );
    assert_eq!(table(&cli.env.db, "invoices").len(), 190);

    // Without a terminal and without --yes, a restore shows the dry run and refuses.
    let (r, out) = cli.run("ops", Format::Text, &["restore", &id]);
    assert!(
        r.as_ref().unwrap_err().contains("without confirmation"),
        "{r:?}"
    );
    assert!(out.starts_with("dry run from"));
    assert_eq!(table(&cli.env.db, "invoices").len(), 190);

    let (r, out) = cli.run("ops", Format::Text, &["restore", "--latest", "--yes"]);
    assert_eq!(r, Ok(Exit::Ok), "{out}");
    assert!(out.contains("restored from"), "{out}");
    assert_eq!(table(&cli.env.db, "invoices").len(), 200);

    let (r, _) = cli.run("alice", Format::Text, &["create"]);
    assert!(r.as_ref().unwrap_err().starts_with("Denied"), "{r:?}");
    let (r, out) = cli.run("alice", Format::Text, &["create", "--scope", "tenant:acme"]);
    assert_eq!(r, Ok(Exit::Ok), "{out}");

    let (r, out) = cli.run("ops", Format::Json, &["logs", "--status", "denied"]);
    assert_eq!(r, Ok(Exit::Ok));
    let logs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(logs[0]["actor"], "alice");

    // Ids are validated before anything runs: no path traversal through an id.
    let err = Harness::try_parse_from(["backup", "show", "../../etc"]).unwrap_err();
    assert!(err.to_string().contains("invalid backup id"), "{err}");
    let archive = cli.env.dir.path().join("b.tar");
    let (r, out) = cli.run(
        "ops",
        Format::Text,
        &["download", &id, "-o", archive.to_str().unwrap()],
    );
    assert_eq!(r, Ok(Exit::Ok), "{out}");
    assert!(std::fs::metadata(&archive).unwrap().len() > 0);
    let (r, _) = cli.run("ops", Format::Text, &["delete", &id, "--yes"]);
    assert_eq!(r, Ok(Exit::Ok));
}
