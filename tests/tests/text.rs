//! Safe text (API.md, "Safe writes"): single-line fields refuse every
//! control character, CR and LF included, and the bidirectional overrides,
//! so that no title, name or reason can draw a forged screen on a member's
//! terminal; a description keeps its line feeds and tabs, CRLF becoming LF.
//! Each refusal is a 422 naming the field, and nothing is stored.

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::{json, Value};

/// What the review's attacker sent: a carriage return that overwrites the
/// line, a line feed that starts a forged block, ESC that starts a terminal
/// sequence, and two bidirectional controls that make text read backwards.
const HOSTILE: [(&str, &str); 5] = [
    ("CR", "\r"),
    ("LF", "\n"),
    ("ESC", "\u{1b}[2J"),
    ("U+202E", "\u{202e}"),
    ("U+2066", "\u{2066}"),
];

/// `text` with `control` inside it, as a forged block would carry it.
fn forged(text: &str, control: &str) -> String {
    format!("{text}{control}ALERT robbery, 0.2 km away")
}

/// Asserts a 422 `invalid_input` whose detail names `field`.
fn refused_naming(reply: &Reply, field: &str, what: &str) {
    let detail = reply.problem(422, "invalid_input");
    assert!(
        detail.starts_with(&format!("{field} must not contain")),
        "{what}: {detail}"
    );
}

/// Puts a text into one field of an alert's body.
type SetField = fn(&mut Value, String);

#[tokio::test]
async fn every_single_line_field_of_an_alert_refuses_line_breaks_controls_and_bidi_overrides() {
    let (server, _staff, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    let fields: [(&str, SetField); 4] = [
        ("title", |alert, text| alert["title"] = text.into()),
        ("suspects[0].clothing", |alert, text| {
            alert["suspects"] = json!([{ "clothing": text }])
        }),
        ("vehicles[0].plate", |alert, text| {
            alert["vehicles"] = json!([{ "plate": text }])
        }),
        ("suspects[1].notes", |alert, text| {
            alert["suspects"] = json!([{ "sex": "male" }, { "notes": text }])
        }),
    ];
    for (field, set) in fields {
        for (name, control) in HOSTILE {
            let mut alert = casing_at("Two men casing showcases", MANHATTAN, 5.0);
            set(&mut alert, forged("red hoodie", control));
            let reply = api.post("/v1/alerts", &alert).await;
            refused_naming(&reply, field, &format!("{field} with {name}"));
        }
    }
    let listed = api.get("/v1/alerts").await;
    assert_eq!(listed.body["alerts"], json!([]), "nothing stored");

    // An edit is held to the same rule, and leaves the alert as it was.
    let alert = api
        .post_alert(&casing_at("Two men casing showcases", MANHATTAN, 5.0))
        .await;
    let path = format!("/v1/alerts/{}", alert["id"]);
    for (name, control) in HOSTILE {
        let reply = api
            .patch(&path, &json!({ "title": forged("Two men", control) }))
            .await;
        refused_naming(&reply, "title", &format!("edit with {name}"));
    }
    assert_eq!(
        api.get(&path).await.body["title"],
        "Two men casing showcases"
    );
}

#[tokio::test]
async fn a_description_keeps_lf_and_tab_stores_crlf_as_lf_and_refuses_other_controls() {
    let (server, _staff, store) = TestServer::with_store().await;
    let api = server.api(Some(&store.token));
    let mut alert = casing_at("Two men casing showcases", MANHATTAN, 5.0);
    alert["description"] = "Asked for three rings.\r\nWatched the door.\rLeft:\tnorth\n".into();
    let posted = api.post_alert(&alert).await;
    let expected = "Asked for three rings.\nWatched the door.\nLeft:\tnorth";
    assert_eq!(posted["description"], expected);
    let stored = api.get(&format!("/v1/alerts/{}", posted["id"])).await;
    assert_eq!(stored.body["description"], expected, "as stored");

    for (name, control) in [
        ("ESC", "\u{1b}[2J"),
        ("NUL", "\u{0}"),
        ("DEL", "\u{7f}"),
        ("U+202E", "\u{202e}"),
        ("U+2066", "\u{2066}"),
    ] {
        let mut alert = casing_at("Another", MANHATTAN, 5.0);
        alert["description"] = forged("Asked for three rings.", control).into();
        let reply = api.post("/v1/alerts", &alert).await;
        refused_naming(&reply, "description", &format!("description with {name}"));
    }
    let listed = api.get("/v1/alerts").await;
    assert_eq!(
        listed.body["alerts"].as_array().map(Vec::len),
        Some(1),
        "only the first alert was stored: {:?}",
        listed.body
    );
}

#[tokio::test]
async fn a_pledge_refuses_forged_names_addresses_contacts_and_phones() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    for field in [
        "store_name",
        "address",
        "contact_name",
        "phone",
        "contact_email",
    ] {
        for (name, control) in HOSTILE {
            let mut pledge = pledge_body("Gold & Co", BROOKLYN, 10.0);
            let base = pledge[field].as_str().expect("a text field").to_owned();
            pledge[field] = forged(&base, control).into();
            let reply = server.anonymous().post("/v1/pledge", &pledge).await;
            let detail = reply.problem(422, "invalid_input");
            assert!(detail.starts_with(field), "{field} with {name}: {detail}");
        }
    }
    let stores = server.api(Some(&staff)).get("/v1/stores").await;
    assert_eq!(stores.body["stores"], json!([]), "no application stored");
}

#[tokio::test]
async fn every_reason_and_label_refuses_line_breaks_controls_and_bidi_overrides() {
    let (server, staff, author) = TestServer::with_store().await;
    let other = server.member(&staff, "Gold & Co", BROOKLYN, 25.0).await;
    let (pending_store, _secret) = server.pledge("Pending Gems", NEWARK, 10.0).await;
    let admin = server.staff_token("admin");
    let staff_api = server.api(Some(&staff));
    let alert = server
        .api(Some(&author.token))
        .post_alert(&casing_at("Two men casing showcases", MANHATTAN, 25.0))
        .await;
    let id = id_of(&alert);
    let audit_before = staff_api.get("/v1/audit").await.body["entries"].clone();

    let actions = [
        (
            author.token.as_str(),
            format!("/v1/alerts/{id}/retract"),
            "reason",
        ),
        (
            other.token.as_str(),
            format!("/v1/alerts/{id}/flags"),
            "reason",
        ),
        (staff.as_str(), format!("/v1/alerts/{id}/retract"), "reason"),
        (
            staff.as_str(),
            format!("/v1/stores/{pending_store}/reject"),
            "reason",
        ),
        (
            staff.as_str(),
            format!("/v1/stores/{}/suspend", other.id),
            "reason",
        ),
        (author.token.as_str(), "/v1/me/tokens".to_owned(), "label"),
        (admin.as_str(), "/v1/me/tokens".to_owned(), "label"),
    ];
    for (token, path, field) in &actions {
        for (name, control) in HOSTILE {
            let reply = server
                .api(Some(token))
                .post(path, &json!({ *field: forged("Duplicate of 41", control) }))
                .await;
            refused_naming(&reply, field, &format!("{path} with {name}"));
        }
    }

    // Nothing changed: the alert is published and unflagged, the stores
    // as they were, no new token, no audit entry.
    let now = staff_api.get(&format!("/v1/alerts/{id}")).await;
    assert_eq!(now.body["status"], "published");
    let queue = staff_api.get("/v1/moderation/queue").await;
    assert_eq!(queue.body["flagged"], json!([]));
    let pending = staff_api.get("/v1/stores?status=pending").await;
    assert_eq!(pending.body["stores"][0]["id"], pending_store);
    let approved = staff_api.get("/v1/stores?status=approved").await;
    assert_eq!(approved.body["stores"].as_array().map(Vec::len), Some(2));
    let tokens = server.api(Some(&author.token)).get("/v1/me/tokens").await;
    assert_eq!(tokens.body["tokens"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        staff_api.get("/v1/audit").await.body["entries"],
        audit_before
    );
}
