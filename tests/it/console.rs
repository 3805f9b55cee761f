//! The web console (issue 18, first pages) in a real browser: Debian's chromium, headless,
//! driven through chromedriver (WebDriver) against the real `ledger serve` binary seeded with
//! a tenant. It signs in with a key, checks what each page shows against the API's answers,
//! that a viewer key is told what it may not see, and writes a screenshot of each page to
//! `target/console-screenshots/`. chromium and chromedriver must be installed
//! (`scripts/install-chromium.sh`; `.ci/run` does it): without them the test fails, never
//! skips.

use crate::crash::{start, ROOT_TOKEN};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tools::crash::Api;

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn chromedriver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "chromedriver is not installed: run `sudo bash scripts/install-chromium.sh` \
             (Debian's chromium and chromium-driver)",
        );
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1280,900"]}),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&driver.url)
            .await
        {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromium did not start through chromedriver: {e}"),
        }
    }
}

/// The text of the element `css`, waiting for it to appear.
async fn text_of(client: &Client, css: &str) -> String {
    let element = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"));
    element.text().await.expect("its text")
}

/// Click the element `css`.
async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` to click: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking `{css}`: {e}"));
}

async fn screenshot(client: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("console-screenshots"))
        .expect("a target directory");
    std::fs::create_dir_all(&dir).expect("a screenshot folder");
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
}

async fn sign_in(client: &Client, base: &str, tenant: &str, key: &str) {
    client
        .goto(&format!("{base}/console"))
        .await
        .expect("open the console");
    let field = |css: &'static str| async move {
        client
            .wait()
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    };
    field("#tenant")
        .await
        .send_keys(tenant)
        .await
        .expect("type");
    field("#key").await.send_keys(key).await.expect("type");
    field("#sign-in-button")
        .await
        .click()
        .await
        .expect("sign in");
}

/// A tenant with a group tree (Sales full at 2 of 2 phone_system), licences and a user
/// blocked from call recording by a window that ended.
struct Seeded {
    tenant: String,
    admin: String,
    viewer: String,
    user: String,
    expired_group: String,
}

fn seed(base: &str) -> Seeded {
    let root = Api::new(base, ROOT_TOKEN, 1);
    let ok = |answer: Result<(u16, Value), tools::crash::Failure>| match answer {
        Ok((_, body)) => body,
        Err(e) => panic!("seeding failed: {e:?}"),
    };
    let tenant = ok(root.send("POST", "/v1/tenants", Some(&json!({"name": "Acme"}))))["id"]
        .as_str()
        .expect("id")
        .to_string();
    let t = format!("/v1/tenants/{tenant}");
    let key = |role: &str| {
        ok(root.send(
            "POST",
            &format!("{t}/keys"),
            Some(&json!({"role": role, "name": role})),
        ))["token"]
            .as_str()
            .expect("token")
            .to_string()
    };
    let (admin, viewer) = (key("admin"), key("viewer"));
    let group = |name: &str, parent: Option<&str>| {
        ok(root.send(
            "POST",
            &format!("{t}/groups"),
            Some(&json!({"name": name, "parent_id": parent})),
        ))["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let hq = group("HQ", None);
    let sales = group("Sales", Some(&hq));
    let support = group("Support", Some(&hq));
    ok(root.send(
        "PUT",
        &format!("{t}/groups/{sales}/restriction"),
        Some(&json!({"enabled": true, "limits": {"phone_system": 2}})),
    ));
    ok(root.send(
        "PUT",
        &format!("{t}/groups/{support}/restriction"),
        Some(
            &json!({"enabled": true, "valid_from": "2020-01-01T00:00:00Z",
                     "valid_until": "2021-01-01T00:00:00Z"}),
        ),
    ));
    for (kind, quantity) in [("phone_system", 4), ("call_recording", 2)] {
        ok(root.send(
            "POST",
            &format!("{t}/licenses"),
            Some(&json!({"type": kind, "quantity": quantity})),
        ));
    }
    let user = |name: &str, group: &str| {
        ok(root.send(
            "POST",
            &format!("{t}/users"),
            Some(&json!({"name": name, "group_id": group})),
        ))["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    for name in ["Ann", "Bob"] {
        let id = user(name, &sales);
        ok(root.send(
            "POST",
            &format!("{t}/assignments"),
            Some(&json!({"user_id": id, "type": "phone_system"})),
        ));
    }
    let carol = user("Carol", &support);
    ok(root.send(
        "POST",
        &format!("{t}/assignments"),
        Some(&json!({"user_id": carol, "type": "phone_system", "addons": ["call_recording"]})),
    ));
    Seeded {
        tenant,
        admin,
        viewer,
        user: carol,
        expired_group: support,
    }
}

/// How many `license_assigned` events the tenant has, and when its last licences were
/// provisioned (before any assignment).
async fn assigned_events_and_provisioning(base: &str, seeded: &Seeded) -> (usize, String) {
    let api = Api::new(base, &seeded.admin, 1);
    let t = format!("/v1/tenants/{}", seeded.tenant);
    tokio::task::spawn_blocking(move || {
        let page = api
            .send("GET", &format!("{t}/events?limit=200"), None)
            .expect("events")
            .1;
        let items = page["items"].as_array().expect("items").clone();
        let assigned = items
            .iter()
            .filter(|e| e["kind"] == "license_assigned")
            .count();
        let provisioned = items
            .iter()
            .rfind(|e| e["kind"] == "licenses_provisioned")
            .and_then(|e| e["recorded_at"].as_str())
            .expect("a provisioning")
            .to_string();
        (assigned, provisioned)
    })
    .await
    .expect("read")
}

/// `/usage?at=` as the API answers it to the admin.
async fn as_of_usage(base: &str, seeded: &Seeded, at: &str) -> Value {
    let api = Api::new(base, &seeded.admin, 1);
    let path = format!("/v1/tenants/{}/usage?at={at}", seeded.tenant);
    tokio::task::spawn_blocking(move || api.send("GET", &path, None).expect("usage").1)
        .await
        .expect("read")
}

/// The invoice and the billing figures of `month`, as the API answers them to the admin.
async fn invoice_and_billing(base: &str, seeded: &Seeded, month: &str) -> (Value, Value) {
    let api = Api::new(base, &seeded.admin, 1);
    let t = format!("/v1/tenants/{}", seeded.tenant);
    let month = month.to_string();
    tokio::task::spawn_blocking(move || {
        let invoice = api
            .send("GET", &format!("{t}/invoices/{month}"), None)
            .expect("the invoice")
            .1;
        let billing = api
            .send("GET", &format!("{t}/billing/{month}"), None)
            .expect("the billing month")
            .1;
        (invoice, billing)
    })
    .await
    .expect("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_what_the_api_answers_in_a_real_browser() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = start(data.path());
    let base = server.base.clone();
    let seeded = tokio::task::spawn_blocking({
        let base = base.clone();
        move || seed(&base)
    })
    .await
    .expect("seeded");
    let api = Api::new(&base, &seeded.admin, 1);
    let t = format!("/v1/tenants/{}", seeded.tenant);
    let usage = tokio::task::spawn_blocking({
        let t = t.clone();
        move || api.send("GET", &format!("{t}/usage"), None)
    })
    .await
    .expect("usage")
    .expect("usage answer")
    .1;

    let driver = chromedriver();
    let client = browser(&driver).await;

    // Overview: contracted / allocated / free per type, as /usage says.
    sign_in(&client, &base, &seeded.tenant, &seeded.admin).await;
    let overview = text_of(&client, "#usage").await;
    for (code, figures) in usage["types"].as_object().expect("types") {
        let row = format!(
            "{code} {} {} {}",
            figures["owned"], figures["assigned"], figures["free"]
        );
        assert!(
            overview.contains(&row),
            "`{row}` not in the overview:\n{overview}"
        );
    }
    assert!(text_of(&client, "#writes").await.contains("taken"));
    assert!(text_of(&client, "#events")
        .await
        .contains("license_assigned"));
    screenshot(&client, "overview").await;

    // Groups: the tree with limits and red marks where a limit is full or a window is over.
    click(&client, "#nav-groups").await;
    let tree = text_of(&client, "#group-tree").await;
    assert!(tree.contains("Sales phone_system 2/2 (0 left)"), "{tree}");
    assert!(tree.contains("phone_system limit full"), "{tree}");
    assert!(tree.contains("window expired"), "{tree}");
    screenshot(&client, "groups").await;

    // User: why Carol cannot use call recording — the blocking check highlighted.
    client
        .goto(&format!(
            "{base}/console#user/{}/call_recording",
            seeded.user
        ))
        .await
        .expect("open the user");
    assert_eq!(text_of(&client, "#allowed").await, "blocked");
    let blocked = client
        .wait()
        .for_element(Locator::Css("#checks li.highlight"))
        .await
        .expect("the blocking check is highlighted");
    let text = blocked.text().await.expect("text");
    assert!(
        text.contains("window_expired") && text.contains("Support"),
        "{text}"
    );
    let _ = &seeded.expired_group;
    screenshot(&client, "user").await;

    // Billing: this month's peaks, the chart and the invoice with the API's digest.
    click(&client, "#nav-billing").await;
    let peaks = text_of(&client, "#billing-peaks").await;
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let figures = &invoice_and_billing(&base, &seeded, &month).await;
    for (code, f) in figures.1["types"].as_object().expect("types") {
        let row = format!(
            "{code} {} {}",
            f["peak_units"],
            f["peak_at"].as_str().expect("at")
        );
        assert!(peaks.contains(&row), "`{row}` not in:\n{peaks}");
    }
    assert_eq!(
        text_of(&client, "#invoice-digest").await,
        figures.0["digest"].as_str().expect("digest")
    );
    client
        .find(Locator::Css("#units-chart polyline"))
        .await
        .expect("a line per type in the chart");
    let csv = client
        .find(Locator::Css("#invoice-csv"))
        .await
        .expect("a CSV download");
    assert!(csv
        .attr("download")
        .await
        .expect("attribute")
        .is_some_and(|name| name.ends_with(".csv")));
    screenshot(&client, "billing").await;

    // Audit: the events filtered as the API filters them, and the usage as of an instant
    // between the provisioning and the first assignment.
    let (events, provisioned_at) = assigned_events_and_provisioning(&base, &seeded).await;
    let as_of = as_of_usage(&base, &seeded, &provisioned_at).await;
    client
        .goto(&format!(
            "{base}/console#audit/{}/{}",
            "kind%3Dlicense_assigned",
            provisioned_at.replace(':', "%3A")
        ))
        .await
        .expect("open the audit");
    let listed = text_of(&client, "#audit-events tbody").await;
    assert_eq!(
        listed.lines().count(),
        events,
        "one row per license_assigned event:\n{listed}"
    );
    let then = text_of(&client, "#audit-usage").await;
    for (code, f) in as_of["types"].as_object().expect("types") {
        let row = format!("{code} {} {} {}", f["owned"], f["assigned"], f["free"]);
        assert!(
            then.contains(&row),
            "`{row}` not in the as-of usage:\n{then}"
        );
    }
    screenshot(&client, "audit").await;

    // A viewer signs in too; the events (auditor) are refused and the page says so.
    click(&client, "#sign-out").await;
    sign_in(&client, &base, &seeded.tenant, &seeded.viewer).await;
    let _ = text_of(&client, "#usage").await;
    let page = text_of(&client, "#page").await;
    assert!(page.contains("Events:"), "the viewer is told: {page}");
    screenshot(&client, "overview-viewer").await;
    click(&client, "#nav-billing").await;
    let refused = text_of(&client, "#page p.error").await;
    assert!(
        refused.contains("may not see"),
        "a viewer sees no billing: {refused}"
    );
    screenshot(&client, "billing-viewer").await;

    // The key never lands in a URL.
    let url = client.current_url().await.expect("url");
    assert!(!url.as_str().contains(&seeded.viewer), "{url}");
    client.close().await.expect("close the browser");
    drop(server);
}
