//! The site file as `vmail config check` loads it: UTF-8 text, parse and
//! validate, then the routing table, the instance selection, the redacted
//! copy served by the API, and every error message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmail::config::Config;
use vmail::routing::RoutingTable;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::parse(text) {
        Ok(c) => c,
        Err(errors) => {
            assert!(!errors.is_empty(), "an invalid file without any error");
            let _ = errors.to_string();
            return;
        }
    };
    let groups = config.groups();
    if let Ok(table) = RoutingTable::new(
        groups
            .iter()
            .map(|(g, info)| (*g, info.include_domains.iter().map(String::as_str))),
    ) {
        for (g, info) in &groups {
            for d in info.include_domains {
                let owner = table.owner(d).map(|o| o.group());
                assert_eq!(owner, Some(*g), "{d} is not routed to its group");
            }
        }
        let _ = table.owner("example.com");
    }
    match config.select(None) {
        Ok(role) => {
            let _ = (role.sip_addr(), role.http_addr());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    for role in config.vmail_roles() {
        assert!(config.select(Some(&role.name)).is_ok());
    }
    let _ = config.raw_redacted().to_string();
});
