//! Two sites serving one domain (SPEC §10, docs/sites.md): each keeps the
//! messages that arrived there; the API of either lists both, changes to a
//! message are applied where it is kept, message-waiting counts both, and
//! a site that does not answer loses nothing and doubles nothing.
//!
//! Two real vmail processes on 127.0.0.1, each with its own SiteShare and
//! a configuration naming the other; deposits with sipp, the MWI
//! subscriber is a pjsua2 phone.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use vmail::store::{Folder, FsStore, MailboxId, PinCost};

fn store(v: &Vmail) -> FsStore {
    FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).expect("open store")
}

fn mailbox(user: &str) -> MailboxId {
    MailboxId::new(user, DOMAIN).unwrap()
}

fn item<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["items"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["id"] == id))
        .unwrap_or_else(|| panic!("{id} not in {list}"))
}

#[test]
fn either_site_lists_both_and_changes_go_home() {
    if sipp_bin().is_none() {
        return;
    }
    let sites = two_sites(&["1001", "1002"], |_| {});
    let (a, b) = (
        SiteApi::new(&sites.a, SITE_A_TOKEN),
        SiteApi::new(&sites.b, SITE_B_TOKEN),
    );
    // one message arrives at each site, A's first
    let at_a = deposit_at(&sites.a, "1001", 1);
    let at_b = deposit_at(&sites.b, "1001", 1);
    // deposit stays local and names its site
    let (sa, sb) = (store(&sites.a), store(&sites.b));
    assert_eq!(
        sa.message(&mailbox("1001"), &at_a).unwrap().unwrap().site,
        "siteA"
    );
    assert_eq!(
        sb.message(&mailbox("1001"), &at_b).unwrap().unwrap().site,
        "siteB"
    );
    assert!(sa.message(&mailbox("1001"), &at_b).unwrap().is_none());
    assert!(sb.message(&mailbox("1001"), &at_a).unwrap().is_none());

    // the API of either site lists both, by time, once each
    for api in [&a, &b] {
        let list = api.messages("1001", "INBOX");
        assert_eq!(listed_ids(&list), [at_a.as_str(), at_b.as_str()], "{list}");
        assert_eq!(list["partial"], false, "{list}");
        assert_eq!(list["unreachable"], json!([]), "{list}");
        assert_eq!(item(&list, &at_a)["site"], "siteA");
        assert_eq!(item(&list, &at_b)["site"], "siteB");
    }
    // the mailbox's counts on either site cover both
    for api in [&a, &b] {
        let (code, view) = api.send(Method::GET, "1001", None);
        assert_eq!(
            (code, view["counts"]["new"].as_u64()),
            (200, Some(2)),
            "{view}"
        );
    }
    // B's message read, and its audio streamed through A (Range passes)
    let (code, meta) = a.send(Method::GET, &format!("1001/messages/{at_b}"), None);
    assert_eq!(
        (code, meta["site"].as_str()),
        (200, Some("siteB")),
        "{meta}"
    );
    let wav_b = std::fs::read(
        sites
            .b
            .mailbox_dir("1001", DOMAIN)
            .join(format!("INBOX/{at_b}.wav")),
    )
    .unwrap();
    let (code, whole) = a.audio("1001", &at_b, None);
    assert_eq!(code, 200);
    assert!(whole == wav_b, "the audio through A is B's file");
    let (code, part) = a.audio("1001", &at_b, Some("bytes=10-109"));
    assert_eq!(code, 206);
    assert_eq!(part, wav_b[10..110]);

    // heard through A: applied at B
    let (code, changed) = a.send(
        Method::PATCH,
        &format!("1001/messages/{at_b}"),
        Some(json!({"heard": true})),
    );
    assert_eq!(code, 200, "{changed}");
    assert_eq!(changed["heard"], true);
    assert!(sb.message(&mailbox("1001"), &at_b).unwrap().unwrap().heard);
    // forward through A: the copy is made at B, in 1002's mailbox there
    let (code, copy) = a.send(
        Method::POST,
        &format!("1001/messages/{at_b}/forward"),
        Some(json!({"to": "1002"})),
    );
    assert_eq!(code, 201, "{copy}");
    let copy_id = copy["id"].as_str().unwrap().to_owned();
    assert!(sb.message(&mailbox("1002"), &copy_id).unwrap().is_some());
    assert!(sa
        .list_messages(&mailbox("1002"), Folder::Inbox)
        .unwrap()
        .is_empty());
    let list = a.messages("1002", "INBOX");
    assert_eq!(listed_ids(&list), [copy_id.as_str()], "{list}");
    // moved to Old through A: at B
    let (code, moved) = a.send(
        Method::PATCH,
        &format!("1001/messages/{at_b}"),
        Some(json!({"folder": "Old"})),
    );
    assert_eq!(code, 200, "{moved}");
    assert_eq!(
        sb.message(&mailbox("1001"), &at_b).unwrap().unwrap().folder,
        Folder::Old
    );
    assert_eq!(listed_ids(&b.messages("1001", "Old")), [at_b.as_str()]);
    assert_eq!(listed_ids(&a.messages("1001", "INBOX")), [at_a.as_str()]);

    // B stops: A lists its own message and says the listing is partial
    let mut sites = sites;
    sites.b.kill9();
    let list = a.messages("1001", "INBOX");
    assert_eq!(listed_ids(&list), [at_a.as_str()], "{list}");
    assert_eq!(list["partial"], true, "{list}");
    assert_eq!(list["unreachable"], json!(["siteB"]), "{list}");
    let old = a.messages("1001", "Old");
    assert_eq!(
        (old["partial"].clone(), listed_ids(&old).len()),
        (json!(true), 0)
    );
    // its counts are B's last known ones
    let (code, view) = a.send(Method::GET, "1001", None);
    assert_eq!(code, 200);
    assert_eq!(
        (
            view["counts"]["new"].as_u64(),
            view["counts"]["old"].as_u64()
        ),
        (Some(1), Some(1)),
        "{view}"
    );
    // a change to B's message through A is refused, clearly, and nothing
    // changes anywhere
    for (method, path, body) in [
        (Method::DELETE, format!("1001/messages/{at_b}"), None),
        (
            Method::PATCH,
            format!("1001/messages/{at_b}"),
            Some(json!({"heard": false})),
        ),
        (
            Method::POST,
            format!("1001/messages/{at_b}/forward"),
            Some(json!({"to": "1002"})),
        ),
    ] {
        let (code, err) = a.send(method.clone(), &path, body);
        assert_eq!(code, 503, "{method} {path}: {err}");
        assert_eq!(err["error"], "site_unreachable", "{err}");
        assert!(
            err["detail"].as_str().unwrap_or("").contains("siteB"),
            "{err}"
        );
    }
    // A's own message still changes
    let (code, _) = a.send(
        Method::PATCH,
        &format!("1001/messages/{at_a}"),
        Some(json!({"heard": true})),
    );
    assert_eq!(code, 200);

    // B is back: nothing lost, nothing twice
    sites.b.restart();
    let old = sb.message(&mailbox("1001"), &at_b).unwrap().unwrap();
    assert!(old.heard && old.folder == Folder::Old, "{old:?}");
    for api in [&a, &b] {
        let inbox = api.messages("1001", "INBOX");
        assert_eq!(listed_ids(&inbox), [at_a.as_str()], "{inbox}");
        assert_eq!(inbox["partial"], false, "{inbox}");
        assert_eq!(listed_ids(&api.messages("1001", "Old")), [at_b.as_str()]);
        assert_eq!(
            listed_ids(&api.messages("1002", "INBOX")),
            [copy_id.as_str()]
        );
    }
    // deleting B's message through A removes it from B's store
    let (code, body) = a.send(Method::DELETE, &format!("1001/messages/{at_b}"), None);
    assert_eq!(code, 204, "{body}");
    assert!(sb.message(&mailbox("1001"), &at_b).unwrap().is_none());
    assert!(!sites
        .b
        .mailbox_dir("1001", DOMAIN)
        .join(format!("Old/{at_b}.wav"))
        .exists());
    for api in [&a, &b] {
        assert!(listed_ids(&api.messages("1001", "Old")).is_empty());
    }
    // a message no site has
    let (code, err) = a.send(Method::DELETE, &format!("1001/messages/{at_b}"), None);
    assert_eq!(
        (code, err["error"].as_str()),
        (404, Some("message_not_found")),
        "{err}"
    );
}

#[test]
fn a_peer_request_is_answered_locally_and_never_passed_on() {
    if sipp_bin().is_none() {
        return;
    }
    let sites = two_sites(&["1001"], |_| {});
    let at_b = deposit_at(&sites.b, "1001", 1);
    let client = reqwest::blocking::Client::new();
    let base = format!("http://{}/api/v1", sites.a.http_addr());
    // with the site-to-site header, A answers from its own store only
    let list: Value = client
        .get(format!("{base}/domains/{DOMAIN}/mailboxes/1001/messages"))
        .bearer_auth(SITE_A_TOKEN)
        .header("x-vmail-site", "siteB")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(listed_ids(&list).is_empty(), "{list}");
    let resp = client
        .delete(format!(
            "{base}/domains/{DOMAIN}/mailboxes/1001/messages/{at_b}"
        ))
        .bearer_auth(SITE_A_TOKEN)
        .header("x-vmail-site", "siteB")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert!(store(&sites.b)
        .message(&mailbox("1001"), &at_b)
        .unwrap()
        .is_some());
    // the site routes: this site's messages and counts; a notice from a
    // site that is not a peer is refused
    let here: Value = client
        .get(format!("{base}/sites/{DOMAIN}/1001/counts"))
        .bearer_auth(SITE_A_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        here,
        json!({"new": 0, "old": 0, "urgent_new": 0, "urgent_old": 0})
    );
    let there: Value = client
        .get(format!(
            "http://{}/api/v1/sites/{DOMAIN}/1001/messages",
            sites.b.http_addr()
        ))
        .bearer_auth(SITE_B_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(there["site"], "siteB");
    assert_eq!(there["messages"][0]["id"], at_b.as_str(), "{there}");
    let resp = client
        .post(format!("{base}/sites/changed"))
        .bearer_auth(SITE_A_TOKEN)
        .json(&json!({"site": "siteX", "domain": DOMAIN, "user": "1001",
                      "counts": {"new": 5, "old": 0, "urgent_new": 0, "urgent_old": 0}}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    // without the token: 401
    let resp = client
        .get(format!("{base}/sites/{DOMAIN}/1001/messages"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[test]
fn message_waiting_on_one_site_counts_the_other() {
    if sipp_bin().is_none() {
        return;
    }
    let mut sites = two_sites(&["1001"], |ext| {
        ext["sites_refresh_seconds"] = json!(5);
    });
    let a = SiteApi::new(&sites.a, SITE_A_TOKEN);
    let Some(phone) = PjsuaMwi::start(sites.a.sip_addr(), "1001", "0,1,2,1,0,0") else {
        return;
    };
    phone.wait_counts(0, 0, Duration::from_secs(20));
    // a message arrives at B: A's subscriber is told at once
    let at_b = deposit_at(&sites.b, "1001", 1);
    phone.wait_counts(1, 0, Duration::from_secs(15));
    let at_a = deposit_at(&sites.a, "1001", 1);
    phone.wait_counts(2, 0, Duration::from_secs(15));
    // B stops; A's own message is heard and saved: B's is still counted
    sites.b.kill9();
    let (code, _) = a.send(
        Method::PATCH,
        &format!("1001/messages/{at_a}"),
        Some(json!({"heard": true, "folder": "Old"})),
    );
    assert_eq!(code, 200);
    phone.wait_counts(1, 1, Duration::from_secs(15));
    // B is back. Its message is saved by another process, behind B's
    // vmail (no change notice): A's periodic refresh finds it
    sites.b.restart();
    store(&sites.b)
        .move_message(&mailbox("1001"), &at_b, Folder::Old)
        .unwrap();
    phone.wait_counts(0, 2, Duration::from_secs(20));
    // its message deleted through A: the counts follow at once
    let (code, body) = a.send(Method::DELETE, &format!("1001/messages/{at_b}"), None);
    assert_eq!(code, 204, "{body}");
    phone.wait_counts(0, 1, Duration::from_secs(15));
    assert!(phone.wait_exit().success());
}

/// A browser session of the web inbox (cookies kept by hand, no redirects
/// followed).
struct Web {
    base: String,
    client: reqwest::blocking::Client,
    cookie: std::cell::RefCell<Vec<(String, String)>>,
}

impl Web {
    fn login(v: &Vmail, user: &str) -> Web {
        let web = Web {
            base: format!("http://{}", v.http_addr()),
            client: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            cookie: Default::default(),
        };
        let csrf = web.csrf("/login");
        let r = web.post(
            "/login",
            &[
                ("mailbox", &format!("{user}@{DOMAIN}")),
                ("pin", "1234"),
                ("csrf", &csrf),
            ],
        );
        assert_eq!(r.0, 303, "login: {}", r.1);
        web
    }

    fn send(&self, r: reqwest::blocking::RequestBuilder) -> (u16, String) {
        let cookies: Vec<String> = self
            .cookie
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let resp = r.header("Cookie", cookies.join("; ")).send().unwrap();
        for v in resp.headers().get_all("set-cookie") {
            let s = v.to_str().unwrap();
            let kv = s.split(';').next().unwrap_or("");
            if let Some((k, val)) = kv.split_once('=') {
                let mut c = self.cookie.borrow_mut();
                c.retain(|(n, _)| n != k);
                c.push((k.to_owned(), val.to_owned()));
            }
        }
        (resp.status().as_u16(), resp.text().unwrap_or_default())
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.send(self.client.get(format!("{}{path}", self.base)))
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        self.send(self.client.post(format!("{}{path}", self.base)).form(form))
    }

    fn csrf(&self, path: &str) -> String {
        let page = self.get(path).1;
        let after = "name=\"csrf\" value=\"";
        let start = page.find(after).expect("a csrf field") + after.len();
        let end = page[start..].find('"').unwrap() + start;
        page[start..end].to_owned()
    }
}

#[test]
fn the_web_inbox_shows_both_sites() {
    if sipp_bin().is_none() {
        return;
    }
    let mut sites = two_sites(&["1001"], |_| {});
    let at_a = deposit_at(&sites.a, "1001", 1);
    let at_b = deposit_at(&sites.b, "1001", 1);
    let web = Web::login(&sites.a, "1001");
    let (code, page) = web.get("/inbox");
    assert_eq!(code, 200);
    assert!(page.contains(&at_a) && page.contains(&at_b), "{page}");
    assert!(!page.contains("id=\"partial\""), "{page}");
    // B's message plays through A
    let wav_b = std::fs::read(
        sites
            .b
            .mailbox_dir("1001", DOMAIN)
            .join(format!("INBOX/{at_b}.wav")),
    )
    .unwrap();
    let cookies: Vec<String> = web
        .cookie
        .borrow()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let resp = web
        .client
        .get(format!("{}/messages/{at_b}/audio", web.base))
        .header("Cookie", cookies.join("; "))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.bytes().unwrap() == wav_b, "the audio is B's file");
    // heard through the web inbox of A: at B, moved to Old as the phone does
    let csrf = web.csrf("/inbox");
    let (code, _) = web.post(&format!("/messages/{at_b}/heard"), &[("csrf", &csrf)]);
    assert_eq!(code, 303);
    let m = store(&sites.b)
        .message(&mailbox("1001"), &at_b)
        .unwrap()
        .unwrap();
    assert!(m.heard && m.folder == Folder::Old, "{m:?}");
    // B stops: A's inbox says some messages cannot be shown; a change to
    // B's message is refused and says why
    sites.b.kill9();
    let (code, page) = web.get("/inbox?folder=Old");
    assert_eq!(code, 200);
    assert!(
        page.contains("id=\"partial\"") && !page.contains(&at_b),
        "{page}"
    );
    let (code, page) = web.post(&format!("/messages/{at_b}/delete"), &[("csrf", &csrf)]);
    assert_eq!(code, 503, "{page}");
    assert!(page.contains("another site"), "{page}");
    sites.b.restart();
    assert!(store(&sites.b)
        .message(&mailbox("1001"), &at_b)
        .unwrap()
        .is_some());
    let (_, page) = web.get("/inbox?folder=Old");
    assert!(
        page.contains(&at_b) && !page.contains("id=\"partial\""),
        "{page}"
    );
}
