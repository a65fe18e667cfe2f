//! The site configuration (SPEC §2): one JSON file describes every role
//! instance of a site; vmail validates its own entries (`roletype:
//! "vmail"`) and leaves the others alone.
//!
//! [`Config::load`] / [`Config::parse`] read and validate a file and
//! report *every* broken rule at once as [`ConfigErrors`], each naming the
//! entry, the field and the rule. `config/README.md` documents every key.
//!
//! ```
//! let cfg = vmail::config::Config::parse(r#"{
//!   "interfaces": { "lo0": "127.0.0.1" },
//!   "roles": [ { "name": "vmail1", "roletype": "vmail", "iface": "lo0",
//!                "group": 1, "order": 1, "include_domains": ["Example.RU."] } ]
//! }"#).unwrap();
//! let me = cfg.select(None).unwrap();
//! assert_eq!(me.include_domains, ["example.ru"]);
//! assert_eq!(me.sip_addr().to_string(), "127.0.0.1:5060");
//! ```

mod checks;
mod domain;
mod error;
mod ext;
mod iface;
mod json;
mod model;
mod retention;
mod role;
mod timezone;
pub mod tls;
mod value;

pub use domain::{normalize_domain, DomainError, MAX_DOMAIN_LEN, MAX_LABEL_LEN};
pub use error::{ConfigError, ConfigErrors, Entry, Rule, SelectError};
pub use ext::{
    parse_timezone, Coordination, DemoMailbox, Ext, OperatorUris, SipTransport, Smtp, SmtpTls,
    Webhook, WebhookSecret, WEBHOOK_EVENTS,
};
pub use model::{Config, GroupInfo, PeerSite, DEFAULT_SITE};
pub use retention::{DomainRetention, Retention, RetentionDays, MAX_RETENTION_DAYS};
pub use role::{Role, VmailRole, MAX_GROUP, MAX_ORDER};
pub use timezone::TimeZone;

#[cfg(test)]
mod tests;
