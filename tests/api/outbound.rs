//! The one outbound policy, exercised through names the tests' DNS server resolves: a name that
//! resolves to the service's own network is refused wherever a customer can type a URL, and
//! at connect time too, so a name rebound after it was checked does not reach its new address.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::dns::publish_address;
use crate::harness::{Resp, TestApp};

/// Addresses a customer's name must never lead the service to: loopback, RFC 1918, the cloud
/// metadata service's link-local address, loopback mapped into IPv6 (RFC 4291 §2.5.5.2) and
/// behind the NAT64 prefix (RFC 6052 §2.1).
const PRIVATE: [(&str, &str); 5] = [
    ("loopback", "127.0.0.1"),
    ("rfc1918", "10.1.2.3"),
    ("metadata", "169.254.169.254"),
    ("mapped", "::ffff:127.0.0.1"),
    ("nat64", "64:ff9b::7f00:1"),
];

/// A fresh name under `.outbound.test` that resolves to `addr`.
fn name_for(label: &str, addr: &str) -> String {
    let name = format!("{label}-{}.outbound.test", uuid::Uuid::now_v7().simple());
    publish_address(&name, &[addr]);
    name
}

fn assert_refused(detail: &str, name: &str, addr: &str) {
    let addr: std::net::IpAddr = addr.parse().unwrap();
    assert!(
        detail.contains(&format!("refusing {name}: it resolves to {addr}")),
        "{detail}"
    );
}

/// POSTs a webhook for `https://{name}/hook`.
async fn webhook(app: &TestApp, owner: &str, name: &str) -> Resp {
    let url = format!("https://{name}/hook");
    app.api(
        Method::POST,
        &app.org_path("/webhooks"),
        owner,
        Some(json!({ "url": url })),
    )
    .await
}

#[tokio::test]
async fn a_webhook_url_whose_name_resolves_to_a_private_address_is_refused_naming_the_host() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    for (label, addr) in PRIVATE {
        let name = name_for(label, addr);
        let r = webhook(&app, &owner, &name).await;
        r.assert_problem(400);
        assert_refused(r.body["detail"].as_str().unwrap(), &name, addr);
    }
    let public = name_for("public", "8.8.8.8");
    let r = webhook(&app, &owner, &public).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn a_saml_metadata_url_whose_name_resolves_to_a_private_address_is_refused_naming_the_host() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    for (label, addr) in PRIVATE {
        let name = name_for(label, addr);
        let r = app
            .api(
                Method::POST,
                &app.org_path("/sso/connections"),
                &admin,
                Some(json!({
                    "name": "Entra",
                    "saml": { "metadata_url": format!("https://{name}/metadata") }
                })),
            )
            .await;
        r.assert_problem(400);
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.starts_with("metadata_url: "), "{detail}");
        assert_refused(detail, &name, addr);
    }
}

#[tokio::test]
async fn an_oidc_issuer_whose_name_resolves_to_a_private_address_is_refused_naming_the_host() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    let name = name_for("issuer", "169.254.169.254");
    let r = app
        .api(
            Method::POST,
            &app.org_path("/sso/connections"),
            &admin,
            Some(json!({
                "name": "Okta",
                "oidc": {
                    "issuer": format!("https://{name}"),
                    "client_id": "idbridge",
                    "client_secret": "s"
                }
            })),
        )
        .await;
    r.assert_problem(400);
    assert_refused(r.body["detail"].as_str().unwrap(), &name, "169.254.169.254");
}

/// A name that listed a public address when the webhook was made, and is then rebound to
/// loopback (DNS rebinding): the delivery checks the address it connects to, so it is refused and
/// the failure recorded on the webhook.
#[tokio::test]
async fn a_webhook_rebound_to_loopback_after_it_was_checked_is_not_delivered() {
    for addr in ["127.0.0.1", "::ffff:127.0.0.1"] {
        let app = TestApp::new().await;
        let owner = app.admin_token("org_owner", None).await;
        let name = name_for("rebound", "8.8.8.8");
        let r = webhook(&app, &owner, &name).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        publish_address(&name, &[addr]);
        app.user("rebound@example.com").await;
        let policy = idbridge::net::Outbound::new(false, Some(crate::dns::server()));
        idbridge::webhook::run_once(&app.store, &policy).await;
        let hooks = app.api_ok(&app.org_path("/webhooks"), &owner).await;
        let hook = &hooks["items"][0];
        assert_eq!(hook["attempts"], 1, "{hook}");
        assert_eq!(hook["delivered_seq"], 0, "{hook}");
        assert_refused(hook["last_error"].as_str().unwrap_or_default(), &name, addr);
    }
}
