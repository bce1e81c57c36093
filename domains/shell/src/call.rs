//! `call IFACE METHOD ARGS...` and `help call`: any interface the shell imports, called
//! through what the IDL generates (`interfaces::call_text`), with no code here per domain.

use alloc::format;
use alloc::string::String;
use runtime::interfaces::call::MethodInfo;
use runtime::interfaces::{call_text, CALLABLE};

/// Runs `call` with `words` (the interface, the method, then one word per argument);
/// returns what to print.
pub fn call(words: &[&str]) -> String {
    let [iface, method, args @ ..] = words else {
        return String::from("usage: call IFACE METHOD ARGS... (`help call` lists the methods)\n");
    };
    let mut out = String::new();
    match call_text(iface, method, args, &mut out) {
        Ok(()) => format!("{out}\n"),
        Err(e) => format!("call {iface} {method}: error: {e}\n"),
    }
}

/// `help call`: every interface's methods, with their argument and result types and the
/// first line of their doc comment; or only those of interface `only`.
pub fn help(only: Option<&str>) -> String {
    let mut out = String::from("call IFACE METHOD ARGS...: one word per argument; numbers in decimal or 0x hex\n");
    let mut shown = 0;
    for i in CALLABLE.iter().filter(|i| only.is_none_or(|o| o.eq_ignore_ascii_case(i.name))) {
        shown += 1;
        out.push_str(&format!("{}:\n", i.name));
        for m in i.methods {
            out.push_str(&format!("  {}\n", signature(i.name, m)));
        }
    }
    if shown == 0 {
        out.push_str("no such interface\n");
    }
    out
}

fn signature(iface: &str, m: &MethodInfo) -> String {
    let mut s = format!("call {iface} {}", m.name);
    for (name, ty) in m.args {
        s.push_str(&format!(" {name}:{ty}"));
    }
    if m.result != "()" {
        s.push_str(&format!(" -> {}", m.result));
    }
    let doc = m.doc.iter().map(|l| l.trim()).collect::<alloc::vec::Vec<_>>().join(" ");
    if !doc.is_empty() {
        s.push_str(&format!("  -- {}", first_sentence(&doc)));
    }
    s
}

/// Up to the first full stop that ends a sentence.
fn first_sentence(doc: &str) -> &str {
    match doc.find(". ") {
        Some(at) => &doc[..=at],
        None => doc,
    }
}
