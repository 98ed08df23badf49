//! Compiles the embedded IANA service-name table (data/iana-services.tsv) into a static,
//! sorted array, so that looking up a name costs no parsing at start-up.

use std::fmt::Write as _;
use std::path::PathBuf;

const TABLE: &str = "data/iana-services.tsv";

fn main() {
    println!("cargo::rerun-if-changed={TABLE}");
    let text = std::fs::read_to_string(TABLE).unwrap_or_else(|e| panic!("read {TABLE}: {e}"));
    let mut entries: Vec<(u16, &str, &str, &str)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(4, '\t');
        let (Some(port), Some(proto), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            panic!("{TABLE} line {}: fewer than three fields", number + 1);
        };
        let port: u16 = port
            .parse()
            .unwrap_or_else(|_| panic!("{TABLE} line {}: bad port {port:?}", number + 1));
        let proto = match proto {
            "tcp" => "Tcp",
            "udp" => "Udp",
            other => panic!("{TABLE} line {}: unknown protocol {other:?}", number + 1),
        };
        assert!(!name.is_empty(), "{TABLE} line {}: empty name", number + 1);
        entries.push((port, proto, name, fields.next().unwrap_or("")));
    }
    // Sorted for binary search; the generator's order (first registered first) decides ties.
    entries.sort_by_key(|&(port, proto, _, _)| (port, proto));
    entries.dedup_by_key(|&mut (port, proto, _, _)| (port, proto));

    // Names and descriptions live in one string, entries hold offsets into it: an array of
    // `&str`s would cost the loader two relocations per entry at every start.
    let mut text = String::new();
    let mut span = |part: &str| {
        let start = text.len();
        text.push_str(part);
        format!("({start}, {})", part.len())
    };
    let mut table = String::new();
    for (port, proto, name, description) in &entries {
        let (name, description) = (span(name), span(description));
        writeln!(
            table,
            "    IanaEntry {{ port: {port}, proto: Proto::{proto}, name: {name}, description: {description} }},"
        )
        .expect("writing to a String cannot fail");
    }
    let code =
        format!("const IANA_TEXT: &str = {text:?};\nstatic IANA: &[IanaEntry] = &[\n{table}];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("iana_services.rs"), code).expect("write generated table");
}
