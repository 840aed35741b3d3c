//! `check --batch` input, read whole or in pieces of any size, with reads that are interrupted
//! now and then: queries written plainly, with spaces, quoted (a subject with a comma), padded
//! to the 64 KiB limit and one byte either side of it; comments and blank lines; malformed
//! lines (wrong field count, bad names, an unclosed quote, not UTF-8, too long); LF or CRLF
//! line ends, the last line with or without one; as text or JSON Lines, with or without the
//! reason. Each query line gets its answer in its place, a comment or blank line none, and a
//! malformed line `error` (or its JSON object) in its place and a report naming its line.

use std::io::{self, Read};

use proptest::prelude::*;
use rbac_admin::check::{BatchOptions, BatchSummary, run_batch_from};
use rbac_core::{Engine, Policy};

const POLICY: &str = r#"
[permissions.finance.invoices]
read = "Read invoices"
approve = "Approve invoices"
[permissions.crm.leads]
read = "Read leads"

[roles.viewer]
grants = ["finance.invoices.read", "crm.leads.read"]
[roles.approver]
inherits = ["viewer"]
grants = ["finance.*"]
denies = ["crm.leads.read"]

[tenants.acme]
[tenants.globex]

[subjects.alice.tenants]
acme = ["viewer"]
[subjects.bob]
roles = ["approver"]
[subjects."carol@example.com".tenants]
globex = ["approver"]
[subjects."zoë".tenants]
acme = ["viewer"]
[subjects."o'neil,pat".tenants]
globex = ["viewer"]
"#;

/// Subjects, with one that is not UTF-8's ASCII and one that holds a comma (written quoted).
const SUBJECTS: [&str; 6] = [
    "alice",
    "bob",
    "carol@example.com",
    "zoë",
    "o'neil,pat",
    "mallory",
];
const TENANTS: [&str; 4] = ["", "acme", "globex", "initech"];
const PERMISSIONS: [&str; 4] = [
    "finance.invoices.read",
    "finance.invoices.approve",
    "crm.leads.read",
    "crm.leads.delete",
];

/// One line of a batch file, and what it must give.
#[derive(Debug, Clone)]
enum Line {
    /// A query, written plainly, with spaces around its fields, or with its fields quoted.
    Query(&'static str, &'static str, &'static str, Style),
    /// A comment or a blank line: no answer.
    Skipped(&'static str),
    /// Not a query: `error` in its place.
    Malformed(Vec<u8>),
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Plain,
    Spaced,
    Quoted,
    /// Quoted, with spaces before the opening quotes (casbin's `a, "b"`).
    QuotedSpaced,
    /// With spaces after the permission, to make the line exactly this many bytes long
    /// (before its line end).
    Padded(usize),
}

fn line() -> impl Strategy<Value = Line> {
    // The longest line read is 64 KiB: padded lines of one byte less, that many, and one more.
    let style = prop_oneof![
        3 => Just(Style::Plain),
        2 => Just(Style::Spaced),
        2 => Just(Style::Quoted),
        2 => Just(Style::QuotedSpaced),
        1 => (65_535usize..=65_537).prop_map(Style::Padded),
    ];
    let query = (
        prop::sample::select(SUBJECTS.to_vec()),
        prop::sample::select(TENANTS.to_vec()),
        prop::sample::select(PERMISSIONS.to_vec()),
        style,
    )
        .prop_map(|(s, t, p, style)| Line::Query(s, t, p, style));
    let skipped =
        prop::sample::select(vec!["", "# subject,tenant,permission", ",,", " , , ", "\t"])
            .prop_map(Line::Skipped);
    let malformed = prop_oneof![
        Just(b"alice,acme".to_vec()),
        Just(b"alice,acme,finance.invoices.read,extra".to_vec()),
        Just(b"alice,,Finance".to_vec()),
        Just(b"alice,ac me,finance.invoices.read".to_vec()),
        Just(b",acme,finance.invoices.read".to_vec()),
        Just(b"\"alice,acme,finance.invoices.read".to_vec()),
        // casbin reads a space after a closing quote as one more field, and has no `""`.
        Just(b"\"alice\" ,acme,finance.invoices.read".to_vec()),
        Just(b"\"al\"\"ice\",acme,finance.invoices.read".to_vec()),
        // Empty names written out are a query, not a blank line.
        Just(b"\"\",\"\",\"\"".to_vec()),
        Just(b"al\xffice,acme,finance.invoices.read".to_vec()),
        Just(b"\xc3".to_vec()),
        // One byte over the longest line read (64 KiB).
        Just([b"alice,acme,".as_slice(), &[b'x'; 65_526]].concat()),
    ]
    .prop_map(Line::Malformed);
    prop_oneof![6 => query, 2 => skipped, 2 => malformed]
}

impl Line {
    fn bytes(&self) -> Vec<u8> {
        // A subject with a comma is always quoted.
        let plain = |s: &str| {
            if s.contains(',') {
                format!("\"{s}\"")
            } else {
                s.to_owned()
            }
        };
        match self {
            Line::Query(s, t, p, Style::Plain) => format!("{},{t},{p}", plain(s)).into_bytes(),
            Line::Query(s, t, p, Style::QuotedSpaced) => {
                format!(" \"{s}\", \"{t}\",  \"{p}\" ").into_bytes()
            }
            Line::Query(s, t, p, Style::Padded(len)) => {
                let mut line = format!("{},{t},{p}", plain(s)).into_bytes();
                line.resize(*len, b' ');
                line
            }
            Line::Query(s, t, p, Style::Spaced) => {
                // No space after a closing quote: casbin would read one more field there.
                let gap = if s.contains(',') { "" } else { " " };
                format!("  {}{gap},{t} , {}\t", plain(s), p).into_bytes()
            }
            Line::Query(s, t, p, Style::Quoted) => format!("\"{s}\",\"{t}\",\"{p}\"").into_bytes(),
            Line::Skipped(text) => text.as_bytes().to_vec(),
            Line::Malformed(bytes) => bytes.clone(),
        }
    }

    /// The output line this line must give, if any; `cr`: it ends in `\r\n`, whose `\r`
    /// is part of the line read.
    fn answer(&self, engine: &Engine, explain: bool, cr: bool) -> Option<String> {
        match self {
            Line::Query(_, _, _, Style::Padded(len)) if len + usize::from(cr) > 65_536 => {
                Some("error".to_owned())
            }
            Line::Query(s, t, p, _) if explain => Some(engine.explain(s, t, p).to_string()),
            Line::Query(s, t, p, _) => Some(engine.check(s, t, p).verdict().to_owned()),
            Line::Skipped(_) => None,
            Line::Malformed(_) => Some("error".to_owned()),
        }
    }
}

/// A reader that hands out its input in pieces of the given sizes (cycled), failing with
/// `Interrupted` before every third piece when asked to.
struct Pieces {
    input: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    reads: usize,
    interrupt: bool,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        if self.interrupt && self.reads.is_multiple_of(3) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let size = self.sizes[self.reads % self.sizes.len()];
        let n = size.min(buf.len()).min(self.input.len() - self.at);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn run(engine: &Engine, input: impl Read, options: BatchOptions) -> (String, String, BatchSummary) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = run_batch_from(engine, input, "q.csv", options, &mut out, &mut err)
        .expect("a batch read from memory completes");
    (
        String::from_utf8(out).expect("answers are UTF-8"),
        String::from_utf8(err).expect("reports are UTF-8"),
        summary,
    )
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn each_line_is_answered_in_its_place_however_the_input_arrives(
        lines in prop::collection::vec(line(), 0..40),
        crlf in any::<bool>(),
        last_newline in any::<bool>(),
        sizes in prop::collection::vec(1usize..700, 1..6),
        interrupt in any::<bool>(),
        explain in any::<bool>(),
        json_lines in any::<bool>(),
    ) {
        let engine = Engine::new(&Policy::from_toml_str(POLICY).expect("the test policy is valid"));
        let end = if crlf { b"\r\n".as_slice() } else { b"\n" };
        let mut input = Vec::new();
        // Each line's number and its answer, for the lines that get one.
        let mut expected: Vec<(usize, &Line, String)> = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            input.extend(line.bytes());
            let ended = i + 1 < lines.len() || last_newline;
            if ended {
                input.extend_from_slice(end);
            }
            if let Some(answer) = line.answer(&engine, explain, crlf && ended) {
                expected.push((i + 1, line, answer));
            }
        }
        let malformed_lines: Vec<usize> = expected
            .iter()
            .filter(|(_, _, answer)| answer == "error")
            .map(|(n, _, _)| *n)
            .collect();
        let options = BatchOptions { explain, json_lines };

        let (out, err, summary) = run(&engine, input.as_slice(), options);
        let answers: Vec<&str> = out.lines().collect();
        prop_assert_eq!(answers.len(), expected.len(), "{}", out);
        for (got, (n, line, answer)) in answers.iter().zip(&expected) {
            if !json_lines {
                prop_assert_eq!(got, answer, "line {}", n);
                continue;
            }
            // The object a single `check --format json` prints, with the line; or the error.
            let object: serde_json::Value = serde_json::from_str(got).expect("each line is JSON");
            prop_assert_eq!(object["line"].as_u64(), Some(*n as u64), "{}", got);
            match line {
                Line::Query(s, t, p, _) if answer != "error" => {
                    let decision = engine.check(s, t, p);
                    prop_assert_eq!(&object["subject"], *s, "{}", got);
                    prop_assert_eq!(&object["tenant"], *t, "{}", got);
                    prop_assert_eq!(&object["permission"], *p, "{}", got);
                    prop_assert_eq!(&object["decision"], decision.verdict(), "{}", got);
                    prop_assert_eq!(&object["cause"], decision.cause().as_str(), "{}", got);
                    if explain {
                        prop_assert_eq!(&object["reason"], answer.as_str(), "{}", got);
                    }
                }
                _ => prop_assert!(object["error"].is_string(), "{}", got),
            }
        }
        let reported: Vec<usize> = err
            .lines()
            .map(|l| {
                let rest = l.strip_prefix("q.csv:").unwrap_or_default();
                rest.split(':').next().unwrap_or_default().parse().unwrap_or(0)
            })
            .collect();
        prop_assert_eq!(&reported, &malformed_lines, "stderr:\n{}", err);
        let decided: Vec<&Line> = expected
            .iter()
            .filter(|(_, _, answer)| answer != "error")
            .map(|(_, line, _)| *line)
            .collect();
        let allowed = decided
            .iter()
            .filter(|line| matches!(line, Line::Query(s, t, p, _) if engine.check(s, t, p).is_allowed()))
            .count();
        prop_assert_eq!(summary, BatchSummary { decided: decided.len(), allowed, malformed: malformed_lines.len() });

        let pieces = Pieces { input, at: 0, sizes, reads: 0, interrupt };
        let (out_in_pieces, err_in_pieces, summary_in_pieces) = run(&engine, pieces, options);
        prop_assert_eq!(out_in_pieces, out);
        prop_assert_eq!(err_in_pieces, err);
        prop_assert_eq!(summary_in_pieces, summary);
    }
}
