//! Drives the real `rbac-admin` binary.

use assert_cmd::Command;
use predicates::prelude::*;

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/policies/erp.toml");
const QUERIES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/policies/erp-queries.csv"
);

fn admin() -> Command {
    Command::cargo_bin("rbac-admin").unwrap()
}

#[test]
fn batch_prints_one_decision_a_query_in_order() {
    let expected =
        "allow\ndeny\nallow\ndeny\nallow\ndeny\nallow\nallow\ndeny\nallow\nallow\ndeny\ndeny\n";
    admin()
        .args(["check", "--policy", POLICY, "--batch", QUERIES])
        .assert()
        .success()
        .stdout(expected)
        .stderr("");
}

#[test]
fn explain_adds_the_reason() {
    admin()
        .args([
            "check",
            "--policy",
            POLICY,
            "--explain",
            "dave",
            "acme",
            "finance.invoices.delete",
        ])
        .assert()
        .code(2)
        .stdout(
            "deny: `dave` in tenant `acme`, `finance.invoices.delete`: role `intern` denies \
             `finance.invoices.delete` (global rule); a deny wins over every grant\n",
        );
}

#[test]
fn a_single_check_exits_0_on_allow_and_2_on_deny() {
    admin()
        .args([
            "check",
            "--policy",
            POLICY,
            "alice",
            "acme",
            "finance.invoices.approve",
        ])
        .assert()
        .code(0)
        .stdout("allow\n");
    admin()
        .args([
            "check",
            "--policy",
            POLICY,
            "ops",
            "",
            "system.backup.restore",
        ])
        .assert()
        .code(0);
    admin()
        .args([
            "check",
            "--policy",
            POLICY,
            "alice",
            "globex",
            "finance.invoices.approve",
        ])
        .assert()
        .code(2)
        .stdout("deny\n");
    // A malformed name is refused (exit 3), as `--batch` refuses it: a typo is not a deny.
    for (query, needle) in [
        (["alice", "acme", "Finance Invoices"], "bad permission"),
        (["alice", "Acme!", "finance.invoices.read"], "bad tenant"),
        (["", "acme", "finance.invoices.read"], "bad subject"),
    ] {
        admin()
            .args(["check", "--policy", POLICY])
            .args(query)
            .assert()
            .code(3)
            .stdout("")
            .stderr(predicates::str::contains(needle));
    }
}

#[test]
fn malformed_batch_lines_are_reported_with_their_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("q.csv");
    std::fs::write(
        &queries,
        "alice,acme,finance.invoices.read\n\nalice,acme\n# comment\nbob,acme,Finance.X\nbob,acme,finance.invoices.read\n",
    )
    .unwrap();
    admin()
        .args(["check", "--policy", POLICY, "--batch"])
        .arg(&queries)
        .assert()
        .code(3)
        .stdout("allow\nerror\nerror\nallow\n")
        .stderr(predicate::str::contains(
            "q.csv:3: expected 3 fields `subject,tenant,permission`, found 2",
        ))
        .stderr(predicate::str::contains(
            "q.csv:5: bad permission: `Finance.X` has the character `F`",
        ));
}

/// Queries are answered in chunks of 256 through `check_batch`, which reads ahead once a
/// snapshot's subjects pass 4 MiB (70,000 here): every query still gets its own answer, in
/// order, with `error` in the place of each malformed line: right after a full chunk (lines
/// 2–257 are 256 queries), in runs, after blank and comment lines (so line numbers are the
/// file's), and before a tail that only the end of the input answers.
#[test]
fn long_batches_answer_every_line_in_place_across_chunks() {
    use std::fmt::Write as _;
    let users = 70_000;
    let mut csv = String::new();
    for i in 0..700 {
        writeln!(csv, "p, group{i}, data{}, read", i / 10).unwrap();
    }
    for i in 0..users {
        writeln!(csv, "g, user{i}, group{}", i / 100).unwrap();
    }
    let model = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n\
                 [role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n\
                 [matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n";
    let engine = rbac_core::Engine::new(&rbac_core::casbin::import(model, &csv).unwrap());
    let malformed_at = [1, 258, 259, 260, 516, 700, 900];
    let skipped_at = [600, 601, 602];
    let mut text = String::new();
    let mut queries = Vec::new();
    for line in 1..=1_000 {
        if malformed_at.contains(&line) {
            text.push_str("user1,,\n");
            queries.push((line, None));
            continue;
        }
        if skipped_at.contains(&line) {
            text.push_str(["", "# a comment", "   "][line - 600]);
            text.push('\n');
            continue;
        }
        // Known and unknown users, each one's own object or any (some unknown), two actions.
        let user = line * 7_919 % (users + 5_000);
        let object = if line % 2 == 0 {
            user / 1_000
        } else {
            line * 31 % 80
        };
        let action = if line % 9 == 0 { "write" } else { "read" };
        let query = (
            format!("user{user}"),
            String::new(),
            format!("data{object}.{action}"),
        );
        writeln!(text, "{},,{}", query.0, query.2).unwrap();
        queries.push((line, Some(query)));
    }
    let snapshot = engine.snapshot();
    // Whole, and as a pipe delivers it: in pieces that end anywhere, so that lines are put
    // together across reads (the stdin test below is the one that watches answers' timing).
    for (explain, trickle) in [(false, false), (true, false), (false, true), (true, true)] {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let summary = if trickle {
            let input = Trickle {
                text: text.as_bytes(),
                piece: 0,
            };
            let options = rbac_admin::check::BatchOptions {
                explain,
                json_lines: false,
            };
            rbac_admin::check::run_batch_from(&engine, input, "q.csv", options, &mut out, &mut err)
                .unwrap()
        } else {
            rbac_admin::check::run_batch(&engine, &text, "q.csv", explain, &mut out, &mut err)
                .unwrap()
        };
        let expected: Vec<String> = queries
            .iter()
            .map(|(_, q)| match q {
                None => "error".to_owned(),
                Some((s, t, p)) if explain => snapshot.explain(s, t, p).to_string(),
                Some((s, t, p)) => snapshot.check(s, t, p).to_string(),
            })
            .collect();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            expected,
            "explain: {explain}"
        );
        let allowed = expected.iter().filter(|l| l.starts_with("allow")).count();
        assert!(
            allowed > 100 && allowed < 900,
            "a mix of answers: {allowed} allowed"
        );
        assert_eq!(
            summary,
            rbac_admin::check::BatchSummary {
                decided: 1_000 - malformed_at.len() - skipped_at.len(),
                allowed,
                malformed: malformed_at.len(),
            }
        );
        let reported: Vec<String> = String::from_utf8(err)
            .unwrap()
            .lines()
            .map(|l| l.split(':').take(2).collect::<Vec<_>>().join(":"))
            .collect();
        let at: Vec<String> = malformed_at.iter().map(|l| format!("q.csv:{l}")).collect();
        assert_eq!(reported, at);
    }
    // JSON Lines: each object carries its query's line across chunks, errors and reads.
    for (explain, trickle) in [(false, false), (true, false), (false, true)] {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let options = rbac_admin::check::BatchOptions {
            explain,
            json_lines: true,
        };
        let input = reader(text.as_bytes(), trickle);
        rbac_admin::check::run_batch_from(&engine, input, "q.csv", options, &mut out, &mut err)
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        let got: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), queries.len());
        for (object, (line, query)) in got.iter().zip(&queries) {
            assert_eq!(object["line"], *line, "{object}");
            let Some((s, t, p)) = query else {
                assert!(
                    object["error"]
                        .as_str()
                        .unwrap()
                        .starts_with("bad permission")
                );
                continue;
            };
            let why = snapshot.explain(s, t, p);
            let mut expected = serde_json::json!({
                "line": line,
                "subject": s,
                "tenant": t,
                "permission": p,
                "decision": why.decision.to_string(),
                "cause": why.decision.cause().as_str(),
            });
            if explain {
                expected["reason"] = why.to_string().into();
                expected["held_roles"] = serde_json::json!(why.held_roles);
                expected["chain"] = serde_json::json!(why.chain);
            }
            assert_eq!(*object, expected);
        }
    }
}

/// The longest line kept is 65,536 bytes: one that long is read (here, a subject too long), one
/// a byte longer is refused as too long, whether it arrives whole or in pieces; a valid line
/// ending in CRLF is answered.
#[test]
fn the_longest_line_read_is_64_kib() {
    let engine = rbac_core::Engine::new(&rbac_core::Policy::from_toml_file(POLICY).unwrap());
    let pad = |len: usize| format!("{},,crm.leads.delete", "a".repeat(len - 18));
    let text = format!(
        "carol,globex,crm.leads.delete\r\n{}\n{}\ncarol,acme,crm.leads.delete\r\n",
        pad(65_536),
        pad(65_537)
    );
    for trickle in [false, true] {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let input = reader(text.as_bytes(), trickle);
        let options = rbac_admin::check::BatchOptions::default();
        rbac_admin::check::run_batch_from(&engine, input, "q.csv", options, &mut out, &mut err)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "allow\nerror\nerror\ndeny\n"
        );
        let err = String::from_utf8(err).unwrap();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert!(lines[0].starts_with("q.csv:2: bad subject: `aaaa"), "{err}");
        assert_eq!(lines[1], "q.csv:3: the line is longer than 65536 bytes");
    }
}

/// Gives its text in pieces of 1 to 300 bytes, as a pipe might.
/// `text` read whole, or trickled.
fn reader(text: &[u8], trickle: bool) -> Box<dyn std::io::Read + '_> {
    if trickle {
        Box::new(Trickle { text, piece: 0 })
    } else {
        Box::new(text)
    }
}

struct Trickle<'a> {
    text: &'a [u8],
    piece: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.piece += 1;
        let n = (self.piece * 37 % 300 + 1)
            .min(buf.len())
            .min(self.text.len());
        let (head, rest) = self.text.split_at(n);
        buf[..n].copy_from_slice(head);
        self.text = rest;
        Ok(n)
    }
}

/// A line that is not UTF-8, and one longer than any query can be (kept only in part, so that
/// input without newlines cannot take unbounded memory), are each one malformed line, reported
/// with its number; the lines around them are answered, the last one without its newline.
#[test]
fn lines_not_utf8_or_too_long_are_errors_in_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("q.csv");
    let mut text = b"carol,globex,crm.leads.delete\ncarol,glo\xffbex,crm.leads.delete\r\n".to_vec();
    text.extend(std::iter::repeat_n(b'a', 200_000));
    text.extend(b",acme,crm.leads.delete\ncarol,acme,crm.leads.delete");
    std::fs::write(&queries, text).unwrap();
    admin()
        .args(["check", "--policy", POLICY, "--batch"])
        .arg(&queries)
        .assert()
        .code(3)
        .stdout("allow\nerror\nerror\ndeny\n")
        .stderr(predicate::str::contains(
            "q.csv:2: not UTF-8: byte 10 of the line is not valid UTF-8\n",
        ))
        .stderr(predicate::str::ends_with(
            "q.csv:3: the line is longer than 65536 bytes\n",
        ));
}

/// `check --batch -` answers what it has read whenever its input pauses, so another program
/// can keep it open and ask one query at a time.
#[test]
fn batch_on_standard_input_answers_each_query_before_the_next_is_written() {
    use std::io::{BufRead, Write};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rbac-admin"))
        .args(["check", "--policy", POLICY, "--batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (lines, answers) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in stdout.lines() {
            if lines.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let asked = [
        ("carol,globex,crm.leads.delete", "allow"),
        ("carol,acme,crm.leads.delete", "deny"),
        ("carol,acme", "error"),
        ("alice,acme,finance.invoices.approve", "allow"),
    ];
    for (query, expected) in asked {
        writeln!(stdin, "{query}").unwrap();
        stdin.flush().unwrap();
        // Bounded: a batch that waited for the end of its input would never answer.
        let answer = answers.recv_timeout(Duration::from_secs(60));
        if answer.is_err() {
            child.kill().unwrap();
        }
        assert_eq!(answer.as_deref(), Ok(expected), "the answer to `{query}`");
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    reader.join().unwrap();
    assert_eq!(output.status.code(), Some(3), "one malformed line");
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "<stdin>:3: expected 3 fields `subject,tenant,permission`, found 2\n"
    );
}

/// `--format json` makes a batch print JSON Lines: per query line, the object a single
/// `check --format json` prints, with the line's number; per malformed line, its number and
/// the problem.
#[test]
fn batch_with_format_json_prints_one_object_a_line() {
    let single = |query: [&str; 3]| -> serde_json::Value {
        let out = admin()
            .args(["check", "--policy", POLICY, "--format", "json", "--explain"])
            .args(query)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let out = admin()
        .args(["check", "--policy", POLICY, "--format", "json", "--explain"])
        .args(["--batch", "-"])
        .write_stdin(
            "# who may delete leads\ncarol,globex,crm.leads.delete\ncarol\n\
             dave,acme,finance.invoices.delete\n\u{fc}n\u{ef}\"q,globex,crm.leads.delete\n\
             \"\u{fc},n\", globex,crm.leads.delete\n",
        )
        .assert()
        .code(3)
        .stderr("<stdin>:3: expected 3 fields `subject,tenant,permission`, found 1\n")
        .get_output()
        .stdout
        .clone();
    let got: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let with_line = |mut value: serde_json::Value, line: usize| {
        value["line"] = line.into();
        value
    };
    assert_eq!(
        got,
        [
            with_line(single(["carol", "globex", "crm.leads.delete"]), 2),
            serde_json::json!({"line": 3, "error": "expected 3 fields `subject,tenant,permission`, found 1"}),
            with_line(single(["dave", "acme", "finance.invoices.delete"]), 4),
            with_line(
                single(["\u{fc}n\u{ef}\"q", "globex", "crm.leads.delete"]),
                5
            ),
            with_line(single(["\u{fc},n", "globex", "crm.leads.delete"]), 6),
        ]
    );
    assert_eq!(got[3]["subject"], "\u{fc}n\u{ef}\"q");
    assert_eq!(got[4]["subject"], "\u{fc},n");
    assert_eq!(got[0]["decision"], "allow");
    assert_eq!(got[2]["cause"], "explicit_deny");
}

/// A reader that stops early (`| head -1`) ends a batch quietly, as it ends any command,
/// in text and in JSON, with exit code 1: the batch did not finish, and 0 would read as
/// "every query answered" (for a single check, "allowed").
#[test]
fn a_batch_whose_reader_goes_away_stops_quietly() {
    use std::io::BufRead;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("q.csv");
    // Far more output than a pipe holds, so that writing fails once the reader is gone.
    std::fs::write(&queries, "carol,globex,crm.leads.delete\n".repeat(200_000)).unwrap();
    for format in ["text", "json"] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rbac-admin"))
            .args(["check", "--policy", POLICY, "--format", format, "--batch"])
            .arg(&queries)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert!(first.contains("allow"), "{format}: {first}");
        drop(stdout);
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{format}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), "", "{format}");
    }
}

#[test]
fn batch_reads_standard_input() {
    admin()
        .args(["check", "--policy", POLICY, "--batch", "-"])
        .write_stdin("carol,globex,crm.leads.delete\ncarol,acme,crm.leads.delete\n")
        .assert()
        .success()
        .stdout("allow\ndeny\n");
}

#[test]
fn casbin_policies_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.conf");
    let policy = dir.path().join("policy.csv");
    std::fs::write(
        &model,
        "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\np = sub, dom, obj, act\n\
         [role_definition]\ng = _, _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n\
         [matchers]\nm = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act\n",
    )
    .unwrap();
    std::fs::write(
        &policy,
        "p, admin, domain1, data1, read\ng, alice, admin, domain1\n",
    )
    .unwrap();
    admin()
        .args(["check", "--casbin-model"])
        .arg(&model)
        .arg("--casbin-policy")
        .arg(&policy)
        .args(["--batch", "-"])
        .write_stdin("alice,domain1,data1.read\nalice,domain2,data1.read\nbob,domain1,data1.read\n")
        .assert()
        .success()
        .stdout("allow\ndeny\ndeny\n");
    std::fs::write(&model, "[matchers]\nm = keyMatch(r.obj, p.obj)\n").unwrap();
    admin()
        .args(["check", "--casbin-model"])
        .arg(&model)
        .arg("--casbin-policy")
        .arg(&policy)
        .args(["a", "b", "c.d"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "[request_definition]: `r` is missing",
        ));
}

#[test]
fn validate_reports_every_error_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[permissions.a]\nb = \"\"\n[roles.x]\ninherits = [\"y\"]\ngrants = [\"a.c\"]\n[roles.y]\ninherits = [\"x\"]\n",
    )
    .unwrap();
    let shown = file.display().to_string();
    admin()
        .args(["policy", "validate"])
        .arg(&file)
        .assert()
        .code(3)
        .stdout("")
        .stderr(format!(
            "{shown}: 2 errors in the policy\n  {shown}: role `x`: grant names the undeclared permission `a.c` (did you mean `a.b`?)\n  {shown}: role `x`: inheritance cycle x → y → x\n"
        ));
    // With `--format json`, the same verdict on stdout too.
    let out = admin()
        .args(["policy", "validate", "--format", "json"])
        .arg(&file)
        .assert()
        .code(3);
    let verdict: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(verdict["valid"], false, "{verdict}");
    assert_eq!(verdict["file"], shown.as_str());
    assert_eq!(verdict["errors"].as_array().unwrap().len(), 2, "{verdict}");
    admin()
        .args(["policy", "validate", POLICY])
        .assert()
        .success()
        .stdout(predicate::str::ends_with(
            "erp.toml: ok (16 permissions, 7 roles, 2 tenants, 5 subjects)\n",
        ));
}

#[test]
fn missing_files_and_bad_usage_are_one_clear_line() {
    admin()
        .args(["check", "--policy", "/nonexistent/p.toml", "a", "b", "c"])
        .assert()
        .code(3)
        .stderr("error: cannot read policy file `/nonexistent/p.toml`: No such file or directory (os error 2)\n");
    admin()
        .args(["check", "--policy", POLICY, "--batch", "/nonexistent/q.csv"])
        .assert()
        .code(3)
        .stderr(predicate::str::starts_with(
            "error: cannot read `/nonexistent/q.csv`",
        ));
    // Without a policy file, `check` reads the database, which is never created by a read.
    admin()
        .args(["check", "a", "b", "c"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("panicked").not());
    // Usage errors exit 3 (invalid input), so that 2 always means denied.
    admin()
        .args(["check", "--no-such-flag"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "unexpected argument '--no-such-flag'",
        ));
    admin().assert().code(3);
    admin().arg("--help").assert().code(0);
}

const FIXTURE_APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/coverage_app");

#[test]
fn coverage_from_source_finds_every_route_and_says_what_it_cannot_resolve() {
    let out = admin()
        .args(["coverage", "--src", FIXTURE_APP, "--format", "json"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        report["totals"],
        serde_json::json!({"routes": 11, "protected": 5, "public": 1, "unprotected": 2, "unresolved": 3})
    );
    let create = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/api/finance/invoices" && r["method"] == "POST")
        .unwrap();
    assert_eq!(create["status"], "protected");
    assert_eq!(create["module"], "finance");
    assert_eq!(
        create["requirement"],
        serde_json::json!({"kind": "any", "permissions": ["finance.invoices.create", "finance.invoices.approve"]})
    );
    admin()
        .args(["coverage", "--src", FIXTURE_APP])
        .assert()
        .success()
        .stdout(predicate::str::contains("unresolved, and why:"))
        .stdout(predicate::str::contains(
            "GET /api/finance/reports (src/finance.rs): the handler `annual` is not in the scanned sources",
        ));
}

/// A fallback answers every path no route matches: the source scan reports it as the
/// router does, as `(fallback)` (`PREFIX (fallback)` when nested), and a route layer does not
/// cover it.
#[test]
fn coverage_from_source_reports_fallbacks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("src/main.rs"),
        r#"
        use rbac_axum::routing::{any, get};
        use rbac_axum::{Router, require};

        #[rbac_axum::public]
        async fn not_found() -> &'static str { "not found" }
        async fn forgotten() -> &'static str { "?" }

        fn app() -> Router {
            let api = Router::new().fallback(any(forgotten));
            // A layer covers a fallback (a route layer does not).
            let covered = Router::new()
                .fallback(any(forgotten))
                .layer(require("finance.accounts.read"));
            Router::new()
                .route("/a", get(forgotten))
                .fallback(any(not_found))
                .nest("/api", api)
                .nest("/covered", covered)
                // Without a fallback of its own, a nested router's nested fallback is not
                // carried (axum): not reported.
                .nest("/bare", Router::new().nest("/deep", Router::new().fallback(any(forgotten))))
                .route_layer(require("finance.accounts.read"))
        }
        "#,
    )
    .unwrap();
    let out = admin()
        .args(["coverage", "--src"])
        .arg(dir.path())
        .args(["--format", "json"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let statuses: Vec<(String, String)> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = |path: &str, status: &str| (path.to_owned(), status.to_owned());
    assert!(
        statuses.contains(&want("(fallback)", "public")),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&want("/api (fallback)", "unprotected")),
        "{statuses:?}"
    );
    assert!(statuses.contains(&want("/a", "protected")), "{statuses:?}");
    assert!(
        !statuses.iter().any(|(path, _)| path.starts_with("/bare")),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&want("/covered (fallback)", "protected")),
        "{statuses:?}"
    );
}

#[test]
fn coverage_below_the_minimum_exits_4_and_a_saved_report_renders_the_same() {
    admin()
        .args([
            "coverage",
            "--src",
            FIXTURE_APP,
            "--min",
            "90",
            "--format",
            "markdown",
        ])
        .assert()
        .code(4)
        .stderr("coverage 54.5% is below the required 90%: 2 unprotected, 3 unresolved\n");
    let out = admin()
        .args(["coverage", "--src", FIXTURE_APP, "--format", "json"])
        .assert()
        .success();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("coverage.json");
    std::fs::write(&saved, &out.get_output().stdout).unwrap();
    let again = admin()
        .arg("coverage")
        .arg(&saved)
        .args(["--format", "json", "--min", "50"])
        .assert()
        .success();
    assert_eq!(again.get_output().stdout, out.get_output().stdout);
    std::fs::write(&saved, "{\"routes\": 3}").unwrap();
    admin()
        .arg("coverage")
        .arg(&saved)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("is not a coverage report"));
}
