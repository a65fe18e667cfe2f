//! E-mail of a new message: text from templates, the WAV attached, sent
//! with lettre over SMTP.

use std::time::{Duration, SystemTime};

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::config::{Smtp, SmtpTls, TimeZone};
use crate::store::{parse_rfc3339, MailboxId, MessageMeta};

/// An SMTP transaction (connect, TLS, AUTH, DATA) must finish within this.
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// What the templates can say.
#[derive(Debug, Clone)]
pub struct Fields {
    /// `user@domain` of the mailbox.
    pub mailbox: String,
    /// The caller: name and URI.
    pub caller: String,
    /// The caller's URI.
    pub caller_uri: String,
    /// The caller's display name (empty when none).
    pub caller_name: String,
    /// When the message arrived, in the mailbox's time zone.
    pub time: String,
    /// Length, `m:ss`.
    pub duration: String,
    /// The link of `ext.email_link_template` (empty when none).
    pub link: String,
    /// Whether the message is urgent.
    pub urgent: bool,
    /// The message id.
    pub id: String,
}

/// `m:ss` (or `h:mm:ss`).
pub fn duration_text(ms: u64) -> String {
    let s = (ms + 500) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// `received` (RFC 3339) in `zone`, with the offset in force then:
/// `2026-12-07 17:03 +03:00`.
pub fn time_text(received: &str, zone: &TimeZone) -> String {
    let Some(t) = parse_rfc3339(received) else {
        return received.to_string();
    };
    zone.local(OffsetDateTime::from(t))
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] [offset_hour sign:mandatory]:[offset_minute]"
        ))
        .unwrap_or_else(|_| received.to_string())
}

/// `ext.email_link_template` with `{domain}`, `{user}`, `{id}` replaced.
pub fn link(template: &str, mailbox: &MailboxId, id: &str) -> String {
    template
        .replace("{domain}", mailbox.domain())
        .replace("{user}", mailbox.user())
        .replace("{id}", id)
}

impl Fields {
    /// The fields of `meta` in `mailbox`.
    pub fn new(
        mailbox: &MailboxId,
        meta: &MessageMeta,
        zone: &TimeZone,
        link_template: Option<&str>,
    ) -> Fields {
        let name = meta
            .caller_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("");
        let uri = if meta.caller_uri.is_empty() {
            "unknown"
        } else {
            meta.caller_uri.as_str()
        };
        let caller = if name.is_empty() {
            uri.to_string()
        } else {
            format!("{name} <{uri}>")
        };
        Fields {
            mailbox: mailbox.to_string(),
            caller,
            caller_uri: uri.to_string(),
            caller_name: name.to_string(),
            time: time_text(&meta.received, zone),
            duration: duration_text(meta.duration_ms),
            link: link_template.map_or_else(String::new, |t| link(t, mailbox, &meta.id)),
            urgent: meta.urgent,
            id: meta.id.clone(),
        }
    }

    /// `template` with every `{name}` of these fields replaced.
    pub fn fill(&self, template: &str) -> String {
        template
            .replace("{mailbox}", &self.mailbox)
            .replace("{caller_uri}", &self.caller_uri)
            .replace("{caller_name}", &self.caller_name)
            .replace("{caller}", &self.caller)
            .replace("{time}", &self.time)
            .replace("{duration}", &self.duration)
            .replace("{link}", &self.link)
            .replace("{urgent}", if self.urgent { "urgent" } else { "" })
            .replace("{id}", &self.id)
    }
}

/// The default texts of a language (`ru`, else English).
struct Texts {
    subject: &'static str,
    urgent: &'static str,
    body: &'static str,
    listen: &'static str,
}

fn texts(language: &str) -> Texts {
    if language == "ru" || language.starts_with("ru-") || language.starts_with("ru_") {
        Texts {
            subject: "Новое голосовое сообщение от {caller} ({duration})",
            urgent: "[Срочно] ",
            body: "В ящике {mailbox} новое голосовое сообщение.\n\n\
                   От: {caller}\nПолучено: {time}\nДлительность: {duration}\n",
            listen: "Прослушать: {link}\n",
        }
    } else {
        Texts {
            subject: "New voicemail from {caller} ({duration})",
            urgent: "[Urgent] ",
            body: "There is a new voicemail message in mailbox {mailbox}.\n\n\
                   From: {caller}\nReceived: {time}\nDuration: {duration}\n",
            listen: "Listen: {link}\n",
        }
    }
}

/// Subject and body: the configured templates, else the defaults of
/// `language`. An urgent message's default subject is flagged.
pub fn render(
    fields: &Fields,
    language: &str,
    subject_template: Option<&str>,
    body_template: Option<&str>,
) -> (String, String) {
    let t = texts(language);
    let subject = match subject_template {
        Some(s) => fields.fill(s),
        None => {
            let s = fields.fill(t.subject);
            if fields.urgent {
                format!("{}{s}", t.urgent)
            } else {
                s
            }
        }
    };
    let body = match body_template {
        Some(b) => fields.fill(b),
        None => {
            let mut b = fields.fill(t.body);
            if fields.urgent {
                b.insert_str(0, &format!("{}\n", t.urgent.trim()));
            }
            if !fields.link.is_empty() {
                b.push('\n');
                b.push_str(&fields.fill(t.listen));
            }
            b
        }
    };
    // A header never holds a line break.
    let subject = subject.replace(['\r', '\n'], " ");
    (subject, body)
}

/// The stable `Message-ID` of the e-mail of message `id` of `mailbox`:
/// the same at every attempt, so that a duplicate after a crash can be
/// recognised.
pub fn message_id(key: &str, from: &str) -> String {
    let domain = from
        .parse::<Mailbox>()
        .map(|m| m.email.domain().to_string())
        .unwrap_or_else(|_| "vmail.invalid".to_string());
    format!("<{key}@{domain}>")
}

/// Builds the e-mail.
pub fn build(
    from: &str,
    to: &str,
    subject: String,
    body: String,
    message_id: String,
    date: SystemTime,
    attachment: Option<Attached>,
) -> Result<Message, String> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| format!("bad From address {from}: {e}"))?;
    let to: Mailboxes = to
        .parse()
        .map_err(|e| format!("bad recipient list {to}: {e}"))?;
    let mut b = Message::builder()
        .from(from)
        .subject(subject)
        .message_id(Some(message_id))
        .date(date);
    let mut any = false;
    for m in to {
        b = b.to(m);
        any = true;
    }
    if !any {
        return Err("no recipient".into());
    }
    let text = SinglePart::plain(body);
    let built = match attachment {
        None => b.singlepart(text),
        Some(a) => {
            let kind = ContentType::parse(a.content_type).map_err(|e| e.to_string())?;
            b.multipart(
                MultiPart::mixed()
                    .singlepart(text)
                    .singlepart(Attachment::new(a.name).body(a.bytes, kind)),
            )
        }
    };
    built.map_err(|e| format!("cannot build the e-mail: {e}"))
}

/// The audio file an e-mail carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// File name shown by mail clients.
    pub name: String,
    /// MIME type (`audio/wav`, `audio/ogg`).
    pub content_type: &'static str,
    /// The file.
    pub bytes: Vec<u8>,
}

impl Attached {
    /// The stored WAV of message `msg`, as it is.
    pub fn wav(msg: &str, bytes: Vec<u8>) -> Attached {
        Attached {
            name: format!("voicemail-{msg}.wav"),
            content_type: "audio/wav",
            bytes,
        }
    }
}

/// The relay's TLS: its host name checked against the certificate, which
/// must chain to the public roots or to a certificate of `ca_file` (read
/// at each send, so a renewed file is used at once).
fn tls_parameters(smtp: &Smtp) -> Result<TlsParameters, String> {
    let mut b = TlsParameters::builder(smtp.host.clone());
    if let Some(f) = &smtp.ca_file {
        let pem = std::fs::read(f)
            .map_err(|e| format!("cannot read the SMTP ca_file {}: {e}", f.display()))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| format!("SMTP ca_file {}: {e}", f.display()))?;
        b = b.add_root_certificate(cert);
    }
    b.build()
        .map_err(|e| format!("SMTP relay {}: TLS: {e}", smtp.host))
}

/// Sends `message` through the relay `smtp`.
pub async fn send(smtp: &Smtp, message: Message) -> Result<(), String> {
    let tls = match smtp.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::StartTls => Tls::Required(tls_parameters(smtp)?),
        SmtpTls::Implicit => Tls::Wrapper(tls_parameters(smtp)?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .tls(tls)
        .port(smtp.port)
        .timeout(Some(SMTP_TIMEOUT));
    if let (Some(user), Some(file)) = (&smtp.username, &smtp.password_file) {
        let password = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the SMTP password file {}: {e}", file.display()))?;
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.trim_end_matches(['\r', '\n']).to_string(),
        ));
    }
    let transport = builder.build();
    let sent = tokio::time::timeout(SMTP_TIMEOUT, transport.send(message))
        .await
        .map_err(|_| format!("SMTP {}:{}: timed out", smtp.host, smtp.port))?;
    sent.map(drop)
        .map_err(|e| format!("SMTP {}:{}: {e}", smtp.host, smtp.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> MessageMeta {
        serde_json::from_value(serde_json::json!({
            "id": "20261207T140000.000Z-vmail1-abcdef",
            "caller_uri": "sip:1002@example.com",
            "caller_name": "Bob",
            "received": "2026-12-07T14:00:00.000Z",
            "duration_ms": 7400,
            "urgent": true
        }))
        .unwrap()
    }

    #[test]
    fn times_carry_the_offset_in_force_then() {
        let berlin = TimeZone::parse("Europe/Berlin").unwrap();
        assert_eq!(
            time_text("2026-07-01T10:00:00Z", &berlin),
            "2026-07-01 12:00 +02:00"
        );
        assert_eq!(
            time_text("2026-12-01T10:00:00Z", &berlin),
            "2026-12-01 11:00 +01:00"
        );
    }

    #[test]
    fn texts_have_caller_time_duration_and_link() {
        let id = MailboxId::new("1001", "example.com").unwrap();
        let f = Fields::new(
            &id,
            &meta(),
            &TimeZone::parse("+03:00").unwrap(),
            Some("https://vm.example.com/web/{domain}/{user}/{id}"),
        );
        let (s, b) = render(&f, "en", None, None);
        assert_eq!(
            s,
            "[Urgent] New voicemail from Bob <sip:1002@example.com> (0:07)"
        );
        assert!(b.contains("Received: 2026-12-07 17:00 +03:00"), "{b}");
        assert!(b.contains("Duration: 0:07"), "{b}");
        assert!(
            b.contains("Listen: https://vm.example.com/web/example.com/1001/20261207T140000.000Z-vmail1-abcdef"),
            "{b}"
        );
        let (s, b) = render(&f, "ru", None, None);
        assert!(
            s.starts_with("[Срочно] Новое голосовое сообщение от Bob"),
            "{s}"
        );
        assert!(b.contains("Длительность: 0:07"), "{b}");
        let (s, b) = render(
            &f,
            "en",
            Some("VM {caller_uri}\n"),
            Some("{duration} {urgent}"),
        );
        assert_eq!(
            (s.as_str(), b.as_str()),
            ("VM sip:1002@example.com ", "0:07 urgent")
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(0), "0:00");
        assert_eq!(duration_text(65_400), "1:05");
        assert_eq!(duration_text(3_600_000), "1:00:00");
    }

    #[test]
    fn the_mime_structure_is_mixed_with_a_wav() {
        let m = build(
            "vmail <vmail@example.com>",
            "a@example.com, B <b@example.com>",
            "s".into(),
            "body".into(),
            message_id("k1", "vmail@example.com"),
            SystemTime::UNIX_EPOCH,
            Some(Attached::wav("m", b"RIFF....WAVE".to_vec())),
        )
        .unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("multipart/mixed"), "{text}");
        assert!(text.contains("audio/wav"), "{text}");
        assert!(text.contains("Message-ID: <k1@example.com>"), "{text}");
        assert!(build(
            "x@y",
            "",
            "s".into(),
            "b".into(),
            "<a@b>".into(),
            SystemTime::UNIX_EPOCH,
            None
        )
        .is_err());
    }
}
