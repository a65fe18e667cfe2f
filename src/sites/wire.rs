//! What crosses between sites, besides the regular message routes of the
//! HTTP API: the site-to-site header, a mailbox's local messages, its
//! counts and the change notice.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::{Counts, MessageMeta};

/// Marks a request from a peer site (its value: that site's name). The
/// answer covers this site's own messages only, and a message that is not
/// here is not looked for at other sites: a site-to-site request is never
/// passed on.
pub const SITE_HEADER: &str = "x-vmail-site";

/// A mailbox's messages kept at one site, every folder.
#[derive(Debug, Serialize, Deserialize)]
pub struct Messages {
    /// The site answering.
    pub site: String,
    /// Its messages (stored metadata), by folder then id.
    pub messages: Vec<MessageMeta>,
}

/// A mailbox's message counts at one site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WireCounts {
    /// Messages in `INBOX`.
    pub new: usize,
    /// Messages in every other folder.
    pub old: usize,
    /// Urgent messages in `INBOX`.
    pub urgent_new: usize,
    /// Urgent messages in the other folders.
    pub urgent_old: usize,
}

impl From<Counts> for WireCounts {
    fn from(c: Counts) -> Self {
        WireCounts {
            new: c.new,
            old: c.old,
            urgent_new: c.urgent_new,
            urgent_old: c.urgent_old,
        }
    }
}

impl From<WireCounts> for Counts {
    fn from(c: WireCounts) -> Self {
        Counts {
            new: c.new,
            old: c.old,
            urgent_new: c.urgent_new,
            urgent_old: c.urgent_old,
        }
    }
}

/// A site's notice that a mailbox changed there.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// The site where it changed.
    pub site: String,
    /// The mailbox's domain.
    pub domain: String,
    /// The mailbox's user part.
    pub user: String,
    /// The mailbox's counts at that site after the change.
    pub counts: WireCounts,
}
