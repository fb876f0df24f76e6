//! What the kernel holds, read back with the nft CLI inside a namespace: an independent check
//! of what crowdwall's netlink code wrote.

use std::process::Output;

use serde_json::Value;

use super::netns::Netns;

/// `nft ARGS...` in the namespace (never panics on failure exit).
pub fn run(ns: &Netns, args: &[&str]) -> Output {
    let mut v = vec!["nft"];
    v.extend_from_slice(args);
    ns.exec(&v)
}

/// `nft list WHAT...` in the namespace: its stdout, empty when the object does not exist.
pub fn list(ns: &Netns, what: &[&str]) -> String {
    let mut v = vec!["list"];
    v.extend_from_slice(what);
    String::from_utf8_lossy(&run(ns, &v).stdout).into_owned()
}

/// crowdwall's whole table in the namespace, as text: every element of every set (both
/// families, every origin), so a check on it holds whatever the set layout. Tests look an
/// address up in it with `contains`.
pub fn crowdwall_table(ns: &Netns) -> String {
    list(ns, &["table", "inet", "crowdwall"])
}

/// Asserts that `ip` is nowhere in crowdwall's table in the namespace.
pub fn assert_not_in_table(ns: &Netns, ip: &str) {
    let t = crowdwall_table(ns);
    assert!(!t.contains(ip), "{ip} is in the kernel set:\n{t}");
}

/// `nft -j ARGS...` in the namespace, parsed; panics when nft fails.
pub fn json(ns: &Netns, args: &[&str]) -> Value {
    let mut v = vec!["nft", "-j"];
    v.extend_from_slice(args);
    let out = ns.must(&v);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("nft -j {args:?}: {e}: {out}"))
}

/// The objects of one kind ("table", "chain", "set", "counter", ...) in `nft -j list ruleset`.
pub fn objects(ns: &Netns, kind: &str) -> Vec<Value> {
    let v = json(ns, &["list", "ruleset"]);
    v["nftables"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o.get(kind).cloned()).collect())
        .unwrap_or_default()
}

/// One element of a set as nft shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Elem {
    /// "a", "a/len" or "a-b".
    pub value: String,
    /// The element's timeout and time left, in ms (nft -j), when it has them.
    pub timeout: Option<u64>,
    pub expires: Option<u64>,
}

/// The elements of `family table set`, in nft's order, from `nft -j list set`. Panics on an
/// element shape it does not know.
pub fn set_elements(ns: &Netns, family: &str, table: &str, set: &str) -> Vec<Elem> {
    let v = json(ns, &["list", "set", family, table, set]);
    let set = v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o.get("set")))
        .cloned()
        .expect("set in nft output");
    let mut out = Vec::new();
    for e in set["elem"].as_array().cloned().unwrap_or_default() {
        let (val, timeout, expires) = match e.get("elem") {
            Some(inner) => (
                inner["val"].clone(),
                inner["timeout"].as_u64(),
                inner["expires"].as_u64(),
            ),
            None => (e.clone(), None, None),
        };
        let value = if let Some(s) = val.as_str() {
            s.to_string()
        } else if let Some(p) = val.get("prefix") {
            format!("{}/{}", p["addr"].as_str().unwrap_or("?"), p["len"])
        } else if let Some(r) = val.get("range") {
            format!(
                "{}-{}",
                r[0].as_str().unwrap_or("?"),
                r[1].as_str().unwrap_or("?")
            )
        } else {
            panic!("unexpected element {e}")
        };
        out.push(Elem {
            value,
            timeout,
            expires,
        });
    }
    out
}

/// Just the values of [`set_elements`], in nft's order.
pub fn set_values(ns: &Netns, family: &str, table: &str, set: &str) -> Vec<String> {
    set_elements(ns, family, table, set)
        .into_iter()
        .map(|e| e.value)
        .collect()
}
