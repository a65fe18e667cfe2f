use super::*;

type Setup = Box<dyn Fn() -> H>;

/// Ways to reach each state: (name, setup). Every setup leaves message
/// `o1` marked deleted when it got that far.
fn scripts() -> Vec<(&'static str, Setup)> {
    fn browsing() -> H {
        let mut h = H::logged_in(&["n1"], &["o1"]);
        h.keys("16");
        h.keys("7");
        h
    }
    vec![
        ("idle", Box::new(|| H::new(None))),
        (
            "mailbox",
            Box::new(|| {
                let mut h = H::new(None);
                h.start();
                h.keys("10");
                h
            }),
        ),
        (
            "pin",
            Box::new(|| {
                let mut h = H::new(Some("1001"));
                h.start();
                h
            }),
        ),
        (
            "checking",
            Box::new(|| {
                let mut h = H::new(Some("1001"));
                h.start();
                h.keys("1234#");
                h
            }),
        ),
        (
            "loading",
            Box::new(|| {
                let mut h = H::new(Some("1001"));
                h.start();
                h.keys("1234#");
                h.reply(StoreReply::Pin(PinReply::Ok));
                h
            }),
        ),
        (
            "farewell",
            Box::new(|| {
                let mut h = H::new(Some("1001"));
                h.start();
                h.keys("1#1#1#");
                h
            }),
        ),
        ("main", Box::new(|| H::logged_in(&[], &["o1"]))),
        (
            "browse-announce",
            Box::new(|| {
                let mut h = browsing();
                h.keys("5");
                h
            }),
        ),
        (
            "browse-audio",
            Box::new(|| {
                let mut h = browsing();
                h.keys("5");
                h.done();
                h
            }),
        ),
        ("browse-menu", Box::new(browsing)),
        (
            "forward-entry",
            Box::new(|| {
                let mut h = browsing();
                h.keys("82");
                h
            }),
        ),
        (
            "forwarding",
            Box::new(|| {
                let mut h = browsing();
                h.keys("82#");
                h
            }),
        ),
        (
            "moving",
            Box::new(|| {
                let mut h = H::logged_in(&["n1"], &["o1"]);
                h.keys("1");
                h.done();
                h
            }),
        ),
        (
            "options",
            Box::new(|| {
                let mut h = browsing();
                h.keys("#0");
                h
            }),
        ),
        (
            "temp-menu",
            Box::new(|| {
                let mut h = browsing();
                h.keys("#04");
                h
            }),
        ),
        (
            "record-intro",
            Box::new(|| {
                let mut h = browsing();
                h.keys("#01");
                h
            }),
        ),
        (
            "recording",
            Box::new(|| {
                let mut h = browsing();
                h.keys("#01#");
                h
            }),
        ),
        (
            "stopping",
            Box::new(|| {
                let mut h = browsing();
                h.keys("#01##");
                h
            }),
        ),
        (
            "review",
            Box::new(|| {
                let mut h = browsing();
                h.keys("#01##");
                h.recorded(100);
                h
            }),
        ),
        (
            "saving",
            Box::new(|| {
                let mut h = browsing();
                h.keys("#01##");
                h.recorded(100);
                h.keys("1");
                h
            }),
        ),
        (
            "erasing",
            Box::new(|| {
                let mut h = browsing();
                h.keys("#042");
                h
            }),
        ),
        (
            "new-pin",
            Box::new(|| {
                let mut h = browsing();
                h.keys("#0525");
                h
            }),
        ),
        (
            "new-pin-again",
            Box::new(|| {
                let mut h = browsing();
                h.keys("#052580#");
                h
            }),
        ),
        (
            "setting-pin",
            Box::new(|| {
                let mut h = browsing();
                h.keys("#052580#2580#");
                h
            }),
        ),
    ]
}

#[test]
fn hang_up_in_every_state() {
    for (name, setup) in scripts() {
        let mut h = setup();
        h.drain();
        let deleted = name.starts_with("browse")
            || !matches!(
                name,
                "idle"
                    | "mailbox"
                    | "pin"
                    | "checking"
                    | "loading"
                    | "farewell"
                    | "main"
                    | "moving"
            );
        let end = h.hangup();
        let want = if deleted {
            v(&[r#"Delete { msg: "o1" }"#, "done"])
        } else {
            v(&["done"])
        };
        assert_eq!(end, want, "{name}");
        assert!(h.m.is_done(), "{name}");
        // Nothing more, whatever comes.
        h.keys("1#*0");
        h.done();
        h.recorded(10);
        h.reply(StoreReply::Done);
        h.reply(StoreReply::Pin(PinReply::Ok));
        h.wait(1000);
        h.m.start(h.now);
        assert!(h.drain().is_empty(), "{name}");
        assert!(h.hangup().is_empty(), "{name}");
        assert_eq!(h.m.poll_timeout(), None, "{name}");
    }
}
