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

async fn h1(c: &Client) -> String {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("main h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
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

#[tokio::test]
async fn an_it_admin_sets_up_okta_saml_tests_the_sign_in_and_gets_a_scim_token_in_chromium() {
    if !available() || !browser_available() {
        return;
    }
    let crate::console::Served {
        base,
        org,
        platform,
        // Kept to the end of the test: the server's database.
        _store,
        _dir,
    } = crate::console::served().await;
    let driver = chromedriver().await;
    let c = chromium(&driver).await;

    // The SaaS sends its admin to a portal link.
    c.goto(&portal_link(&base, &platform, &org.id, "sso").await)
        .await
        .unwrap();
    assert_eq!(h1(&c).await, "Single sign-on");
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
    assert_eq!(h1(&c).await, "Set up Okta (SAML)");
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

    // The admin puts our values into the IdP and gives us its metadata URL.
    let (_keys, key, cert) = idp_keys();
    let idp = saml_idp(
        free_port(),
        &key,
        &cert,
        &json!({"endpoints": {"sp_entity_id": entity, "acs_url": acs}, "config": {}}),
    )
    .await;
    c.find(Locator::Css("#metadata_url"))
        .await
        .unwrap()
        .send_keys(&format!("{}/metadata", idp.url))
        .await
        .unwrap();
    c.find(Locator::Css(
        "form[action$='/metadata'] button[type=submit]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let wizard = c.current_url().await.unwrap();
    let conn_id = wizard
        .path()
        .trim_start_matches("/console/sso/")
        .to_string();
    // Users are created at their first sign-in, as the SaaS set the connection up to.
    let r = reqwest::Client::new()
        .patch(format!(
            "{base}/api/v1/orgs/{}/sso/connections/{conn_id}",
            org.id
        ))
        .bearer_auth(&org.admin)
        .json(&json!({"jit": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // The test sign-in: through the IdP and back to the console.
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::LinkText("Test sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(h1(&c).await, "The test sign-in worked");
    let page = c.source().await.unwrap();
    for seen in ["bob@example.org", "Bob Example", "Engineering", "Admins"] {
        assert!(page.contains(seen), "{seen} in {page}");
    }
    assert!(page.contains("It would create the user"), "{page}");
    assert_accessible(&c, "the test sign-in result").await;
    screenshot(&c, "test-sign-in").await;

    // A second link, for directory sync: a directory and its token, shown once.
    c.goto(&portal_link(&base, &platform, &org.id, "scim").await)
        .await
        .unwrap();
    assert_eq!(h1(&c).await, "Directory sync (SCIM)");
    assert_accessible(&c, "the directories page").await;
    c.find(Locator::Css("#name"))
        .await
        .unwrap()
        .send_keys("Okta")
        .await
        .unwrap();
    c.find(Locator::Css(
        "form[action='/console/directories'] button[type=submit]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    assert_eq!(h1(&c).await, "Directory Okta created");
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
    assert_eq!(h1(&c).await, "Directory sync (SCIM)");
    assert!(!c.source().await.unwrap().contains(&token), "shown once");
    screenshot(&c, "directories").await;
    c.close().await.unwrap();
}
