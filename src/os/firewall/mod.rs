//! Readers of the host's firewall rules, one per tool, into [`crate::core::firewall`]'s model,
//! and the dump of every tool's output from inside the namespace being inspected.
//!
//! iptables-nft's tables show in `nft -j list ruleset` too, but only as opaque `xt` expressions
//! (a DNAT's target is lost), so those tables are read from `iptables-nft-save` and left out of
//! nft's. Legacy iptables tables are invisible to nft: they are read with
//! `iptables-legacy-save` whenever the kernel says the namespace has any.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::core::firewall::{Origin, Ruleset, TableFamily};

pub mod iptables;
pub mod nft;

/// What each tool printed inside one namespace; `None` where a tool did not run.
#[derive(Debug, Default)]
pub struct Dumps {
    pub nft: Option<Vec<u8>>,
    /// `iptables-nft-save`, `ip6tables-nft-save`.
    pub iptables_nft: [Option<String>; 2],
    /// `iptables-legacy-save`, `ip6tables-legacy-save`.
    pub iptables_legacy: [Option<String>; 2],
}

const FAMILIES: [TableFamily; 2] = [TableFamily::Ip, TableFamily::Ip6];

/// One ruleset from every dump: nft's tables, less those iptables-nft manages, plus the
/// iptables tables of both variants.
pub fn assemble(dumps: &Dumps) -> Result<Ruleset, String> {
    let mut ruleset = Ruleset::default();
    let mut managed = Vec::new();
    for (dump, family) in dumps.iptables_nft.iter().zip(FAMILIES) {
        let Some(text) = dump else { continue };
        let iptables::Parsed { chains, gaps } =
            iptables::parse_with_gaps(text, family, Origin::IptablesNft)
                .map_err(|error| format!("{}: {error:#}", save_tool(family, "nft")))?;
        ruleset.gaps.extend(gaps);
        managed.extend(
            chains
                .iter()
                .map(|chain| (chain.family, chain.table.clone())),
        );
        ruleset.read.push(save_tool(family, "nft"));
        ruleset.chains.extend(chains);
    }
    if let Some(json) = &dumps.nft {
        let chains = nft::parse(json).map_err(|error| format!("nft -j list ruleset: {error:#}"))?;
        ruleset.read.insert(0, "nft".into());
        let native = chains
            .into_iter()
            .filter(|chain| !managed.contains(&(chain.family, chain.table.clone())));
        // nft's own tables first: the order tables were listed in is the tie-break between
        // base chains of one priority.
        let iptables = std::mem::take(&mut ruleset.chains);
        ruleset.chains.extend(native);
        ruleset.chains.extend(iptables);
    }
    for (dump, family) in dumps.iptables_legacy.iter().zip(FAMILIES) {
        let Some(text) = dump else { continue };
        let iptables::Parsed { chains, gaps } =
            iptables::parse_with_gaps(text, family, Origin::IptablesLegacy)
                .map_err(|error| format!("{}: {error:#}", save_tool(family, "legacy")))?;
        ruleset.gaps.extend(gaps);
        ruleset.read.push(save_tool(family, "legacy"));
        ruleset.chains.extend(chains);
    }
    Ok(ruleset)
}

fn save_tool(family: TableFamily, variant: &str) -> String {
    let prefix = if family == TableFamily::Ip6 {
        "ip6"
    } else {
        "ip"
    };
    format!("{prefix}tables-{variant}-save")
}

/// Runs every tool inside the calling thread's network namespace. A missing nft, or legacy
/// tables without the tool that reads them, is an error: the ruleset would be partial, and a
/// verdict on part of a firewall is a guess.
pub fn dump() -> Result<Dumps, String> {
    let mut dumps = Dumps::default();
    let nft = tool("nft")
        .ok_or("nft is not installed, so the nftables ruleset can't be read (install nftables)")?;
    dumps.nft = Some(run(&nft, &["-j", "list", "ruleset"])?);
    for (index, family) in FAMILIES.into_iter().enumerate() {
        // Without iptables-nft-save its tables stay in nft's dump as `xt` expressions, which
        // the evaluator treats as unknown: partial, but never wrong.
        if let Some(save) = tool(&save_tool(family, "nft")) {
            dumps.iptables_nft[index] = Some(text(run(&save, &[])?));
        }
        if !legacy_tables(family).is_empty() {
            let name = save_tool(family, "legacy");
            let save = tool(&name).ok_or_else(|| {
                format!(
                    "this namespace has legacy {} tables ({}), and {name} is not installed to \
                     read them",
                    if family == TableFamily::Ip6 {
                        "ip6tables"
                    } else {
                        "iptables"
                    },
                    legacy_tables(family).join(", ")
                )
            })?;
            dumps.iptables_legacy[index] = Some(text(run(&save, &[])?));
        }
    }
    Ok(dumps)
}

/// The legacy iptables tables the kernel holds for the calling thread's namespace.
fn legacy_tables(family: TableFamily) -> Vec<String> {
    let file = if family == TableFamily::Ip6 {
        "ip6_tables_names"
    } else {
        "ip_tables_names"
    };
    std::fs::read_to_string(Path::new("/proc/thread-self/net").join(file))
        .map(|names| names.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// A tool in PATH or in the system directories root's PATH has (tests and cron jobs often
/// run without /usr/sbin).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn run(program: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let name = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{name} could not run: {error}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        return Err(format!("{name} failed ({}): {first}", output.status));
    }
    Ok(output.stdout)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}
