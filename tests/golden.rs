//! Golden tests: whole commands, in every format, against a fake OS built from plain data
//! (`fixtures/hosts/`), as any user. Each case's output (stdout, stderr and exit status) is
//! compared with `tests/golden/NAME.txt`; `PORTSTAT_BLESS=1 cargo test golden` rewrites them
//! (then read the diff).

use std::path::{Path, PathBuf};

use clap::Parser;
use portstat::cli::Cli;
use portstat::commands::{self, Context};
use portstat::os::FakeOs;
use portstat::render::{Output, Style};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn host(name: &str) -> FakeOs {
    let dir = root().join("fixtures/hosts").join(name);
    FakeOs::load(&dir).unwrap_or_else(|error| panic!("fake host {name}: {error:#}"))
}

/// What one run printed and how it ended.
pub fn run_with(os: &FakeOs, style: Style, args: &[&str]) -> String {
    let mut argv = vec!["portstat"];
    argv.extend_from_slice(args);
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(error) => return format!("usage error: {}", error.render()),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = {
        let output = Output {
            out: &mut out,
            err: &mut err,
            style,
        };
        let mut context = Context::new(os, output);
        commands::run(&cli, &mut context)
    };
    let status = commands::exit_status(&cli, &result);
    if let Err(error) = &result {
        err.extend(format!("portstat: {error:#}\n").bytes());
    }
    format!(
        "$ portstat {}\n{}--- stderr\n{}--- exit status {status}\n",
        args.join(" "),
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    )
}

const PIPED: Style = Style {
    terminal: false,
    width: None,
    color: false,
};

pub fn check(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(format!("{name}.txt"));
    if std::env::var_os("PORTSTAT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create golden dir");
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error} (PORTSTAT_BLESS=1 writes it)\nactual:\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from line {}:\n--- expected\n{expected}\n--- actual\n{actual}",
            display(&path),
            line + 1
        );
    }
}

fn display(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

macro_rules! golden {
    ($name:ident, $host:expr, [$($arg:expr),*]) => {
        #[test]
        fn $name() {
            let os = host($host);
            check(stringify!($name), &run_with(&os, PIPED, &[$($arg),*]));
        }
    };
}

// The listing, in each format and with the filters that change what a row says.
golden!(list_table, "web-1", []);
golden!(list_all, "web-1", ["-a"]);
golden!(list_json, "web-1", ["-a", "--json"]);
golden!(list_csv, "web-1", ["-a", "--format", "csv"]);
// Issue 15: --firewall adds each listener's verdict (web-1's recorded nftables ruleset).
golden!(list_firewall, "web-1", ["-l", "--firewall"]);
golden!(list_firewall_json, "web-1", ["-l", "--firewall", "--json"]);
golden!(
    list_firewall_csv,
    "web-1",
    ["-l", "--firewall", "--format", "csv"]
);
golden!(list_listening_numeric, "web-1", ["-l", "-n"]);
// Issue 16: queues and TCP internals (-i), timers (-o), memory (-m), as ss shows them.
golden!(list_info, "busy-1", ["-a", "-i"]);
golden!(list_timers_memory, "busy-1", ["-a", "-n", "-o", "-m"]);
golden!(list_details_json, "busy-1", ["-a", "-iom", "--json"]);
golden!(
    list_details_csv,
    "busy-1",
    ["-a", "-iom", "--format", "csv"]
);
// Without them: the same host as ever, queues in JSON and CSV only.
golden!(list_busy_plain, "busy-1", ["-a"]);
golden!(list_port_80, "web-1", ["-a", "80"]);
golden!(
    list_by_process,
    "web-1",
    ["--process", "nginx", "--sort", "pid"]
);
golden!(list_by_user, "web-1", ["--user", "redis"]);
golden!(list_unknown_user, "web-1", ["--user", "nobody-here"]);

// who: a shared listener, a free port, UDP, a hidden owner, JSON, and --connect.
golden!(who_shared_listener, "web-1", ["who", "80"]);
golden!(who_free, "web-1", ["who", "8081"]);
golden!(who_loopback_only, "web-1", ["who", "127.0.0.1:5432"]);
golden!(who_udp, "web-1", ["who", "53/udp"]);
golden!(who_hidden_owner, "web-1", ["who", "127.0.0.1:9000"]);
golden!(who_json, "web-1", ["who", "6379", "--json"]);
golden!(
    who_connect,
    "web-1",
    ["who", "80", "--connect", "--no-bind"]
);
golden!(who_quiet_busy, "web-1", ["who", "80", "-q"]);

// audit: findings, every listener, JSON.
golden!(audit_table, "web-1", ["audit"]);
golden!(
    audit_listeners,
    "web-1",
    ["audit", "--listeners", "--fail-on", "never"]
);
golden!(audit_json, "web-1", ["audit", "--json"]);

// Issue 19: --probe (web-1's recorded answers): the PROBE column, who's Probe: line, JSON.
golden!(
    audit_probe,
    "web-1",
    ["audit", "--listeners", "--probe", "--fail-on", "never"]
);
golden!(audit_probe_json, "web-1", ["audit", "--probe", "--json"]);
golden!(who_probe_tls, "web-1", ["who", "127.0.0.1:9000", "--probe"]);
golden!(who_probe_json, "web-1", ["who", "22", "--probe", "--json"]);
golden!(who_probe_withheld, "web-1", ["who", "6379", "--probe=http"]);

#[test]
fn probe_sends_the_safety_list_nothing_and_udp_is_never_probed() {
    use portstat::core::probe::Sending;
    let os = host("web-1");
    run_with(&os, PIPED, &["audit", "--probe=http"]);
    let probed = os.probed.lock().expect("probed");
    let sent = |address: &str| {
        let address: std::net::SocketAddr = address.parse().expect("address");
        probed
            .iter()
            .find(|request| request.address == address)
            .map(|request| request.send)
    };
    assert_eq!(sent("127.0.0.1:6379"), Some(Sending::Nothing));
    assert_eq!(sent("127.0.0.1:22"), Some(Sending::TlsThenHttp));
    // Every TCP listener once, and no UDP socket (53, 323, 5353).
    assert_eq!(probed.len(), 7, "{probed:?}");
    assert!(
        probed
            .iter()
            .all(|r| ![53, 323, 5353].contains(&r.address.port()))
    );
    drop(probed);
    // Without --probe, nothing is probed at all.
    let os = host("web-1");
    run_with(&os, PIPED, &["audit"]);
    run_with(&os, PIPED, &["who", "22"]);
    assert!(os.probed.lock().expect("probed").is_empty());
}

// summary and watch.
golden!(summary_text, "web-1", ["summary"]);
golden!(summary_json, "web-1", ["summary", "--json"]);
golden!(watch_text, "web-1", ["watch", "-a"]);
golden!(watch_json, "web-1", ["watch", "--json"]);

// Issue 17: metrics, in both dialects, with the audit, fewer labels, several namespaces.
golden!(metrics_prometheus, "web-1", ["metrics"]);
golden!(
    metrics_openmetrics_audit_fewer_labels,
    "web-1",
    [
        "metrics",
        "--openmetrics",
        "--audit",
        "--leave-out",
        "user,unit,process",
        "--top",
        "1"
    ]
);
golden!(metrics_unreadable_firewall, "locked-init", ["metrics"]);

/// web-1 with the policy and baseline files of fixtures/audit, under relative paths (so golden
/// files are the same in every checkout); returns their paths.
fn with_policy_and_baseline(os: &mut FakeOs) -> (String, String) {
    let policy = root().join("fixtures/audit/policy-web.toml");
    let baseline = root().join("fixtures/audit/web-1-approved.json");
    for path in [&policy, &baseline] {
        let text = std::fs::read_to_string(path).expect("fixture");
        os.files.insert(PathBuf::from(display(path)), text);
    }
    (display(&policy), display(&baseline))
}

#[test]
fn metrics_policy_and_baseline_from_files() {
    let mut os = host("web-1");
    let (policy, baseline) = with_policy_and_baseline(&mut os);
    let actual = run_with(
        &os,
        PIPED,
        &["metrics", "--policy", &policy, "--baseline", &baseline],
    );
    check("metrics_policy_and_baseline", &actual);
}

#[test]
fn metrics_output_goes_to_the_file_and_nothing_to_stdout() {
    let os = host("web-1");
    let printed = run_with(&os, PIPED, &["metrics"]);
    let written_run = run_with(&os, PIPED, &["metrics", "--output", "portstat.prom"]);
    assert!(
        written_run.starts_with("$ portstat metrics --output portstat.prom\n--- stderr\n"),
        "{written_run}"
    );
    let written = os.written.lock().expect("written files");
    let file = String::from_utf8(written[Path::new("portstat.prom")].clone()).expect("utf-8");
    let stdout = printed
        .split_once('\n')
        .and_then(|(_, rest)| rest.split_once("--- stderr"))
        .map(|(stdout, _)| stdout)
        .expect("stdout part");
    assert_eq!(file, stdout);
}

#[test]
fn audit_policy_and_baseline_from_files() {
    let mut os = host("web-1");
    let policy = root().join("fixtures/audit/policy-web.toml");
    let baseline = root().join("fixtures/audit/web-1-approved.json");
    for path in [&policy, &baseline] {
        let text = std::fs::read_to_string(path).expect("fixture");
        os.files.insert(path.clone(), text);
    }
    let (policy, baseline) = (display(&policy), display(&baseline));
    // Relative paths, so the golden file is the same in every checkout.
    os.files = os
        .files
        .drain()
        .map(|(path, text)| (PathBuf::from(display(&path)), text))
        .collect();
    let actual = run_with(
        &os,
        PIPED,
        &["audit", "--policy", &policy, "--baseline", &baseline],
    );
    check("audit_policy_and_baseline", &actual);
}

/// At a terminal of `width` columns.
fn terminal(width: u16) -> Style {
    Style {
        terminal: true,
        width: Some(width),
        color: false,
    }
}

#[test]
fn tables_fit_the_terminal_without_cutting_words() {
    for (name, width, args) in [
        ("list_terminal_100", 100, &["-a"][..]),
        ("list_terminal_80", 80, &["-a"][..]),
        ("list_terminal_60", 60, &["-l"][..]),
        ("audit_terminal_80", 80, &["audit", "--listeners"][..]),
        ("who_terminal_80", 80, &["who", "80"][..]),
        ("list_info_terminal_140", 140, &["-a", "-io"][..]),
    ] {
        // -i and -o on a host whose sockets carry them.
        let os = host(if name.starts_with("list_info") {
            "busy-1"
        } else {
            "web-1"
        });
        let actual = run_with(&os, terminal(width), args);
        check(name, &actual);
        // Every row and command line fits; sentences and the facts about an owner are left to the
        // terminal to wrap.
        let sentences = [
            "Summary:",
            "Verdict:",
            "  Note:",
            "Test bind",
            "Firewall:",
            "Published:",
        ];
        let body = actual.split("--- stderr").next().unwrap_or_default();
        for line in body.lines().skip(1) {
            let columns = line.chars().count();
            assert!(
                columns <= usize::from(width)
                    || sentences.iter().any(|s| line.starts_with(s))
                    || line.contains(" (pid "),
                "{name}: {columns} columns: {line}"
            );
        }
    }
}

#[test]
fn who_and_audit_exit_2_when_the_tables_cannot_be_read() {
    let mut os = host("web-1");
    os.table_error = Some("sock_diag: Operation not permitted (os error 1)".into());
    for (args, status) in [
        (&["who", "8080", "-q"][..], 2),
        (&["audit"][..], 2),
        (&["-l"][..], 1),
    ] {
        let actual = run_with(&os, PIPED, args);
        assert!(
            actual.ends_with(&format!("--- exit status {status}\n")),
            "{actual}"
        );
        assert!(actual.contains("Operation not permitted"), "{actual}");
    }
}

// who, issue 13 (fixtures/hosts/ns-1, as nobody): two UDP servers on different addresses of one
// port, a v6only-or-not [::] beside 0.0.0.0 held by a master and its workers (parent pids
// known), a UDP server whose datagrams a test bind must not take, a privileged port that is
// also taken, and TIME_WAITs on two addresses.
golden!(who_udp_two_addresses, "ns-1", ["who", "53/udp"]);
golden!(who_forked_workers, "ns-1", ["who", "80"]);
golden!(who_udp_reuseaddr, "ns-1", ["who", "11211/udp"]);
golden!(
    who_udp_reuseaddr_json,
    "ns-1",
    ["who", "11211/udp", "--json"]
);
golden!(who_privileged_and_taken, "ns-1", ["who", "22"]);
golden!(who_time_wait_counts, "ns-1", ["who", "127.0.0.1:8080"]);

// Direction without a listener: a stopped server's TIME_WAIT is inbound by its ports
// (fixtures/hosts/stopped-server); a connection between two ephemeral ports has none.
golden!(list_stopped_server, "stopped-server", ["-a"]);
golden!(list_stopped_server_json, "stopped-server", ["-a", "--json"]);

// watch follows sockets, not addresses: A's listener closes and B's opens on the same address
// between two readings; A's connection goes on in the kernel's hands (fixtures/hosts/rebind).
golden!(watch_rebind, "rebind", ["watch", "-a"]);
golden!(watch_rebind_json, "rebind", ["watch", "-a", "--json"]);
// watch with the kernel's destroy reports (issue 16): closes at once with byte counts, sockets
// no reading saw, lost reports, a late report and a TIME_WAIT that are not second closes.
golden!(watch_reports, "short-lived", ["watch", "-a"]);
golden!(watch_reports_json, "short-lived", ["watch", "-a", "--json"]);
// The filters apply to unseen sockets too: the UDP one on 5353 is not a connection to 8080.
golden!(
    watch_reports_filtered,
    "short-lived",
    ["watch", "--port", "8080", "-e"]
);
// --user and the owner filters cannot match a socket no reading saw: said once.
golden!(
    watch_reports_user,
    "short-lived",
    ["watch", "--user", "alice"]
);
golden!(
    watch_reports_procfs,
    "short-lived",
    ["watch", "--backend", "procfs"]
);

// Root that the kernel keeps from one process (fixtures/hosts/locked-init: pid 1, root's, is
// unreadable even to root): its listener is hidden with that reason and no "run as root";
// another user's socket that no process could hold is not-found, a TIME_WAIT the kernel's.
golden!(list_locked_init, "locked-init", ["-a"]);
golden!(list_locked_init_json, "locked-init", ["-l", "--json"]);

// Root may not read pid 1's descriptors: who and audit say so, and never tell root to run as root.
golden!(who_locked_init, "locked-init", ["who", "2024"]);
golden!(audit_locked_init, "locked-init", ["audit", "--listeners"]);

// Issue 14 #4: a malformed `ip_local_port_range` is a warning naming it, not a silent default.
#[test]
fn a_malformed_port_range_is_a_warning_naming_what_it_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = root().join("fixtures/hosts/web-1");
    for file in std::fs::read_dir(&source).expect("web-1") {
        let path = file.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let toml = dir.path().join("host.toml");
    let text = std::fs::read_to_string(&toml).expect("host.toml");
    assert!(text.contains("ephemeral = [32768, 60999]"));
    let text = text
        .replace("ephemeral = [32768, 60999]", "ephemeral = \"60999 32768\"")
        .replace("readings = [\".\", \"later\"]", "readings = [\".\"]");
    std::fs::write(&toml, text).expect("write host.toml");
    let os = FakeOs::load(dir.path()).expect("fake host");
    let warning = "net.ipv4.ip_local_port_range reads \"60999 32768\", not two ports in order: \
                   assuming Linux's default, 32768-60999";
    for args in [&["-a"][..], &["who", "8080"], &["summary"]] {
        let actual = run_with(&os, PIPED, args);
        let stderr = actual.split("--- stderr\n").nth(1).expect("stderr part");
        assert_eq!(stderr.matches(warning).count(), 1, "{actual}");
    }
    // The well-formed range of the same host says nothing about it.
    let actual = run_with(&host("web-1"), PIPED, &["-a"]);
    assert!(!actual.contains("ip_local_port_range"), "{actual}");
}

// Issue 15: drift reports a listener the firewall now judges differently.
#[test]
fn drift_reports_a_firewall_verdict_that_changed() {
    let mut os = host("web-1");
    let actual = run_with(&os, PIPED, &["audit", "--json"]);
    let json = actual.split('\n').nth(1).expect("the JSON line");
    let mut saved: serde_json::Value = serde_json::from_str(json).expect("audit JSON");
    let redis = saved["listeners"]
        .as_array_mut()
        .expect("listeners")
        .iter_mut()
        .find(|l| l["port"] == 6379)
        .expect("redis");
    assert_eq!(redis["firewall"]["verdict"], "blocked");
    // As approved, Redis was open to the world.
    redis["firewall"]["verdict"] = "open".into();
    os.files
        .insert(PathBuf::from("approved.json"), saved.to_string());
    let actual = run_with(
        &os,
        PIPED,
        &["audit", "--baseline", "approved.json", "--fail-on", "never"],
    );
    assert!(
        actual.contains("Drift since ")
            && actual.contains("approved.json: 0 new, 0 gone, 1 firewall change")
            && actual
                .contains("  changed tcp 0.0.0.0:6379 (redis-server): firewall open -> blocked"),
        "{actual}"
    );
    // Drift fails the run whatever --fail-on says.
    assert!(actual.ends_with("--- exit status 1\n"), "{actual}");
}

// Issue 15: a firewall that can't be read makes every verdict unknown, and says why once.
#[test]
fn an_unreadable_firewall_is_unknown_never_a_guess() {
    let mut os = host("web-1");
    os.firewall =
        Err("reading the firewall needs root (nft and iptables-save need CAP_NET_ADMIN)".into());
    let audit = run_with(&os, PIPED, &["audit", "--listeners", "--fail-on", "never"]);
    let stderr = audit.split("--- stderr\n").nth(1).expect("stderr");
    assert_eq!(
        stderr
            .matches("the firewall was not read, so its verdicts are unknown")
            .count(),
        1,
        "{audit}"
    );
    assert!(
        stderr.contains("reading the firewall needs root"),
        "{audit}"
    );
    let redis = audit
        .lines()
        .find(|line| line.starts_with("6379/tcp"))
        .expect("redis row");
    assert!(redis.contains("unknown"), "{redis}");
    assert!(
        !audit.contains("blocked") && !audit.contains("open "),
        "{audit}"
    );
    let who = run_with(&os, PIPED, &["who", "6379"]);
    assert!(
        who.contains("Firewall: unknown: reading the firewall needs root"),
        "{who}"
    );
}

/// Issue 17: a fleet audited from saved snapshots, one row per host.
#[test]
fn audit_summary_of_saved_snapshots() {
    let mut os = FakeOs::default();
    let mut args = vec!["audit".to_string()];
    for name in ["web-1", "db-1", "edge-1", "quiet-1"] {
        let path = root().join(format!("fixtures/audit/{name}.json"));
        let text = std::fs::read_to_string(&path).expect("fixture");
        os.files.insert(PathBuf::from(display(&path)), text);
        args.extend(["--input".to_string(), display(&path)]);
    }
    let policy = root().join("fixtures/audit/policy-db.toml");
    os.files.insert(
        PathBuf::from(display(&policy)),
        std::fs::read_to_string(&policy).expect("fixture"),
    );
    args.extend([
        "--summary".to_string(),
        "--policy".to_string(),
        display(&policy),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    check("audit_summary_fleet", &run_with(&os, PIPED, &args));
    let mut json = args.clone();
    json.push("--json");
    let document = run_with(&os, PIPED, &json);
    let body = document
        .split_once('\n')
        .and_then(|(_, rest)| rest.split_once("--- stderr"))
        .map(|(stdout, _)| stdout)
        .expect("stdout part");
    let value: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let per_host = value["per_host"].as_array().expect("per_host");
    assert_eq!(per_host.len(), 4);
    assert!(
        per_host
            .iter()
            .all(|h| h["host"].is_string() && h["passed"].is_boolean())
    );
}
