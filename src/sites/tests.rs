//! The merge, and the client against fake peer sites on 127.0.0.1: a
//! passive instance naming its active one, a site that is down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::*;

fn meta(id: &str, folder: Folder, urgent: bool) -> MessageMeta {
    serde_json::from_value(json!({
        "id": id, "folder": folder, "urgent": urgent,
        "received": format!("2026-01-01T00:00:{}Z", &id[..2]),
    }))
    .unwrap()
}

#[test]
fn merged_by_folder_urgent_first_then_time_each_id_once() {
    let local = vec![
        meta("30-a", Folder::Inbox, false),
        meta("10-a", Folder::Old, false),
    ];
    let remote = vec![
        (
            "siteB".to_owned(),
            vec![
                meta("20-b", Folder::Inbox, false),
                meta("40-b", Folder::Inbox, true),
                // the same message as a local one: listed once, as local
                meta("30-a", Folder::Inbox, false),
            ],
        ),
        ("siteC".to_owned(), vec![meta("05-c", Folder::Work, false)]),
    ];
    let merged = merge(local, remote);
    let shown: Vec<(&str, &Home)> = merged
        .iter()
        .map(|m| (m.meta.id.as_str(), &m.home))
        .collect();
    let b = Home::Remote("siteB".into());
    let c = Home::Remote("siteC".into());
    assert_eq!(
        shown,
        [
            ("40-b", &b),
            ("20-b", &b),
            ("30-a", &Home::Local),
            ("10-a", &Home::Local),
            ("05-c", &c),
        ]
    );
    let c = counts_of(&merged.into_iter().map(|m| m.meta).collect::<Vec<_>>());
    assert_eq!((c.new, c.old, c.urgent_new, c.urgent_old), (3, 2, 1, 0));
}

/// A fake active instance of site B: one message in `1001`'s INBOX, its
/// audio, its counts; it checks the token and the site header.
fn active_peer(seen: Arc<AtomicUsize>) -> Router {
    let check = move |h: &HeaderMap| {
        seen.fetch_add(1, Ordering::SeqCst);
        h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok-b")
            && h.get(SITE_HEADER).and_then(|v| v.to_str().ok()) == Some("siteA")
    };
    let (c1, c2, c3) = (check.clone(), check.clone(), check);
    Router::new()
        .route(
            "/api/v1/sites/{domain}/{user}/messages",
            get(
                move |h: HeaderMap, Path((_d, u)): Path<(String, String)>| async move {
                    if !c1(&h) {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    let messages = if u == "1001" {
                        json!([{"id": "20260101T000001.000Z-vmB-aaaaaa", "folder": "INBOX",
                            "received": "2026-01-01T00:00:01Z", "site": "siteB"}])
                    } else {
                        json!([])
                    };
                    axum::Json(json!({"site": "siteB", "messages": messages})).into_response()
                },
            ),
        )
        .route(
            "/api/v1/sites/{domain}/{user}/counts",
            get(move |h: HeaderMap| async move {
                if !c2(&h) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                axum::Json(json!({"new": 1, "old": 0, "urgent_new": 0, "urgent_old": 0}))
                    .into_response()
            }),
        )
        .route(
            "/api/v1/domains/{domain}/mailboxes/{user}/messages/{id}/audio",
            get(move |h: HeaderMap| async move {
                if !c3(&h) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let mut wav = crate::store::wav::header(16000, 6).to_vec();
                wav.extend_from_slice(&[1, 0, 2, 0, 0xff, 0xff]);
                wav.into_response()
            }),
        )
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A passive instance: every request gets `503 not_active` naming the
/// active one.
fn passive_peer(active: SocketAddr) -> Router {
    Router::new().fallback(move || async move {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("location", format!("http://{active}"))],
            axum::Json(json!({"error": "not_active", "detail": "passive"})),
        )
    })
}

/// An instance of another group of the peer site: `404
/// domain_not_served` naming the group that serves the domain.
fn other_group(owner: SocketAddr) -> Router {
    Router::new().fallback(move || async move {
        (
            StatusCode::NOT_FOUND,
            [("location", format!("http://{owner}"))],
            axum::Json(json!({"error": "domain_not_served", "detail": "another group"})),
        )
    })
}

fn sites_for(b: &str, c: &str, e: &str) -> (Arc<Sites>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = json!({
        "site": "siteA",
        "interfaces": {"lo": "127.0.0.1"},
        "sites": {
            "siteB": {"api": b, "token": "tok-b"},
            "siteC": {"api": c, "token": "tok-c", "domains": ["example.com"]},
            "siteD": {"api": "http://127.0.0.1:9", "token": "tok-d", "domains": ["other.org"]},
            "siteE": {"api": e, "token": "tok-b"}
        },
        "roles": [{"name": "vmA", "roletype": "vmail", "iface": "lo", "group": 1, "order": 1,
                   "ext": {"siteshare": dir.path(), "sites_timeout_ms": 1500}}]
    })
    .to_string();
    let config = Config::parse(&text).unwrap();
    let role = config.select(None).unwrap().clone();
    (Sites::new(&config, &role), dir)
}

/// The store at `root` with an empty mailbox 1001@example.com.
fn store_with_1001(root: &std::path::Path) -> (FsStore, MailboxId) {
    let store = FsStore::open(root).unwrap();
    let mailbox = MailboxId::new("1001", "example.com").unwrap();
    store
        .create_mailbox(&mailbox, Default::default(), None)
        .unwrap();
    (store, mailbox)
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn peers_are_asked_at_their_active_instance_and_a_silent_one_marks_partial() {
    let seen = Arc::new(AtomicUsize::new(0));
    let active = serve(active_peer(seen.clone())).await;
    let passive = serve(passive_peer(active)).await;
    let other = serve(other_group(passive)).await;
    let down = format!("http://127.0.0.1:{}", closed_port());
    // B is listed by its passive instance only: followed to the active;
    // E (the same fake site under another name) by an instance of another
    // group: followed to the passive of the right one, then to its active
    let (sites, dir) = sites_for(
        &format!("http://{passive}"),
        &down,
        &format!("http://{other}"),
    );
    let metrics = Arc::new(crate::metrics::Metrics::default());
    sites.set_metrics(metrics.clone());
    let (store, mailbox) = store_with_1001(dir.path());

    let merged = sites.list(&store, &mailbox, None).await.unwrap();
    // B and E answer the same message: listed once, from the first
    assert_eq!(merged.messages.len(), 1, "{merged:?}");
    assert_eq!(merged.messages[0].home, Home::Remote("siteB".into()));
    // C serves example.com and is down; D does not serve it
    assert_eq!(merged.unreachable, ["siteC"]);
    assert!(merged.partial());
    assert!(seen.load(Ordering::SeqCst) >= 1);
    // a folder of its own
    let old = sites
        .list(&store, &mailbox, Some(Folder::Old))
        .await
        .unwrap();
    assert!(old.messages.is_empty() && old.partial());

    // audio: the header's rate, then the samples in order
    let mut audio = sites
        .audio("siteB", &mailbox, "20260101T000001.000Z-vmB-aaaaaa")
        .await
        .unwrap();
    assert_eq!(audio.sample_rate, 16000);
    let mut samples = Vec::new();
    while let Some(chunk) = audio.chunks.recv().await {
        samples.extend(chunk);
    }
    assert_eq!(samples, [1, 2, -1]);
    let audio = sites
        .audio("siteE", &mailbox, "20260101T000001.000Z-vmB-aaaaaa")
        .await
        .unwrap();
    assert_eq!(audio.sample_rate, 16000);

    // counts: B's and E's answers; C's are unknown until it tells
    assert_eq!(sites.remote_counts(&mailbox).await.new, 2);
    let told = Counts {
        new: 2,
        ..Counts::default()
    };
    sites.notice("siteC", &mailbox, told).unwrap();
    assert_eq!(sites.known_counts(&mailbox).new, 4);
    // C does not answer a refresh: its last counts stay
    assert!(sites
        .refresh(std::slice::from_ref(&mailbox))
        .await
        .is_empty());
    assert_eq!(sites.remote_counts(&mailbox).await.new, 4);
    // a notice from a site that is not a peer, or for a domain it does
    // not serve, is refused
    assert!(sites.notice("siteX", &mailbox, told).is_err());
    assert!(sites.notice("siteD", &mailbox, told).is_err());

    // a change to a message of a site that is down is refused, as such
    let e = sites
        .delete("siteC", &mailbox, "20260101T000001.000Z-vmC-bbbbbb")
        .await
        .unwrap_err();
    assert!(
        matches!(e, RemoteError::Unreachable(ref s) if s == "siteC"),
        "{e}"
    );
    // a site that is not configured
    assert!(matches!(
        sites.set_heard("siteZ", &mailbox, "x", true).await,
        Err(RemoteError::Refused(_))
    ));
    // looking for a message nobody has, with C down: C is named
    let e = sites
        .locate(&mailbox, "20260101T000009.000Z-x-cccccc")
        .await
        .unwrap_err();
    assert!(
        matches!(e, RemoteError::Unreachable(ref s) if s == "siteC"),
        "{e}"
    );
    // every request counted by site and outcome
    assert!(metrics.site_requests("siteB", "answered") >= 3);
    assert!(metrics.site_requests("siteC", "unreachable") >= 3);
    assert_eq!(metrics.site_requests("siteD", "answered"), 0);
}

#[tokio::test]
async fn without_peers_the_listing_is_local_and_no_request_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let text = json!({
        "site": "siteA",
        "interfaces": {"lo": "127.0.0.1"},
        "roles": [{"name": "vmA", "roletype": "vmail", "iface": "lo", "group": 1, "order": 1,
                   "ext": {"siteshare": dir.path()}}]
    })
    .to_string();
    let config = Config::parse(&text).unwrap();
    let sites = Sites::new(&config, config.select(None).unwrap());
    let (store, mailbox) = store_with_1001(dir.path());
    let merged = sites.list(&store, &mailbox, None).await.unwrap();
    assert!(merged.messages.is_empty() && !merged.partial());
    assert!(!sites.has_peers("example.com"));
    assert_eq!(sites.remote_counts(&mailbox).await, Counts::default());
    // a missing mailbox is the store's error
    let none = MailboxId::new("1009", "example.com").unwrap();
    assert!(sites.list(&store, &none, None).await.is_err());
}
