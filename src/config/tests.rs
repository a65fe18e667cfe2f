//! Rules of the whole file, on a fake host (interfaces `lo`, `eth0`).

use proptest::prelude::*;
use serde_json::{json, Value};

use super::iface::tests::FakeHost;
use super::model::parse_with;
use super::*;

fn parse(v: &Value) -> Result<Config, ConfigErrors> {
    parse_with(&v.to_string(), &mut FakeHost::default())
}

fn errors(v: &Value) -> Vec<String> {
    match parse(v) {
        Ok(_) => panic!("accepted: {v:#}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn assert_error(v: &Value, expect: &str) {
    let errs = errors(v);
    assert!(
        errs.iter().any(|e| e.contains(expect)),
        "expected {expect:?} in {errs:#?}"
    );
}

fn vm(name: &str, group: u32, order: u32, domains: &[&str]) -> Value {
    json!({"name": name, "roletype": "vmail", "iface": "a1", "group": group,
           "order": order, "include_domains": domains,
           "ext": {"sip_port": 5060 + order + group * 10, "http_port": 8080 + order + group * 10,
                   "rtp_port_min": 20000 + (order + group * 10) * 100,
                   "rtp_port_max": 20099 + (order + group * 10) * 100}})
}

fn site(roles: Vec<Value>) -> Value {
    json!({"site": "site1", "interfaces": {"a1": "127.0.0.1", "a2": "127.0.0.2"}, "roles": roles})
}

#[test]
fn a_minimal_file() {
    let cfg = parse(
        &json!({"roles": [{"name": "vmail1", "roletype": "vmail", "iface": "lo",
        "group": 1, "order": 1}]}),
    )
    .unwrap();
    assert_eq!(cfg.site, DEFAULT_SITE);
    let v = cfg.select(None).unwrap();
    assert_eq!(v.addr, "127.0.0.1".parse::<std::net::IpAddr>().unwrap());
    assert!(v.is_default_group());
    assert_eq!(v.ext, Ext::default());
}

#[test]
fn roles_of_every_kind_are_kept_in_order() {
    let mut roles = vec![
        json!({"name": "proxy1", "roletype": "sipproxy", "whatever": [1, 2]}),
        vm("vmail1", 1, 1, &["a.ru"]),
        json!({"name": "vmail9", "roletype": "vmail", "enabled": false, "group": "junk"}),
        json!({"enabled": false, "iface": 7}),
        vm("vmail2", 1, 2, &["A.ru."]),
    ];
    roles[4]["enabled"] = json!(true);
    let cfg = parse(&site(roles)).unwrap();
    let kinds: Vec<(usize, Option<&str>, &str)> = cfg
        .roles
        .iter()
        .map(|r| (r.index(), r.name(), r.roletype()))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, Some("proxy1"), "sipproxy"),
            (1, Some("vmail1"), "vmail"),
            (2, Some("vmail9"), "vmail"),
            (3, None, "vmail"),
            (4, Some("vmail2"), "vmail"),
        ]
    );
    assert!(matches!(cfg.roles[2], Role::Disabled { .. }));
    assert_eq!(cfg.vmail_roles().count(), 2);
    assert_eq!(cfg.raw["roles"][0]["whatever"], json!([1, 2]));
}

#[test]
fn select_by_name() {
    let cfg = parse(&site(vec![
        vm("vmail1", 1, 1, &[]),
        vm("vmail2", 1, 2, &[]),
        json!({"name": "off1", "roletype": "vmail", "enabled": false}),
        json!({"name": "px", "roletype": "sipproxy"}),
    ]))
    .unwrap();
    assert_eq!(cfg.select(Some("vmail2")).unwrap().name, "vmail2");
    let e = cfg.select(None).unwrap_err();
    assert!(matches!(e, SelectError::Ambiguous { .. }));
    assert!(e.to_string().contains("vmail1, vmail2"), "{e}");
    assert!(matches!(
        cfg.select(Some("off1")),
        Err(SelectError::Disabled { .. })
    ));
    assert!(matches!(
        cfg.select(Some("px")),
        Err(SelectError::NotVmail { .. })
    ));
    let e = cfg.select(Some("nope")).unwrap_err();
    assert!(e.to_string().contains("\"nope\"") && e.to_string().contains("vmail1, vmail2"));
}

#[test]
fn groups_sorted_by_order() {
    let cfg = parse(&site(vec![
        vm("b2", 20, 7, &["sales.example.ru"]),
        vm("a2", 10, 5, &["example.ru"]),
        vm("a1", 10, 2, &["example.ru"]),
        vm("c1", 30, 1, &[]),
        vm("b1", 20, 3, &["sales.example.ru"]),
    ]))
    .unwrap();
    let groups = cfg.groups();
    let shape: Vec<(u32, Vec<&str>, bool)> = groups
        .values()
        .map(|g| {
            (
                g.group,
                g.instances.iter().map(|v| v.name.as_str()).collect(),
                g.is_default(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (10, vec!["a1", "a2"], false),
            (20, vec!["b1", "b2"], false),
            (30, vec!["c1"], true)
        ]
    );
    assert_eq!(groups[&20].include_domains, ["sales.example.ru"]);
}

#[test]
fn name_rules() {
    assert_error(&site(vec![vm("1vmail", 1, 1, &[])]), "roles[0] \"1vmail\": field `name`: must consist of Latin letters and digits and begin with a letter");
    assert_error(
        &site(vec![vm("vm-1", 1, 1, &[])]),
        "roles[0] \"vm-1\": field `name`",
    );
    let mut no_name = vm("x", 1, 1, &[]);
    no_name.as_object_mut().unwrap().remove("name");
    assert_error(&site(vec![no_name]), "roles[0]: field `name`: is required");
    let mut num_name = vm("x", 1, 1, &[]);
    num_name["name"] = json!(5);
    assert_error(
        &site(vec![num_name]),
        "roles[0]: field `name`: must be a string, found 5",
    );
}

#[test]
fn names_are_unique_across_all_roles() {
    assert_error(
        &site(vec![vm("vmail1", 1, 1, &[]), vm("vmail1", 2, 1, &["a.ru"])]),
        "roles[1] \"vmail1\": field `name`: \"vmail1\" is already the name of roles[0] \"vmail1\"",
    );
    assert_error(
        &site(vec![
            json!({"name": "Vmail1", "roletype": "sipproxy"}),
            vm("vmail1", 1, 1, &[]),
        ]),
        "already the name of roles[0] \"Vmail1\"",
    );
    assert_error(
        &site(vec![
            vm("vmail1", 1, 1, &[]),
            json!({"name": "vmail1", "roletype": "vmail", "enabled": false}),
        ]),
        "already the name of roles[0]",
    );
}

#[test]
fn roletype_rules() {
    let mut e = vm("vmail1", 1, 1, &[]);
    e.as_object_mut().unwrap().remove("roletype");
    assert_error(
        &site(vec![e, vm("vmail2", 2, 1, &["a.ru"])]),
        "roles[0] \"vmail1\": field `roletype`: is required",
    );
    let mut e = vm("vmail1", 1, 1, &[]);
    e["roletype"] = json!("VMail");
    assert_error(&site(vec![e]), "must be written \"vmail\"");
    assert_error(
        &site(vec![json!({"name": "p", "roletype": 3})]),
        "field `roletype`: must be a string",
    );
}

#[test]
fn file_level_rules() {
    assert_error(
        &json!([]),
        "file: must be a JSON object with a `roles` list, found []",
    );
    assert_error(&json!({"site": "x"}), "file: field `roles`: is required");
    assert_error(&json!({"roles": {}}), "file: field `roles`: must be a list");
    assert_error(
        &json!({"roles": []}),
        "file: field `roles`: no enabled role with roletype \"vmail\"",
    );
    assert_error(
        &json!({"roles": [{"name": "p", "roletype": "sipproxy"}, {"name": "v", "roletype": "vmail", "enabled": false}]}),
        "no enabled role",
    );
    assert_error(
        &json!({"roles": [7]}),
        "roles[0]: must be an object, found 7",
    );
    let mut f = site(vec![vm("vmail1", 1, 1, &[])]);
    f["site"] = json!("a/b");
    assert_error(&f, "file: field `site`");
    f["site"] = json!("site-2.x");
    f["interfaces"]["bad"] = json!("300.1.1.1");
    f["interfaces"]["num"] = json!(1);
    let errs = errors(&f);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].contains("file: field `interfaces.bad`: must be an IP address"));
    assert!(errs[1].contains("file: field `interfaces.num`: must be a string"));
}

#[test]
fn syntax_and_empty() {
    let e = parse_with(
        "{\n \"roles\": [\n  {\"name\": }\n ]\n}",
        &mut FakeHost::default(),
    )
    .unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e.to_string()
            .starts_with("file: malformed JSON at line 3 column 12"),
        "{e}"
    );
    let e = parse_with("", &mut FakeHost::default()).unwrap_err();
    assert_eq!(e.to_string(), "file: the file is empty");
}

#[test]
fn repeated_keys_are_errors() {
    let text = r#"{"roles": [{"name": "vmail1", "roletype": "vmail", "iface": "lo", "group": 1,
                  "order": 1, "group": 2}], "site": "a", "site": "b"}"#;
    let e = parse_with(text, &mut FakeHost::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("roles[0] \"vmail1\": field `group`: the key appears more than once"),
        "{e}"
    );
    assert!(
        e.contains("file: field `site`: the key appears more than once"),
        "{e}"
    );
}

#[test]
fn unknown_role_keys() {
    let mut e = vm("vmail1", 1, 1, &[]);
    e["includ_domains"] = json!(["a.ru"]);
    e["description"] = json!("the first one");
    assert_error(
        &site(vec![e]),
        "field `includ_domains`: unknown key (did you mean `include_domains`?)",
    );
}

#[test]
fn iface_rules() {
    let mut e = vm("vmail1", 1, 1, &[]);
    e.as_object_mut().unwrap().remove("iface");
    assert_error(
        &site(vec![e]),
        "roles[0] \"vmail1\": field `iface`: is required",
    );
    let mut e = vm("vmail1", 1, 1, &[]);
    e["iface"] = json!("eth9");
    assert_error(&site(vec![e]), "field `iface`: \"eth9\" is neither an alias in `interfaces` nor a network interface of this host");
    let mut e = vm("vmail1", 1, 1, &[]);
    e["iface"] = json!("eth0");
    let cfg = parse(&site(vec![e])).unwrap();
    assert_eq!(cfg.select(None).unwrap().addr.to_string(), "192.0.2.10");
}

#[test]
fn group_and_order_rules() {
    for (bad, expect) in [
        (
            json!(0),
            "field `group`: must be an integer from 1 to 9999999, found 0",
        ),
        (json!(10000000), "found 10000000"),
        (json!(1.5), "found 1.5"),
        (json!("3"), "found \"3\""),
        (json!(-2), "found -2"),
        (json!(null), "found null"),
    ] {
        let mut e = vm("vmail1", 1, 1, &[]);
        e["group"] = bad;
        assert_error(&site(vec![e]), expect);
    }
    let mut e = vm("vmail1", 1, 1, &[]);
    e["group"] = json!(9999999);
    assert!(parse(&site(vec![e])).is_ok());
    let mut e = vm("vmail1", 1, 1, &[]);
    e["order"] = json!("1");
    assert_error(
        &site(vec![e]),
        "field `order`: must be an integer from 0 to 9999999",
    );
    let mut e = vm("vmail1", 1, 1, &[]);
    e.as_object_mut().unwrap().remove("order");
    assert_error(&site(vec![e]), "field `order`: is required");
    let mut e = vm("vmail1", 1, 1, &[]);
    e["enabled"] = json!("no");
    assert_error(&site(vec![e]), "field `enabled`: must be true or false");
}

#[test]
fn order_unique_within_group_only() {
    let mut b = vm("vmail2", 1, 2, &["a.ru"]);
    b["order"] = json!(1);
    b["iface"] = json!("a2");
    assert_error(
        &site(vec![vm("vmail1", 1, 1, &["a.ru"]), b]),
        "roles[1] \"vmail2\": field `order`: order 1 is already used in group 1 by roles[0] \"vmail1\"",
    );
    // the same order in two groups is fine
    assert!(parse(&site(vec![
        vm("vmail1", 1, 1, &["a.ru"]),
        vm("vmail2", 2, 1, &["b.ru"])
    ]))
    .is_ok());
}

#[test]
fn domain_rules() {
    for (d, expect) in [
        (
            "a..b",
            "\"a..b\" is not a valid domain name: has an empty label",
        ),
        (
            "-x.ru",
            "\"-x.ru\" is not a valid domain name: has a label that begins or ends with '-'",
        ),
        (
            "a_b.ru",
            "\"a_b.ru\" is not a valid domain name: contains '_'",
        ),
    ] {
        assert_error(
            &site(vec![vm("vmail1", 1, 1, &["ok.ru", d])]),
            &format!("field `include_domains[1]`: {expect}"),
        );
    }
    let long = "a".repeat(300);
    assert_error(
        &site(vec![vm("vmail1", 1, 1, &[&long])]),
        "300 characters long, at most 253",
    );
    let mut e = vm("vmail1", 1, 1, &[]);
    e["include_domains"] = json!("a.ru");
    assert_error(&site(vec![e]), "field `include_domains`: must be a list");
    let mut e = vm("vmail1", 1, 1, &[]);
    e["include_domains"] = json!([1]);
    assert_error(
        &site(vec![e]),
        "field `include_domains[0]`: must be a string",
    );
    // repeats (after normalization) are dropped
    let cfg = parse(&site(vec![vm(
        "vmail1",
        1,
        1,
        &["b.ru", "A.ru", "a.RU.", "b.ru"],
    )]))
    .unwrap();
    assert_eq!(cfg.select(None).unwrap().include_domains, ["a.ru", "b.ru"]);
}

#[test]
fn cross_entry_domain_rules() {
    assert_error(
        &site(vec![vm("vmail1", 1, 1, &["a.ru", "b.ru"]), vm("vmail2", 1, 2, &["a.ru"])]),
        "roles[1] \"vmail2\": field `include_domains`: all instances of group 1 must list the same include_domains, but roles[0] \"vmail1\" lists [\"a.ru\",\"b.ru\"]",
    );
    // same set in another spelling and order is fine
    assert!(parse(&site(vec![
        vm("vmail1", 1, 1, &["a.ru", "b.ru"]),
        vm("vmail2", 1, 2, &["B.RU.", "a.ru"])
    ]))
    .is_ok());
    assert_error(
        &site(vec![vm("vmail1", 1, 1, &["a.ru"]), vm("vmail2", 2, 1, &["b.ru", "A.ru"])]),
        "roles[1] \"vmail2\": field `include_domains`: \"a.ru\" is also listed by group 1 (roles[0] \"vmail1\")",
    );
    assert_error(
        &site(vec![vm("vmail1", 1, 1, &[]), vm("vmail2", 2, 1, &[])]),
        "roles[1] \"vmail2\": field `include_domains`: group 2 has an empty include_domains, and so has group 1 (roles[0] \"vmail1\"); only one default group is allowed",
    );
    // nested domains in different groups are the point of the partition
    assert!(parse(&site(vec![
        vm("vmail1", 1, 1, &["a.ru"]),
        vm("vmail2", 2, 1, &["x.a.ru"])
    ]))
    .is_ok());
}

#[test]
fn socket_clashes() {
    let same = |a: Value, b: Value| errors(&site(vec![a, b]));
    let mut b = vm("vmail2", 2, 1, &["b.ru"]);
    b["ext"] = vm("vmail1", 1, 1, &[])["ext"].clone();
    let errs = same(vm("vmail1", 1, 1, &["a.ru"]), b.clone());
    assert!(errs.iter().any(|e| e.contains("roles[1] \"vmail2\": field `ext.sip_port`: SIP 127.0.0.1:5071/udp is also used by roles[0] \"vmail1\"")), "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("field `ext.http_port`: HTTP 127.0.0.1:8091/tcp")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("field `ext.rtp_port_min`: RTP 127.0.0.1:21100-21199/udp")),
        "{errs:#?}"
    );
    // on another address the same ports are fine
    b["iface"] = json!("a2");
    assert!(parse(&site(vec![vm("vmail1", 1, 1, &["a.ru"]), b.clone()])).is_ok());
    // SIP/UDP of one inside the RTP range of the other
    let mut c = vm("vmail2", 2, 1, &["b.ru"]);
    c["ext"]["sip_port"] = json!(21150);
    let errs = same(vm("vmail1", 1, 1, &["a.ru"]), c);
    assert!(errs.iter().any(|e| e.contains("SIP 127.0.0.1:21150/udp is also used by roles[0] \"vmail1\" (RTP 127.0.0.1:21100-21199/udp)")), "{errs:#?}");
    // a wildcard address clashes with every address of its family
    let mut w = b.clone();
    w["iface"] = json!("any");
    let mut f = site(vec![vm("vmail1", 1, 1, &["a.ru"]), w]);
    f["interfaces"]["any"] = json!("0.0.0.0");
    assert!(errors(&f)
        .iter()
        .any(|e| e.contains("SIP 0.0.0.0:5071/udp")));
    // two host interface names (not loopback) may be on two hosts: no clash
    let mut x = vm("vmail1", 1, 1, &["a.ru"]);
    x["iface"] = json!("eth0");
    let mut y = b.clone();
    y["iface"] = json!("eth0");
    assert!(parse(&site(vec![x.clone(), y])).is_ok());
    // but `lo` is always this host
    x["iface"] = json!("lo");
    let mut y = b;
    y["iface"] = json!("lo");
    assert!(parse(&site(vec![x, y])).is_err());
}

#[test]
fn disabled_entries_are_not_validated() {
    let cfg = parse(&site(vec![
        vm("vmail1", 1, 1, &[]),
        json!({"name": "bad-name", "roletype": "vmail", "enabled": false, "group": 0,
               "include_domains": ["a..b"], "ext": {"nope": 1}}),
    ]))
    .unwrap();
    assert_eq!(cfg.roles.len(), 2);
}

#[test]
fn all_errors_at_once() {
    let mut a = vm("1bad", 0, 1, &["a..b"]);
    a["ext"] = json!([{"sip_port": 0}, {"colour": "red"}]);
    let errs = errors(&site(vec![
        a,
        json!({"name": "x"}),
        vm("vmail2", 2, 1, &[]),
    ]));
    for expect in [
        "roles[0] \"1bad\": field `name`",
        "roles[0] \"1bad\": field `group`",
        "roles[0] \"1bad\": field `include_domains[0]`",
        "roles[0] \"1bad\": field `ext[0].sip_port`",
        "roles[0] \"1bad\": field `ext[1].colour`: unknown key",
        "roles[1] \"x\": field `roletype`: is required",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(expect)),
            "{expect} not in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 6, "{errs:#?}");
}

#[test]
fn sites_section() {
    let mut f = site(vec![vm("vmail1", 1, 1, &[])]);
    f["sites"] = json!({
        "site2": {"api": "http://10.0.2.10:8080/", "token": "t0ken-for-site2"},
        "site3": {"api": ["https://vm1.site3.example.ru:8443", "https://vm2.site3.example.ru:8443"],
                  "token": "t3", "domains": ["Example.COM", "b.example.org."]}
    });
    let cfg = parse(&f).unwrap();
    let s2 = &cfg.sites["site2"];
    assert_eq!(s2.api, vec!["http://10.0.2.10:8080".to_owned()]);
    assert_eq!(s2.token, "t0ken-for-site2");
    assert!(s2.domains.is_none() && s2.serves("anything.example"));
    let s3 = &cfg.sites["site3"];
    assert_eq!(s3.api.len(), 2);
    assert_eq!(
        s3.domains.as_deref(),
        Some(&["b.example.org".to_owned(), "example.com".to_owned()][..])
    );
    assert!(s3.serves("example.com") && s3.serves("pbx.example.com"));
    assert!(!s3.serves("badexample.com") && !s3.serves("example.org"));
    // the token is masked wherever the file is shown
    assert_eq!(cfg.raw_redacted()["sites"]["site2"]["token"], "********");
    assert!(!format!("{s2:?}").contains("t0ken-for-site2"));
}

#[test]
fn sites_section_errors_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "from-a-file\n").unwrap();
    let no_cert = dir.path().join("ca.pem");
    std::fs::write(&no_cert, "not a certificate").unwrap();
    let mut f = site(vec![vm("vmail1", 1, 1, &[])]);
    f["sites"] = json!({"ok": {"api": "http://10.0.0.1:8080", "token_file": token_file}});
    assert_eq!(parse(&f).unwrap().sites["ok"].token, "from-a-file");
    f["sites"] = json!({
        "site1": {"api": "http://10.0.0.1:8080", "token": "t"},
        "s2": {"token": "t"},
        "s3": {"api": "ftp://x", "token": "t"},
        "s4": {"api": ["http://10.0.0.9:8080", "http://10.0.0.9:8080/"], "token": "t"},
        "s5": {"api": "http://10.0.0.9:8080", "token": "t"},
        "s6": {"api": "http://10.0.0.6:8080"},
        "s7": {"api": "http://10.0.0.7:8080", "token": "a", "token_file": "/x"},
        "s8": {"api": "http://10.0.0.8:8080", "token_file": "/nonexistent/token"},
        "s9": {"siteshare": "/mnt/site9", "token": "t", "api": "http://10.0.0.19:8080"},
        "s 10": {"api": "http://10.0.0.10:8080", "token": "t"},
        "s11": {"api": "http://10.0.0.11:8080", "tokn": "t", "token": "t"},
        "s12": {"api": "http://10.0.0.12:8080", "token": "has space"},
        "s13": {"api": "http://10.0.0.13:8080", "token": "t", "ca_file": no_cert},
        "s14": {"api": "http://10.0.0.14:8080", "token": "t", "domains": ["bad..domain"]},
        "s15": {"api": [], "token": "t"},
        "s16": {"api": "http://u:p@10.0.0.16:8080", "token": "t"}
    });
    let errs = errors(&f);
    for expect in [
        "file: field `sites.site1`: is this site itself",
        "file: field `sites.s2.api`: is required",
        "file: field `sites.s3.api`: must be an http:// or https:// URL",
        "file: field `sites.s4.api[1]`: http://10.0.0.9:8080 is given more than once (also at sites.s4.api[0])",
        "file: field `sites.s5.api`: http://10.0.0.9:8080 is given more than once (also at sites.s4.api[0])",
        "file: field `sites.s6`: must hold exactly one of `token` and `token_file`",
        "file: field `sites.s7`: must hold exactly one of `token` and `token_file`",
        "file: field `sites.s8.token_file`: cannot read /nonexistent/token",
        "file: field `sites.s9.siteshare`: another site's SiteShare is not read directly",
        "name its vmail HTTP API with `api`",
        "file: field `sites.s 10`: must be 1 to 64 characters",
        "file: field `sites.s11.tokn`: unknown key (did you mean `token`?)",
        "file: field `sites.s12.token`: must be a non-empty string of visible ASCII",
        "file: field `sites.s13.ca_file`: CA file",
        "file: field `sites.s14.domains[0]`: \"bad..domain\" is not a valid domain name",
        "file: field `sites.s15.api`: must be a URL or a non-empty list of URLs",
        "file: field `sites.s16.api`: must be an http:// or https:// URL",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(expect)),
            "{expect} not in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 16, "{errs:#?}");
}

#[test]
fn redaction_masks_tokens_and_pins() {
    let mut a = vm("vmail1", 1, 1, &[]);
    a["ext"] = json!([{"api_tokens": ["s3cret"]}, {"demo_mailboxes": [{"user": "1", "domain": "a.ru", "pin": "1234"}]}]);
    let cfg = parse(&site(vec![a])).unwrap();
    let red = cfg.raw_redacted().to_string();
    assert!(!red.contains("s3cret") && !red.contains("1234"), "{red}");
    assert!(cfg.raw.to_string().contains("s3cret"));
}

#[test]
fn load_reports_missing_and_non_utf8_files() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::load(&dir.path().join("nope.json"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("file: cannot read ") && e.contains("nope.json"),
        "{e}"
    );
    let p = dir.path().join("bin.json");
    std::fs::write(&p, b"{\"roles\": \xff}").unwrap();
    let e = Config::load(&p).unwrap_err().to_string();
    assert!(e.contains("not UTF-8 text (bad byte at offset 10)"), "{e}");
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u32..10_000_001).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9.\\-]{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "vmail", "lo", "a1", "udp", "tcp", "en", "*98", "1234", "a.ru", "sip:x.ru"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "name",
                    "roletype",
                    "iface",
                    "ext",
                    "enabled",
                    "group",
                    "order",
                    "include_domains",
                    "sip_port",
                    "rtp_port_min",
                    "rtp_port_max",
                    "http_port",
                    "sip_transports",
                    "language",
                    "access_numbers",
                    "demo_mailboxes",
                    "user",
                    "domain",
                    "pin",
                    "roles",
                    "interfaces",
                    "sites",
                    "site",
                    "api",
                    "siteshare",
                    "mwi_notify",
                    "timezone",
                    "zz",
                ])
                .prop_map(String::from),
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_values_never_panic(v in json_value()) {
        let _ = parse(&v);
        let _ = parse(&json!({"interfaces": {"a1": "127.0.0.1"}, "roles": [v]}));
    }

    #[test]
    fn random_role_entries_never_panic(roles in prop::collection::vec(json_value(), 0..4)) {
        let mut f = site(roles);
        f["roles"].as_array_mut().unwrap().push(vm("vmail1", 1, 1, &[]));
        if let Err(e) = parse(&f) {
            prop_assert!(!e.is_empty());
            for err in e.iter() {
                prop_assert!(!err.to_string().contains('\n'));
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_with(&text, &mut FakeHost::default());
    }
}
