//! The selection rules of SPEC §5, in order.

use rsipstack::sip::typed::{self, DiversionReason, HistoryInfoEntry};
use rsipstack::sip::uri::ParamsExt;
use rsipstack::sip::{parse_uri, HeadersExt, Host, Request, Scheme, Uri};

use super::model::{Cause, MailboxAddr, Source, Target, TargetError};
use super::names::{is_valid_user, normalize_domain, percent_decode, MAX_USER_LEN};

/// Longest escaped user part decoded (every character escaped).
const MAX_ESCAPED_USER: usize = 3 * MAX_USER_LEN;

/// Longest RFC 4458 `target=` value decoded.
const MAX_TARGET_LEN: usize = 1024;

/// Most History-Info entries looked at.
const MAX_HISTORY_ENTRIES: usize = 64;

/// Decide which mailbox `req` (an INVITE) is for, or whether it is a call
/// to an access number (retrieval). `access_numbers` are compared with the
/// percent-decoded user, ignoring ASCII case.
///
/// Rules 1–3 (a diverted call) win over rule 4: a call diverted to the
/// access number is a deposit for the diverting user. A header that does
/// not parse, or names no user, is skipped (logged at debug); a user or
/// domain that is present but invalid is an error, never skipped.
///
/// When the chosen URI has an IP address (or is a `tel:` URI), the domain
/// is the To host, else the Request-URI host, whichever is a name first.
pub fn select(req: &Request, access_numbers: &[String]) -> Result<Target, TargetError> {
    let ctx = Ctx::new(req);
    if let Some(t) = ctx.rfc4458()? {
        return Ok(t);
    }
    if let Some(t) = ctx.history_info()? {
        return Ok(t);
    }
    if let Some(t) = ctx.diversion()? {
        return Ok(t);
    }
    if let Some(raw) = uri_user(&req.uri) {
        return ctx.called_user(&req.uri, raw, Source::RequestUri, access_numbers);
    }
    let to = ctx.to.as_ref().ok_or(TargetError::NoUser)?;
    let raw = uri_user(to).ok_or(TargetError::NoUser)?;
    ctx.called_user(to, raw, Source::To, access_numbers)
}

struct Ctx<'r> {
    req: &'r Request,
    /// The To URI, when the header is there and parses.
    to: Option<Uri>,
}

impl<'r> Ctx<'r> {
    fn new(req: &'r Request) -> Self {
        let to = req
            .to_header()
            .ok()
            .and_then(|h| typed::To::parse(h.value()).ok())
            .map(|t| t.uri);
        Ctx { req, to }
    }

    /// Rule 1: `sip:voicemail@vm.example.com;target=<escaped URI>;cause=486`.
    fn rfc4458(&self) -> Result<Option<Target>, TargetError> {
        let Some(raw) = self.req.uri.other_param("target") else {
            return Ok(None);
        };
        let cause = cause_param(&self.req.uri);
        self.target_param(raw, cause, Source::Rfc4458).map(Some)
    }

    /// A `target=` value: an escaped URI that must name a user.
    fn target_param(&self, raw: &str, cause: Cause, via: Source) -> Result<Target, TargetError> {
        let uri = percent_decode(raw, MAX_TARGET_LEN)
            .and_then(|t| parse_uri(&t).ok())
            .ok_or(TargetError::InvalidTarget)?;
        let user = uri_user(&uri).ok_or(TargetError::InvalidTarget)?;
        self.deposit(&uri, user, cause, via)
    }

    /// Rule 2: the user whose call was retargeted to voicemail. The
    /// voicemail hi-entry is the last one (by index) whose URI carries
    /// `cause=` (RFC 4458 in RFC 7044 §10); the user is the entry it names
    /// with `mp=`/`rc=`, else its parent index, else the entry before it,
    /// followed up through `rc=` links (a contact of the same user) to the
    /// address of record.
    fn history_info(&self) -> Result<Option<Target>, TargetError> {
        let mut entries: Vec<HistoryInfoEntry> = Vec::new();
        for h in self.req.history_info_headers() {
            match typed::HistoryInfo::parse(h.value()) {
                Ok(hi) => entries.extend(hi.entries),
                Err(e) => tracing::debug!(error = %e, "ignoring unparseable History-Info"),
            }
        }
        entries.truncate(MAX_HISTORY_ENTRIES);
        let mut hi = typed::HistoryInfo::from_entries(entries);
        hi.sort();
        let entries = hi.entries;

        let Some(vm_pos) = entries
            .iter()
            .rposition(|e| e.uri.other_param("cause").is_some())
        else {
            return Ok(None);
        };
        let Some(vm) = entries.get(vm_pos) else {
            return Ok(None);
        };
        let cause = cause_param(&vm.uri);
        if let Some(raw) = vm.uri.other_param("target") {
            return self.target_param(raw, cause, Source::HistoryInfo).map(Some);
        }

        let find = |index: &str| entries.iter().position(|e| e.index.trim() == index.trim());
        let pointed = vm.mp.as_deref().or(vm.rc.as_deref()).and_then(find);
        let parent = vm.index.trim().rsplit_once('.').and_then(|(p, _)| find(p));
        let Some(mut pos) = pointed
            .or(parent)
            .or_else(|| vm_pos.checked_sub(1))
            .filter(|&p| p != vm_pos)
        else {
            return Ok(None);
        };
        // Bounded: each step moves to another entry.
        for _ in 0..entries.len() {
            match entries
                .get(pos)
                .and_then(|e| e.rc.as_deref())
                .and_then(find)
            {
                Some(up) if up != pos && up != vm_pos => pos = up,
                _ => break,
            }
        }
        let Some(entry) = entries.get(pos) else {
            return Ok(None);
        };
        match uri_user(&entry.uri) {
            Some(user) => self
                .deposit(&entry.uri, user, cause, Source::HistoryInfo)
                .map(Some),
            None => Ok(None),
        }
    }

    /// Rule 3: the first entry of the top-most Diversion header.
    fn diversion(&self) -> Result<Option<Target>, TargetError> {
        let Some(top) = self.req.diversion_headers().into_iter().next() else {
            return Ok(None);
        };
        let diversion = match typed::Diversion::parse(top.value()) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring unparseable Diversion");
                return Ok(None);
            }
        };
        let Some(entry) = diversion.entries.first() else {
            return Ok(None);
        };
        let cause = match entry.reason {
            Some(DiversionReason::UserBusy) => Cause::Busy,
            Some(_) => Cause::Unavailable,
            None => Cause::Unknown,
        };
        match uri_user(&entry.uri) {
            Some(user) => self
                .deposit(&entry.uri, user, cause, Source::Diversion)
                .map(Some),
            None => Ok(None),
        }
    }

    /// Rules 4 and 5: the called user, or retrieval for an access number.
    fn called_user(
        &self,
        uri: &Uri,
        raw: &str,
        via: Source,
        access_numbers: &[String],
    ) -> Result<Target, TargetError> {
        let user = percent_decode(raw, MAX_ESCAPED_USER).ok_or(TargetError::InvalidUser { via })?;
        if access_numbers.iter().any(|a| a.eq_ignore_ascii_case(&user)) {
            return self.retrieval();
        }
        self.deposit_decoded(uri, user, Cause::Unknown, via)
    }

    fn deposit(
        &self,
        uri: &Uri,
        raw_user: &str,
        cause: Cause,
        via: Source,
    ) -> Result<Target, TargetError> {
        let user =
            percent_decode(raw_user, MAX_ESCAPED_USER).ok_or(TargetError::InvalidUser { via })?;
        self.deposit_decoded(uri, user, cause, via)
    }

    fn deposit_decoded(
        &self,
        uri: &Uri,
        user: String,
        cause: Cause,
        via: Source,
    ) -> Result<Target, TargetError> {
        if !is_valid_user(&user) {
            return Err(TargetError::InvalidUser { via });
        }
        let domain = match domain_name(uri) {
            Some(name) => normalize_domain(name).ok_or(TargetError::InvalidDomain { via })?,
            None => self.fallback_domain(via)?,
        };
        Ok(Target::Deposit {
            mailbox: MailboxAddr { user, domain },
            cause,
            via,
        })
    }

    /// The To host, else the Request-URI host, whichever is a name first.
    fn fallback_domain(&self, via: Source) -> Result<String, TargetError> {
        self.to
            .as_ref()
            .and_then(domain_name)
            .or_else(|| domain_name(&self.req.uri))
            .ok_or(TargetError::NoDomainName { via })
            .and_then(|name| normalize_domain(name).ok_or(TargetError::InvalidDomain { via }))
    }

    fn retrieval(&self) -> Result<Target, TargetError> {
        let domain = match domain_name(&self.req.uri) {
            Some(name) => normalize_domain(name).ok_or(TargetError::InvalidDomain {
                via: Source::RequestUri,
            })?,
            None => self.fallback_domain(Source::RequestUri)?,
        };
        let from_user = self
            .req
            .from_header()
            .ok()
            .and_then(|h| typed::From::parse(h.value()).ok())
            .filter(|f| match domain_name(&f.uri) {
                Some(name) => normalize_domain(name).as_deref() == Some(domain.as_str()),
                None => true,
            })
            .and_then(|f| uri_user(&f.uri).and_then(|u| percent_decode(u, MAX_ESCAPED_USER)))
            .filter(|u| is_valid_user(u));
        Ok(Target::Retrieval { domain, from_user })
    }
}

fn is_tel(uri: &Uri) -> bool {
    matches!(&uri.scheme, Some(Scheme::Other(s)) if s.eq_ignore_ascii_case("tel"))
}

/// The (still escaped) user part; for a `tel:` URI, the number.
fn uri_user(uri: &Uri) -> Option<&str> {
    let user = if is_tel(uri) {
        match uri.host() {
            Host::Domain(d) => Some(d.0.as_str()),
            Host::IpAddr(_) => None,
        }
    } else {
        uri.user()
    };
    user.filter(|u| !u.is_empty())
}

/// The host when it is a name (not an IP address, not a `tel:` number).
fn domain_name(uri: &Uri) -> Option<&str> {
    match uri.host() {
        Host::Domain(d) if !is_tel(uri) => Some(d.0.as_str()),
        _ => None,
    }
}

fn cause_param(uri: &Uri) -> Cause {
    uri.other_param("cause")
        .map_or(Cause::Unknown, Cause::from_code)
}
