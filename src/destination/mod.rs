//! Which mailbox a call is for (SPEC §5): read from the INVITE, first that
//! applies:
//!
//! 1. RFC 4458 `target=` parameter of the Request-URI (`cause=` picks the
//!    greeting);
//! 2. History-Info (RFC 7044): the user whose call was retargeted to
//!    voicemail — the hi-entry that the `cause=`-marked voicemail entry was
//!    mapped from;
//! 3. Diversion (RFC 5806): the first entry of the top-most header, i.e. the
//!    last diverting user;
//! 4. the Request-URI user — or retrieval when it is an access number;
//! 5. the To user (retrieval, too, when it is an access number).
//!
//! User and domain are percent-decoded and validated here, before they
//! leave the module: whatever a request carries, a [`MailboxAddr`] is safe
//! to use as two path components.

mod model;
mod names;
mod select;

pub use model::{Cause, MailboxAddr, Source, Target, TargetError};
pub use select::select;

#[cfg(test)]
mod tests;
