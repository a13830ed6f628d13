//! The console in a real browser: headless Chromium from Debian's packages driven over WebDriver
//! (chromedriver), against a real idbridge server and the samlify test IdP of `tests/interop`.
//! A portal link opens the SSO wizard, which sets up Okta SAML, runs a test sign-in that shows
//! the groups, and a second link creates a directory whose token is shown once. axe-core checks
//! every page for serious or critical accessibility violations.
//!
//! Skipped with a message when chromedriver or the test IdPs are missing, unless `CI=true`, where
//! it fails. With `IDBRIDGE_SCREENSHOTS=1` it saves the main pages to `docs/console-*.png`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::interop::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const AXE: &str = "tests/interop/node_modules/axe-core/axe.min.js";

fn browser_available() -> bool {
    if Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists() && Path::new(AXE).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "CI=true but {CHROMEDRIVER}, {CHROMIUM} or {AXE} is missing: install chromium and \
             chromium-driver, and run npm ci in tests/interop"
        );
    }
    eprintln!(
        "skipped: the browser tests need {CHROMEDRIVER} and {CHROMIUM} (apt-get install chromium \
         chromium-driver) and axe-core (npm ci in tests/interop)"
    );
    false
}

/// chromedriver on a port of its own, stopped when dropped, once it answers `/status`.
struct Driver {
    _child: tokio::process::Child,
    url: String,
}

async fn chromedriver() -> Driver {
    let port = free_port();
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver runs");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(format!("{url}/status")).await
            && r.status().is_success()
        {
            return Driver { _child: child, url };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

async fn chromium(driver: &Driver) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900"],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Injects axe-core (WebDriver scripts are not subject to the page's CSP) and fails on any serious
/// or critical violation of the page shown.
async fn assert_accessible(c: &Client, what: &str) {
    let axe = std::fs::read_to_string(AXE).unwrap();
    c.execute(&axe, vec![]).await.unwrap();
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document).then(r => done(r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '
                      + v.nodes.map(n => n.target.join(' ')).join(', '))));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(found, json!([]), "axe on {what}");
}

async fn screenshot(c: &Client, name: &str) {
    if std::env::var("IDBRIDGE_SCREENSHOTS").is_err() {
        return;
    }
    let png = c.screenshot().await.unwrap();
    std::fs::write(format!("docs/console-{name}.png"), png).unwrap();
}

/// Waits for the page a click leads to: until its h1 reads `expected` (reading the page being
/// left, or an element it no longer has, is waiting too).
async fn wait_h1(c: &Client, expected: &str) {
    for _ in 0..200 {
        if let Ok(e) = c.find(Locator::Css("main h1")).await
            && let Ok(t) = e.text().await
            && t == expected
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no page with the h1 {expected:?}");
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn portal_link(base: &str, platform: &str, org: &str, intent: &str) -> String {
    let made: Value = api(
        base,
        platform,
        &format!("{org}/portal-links"),
        json!({"intent": intent, "return_url": "https://app.example.test/settings"}),
    )
    .await;
    made["url"].as_str().unwrap().to_string()
}

/// The console served with its database, chromedriver and a Chromium session; `None` when the
/// test is skipped.
async fn console_in_chromium() -> Option<(crate::console::Served, Driver, Client)> {
    if !available() || !browser_available() {
        return None;
    }
    let served = crate::console::served().await;
    let driver = chromedriver().await;
    let c = chromium(&driver).await;
    Some((served, driver, c))
}

async fn type_into(c: &Client, css: &str, text: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_it_admin_sets_up_okta_saml_tests_the_sign_in_and_gets_a_scim_token_in_chromium() {
    let Some((served, _driver, c)) = console_in_chromium().await else {
        return;
    };
    // `served` keeps the server's database to the end of the test.
    let (base, org, platform) = (&served.base, &served.org, &served.platform);

    // The SaaS sends its admin to a portal link.
    c.goto(&portal_link(base, platform, &org.id, "sso").await)
        .await
        .unwrap();
    wait_h1(&c, "Single sign-on").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/console/sso");
    assert_accessible(&c, "the SSO page").await;
    screenshot(&c, "sso").await;

    // Okta is the first choice; start its wizard.
    click(&c, "#idp-okta").await;
    c.find(Locator::Css(
        "form[action='/console/sso'] button[type=submit]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_h1(&c, "Set up Okta (SAML)").await;
    let acs = text_of(&c, "#value-0").await;
    let entity = text_of(&c, "#value-1").await;
    assert!(acs.ends_with("/acs"), "{acs}");
    // The script file ran: the copy buttons are shown.
    assert!(
        c.find(Locator::Css("button[data-copy='value-0']"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    assert_accessible(&c, "the SAML wizard").await;
    screenshot(&c, "sso-wizard").await;

    // The admin puts our values into the IdP, downloads its metadata file and uploads it: the
    // page's script reads it into the metadata box.
    let (_keys, key, cert) = idp_keys();
    let idp = saml_idp(
        free_port(),
        &key,
        &cert,
        &json!({"endpoints": {"sp_entity_id": entity, "acs_url": acs}, "config": {}}),
    )
    .await;
    let metadata = reqwest::get(format!("{}/metadata", idp.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let file = downloads.path().join("okta-metadata.xml");
    std::fs::write(&file, &metadata).unwrap();
    type_into(&c, "#metadata_file", file.to_str().unwrap()).await;
    let mut filled = String::new();
    for _ in 0..100 {
        filled = c
            .find(Locator::Id("metadata_xml"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default();
        if !filled.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(filled, metadata, "the file's XML in the box");
    c.find(Locator::Css(
        "form[action$='/metadata'] button[type=submit]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    // The wizard again, now with the IdP's details: only it has the test sign-in's link.
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::LinkText("Test sign-in"))
        .await
        .unwrap();
    // People are created at their first sign-in: the admin ticks it on the wizard.
    click(&c, "#jit").await;
    click(&c, "form[action$='/who-signs-in'] button[type=submit]").await;
    // Saved, the wizard opens again at its next step, read anew from the server.
    for _ in 0..100 {
        if c.current_url().await.unwrap().fragment() == Some("test") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.current_url().await.unwrap().fragment(), Some("test"));
    wait_h1(&c, "Set up Okta (SAML)").await;
    assert!(
        c.find(Locator::Id("jit"))
            .await
            .unwrap()
            .prop("checked")
            .await
            .unwrap()
            .as_deref()
            == Some("true"),
        "saved ticked"
    );

    // The test sign-in: through the IdP and back to the console.
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::LinkText("Test sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_h1(&c, "The test sign-in worked").await;
    let page = c.source().await.unwrap();
    for seen in ["bob@example.org", "Bob Example", "Engineering", "Admins"] {
        assert!(page.contains(seen), "{seen} in {page}");
    }
    assert!(page.contains("It would create the user"), "{page}");
    assert_accessible(&c, "the test sign-in result").await;
    screenshot(&c, "test-sign-in").await;

    // A second link, for directory sync: a directory and its token, shown once.
    c.goto(&portal_link(base, platform, &org.id, "scim").await)
        .await
        .unwrap();
    wait_h1(&c, "Directory sync (SCIM)").await;
    assert_accessible(&c, "the directories page").await;
    type_into(&c, "#name", "Okta").await;
    c.find(Locator::Css(
        "form[action='/console/directories'] button[type=submit]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_h1(&c, "Directory Okta created").await;
    let token = text_of(&c, "#scim-token").await;
    assert!(token.starts_with("idb_"), "{token}");
    assert_accessible(&c, "the new token").await;
    screenshot(&c, "directory-token").await;
    c.find(Locator::LinkText("Back to the directories"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_h1(&c, "Directory sync (SCIM)").await;
    assert!(!c.source().await.unwrap().contains(&token), "shown once");
    screenshot(&c, "directories").await;
    c.close().await.unwrap();
}

/// A SCIM request of a directory's IdP; the created resource's id.
async fn scim_push(base: &str, dir: &str, token: &str, path: &str, body: Value) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/scim/v2/{dir}/{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{path}");
    let made: Value = r.json().await.unwrap();
    made["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_it_admin_maps_a_group_with_its_preview_finds_the_person_and_the_events_in_chromium() {
    let Some((served, _driver, c)) = console_in_chromium().await else {
        return;
    };
    let (base, org, platform) = (&served.base, &served.org, &served.platform);
    // The IdP pushes a person and their group.
    let made = api(
        base,
        &org.admin,
        &format!("{}/directories", org.id),
        json!({"name": "Okta"}),
    )
    .await;
    let dir = made["directory"]["id"].as_str().unwrap();
    let token = made["token"]["token"].as_str().unwrap();
    let ada = scim_push(
        base,
        dir,
        token,
        "Users",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada@example.org",
            "displayName": "Ada Lovelace",
            "emails": [{"value": "ada@example.org", "type": "work"}],
            "active": true
        }),
    )
    .await;
    scim_push(
        base,
        dir,
        token,
        "Groups",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering",
            "members": [{"value": ada}]
        }),
    )
    .await;

    c.goto(&portal_link(base, platform, &org.id, "mapping").await)
        .await
        .unwrap();
    wait_h1(&c, "Group to role mapping").await;
    assert_accessible(&c, "the mapping page").await;
    type_into(&c, "#q", "engin").await;
    click(&c, "form[action='/console/mapping'] button[type=submit]").await;
    // The same page, now listing what the search found.
    for _ in 0..200 {
        if c.current_url().await.unwrap().query() == Some("q=engin") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_h1(&c, "Group to role mapping").await;
    click(&c, "#group-0").await;
    click(&c, "#grant-org").await;
    click(&c, "#org_role option[value='org_admin']").await;
    click(
        &c,
        "form[action='/console/mapping/preview'] button[type=submit]",
    )
    .await;
    wait_h1(&c, "Preview of the rule").await;
    let page = c.source().await.unwrap();
    assert!(
        page.contains("gains: organization role: nothing → org_admin"),
        "{page}"
    );
    assert_accessible(&c, "the preview").await;
    screenshot(&c, "mapping-preview").await;
    click(
        &c,
        "form[action='/console/mapping/rules'] button[type=submit]",
    )
    .await;
    wait_h1(&c, "Group to role mapping").await;
    // The organization had rules already: the new one's row.
    let reach = c
        .find(Locator::XPath(
            "//tr[td[2][text()='group Engineering']]/td[@class='reach']",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(reach, "1");
    assert_accessible(&c, "the rules").await;
    screenshot(&c, "mapping").await;

    // The person's access, with the rule that gives it.
    c.find(Locator::LinkText("People"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_h1(&c, "People").await;
    type_into(&c, "#q", "lovelace").await;
    click(&c, "form[action='/console/people'] button[type=submit]").await;
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::LinkText("Ada Lovelace"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_h1(&c, "Ada Lovelace").await;
    let page = c.source().await.unwrap();
    assert!(page.contains("member of group Engineering"), "{page}");
    assert_accessible(&c, "a person's page").await;
    screenshot(&c, "people").await;

    // What happened, on the Activity page: the grant the rule made, and the rule's audit entry.
    c.goto(&portal_link(base, platform, &org.id, "activity").await)
        .await
        .unwrap();
    wait_h1(&c, "Activity").await;
    click(&c, "#event option[value='access.granted']").await;
    type_into(&c, "#resource", "MappingRule").await;
    click(&c, "form[action='/console/activity'] button[type=submit]").await;
    for _ in 0..200 {
        if c.current_url()
            .await
            .unwrap()
            .query()
            .is_some_and(|q| q.contains("resource=MappingRule"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_h1(&c, "Activity").await;
    let granted = c
        .find(Locator::XPath("//tr[td[2][text()='access.granted']]/td[3]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(granted, "ada@example.org");
    let page = c.source().await.unwrap();
    assert!(page.contains("create MappingRule"), "{page}");
    assert!(!page.contains("user.provisioned</td>"), "{page}");
    assert_accessible(&c, "the activity page").await;
    screenshot(&c, "activity").await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn an_it_admin_sets_up_entra_oidc_and_tests_the_sign_in_in_chromium() {
    let Some((served, _driver, c)) = console_in_chromium().await else {
        return;
    };
    let (base, org, platform) = (&served.base, &served.org, &served.platform);
    c.goto(&portal_link(base, platform, &org.id, "sso").await)
        .await
        .unwrap();
    wait_h1(&c, "Single sign-on").await;
    click(&c, "#idp-entra-oidc").await;
    click(&c, "form[action='/console/sso'] button[type=submit]").await;
    wait_h1(&c, "Set up Microsoft Entra ID (OIDC)").await;
    let redirect_uri = text_of(&c, "#redirect-uri").await;
    assert_eq!(redirect_uri, format!("{base}/sso/oidc/callback"));
    assert!(
        c.find(Locator::Css("button[data-copy='redirect-uri']"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    assert_accessible(&c, "the Entra OIDC wizard").await;
    screenshot(&c, "oidc-wizard").await;

    // The admin registers the application at the IdP, then gives us its details.
    let secret = "entra-client-secret-value";
    let accounts = json!({"alice": {"email": "alice@example.org", "name": "Alice Example",
                                    "groups": ["Engineering", "Admins"]}});
    let idp = oidc_idp(&redirect_uri, secret, &accounts).await;
    type_into(&c, "#issuer", &idp.url).await;
    type_into(&c, "#client_id", "idbridge").await;
    type_into(&c, "#client_secret", secret).await;
    // The test provider sends groups for a scope of that name only (Entra needs none).
    click(&c, "details summary").await;
    type_into(&c, "#scopes", "openid email profile groups").await;
    click(&c, "form[action='/console/sso/oidc'] button[type=submit]").await;
    let test = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::LinkText("Test sign-in"))
        .await
        .unwrap();
    assert!(!c.source().await.unwrap().contains(secret));
    let conn_id = c
        .current_url()
        .await
        .unwrap()
        .path()
        .trim_start_matches("/console/sso/")
        .to_string();
    crate::console::create_users_just_in_time(base, org, &conn_id).await;

    // The test sign-in: the provider's login form, then back to the console.
    test.click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("input[name=login]"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    type_into(&c, "input[name=password]", "x").await;
    click(&c, "button[type=submit]").await;
    wait_h1(&c, "The test sign-in worked").await;
    let page = c.source().await.unwrap();
    for seen in [
        "alice@example.org",
        "Alice Example",
        "Engineering",
        "Admins",
    ] {
        assert!(page.contains(seen), "{seen} in {page}");
    }
    assert_accessible(&c, "the OIDC test sign-in result").await;
    // The page where owners and admins sign in with their organization's SSO.
    c.goto(&format!("{base}/console/sign-in?org={}", org.id))
        .await
        .unwrap();
    wait_h1(&c, "Sign in to the console").await;
    assert!(
        c.source()
            .await
            .unwrap()
            .contains("Sign in with Microsoft Entra ID (OIDC)")
    );
    assert_accessible(&c, "the console sign-in page").await;
    c.close().await.unwrap();
}
