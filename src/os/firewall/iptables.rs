//! `iptables-save` and `ip6tables-save` output (the nft and the legacy variants print the same
//! format) read into the firewall model's chains.
//!
//! The format, as iptables' `xtables-save.c` and `iptables-save.c` write it: per table a
//! `*table` line, a `:CHAIN POLICY [packets:bytes]` line per chain (built-in chains have a
//! policy, user chains `-`), the table's rules as `-A CHAIN ...` lines, chain by chain, and
//! `COMMIT`; `#` lines are comments. A rule prints its base options (`-s`, `-d`, `-i`, `-o`,
//! `-p`, `-f`) first, then each match as `-m NAME` and its options, then `-j TARGET` and its
//! options or `-g CHAIN`. An argument that needs it is quoted as `xtables_save_string` does: in
//! double quotes, with `"`, `\` and `'` escaped by a backslash. Chain and target names are
//! printed as they are (a chain may be called `q"uote`), so a quote only opens a quoted
//! argument at its start.
//!
//! What the model can't hold becomes [`Test::Unknown`] or [`Action::Unknown`] with the text it
//! came from; a rule line that can't be read is kept as a rule with an unknown test saying why,
//! so an answer that depends on it is unknown rather than a guess.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use anyhow::{Result, bail};

use crate::core::firewall::{
    Action, AddressRange, AddressType, BaseChain, Chain, ChainKind, ConnectionState, Hook, Mark,
    MarkSet, MarkValue, Match, Origin, Policy, PortSpan, Rule, TableFamily, Test,
};

/// A document's chains and what in it could not be read into them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub chains: Vec<Chain>,
    /// One sentence each, for [`Ruleset::gaps`](crate::core::firewall::Ruleset::gaps): tables
    /// iptables-nft-save left out, lines that are not part of the format, tables cut short.
    pub gaps: Vec<String>,
}

/// The chains of an `iptables-save` (`family` [`TableFamily::Ip`]) or `ip6tables-save`
/// ([`TableFamily::Ip6`]) document. Text that is not that format at all is an error; empty
/// output (no tables loaded) is no chains. Only [`parse_with_gaps`] tells of what fits in no
/// chain: a table iptables-nft-save left out, a line that is no rule.
pub fn parse(text: &str, family: TableFamily, origin: Origin) -> Result<Vec<Chain>> {
    parse_with_gaps(text, family, origin).map(|parsed| parsed.chains)
}

/// [`parse`], with what could not be read.
pub fn parse_with_gaps(text: &str, family: TableFamily, origin: Origin) -> Result<Parsed> {
    if !matches!(family, TableFamily::Ip | TableFamily::Ip6) {
        bail!("iptables-save has no {} tables", family.as_str());
    }
    let mut reader = Reader {
        family,
        origin,
        tool: tool_name(family, origin),
        table: None,
        saw_table: false,
        tables_seen: HashSet::new(),
        first_foreign: None,
        chains: Vec::new(),
        gaps: Vec::new(),
        gaps_left_out: 0,
    };
    for (index, line) in text.lines().enumerate() {
        reader.line(index + 1, line);
    }
    reader.finish()
}

/// The most problems listed one by one; a garbage file would otherwise make a gap per line.
const MAX_GAPS: usize = 50;

/// How much of a line a gap quotes.
const SNIPPET_CHARS: usize = 60;

fn tool_name(family: TableFamily, origin: Origin) -> &'static str {
    match (family, origin) {
        (TableFamily::Ip6, Origin::IptablesNft) => "ip6tables-nft-save",
        (TableFamily::Ip6, Origin::IptablesLegacy) => "ip6tables-legacy-save",
        (TableFamily::Ip6, _) => "ip6tables-save",
        (_, Origin::IptablesNft) => "iptables-nft-save",
        (_, Origin::IptablesLegacy) => "iptables-legacy-save",
        _ => "iptables-save",
    }
}

/// Where netfilter attaches a built-in chain, with the priority iptables-nft gives it (the
/// legacy tables run in the same order: `NF_IP_PRI_*`).
fn builtin_chain(table: &str, chain: &str) -> Option<(Hook, i32, ChainKind)> {
    let hook = match chain {
        "PREROUTING" => Hook::Prerouting,
        "INPUT" => Hook::Input,
        "FORWARD" => Hook::Forward,
        "OUTPUT" => Hook::Output,
        "POSTROUTING" => Hook::Postrouting,
        _ => return None,
    };
    let (priority, kind) = match (table, hook) {
        ("raw", Hook::Prerouting | Hook::Output) => (-300, ChainKind::Filter),
        // iptables-nft makes mangle OUTPUT a `route` chain: a changed mark reroutes the packet.
        ("mangle", Hook::Output) => (-150, ChainKind::Route),
        ("mangle", _) => (-150, ChainKind::Filter),
        ("nat", Hook::Prerouting | Hook::Output) => (-100, ChainKind::Nat),
        ("nat", Hook::Input | Hook::Postrouting) => (100, ChainKind::Nat),
        ("filter", Hook::Input | Hook::Forward | Hook::Output) => (0, ChainKind::Filter),
        ("security", Hook::Input | Hook::Forward | Hook::Output) => (50, ChainKind::Filter),
        _ => return None,
    };
    Some((hook, priority, kind))
}

const KNOWN_TABLES: [&str; 5] = ["raw", "mangle", "nat", "filter", "security"];

struct Reader {
    family: TableFamily,
    origin: Origin,
    tool: &'static str,
    table: Option<TableBuild>,
    saw_table: bool,
    tables_seen: HashSet<String>,
    /// The first line outside any table that is not a comment: what a document that isn't
    /// iptables-save output is refused with.
    first_foreign: Option<(usize, String)>,
    chains: Vec<Chain>,
    gaps: Vec<String>,
    gaps_left_out: usize,
}

struct TableBuild {
    name: String,
    chains: Vec<ChainBuild>,
    index: HashMap<String, usize>,
}

struct ChainBuild {
    name: String,
    base: Option<BaseChain>,
    rules: Vec<PendingRule>,
    /// Set when the chain's end can't be known (a policy that is neither ACCEPT nor DROP, a
    /// built-in chain never declared, a table cut short): a last rule that is unknown.
    unknown_end: Option<String>,
}

struct PendingRule {
    text: String,
    comment: Option<String>,
    matches: Vec<Match>,
    marks: Vec<MarkSet>,
    target: PendingTarget,
}

/// A `-j NAME` is a jump when the table has a chain of that name, which is only known once the
/// whole table is read.
enum PendingTarget {
    Action(Action),
    Chain { name: String, goto: bool },
}

impl Reader {
    fn line(&mut self, number: usize, line: &str) {
        let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
        if line.is_empty() {
            return;
        }
        if let Some(comment) = line.strip_prefix('#') {
            self.comment(comment);
        } else if let Some(name) = line.strip_prefix('*') {
            self.start_table(number, name.trim());
        } else if line == "COMMIT" {
            match self.table.take() {
                Some(table) => self.close_table(table),
                None => self.stray(number, line, "a COMMIT outside a table"),
            }
        } else if let Some(declaration) = line.strip_prefix(':') {
            self.declare_chain(number, line, declaration);
        } else if let Some(rule) = rule_line(line) {
            self.rule(number, line, rule);
        } else {
            self.stray(number, line, "not a line of iptables-save's format");
        }
    }

    /// iptables-nft-save leaves out a table, or some of its base chains, that holds what
    /// iptables can't print, and says so in a comment.
    fn comment(&mut self, comment: &str) {
        let comment = comment.trim();
        let Some(rest) = comment.strip_prefix("Table `") else {
            return;
        };
        let Some((table, what)) = rest.split_once('\'') else {
            return;
        };
        let table = snippet(table);
        if what.contains("contains incompatible base-chains") {
            self.gap(format!(
                "{}: table {table} has base chains iptables cannot show (it says to list them \
                 with nft); they are not read here",
                self.tool
            ));
        } else if what.contains("is incompatible") {
            self.gap(format!(
                "{}: table {table} holds rules iptables cannot show (it says to use nft); the \
                 table is not read here",
                self.tool
            ));
        }
    }

    fn start_table(&mut self, number: usize, name: &str) {
        if let Some(open) = self.table.take() {
            let why = format!(
                "table {} has no COMMIT before line {number}",
                snippet(&open.name)
            );
            self.cut_short(open, &why);
        }
        self.saw_table = true;
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) {
            self.gap(format!(
                "{}: line {number}: `*{}` is no table name",
                self.tool,
                snippet(name)
            ));
        } else if !KNOWN_TABLES.contains(&name) {
            self.gap(format!(
                "{}: table {} is not one of iptables' tables (raw, mangle, nat, filter, \
                 security): its chains are attached to no hook here",
                self.tool,
                snippet(name)
            ));
        }
        if !self.tables_seen.insert(name.to_string()) {
            self.gap(format!(
                "{}: line {number}: table {} appears a second time",
                self.tool,
                snippet(name)
            ));
        }
        self.table = Some(TableBuild {
            name: name.to_string(),
            chains: Vec::new(),
            index: HashMap::new(),
        });
    }

    fn declare_chain(&mut self, number: usize, line: &str, declaration: &str) {
        let tool = self.tool;
        let Some(table) = self.table.as_mut() else {
            self.stray(number, line, "a chain outside a table");
            return;
        };
        let mut fields = declaration.split_ascii_whitespace();
        let Some(name) = fields.next() else {
            self.gap(format!("{tool}: line {number}: a chain without a name"));
            return;
        };
        if table.index.contains_key(name) {
            let gap = format!(
                "{tool}: line {number}: chain {} of table {} is declared a second time",
                snippet(name),
                snippet(&table.name)
            );
            self.gap(gap);
            return;
        }
        let policy = fields.next();
        let mut chain = ChainBuild {
            name: name.to_string(),
            base: None,
            rules: Vec::new(),
            unknown_end: None,
        };
        let builtin = builtin_chain(&table.name, name);
        let mut gap = None;
        match (builtin, policy) {
            (_, Some("-")) => {}
            (Some((hook, priority, kind)), policy) => {
                let known = match policy {
                    Some("ACCEPT") => Some(Policy::Accept),
                    Some("DROP") => Some(Policy::Drop),
                    _ => None,
                };
                if known.is_none() {
                    chain.unknown_end = Some(format!(
                        "the policy of chain {name} is {}, which is neither ACCEPT nor DROP",
                        policy.map_or_else(|| "missing".to_string(), |p| format!("`{p}`"))
                    ));
                }
                chain.base = Some(BaseChain {
                    hook,
                    priority,
                    kind,
                    policy: known.unwrap_or(Policy::Accept),
                    device: None,
                });
            }
            (None, Some(policy)) => {
                gap = Some(format!(
                    "{tool}: line {number}: chain {} of table {} has policy {} but is no \
                     built-in chain: it is attached to no hook here",
                    snippet(name),
                    snippet(&table.name),
                    snippet(policy)
                ));
            }
            (None, None) => {}
        }
        table.index.insert(chain.name.clone(), table.chains.len());
        table.chains.push(chain);
        if let Some(gap) = gap {
            self.gap(gap);
        }
    }

    fn rule(&mut self, number: usize, line: &str, rule: RuleLine<'_>) {
        let family = self.family;
        let tool = self.tool;
        let Some(table) = self.table.as_mut() else {
            self.stray(number, line, "a rule outside a table");
            return;
        };
        let Some(chain_name) = rule.chain else {
            self.gap(format!("{tool}: line {number}: `-A` without a chain"));
            return;
        };
        let position = match table.index.get(chain_name) {
            Some(&position) => position,
            None => {
                // iptables-restore refuses a rule for a chain it was not told of; keep the rule,
                // and say the chain's end is unknown if it is a built-in one (its policy was
                // never given).
                let mut chain = ChainBuild {
                    name: chain_name.to_string(),
                    base: None,
                    rules: Vec::new(),
                    unknown_end: None,
                };
                if let Some((hook, priority, kind)) = builtin_chain(&table.name, chain_name) {
                    chain.base = Some(BaseChain {
                        hook,
                        priority,
                        kind,
                        policy: Policy::Accept,
                        device: None,
                    });
                    chain.unknown_end = Some(format!(
                        "chain {chain_name} was never declared, so its policy is unknown"
                    ));
                }
                table.index.insert(chain.name.clone(), table.chains.len());
                table.chains.push(chain);
                table.chains.len() - 1
            }
        };
        let pending = parse_rule(rule.text, rule.rest, family);
        table.chains[position].rules.push(pending);
    }

    fn close_table(&mut self, table: TableBuild) {
        let TableBuild {
            name: table_name,
            chains,
            index,
        } = table;
        for build in chains {
            let mut rules: Vec<Rule> = Vec::with_capacity(build.rules.len() + 1);
            for pending in build.rules {
                let action = match pending.target {
                    PendingTarget::Action(action) => action,
                    PendingTarget::Chain { name, goto } => {
                        if index.contains_key(&name) {
                            if goto {
                                Action::Goto(name)
                            } else {
                                Action::Jump(name)
                            }
                        } else if goto {
                            Action::Unknown(format!(
                                "-g {name}: table {table_name} has no such chain"
                            ))
                        } else {
                            Action::Unknown(format!(
                                "-j {name}: neither a chain of table {table_name} nor a target \
                                 portstat knows"
                            ))
                        }
                    }
                };
                rules.push(Rule {
                    handle: rules.len() as u64 + 1,
                    text: pending.text,
                    comment: pending.comment,
                    matches: pending.matches,
                    marks: pending.marks,
                    action,
                });
            }
            if let Some(why) = build.unknown_end {
                rules.push(Rule {
                    handle: rules.len() as u64 + 1,
                    text: why.clone(),
                    comment: None,
                    marks: Vec::new(),
                    matches: vec![Match {
                        negated: false,
                        test: Test::Unknown(why.clone()),
                    }],
                    action: Action::Unknown(why),
                });
            }
            self.chains.push(Chain {
                origin: self.origin,
                family: self.family,
                table: table_name.clone(),
                name: build.name,
                base: build.base,
                rules,
            });
        }
    }

    /// A table whose COMMIT never came (iptables-save failed half way, or the output was cut):
    /// rules may be missing from the end of any of its chains.
    fn cut_short(&mut self, mut table: TableBuild, why: &str) {
        let tool = self.tool;
        let end = format!("{tool}: {why}: its rules may end early");
        for chain in &mut table.chains {
            chain.unknown_end.get_or_insert_with(|| end.clone());
        }
        self.gap(end);
        self.close_table(table);
    }

    fn stray(&mut self, number: usize, line: &str, what: &str) {
        if !self.saw_table && self.first_foreign.is_none() {
            self.first_foreign = Some((number, snippet(line)));
        }
        self.gap(format!(
            "{}: line {number}: {what}: `{}`",
            self.tool,
            snippet(line)
        ));
    }

    fn gap(&mut self, gap: String) {
        if self.gaps.len() < MAX_GAPS {
            self.gaps.push(gap);
        } else {
            self.gaps_left_out += 1;
        }
    }

    fn finish(mut self) -> Result<Parsed> {
        if !self.saw_table
            && let Some((number, line)) = self.first_foreign
        {
            bail!(
                "this is not {} output: line {number} is `{line}`, and no line starts a \
                     table (`*filter`)",
                self.tool
            );
        }
        if let Some(open) = self.table.take() {
            let why = format!("table {} has no COMMIT", snippet(&open.name));
            self.cut_short(open, &why);
        }
        if self.gaps_left_out > 0 {
            let more = format!(
                "{}: {} more problems like those above",
                self.tool, self.gaps_left_out
            );
            self.gaps.push(more);
        }
        Ok(Parsed {
            chains: self.chains,
            gaps: self.gaps,
        })
    }
}

/// A `-A CHAIN ...` line, with or without the `[packets:bytes]` that `iptables-save -c` puts
/// first.
struct RuleLine<'a> {
    /// The line from `-A` on.
    text: &'a str,
    chain: Option<&'a str>,
    /// What follows the chain's name.
    rest: &'a str,
}

fn rule_line(line: &str) -> Option<RuleLine<'_>> {
    let mut text = line;
    if let Some(after) = line.strip_prefix('[') {
        let (counters, rest) = after.split_once(']')?;
        let (packets, bytes) = counters.split_once(':')?;
        if !all_digits(packets) || !all_digits(bytes) {
            return None;
        }
        text = rest.trim_start_matches(SEPARATORS);
    }
    let rest = text
        .strip_prefix("--append")
        .or_else(|| text.strip_prefix("-A"))?;
    if !(rest.is_empty() || rest.starts_with(SEPARATORS)) {
        return None;
    }
    let rest = rest.trim_start_matches(SEPARATORS);
    let (chain, rest) = rest.split_at(rest.find(SEPARATORS).unwrap_or(rest.len()));
    Some(RuleLine {
        text,
        chain: (!chain.is_empty()).then_some(chain),
        rest,
    })
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// What separates arguments: iptables-restore splits a line at spaces and tabs only.
const SEPARATORS: [char; 2] = [' ', '\t'];

/// One argument of a rule line: as written, and with its quotes and escapes undone.
struct Token<'a> {
    raw: &'a str,
    value: String,
    quoted: bool,
}

impl Token<'_> {
    fn is_negation(&self) -> bool {
        !self.quoted && self.value == "!"
    }

    /// An option is `-x` or `--xxx`; a quoted argument never is one (`--log-prefix "-x"`).
    fn is_option(&self) -> bool {
        !self.quoted && self.value.len() > 1 && self.value.starts_with('-')
    }
}

fn tokenize(text: &str) -> Result<Vec<Token<'_>>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, first)) = chars.peek() {
        if SEPARATORS.contains(&first) {
            chars.next();
            continue;
        }
        let mut value = String::new();
        let quoted = first == '"';
        if quoted {
            chars.next();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, escaped)) => value.push(escaped),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!(
                    "the quote that opens `{}` is never closed",
                    snippet(&text[start..])
                ));
            }
        }
        let mut end = text.len();
        while let Some(&(at, c)) = chars.peek() {
            if SEPARATORS.contains(&c) {
                end = at;
                break;
            }
            value.push(c);
            chars.next();
        }
        tokens.push(Token {
            raw: &text[start..end],
            value,
            quoted,
        });
    }
    Ok(tokens)
}

/// An option and its arguments, as one match or target was given them.
struct Opt {
    negated: bool,
    name: String,
    args: Vec<String>,
    /// As written, `!` included: the text of an unknown test.
    raw: String,
}

impl Opt {
    fn single_arg(&self) -> Option<&str> {
        match self.args.as_slice() {
            [arg] => Some(arg),
            _ => None,
        }
    }
}

/// A rule's parts in the order written: its base options, its matches and what could not be
/// read; the target is apart.
enum Part {
    Base(Opt),
    Module(Module),
    Problem(String),
}

struct Module {
    name: String,
    /// `-p tcp --dport 22` without `-m tcp`: iptables loads the protocol's match by itself.
    implicit: bool,
    opts: Vec<Opt>,
}

impl Module {
    fn text(&self) -> String {
        let mut text = if self.implicit {
            String::new()
        } else {
            format!("-m {}", self.name)
        };
        for opt in &self.opts {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&opt.raw);
        }
        text
    }
}

struct TargetSpec {
    name: String,
    goto: bool,
    opts: Vec<Opt>,
}

impl TargetSpec {
    fn text(&self) -> String {
        let mut text = format!("{} {}", if self.goto { "-g" } else { "-j" }, self.name);
        for opt in &self.opts {
            text.push(' ');
            text.push_str(&opt.raw);
        }
        text
    }
}

enum BaseOption {
    /// `-p`, `-s`, `-d`, `-i`, `-o` (the short name): one argument.
    Value(&'static str),
    Fragment,
    Match,
    Jump,
    Goto,
    Counters,
}

fn base_option(name: &str) -> Option<BaseOption> {
    Some(match name {
        "-p" | "--protocol" => BaseOption::Value("-p"),
        "-s" | "--source" | "--src" => BaseOption::Value("-s"),
        "-d" | "--destination" | "--dst" => BaseOption::Value("-d"),
        "-i" | "--in-interface" => BaseOption::Value("-i"),
        "-o" | "--out-interface" => BaseOption::Value("-o"),
        "-f" | "--fragment" => BaseOption::Fragment,
        "-m" | "--match" => BaseOption::Match,
        "-j" | "--jump" => BaseOption::Jump,
        "-g" | "--goto" => BaseOption::Goto,
        "-c" | "--set-counters" => BaseOption::Counters,
        _ => return None,
    })
}

const PORT_OPTIONS: [&str; 4] = ["--sport", "--source-port", "--dport", "--destination-port"];

/// The options of a match portstat reads; `None` for one it does not, whose options are all
/// its own (iptables-save prints a match's options right after it).
fn module_options(module: &str) -> Option<&'static [&'static str]> {
    Some(match module {
        "tcp" => &[
            "--sport",
            "--source-port",
            "--dport",
            "--destination-port",
            "--tcp-flags",
            "--syn",
            "--tcp-option",
        ],
        "udp" | "udplite" => &PORT_OPTIONS,
        "sctp" => &[
            "--sport",
            "--source-port",
            "--dport",
            "--destination-port",
            "--chunk-types",
        ],
        "dccp" => &[
            "--sport",
            "--source-port",
            "--dport",
            "--destination-port",
            "--dccp-types",
            "--dccp-option",
        ],
        "multiport" => &[
            "--sports",
            "--source-ports",
            "--dports",
            "--destination-ports",
            "--ports",
        ],
        "conntrack" => &[
            "--ctstate",
            "--ctproto",
            "--ctorigsrc",
            "--ctorigdst",
            "--ctreplsrc",
            "--ctrepldst",
            "--ctorigsrcport",
            "--ctorigdstport",
            "--ctreplsrcport",
            "--ctrepldstport",
            "--ctstatus",
            "--ctexpire",
            "--ctdir",
        ],
        "state" => &["--state"],
        "addrtype" => &[
            "--src-type",
            "--dst-type",
            "--limit-iface-in",
            "--limit-iface-out",
        ],
        "comment" => &["--comment"],
        "iprange" => &["--src-range", "--dst-range"],
        _ => return None,
    })
}

fn module_takes(module: &str, option: &str) -> bool {
    module_options(module).is_none_or(|options| options.contains(&option))
}

/// The options of a target portstat reads; `None` for one whose options it does not need.
fn target_options(target: &str) -> Option<&'static [&'static str]> {
    Some(match target {
        "ACCEPT" | "DROP" | "RETURN" => &[],
        "REJECT" => &["--reject-with"],
        "DNAT" => &[
            "--to-destination",
            "--random",
            "--persistent",
            "--random-fully",
        ],
        "REDIRECT" => &["--to-ports", "--random"],
        _ => return None,
    })
}

fn target_takes(target: &str, option: &str) -> bool {
    target_options(target).is_none_or(|options| options.contains(&option))
}

/// The protocols whose match iptables loads for `-p NAME` alone.
fn implicit_module(protocol: &str) -> Option<&'static str> {
    match protocol_number(protocol)? {
        6 => Some("tcp"),
        17 => Some("udp"),
        136 => Some("udplite"),
        132 => Some("sctp"),
        33 => Some("dccp"),
        _ => None,
    }
}

/// Targets that decide nothing: the packet goes on to the next rule. SNAT and MASQUERADE
/// change the source of what leaves, which no inbound answer depends on.
const CONTINUE_TARGETS: [&str; 27] = [
    "LOG",
    "ULOG",
    "NFLOG",
    "TRACE",
    "AUDIT",
    "MARK",
    "CONNMARK",
    "CT",
    "TCPMSS",
    "CHECKSUM",
    "CLASSIFY",
    "DSCP",
    "TOS",
    "TTL",
    "HL",
    "ECN",
    "SECMARK",
    "CONNSECMARK",
    "TCPOPTSTRIP",
    "IDLETIMER",
    "LED",
    "SET",
    "TEE",
    "RATEEST",
    "HMARK",
    "MASQUERADE",
    "SNAT",
];

/// Targets with a verdict or a translation portstat does not model.
const UNMODELED_TARGETS: [&str; 10] = [
    "QUEUE",
    "NFQUEUE",
    "NOTRACK",
    "TPROXY",
    "SYNPROXY",
    "NETMAP",
    "DNPT",
    "SNPT",
    "CLUSTERIP",
    "MIRROR",
];

struct Layout {
    parts: Vec<Part>,
    target: Option<TargetSpec>,
}

/// Sorts a rule's arguments into base options, matches and the target, the way iptables'
/// option parser assigns them.
fn layout(tokens: &[Token<'_>]) -> Layout {
    let mut parts: Vec<Part> = Vec::new();
    let mut target: Option<TargetSpec> = None;
    let mut current_module: Option<usize> = None;
    let mut implicit: Option<&'static str> = None;
    let mut implicit_index: Option<usize> = None;
    let mut negated = false;
    let mut at = 0;
    while at < tokens.len() {
        let token = &tokens[at];
        at += 1;
        if token.is_negation() {
            if negated {
                parts.push(Part::Problem("`!` twice in a row".to_string()));
            }
            negated = true;
            continue;
        }
        if !token.quoted
            && token.value == "[unsupported"
            && tokens.get(at).is_some_and(|next| next.raw == "revision]")
        {
            // What iptables prints for a match or target revision it has no code for.
            at += 1;
            parts.push(Part::Problem(
                "iptables could not print a match or target of this rule \
                 (`[unsupported revision]`)"
                    .to_string(),
            ));
            negated = false;
            continue;
        }
        if !token.is_option() {
            parts.push(Part::Problem(format!(
                "`{}` is no option nor the argument of one",
                snippet(token.raw)
            )));
            negated = false;
            continue;
        }
        let name = token.value.as_str();
        let mut raw = if negated {
            format!("! {}", token.raw)
        } else {
            token.raw.to_string()
        };
        let was_negated = std::mem::take(&mut negated);
        let base = base_option(name);
        let fixed_arity = match base {
            Some(
                BaseOption::Value(_) | BaseOption::Match | BaseOption::Jump | BaseOption::Goto,
            ) => Some(1),
            Some(BaseOption::Counters) => Some(2),
            Some(BaseOption::Fragment) => Some(0),
            None => None,
        };
        let mut args = Vec::new();
        while at < tokens.len() && fixed_arity.is_none_or(|arity| args.len() < arity) {
            let next = &tokens[at];
            if next.is_option() || next.is_negation() {
                break;
            }
            raw.push(' ');
            raw.push_str(next.raw);
            args.push(next.value.clone());
            at += 1;
        }
        if let Some(arity) = fixed_arity
            && args.len() < arity
        {
            parts.push(Part::Problem(format!("`{raw}` lacks its argument")));
            continue;
        }
        let opt = Opt {
            negated: was_negated,
            name: name.to_string(),
            args,
            raw,
        };
        match base {
            Some(BaseOption::Match) => {
                if opt.negated {
                    parts.push(Part::Problem(format!(
                        "`{}`: a match can't be negated",
                        opt.raw
                    )));
                }
                parts.push(Part::Module(Module {
                    name: opt.args[0].clone(),
                    implicit: false,
                    opts: Vec::new(),
                }));
                current_module = Some(parts.len() - 1);
            }
            Some(BaseOption::Jump | BaseOption::Goto) => {
                if target.is_some() {
                    parts.push(Part::Problem(format!("`{}`: a second target", opt.raw)));
                } else {
                    if opt.negated {
                        parts.push(Part::Problem(format!(
                            "`{}`: a target can't be negated",
                            opt.raw
                        )));
                    }
                    target = Some(TargetSpec {
                        name: opt.args[0].clone(),
                        goto: matches!(base, Some(BaseOption::Goto)),
                        opts: Vec::new(),
                    });
                    current_module = None;
                }
            }
            Some(BaseOption::Counters) => {}
            Some(BaseOption::Value(short)) => {
                if short == "-p" && !opt.negated {
                    implicit = implicit_module(&opt.args[0]);
                    implicit_index = None;
                }
                parts.push(Part::Base(opt));
            }
            Some(BaseOption::Fragment) => parts.push(Part::Base(opt)),
            None => {
                let implicit_takes = implicit.is_some_and(|module| module_takes(module, name));
                let module_name = |index: usize| match &parts[index] {
                    Part::Module(module) => Some(module.name.as_str()),
                    _ => None,
                };
                let current_takes = current_module
                    .and_then(module_name)
                    .is_some_and(|module| module_takes(module, name));
                if let Some(spec) = target.as_mut()
                    && (target_takes(&spec.name, name) || !implicit_takes)
                {
                    spec.opts.push(opt);
                    continue;
                }
                let owner = if current_takes || (current_module.is_some() && !implicit_takes) {
                    current_module
                } else if let Some(module) = implicit.filter(|_| implicit_takes) {
                    let index = match implicit_index {
                        Some(index) => index,
                        None => {
                            parts.push(Part::Module(Module {
                                name: module.to_string(),
                                implicit: true,
                                opts: Vec::new(),
                            }));
                            parts.len() - 1
                        }
                    };
                    implicit_index = Some(index);
                    Some(index)
                } else {
                    None
                };
                match owner.and_then(|index| parts.get_mut(index)) {
                    Some(Part::Module(module)) => module.opts.push(opt),
                    _ => parts.push(Part::Base(opt)),
                }
            }
        }
    }
    if negated {
        parts.push(Part::Problem(
            "a `!` at the end, negating nothing".to_string(),
        ));
    }
    Layout { parts, target }
}

fn unknown(text: String) -> Match {
    Match {
        negated: false,
        test: Test::Unknown(text),
    }
}

fn parse_rule(text: &str, rest: &str, family: TableFamily) -> PendingRule {
    let mut rule = PendingRule {
        text: text.to_string(),
        comment: None,
        matches: Vec::new(),
        marks: Vec::new(),
        target: PendingTarget::Action(Action::Continue),
    };
    let tokens = match tokenize(rest) {
        Ok(tokens) => tokens,
        Err(problem) => {
            rule.matches.push(unknown(problem.clone()));
            rule.target = PendingTarget::Action(Action::Unknown(problem));
            return rule;
        }
    };
    let Layout { parts, target } = layout(&tokens);
    let mut comments = Vec::new();
    for part in parts {
        match part {
            Part::Base(opt) => rule.matches.extend(base_match(&opt, family)),
            Part::Module(module) => {
                module_matches(&module, family, &mut rule.matches, &mut comments);
            }
            Part::Problem(problem) => rule.matches.push(unknown(problem)),
        }
    }
    if !comments.is_empty() {
        rule.comment = Some(comments.join("; "));
    }
    rule.target = match target {
        None => PendingTarget::Action(Action::Continue),
        Some(spec) => match mark_target(&spec) {
            Some(set) => {
                rule.marks.push(set);
                PendingTarget::Action(Action::Continue)
            }
            None => target_of(spec, family),
        },
    };
    rule
}

/// What `-j MARK` and `-j CONNMARK` set, as iptables-save prints them (`--set-xmark V/M`,
/// `--save-mark --nfmask N --ctmask C`, `--restore-mark ...`) and as they may be written
/// (`--set-mark`, `--or-mark`, `--and-mark`, `--xor-mark`, `--mask`). `None` for other
/// targets; options it can't read (a shift) make the mark's value unknown.
fn mark_target(spec: &TargetSpec) -> Option<MarkSet> {
    let connmark = match spec.name.as_str() {
        "MARK" => false,
        "CONNMARK" => true,
        _ => return None,
    };
    let arg = |name: &str| -> Result<Option<u32>, String> {
        match spec.opts.iter().find(|opt| opt.name == name) {
            None => Ok(None),
            Some(opt) => opt
                .single_arg()
                .and_then(mark_number)
                .map(Some)
                .ok_or_else(|| format!("`{}` is no mark", opt.raw)),
        }
    };
    let valued = |opt: &Opt| -> Result<(u32, Option<u32>), String> {
        opt.single_arg()
            .and_then(mark_and_mask)
            .ok_or_else(|| format!("`{}` is no mark", opt.raw))
    };
    let mode = spec.opts.iter().find(|opt| {
        matches!(
            opt.name.as_str(),
            "--set-xmark"
                | "--set-mark"
                | "--or-mark"
                | "--and-mark"
                | "--xor-mark"
                | "--save-mark"
                | "--restore-mark"
        )
    });
    let target = if connmark {
        Mark::Connection
    } else {
        Mark::Packet
    };
    let restore = mode.is_some_and(|opt| opt.name == "--restore-mark");
    let mark = if restore { Mark::Packet } else { target };
    let computed = (|| -> Result<MarkValue, String> {
        let known = [
            "--set-xmark",
            "--set-mark",
            "--or-mark",
            "--and-mark",
            "--xor-mark",
            "--save-mark",
            "--restore-mark",
            "--nfmask",
            "--ctmask",
            "--mask",
        ];
        if let Some(other) = spec.opts.iter().find(|o| !known.contains(&o.name.as_str())) {
            return Err(format!("`{}` is not modelled", other.raw));
        }
        let Some(mode) = mode else {
            return Err("no mark to set".to_string());
        };
        let own = MarkValue::of(target);
        Ok(match mode.name.as_str() {
            // (mark & !M) ^ V
            "--set-xmark" => {
                let (value, mask) = valued(mode)?;
                own.and(!mask.unwrap_or(u32::MAX)).xor(value)
            }
            // (mark & !(M | V)) ^ V: iptables widens the mask by the value.
            "--set-mark" => {
                let (value, mask) = valued(mode)?;
                own.and(!(mask.unwrap_or(u32::MAX) | value)).xor(value)
            }
            "--or-mark" => own.or(valued(mode)?.0),
            "--and-mark" => own.and(valued(mode)?.0),
            "--xor-mark" => own.xor(valued(mode)?.0),
            save_or_restore => {
                let mask = arg("--mask")?.unwrap_or(u32::MAX);
                let nfmask = arg("--nfmask")?.unwrap_or(mask);
                let ctmask = arg("--ctmask")?.unwrap_or(mask);
                if save_or_restore == "--save-mark" {
                    // ct = (ct & !ctmask) ^ (mark & nfmask)
                    MarkValue {
                        packet_mask: nfmask,
                        connection_mask: !ctmask,
                        xor: 0,
                    }
                } else {
                    // mark = (mark & !nfmask) ^ (ct & ctmask)
                    MarkValue {
                        packet_mask: !nfmask,
                        connection_mask: ctmask,
                        xor: 0,
                    }
                }
            }
        })
    })();
    Some(MarkSet {
        mark,
        value: computed.map_err(|why| format!("{}: {why}", spec.text())),
    })
}

/// A mark as iptables reads one (`strtoul` base 0: hex, octal, decimal).
fn mark_number(text: &str) -> Option<u32> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    if text.len() > 1
        && let Some(octal) = text.strip_prefix('0')
    {
        return u32::from_str_radix(octal, 8).ok();
    }
    text.parse().ok()
}

/// `VALUE[/MASK]`.
fn mark_and_mask(text: &str) -> Option<(u32, Option<u32>)> {
    match text.split_once('/') {
        Some((value, mask)) => Some((mark_number(value)?, Some(mark_number(mask)?))),
        None => Some((mark_number(text)?, None)),
    }
}

fn tested(negated: bool, result: Result<Test, String>, raw: &str) -> Match {
    match result {
        Ok(test) => Match { negated, test },
        Err(why) => Match {
            negated,
            test: Test::Unknown(format!("{raw}: {why}")),
        },
    }
}

/// The test of a base option; `None` for `-p all`, which tests nothing.
fn base_match(opt: &Opt, family: TableFamily) -> Option<Match> {
    let Some(value) = opt.single_arg() else {
        return Some(Match {
            negated: opt.negated,
            test: Test::Unknown(opt.raw.clone()),
        });
    };
    let result = match base_option(&opt.name) {
        Some(BaseOption::Value("-p")) => match protocol_number(value) {
            Some(0) if opt.negated => {
                // No protocol at all: an empty list holds for no packet.
                return Some(Match {
                    negated: false,
                    test: Test::L4Proto(Vec::new()),
                });
            }
            Some(0) => return None,
            Some(number) => Ok(Test::L4Proto(vec![number])),
            None => Err(format!(
                "`{}` is a protocol portstat does not know",
                snippet(value)
            )),
        },
        Some(BaseOption::Value("-s")) => address_list(value, family).map(Test::SourceAddress),
        Some(BaseOption::Value("-d")) => address_list(value, family).map(Test::DestinationAddress),
        Some(BaseOption::Value("-i")) => interface(value).map(|name| Test::InInterface(vec![name])),
        Some(BaseOption::Value("-o")) => {
            interface(value).map(|name| Test::OutInterface(vec![name]))
        }
        _ => Err("not an option portstat reads".to_string()),
    };
    Some(tested(opt.negated, result, &opt.raw))
}

fn module_matches(
    module: &Module,
    family: TableFamily,
    matches: &mut Vec<Match>,
    comments: &mut Vec<String>,
) {
    let prefixed = |opt: &Opt| {
        if module.implicit {
            opt.raw.clone()
        } else {
            format!("-m {} {}", module.name, opt.raw)
        }
    };
    let whole = || unknown(module.text());
    match module.name.as_str() {
        "tcp" | "udp" | "udplite" | "sctp" | "dccp" => {
            for opt in &module.opts {
                let test = match opt.name.as_str() {
                    "--dport" | "--destination-port" => {
                        port_arg(opt, port_span).map(|span| Test::DestinationPort(vec![span]))
                    }
                    "--sport" | "--source-port" => {
                        port_arg(opt, port_span).map(|span| Test::SourcePort(vec![span]))
                    }
                    _ => Err("not a test portstat models".to_string()),
                };
                matches.push(tested(opt.negated, test, &prefixed(opt)));
            }
        }
        "multiport" => {
            for opt in &module.opts {
                let test = match opt.name.as_str() {
                    "--dports" | "--destination-ports" => {
                        port_arg(opt, port_list).map(Test::DestinationPort)
                    }
                    "--sports" | "--source-ports" => port_arg(opt, port_list).map(Test::SourcePort),
                    // Either port may match: an `or` the model has no test for.
                    "--ports" => Err("the source or the destination port".to_string()),
                    _ => Err("not a test portstat models".to_string()),
                };
                matches.push(tested(opt.negated, test, &prefixed(opt)));
            }
        }
        "conntrack" | "state" => {
            for opt in &module.opts {
                let test = match opt.name.as_str() {
                    "--ctstate" | "--state" => opt
                        .single_arg()
                        .ok_or_else(|| "one list of states expected".to_string())
                        .and_then(states)
                        .map(Test::ConnectionState),
                    _ => Err("not a test portstat models".to_string()),
                };
                matches.push(tested(opt.negated, test, &prefixed(opt)));
            }
        }
        "addrtype" => {
            // --limit-iface-in/out narrow the types to one interface's addresses.
            let plain = module
                .opts
                .iter()
                .all(|opt| matches!(opt.name.as_str(), "--src-type" | "--dst-type"));
            if !plain {
                matches.push(whole());
                return;
            }
            for opt in &module.opts {
                let test = match opt.name.as_str() {
                    "--dst-type" => opt
                        .single_arg()
                        .ok_or_else(|| "one list of types expected".to_string())
                        .and_then(address_types)
                        .map(Test::DestinationType),
                    _ => Err("not a test portstat models".to_string()),
                };
                matches.push(tested(opt.negated, test, &prefixed(opt)));
            }
        }
        "comment" => {
            for opt in &module.opts {
                match (opt.name.as_str(), opt.single_arg()) {
                    ("--comment", Some(comment)) => comments.push(comment.to_string()),
                    _ => matches.push(unknown(prefixed(opt))),
                }
            }
        }
        "iprange" => {
            for opt in &module.opts {
                let range = opt
                    .single_arg()
                    .ok_or_else(|| "one range expected".to_string())
                    .and_then(|value| address_range(value, family));
                let test = match opt.name.as_str() {
                    "--src-range" => range.map(|range| Test::SourceAddress(vec![range])),
                    "--dst-range" => range.map(|range| Test::DestinationAddress(vec![range])),
                    _ => Err("not a test portstat models".to_string()),
                };
                matches.push(tested(opt.negated, test, &prefixed(opt)));
            }
        }
        "mark" | "connmark" => {
            let mark = if module.name == "mark" {
                Mark::Packet
            } else {
                Mark::Connection
            };
            for opt in &module.opts {
                let test = match opt.name.as_str() {
                    // (mark & MASK) == VALUE, the mask all ones when not given.
                    "--mark" => opt
                        .single_arg()
                        .and_then(mark_and_mask)
                        .map(|(value, mask)| Test::Mark {
                            mark,
                            mask: mask.unwrap_or(u32::MAX),
                            values: vec![(value, value)],
                        })
                        .ok_or_else(|| "one VALUE[/MASK] expected".to_string()),
                    _ => Err("not a test portstat models".to_string()),
                };
                matches.push(tested(opt.negated, test, &prefixed(opt)));
            }
        }
        // ipset, rate limits, recent lists, ICMP types, owners, strings ...
        _ => matches.push(whole()),
    }
}

fn port_arg<T>(opt: &Opt, parse: fn(&str) -> Result<T, String>) -> Result<T, String> {
    opt.single_arg()
        .ok_or_else(|| "one port argument expected".to_string())
        .and_then(parse)
}

fn target_of(spec: TargetSpec, family: TableFamily) -> PendingTarget {
    let unknown_target = |why: &str| {
        let text = spec.text();
        PendingTarget::Action(Action::Unknown(if why.is_empty() {
            text
        } else {
            format!("{text}: {why}")
        }))
    };
    let known = target_options(&spec.name);
    if let Some(extra) = known.and_then(|options| {
        spec.opts
            .iter()
            .find(|opt| !options.contains(&opt.name.as_str()))
    }) {
        return unknown_target(&format!(
            "`{}` is not an option of {}",
            extra.raw, spec.name
        ));
    }
    if spec.goto {
        if !spec.opts.is_empty() {
            return unknown_target("a goto takes no options");
        }
        return PendingTarget::Chain {
            name: spec.name,
            goto: true,
        };
    }
    let action = match spec.name.as_str() {
        "ACCEPT" => Action::Accept,
        "DROP" => Action::Drop,
        "RETURN" => Action::Return,
        "REJECT" => Action::Reject,
        "DNAT" => {
            let destinations: Vec<&Opt> = spec
                .opts
                .iter()
                .filter(|opt| opt.name == "--to-destination")
                .collect();
            let [destination] = destinations.as_slice() else {
                return unknown_target("one --to-destination expected");
            };
            let Some(value) = destination.single_arg() else {
                return unknown_target("one --to-destination expected");
            };
            match nat_destination(value, family) {
                Ok((address, ports)) => Action::Dnat {
                    address,
                    ports,
                    local: false,
                },
                Err(why) => return unknown_target(&why),
            }
        }
        "REDIRECT" => {
            let ports = match spec.opts.iter().find(|opt| opt.name == "--to-ports") {
                None => None,
                Some(opt) => match opt.single_arg().map(nat_ports) {
                    Some(Ok(ports)) => Some(ports),
                    Some(Err(why)) => return unknown_target(&why),
                    None => return unknown_target("one --to-ports expected"),
                },
            };
            Action::Dnat {
                address: None,
                ports,
                local: true,
            }
        }
        "CT" if spec.opts.iter().any(|opt| opt.name == "--notrack") => {
            return unknown_target("an untracked packet skips NAT and has no conntrack state");
        }
        name if CONTINUE_TARGETS.contains(&name) => Action::Continue,
        name if UNMODELED_TARGETS.contains(&name) => return unknown_target(""),
        _ if !spec.opts.is_empty() => return unknown_target(""),
        _ => {
            return PendingTarget::Chain {
                name: spec.name,
                goto: false,
            };
        }
    };
    PendingTarget::Action(action)
}

/// iptables' own protocol names (`xtables_chain_protos`, what iptables-save prints), a few
/// more of `/etc/protocols`, and numbers.
fn protocol_number(name: &str) -> Option<u8> {
    if all_digits(name) {
        return name.parse().ok();
    }
    Some(match name.to_ascii_lowercase().as_str() {
        "all" => 0,
        "icmp" => 1,
        "igmp" => 2,
        "ipencap" => 4,
        "tcp" => 6,
        "udp" => 17,
        "ipv6" => 41,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "ipv6-icmp" | "icmpv6" => 58,
        "ospf" => 89,
        "pim" => 103,
        "ipcomp" => 108,
        "vrrp" => 112,
        "l2tp" => 115,
        "sctp" => 132,
        "mobility-header" | "ipv6-mh" | "mh" => 135,
        "udplite" => 136,
        "dccp" => 33,
        _ => return None,
    })
}

fn address_list(value: &str, family: TableFamily) -> Result<Vec<AddressRange>, String> {
    value
        .split(',')
        .map(|part| address_prefix(part, family))
        .collect()
}

fn address_of_family(text: &str, family: TableFamily) -> Result<IpAddr, String> {
    let address: IpAddr = text
        .parse()
        .map_err(|_| format!("`{}` is not an address", snippet(text)))?;
    match (family, address) {
        (TableFamily::Ip, IpAddr::V4(_)) | (TableFamily::Ip6, IpAddr::V6(_)) => Ok(address),
        _ => Err(format!(
            "`{address}` is not an address of an {} table",
            family.as_str()
        )),
    }
}

/// `address`, `address/length` or `address/mask` (iptables-save prints a mask that is no
/// prefix, `/255.0.255.0`, as an address).
fn address_prefix(text: &str, family: TableFamily) -> Result<AddressRange, String> {
    let (address, mask) = match text.split_once('/') {
        Some((address, mask)) => (address, Some(mask)),
        None => (text, None),
    };
    let address = address_of_family(address, family)?;
    let bits: u8 = if address.is_ipv4() { 32 } else { 128 };
    let length = match mask {
        None => bits,
        Some(length) if all_digits(length) => length
            .parse()
            .map_err(|_| format!("/{} is longer than the address", snippet(length)))?,
        Some(mask) => match address_of_family(mask, family)? {
            IpAddr::V4(mask) => contiguous(u128::from(u32::from(mask)) << 96)?,
            IpAddr::V6(mask) => contiguous(u128::from(mask))?,
        },
    };
    AddressRange::prefix(address, length)
        .ok_or_else(|| format!("/{length} is longer than the address"))
}

/// The prefix length of a mask whose ones all come first (a v4 mask shifted to the top).
fn contiguous(mask: u128) -> Result<u8, String> {
    let ones = mask.leading_ones();
    if ones + mask.trailing_zeros() >= 128 || ones == 128 {
        // At most 128 ones, so the length fits.
        Ok(u8::try_from(ones).unwrap_or(u8::MAX))
    } else {
        Err("a mask that is not a prefix: its addresses are no range".to_string())
    }
}

/// `first-last`, iprange's form.
fn address_range(value: &str, family: TableFamily) -> Result<AddressRange, String> {
    let (first, last) = match value.split_once('-') {
        Some((first, last)) => (first, last),
        None => (value, value),
    };
    let first = address_of_family(first, family)?;
    let last = address_of_family(last, family)?;
    if first > last {
        return Err("the range ends before it starts".to_string());
    }
    Ok(AddressRange { first, last })
}

fn port_number(text: &str) -> Result<u16, String> {
    if !all_digits(text) {
        return Err(format!("`{}` is not a port number", snippet(text)));
    }
    text.parse()
        .map_err(|_| format!("{} is not a port number", snippet(text)))
}

fn span(first: u16, last: u16) -> Result<PortSpan, String> {
    if first > last {
        return Err(format!("the range {first}:{last} ends before it starts"));
    }
    Ok(PortSpan { first, last })
}

/// tcp's and udp's `N`, `N:M`, `:M` and `N:`.
fn port_span(text: &str) -> Result<PortSpan, String> {
    match text.split_once(':') {
        None => port_number(text).map(PortSpan::single),
        Some((first, last)) => {
            let first = if first.is_empty() {
                0
            } else {
                port_number(first)?
            };
            let last = if last.is_empty() {
                u16::MAX
            } else {
                port_number(last)?
            };
            span(first, last)
        }
    }
}

/// multiport's `a,b:c`.
fn port_list(text: &str) -> Result<Vec<PortSpan>, String> {
    text.split(',').map(port_span).collect()
}

/// A NAT target's `N` or `N-M`, with the `/BASE` of a shifted range (each port maps to its
/// own; the model keeps the range it lands in).
fn nat_ports(text: &str) -> Result<PortSpan, String> {
    let range = match text.split_once('/') {
        Some((range, base)) => {
            port_number(base)?;
            range
        }
        None => text,
    };
    match range.split_once('-') {
        None => port_number(range).map(PortSpan::single),
        Some((first, last)) => span(port_number(first)?, port_number(last)?),
    }
}

/// DNAT's `--to-destination`: `a.b.c.d[:port[-port]]`, `[v6][:port[-port]]`, a bare v6
/// address, or `:port` alone. A range of addresses is no single destination.
fn nat_destination(
    value: &str,
    family: TableFamily,
) -> Result<(Option<IpAddr>, Option<PortSpan>), String> {
    let (address, ports) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| "a `[` without its `]`".to_string())?;
        let ports = match after {
            "" => None,
            after => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("`{}` after the address", snippet(after)))?,
            ),
        };
        (inside, ports)
    } else if family == TableFamily::Ip6 && value.matches(':').count() > 1 {
        (value, None)
    } else {
        match value.split_once(':') {
            Some((address, ports)) => (address, Some(ports)),
            None => (value, None),
        }
    };
    if address.contains('-') {
        return Err("a range of addresses, not one destination".to_string());
    }
    let address = if address.is_empty() {
        None
    } else {
        Some(address_of_family(address, family)?)
    };
    let ports = ports.map(nat_ports).transpose()?;
    if address.is_none() && ports.is_none() {
        return Err("no address and no port".to_string());
    }
    Ok((address, ports))
}

fn states(list: &str) -> Result<Vec<ConnectionState>, String> {
    list.split(',')
        .map(|state| {
            let state = state.to_ascii_uppercase();
            Ok(match state.as_str() {
                "NEW" => ConnectionState::New,
                "ESTABLISHED" => ConnectionState::Established,
                "RELATED" => ConnectionState::Related,
                "INVALID" => ConnectionState::Invalid,
                "UNTRACKED" => ConnectionState::Untracked,
                // conntrack's virtual states: translated connections.
                "DNAT" => ConnectionState::Dnat,
                "SNAT" => ConnectionState::Snat,
                _ => {
                    return Err(format!(
                        "`{}` is a state portstat does not model",
                        snippet(&state)
                    ));
                }
            })
        })
        .collect()
}

fn address_types(list: &str) -> Result<Vec<AddressType>, String> {
    list.split(',')
        .map(|kind| {
            let kind = kind.to_ascii_uppercase();
            Ok(match kind.as_str() {
                "UNSPEC" => AddressType::Unspec,
                "UNICAST" => AddressType::Unicast,
                "LOCAL" => AddressType::Local,
                "BROADCAST" => AddressType::Broadcast,
                "ANYCAST" => AddressType::Anycast,
                "MULTICAST" => AddressType::Multicast,
                "BLACKHOLE" => AddressType::Blackhole,
                "UNREACHABLE" => AddressType::Unreachable,
                "PROHIBIT" => AddressType::Prohibit,
                _ => {
                    return Err(format!(
                        "`{}` is an address type portstat does not model",
                        snippet(&kind)
                    ));
                }
            })
        })
        .collect()
}

/// iptables' `+` wildcard becomes the model's `*`; a literal `*` would read as one.
fn interface(name: &str) -> Result<String, String> {
    if name.contains('*') {
        return Err("a `*` in an interface name (iptables' wildcard is `+`)".to_string());
    }
    Ok(match name.strip_suffix('+') {
        Some(prefix) => format!("{prefix}*"),
        None => name.to_string(),
    })
}

/// The start of `text`, for a message.
fn snippet(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(SNIPPET_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../../fixtures/firewall/iptables/", $name))
        };
    }

    fn read(text: &str, family: TableFamily, origin: Origin) -> Parsed {
        match parse_with_gaps(text, family, origin) {
            Ok(parsed) => parsed,
            Err(error) => panic!("{error:#}"),
        }
    }

    fn nft4(text: &str) -> Parsed {
        read(text, TableFamily::Ip, Origin::IptablesNft)
    }

    fn nft6(text: &str) -> Parsed {
        read(text, TableFamily::Ip6, Origin::IptablesNft)
    }

    fn chain<'a>(chains: &'a [Chain], table: &str, name: &str) -> &'a Chain {
        let mut found = chains
            .iter()
            .filter(|chain| chain.table == table && chain.name == name);
        let chain = found
            .next()
            .unwrap_or_else(|| panic!("no chain {name} in table {table}"));
        assert!(found.next().is_none(), "two chains {name} in table {table}");
        chain
    }

    fn has_chain(chains: &[Chain], table: &str, name: &str) -> bool {
        chains
            .iter()
            .any(|chain| chain.table == table && chain.name == name)
    }

    /// The one rule of `chain` whose text contains `fragment`.
    fn rule<'a>(chain: &'a Chain, fragment: &str) -> &'a Rule {
        let mut found = chain
            .rules
            .iter()
            .filter(|rule| rule.text.contains(fragment));
        let rule = found
            .next()
            .unwrap_or_else(|| panic!("no rule with `{fragment}` in chain {}", chain.name));
        assert!(
            found.next().is_none(),
            "two rules with `{fragment}` in chain {}",
            chain.name
        );
        rule
    }

    fn base(chain: &Chain) -> &BaseChain {
        chain
            .base
            .as_ref()
            .unwrap_or_else(|| panic!("chain {} is no base chain", chain.name))
    }

    fn is(test: Test) -> Match {
        Match::is(test)
    }

    fn not(test: Test) -> Match {
        Match::not(test)
    }

    fn proto(number: u8) -> Match {
        is(Test::L4Proto(vec![number]))
    }

    fn dport(port: u16) -> Match {
        is(Test::DestinationPort(vec![PortSpan::single(port)]))
    }

    fn interface_in(name: &str) -> Test {
        Test::InInterface(vec![name.to_string()])
    }

    fn net(address: &str, length: u8) -> AddressRange {
        AddressRange::prefix(address.parse().expect("an address"), length).expect("a prefix")
    }

    fn span(first: u16, last: u16) -> PortSpan {
        PortSpan { first, last }
    }

    fn dnat(address: &str, port: u16) -> Action {
        Action::Dnat {
            address: Some(address.parse().expect("an address")),
            ports: Some(PortSpan::single(port)),
            local: false,
        }
    }

    fn unknown_text(test: &Test) -> Option<&str> {
        match test {
            Test::Unknown(text) => Some(text),
            _ => None,
        }
    }

    /// Whether the rule's matches or action are unknown with a text that contains `fragment`.
    fn unknown_says(rule: &Rule, fragment: &str) -> bool {
        let in_matches = rule
            .matches
            .iter()
            .filter_map(|m| unknown_text(&m.test))
            .any(|text| text.contains(fragment));
        let in_action = matches!(&rule.action, Action::Unknown(text) if text.contains(fragment));
        in_matches || in_action
    }

    /// The rules the document's lines gave, without those the reader added at a chain's end.
    fn written_rules(chains: &[Chain]) -> usize {
        chains
            .iter()
            .flat_map(|chain| &chain.rules)
            .filter(|rule| rule.text.starts_with("-A"))
            .count()
    }

    #[test]
    fn builtin_chains_have_netfilters_hooks_priorities_and_policies() {
        let parsed = nft4(fixture!("basic.v4"));
        assert_eq!(parsed.gaps, Vec::<String>::new());
        use ChainKind::{Filter, Nat, Route};
        use Hook::*;
        use Policy::{Accept, Drop};
        let expected = [
            ("raw", "PREROUTING", Prerouting, -300, Filter, Accept),
            ("raw", "OUTPUT", Output, -300, Filter, Accept),
            ("mangle", "PREROUTING", Prerouting, -150, Filter, Accept),
            ("mangle", "INPUT", Input, -150, Filter, Accept),
            ("mangle", "FORWARD", Forward, -150, Filter, Accept),
            ("mangle", "OUTPUT", Output, -150, Route, Accept),
            ("mangle", "POSTROUTING", Postrouting, -150, Filter, Accept),
            ("nat", "PREROUTING", Prerouting, -100, Nat, Accept),
            ("nat", "INPUT", Input, 100, Nat, Accept),
            ("nat", "OUTPUT", Output, -100, Nat, Accept),
            ("nat", "POSTROUTING", Postrouting, 100, Nat, Accept),
            ("filter", "INPUT", Input, 0, Filter, Drop),
            ("filter", "FORWARD", Forward, 0, Filter, Drop),
            ("filter", "OUTPUT", Output, 0, Filter, Accept),
            ("security", "INPUT", Input, 50, Filter, Accept),
            ("security", "FORWARD", Forward, 50, Filter, Accept),
            ("security", "OUTPUT", Output, 50, Filter, Accept),
        ];
        for (table, name, hook, priority, kind, policy) in expected {
            let found = base(chain(&parsed.chains, table, name));
            assert_eq!(
                (
                    found.hook,
                    found.priority,
                    found.kind,
                    found.policy,
                    &found.device
                ),
                (hook, priority, kind, policy, &None),
                "{table} {name}"
            );
        }
        for name in ["LOGDROP", "SERVICES"] {
            assert_eq!(chain(&parsed.chains, "filter", name).base, None, "{name}");
        }
        let declared = fixture!("basic.v4")
            .lines()
            .filter(|line| line.starts_with(':'));
        assert_eq!(parsed.chains.len(), declared.count());
        assert!(parsed.chains.iter().all(|chain| {
            chain.origin == Origin::IptablesNft && chain.family == TableFamily::Ip
        }));
    }

    #[test]
    fn basic_input_rules_read_into_the_model() {
        let parsed = nft4(fixture!("basic.v4"));
        let input = chain(&parsed.chains, "filter", "INPUT");
        let handles: Vec<u64> = input.rules.iter().map(|rule| rule.handle).collect();
        assert_eq!(handles, (1..=18).collect::<Vec<u64>>());

        let established = &input.rules[0];
        assert_eq!(
            established.text,
            "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        );
        assert_eq!(
            established.matches,
            vec![is(Test::ConnectionState(vec![
                ConnectionState::Related,
                ConnectionState::Established
            ]))]
        );
        assert_eq!(established.action, Action::Accept);

        let lo = rule(input, "-i lo");
        assert_eq!(
            (lo.matches.clone(), &lo.action),
            (vec![is(interface_in("lo"))], &Action::Accept)
        );

        let ssh = rule(input, "--dport 22 ");
        assert_eq!(ssh.matches, vec![proto(6), dport(22)]);
        assert_eq!(ssh.action, Action::Accept);

        let redis = rule(input, "6379");
        assert_eq!(
            redis.matches,
            vec![
                is(Test::SourceAddress(vec![net("10.0.0.0", 8)])),
                proto(6),
                dport(6379)
            ]
        );

        let web = rule(input, "multiport");
        assert_eq!(
            web.matches,
            vec![
                proto(6),
                is(Test::DestinationPort(vec![
                    PortSpan::single(80),
                    PortSpan::single(443),
                    span(8000, 8099)
                ]))
            ]
        );
        assert_eq!(
            web.comment.as_deref(),
            Some("web: \"front\" door, it's public")
        );

        let ipset = rule(input, "--match-set");
        assert_eq!(
            ipset.matches,
            vec![is(Test::Unknown(
                "-m set --match-set blocklist src".to_string()
            ))]
        );
        assert_eq!(ipset.action, Action::Drop);

        let dotted = rule(input, "255.255.0.255");
        assert!(unknown_says(
            dotted,
            "-s 192.168.0.0/255.255.0.255: a mask that is not a prefix"
        ));
        assert_eq!(dotted.matches[1..], [proto(6), dport(9100)]);

        let postgres = rule(input, "5432");
        assert_eq!(
            postgres.matches[0],
            not(Test::SourceAddress(vec![net("172.16.0.0", 12)]))
        );
        assert_eq!(postgres.action, Action::Reject);

        let ping = rule(input, "icmp");
        assert_eq!(ping.matches[0], is(interface_in("eth*")));
        assert_eq!(ping.matches[1], proto(1));
        assert!(unknown_says(ping, "-m icmp --icmp-type 8"));
        assert!(unknown_says(ping, "-m limit --limit 5/sec"));

        let recent = rule(input, "-m recent");
        assert!(
            recent
                .matches
                .contains(&is(Test::ConnectionState(vec![ConnectionState::New])))
        );
        assert!(unknown_says(recent, "-m recent --set --name ssh"));
        assert_eq!(
            recent.action,
            Action::Continue,
            "a rule without -j decides nothing"
        );

        assert_eq!(
            rule(input, "--mark").matches,
            [is(Test::Mark {
                mark: Mark::Packet,
                mask: u32::MAX,
                values: vec![(1, 1)],
            })]
        );
        assert_eq!(
            rule(input, "BROADCAST").matches,
            vec![is(Test::DestinationType(vec![AddressType::Broadcast]))]
        );
        let limited = rule(input, "--limit-iface-in");
        assert!(unknown_says(
            limited,
            "-m addrtype --dst-type LOCAL --limit-iface-in"
        ));
        assert!(
            limited
                .matches
                .contains(&is(Test::SourcePort(vec![PortSpan::single(67)])))
        );

        let services = rule(input, "-j SERVICES");
        assert_eq!(services.matches, vec![not(interface_in("eth0")), proto(17)]);
        assert_eq!(services.action, Action::Jump("SERVICES".to_string()));

        let not_tcp = rule(input, "not tcp");
        assert_eq!(not_tcp.matches, vec![not(Test::L4Proto(vec![6]))]);
        assert_eq!(not_tcp.comment.as_deref(), Some("not tcp"));
        assert_eq!(rule(input, "-p sctp").matches, vec![proto(132)]);
        assert_eq!(
            rule(input, "-g LOGDROP").action,
            Action::Goto("LOGDROP".to_string())
        );
    }

    #[test]
    fn basic_user_chains_and_other_tables() {
        let parsed = nft4(fixture!("basic.v4"));
        let logdrop = chain(&parsed.chains, "filter", "LOGDROP");
        let actions: Vec<&Action> = logdrop.rules.iter().map(|rule| &rule.action).collect();
        assert_eq!(
            actions,
            [&Action::Continue, &Action::Continue, &Action::Drop]
        );

        let services = chain(&parsed.chains, "filter", "SERVICES");
        assert_eq!(services.rules.len(), 5, "-s a,b was saved as two rules");
        assert_eq!(services.rules[4].action, Action::Return);
        assert_eq!(
            rule(services, "--sports").matches,
            vec![
                proto(17),
                is(Test::SourcePort(vec![
                    PortSpan::single(5353),
                    PortSpan::single(1900)
                ]))
            ]
        );

        let prerouting = chain(&parsed.chains, "nat", "PREROUTING");
        assert_eq!(
            rule(prerouting, "REDIRECT").action,
            Action::Dnat {
                address: None,
                ports: Some(PortSpan::single(8080)),
                local: true
            }
        );
        let forwarded = rule(prerouting, "2222");
        assert_eq!(forwarded.action, dnat("10.0.0.5", 22));
        assert_eq!(
            forwarded.matches[0],
            is(Test::DestinationAddress(vec![net("203.0.113.10", 32)]))
        );
        let range = rule(prerouting, "7000:7010");
        assert_eq!(
            range.matches[1],
            is(Test::DestinationPort(vec![span(7000, 7010)]))
        );
        assert_eq!(
            range.action,
            Action::Dnat {
                address: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 6))),
                ports: Some(span(8000, 8010)),
                local: false
            }
        );
        assert_eq!(
            rule(chain(&parsed.chains, "nat", "POSTROUTING"), "SNAT").action,
            Action::Continue
        );

        let raw = chain(&parsed.chains, "raw", "PREROUTING");
        assert!(unknown_says(rule(raw, "--notrack"), "-j CT --notrack"));
        assert_eq!(rule(raw, "--helper").action, Action::Continue);

        let mangle_forward = chain(&parsed.chains, "mangle", "FORWARD");
        let mss = rule(mangle_forward, "TCPMSS");
        assert_eq!(mss.action, Action::Continue);
        assert!(unknown_says(mss, "--tcp-flags SYN,RST SYN"));
        let mark = rule(chain(&parsed.chains, "mangle", "PREROUTING"), "MARK");
        assert_eq!(mark.action, Action::Continue);
        // --set-xmark 0x1/0xffffffff: (mark & 0) ^ 1.
        assert_eq!(
            mark.marks,
            [MarkSet {
                mark: Mark::Packet,
                value: Ok(MarkValue::constant(1)),
            }]
        );
        assert_eq!(
            rule(chain(&parsed.chains, "security", "INPUT"), "631").matches,
            vec![proto(6), dport(631)]
        );
    }

    #[test]
    fn the_legacy_variant_reads_the_same_as_the_nft_variant() {
        let sorted = |mut chains: Vec<Chain>| {
            chains.sort_by(|a, b| (&a.table, &a.name).cmp(&(&b.table, &b.name)));
            chains
        };
        let legacy = read(
            fixture!("basic.legacy.v4"),
            TableFamily::Ip,
            Origin::IptablesLegacy,
        );
        assert!(
            legacy
                .chains
                .iter()
                .all(|chain| chain.origin == Origin::IptablesLegacy)
        );
        let as_nft = legacy
            .chains
            .into_iter()
            .map(|chain| Chain {
                origin: Origin::IptablesNft,
                ..chain
            })
            .collect();
        assert_eq!(sorted(as_nft), sorted(nft4(fixture!("basic.v4")).chains));
    }

    #[test]
    fn basic_v6_rules() {
        let parsed = nft6(fixture!("basic.v6"));
        assert_eq!(parsed.gaps, Vec::<String>::new());
        assert!(
            parsed
                .chains
                .iter()
                .all(|chain| chain.family == TableFamily::Ip6)
        );
        let input = chain(&parsed.chains, "filter", "INPUT");
        assert_eq!(base(input).policy, Policy::Drop);
        assert_eq!(rule(input, "ipv6-icmp").matches, vec![proto(58)]);
        assert_eq!(
            rule(input, "6379").matches[0],
            is(Test::SourceAddress(vec![net("fd00::", 8)]))
        );
        assert_eq!(
            rule(input, "fe80::/10").matches[0],
            is(Test::SourceAddress(vec![net("fe80::", 10)]))
        );
        assert!(unknown_says(
            rule(input, "blocklist6"),
            "-m set --match-set blocklist6 src"
        ));
        assert_eq!(
            rule(input, "5432").matches[0],
            not(Test::SourceAddress(vec![net("2001:db8::", 32)]))
        );
        assert_eq!(rule(input, "icmp6-adm-prohibited").action, Action::Reject);
        let prerouting = chain(&parsed.chains, "nat", "PREROUTING");
        assert_eq!(rule(prerouting, "[fd00::5]:22").action, dnat("fd00::5", 22));
        assert_eq!(
            base(chain(&parsed.chains, "raw", "PREROUTING")).priority,
            -300
        );
    }

    /// The container's address and port as docker-proxy was started with them.
    fn proxied(cmdline: &str) -> (IpAddr, u16, u16) {
        let words: Vec<&str> = cmdline.split_whitespace().collect();
        let after = |flag: &str| {
            let at = words.iter().position(|word| *word == flag).expect(flag);
            words[at + 1]
        };
        (
            after("-container-ip").parse().expect("an address"),
            after("-container-port").parse().expect("a port"),
            after("-host-port").parse().expect("a port"),
        )
    }

    #[test]
    fn docker_publishes_8080_through_its_dnat_in_chain_docker() {
        let parsed = nft4(fixture!("docker.v4"));
        assert_eq!(parsed.gaps, Vec::<String>::new());
        let docker = chain(&parsed.chains, "nat", "DOCKER");
        assert_eq!(docker.base, None);
        let hairpin = &docker.rules[0];
        assert_eq!(hairpin.matches, vec![is(interface_in("docker0"))]);
        assert_eq!(hairpin.action, Action::Return);
        let published = rule(docker, "--dport 8080");
        assert_eq!(published.handle, 2);
        assert_eq!(
            published.matches,
            vec![not(interface_in("docker0")), proto(6), dport(8080)]
        );
        assert_eq!(published.action, dnat("172.17.0.2", 80));

        // What docker-proxy, which holds the host port, was told is the same container port.
        let (address, port, host_port) = proxied(fixture!("docker.proxy-cmdline"));
        assert_eq!(published.action, dnat(&address.to_string(), port));
        assert_eq!(published.matches[2], dport(host_port));
        assert!(fixture!("docker.ss").contains(&format!("0.0.0.0:{host_port} ")));

        let prerouting = chain(&parsed.chains, "nat", "PREROUTING");
        assert_eq!(
            prerouting.rules[0].matches,
            vec![is(Test::DestinationType(vec![AddressType::Local]))]
        );
        assert_eq!(
            prerouting.rules[0].action,
            Action::Jump("DOCKER".to_string())
        );
        let output = chain(&parsed.chains, "nat", "OUTPUT");
        assert_eq!(
            output.rules[0].matches[0],
            not(Test::DestinationAddress(vec![net("127.0.0.0", 8)]))
        );
        let postrouting = chain(&parsed.chains, "nat", "POSTROUTING");
        assert!(
            postrouting
                .rules
                .iter()
                .all(|rule| rule.action == Action::Continue)
        );

        let forward = chain(&parsed.chains, "filter", "FORWARD");
        assert_eq!(base(forward).policy, Policy::Drop);
        assert_eq!(
            forward.rules[0].action,
            Action::Jump("DOCKER-USER".to_string())
        );
        assert_eq!(
            forward.rules[1].action,
            Action::Jump("DOCKER-ISOLATION-STAGE-1".to_string())
        );
        let filter_docker = chain(&parsed.chains, "filter", "DOCKER");
        assert_eq!(
            filter_docker.rules[0].matches,
            vec![
                is(Test::DestinationAddress(vec![net("172.17.0.2", 32)])),
                not(interface_in("docker0")),
                is(Test::OutInterface(vec!["docker0".to_string()])),
                proto(6),
                dport(80)
            ]
        );
        let user = chain(&parsed.chains, "filter", "DOCKER-USER");
        assert_eq!(user.rules.len(), 1);
        assert_eq!(user.rules[0].action, Action::Return);
        for name in ["DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2"] {
            assert_eq!(chain(&parsed.chains, "filter", name).base, None);
        }
    }

    #[test]
    fn docker_without_the_userland_proxy_dnats_every_interface() {
        let parsed = nft4(fixture!("docker-noproxy.v4"));
        let docker = chain(&parsed.chains, "nat", "DOCKER");
        assert_eq!(docker.rules.len(), 1);
        assert_eq!(docker.rules[0].matches, vec![proto(6), dport(8080)]);
        assert_eq!(docker.rules[0].action, dnat("172.17.0.2", 80));
        let postrouting = chain(&parsed.chains, "nat", "POSTROUTING");
        assert!(unknown_says(
            rule(postrouting, "--src-type LOCAL"),
            "-m addrtype --src-type LOCAL"
        ));
        assert_eq!(
            base(chain(&parsed.chains, "filter", "FORWARD")).policy,
            Policy::Accept
        );
        assert!(fixture!("docker-noproxy.ss").contains("\"dockerd\""));
    }

    #[test]
    fn docker_on_legacy_iptables_with_ipv6() {
        let v4 = read(
            fixture!("docker-legacy.v4"),
            TableFamily::Ip,
            Origin::IptablesLegacy,
        );
        let docker = chain(&v4.chains, "nat", "DOCKER");
        assert_eq!(rule(docker, "8080").action, dnat("172.17.0.2", 80));
        assert!(
            v4.chains
                .iter()
                .all(|chain| chain.origin == Origin::IptablesLegacy)
        );

        let v6 = read(
            fixture!("docker-legacy.v6"),
            TableFamily::Ip6,
            Origin::IptablesLegacy,
        );
        assert_eq!(v6.gaps, Vec::<String>::new());
        let docker6 = chain(&v6.chains, "nat", "DOCKER");
        let published = rule(docker6, "8080");
        assert_eq!(
            published.matches,
            vec![not(interface_in("docker0")), proto(6), dport(8080)]
        );
        assert_eq!(published.action, dnat("fd00:d0c::242:ac11:2", 80));
        let (address, port, _) = proxied(
            fixture!("docker-legacy.proxy-cmdline")
                .lines()
                .find(|line| line.contains("-host-ip ::"))
                .expect("the v6 proxy"),
        );
        assert_eq!(published.action, dnat(&address.to_string(), port));
        let output = chain(&v6.chains, "nat", "OUTPUT");
        assert_eq!(
            output.rules[0].matches[0],
            not(Test::DestinationAddress(vec![net("::1", 128)]))
        );
        assert_eq!(
            base(chain(&v6.chains, "filter", "FORWARD")).policy,
            Policy::Drop
        );
        assert!(
            !has_chain(&v6.chains, "filter", "DOCKER-USER"),
            "docker 20.10 has none in v6"
        );
    }

    #[test]
    fn empty_output_is_no_chains() {
        let empty = fixture!("docker.legacy.v4");
        assert_eq!(
            empty, "",
            "the fixture is iptables-legacy-save with no tables"
        );
        for text in [
            empty,
            "\n\n",
            "  \t\n",
            "# Warning: iptables-legacy tables present\n",
        ] {
            let parsed = read(text, TableFamily::Ip, Origin::IptablesLegacy);
            assert_eq!(parsed, Parsed::default(), "{text:?}");
        }
    }

    #[test]
    fn podman_netavark_layout() {
        let parsed = nft4(fixture!("podman-netavark.v4"));
        assert_eq!(parsed.gaps, Vec::<String>::new());
        let prerouting = chain(&parsed.chains, "nat", "PREROUTING");
        assert_eq!(
            prerouting.rules[0].matches,
            vec![is(Test::DestinationType(vec![AddressType::Local]))]
        );
        assert_eq!(
            prerouting.rules[0].action,
            Action::Jump("NETAVARK-HOSTPORT-DNAT".to_string())
        );
        let hostport = chain(&parsed.chains, "nat", "NETAVARK-HOSTPORT-DNAT");
        let entry = &hostport.rules[0];
        assert_eq!(entry.matches, vec![proto(6), dport(8080)]);
        assert_eq!(
            entry.comment.as_deref(),
            Some(
                "dnat name: podman id: 2a6d3bcbf9a5e8c5c4fb3bcd4e62e1b8d0cf7a9b3a4ed6e2f6b0c9d8e7f6a5b4"
            )
        );
        assert_eq!(
            entry.action,
            Action::Jump("NETAVARK-DN-1D8721804F16F".to_string())
        );
        let dn = chain(&parsed.chains, "nat", "NETAVARK-DN-1D8721804F16F");
        assert_eq!(dn.rules.len(), 3);
        assert_eq!(
            dn.rules[0].matches,
            vec![
                is(Test::SourceAddress(vec![net("10.88.0.0", 16)])),
                proto(6),
                dport(8080)
            ]
        );
        assert_eq!(
            dn.rules[1].action,
            Action::Jump("NETAVARK-HOSTPORT-SETMARK".to_string())
        );
        assert_eq!(dn.rules[2].matches, vec![proto(6), dport(8080)]);
        assert_eq!(dn.rules[2].action, dnat("10.88.0.2", 80));
        let setmark = chain(&parsed.chains, "nat", "NETAVARK-HOSTPORT-SETMARK");
        assert_eq!(setmark.rules[0].action, Action::Continue);
        // --set-xmark 0x2000/0x2000: an or of 0x2000.
        assert_eq!(
            setmark.rules[0].marks,
            [MarkSet {
                mark: Mark::Packet,
                value: Ok(MarkValue::of(Mark::Packet).or(0x2000)),
            }]
        );
        let masq = chain(&parsed.chains, "nat", "NETAVARK-HOSTPORT-MASQ");
        assert_eq!(
            masq.rules[0].comment.as_deref(),
            Some("netavark portfw masq mark")
        );
        assert_eq!(
            masq.rules[0].matches,
            [is(Test::Mark {
                mark: Mark::Packet,
                mask: 0x2000,
                values: vec![(0x2000, 0x2000)],
            })]
        );
        let forward = chain(&parsed.chains, "filter", "FORWARD");
        assert_eq!(
            forward.rules[0].comment.as_deref(),
            Some("netavark firewall plugin rules")
        );
        assert_eq!(forward.rules[0].matches, vec![]);
        assert_eq!(
            forward.rules[0].action,
            Action::Jump("NETAVARK_FORWARD".to_string())
        );
        let netavark_forward = chain(&parsed.chains, "filter", "NETAVARK_FORWARD");
        assert_eq!(
            netavark_forward.rules[0].matches,
            vec![
                is(Test::DestinationAddress(vec![net("10.88.0.0", 16)])),
                is(Test::ConnectionState(vec![
                    ConnectionState::Related,
                    ConnectionState::Established
                ]))
            ]
        );
    }

    #[test]
    fn podman_cni_layout() {
        let parsed = nft4(fixture!("podman-cni.v4"));
        assert_eq!(parsed.gaps, Vec::<String>::new());
        let id = "7f3c0b5e9d2a41c6b8e5f4a3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a09";
        let hostport = chain(&parsed.chains, "nat", "CNI-HOSTPORT-DNAT");
        let entry = &hostport.rules[0];
        assert_eq!(
            entry.comment,
            Some(format!("dnat name: \"podman\" id: \"{id}\""))
        );
        assert_eq!(entry.matches, vec![proto(6), dport(8080)]);
        assert_eq!(
            entry.action,
            Action::Jump("CNI-DN-9ba181dc22055612adf51".to_string())
        );
        let dn = chain(&parsed.chains, "nat", "CNI-DN-9ba181dc22055612adf51");
        assert_eq!(dn.rules[2].action, dnat("10.88.0.2", 80));
        assert_eq!(
            dn.rules[1].matches[0],
            is(Test::SourceAddress(vec![net("127.0.0.1", 32)]))
        );
        let masq = chain(&parsed.chains, "nat", "CNI-9ba181dc22055612adf51dc2");
        assert_eq!(
            masq.rules[0].comment,
            Some(format!("name: \"podman\" id: \"{id}\""))
        );
        assert_eq!(
            masq.rules[1].matches,
            vec![not(Test::DestinationAddress(vec![net("224.0.0.0", 4)]))]
        );
        assert_eq!(masq.rules[1].action, Action::Continue);
        let postrouting = chain(&parsed.chains, "nat", "POSTROUTING");
        assert_eq!(
            postrouting.rules[0].comment.as_deref(),
            Some("CNI portfwd requiring masquerade")
        );
        let forward = chain(&parsed.chains, "filter", "CNI-FORWARD");
        assert_eq!(
            forward.rules[0].action,
            Action::Jump("CNI-ADMIN".to_string())
        );
        assert_eq!(chain(&parsed.chains, "filter", "CNI-ADMIN").rules, vec![]);
    }

    #[test]
    fn ufw_layout() {
        let parsed = nft4(fixture!("ufw.v4"));
        assert_eq!(parsed.gaps, Vec::<String>::new());
        assert!(parsed.chains.iter().all(|chain| chain.table == "filter"));
        let input = chain(&parsed.chains, "filter", "INPUT");
        assert_eq!(base(input).policy, Policy::Drop);
        let jumps: Vec<&Action> = input.rules.iter().map(|rule| &rule.action).collect();
        assert_eq!(jumps.len(), 6);
        assert_eq!(jumps[1], &Action::Jump("ufw-before-input".to_string()));
        let user = chain(&parsed.chains, "filter", "ufw-user-input");
        assert_eq!(rule(user, "--dport 22 ").matches, vec![proto(6), dport(22)]);
        assert_eq!(
            rule(user, "6379").matches[0],
            is(Test::SourceAddress(vec![net("10.0.0.0", 8)]))
        );
        let limit = rule(user, "--update");
        assert!(unknown_says(
            limit,
            "-m recent --update --seconds 30 --hitcount 6"
        ));
        assert_eq!(limit.action, Action::Jump("ufw-user-limit".to_string()));
        assert_eq!(rule(user, "-p udp -m udp --dport 23").action, Action::Drop);
        let rejected = chain(&parsed.chains, "filter", "ufw-user-limit");
        assert_eq!(rejected.rules[1].action, Action::Reject);
        let not_local = chain(&parsed.chains, "filter", "ufw-not-local");
        assert_eq!(
            not_local.rules[0].matches,
            vec![is(Test::DestinationType(vec![AddressType::Local]))]
        );
        assert_eq!(not_local.rules[4].action, Action::Drop);
        let logging = chain(&parsed.chains, "filter", "ufw-after-logging-input");
        assert_eq!(logging.rules[0].action, Action::Continue);

        let v6 = nft6(fixture!("ufw.v6"));
        assert_eq!(v6.gaps, Vec::<String>::new());
        let user6 = chain(&v6.chains, "filter", "ufw6-user-input");
        assert_eq!(rule(user6, "--dport 22 ").action, Action::Accept);
        assert_eq!(
            base(chain(&v6.chains, "filter", "INPUT")).policy,
            Policy::Drop
        );
    }

    #[test]
    fn hostile_names_and_comments_are_kept_exactly() {
        let parsed = nft4(fixture!("hostile.v4"));
        assert_eq!(parsed.gaps, Vec::<String>::new());
        let input = chain(&parsed.chains, "filter", "INPUT");
        let targets: Vec<&Action> = input.rules[..3].iter().map(|rule| &rule.action).collect();
        let names = ["\u{1b}[2Jevil", "q\"uote", "x'y\\z"];
        for (action, name) in targets.into_iter().zip(names) {
            assert_eq!(action, &Action::Jump(name.to_string()));
            assert!(has_chain(&parsed.chains, "filter", name), "{name:?}");
        }
        let comments: Vec<Option<&str>> = input.rules[3..7]
            .iter()
            .map(|rule| rule.comment.as_deref())
            .collect();
        assert_eq!(
            comments[0],
            Some("clear \u{1b}[2J\u{1b}]0;pwn\u{7} bidi \u{202e}txt.exe done")
        );
        assert_eq!(
            comments[1],
            Some("A".repeat(255).as_str()),
            "the kernel keeps 255"
        );
        assert_eq!(comments[2], Some("back\\slash \"dq\" 'sq' tab\tend"));
        assert_eq!(comments[3], Some("-j ACCEPT"));
        assert_eq!(
            input.rules[6].action,
            Action::Drop,
            "a quoted `-j ACCEPT` is a comment"
        );
        assert_eq!(input.rules[7].action, Action::Continue);
        let quote = chain(&parsed.chains, "filter", "q\"uote");
        assert_eq!(quote.rules[0].comment.as_deref(), Some("q\"uote"));
        assert_eq!(quote.rules[0].action, Action::Return);

        let v6 = nft6(fixture!("hostile.v6"));
        let input6 = chain(&v6.chains, "filter", "INPUT");
        assert!(unknown_says(
            &input6.rules[0],
            "2001::/ffff:0:ffff::: a mask that is not a prefix"
        ));
        assert_eq!(input6.rules[1].comment.as_deref(), Some("\u{1b}[2J"));
    }

    #[test]
    fn malformed_lines_become_unknown_rules_naming_the_problem() {
        let text = fixture!("hostile-malformed.v4");
        let parsed = nft4(text);
        let input = chain(&parsed.chains, "filter", "INPUT");
        let expected = [
            ("--dport 99999", "99999 is not a port number"),
            ("--dport 30:20", "the range 30:20 ends before it starts"),
            ("--dport ssh", "`ssh` is not a port number"),
            ("300.1.1.1", "`300.1.1.1` is not an address"),
            ("fd00::1", "is not an address of an ip table"),
            ("/33", "/33 is longer than the address"),
            ("never closed", "is never closed"),
            ("--dport 23 -j", "`-j` lacks its argument"),
            ("stray", "`stray` is no option nor the argument of one"),
            ("! ! -p", "`!` twice in a row"),
            ("-j ACCEPT -j DROP", "`-j DROP`: a second target"),
            (
                "-j NOSUCHCHAIN",
                "neither a chain of table filter nor a target",
            ),
            (
                "-g NOSUCHCHAIN",
                "-g NOSUCHCHAIN: table filter has no such chain",
            ),
            (
                "10.0.0.1-10.0.0.9",
                "a range of addresses, not one destination",
            ),
            ("-j ACCEPT !", "a `!` at the end, negating nothing"),
            ("eth*", "a `*` in an interface name"),
            (
                "carrier-pigeon",
                "`carrier-pigeon` is a protocol portstat does not know",
            ),
            ("NEW,BOGUS", "`BOGUS` is a state portstat does not model"),
            (
                "THROW",
                "`THROW` is an address type portstat does not model",
            ),
            ("-m tcp --tcp-flags", "-m tcp --tcp-flags SYN,RST SYN"),
            ("--ports 80,443", "the source or the destination port"),
            ("-m u32", "-m u32 --u32 \"0>>22&0x3C@0>>16=0x1F90\""),
            ("[unsupported revision]", "(`[unsupported revision]`)"),
        ];
        for (fragment, problem) in expected {
            let found = rule(input, fragment);
            assert!(
                unknown_says(found, problem),
                "`{fragment}` should say `{problem}`: {found:?}"
            );
        }
        let long = rule(input, "012345678901234567890123456789");
        assert_eq!(long.comment.as_ref().map(String::len), Some(5000));
        assert_eq!(long.action, Action::Accept);
        let counted = rule(input, "--dport 22 ");
        assert_eq!(
            counted.text, "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
            "no counters"
        );
        assert_eq!(counted.matches, vec![proto(6), dport(22)]);
        let implicit = rule(input, "--dport 25");
        assert_eq!(
            implicit.matches,
            vec![proto(6), dport(25)],
            "-p tcp loads tcp itself"
        );
        assert_eq!(
            input.rules.last().map(|rule| &rule.action),
            Some(&Action::Jump("\u{1b}[2J\u{1b}]0;pwn\u{7}".to_string()))
        );
        assert_eq!(
            base(input).policy,
            Policy::Drop,
            "the second declaration is ignored"
        );

        let forward = chain(&parsed.chains, "filter", "FORWARD");
        assert_eq!(forward.rules.len(), 1);
        assert!(unknown_says(
            &forward.rules[0],
            "the policy of chain FORWARD is `QUEUE`, which is neither ACCEPT nor DROP"
        ));
        assert_eq!(
            chain(&parsed.chains, "filter", "UNDECLARED").rules[0].action,
            Action::Accept
        );

        // Every `-A CHAIN` line inside a table is a rule: none is dropped.
        assert_eq!(rule_lines(text), 32);
        assert_eq!(written_rules(&parsed.chains), 32);
    }

    #[test]
    fn what_fits_no_chain_is_a_gap() {
        let parsed = nft4(fixture!("hostile-malformed.v4"));
        let expected = [
            "table mangle holds rules iptables cannot show",
            "line 8: chain INPUT of table filter is declared a second time",
            "line 36: `-A` without a chain",
            "line 39: not a line of iptables-save's format: `this line is not iptables-save`",
            "line 40: not a line of iptables-save's format: `-N ANOTHER`",
            "line 42: a rule outside a table: `-A INPUT -j ACCEPT`",
            "line 43: a COMMIT outside a table",
            "table nat has no COMMIT: its rules may end early",
        ];
        assert_eq!(parsed.gaps.len(), expected.len(), "{:#?}", parsed.gaps);
        for (gap, fragment) in parsed.gaps.iter().zip(expected) {
            assert!(gap.starts_with("iptables-nft-save: "), "{gap}");
            assert!(gap.contains(fragment), "`{gap}` should say `{fragment}`");
        }
    }

    #[test]
    fn a_table_cut_short_ends_every_chain_in_an_unknown_rule() {
        let parsed = nft4(fixture!("nft-unreadable.v4"));
        let input = chain(&parsed.chains, "filter", "INPUT");
        assert_eq!(input.rules.len(), 3);
        assert_eq!(input.rules[1].action, Action::Accept);
        let end = &input.rules[2];
        assert_eq!(end.handle, 3);
        assert!(unknown_says(
            end,
            "table filter has no COMMIT: its rules may end early"
        ));
        for name in ["FORWARD", "OUTPUT"] {
            let rules = &chain(&parsed.chains, "filter", name).rules;
            assert!(
                rules.len() == 1 && unknown_says(&rules[0], "no COMMIT"),
                "{name}"
            );
        }
        assert!(
            parsed
                .gaps
                .iter()
                .any(|gap| gap.contains("table filter has no COMMIT"))
        );
        assert!(
            parsed
                .gaps
                .iter()
                .any(|gap| gap.contains("has base chains iptables cannot show"))
        );

        let malformed = nft4(fixture!("hostile-malformed.v4"));
        let docker = chain(&malformed.chains, "nat", "DOCKER");
        assert_eq!(docker.rules[0].action, dnat("172.17.0.2", 80));
        assert!(unknown_says(&docker.rules[1], "table nat has no COMMIT"));
        let postrouting = chain(&malformed.chains, "nat", "POSTROUTING");
        assert_eq!(base(postrouting).priority, 100);
        assert!(unknown_says(
            &postrouting.rules[1],
            "chain POSTROUTING was never declared, so its policy is unknown"
        ));
    }

    #[test]
    fn iptables_nft_saying_it_left_base_chains_out_is_a_gap() {
        let parsed = nft4(fixture!("nft-mixed.v4"));
        assert_eq!(parsed.gaps.len(), 1);
        assert!(parsed.gaps[0].contains("table filter has base chains iptables cannot show"));
        assert!(!has_chain(&parsed.chains, "filter", "extra"));
        // What iptables-nft-save printed for `ip saddr { ... } tcp dport 8080 accept`: the set
        // is gone, and nothing in the text says so (the README's warning).
        let input = chain(&parsed.chains, "filter", "INPUT");
        assert_eq!(rule(input, "8080").matches, vec![proto(6), dport(8080)]);
        assert!(fixture!("nft-mixed.nft").contains("ip saddr { 192.0.2.1, 192.0.2.2 }"));
    }

    #[test]
    fn text_that_is_not_iptables_save_is_refused() {
        let documents = [
            "{\"nftables\": [{\"metainfo\": {\"version\": \"1.0.6\"}}]}",
            fixture!("nft-mixed.nft"),
            "hello world\n",
            "-A INPUT -j ACCEPT\nCOMMIT\n",
            ":INPUT ACCEPT [0:0]\n",
            "# a comment\nfilter\n",
        ];
        for text in documents {
            let error = parse(text, TableFamily::Ip, Origin::IptablesNft)
                .expect_err(text)
                .to_string();
            assert!(
                error.starts_with("this is not iptables-nft-save output: line "),
                "{error}"
            );
        }
        let error = parse("x", TableFamily::Ip6, Origin::IptablesLegacy).expect_err("x");
        assert!(
            error
                .to_string()
                .contains("not ip6tables-legacy-save output")
        );
    }

    #[test]
    fn only_ip_and_ip6_tables_come_from_iptables() {
        for family in [
            TableFamily::Inet,
            TableFamily::Arp,
            TableFamily::Bridge,
            TableFamily::Netdev,
        ] {
            let error =
                parse("*filter\nCOMMIT\n", family, Origin::IptablesNft).expect_err("family");
            assert!(
                error.to_string().contains("iptables-save has no"),
                "{error}"
            );
        }
    }

    #[test]
    fn gaps_are_capped() {
        let text = format!("*filter\n{}COMMIT\n", "junk\n".repeat(500));
        let parsed = nft4(&text);
        assert_eq!(parsed.gaps.len(), MAX_GAPS + 1);
        assert_eq!(
            parsed.gaps.last().map(String::as_str),
            Some("iptables-nft-save: 450 more problems like those above")
        );
    }

    #[test]
    fn quoting_follows_xtables_save_string() {
        let values = |text: &str| -> Vec<String> {
            tokenize(text)
                .expect("tokens")
                .into_iter()
                .map(|token| token.value)
                .collect()
        };
        assert_eq!(
            values(r#"--comment "a \"b\" c\'s \\ d""#),
            ["--comment", "a \"b\" c's \\ d"]
        );
        assert_eq!(values("-j q\"uote  x\ty"), ["-j", "q\"uote", "x", "y"]);
        assert_eq!(values(r#""" "a"b"#), ["", "ab"]);
        let tokens = tokenize(r#"! --x "-y""#).expect("tokens");
        assert!(tokens[0].is_negation() && tokens[1].is_option() && !tokens[2].is_option());
        assert_eq!(tokens[2].raw, "\"-y\"");
        assert!(tokenize(r#"--comment "open \""#).is_err());
    }

    #[test]
    fn addresses_masks_and_lists() {
        let v4 = |text: &str| address_list(text, TableFamily::Ip);
        assert_eq!(v4("10.1.2.3"), Ok(vec![net("10.1.2.3", 32)]));
        assert_eq!(v4("10.1.2.3/8"), Ok(vec![net("10.0.0.0", 8)]));
        assert_eq!(v4("0.0.0.0/0"), Ok(vec![net("0.0.0.0", 0)]));
        assert_eq!(v4("10.0.0.0/255.255.255.0"), Ok(vec![net("10.0.0.0", 24)]));
        assert_eq!(v4("10.0.0.0/0.0.0.0"), Ok(vec![net("0.0.0.0", 0)]));
        assert_eq!(
            v4("10.1.0.0/16,192.168.1.1"),
            Ok(vec![net("10.1.0.0", 16), net("192.168.1.1", 32)])
        );
        assert!(v4("10.0.0.0/255.0.255.0").is_err());
        assert!(v4("10.0.0.0/300").is_err());
        assert!(v4("example.com").is_err());
        assert!(v4("10.0.0.0/ffff::").is_err());
        let v6 = |text: &str| address_list(text, TableFamily::Ip6);
        assert_eq!(v6("fe80::/ffc0::"), Ok(vec![net("fe80::", 10)]));
        assert_eq!(v6("::/0"), Ok(vec![net("::", 0)]));
        assert!(v6("10.0.0.1").is_err());
        assert!(v6("::1/129").is_err());
        assert_eq!(
            address_range("10.0.0.5-10.0.0.9", TableFamily::Ip),
            Ok(AddressRange {
                first: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
                last: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))
            })
        );
        assert!(address_range("10.0.0.9-10.0.0.5", TableFamily::Ip).is_err());
    }

    #[test]
    fn ports_and_nat_destinations() {
        assert_eq!(port_span("22"), Ok(PortSpan::single(22)));
        assert_eq!(port_span("1024:"), Ok(span(1024, 65535)));
        assert_eq!(port_span(":1023"), Ok(span(0, 1023)));
        assert!(port_span("65536").is_err());
        assert!(port_span("-1").is_err());
        assert_eq!(
            port_list("1,2:3"),
            Ok(vec![PortSpan::single(1), span(2, 3)])
        );
        assert!(port_list("1,,2").is_err());

        let v4 = |text: &str| nat_destination(text, TableFamily::Ip);
        let ten = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(v4("10.0.0.1"), Ok((ten, None)));
        assert_eq!(v4("10.0.0.1:80"), Ok((ten, Some(PortSpan::single(80)))));
        assert_eq!(v4("10.0.0.1:80-81/8080"), Ok((ten, Some(span(80, 81)))));
        assert_eq!(v4(":80"), Ok((None, Some(PortSpan::single(80)))));
        assert!(v4("10.0.0.1:90-80").is_err());
        assert!(v4("").is_err());
        assert!(v4("[::1]:80").is_err());
        let v6 = |text: &str| nat_destination(text, TableFamily::Ip6);
        let one = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(v6("[::1]:80"), Ok((one, Some(PortSpan::single(80)))));
        assert_eq!(v6("[::1]"), Ok((one, None)));
        assert_eq!(v6("::1"), Ok((one, None)));
        assert!(v6("[::1").is_err());
        assert!(v6("[::1]80").is_err());
        assert_eq!(nat_ports("8000-8010"), Ok(span(8000, 8010)));
    }

    #[test]
    fn odd_but_valid_rule_forms() {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n:X - [0:0]\n\
                    --append INPUT -p all -j ACCEPT\n\
                    -A INPUT ! -p all -j ACCEPT\n\
                    -A INPUT -p 17 --sport 53 -j X\n\
                    -A INPUT -m comment --comment one -m comment --comment two\n\
                    -A INPUT -m iprange --src-range 10.0.0.1-10.0.0.9 -j DROP\n\
                    -A INPUT -p tcp ! --dport 22 -j ACCEPT\n\
                    -A INPUT -j DNAT --to-destination 10.0.0.1 --to-destination 10.0.0.2\n\
                    -A INPUT -j DNAT --to-destination 10.0.0.1 --persistent --bogus\n\
                    -A INPUT -j REDIRECT\n\
                    -A INPUT -j NFQUEUE --queue-num 1\n\
                    -A INPUT -j X --with-option\n\
                    COMMIT\n";
        let parsed = nft4(text);
        assert_eq!(parsed.gaps, Vec::<String>::new());
        let input = chain(&parsed.chains, "filter", "INPUT");
        assert_eq!(input.rules[0].text, "--append INPUT -p all -j ACCEPT");
        assert_eq!(input.rules[0].matches, vec![]);
        assert_eq!(input.rules[1].matches, vec![is(Test::L4Proto(vec![]))]);
        assert_eq!(
            input.rules[2].matches,
            vec![proto(17), is(Test::SourcePort(vec![PortSpan::single(53)]))]
        );
        assert_eq!(input.rules[2].action, Action::Jump("X".to_string()));
        assert_eq!(input.rules[3].comment.as_deref(), Some("one; two"));
        assert_eq!(input.rules[3].action, Action::Continue);
        assert_eq!(
            input.rules[4].matches,
            vec![is(Test::SourceAddress(vec![AddressRange {
                first: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                last: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))
            }]))]
        );
        assert_eq!(
            input.rules[5].matches,
            vec![
                proto(6),
                not(Test::DestinationPort(vec![PortSpan::single(22)]))
            ]
        );
        assert!(unknown_says(
            &input.rules[6],
            "one --to-destination expected"
        ));
        assert!(unknown_says(
            &input.rules[7],
            "`--bogus` is not an option of DNAT"
        ));
        assert_eq!(
            input.rules[8].action,
            Action::Dnat {
                address: None,
                ports: None,
                local: true
            }
        );
        assert_eq!(
            input.rules[9].action,
            Action::Unknown("-j NFQUEUE --queue-num 1".to_string())
        );
        assert_eq!(
            input.rules[10].action,
            Action::Unknown("-j X --with-option".to_string())
        );
    }

    /// Words that real and broken rule lines are made of.
    fn vocabulary() -> Vec<&'static str> {
        vec![
            "*filter",
            "*nat",
            "*raw",
            "*",
            "COMMIT",
            ":INPUT",
            ":X",
            ":PREROUTING",
            "ACCEPT",
            "DROP",
            "QUEUE",
            "-",
            "[0:0]",
            "[1:2]",
            "-A",
            "INPUT",
            "X",
            "PREROUTING",
            "!",
            "-p",
            "tcp",
            "udp",
            "all",
            "6",
            "-m",
            "--dport",
            "--sport",
            "22",
            "1:2",
            ":9",
            "99999",
            "\"",
            "\"a b\"",
            "\"\\\"",
            "\\",
            "-j",
            "-g",
            "DNAT",
            "REDIRECT",
            "CT",
            "--notrack",
            "--to-destination",
            "--to-ports",
            "[::1]:80",
            "10.0.0.1:80-90/5",
            "1-2",
            "-s",
            "-d",
            "10.0.0.0/8",
            "10.0.0.0/255.0.255.0",
            "fd00::/8",
            "-i",
            "-o",
            "eth+",
            "eth*",
            "-f",
            "-c",
            "0",
            "--comment",
            "comment",
            "multiport",
            "--dports",
            "--ports",
            "1,2:3",
            "conntrack",
            "--ctstate",
            "NEW,BOGUS",
            "state",
            "--state",
            "addrtype",
            "--dst-type",
            "LOCAL",
            "--limit-iface-in",
            "iprange",
            "--src-range",
            "set",
            "--match-set",
            "#",
            "# Table `nat' is incompatible",
            "[unsupported",
            "revision]",
            "é",
            "\u{1b}[2J",
            "\u{202e}",
            "\t",
            "",
        ]
    }

    fn document() -> impl Strategy<Value = String> {
        let word = proptest::sample::select(vocabulary());
        let line = proptest::collection::vec(word, 0..10).prop_map(|words| words.join(" "));
        proptest::collection::vec(line, 0..30).prop_map(|lines| lines.join("\n"))
    }

    /// What the format says the rules are: each `-A CHAIN` line while a table is open.
    fn rule_lines(text: &str) -> usize {
        let mut open = false;
        let mut count = 0;
        for line in text.lines() {
            let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with('*') {
                open = true;
            } else if line == "COMMIT" {
                open = false;
            }
            let line = match line.strip_prefix("[") {
                Some(rest) => match rest.split_once(']') {
                    Some((counters, rest))
                        if counters
                            .split_once(':')
                            .is_some_and(|(p, b)| all_digits(p) && all_digits(b)) =>
                    {
                        rest.trim_start_matches(SEPARATORS)
                    }
                    _ => continue,
                },
                None => line,
            };
            let Some(rest) = line.strip_prefix("-A") else {
                continue;
            };
            if open && rest.starts_with(SEPARATORS) && !rest.trim_matches(SEPARATORS).is_empty() {
                count += 1;
            }
        }
        count
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            for family in [TableFamily::Ip, TableFamily::Ip6] {
                let _ = parse_with_gaps(&text, family, Origin::IptablesLegacy);
            }
        }

        #[test]
        fn every_rule_line_in_a_table_is_one_rule(text in document()) {
            if let Ok(parsed) = parse_with_gaps(&text, TableFamily::Ip, Origin::IptablesNft) {
                prop_assert_eq!(written_rules(&parsed.chains), rule_lines(&text));
                prop_assert!(parsed.gaps.len() <= MAX_GAPS + 1);
                for chain in &parsed.chains {
                    let handles: Vec<u64> = chain.rules.iter().map(|rule| rule.handle).collect();
                    let expected: Vec<u64> = (1..=chain.rules.len() as u64).collect();
                    prop_assert_eq!(handles, expected);
                }
            } else {
                let opens_a_table = |line: &str| {
                    line.trim_matches(|c: char| c.is_ascii_whitespace()).starts_with('*')
                };
                prop_assert!(!text.lines().any(opens_a_table));
            }
        }
    }
}
