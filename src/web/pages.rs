//! The pages (maud templates: every value is escaped).

use maud::{html, Markup, DOCTYPE};

use super::i18n::{Lang, Texts};
use super::{Folder, GreetingKind};

/// One message row of the inbox.
pub struct Row {
    pub id: String,
    pub caller: String,
    pub urgent: bool,
    pub heard: bool,
    pub received_utc: String,
    pub received_local: String,
    pub duration_ms: u64,
}

/// Who is logged in, for the header.
pub struct Who<'a> {
    pub mailbox: &'a str,
    pub csrf: &'a str,
}

fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// The frame of every page.
pub fn layout(lang: Lang, title: &str, who: Option<&Who<'_>>, body: Markup) -> Markup {
    let t = lang.t();
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(w) = who {
                    meta name="csrf-token" content=(w.csrf);
                }
                title { (title) " · " (t.app) }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                header class="top" {
                    span class="brand" { (t.app) }
                    @if let Some(w) = who {
                        nav aria-label=(t.app) {
                            a href="/inbox" { (t.inbox) }
                            a href="/greetings" { (t.greetings) }
                            a href="/settings" { (t.settings) }
                        }
                        span class="who" { (w.mailbox) }
                        form class="logout" method="post" action="/logout" {
                            (csrf_field(w.csrf))
                            button type="submit" { (t.logout) }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// The login form; `error` shows the one failure text.
pub fn login(lang: Lang, csrf: &str, mailbox: &str, error: bool) -> Markup {
    let t = lang.t();
    layout(
        lang,
        t.login_title,
        None,
        html! {
            h1 id="login-title" { (t.login_title) }
            @if error {
                p id="login-error" class="error" role="alert" { (t.login_error) }
            }
            form id="login-form" method="post" action="/login" {
                (csrf_field(csrf))
                label for="mailbox" { (t.mailbox_label) }
                input id="mailbox" name="mailbox" type="text" value=(mailbox)
                    autocomplete="username" autocapitalize="none" spellcheck="false"
                    required aria-describedby="mailbox-hint";
                p id="mailbox-hint" class="hint" { (t.mailbox_hint) }
                label for="pin" { (t.pin_label) }
                input id="pin" name="pin" type="password" inputmode="numeric"
                    autocomplete="current-password" required;
                button id="login-submit" type="submit" { (t.login_button) }
            }
        },
    )
}

/// A folder's name on the page: the named ones in the page's language,
/// Cust1..Cust5 as "Folder 5".."Folder 9" (their phone keys).
fn folder_label(t: &Texts, f: Folder) -> String {
    match f {
        Folder::Inbox => t.folder_new.to_owned(),
        Folder::Old => t.folder_old.to_owned(),
        Folder::Work => t.folder_work.to_owned(),
        Folder::Family => t.folder_family.to_owned(),
        Folder::Friends => t.folder_friends.to_owned(),
        Folder::Cust1 | Folder::Cust2 | Folder::Cust3 | Folder::Cust4 | Folder::Cust5 => {
            format!("{} {}", t.folder_numbered, f.key())
        }
    }
}

/// The id of a folder's count: `count-new` (INBOX) and `count-old` (Old)
/// as before, `count-Work` and so on for the others.
fn count_id(f: Folder) -> String {
    match f {
        Folder::Inbox => "count-new".to_owned(),
        Folder::Old => "count-old".to_owned(),
        other => format!("count-{}", other.dir_name()),
    }
}

/// A note after a change (a fixed key, never text from the request).
pub fn note_text(t: &Texts, key: &str) -> Option<(&'static str, bool)> {
    Some(match key {
        "heard" => (t.note_heard, false),
        "moved" => (t.note_moved, false),
        "deleted" => (t.note_deleted, false),
        "forwarded" => (t.note_forwarded, false),
        "forward-failed" => (t.note_forward_failed, true),
        "greeting-saved" => (t.note_greeting_saved, false),
        "greeting-deleted" => (t.note_greeting_deleted, false),
        "greeting-failed" => (t.note_greeting_failed, true),
        _ => return None,
    })
}

fn note(t: &Texts, key: Option<&str>) -> Markup {
    html! {
        @if let Some((text, error)) = key.and_then(|k| note_text(t, k)) {
            @if error {
                p id="note" class="error" role="alert" { (text) }
            } @else {
                p id="note" class="note" role="status" { (text) }
            }
        }
    }
}

/// `m:ss`.
pub fn duration(ms: u64) -> String {
    let s = (ms + 500) / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// Which page of a folder is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based.
    pub page: usize,
    /// At least 1.
    pub pages: usize,
}

impl Paging {
    /// One page.
    #[cfg(test)]
    pub const ONE: Paging = Paging { page: 1, pages: 1 };
}

/// The previous/next links of a folder with more than one page.
fn pager(t: &Texts, folder: Folder, p: Paging) -> Markup {
    let link = |n: usize| format!("/inbox?folder={}&page={n}", folder.dir_name());
    html! {
        @if p.pages > 1 {
            nav class="pager" aria-label=(t.pages_label) {
                @if p.page > 1 {
                    a id="page-prev" rel="prev" href=(link(p.page - 1)) { "← " (t.prev_page) }
                }
                " "
                span id="page-info" aria-current="page" { (t.page_of) " " (p.page) " / " (p.pages) }
                " "
                @if p.page < p.pages {
                    a id="page-next" rel="next" href=(link(p.page + 1)) { (t.next_page) " →" }
                }
            }
        }
    }
}

/// The inbox of one folder, one page of it.
#[allow(clippy::too_many_arguments)]
pub fn inbox(
    lang: Lang,
    who: &Who<'_>,
    folder: Folder,
    counts: &[(Folder, usize)],
    rows: &[Row],
    paging: Paging,
    note_key: Option<&str>,
    partial: bool,
) -> Markup {
    let t = lang.t();
    let from = folder.dir_name();
    let title = format!("{}: {}", t.inbox, folder_label(t, folder));
    layout(
        lang,
        &title,
        Some(who),
        html! {
            h1 id="inbox-title" { (title) }
            nav class="folders" aria-label=(t.inbox) {
                @for f in Folder::ALL {
                    @let n = counts.iter().find(|(c, _)| *c == f).map_or(0, |(_, n)| *n);
                    // INBOX and Old always; another folder when it holds
                    // messages or is the one shown.
                    @if f == Folder::Inbox || f == Folder::Old || n > 0 || f == folder {
                        a id={ "folder-" (f.dir_name()) } href={ "/inbox?folder=" (f.dir_name()) }
                            aria-current=[(folder == f).then_some("page")] {
                            (folder_label(t, f)) " " span id=(count_id(f)) class="count" { (n) }
                        }
                    }
                }
            }
            (note(t, note_key))
            @if partial {
                p id="partial" class="error" role="status" { (t.partial) }
            }
            @if rows.is_empty() {
                p id="empty" { (t.empty) }
            } @else {
                (pager(t, folder, paging))
                ul class="messages" {
                    @for m in rows {
                        (row(t, m, from, paging.page, who.csrf))
                    }
                }
                (pager(t, folder, paging))
            }
            div id="undo" role="status" hidden {
                span { (t.deleted) }
                " "
                button id="undo-button" type="button" { (t.undo) }
            }
        },
    )
}

fn row(t: &Texts, m: &Row, from: &str, page: usize, csrf: &str) -> Markup {
    let id = &m.id;
    let hidden_from = html! {
        input type="hidden" name="from" value=(from);
        @if page > 1 {
            input type="hidden" name="page" value=(page);
        }
    };
    html! {
        li class={ "message" @if m.urgent { " urgent" } @if !m.heard { " unheard" } }
            data-id=(id) data-duration-ms=(m.duration_ms) {
            div class="meta" {
                span class="caller" { (m.caller) }
                @if m.urgent {
                    " " span class="badge" { (t.urgent) }
                }
                " "
                time class="received" datetime=(m.received_utc) { (m.received_local) }
                " "
                span class="duration" aria-label=(t.duration) { (duration(m.duration_ms)) }
            }
            audio class="player" id={ "audio-" (id) } controls preload="metadata"
                src={ "/messages/" (id) "/audio" } {}
            div class="actions" {
                a class="download" href={ "/messages/" (id) "/audio?download=1" } { (t.download) }
                form class="heard" method="post" action={ "/messages/" (id) "/heard" } {
                    (csrf_field(csrf))
                    (hidden_from)
                    @if m.heard {
                        input type="hidden" name="heard" value="false";
                        button type="submit" { (t.mark_new) }
                    } @else {
                        input type="hidden" name="heard" value="true";
                        button type="submit" { (t.mark_heard) }
                    }
                }
                form class="move" method="post" action={ "/messages/" (id) "/move" } {
                    (csrf_field(csrf))
                    (hidden_from)
                    label for={ "move-" (id) } { (t.move_to) }
                    select id={ "move-" (id) } name="folder" {
                        @for f in Folder::ALL {
                            option value=(f.dir_name()) selected[f.dir_name() == from] {
                                (folder_label(t, f))
                            }
                        }
                    }
                    button type="submit" { (t.move_button) }
                }
                form class="delete" method="post" action={ "/messages/" (id) "/delete" } {
                    (csrf_field(csrf))
                    (hidden_from)
                    button type="submit" class="danger" { (t.delete) }
                }
                form class="forward" method="post" action={ "/messages/" (id) "/forward" } {
                    (csrf_field(csrf))
                    (hidden_from)
                    label for={ "to-" (id) } { (t.forward_to) }
                    input id={ "to-" (id) } name="to" type="text" required
                        autocomplete="off" autocapitalize="none" spellcheck="false";
                    button type="submit" { (t.forward_button) }
                }
            }
        }
    }
}

fn greeting_label(t: &Texts, k: GreetingKind) -> &'static str {
    match k {
        GreetingKind::Unavailable => t.greeting_unavail,
        GreetingKind::Busy => t.greeting_busy,
        GreetingKind::Temporary => t.greeting_temp,
        GreetingKind::Name => t.greeting_name,
    }
}

/// The greetings page: `set` says which kinds are recorded.
pub fn greetings(
    lang: Lang,
    who: &Who<'_>,
    set: &[(GreetingKind, bool)],
    note_key: Option<&str>,
) -> Markup {
    let t = lang.t();
    layout(
        lang,
        t.greetings,
        Some(who),
        html! {
            h1 id="greetings-title" { (t.greetings) }
            (note(t, note_key))
            @for (kind, present) in set {
                @let k = super::kind_name(*kind);
                section id={ "greeting-" (k) } class="greeting" aria-labelledby={ "greeting-" (k) "-title" } {
                    h2 id={ "greeting-" (k) "-title" } { (greeting_label(t, *kind)) }
                    @if *present {
                        audio class="player" id={ "greeting-audio-" (k) } controls preload="metadata"
                            src={ "/greetings/" (k) "/audio" } {}
                    } @else {
                        p class="unset" { (t.not_recorded) }
                    }
                    form class="upload" method="post" action={ "/greetings/" (k) }
                        enctype="multipart/form-data" {
                        (csrf_field(who.csrf))
                        label for={ "file-" (k) } { (t.file_label) }
                        input id={ "file-" (k) } type="file" name="file" accept="audio/*" required;
                        button type="submit" { (t.upload) }
                    }
                    div class="greeting-actions" {
                        button class="record" type="button" data-kind=(k)
                            data-stop-label=(t.stop_record) hidden { (t.record) }
                        form class="delete-greeting" method="post" action={ "/greetings/" (k) "/delete" } {
                            (csrf_field(who.csrf))
                            button type="submit" class="danger" { (t.delete) }
                        }
                    }
                }
            }
        },
    )
}

/// What the PIN form says after a change.
pub enum PinNote {
    None,
    Changed,
    Mismatch,
    NotAllowed,
}

/// The values of the settings form (as stored, or as sent back).
#[derive(Debug, Clone, Default)]
pub struct SettingsValues {
    pub display_name: String,
    /// Empty: the default language.
    pub language: String,
    /// Empty: the default zone.
    pub timezone: String,
    pub email: String,
    /// `none`, `wav` or `opus`.
    pub attach: String,
    pub delete_after_send: bool,
}

/// What the settings form offers.
pub struct SettingsChoices<'a> {
    /// The prompt set's languages (and the mailbox's own, if another).
    pub languages: &'a [String],
    /// `ext.language`.
    pub default_language: &'a str,
    /// `ext.timezone`.
    pub default_timezone: &'a str,
}

/// What the settings form says after a change.
pub enum SettingsNote {
    None,
    Saved,
    /// Refused: the text, already in the page's language.
    Refused(String),
}

/// A language's own name, else its code.
fn language_name(code: &str) -> &str {
    match code {
        "en" => "English",
        "ru" => "Русский",
        other => other,
    }
}

/// The settings page: the mailbox's settings and the PIN change.
pub fn settings(
    lang: Lang,
    who: &Who<'_>,
    values: &SettingsValues,
    choices: &SettingsChoices<'_>,
    note: SettingsNote,
    pin_note: PinNote,
) -> Markup {
    let t = lang.t();
    let attach = [
        ("none", t.attach_none),
        ("wav", t.attach_wav),
        ("opus", t.attach_opus),
    ];
    layout(
        lang,
        t.settings,
        Some(who),
        html! {
            h1 id="settings-title" { (t.settings) }
            section aria-labelledby="mailbox-settings-title" {
                h2 id="mailbox-settings-title" { (t.mailbox_settings) }
                @match &note {
                    SettingsNote::None => {}
                    SettingsNote::Saved => p id="settings-saved" class="note" role="status" { (t.settings_saved) },
                    SettingsNote::Refused(text) => p id="settings-error" class="error" role="alert" { (text) },
                }
                form id="settings-form" method="post" action="/settings" {
                    (csrf_field(who.csrf))
                    label for="display-name" { (t.display_name_label) }
                    input id="display-name" name="display_name" type="text" maxlength="256"
                        value=(values.display_name) autocomplete="name";
                    label for="language" { (t.language_label) }
                    select id="language" name="language" {
                        option value="" selected[values.language.is_empty()] {
                            (t.default_choice) " (" (language_name(choices.default_language)) ")"
                        }
                        @for l in choices.languages {
                            option value=(l) selected[*l == values.language] { (language_name(l)) }
                        }
                    }
                    label for="timezone" { (t.timezone_label) }
                    input id="timezone" name="timezone" type="text" maxlength="64"
                        value=(values.timezone) autocapitalize="none" spellcheck="false"
                        placeholder=(choices.default_timezone) aria-describedby="timezone-hint";
                    p id="timezone-hint" class="hint" {
                        (t.timezone_hint) " (" (choices.default_timezone) ")."
                    }
                    label for="email" { (t.email_label) }
                    input id="email" name="email" type="text" maxlength="2048"
                        value=(values.email) autocomplete="email" autocapitalize="none"
                        spellcheck="false" aria-describedby="email-hint";
                    p id="email-hint" class="hint" { (t.email_hint) }
                    label for="attach" { (t.attach_label) }
                    select id="attach" name="attach" {
                        @for (v, text) in attach {
                            option value=(v) selected[v == values.attach] { (text) }
                        }
                    }
                    div class="check" {
                        input id="delete-after-send" name="delete_after_send" type="checkbox"
                            value="true" checked[values.delete_after_send]
                            aria-describedby="delete-after-send-hint";
                        label for="delete-after-send" { (t.delete_after_send_label) }
                    }
                    p id="delete-after-send-hint" class="hint" { (t.delete_after_send_hint) }
                    button id="settings-submit" type="submit" { (t.save) }
                }
            }
            section aria-labelledby="pin-title" {
                h2 id="pin-title" { (t.change_pin) }
                @match pin_note {
                    PinNote::None => {}
                    PinNote::Changed => p id="pin-changed" class="note" role="status" { (t.pin_changed) },
                    PinNote::Mismatch => p id="pin-error" class="error" role="alert" { (t.pin_mismatch) },
                    PinNote::NotAllowed => p id="pin-error" class="error" role="alert" { (t.pin_not_allowed) },
                }
                form id="pin-form" method="post" action="/pin" {
                    (csrf_field(who.csrf))
                    label for="new-pin" { (t.new_pin) }
                    input id="new-pin" name="pin" type="password" inputmode="numeric"
                        autocomplete="new-password" required aria-describedby="pin-rule";
                    label for="new-pin2" { (t.repeat_pin) }
                    input id="new-pin2" name="pin2" type="password" inputmode="numeric"
                        autocomplete="new-password" required aria-describedby="pin-rule";
                    p id="pin-rule" class="hint" { (t.pin_rule) }
                    button id="pin-submit" type="submit" { (t.save) }
                }
            }
        },
    )
}

/// A page that only says something: `id` names its paragraph.
pub fn message(
    lang: Lang,
    id: &str,
    text: &str,
    extra: Option<&str>,
    link: (&str, &str),
) -> Markup {
    let t = lang.t();
    layout(
        lang,
        text,
        None,
        html! {
            h1 { (t.app) }
            p id=(id) class="error" role="alert" { (text) }
            @if let Some(x) = extra {
                p class="detail" { (x) }
            }
            p { a href=(link.0) { (link.1) } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_minutes_and_seconds() {
        assert_eq!(duration(0), "0:00");
        assert_eq!(duration(4_400), "0:04");
        assert_eq!(duration(65_600), "1:06");
        assert_eq!(duration(600_000), "10:00");
    }

    #[test]
    fn values_are_escaped() {
        let page = login(Lang::En, "ab12", "<script>x</script>\"", true).into_string();
        assert!(!page.contains("<script>x"));
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;&quot;"));
        assert!(page.contains("id=\"login-error\""));
        assert!(page.starts_with("<!DOCTYPE html><html lang=\"en\">"));
    }

    #[test]
    fn every_row_form_gets_the_session_token() {
        let who = Who {
            mailbox: "1001@test.example",
            csrf: "abcd",
        };
        let rows = vec![Row {
            id: "m1".into(),
            caller: "Alice <1002>".into(),
            urgent: true,
            heard: false,
            received_utc: "2026-01-01T00:00:00Z".into(),
            received_local: "2026-01-01 03:00".into(),
            duration_ms: 4200,
        }];
        let page = inbox(
            Lang::Ru,
            &who,
            Folder::Inbox,
            &[(Folder::Inbox, 1), (Folder::Old, 0), (Folder::Work, 2)],
            &rows,
            Paging { page: 2, pages: 3 },
            Some("deleted"),
            false,
        )
        .into_string();
        assert!(!page.contains("id=\"partial\""));
        let partial = inbox(
            Lang::En,
            &who,
            Folder::Inbox,
            &[],
            &[],
            Paging::ONE,
            None,
            true,
        )
        .into_string();
        assert!(partial.contains("id=\"partial\""), "{partial}");
        // Log out, heard, move, delete, forward.
        assert_eq!(page.matches("name=\"csrf\" value=\"abcd\"").count(), 5);
        assert!(page.contains("class=\"message urgent unheard\""));
        assert!(page.contains("Alice &lt;1002&gt;"));
        assert!(page.contains("lang=\"ru\""));
        assert!(page.contains("data-duration-ms=\"4200\""));
        // Folder links: INBOX and Old always, Work as it holds messages.
        assert!(page.contains("id=\"folder-INBOX\""));
        assert!(page.contains("id=\"folder-Old\""));
        assert!(page.contains("id=\"folder-Work\""));
        assert!(page.contains("id=\"count-Work\" class=\"count\">2<"));
        assert!(!page.contains("id=\"folder-Family\""));
        // The move list offers every folder.
        assert!(page.contains("<option value=\"Cust5\">Папка 9</option>"));
        assert!(page.contains("<option value=\"Family\">Семья</option>"));
        // Page 2 of 3: both links, and the forms come back to page 2.
        assert!(page.contains("href=\"/inbox?folder=INBOX&amp;page=1\""));
        assert!(page.contains("href=\"/inbox?folder=INBOX&amp;page=3\""));
        assert!(page.contains("name=\"page\" value=\"2\""));
        assert!(!partial.contains("class=\"pager\""));
    }

    #[test]
    fn the_settings_form_labels_every_field_and_keeps_the_values() {
        let who = Who {
            mailbox: "1001@test.example",
            csrf: "abcd",
        };
        let values = SettingsValues {
            display_name: "Ann <A>".into(),
            language: "ru".into(),
            timezone: "Europe/Moscow".into(),
            email: "ann@example.com".into(),
            attach: "opus".into(),
            delete_after_send: true,
        };
        let langs = ["en".to_owned(), "ru".to_owned()];
        let choices = SettingsChoices {
            languages: &langs,
            default_language: "en",
            default_timezone: "UTC",
        };
        for lang in [Lang::En, Lang::Ru] {
            let page = settings(
                lang,
                &who,
                &values,
                &choices,
                SettingsNote::Refused("no <good>".into()),
                PinNote::None,
            )
            .into_string();
            for id in [
                "display-name",
                "language",
                "timezone",
                "email",
                "attach",
                "delete-after-send",
                "new-pin",
                "new-pin2",
            ] {
                assert!(page.contains(&format!("<label for=\"{id}\"")), "{id}");
                assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
            }
            assert!(page.contains("value=\"Ann &lt;A&gt;\""));
            assert!(page.contains("<option value=\"ru\" selected>Русский</option>"));
            assert!(page.contains("<option value=\"opus\" selected>"));
            assert!(page.contains("checked"));
            assert!(page.contains("role=\"alert\">no &lt;good&gt;<"));
            // Two forms, each with the token (and the log-out form).
            assert_eq!(page.matches("name=\"csrf\" value=\"abcd\"").count(), 3);
            for operator_only in ["max_messages", "retention", "operator"] {
                assert!(!page.contains(operator_only), "{operator_only}");
            }
        }
    }
}
