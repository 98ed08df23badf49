//! `--policy FILE`: which listeners a host may have (`[[allow]]`) and must have
//! (`[[require]]`), in TOML. Parsing is strict, since a typo in an allow-list silently allows
//! or forbids the wrong thing: an unknown key, a bad port or scope is an error with its line and
//! column.

use serde::Deserialize;
use toml::Spanned;

use super::exposure::Class;
use super::listener::Listener;
use crate::core::model::Proto;
use crate::core::query::PortSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only a listener on a loopback address.
    Loopback,
    /// A listener on any address.
    Any,
}

#[derive(Debug, Clone)]
pub struct Allow {
    pub ports: PortSpec,
    /// As written in the file, for messages.
    pub port_text: String,
    /// `None`: TCP and UDP.
    pub proto: Option<Proto>,
    pub scope: Scope,
    /// The process name (as `ps -o comm` shows it) one of the listener's holders must have.
    pub process: Option<String>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Require {
    pub ports: PortSpec,
    pub port_text: String,
    pub proto: Option<Proto>,
    pub line: usize,
}

impl Require {
    /// `port 8080/tcp` or `port 8000-8100` (either protocol).
    pub fn describe(&self) -> String {
        match self.proto {
            Some(proto) => format!("port {}/{}", self.port_text, proto.as_str()),
            None => format!("port {}", self.port_text),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allow: Vec<Allow>,
    pub require: Vec<Require>,
}

/// A mistake in the policy file, and where it is (1-based, columns in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl PolicyError {
    /// `portstat.toml:3:8: message`, as compilers write it, so editors jump to it.
    pub fn in_file(&self, file: &str) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{file}:{line}:{column}: {}", self.message),
            _ => format!("{file}: {}", self.message),
        }
    }

    fn at(text: &str, span: Option<std::ops::Range<usize>>, message: String) -> PolicyError {
        let place = span.map(|span| line_column(text, span.start));
        PolicyError {
            line: place.map(|(line, _)| line),
            column: place.map(|(_, column)| column),
            message,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Violation {
    /// No `[[allow]]` matches this listener (an index into the audited listeners).
    NotAllowed { listener: usize },
    /// The host (an index into the audited hosts) has no listener for this `[[require]]`.
    Missing { host: usize, require: usize },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    allow: Vec<Spanned<RawAllow>>,
    #[serde(default)]
    require: Vec<Spanned<RawRequire>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    port: Spanned<toml::Value>,
    proto: Option<Spanned<String>>,
    scope: Option<Spanned<String>>,
    process: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequire {
    port: Spanned<toml::Value>,
    proto: Option<Spanned<String>>,
}

pub fn parse(text: &str) -> Result<Policy, PolicyError> {
    let raw: RawPolicy = toml::from_str(text)
        .map_err(|error| PolicyError::at(text, error.span(), error.message().trim().into()))?;
    let lines = Lines::new(text);
    let mut policy = Policy::default();
    for entry in raw.allow {
        let line = lines.locate(entry.span().start).0;
        let entry = entry.into_inner();
        let (ports, port_text) = port(text, &entry.port)?;
        let scope = match entry.scope {
            None => Scope::Any,
            Some(scope) => match scope.get_ref().as_str() {
                "any" => Scope::Any,
                "loopback" => Scope::Loopback,
                other => {
                    return Err(PolicyError::at(
                        text,
                        Some(scope.span()),
                        format!("scope {other:?} is neither \"loopback\" nor \"any\""),
                    ));
                }
            },
        };
        let process = match entry.process {
            Some(name) if name.get_ref().trim().is_empty() => {
                return Err(PolicyError::at(
                    text,
                    Some(name.span()),
                    "process is empty (leave it out to allow any process)".into(),
                ));
            }
            other => other.map(Spanned::into_inner),
        };
        policy.allow.push(Allow {
            ports,
            port_text,
            proto: proto(text, entry.proto.as_ref())?,
            scope,
            process,
            line,
        });
    }
    for entry in raw.require {
        let line = lines.locate(entry.span().start).0;
        let entry = entry.into_inner();
        let (ports, port_text) = port(text, &entry.port)?;
        policy.require.push(Require {
            ports,
            port_text,
            proto: proto(text, entry.proto.as_ref())?,
            line,
        });
    }
    Ok(policy)
}

fn port(text: &str, value: &Spanned<toml::Value>) -> Result<(PortSpec, String), PolicyError> {
    let fail = |message: String| PolicyError::at(text, Some(value.span()), message);
    match value.get_ref() {
        toml::Value::Integer(number) => u16::try_from(*number)
            .map(|port| (PortSpec::from(port), port.to_string()))
            .map_err(|_| fail(format!("port {number} is out of range (ports are 0-65535)"))),
        toml::Value::String(spec) => spec
            .parse::<PortSpec>()
            .map(|ports| (ports, spec.trim().to_string()))
            .map_err(fail),
        other => Err(fail(format!(
            "port must be a number (22) or a string (\"8000-8100\"), not a {}",
            other.type_str()
        ))),
    }
}

fn proto(text: &str, value: Option<&Spanned<String>>) -> Result<Option<Proto>, PolicyError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.get_ref().as_str() {
        "tcp" => Ok(Some(Proto::Tcp)),
        "udp" => Ok(Some(Proto::Udp)),
        other => Err(PolicyError::at(
            text,
            Some(value.span()),
            format!("proto {other:?} is neither \"tcp\" nor \"udp\" (leave it out for both)"),
        )),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    Lines::new(text).locate(offset)
}

/// Where each line of a text starts, found once, so that locating each of 20k rules is a binary
/// search rather than a count of the newlines from the file's start.
struct Lines<'a> {
    text: &'a str,
    /// Byte offsets of the lines' starts: 0, then one past each newline.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(newline, _)| newline + 1))
            .collect();
        Lines { text, starts }
    }

    /// 1-based line and column (in characters) of a byte offset; an offset past the end or
    /// inside a character counts as the text's end.
    fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = if self.text.is_char_boundary(offset) {
            offset
        } else {
            self.text.len()
        };
        // The lines that start at or before the offset: starts[0] = 0 always does.
        let line = self.starts.partition_point(|&start| start <= offset);
        let line_start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(line_start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        (line, column)
    }
}

impl Allow {
    pub fn matches(&self, listener: &Listener) -> bool {
        self.ports.contains(listener.port)
            && self.proto.is_none_or(|proto| proto == listener.proto)
            && (self.scope == Scope::Any || listener.exposure.class == Class::Loopback)
            && self
                .process
                .as_ref()
                .is_none_or(|name| listener.processes.iter().any(|p| &p.name == name))
    }
}

impl Policy {
    pub fn allows(&self, listener: &Listener) -> bool {
        self.allow.iter().any(|allow| allow.matches(listener))
    }

    /// Every listener no `[[allow]]` matches, then every `[[require]]` a host lacks.
    pub fn check(&self, hosts: &[String], listeners: &[Listener]) -> Vec<Violation> {
        let mut violations: Vec<Violation> = listeners
            .iter()
            .enumerate()
            .filter(|(_, listener)| !self.allows(listener))
            .map(|(listener, _)| Violation::NotAllowed { listener })
            .collect();
        for (host, name) in hosts.iter().enumerate() {
            for (index, require) in self.require.iter().enumerate() {
                let present = listeners.iter().any(|listener| {
                    &listener.host == name
                        && require.ports.contains(listener.port)
                        && require.proto.is_none_or(|proto| proto == listener.proto)
                });
                if !present {
                    violations.push(Violation::Missing {
                        host,
                        require: index,
                    });
                }
            }
        }
        violations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::audit::exposure::{self, HostView};
    use crate::core::model::Process;

    fn listener(proto: Proto, address: &str, port: u16, name: Option<&str>) -> Listener {
        let address = address.parse().expect("test address");
        Listener {
            host: "web-1".into(),
            proto,
            family: "ipv4",
            address,
            port,
            exposure: exposure::classify(address, None, &HostView::default()),
            service: None,
            uid: None,
            user: None,
            processes: name
                .map(|name| Process::example(1, name, None))
                .into_iter()
                .collect(),
            owner_note: None,
            firewall: None,
            forward: None,
            probe: None,
        }
    }

    const GOOD: &str = r#"
# SSH from anywhere, by sshd only
[[allow]]
port = 22
proto = "tcp"
process = "sshd"

[[allow]]
port = "8000-8100"
scope = "loopback"

[[allow]]
port = 53
proto = "udp"
scope = "any"

[[require]]
port = 8080
proto = "tcp"
"#;

    #[test]
    fn a_good_policy_parses_with_lines() {
        let policy = parse(GOOD).expect("valid policy");
        assert_eq!(policy.allow.len(), 3);
        assert_eq!(policy.allow[0].process.as_deref(), Some("sshd"));
        assert_eq!(policy.allow[1].scope, Scope::Loopback);
        assert_eq!(policy.allow[1].proto, None);
        assert_eq!(policy.allow[1].port_text, "8000-8100");
        assert_eq!(policy.require[0].describe(), "port 8080/tcp");
        // The line of the table's header, where a reader looks for it.
        assert_eq!(policy.require[0].line, 17);
        assert_eq!(policy.allow[0].line, 3);
        assert!(parse("").is_ok_and(|p| p.allow.is_empty() && p.require.is_empty()));
    }

    #[test]
    fn allow_rules_match_port_proto_scope_and_process() {
        let policy = parse(GOOD).expect("valid policy");
        assert!(policy.allows(&listener(Proto::Tcp, "0.0.0.0", 22, Some("sshd"))));
        assert!(!policy.allows(&listener(Proto::Tcp, "0.0.0.0", 22, Some("dropbear"))));
        assert!(!policy.allows(&listener(Proto::Tcp, "0.0.0.0", 22, None)));
        assert!(!policy.allows(&listener(Proto::Udp, "0.0.0.0", 22, Some("sshd"))));
        assert!(policy.allows(&listener(Proto::Tcp, "127.0.0.1", 8050, None)));
        assert!(policy.allows(&listener(Proto::Udp, "::1", 8100, None)));
        assert!(!policy.allows(&listener(Proto::Tcp, "0.0.0.0", 8050, None)));
        assert!(!policy.allows(&listener(Proto::Tcp, "127.0.0.1", 8101, None)));
        assert!(policy.allows(&listener(Proto::Udp, "10.0.0.1", 53, None)));
    }

    #[test]
    fn violations_name_unallowed_listeners_and_missing_requirements() {
        let policy = parse(GOOD).expect("valid policy");
        let hosts = vec!["web-1".to_string(), "web-2".to_string()];
        let mut on_web_2 = listener(Proto::Tcp, "127.0.0.1", 8080, None);
        on_web_2.host = "web-2".into();
        let listeners = vec![
            listener(Proto::Tcp, "0.0.0.0", 22, Some("sshd")),
            listener(Proto::Tcp, "0.0.0.0", 6379, Some("redis-server")),
            on_web_2,
        ];
        // web-2's loopback 8080 is allowed (8000-8100 on loopback) and meets the requirement;
        // web-1 has no 8080 at all.
        assert_eq!(
            policy.check(&hosts, &listeners),
            [
                Violation::NotAllowed { listener: 1 },
                Violation::Missing {
                    host: 0,
                    require: 0
                },
            ]
        );
    }

    #[test]
    fn mistakes_are_located_by_line_and_column() {
        let err = |text: &str| parse(text).expect_err(text);
        let bad_port = err("[[allow]]\nport = 70000\n");
        assert_eq!((bad_port.line, bad_port.column), (Some(2), Some(8)));
        assert!(bad_port.message.contains("out of range"), "{bad_port:?}");
        let backwards = err("[[allow]]\nport = \"9000-8000\"\n");
        assert!(backwards.message.contains("backwards"), "{backwards:?}");
        let scope = err("[[allow]]\nport = 22\nscope = \"everywhere\"\n");
        assert_eq!((scope.line, scope.column), (Some(3), Some(9)));
        let proto = err("[[require]]\nport = 22\nproto = \"sctp\"\n");
        assert_eq!(proto.line, Some(3));
        let unknown = err("[[allow]]\nport = 22\nprocces = \"sshd\"\n");
        assert_eq!(unknown.line, Some(3));
        assert!(unknown.message.contains("procces"), "{unknown:?}");
        let syntax = err("[[allow]\nport = 22\n");
        assert_eq!(syntax.line, Some(1));
        let missing = err("[[allow]]\nproto = \"tcp\"\n");
        assert!(missing.message.contains("port"), "{missing:?}");
        let wrong_type = err("[[allow]]\nport = 22.5\n");
        assert!(wrong_type.message.contains("not a float"), "{wrong_type:?}");
        assert_eq!(
            bad_port.in_file("p.toml"),
            format!("p.toml:2:8: {}", bad_port.message)
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(line_column("é = 1\nab", 8), (2, 2));
        assert_eq!(line_column("ab", 0), (1, 1));
    }

    /// The scan from the file's start that `Lines` replaces, kept to check it against.
    fn line_column_by_scanning(text: &str, offset: usize) -> (usize, usize) {
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }

    #[test]
    fn indexed_lines_locate_every_offset_as_the_scan_did() {
        for text in ["", "\n", "\n\n", "ab", "é = 1\nab", "a\n\nbé\nc\n", GOOD] {
            let lines = Lines::new(text);
            for offset in 0..=text.len() + 2 {
                assert_eq!(
                    lines.locate(offset),
                    line_column_by_scanning(text, offset),
                    "{text:?} at {offset}"
                );
            }
        }
        let policy = parse(GOOD).expect("valid policy");
        let lines: Vec<usize> = policy.allow.iter().map(|a| a.line).collect();
        assert_eq!(lines, [3, 8, 12]);
    }
}
