//! What a deposit call will say: the greeting by SPEC §6 precedence
//! (temporary > busy/unavailable by cause > the default prompt that speaks
//! the mailbox number), the other prompts of the flow, and whether the
//! mailbox can take a message at all.

use tracing::warn;

use crate::call::{Clip, DepositLimits, DepositPrompts, Opening};
use crate::destination::Cause;
use crate::prompts::{GreetingCache, PromptSet};
use crate::store::{Counts, FsStore, GreetingKind, MailboxId, MailboxSettings, StoreError};

/// The inputs of a deposit call, fixed when the INVITE is accepted.
#[derive(Debug, Clone)]
pub struct DepositPlan {
    /// Prompt language (mailbox, else instance setting).
    pub language: String,
    /// Why the call was diverted.
    pub cause: Cause,
    /// Limits of the recording.
    pub limits: DepositLimits,
    /// `max_messages` of the instance (a mailbox's own setting overrides it).
    pub max_messages: u32,
    /// The mailbox does not exist yet (`auto_create_mailboxes`): its first
    /// stored message creates it with these settings.
    pub create: Option<MailboxSettings>,
}

impl DepositPlan {
    /// Reads the mailbox state and greetings (blocking file I/O).
    pub fn prepare(
        &self,
        store: &FsStore,
        prompts: &PromptSet,
        greetings: &GreetingCache,
        mailbox: &MailboxId,
    ) -> (DepositPrompts, Opening) {
        let p = |name: &str| -> Vec<Clip> {
            match prompts.get(&self.language, name) {
                Some(prompt) => vec![prompt],
                None => {
                    warn!(prompt = name, "prompt missing");
                    Vec::new()
                }
            }
        };
        let mut out = DepositPrompts {
            greeting: Vec::new(),
            beep: p("beep"),
            saved: p("message-saved"),
            goodbye: p("goodbye"),
            mailbox_full: p("mailbox-full"),
            max_length: p("max-length"),
            cannot_take: p("cannot-take"),
            review: Vec::new(),
            urgent_on: Vec::new(),
            urgent_off: Vec::new(),
            invalid_option: Vec::new(),
            transferring: Vec::new(),
            transfer_failed: Vec::new(),
        };
        if self.limits.review {
            out.review = p("review-message");
            out.urgent_on = p("marked-urgent");
            out.urgent_off = p("urgent-removed");
            out.invalid_option = p("invalid-option");
        }
        if self.limits.operator {
            out.transferring = p("transferring");
            out.transfer_failed = p("transfer-failed");
        }
        // A mailbox still to be created by its first message is empty and
        // has no greetings of its own.
        let mut exists = true;
        let counts = match store.counts(mailbox) {
            Err(StoreError::NotFound { .. }) if self.create.is_some() => {
                exists = false;
                Ok(Counts::default())
            }
            other => other,
        };
        // The mailbox's own limit, when it has one, overrides the instance's.
        let max_messages = match store.mailbox(mailbox) {
            Ok(Some(m)) => m.settings.max_messages.unwrap_or(self.max_messages),
            _ => self.max_messages,
        };
        let opening = match counts {
            Ok(c) if (c.new + c.old) as u64 >= u64::from(max_messages) => Opening::MailboxFull,
            Ok(_) => Opening::Record,
            Err(e) => {
                warn!("cannot read the mailbox: {e}");
                Opening::StoreUnavailable
            }
        };
        if opening != Opening::Record {
            return (out, opening);
        }
        let by_cause = match self.cause {
            Cause::Busy => GreetingKind::Busy,
            _ => GreetingKind::Unavailable,
        };
        let own = |kind| {
            exists
                .then(|| load_greeting(store, greetings, mailbox, kind))
                .flatten()
        };
        let custom = [GreetingKind::Temporary, by_cause]
            .into_iter()
            .find_map(own);
        out.greeting = match custom {
            Some(clip) => vec![clip],
            None => {
                // "The person at extension <name or digits> is busy / is not available.
                //  Please leave your message after the tone."
                let mut g = p("greeting-intro");
                match own(GreetingKind::Name) {
                    Some(name) => g.push(name),
                    None => g.extend(prompts.digits(&self.language, mailbox.user())),
                }
                g.extend(p(match self.cause {
                    Cause::Busy => "is-busy",
                    _ => "is-unavailable",
                }));
                g.extend(p("leave-message"));
                g
            }
        };
        (out, opening)
    }
}

/// The mailbox's greeting of `kind`, decoded once per version of its file
/// (see [`GreetingCache`]).
fn load_greeting(
    store: &FsStore,
    greetings: &GreetingCache,
    mailbox: &MailboxId,
    kind: GreetingKind,
) -> Option<Clip> {
    match store.greeting_path(mailbox, kind) {
        Ok(Some(path)) => greetings.load(&path),
        Ok(None) => None,
        Err(e) => {
            warn!("greeting lookup failed: {e}");
            None
        }
    }
}
