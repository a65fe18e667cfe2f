//! The shipped configuration files pass; every file under
//! `tests/data/config/` fails with the errors its `.expected` names.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use vmail::config::{Config, SipTransport};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `*.json` files under `dir` (recursively), sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn shipped_files_are_valid() {
    let files = json_files(&root().join("config"));
    assert!(files.len() >= 2, "{files:?}");
    for f in &files {
        if let Err(e) = Config::load(f) {
            panic!("{} is rejected:\n{e}", f.display());
        }
    }
}

#[test]
fn the_embedded_default() {
    let cfg = Config::load(&root().join("config/vmail.json")).unwrap();
    assert_eq!(cfg.site, "site1");
    let me = cfg.select(None).unwrap();
    assert_eq!(me.name, "vmail1");
    assert_eq!((me.group, me.order), (1, 1));
    assert_eq!(me.sip_addr().to_string(), "127.0.0.1:5060");
    assert_eq!(me.http_addr().to_string(), "127.0.0.1:8080");
    assert_eq!(me.include_domains, ["test.rootdomain.ru"]);
    assert_eq!(me.ext.siteshare, Path::new("./var/siteshare"));
    assert_eq!(
        me.ext.sip_transports,
        [SipTransport::Udp, SipTransport::Tcp]
    );
    let boxes: Vec<(&str, &str, &str)> = me
        .ext
        .demo_mailboxes
        .iter()
        .map(|m| (m.user.as_str(), m.domain.as_str(), m.pin.as_str()))
        .collect();
    assert_eq!(
        boxes,
        [
            ("1001", "test.rootdomain.ru", "1234"),
            ("1002", "test.rootdomain.ru", "5678")
        ]
    );
}

#[test]
fn the_multi_group_example() {
    let cfg = Config::load(&root().join("config/examples/multi-group.json")).unwrap();
    let groups = cfg.groups();
    assert!(groups.len() >= 3);
    assert!(groups.values().all(|g| g.instances.len() >= 2));
    assert_eq!(groups.values().filter(|g| g.is_default()).count(), 1);
    assert_eq!(groups[&10].include_domains, ["example.ru"]);
    assert!(groups[&20]
        .include_domains
        .contains(&"sales.example.ru".to_string()));
    assert!(cfg.roles.iter().any(|r| r.roletype() == "sipproxy"));
    assert!(cfg
        .roles
        .iter()
        .any(|r| matches!(r, vmail::config::Role::Disabled { .. })));
    assert!(cfg.select(None).is_err(), "several instances need --name");
    assert_eq!(cfg.select(Some("vmailB2")).unwrap().order, 7);
}

#[test]
fn invalid_files_fail_with_the_expected_errors() {
    let dir = root().join("tests/data/config");
    let files = json_files(&dir);
    assert!(files.len() >= 20, "{files:?}");
    let mut failures = Vec::new();
    for f in &files {
        let expected_path = f.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        match Config::load(f) {
            Ok(_) => failures.push(format!("{} was accepted", f.display())),
            Err(errors) => {
                let shown = errors.to_string();
                for line in expected.lines().filter(|l| !l.trim().is_empty()) {
                    if !shown.contains(line) {
                        failures.push(format!(
                            "{}: expected\n  {line}\nin\n  {}",
                            f.display(),
                            shown.replace('\n', "\n  ")
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_expected_file_has_its_json() {
    let dir = root().join("tests/data/config");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "expected") {
            assert!(
                p.with_extension("json").exists(),
                "{} has no .json",
                p.display()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Config::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parse_never_panics_on_mutated_default(pos in 0usize..2000, byte in any::<u8>()) {
        let mut text = std::fs::read(root().join("config/vmail.json")).unwrap();
        let len = text.len();
        text[pos % len] = byte;
        if let Err(e) = Config::parse(&String::from_utf8_lossy(&text)) {
            prop_assert!(!e.is_empty());
        }
    }
}
