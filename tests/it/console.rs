//! The web console (issue 18) in a real browser: Debian's chromium, headless, driven through
//! chromedriver (WebDriver) against the real `ledger serve` binary seeded with a tenant. It
//! signs in with a key, checks what each page shows against the API's answers (the what-if
//! preview too), moves the audit's time slider, builds and previews a change and signs in with
//! the keyboard alone, checks that a viewer key is told what it may not see, and writes a
//! screenshot of each page to
//! `target/console-screenshots/`. chromium and chromedriver must be installed
//! (`scripts/install-chromium.sh`; `.ci/run` does it): without them the test fails, never
//! skips.

use crate::crash::{start, ROOT_TOKEN};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tools::crash::Api;

/// chromedriver on a free loopback port, in a process group of its own, which is killed when
/// this is dropped: the chromium it started goes too, even when a failed assertion left the
/// browser session open.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(group) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: a signal to the process group this test created (its id is the
            // driver's pid, which is not reaped until `wait` below).
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
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
        .process_group(0)
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

/// The text of the element `css`, waiting for it to appear. A page replaces its content when
/// it renders: an element found just before that is read again from the new content.
async fn text_of(client: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let element = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"));
        match element.text().await {
            Ok(text) => return text,
            Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {}
            Err(e) => panic!("the text of `{css}`: {e}"),
        }
    }
}

/// Click the element `css`, as a mouse user does.
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
    sales: String,
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
        sales,
    }
}

/// Press and release each of `keys` where the focus is, as a keyboard user does (WebDriver
/// key actions: the page sees real key events).
async fn keys(client: &Client, keys: impl IntoIterator<Item = char>) {
    let mut actions = KeyActions::new("keyboard".into());
    for key in keys {
        actions = actions
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
    }
    client
        .perform_actions(actions)
        .await
        .unwrap_or_else(|e| panic!("pressing keys: {e}"));
}

/// Press `key` where the focus is.
async fn press(client: &Client, key: Key) {
    keys(client, [char::from(key)]).await;
}

/// Type `text` where the focus is.
async fn type_text(client: &Client, text: &str) {
    keys(client, text.chars()).await;
}

/// The id of the focused element.
async fn focused_id(client: &Client) -> String {
    client
        .active_element()
        .await
        .expect("a focused element")
        .attr("id")
        .await
        .expect("its id")
        .unwrap_or_default()
}

/// Press Tab until the element `id` has the focus (at most 40 times): it is reachable with
/// the keyboard alone.
async fn tab_to(client: &Client, id: &str) {
    for _ in 0..40 {
        if focused_id(client).await == id {
            return;
        }
        press(client, Key::Tab).await;
    }
    panic!("`#{id}` cannot be reached with Tab");
}

/// The value of the form field `css`.
async fn value_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .prop("value")
        .await
        .expect("its value")
        .unwrap_or_default()
}

/// Wait until the element `css` has text containing `part`, and return its text.
async fn wait_for_text(client: &Client, css: &str, part: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(part) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "`{css}` never showed `{part}`; it shows:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A call to the API as the admin, off the async runtime.
async fn admin_call(
    base: &str,
    seeded: &Seeded,
    method: &'static str,
    rest: &str,
    body: Option<Value>,
) -> Value {
    let api = Api::new(base, &seeded.admin, 1);
    let path = format!("/v1/tenants/{}{rest}", seeded.tenant);
    tokio::task::spawn_blocking(move || match api.send(method, &path, body.as_ref()) {
        Ok((_, answer)) => answer,
        Err(e) => panic!("{method} {path}: {e:?}"),
    })
    .await
    .expect("call")
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
    admin_call(base, seeded, "GET", &format!("/usage?at={at}"), None).await
}

/// The invoice and the billing figures of `month`, as the API answers them to the admin.
async fn invoice_and_billing(base: &str, seeded: &Seeded, month: &str) -> (Value, Value) {
    let invoice = admin_call(base, seeded, "GET", &format!("/invoices/{month}"), None).await;
    let billing = admin_call(base, seeded, "GET", &format!("/billing/{month}"), None).await;
    (invoice, billing)
}

/// Press Enter on the What-if page's Preview button (reached with Tab), wait until the
/// verdict shows `verdict`, and return its text with the API's answer to the same commands.
async fn preview_with_keys(
    client: &Client,
    base: &str,
    seeded: &Seeded,
    commands: &Value,
    verdict: &str,
) -> (String, Value) {
    tab_to(client, "whatif-preview").await;
    press(client, Key::Enter).await;
    let shown = wait_for_text(client, "#whatif-ok", verdict).await;
    let answer = admin_call(
        base,
        seeded,
        "POST",
        "/what-if",
        Some(json!({"commands": commands})),
    )
    .await;
    (shown, answer)
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
    // Her licence counts against her group, named as the tree names it.
    let licences = text_of(&client, "#user-licenses").await;
    assert!(
        licences.contains("phone_system Support call_recording"),
        "{licences}"
    );
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
    // …and the group that blocks it marked in her path of the tree.
    let marked = text_of(&client, "#user-tree li.highlight > a").await;
    assert_eq!(
        marked, "Support",
        "the blocking group is the one highlighted"
    );
    let tree = text_of(&client, "#user-tree").await;
    assert!(
        tree.starts_with("HQ"),
        "the path runs from the root: {tree}"
    );
    let highlighted = client
        .find(Locator::Css("#user-tree li.highlight"))
        .await
        .expect("a highlighted group")
        .attr("data-group")
        .await
        .expect("attribute");
    assert_eq!(highlighted.as_deref(), Some(seeded.expired_group.as_str()));
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

    // The time slider, with the keyboard: Home goes to the tenant's first event, where the
    // usage shown is the API's as of the instant the field shows; End comes back to now.
    tab_to(&client, "audit-slider").await;
    press(&client, Key::Home).await;
    let first_instant = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let shown = client
                .find(Locator::Css("#audit-asof"))
                .await
                .expect("the as-of part")
                .attr("data-at")
                .await
                .expect("attribute")
                .unwrap_or_default();
            if shown != provisioned_at && !shown.is_empty() {
                break shown;
            }
            if Instant::now() > deadline {
                let seen = client
                    .execute(
                        "const s = document.getElementById('audit-slider'); \
                         return [s.min, s.max, s.step, s.value, document.activeElement.id, \
                                 document.getElementById('audit-at').value];",
                        vec![],
                    )
                    .await
                    .expect("the slider's state");
                panic!("the slider did not move the instant: {seen}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(value_of(&client, "#audit-at").await, first_instant);
    let instant = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("`{text}` is not RFC 3339: {e}"))
    };
    assert!(
        instant(&first_instant) < instant(&provisioned_at),
        "{first_instant} is before the licences"
    );
    let then = text_of(&client, "#audit-usage").await;
    let api_then = as_of_usage(&base, &seeded, &first_instant).await;
    for (code, f) in api_then["types"].as_object().expect("types") {
        let row = format!("{code} {} {} {}", f["owned"], f["assigned"], f["free"]);
        assert!(then.contains(&row), "`{row}` not in:\n{then}");
    }
    assert!(
        !then.contains("phone_system 4"),
        "no licences yet at the first event:\n{then}"
    );
    press(&client, Key::End).await;
    let today = &usage["types"]["phone_system"];
    let row = format!(
        "phone_system {} {} {}",
        today["owned"], today["assigned"], today["free"]
    );
    let _ = wait_for_text(&client, "#audit-usage", &row).await;
    screenshot(&client, "audit-slider").await;

    // What-if, with the keyboard only: reach the page through the navigation, build a lower
    // limit for Sales with the builder, preview it and see what the API answers.
    client
        .execute(
            "document.activeElement.blur(); window.scrollTo(0, 0);",
            vec![],
        )
        .await
        .expect("reset the focus");
    tab_to(&client, "nav-what-if").await;
    press(&client, Key::Enter).await;
    let _ = text_of(&client, "#whatif-builder").await;
    // The builder shows the fields of the change chosen, only.
    let licence_field = client
        .find(Locator::Css("#whatif-license"))
        .await
        .expect("a licence field");
    assert!(
        !licence_field.is_displayed().await.expect("displayed"),
        "a limit needs no licence id"
    );
    tab_to(&client, "whatif-group").await;
    type_text(&client, "Sales").await;
    tab_to(&client, "whatif-type").await;
    type_text(&client, "phone_system").await;
    tab_to(&client, "whatif-number").await;
    type_text(&client, "1").await;
    press(&client, Key::Enter).await;
    let commands: Value = serde_json::from_str(&value_of(&client, "#whatif-commands").await)
        .expect("the builder writes JSON");
    assert_eq!(commands[0]["op"], "set_restriction", "{commands}");
    assert_eq!(commands[0]["group_id"], json!(seeded.sales), "{commands}");
    assert_eq!(commands[0]["limits"]["phone_system"], 1, "{commands}");
    let (verdict, answer) = preview_with_keys(&client, &base, &seeded, &commands, "refused").await;
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        verdict.contains(&format!(
            "{} rule(s)",
            answer["violations"].as_array().expect("violations").len()
        )),
        "{verdict}"
    );
    let broken = text_of(&client, "#whatif-violations").await;
    for v in answer["violations"].as_array().expect("violations") {
        let row = format!(
            "{} Sales phone_system {} {}",
            v["rule"].as_str().expect("rule"),
            v["limit"],
            v["used"]
        );
        assert!(broken.contains(&row), "`{row}` not in:\n{broken}");
    }
    screenshot(&client, "what-if-refused").await;

    // A pasted change that is allowed: more phone_system licences, and the month's billing
    // delta as the API computes it.
    let more = json!([{"op": "set_quantity", "type": "phone_system", "quantity": 6}]);
    let area = client
        .find(Locator::Css("#whatif-commands"))
        .await
        .expect("the commands");
    area.clear().await.expect("clear");
    area.send_keys(&more.to_string()).await.expect("paste");
    let (_, answer) = preview_with_keys(&client, &base, &seeded, &more, "allowed").await;
    assert_eq!(answer["ok"], true, "{answer}");
    let delta = text_of(&client, "#whatif-billing").await;
    let deltas = answer["billing_delta"].as_object().expect("billing delta");
    assert!(!deltas.is_empty(), "{answer}");
    for (code, d) in deltas {
        let row = format!(
            "{code} {} {} {} {} {}",
            d["peak_units_before"],
            d["peak_units_after"],
            d["amount_minor_before"],
            d["amount_minor_after"],
            d["amount_minor_delta"]
        );
        assert!(delta.contains(&row), "`{row}` not in:\n{delta}");
    }
    assert_eq!(answer["would_block"], json!([]), "{answer}");
    assert_eq!(text_of(&client, "#whatif-would-block").await, "Nobody.");
    screenshot(&client, "what-if").await;

    // A viewer signs in too; the events (auditor) are refused and the page says so.
    // It signs in with the keyboard alone.
    tab_to(&client, "sign-out").await;
    press(&client, Key::Enter).await;
    let _ = text_of(&client, "#sign-in-form").await;
    tab_to(&client, "tenant").await;
    type_text(&client, &seeded.tenant).await;
    press(&client, Key::Tab).await;
    type_text(&client, &seeded.viewer).await;
    press(&client, Key::Enter).await;
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
