//! End-to-end: `portstat audit` against real listeners (loopback here; wildcard and specific
//! addresses only inside a private network namespace) and against fixture snapshots of other
//! hosts for the offline, policy and drift checks.
// These tests drive real Linux sockets and /proc.

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, Command, Output, Stdio};

use crate::common::*;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/audit");

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

fn audit(args: &[&str]) -> Output {
    portstat()
        .arg("audit")
        .args(args)
        .output()
        .expect("portstat audit runs")
}

fn exit_code(output: &Output) -> i32 {
    output.status.code().expect("exit status")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn report_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\nstderr: {}", stdout(output), stderr(output)))
}

/// Runs `audit ... --json`: (exit status, report).
fn audit_json(args: &[&str]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let output = audit(&all);
    (exit_code(&output), report_of(&output))
}

fn array<'a>(value: &'a Value, what: &str) -> &'a Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is an array"))
}

/// (host, rule, port, severity) of every finding, in report order.
fn findings(report: &Value) -> Vec<(String, String, u64, String)> {
    array(&report["findings"], "findings")
        .iter()
        .map(|f| {
            (
                f["host"].as_str().expect("host").to_string(),
                f["rule"].as_str().expect("rule").to_string(),
                f["port"].as_u64().expect("port"),
                f["severity"].as_str().expect("severity").to_string(),
            )
        })
        .collect()
}

fn finding(host: &str, rule: &str, port: u64, severity: &str) -> (String, String, u64, String) {
    (host.into(), rule.into(), port, severity.into())
}

fn listeners_on(report: &Value, port: u16) -> Vec<&Value> {
    array(&report["listeners"], "listeners")
        .iter()
        .filter(|l| l["port"] == port)
        .collect()
}

fn port_of(listener: &TcpListener) -> u16 {
    listener.local_addr().expect("address").port()
}

fn temp_file(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(contents.as_bytes())
        .expect("write temp file");
    file
}

fn path(file: &tempfile::NamedTempFile) -> &str {
    file.path().to_str().expect("utf-8 temp path")
}

// ---- Live, on loopback: runs for every user. ----

#[test]
fn loopback_listeners_are_classified_loopback_and_raise_no_finding() {
    let _serial = serial();
    let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let v6 = TcpListener::bind("[::1]:0").expect("bind ::1");
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let udp_port = udp.local_addr().expect("address").port();
    let ports = [port_of(&v4), port_of(&v6), udp_port];

    // Whatever else this host runs, --fail-on never without policy or baseline passes.
    let (status, report) = audit_json(&["--fail-on", "never"]);
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["schema"], 1);
    assert_eq!(report["hosts"][0]["source"], "live");
    assert_eq!(report["summary"]["passed"], true);
    let me = std::process::id();
    for (port, proto, address) in [
        (ports[0], "tcp", "127.0.0.1"),
        (ports[1], "tcp", "::1"),
        (ports[2], "udp", "127.0.0.1"),
    ] {
        let mine: Vec<&Value> = listeners_on(&report, port)
            .into_iter()
            .filter(|l| l["proto"] == proto && l["address"] == address)
            .collect();
        assert_eq!(mine.len(), 1, "{port}/{proto}: {report:#}");
        assert_eq!(mine[0]["exposure"], "loopback");
        assert_eq!(mine[0]["processes"][0]["pid"], me, "{:#}", mine[0]);
        assert!(
            !findings(&report).iter().any(|f| f.2 == u64::from(port)),
            "a loopback listener raised a finding: {report:#}"
        );
    }

    let output = audit(&["--listeners", "--fail-on", "never"]);
    let text = stdout(&output);
    let row = text
        .lines()
        .find(|line| line.starts_with(&format!("{}/tcp  127.0.0.1 ", ports[0])))
        .unwrap_or_else(|| panic!("no row for {}: {text}", ports[0]));
    assert!(row.contains("loopback"), "{row}");
    let last = text.lines().last().expect("a summary line");
    assert!(
        last.starts_with("Summary: ") && last.ends_with("pass (--fail-on never)"),
        "{last}"
    );
}

#[test]
fn a_live_policy_is_checked_against_real_listeners() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = port_of(&listener);
    let everything =
        format!("[[allow]]\nport = \"0-65535\"\n\n[[require]]\nport = {port}\nproto = \"tcp\"\n");
    let policy = temp_file(&everything);
    let (status, report) = audit_json(&["--policy", path(&policy), "--fail-on", "never"]);
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["summary"]["violations"], 0);

    // Port 0 never has a listener: a requirement nothing can meet.
    let policy = temp_file(&format!("{everything}\n[[require]]\nport = 0\n"));
    let (status, report) = audit_json(&["--policy", path(&policy), "--fail-on", "never"]);
    assert_eq!(status, 1, "{report:#}");
    let violations = array(&report["policy"]["violations"], "violations");
    assert_eq!(violations.len(), 1, "{report:#}");
    assert_eq!(violations[0]["kind"], "missing");
    assert_eq!(violations[0]["required"], "0");
    assert_eq!(violations[0]["line"], 8);

    // An allow for the other protocol does not cover it; one scoped to loopback does.
    let udp_only = temp_file(&format!("[[allow]]\nport = {port}\nproto = \"udp\"\n"));
    let (_, report) = audit_json(&["--policy", path(&udp_only), "--fail-on", "never"]);
    let names_mine = |report: &Value| {
        array(&report["policy"]["violations"], "violations")
            .iter()
            .any(|v| v["port"] == port && v["proto"] == "tcp" && v["address"] == "127.0.0.1")
    };
    assert!(names_mine(&report), "{report:#}");
    let loopback = temp_file(&format!("[[allow]]\nport = {port}\nscope = \"loopback\"\n"));
    let (_, report) = audit_json(&["--policy", path(&loopback), "--fail-on", "never"]);
    assert!(!names_mine(&report), "{report:#}");
    drop(listener);
}

// ---- Live, beyond loopback: only inside a private network namespace, as root. ----

/// A `sleep` child that holds these descriptors too (the caller then closes its own copies),
/// so the sockets belong to a process of their own. Killed on drop.
struct Holder(Child);

impl Holder {
    fn spawn(fds: Vec<RawFd>) -> Holder {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("sleep");
        command.arg("60").stdin(Stdio::null());
        // SAFETY: fcntl on fds we own, between fork and exec; async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                for &fd in &fds {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
                Ok(())
            });
        }
        Holder(command.spawn().expect("spawn sleep"))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a shell command inside the namespace (as root).
fn in_netns(netns: &PrivateNetns, script: &str) {
    let status = Command::new("nsenter")
        .arg(format!("--net={}", netns.path()))
        .args(["--", "sh", "-c", script])
        .status()
        .expect("nsenter runs");
    assert!(status.success(), "{script}");
}

#[test]
#[ignore = "needs root"]
fn root_exposure_and_findings_beyond_loopback_in_a_private_netns() {
    let _serial = serial();
    let netns = PrivateNetns::new();
    // A private address for a specific bind, on the namespace's own loopback device: no
    // traffic ever leaves the namespace.
    in_netns(&netns, "ip addr add 10.99.0.5/32 dev lo");
    let (redis, postgres, dual, v6only, memcached, local, wide) = netns.run(|| {
        let v6only = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)
            .expect("socket");
        v6only.set_only_v6(true).expect("IPV6_V6ONLY");
        v6only
            .bind(
                &"[::]:0"
                    .parse::<std::net::SocketAddr>()
                    .expect("address")
                    .into(),
            )
            .expect("bind [::] v6only");
        v6only.listen(8).expect("listen");
        (
            TcpListener::bind("0.0.0.0:6379").expect("bind 0.0.0.0:6379"),
            TcpListener::bind("10.99.0.5:5432").expect("bind 10.99.0.5:5432"),
            TcpListener::bind("[::]:0").expect("bind [::] dual-stack"),
            TcpListener::from(v6only),
            UdpSocket::bind("0.0.0.0:11211").expect("bind udp 0.0.0.0:11211"),
            TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1"),
            TcpListener::bind("0.0.0.0:0").expect("bind 0.0.0.0"),
        )
    });
    let (wide_port, local_port) = (port_of(&wide), port_of(&local));
    // A process of its own with one loopback and one wildcard listener.
    let holder = Holder::spawn(vec![local.as_raw_fd(), wide.as_raw_fd()]);
    drop((local, wide));

    let output = netns
        .portstat()
        .args(["audit", "--json"])
        .output()
        .expect("runs");
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    let report = report_of(&output);
    let host = report["hosts"][0]["host"]
        .as_str()
        .expect("host")
        .to_string();
    let found = findings(&report);
    for expected in [
        finding(&host, "redis", 6379, "high"),
        finding(&host, "memcached", 11211, "high"),
        finding(&host, "postgresql", 5432, "medium"),
        finding(&host, "loopback-intended", u64::from(wide_port), "info"),
    ] {
        assert!(found.contains(&expected), "{expected:?} in {found:?}");
    }
    assert_eq!(found.len(), 4, "{found:?}");
    // Most severe first.
    assert_eq!(found[0].3, "high");
    assert_eq!(found[3].3, "info");
    let intended = array(&report["findings"], "findings")
        .iter()
        .find(|f| f["rule"] == "loopback-intended")
        .expect("loopback-intended finding");
    assert_eq!(intended["processes"][0]["pid"], holder.0.id());
    let reason = intended["reason"].as_str().expect("reason");
    assert!(
        reason.contains(&format!("127.0.0.1:{local_port}")),
        "{reason}"
    );

    let private = listeners_on(&report, 5432);
    assert_eq!(private[0]["exposure"], "private");
    assert_eq!(private[0]["interface"], "lo");
    assert_eq!(listeners_on(&report, 6379)[0]["exposure"], "all-interfaces");
    assert_eq!(listeners_on(&report, port_of(&dual))[0]["dual_stack"], true);
    assert_eq!(
        listeners_on(&report, port_of(&v6only))[0]["dual_stack"],
        false
    );
    assert_eq!(listeners_on(&report, local_port)[0]["exposure"], "loopback");
    assert_eq!(report["summary"]["findings"]["high"], 2);
    assert_eq!(report["summary"]["failing_findings"], 2);

    let output = netns
        .portstat()
        .args(["audit", "--listeners"])
        .output()
        .expect("runs");
    let text = stdout(&output);
    assert!(text.contains("all-interfaces, dual-stack"), "{text}");
    assert!(text.contains("all-interfaces, IPv6 only"), "{text}");
    assert!(text.contains("private, lo"), "{text}");
    let last = text.lines().last().expect("summary line");
    assert!(
        last.contains("findings 2 high, 1 medium, 0 low, 1 info")
            && last.ends_with("FAIL (--fail-on high)"),
        "{last}"
    );
    // Medium and above still fail; never only reports.
    let status = |fail_on: &str| {
        let output = netns
            .portstat()
            .args(["audit", "--fail-on", fail_on])
            .output()
            .expect("runs");
        exit_code(&output)
    };
    assert_eq!(status("never"), 0);
    drop((redis, postgres, memcached));
    assert_eq!(status("high"), 0);
    drop(holder);
    drop((dual, v6only));
}

#[test]
#[ignore = "needs root"]
fn root_live_drift_and_policy_in_a_private_netns() {
    // A child another test forks keeps a closed listener alive until it execs.
    let _serial = serial();
    let netns = PrivateNetns::new();
    let (kept, closing) = netns.run(|| {
        (
            TcpListener::bind("127.0.0.1:0").expect("bind"),
            TcpListener::bind("0.0.0.0:0").expect("bind"),
        )
    });
    let (kept_port, closing_port) = (port_of(&kept), port_of(&closing));
    let run = |args: &[&str]| netns.portstat().args(args).output().expect("portstat runs");
    let snapshot = temp_file(&stdout(&run(&["-l", "--json"])));
    let saved_audit = temp_file(&stdout(&run(&["audit", "--json"])));
    for baseline in [&snapshot, &saved_audit] {
        let output = run(&["audit", "--baseline", path(baseline), "--json"]);
        assert_eq!(exit_code(&output), 0, "{}", stdout(&output));
        assert_eq!(report_of(&output)["summary"]["new"], 0);
    }

    drop(closing);
    let opened = netns.run(|| UdpSocket::bind("0.0.0.0:0").expect("bind udp"));
    let opened_port = opened.local_addr().expect("address").port();
    for baseline in [&snapshot, &saved_audit] {
        let output = run(&["audit", "--baseline", path(baseline), "--json"]);
        assert_eq!(exit_code(&output), 1, "drift fails the run");
        let report = report_of(&output);
        let new = array(&report["drift"]["new"], "new");
        let gone = array(&report["drift"]["gone"], "gone");
        assert_eq!(new.len(), 1, "{report:#}");
        assert_eq!(
            (&new[0]["proto"], &new[0]["port"]),
            (&"udp".into(), &opened_port.into())
        );
        assert_eq!(gone.len(), 1, "{report:#}");
        assert_eq!(gone[0]["port"], closing_port);
        assert_eq!(gone[0]["address"], "0.0.0.0");
    }
    let text = stdout(&run(&["audit", "--baseline", path(&snapshot)]));
    assert!(
        text.contains(&format!("new   udp 0.0.0.0:{opened_port}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("gone  tcp 0.0.0.0:{closing_port}")),
        "{text}"
    );

    // The namespace holds exactly these two listeners: a strict policy sees both.
    let policy = temp_file(&format!(
        "[[allow]]\nport = {kept_port}\nscope = \"loopback\"\n\n[[require]]\nport = {closing_port}\n"
    ));
    let output = run(&["audit", "--policy", path(&policy), "--json"]);
    assert_eq!(exit_code(&output), 1);
    let report = report_of(&output);
    let violations = array(&report["policy"]["violations"], "violations");
    let kinds: Vec<(&str, Value)> = violations
        .iter()
        .map(|v| (v["kind"].as_str().expect("kind"), v["port"].clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("not-allowed", opened_port.into()),
            ("missing", Value::Null)
        ],
        "{report:#}"
    );
    drop((kept, opened));
}

// ---- Offline: fixture snapshots of other hosts. ----

#[test]
fn a_fleet_of_snapshots_is_audited_with_every_finding_naming_its_host() {
    let (status, report) = audit_json(&[
        "--input",
        &fixture("web-1.json"),
        "--input",
        &fixture("db-1.json"),
        "--input",
        &fixture("edge-1.json"),
    ]);
    assert_eq!(status, 1);
    assert_eq!(
        findings(&report),
        [
            finding("db-1", "redis", 6379, "high"),
            finding("web-1", "node-inspector", 9229, "high"),
            finding("db-1", "postgresql", 5432, "medium"),
            finding("web-1", "owner-hidden", 8443, "low"),
            finding("db-1", "loopback-intended", 6433, "info"),
            finding("edge-1", "http", 80, "info"),
        ]
    );
    let hidden = &report["findings"][3];
    assert!(
        hidden["reason"]
            .as_str()
            .is_some_and(|r| r.contains("root would see")),
        "{hidden:#}"
    );
    // Offline, exposure comes from the address alone.
    let pg = listeners_on(&report, 5432)
        .into_iter()
        .find(|l| l["address"] == "10.0.0.7")
        .expect("db-1's private postgres");
    assert_eq!(pg["exposure"], "private");
    assert_eq!(pg["interface"], Value::Null);
    // Established sockets in a snapshot are not listeners.
    assert_eq!(report["summary"]["listeners"], 19);
    assert_eq!(report["hosts"][1]["source"], fixture("db-1.json"));
    let warnings = array(&report["warnings"], "warnings");
    assert_eq!(
        warnings[0],
        "web-1: owners of 1 sockets hidden: run as root"
    );

    let output = audit(&[
        "--input",
        &fixture("web-1.json"),
        "--input",
        &fixture("db-1.json"),
    ]);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("HOST   SEVERITY"), "{text}");
    assert!(
        lines[1].starts_with("db-1   high      6379/tcp  0.0.0.0"),
        "{text}"
    );
    assert!(stderr(&output).contains("web-1: owners of 1 sockets hidden"));
}

#[test]
fn fail_on_sets_the_least_severity_that_fails() {
    let edge = fixture("edge-1.json"); // one info finding: plain HTTP without HTTPS
    let status = |fail_on: &str| exit_code(&audit(&["--input", &edge, "--fail-on", fail_on]));
    assert_eq!(status("high"), 0);
    assert_eq!(status("low"), 0);
    assert_eq!(status("info"), 1);
    assert_eq!(status("never"), 0);
    assert_eq!(exit_code(&audit(&["--input", &edge])), 0, "default is high");
    let web = fixture("web-1.json"); // high, low
    let status = |fail_on: &str| exit_code(&audit(&["--input", &web, "--fail-on", fail_on]));
    assert_eq!(status("high"), 1);
    assert_eq!(status("never"), 0);
    let output = audit(&["--input", &edge, "--fail-on", "bogus"]);
    assert_eq!(exit_code(&output), 2);
}

#[test]
fn a_host_with_only_loopback_listeners_has_no_findings() {
    let output = audit(&["--input", &fixture("quiet-1.json")]);
    assert_eq!(exit_code(&output), 0);
    let text = stdout(&output);
    assert!(text.starts_with("No findings.\n"), "{text}");
    assert!(
        text.lines().last().is_some_and(|l| l
            == "Summary: 3 listeners, 0 beyond loopback; findings 0 high, 0 medium, 0 low, 0 info; pass (--fail-on high)"),
        "{text}"
    );
}

#[test]
fn policy_violations_fail_even_when_findings_do_not() {
    let (status, report) = audit_json(&[
        "--input",
        &fixture("web-1.json"),
        "--policy",
        &fixture("policy-web.toml"),
        "--fail-on",
        "never",
    ]);
    assert_eq!(status, 1);
    let violations: Vec<(&str, &Value, &str)> = array(&report["policy"]["violations"], "v")
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().expect("kind"),
                &v["port"],
                v["message"].as_str().expect("message"),
            )
        })
        .collect();
    assert_eq!(violations.len(), 3, "{report:#}");
    assert_eq!(violations[0].0, "not-allowed");
    assert_eq!(violations[0].1, 8443);
    assert_eq!(violations[1].1, 9229);
    assert_eq!(
        violations[1].2,
        "tcp 0.0.0.0:9229 (node) on all-interfaces: no [[allow]] rule matches"
    );
    assert_eq!(violations[2].0, "missing");
    assert_eq!(
        violations[2].2,
        "no listener on port 9100 ([[require]] at line 34)"
    );
    assert_eq!(report["summary"]["violations"], 3);
    assert_eq!(report["policy"]["file"], fixture("policy-web.toml"));

    let text = stdout(&audit(&[
        "--input",
        &fixture("web-1.json"),
        "--policy",
        &fixture("policy-web.toml"),
    ]));
    assert!(
        text.contains(&format!(
            "Policy {}: 3 violations",
            fixture("policy-web.toml")
        )),
        "{text}"
    );
    assert!(text.contains("policy 3 violations; FAIL"), "{text}");
}

#[test]
fn findings_on_allowed_listeners_are_reported_but_do_not_fail() {
    let (status, report) = audit_json(&[
        "--input",
        &fixture("db-1.json"),
        "--policy",
        &fixture("policy-db.toml"),
    ]);
    assert_eq!(status, 0, "{report:#}");
    let allowed: Vec<(&Value, &Value)> = array(&report["findings"], "findings")
        .iter()
        .map(|f| (&f["rule"], &f["allowed"]))
        .collect();
    assert_eq!(
        allowed,
        [
            (&"redis".into(), &true.into()),
            (&"postgresql".into(), &true.into()),
            (&"loopback-intended".into(), &true.into()),
        ]
    );
    assert_eq!(report["summary"]["allowed"], 3);
    assert_eq!(report["summary"]["failing_findings"], 0);
    let text = stdout(&audit(&[
        "--input",
        &fixture("db-1.json"),
        "--policy",
        &fixture("policy-db.toml"),
    ]));
    assert!(text.contains("high (allowed)"), "{text}");
    assert!(text.contains("(3 allowed by policy)"), "{text}");
}

#[test]
fn malformed_policies_are_errors_with_file_line_and_column() {
    for (file, place, words) in [
        ("policy-bad-syntax.toml", "2:9", "unclosed array table"),
        (
            "policy-unknown-field.toml",
            "4:1",
            "unknown field `proccess`",
        ),
        ("policy-bad-port.toml", "5:8", "port 70000 is out of range"),
        ("policy-bad-range.toml", "2:8", "runs backwards"),
        ("policy-bad-scope.toml", "3:9", "scope \"lan\" is neither"),
    ] {
        let output = audit(&[
            "--input",
            &fixture("quiet-1.json"),
            "--policy",
            &fixture(file),
        ]);
        assert_eq!(exit_code(&output), 2, "{file}");
        assert!(output.stdout.is_empty(), "{file}: nothing is audited");
        let message = stderr(&output);
        assert!(
            message.starts_with(&format!("portstat: {}:{place}: ", fixture(file))),
            "{file}: {message}"
        );
        assert!(message.contains(words), "{file}: {message}");
        assert_eq!(message.lines().count(), 1, "{message}");
    }
    let output = audit(&["--policy", "/nonexistent/portstat.toml"]);
    assert_eq!(exit_code(&output), 2);
    assert!(stderr(&output).contains("cannot read policy /nonexistent/portstat.toml"));
}

#[test]
fn drift_against_an_approved_snapshot_names_new_and_gone_listeners() {
    let (status, report) = audit_json(&[
        "--input",
        &fixture("web-1.json"),
        "--baseline",
        &fixture("web-1-approved.json"),
        "--fail-on",
        "never",
    ]);
    assert_eq!(status, 1, "drift is a violation");
    let ports = |list: &str| -> Vec<(Value, Value)> {
        array(&report["drift"][list], list)
            .iter()
            .map(|e| (e["port"].clone(), e["processes"].clone()))
            .collect()
    };
    assert_eq!(
        ports("new"),
        [
            (8443.into(), serde_json::json!([])),
            (9229.into(), serde_json::json!(["node"]))
        ]
    );
    assert_eq!(
        ports("gone"),
        [(11211.into(), serde_json::json!(["memcached"]))]
    );
    let text = stdout(&audit(&[
        "--input",
        &fixture("web-1.json"),
        "--baseline",
        &fixture("web-1-approved.json"),
    ]));
    assert!(text.contains("Drift since"), "{text}");
    assert!(text.contains("  new   tcp 0.0.0.0:9229 (node)\n"), "{text}");
    assert!(
        text.contains("  gone  tcp 127.0.0.1:11211 (memcached)\n"),
        "{text}"
    );
    assert!(text.contains("drift 2 new, 1 gone; FAIL"), "{text}");
}

#[test]
fn a_saved_audit_report_serves_as_a_baseline() {
    let inputs = [
        "--input",
        &fixture("web-1.json"),
        "--input",
        &fixture("db-1.json"),
    ];
    let saved = audit(&[&inputs[..], &["--json"]].concat());
    let baseline = temp_file(&stdout(&saved));
    let args = [
        &inputs[..],
        &["--baseline", path(&baseline), "--fail-on", "never"],
    ]
    .concat();
    let output = audit(&args);
    assert_eq!(exit_code(&output), 0, "{}", stdout(&output));
    assert!(stdout(&output).contains("drift 0 new, 0 gone; pass"));
    // Against one host of the fleet, the other host's listeners are new.
    let only_web = audit(&[
        "--input",
        &fixture("web-1.json"),
        "--input",
        &fixture("edge-1.json"),
        "--baseline",
        path(&baseline),
        "--fail-on",
        "never",
        "--json",
    ]);
    let report = report_of(&only_web);
    assert!(
        array(&report["drift"]["new"], "new")
            .iter()
            .all(|e| e["host"] == "edge-1")
    );
    assert_eq!(report["summary"]["new"], 3);
    assert_eq!(report["summary"]["gone"], 7, "db-1's listeners");
}

#[test]
fn a_snapshot_can_come_from_standard_input() {
    let text = std::fs::read(fixture("web-1.json")).expect("fixture");
    let mut child = portstat()
        .args(["audit", "--input", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&text)
        .expect("write snapshot");
    let output = child.wait_with_output().expect("runs");
    assert_eq!(exit_code(&output), 1);
    assert_eq!(report_of(&output)["hosts"][0]["host"], "web-1");
}

#[test]
fn bad_inputs_are_usage_errors() {
    let output = audit(&["--input", &fixture("broken-snapshot.json")]);
    assert_eq!(exit_code(&output), 2);
    assert!(
        stderr(&output).contains("sockets[1].local_address: \"localhost\" is not an IP address"),
        "{}",
        stderr(&output)
    );
    let web = fixture("web-1.json");
    let output = audit(&["--input", &web, "--input", &web]);
    assert_eq!(exit_code(&output), 2);
    assert!(
        stderr(&output).contains("both of host \"web-1\""),
        "{}",
        stderr(&output)
    );
    let output = audit(&["--input", "/nonexistent.json"]);
    assert_eq!(exit_code(&output), 2);
    assert!(stderr(&output).contains("cannot read snapshot /nonexistent.json"));
    let output = audit(&["--baseline", &fixture("policy-web.toml")]);
    assert_eq!(exit_code(&output), 2);
    assert!(stderr(&output).contains("not a portstat snapshot or audit report"));
    let output = audit(&["--input", &web, "--backend", "procfs"]);
    assert_eq!(exit_code(&output), 2, "--backend is for this host only");
}

/// A fixture snapshot, parsed, changed and saved to a temporary file.
fn changed_fixture(name: &str, change: impl FnOnce(&mut Value)) -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture");
    let mut document: Value = serde_json::from_str(&text).expect("fixture is JSON");
    change(&mut document);
    temp_file(&serde_json::to_string_pretty(&document).expect("serializes"))
}

/// Runs the audit and asserts it could not run (exit status 2) and said exactly `line`.
fn assert_refused(args: &[&str], line: &str) {
    let output = audit(args);
    assert_eq!(
        (exit_code(&output), stderr(&output)),
        (2, format!("portstat: {line}\n")),
        "stdout: {}",
        stdout(&output)
    );
}

const STATES: &str = "LISTEN, UNCONN, ESTABLISHED, SYN_SENT, SYN_RECV, NEW_SYN_RECV, \
                      FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, CLOSING";

/// Issue 12: a snapshot whose states were lower-cased audited as "0 listeners, pass".
#[test]
fn a_snapshot_with_lower_cased_states_is_refused_naming_file_and_field() {
    let file = changed_fixture("web-1.json", |document| {
        for socket in document["sockets"].as_array_mut().expect("sockets") {
            let state = socket["state"].as_str().expect("state").to_lowercase();
            socket["state"] = state.into();
        }
    });
    assert_refused(
        &["--input", path(&file)],
        &format!(
            "snapshot {}: sockets[0].state: unknown state \"listen\" (one of {STATES})",
            path(&file)
        ),
    );
}

#[test]
fn bogus_values_in_a_snapshot_are_refused_naming_file_and_field() {
    // (socket, field, bogus value, why); socket 7 is the hidden owner's, 9 a connection.
    let cases = [
        (
            1,
            "family",
            "IPv6",
            "unknown family \"IPv6\" (one of ipv4, ipv6)",
        ),
        (
            4,
            "local_range",
            "reserved",
            "unknown port range \"reserved\" (one of well-known, registered, dynamic)",
        ),
        (
            9,
            "remote_range",
            "ephemeral",
            "unknown port range \"ephemeral\" (one of well-known, registered, dynamic)",
        ),
        (
            9,
            "direction",
            "in",
            "unknown direction \"in\" (one of inbound, outbound)",
        ),
        (
            7,
            "owner_note",
            "root-only",
            "unknown owner note \"root-only\" \
             (one of kernel, accept-queue, hidden, exited, not-found)",
        ),
        (8, "proto", "UDP", "unknown proto \"UDP\" (one of tcp, udp)"),
        (
            9,
            "remote_address",
            "10.0.0.999",
            "\"10.0.0.999\" is not an IP address",
        ),
    ];
    for (index, field, bogus, why) in cases {
        let file = changed_fixture("web-1.json", |document| {
            document["sockets"][index][field] = bogus.into();
        });
        assert_refused(
            &["--input", path(&file)],
            &format!("snapshot {}: sockets[{index}].{field}: {why}", path(&file)),
        );
    }
    for bogus in ["2026-11-25 08:14:08", "yesterday", ""] {
        let file = changed_fixture("web-1.json", |document| {
            document["captured_at"] = bogus.into();
        });
        assert_refused(
            &["--input", path(&file)],
            &format!(
                "snapshot {}: captured_at: {bogus:?} is not an RFC 3339 time \
                 (like 2026-11-25T08:14:08Z)",
                path(&file)
            ),
        );
    }
}

#[test]
fn bogus_baselines_are_refused_naming_file_and_field() {
    let web = fixture("web-1.json");
    // A saved `portstat -l --json`.
    let snapshot = changed_fixture("web-1-approved.json", |document| {
        document["sockets"][2]["state"] = "Listen".into();
    });
    assert_refused(
        &["--input", &web, "--baseline", path(&snapshot)],
        &format!(
            "baseline {}: sockets[2].state: unknown state \"Listen\" (one of {STATES})",
            path(&snapshot)
        ),
    );
    // A saved `audit --json`.
    let report = stdout(&audit(&["--input", &web, "--json"]));
    let saved: Value = serde_json::from_str(&report).expect("a report");
    for (field, bogus, why) in [
        ("proto", "TCP", "unknown proto \"TCP\" (one of tcp, udp)"),
        ("address", "localhost", "\"localhost\" is not an IP address"),
    ] {
        let mut changed = saved.clone();
        changed["listeners"][1][field] = bogus.into();
        let file = temp_file(&changed.to_string());
        assert_refused(
            &["--input", &web, "--baseline", path(&file)],
            &format!("baseline {}: listeners[1].{field}: {why}", path(&file)),
        );
    }
}
