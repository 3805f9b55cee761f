//! The real router (`ledger::http::app`) in process, on a small current-thread tokio runtime:
//! each input is a short sequence of requests, each on a documented route (method and path
//! template read from the served OpenAPI document), with path parameters, query, headers, token
//! and body chosen by the fuzzer. The body is either arbitrary bytes or JSON built from the
//! document's own property names and enum values, so the fuzzer gets past the parsers into the
//! rules. No answer may be a 5xx, and nothing may panic.
//!
//! Path parameters are often fixture values of the right kind, the token is the admin key half
//! of the time, and a body may be the route's valid body with the fuzzer's edits, so that many
//! requests get past authentication and parsing into the rules.
//!
//! Every input starts from the same fixture: two tenants with keys of every role, groups with a
//! restriction, users, licences, an assignment, a price and a webhook, on an in-memory store
//! (`ledger::store::memory`: the fuzzer measures the router and the rules, not sled).
//! Fixture ids are fixed (ids in bodies, idempotency keys for server-chosen ids), so a crashing
//! input replays the same way in a new process.

#![no_main]

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use ledger::http::auth::token_hash;
use ledger::http::{app, App};
use ledger::ledger::Ledger;
use ledger::store::memory::MemoryStore;
use ledger::store::EncodedEvent;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const ROOT_TOKEN: &str = "fuzz-root-token";
/// Requests per input at most: enough to build on an earlier write, few enough to stay fast.
const CALLS_PER_INPUT_MAX: usize = 6;
/// Deepest JSON built from an input.
const JSON_DEPTH_MAX: usize = 8;

const TENANT: &str = "7e7a0000-0000-4000-8000-000000000001";
const OTHER_TENANT: &str = "7e7a0000-0000-4000-8000-000000000002";
const GROUP_OFFICE: &str = "30000000-0000-4000-8000-000000000001";
const GROUP_SALES: &str = "30000000-0000-4000-8000-000000000002";
const USER_JOHN: &str = "20000000-0000-4000-8000-000000000001";
const USER_ALICE: &str = "20000000-0000-4000-8000-000000000002";
const USER_LUCIE: &str = "20000000-0000-4000-8000-000000000003";

/// Operations of `POST /what-if` (named only in the document's prose).
const WHAT_IF_OPS: [&str; 15] = [
    "set_restriction",
    "clear_restriction",
    "set_quantity",
    "provision",
    "terminate",
    "assign",
    "unassign",
    "reassign",
    "attach_addon",
    "detach_addon",
    "assign_type",
    "move_user",
    "move_group",
    "set_retention",
    "set_price",
];

// ---- The fixture ------------------------------------------------------------------------------

/// What every input starts from, built once per process.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    /// The log after the setup requests.
    events: Vec<EncodedEvent>,
    /// `(method, path template)` of every documented operation.
    routes: Vec<(Method, String)>,
    /// Admin, operator, viewer, auditor, billing, root, the other tenant's admin, garbage.
    tokens: Vec<String>,
    /// Ids and codes of the fixture, for path parameters and JSON strings.
    known: Vec<String>,
    /// The fixture's values for each path parameter name (`t`, `g`, `u`, `id`, …).
    by_param: BTreeMap<&'static str, Vec<String>>,
    /// Property and parameter names of the document.
    keys: Vec<String>,
    /// Strings worth trying as values: enum values, codes, instants, edge lengths, ids.
    strings: Vec<String>,
    /// A valid body for each write route (`"METHOD /template"`), for the fuzzer to edit.
    templates: BTreeMap<String, Value>,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible router");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a readable answer");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply { status, body }
}

fn start(events: Vec<EncodedEvent>) -> (Router, Ledger) {
    let store = MemoryStore::with_events(events);
    let ledger = Ledger::start(Arc::new(store)).expect("the fixture log loads");
    let router = app(App {
        ledger: ledger.clone(),
        root_token_hash: token_hash(ROOT_TOKEN),
    });
    (router, ledger)
}

/// A setup request that must succeed; an idempotency key makes server-chosen ids repeatable.
async fn setup(router: &Router, method: Method, path: &str, token: &str, body: Value) -> Value {
    let request = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            "idempotency-key",
            blake3::hash(format!("{method} {path} {body}").as_bytes())
                .to_hex()
                .as_str(),
        )
        .body(Body::from(body.to_string()))
        .expect("a fixture request");
    let reply = send(router, request).await;
    assert!(
        reply.status.is_success(),
        "fixture {method} {path} {body}: {} {}",
        reply.status,
        reply.body
    );
    reply.body
}

/// Collect property names, parameter names and enum values from the OpenAPI document.
fn harvest(value: &Value, keys: &mut BTreeSet<String>, strings: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            if let Some(Value::Object(properties)) = fields.get("properties") {
                keys.extend(properties.keys().cloned());
            }
            if let (Some(Value::String(name)), Some(Value::String(_))) =
                (fields.get("name"), fields.get("in"))
            {
                keys.insert(name.clone());
            }
            if let Some(Value::Array(values)) = fields.get("enum") {
                strings.extend(values.iter().filter_map(Value::as_str).map(String::from));
            }
            fields.values().for_each(|v| harvest(v, keys, strings));
        }
        Value::Array(items) => items.iter().for_each(|v| harvest(v, keys, strings)),
        _ => {}
    }
}

fn routes(document: &Value) -> Vec<(Method, String)> {
    let mut routes = Vec::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for method in operations.as_object().expect("operations").keys() {
            if let Ok(method) = method.to_uppercase().parse::<Method>() {
                routes.push((method, path.clone()));
            }
        }
    }
    routes
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let document: Value =
            serde_json::from_str(ledger::http::openapi::document_json()).expect("the document");
        let (mut keys, mut strings) = (BTreeSet::new(), BTreeSet::new());
        harvest(&document, &mut keys, &mut strings);
        let (tokens, known, licenses, events) = runtime.block_on(build_fixture());
        let templates = templates(&licenses);
        let codes = [
            "phone_system",
            "call_recording",
            "device_ip_phone",
            "voice",
            "new_type",
        ];
        let months = [
            "2024-05".to_string(),
            chrono::Utc::now().format("%Y-%m").to_string(),
        ];
        let by_param = BTreeMap::from([
            ("t", vec![TENANT.to_string(), OTHER_TENANT.to_string()]),
            ("g", vec![GROUP_OFFICE.to_string(), GROUP_SALES.to_string()]),
            (
                "u",
                [USER_JOHN, USER_ALICE, USER_LUCIE]
                    .map(String::from)
                    .to_vec(),
            ),
            ("id", licenses.all.clone()),
            ("addon", licenses.all.clone()),
            ("key", licenses.keys.clone()),
            ("code", codes.map(String::from).to_vec()),
            ("type", codes.map(String::from).to_vec()),
            ("month", months.to_vec()),
        ]);
        strings.extend(known.iter().cloned());
        strings.extend(WHAT_IF_OPS.iter().map(|s| s.to_string()));
        strings.extend(
            [
                "",
                " ",
                "UTC",
                "Europe/Paris",
                "Mars/Olympus",
                "EUR",
                "USD",
                "eur",
                "2024-05",
                "2024-13",
                "0000-01",
                "9999-12",
                "2024-05-15T00:00:00Z",
                "1970-01-01T00:00:00Z",
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59Z",
                "+262142-12-31T23:59:59Z",
                "2024-02-30T00:00:00Z",
                "2024-05-15",
                "http://127.0.0.1:9/hook",
                "ftp://x",
                "101",
                "102",
                "-1",
                "NaN",
                "null",
                "\u{0}",
                "é",
                "💥",
            ]
            .map(String::from),
        );
        for length in [33, 65, 201, 501, 2001] {
            strings.insert("a".repeat(length));
            strings.insert("9".repeat(length));
        }
        let document_routes = routes(&document);
        Fixture {
            runtime,
            events,
            routes: document_routes,
            tokens,
            known,
            by_param,
            keys: keys.into_iter().collect(),
            strings: strings.into_iter().collect(),
            templates,
        }
    })
}

/// Fixture licences by what they are, for the body templates.
struct Licenses {
    all: Vec<String>,
    keys: Vec<String>,
    free_phone: String,
    held_phone: String,
    free_addon: String,
    held_addon: String,
}

/// A body each write route accepts against the fixture; the fuzzer's edits start from it.
fn templates(l: &Licenses) -> BTreeMap<String, Value> {
    let t = |path: &str| format!("/v1/tenants/{{t}}{path}");
    let instant = "2024-01-01T00:00:00Z";
    [
        ("POST /v1/tenants".to_string(), json!({"name": "Beta", "billing_timezone": "Europe/Paris", "currency": "USD"})),
        (format!("POST {}", t("/keys")), json!({"role": "viewer", "name": "another"})),
        (format!("PUT {}", t("/catalog/{code}")), json!({"kind": "addon", "attaches_to": ["phone_system"], "requires_any": [], "excludes": ["call_recording"]})),
        (format!("PUT {}", t("/settings/recording-retention")), json!({"months": 6})),
        (format!("PUT {}", t("/prices/{type}")), json!({"unit_price_minor": 500, "currency": "EUR", "effective_from": instant})),
        (format!("POST {}", t("/licenses")), json!({"type": "phone_system", "quantity": 2})),
        (format!("PUT {}", t("/subscription/{type}")), json!({"quantity": 1})),
        (format!("POST {}", t("/licenses/{id}/assign")), json!({"user_id": USER_ALICE})),
        (format!("POST {}", t("/licenses/{id}/unassign")), json!({})),
        (format!("POST {}", t("/licenses/{id}/reassign")), json!({"user_id": USER_LUCIE})),
        (format!("POST {}", t("/licenses/{id}/addons")), json!({"addon_id": l.free_addon})),
        (format!("POST {}", t("/assignments")), json!({"user_id": USER_LUCIE, "type": "phone_system", "addons": ["call_recording"]})),
        (format!("POST {}", t("/groups")), json!({"name": "Support", "parent_id": GROUP_SALES})),
        (format!("PATCH {}", t("/groups/{g}")), json!({"name": "Renamed", "parent_id": null})),
        (format!("PUT {}", t("/groups/{g}/restriction")), json!({
            "enabled": true,
            "limits": {"phone_system": 1, "call_recording": 0},
            "valid_from": instant,
            "valid_until": "2031-01-01T00:00:00Z",
            "reminder": {"days_before": 7, "frequency": "daily"},
        })),
        (format!("POST {}", t("/what-if")), json!({"at": instant, "commands": [
            {"op": "assign_type", "user_id": USER_LUCIE, "type": "phone_system", "addons": ["call_recording"]},
            {"op": "assign", "license_id": l.free_phone, "user_id": USER_ALICE},
            {"op": "attach_addon", "license_id": l.held_phone, "addon_id": l.free_addon},
            {"op": "detach_addon", "license_id": l.held_phone, "addon_id": l.held_addon},
            {"op": "reassign", "license_id": l.held_phone, "user_id": USER_LUCIE},
            {"op": "unassign", "license_id": l.held_phone},
            {"op": "terminate", "license_id": l.free_phone},
            {"op": "set_quantity", "type": "phone_system", "quantity": 1},
            {"op": "provision", "type": "voice", "quantity": 3},
            {"op": "set_restriction", "group_id": GROUP_OFFICE, "enabled": true, "limits": {"phone_system": 1}},
            {"op": "clear_restriction", "group_id": GROUP_SALES},
            {"op": "move_user", "user_id": USER_JOHN, "group_id": GROUP_SALES},
            {"op": "move_group", "group_id": GROUP_SALES, "parent_id": null},
            {"op": "set_retention", "months": 3},
            {"op": "set_price", "type": "phone_system", "unit_price_minor": 700},
        ]})),
        (format!("PUT {}", t("/webhook")), json!({"url": "https://example.com/hook"})),
        (format!("POST {}", t("/users")), json!({"name": "Zed", "group_id": GROUP_OFFICE, "extension": "105", "number": "6567891239"})),
        (format!("POST {}", t("/users/batch")), json!({"users": [
            {"name": "Ann", "group_id": GROUP_OFFICE, "extension": "106"},
            {"name": "Bob", "group_id": GROUP_SALES},
        ]})),
        (format!("PATCH {}", t("/users/{u}")), json!({"name": "Johnny", "group_id": GROUP_SALES})),
        (format!("POST {}", t("/imports")), Value::String(
            "Ext Key,Number,User,Addon license 1\n102,6567891231,Alice,call_recording\n103,,Lucie,\n".into(),
        )),
    ]
    .into_iter()
    .collect()
}

async fn build_fixture() -> (Vec<String>, Vec<String>, Licenses, Vec<EncodedEvent>) {
    let store = Arc::new(MemoryStore::default());
    let ledger = Ledger::start(store.clone()).expect("an empty log loads");
    let router = app(App {
        ledger: ledger.clone(),
        root_token_hash: token_hash(ROOT_TOKEN),
    });
    let root = ROOT_TOKEN;
    let path = |rest: &str| format!("/v1/tenants/{TENANT}{rest}");
    let mut known: Vec<String> = [
        TENANT,
        OTHER_TENANT,
        GROUP_OFFICE,
        GROUP_SALES,
        USER_JOHN,
        USER_ALICE,
        USER_LUCIE,
    ]
    .map(String::from)
    .to_vec();
    for (id, name) in [(TENANT, "Acme"), (OTHER_TENANT, "Other")] {
        setup(
            &router,
            Method::POST,
            "/v1/tenants",
            root,
            json!({"id": id, "name": name}),
        )
        .await;
    }
    let mut tokens = Vec::new();
    let mut key_ids = Vec::new();
    for role in ["admin", "operator", "viewer", "auditor", "billing"] {
        let body = json!({"role": role, "name": format!("{role} key")});
        let issued = setup(&router, Method::POST, &path("/keys"), root, body).await;
        tokens.push(issued["token"].as_str().expect("a token").to_string());
        let key = issued["id"].as_str().expect("a key id").to_string();
        key_ids.push(key.clone());
        known.push(key);
    }
    tokens.push(ROOT_TOKEN.to_string());
    let other_keys = format!("/v1/tenants/{OTHER_TENANT}/keys");
    let other = setup(
        &router,
        Method::POST,
        &other_keys,
        root,
        json!({"role": "admin", "name": "other"}),
    )
    .await;
    tokens.push(other["token"].as_str().expect("a token").to_string());
    tokens.push("not-a-token".to_string());
    let groups = [
        json!({"id": GROUP_OFFICE, "name": "Office"}),
        json!({"id": GROUP_SALES, "name": "Sales", "parent_id": GROUP_OFFICE}),
    ];
    for group in groups {
        setup(&router, Method::POST, &path("/groups"), root, group).await;
    }
    let users = [
        json!({"id": USER_JOHN, "name": "John", "group_id": GROUP_OFFICE, "extension": "101"}),
        json!({"id": USER_ALICE, "name": "Alice", "group_id": GROUP_SALES, "number": "6567891231"}),
        json!({"id": USER_LUCIE, "name": "Lucie", "group_id": GROUP_SALES}),
    ];
    for user in users {
        setup(&router, Method::POST, &path("/users"), root, user).await;
    }
    for (code, quantity) in [
        ("phone_system", 3),
        ("call_recording", 2),
        ("device_ip_phone", 1),
    ] {
        let body = json!({"type": code, "quantity": quantity});
        setup(&router, Method::POST, &path("/licenses"), root, body).await;
    }
    let assignment =
        json!({"user_id": USER_JOHN, "type": "phone_system", "addons": ["call_recording"]});
    setup(
        &router,
        Method::POST,
        &path("/assignments"),
        root,
        assignment,
    )
    .await;
    let restriction = json!({
        "enabled": true,
        "limits": {"phone_system": 2},
        "valid_until": "2030-01-01T00:00:00Z",
        "reminder": {"days_before": 30, "frequency": "weekly"},
    });
    setup(
        &router,
        Method::PUT,
        &path(&format!("/groups/{GROUP_SALES}/restriction")),
        root,
        restriction,
    )
    .await;
    setup(
        &router,
        Method::PUT,
        &path("/prices/phone_system"),
        root,
        json!({"unit_price_minor": 1000}),
    )
    .await;
    setup(
        &router,
        Method::PUT,
        &path("/webhook"),
        root,
        json!({"url": "http://127.0.0.1:9/hook"}),
    )
    .await;
    let request = Request::builder()
        .uri(path("/licenses"))
        .header(header::AUTHORIZATION, format!("Bearer {root}"))
        .body(Body::empty())
        .expect("a request");
    let licenses = send(&router, request).await.body;
    let items = licenses["items"].as_array().expect("licences");
    for license in items {
        known.push(license["id"].as_str().expect("a licence id").to_string());
    }
    let pick = |license_type: &str, status: &str| {
        items
            .iter()
            .find(|l| l["type"] == license_type && l["status"] == status)
            .and_then(|l| l["id"].as_str())
            .unwrap_or_else(|| panic!("a {status} {license_type} licence in the fixture"))
            .to_string()
    };
    let fixture_licenses = Licenses {
        all: items
            .iter()
            .filter_map(|l| l["id"].as_str())
            .map(String::from)
            .collect(),
        keys: key_ids,
        free_phone: pick("phone_system", "free"),
        held_phone: pick("phone_system", "assigned"),
        free_addon: pick("call_recording", "free"),
        held_addon: pick("call_recording", "assigned"),
    };
    for code in [
        "phone_system",
        "call_recording",
        "device_ip_phone",
        "voice",
        "no_such_type",
    ] {
        known.push(code.to_string());
    }
    drop(router);
    drop(ledger);
    let events = store.events();
    (tokens, known, fixture_licenses, events)
}

// ---- The input --------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
enum Text {
    /// One of the fixture's strings.
    Pick(u16),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Key {
    /// One of the document's property names.
    Pick(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Small(u8),
    Negative(i8),
    Integer(i64),
    Unsigned(u64),
    Float(f64),
    Text(Text),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

/// One step into a JSON value.
#[derive(Arbitrary, Debug)]
enum Step {
    /// The n-th field already there (or the n-th item of an array).
    Existing(u8),
    /// A field by name, made if missing.
    Named(Key),
}

/// Set (or, without a value, remove) what `at` leads to.
#[derive(Arbitrary, Debug)]
struct Edit {
    at: Vec<Step>,
    value: Option<Json>,
}

#[derive(Arbitrary, Debug)]
enum RequestBody {
    Empty,
    Raw(Vec<u8>),
    Json(Json),
    /// The route's valid body, edited.
    Template(Vec<Edit>),
}

#[derive(Arbitrary, Debug)]
enum Param {
    /// A fixture value for this parameter: the tenant for `{t}`, a group for `{g}`, ….
    Fitting(u8),
    /// Any fixture id or code.
    Known(u8),
    Uuid(u128),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Call {
    route: u8,
    params: Vec<Param>,
    query: Vec<(Key, Text)>,
    token: u8,
    content_type: u8,
    if_match: Option<Text>,
    idempotency_key: Option<Text>,
    reason: Option<Text>,
    body: RequestBody,
}

impl Fixture {
    fn text(&self, text: &Text) -> String {
        match text {
            Text::Pick(i) => self.strings[usize::from(*i) % self.strings.len()].clone(),
            Text::Raw(s) => s.clone(),
        }
    }

    fn key(&self, key: &Key) -> String {
        match key {
            Key::Pick(i) => self.keys[usize::from(*i) % self.keys.len()].clone(),
            Key::Raw(s) => s.clone(),
        }
    }

    fn json(&self, json: &Json, depth: usize) -> Value {
        if depth > JSON_DEPTH_MAX {
            return Value::Null;
        }
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => json!(b),
            Json::Small(n) => json!(n),
            Json::Negative(n) => json!(n),
            Json::Integer(n) => json!(n),
            Json::Unsigned(n) => json!(n),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Text(t) => Value::String(self.text(t)),
            Json::Array(items) => items.iter().map(|j| self.json(j, depth + 1)).collect(),
            Json::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (self.key(k), self.json(v, depth + 1)))
                    .collect(),
            ),
        }
    }

    /// One step into `here`; a named step through a scalar turns it into an object.
    fn step<'a>(&self, here: &'a mut Value, step: &Step) -> &'a mut Value {
        let length = match here {
            Value::Array(items) => items.len(),
            Value::Object(fields) => fields.len(),
            _ => 0,
        };
        if let (Step::Existing(i), true) = (step, length > 0) {
            let index = usize::from(*i) % length;
            return match here {
                Value::Array(items) => &mut items[index],
                Value::Object(fields) => fields.values_mut().nth(index).expect("index < length"),
                other => other,
            };
        }
        let name = match step {
            Step::Named(key) => self.key(key),
            Step::Existing(_) => self.key(&Key::Pick(0)),
        };
        if !here.is_object() {
            *here = json!({});
        }
        here.as_object_mut()
            .expect("an object")
            .entry(name)
            .or_insert(Value::Null)
    }

    /// Apply one edit to `body`; steps through scalars turn them into objects.
    fn edit(&self, body: &mut Value, edit: &Edit) {
        let Some((last, path)) = edit.at.split_last() else {
            if let Some(value) = &edit.value {
                *body = self.json(value, 0);
            }
            return;
        };
        let mut here = body;
        for step in path.iter().take(JSON_DEPTH_MAX) {
            here = self.step(here, step);
        }
        let value = edit.value.as_ref().map(|v| self.json(v, 0));
        match (here, last, value) {
            (Value::Array(items), Step::Existing(i), value) if !items.is_empty() => {
                let index = usize::from(*i) % items.len();
                match value {
                    Some(value) => items[index] = value,
                    None => {
                        items.remove(index);
                    }
                }
            }
            (Value::Array(items), _, Some(value)) => items.push(value),
            (Value::Object(fields), step, value) => {
                let name = match step {
                    Step::Existing(i) if !fields.is_empty() => {
                        let index = usize::from(*i) % fields.len();
                        fields
                            .keys()
                            .nth(index)
                            .cloned()
                            .expect("an index below the length")
                    }
                    Step::Existing(_) => self.key(&Key::Pick(0)),
                    Step::Named(key) => self.key(key),
                };
                match value {
                    Some(value) => {
                        fields.insert(name, value);
                    }
                    None => {
                        fields.remove(&name);
                    }
                }
            }
            (here, _, Some(value)) => *here = value,
            (_, _, None) => {}
        }
    }

    fn param(&self, name: &str, param: Option<&Param>) -> String {
        let fitting = |i: u8| {
            let values = self.by_param.get(name).unwrap_or(&self.known);
            values[usize::from(i) % values.len()].clone()
        };
        match param {
            None => fitting(0),
            Some(Param::Fitting(i)) => fitting(*i),
            Some(Param::Known(i)) => self.known[usize::from(*i) % self.known.len()].clone(),
            Some(Param::Uuid(n)) => uuid::Uuid::from_u128(*n).to_string(),
            Some(Param::Raw(s)) => percent_encode(s),
        }
    }

    /// The request of a call, or `None` where the fuzzer's bytes make no valid HTTP request.
    fn request(&self, call: &Call) -> Option<(String, Request<Body>)> {
        let (method, template) = &self.routes[usize::from(call.route) % self.routes.len()];
        let mut params = call.params.iter();
        let mut uri = String::new();
        let mut rest = template.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}')? + open;
            uri.push_str(&rest[..open]);
            uri.push_str(&self.param(&rest[open + 1..close], params.next()));
            rest = &rest[close + 1..];
        }
        uri.push_str(rest);
        if !call.query.is_empty() {
            let pairs: Vec<String> = call
                .query
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        percent_encode(&self.key(k)),
                        percent_encode(&self.text(v))
                    )
                })
                .collect();
            uri.push('?');
            uri.push_str(&pairs.join("&"));
        }
        let mut builder = Request::builder().method(method.clone()).uri(&uri);
        // Mostly the admin key (the first), so most requests reach the rules.
        let token = match call.token.checked_sub(128) {
            None => &self.tokens[..],
            Some(n) => &self.tokens[usize::from(n) % (self.tokens.len() + 1)..],
        };
        if let Some(token) = token.first() {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let content_type =
            ["application/json", "text/csv", "text/plain", ""][usize::from(call.content_type) % 4];
        if !content_type.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        for (name, value) in [
            ("if-match", &call.if_match),
            ("idempotency-key", &call.idempotency_key),
            ("x-reason", &call.reason),
        ] {
            if let Some(value) = value {
                builder = builder.header(name, HeaderValue::from_str(&self.text(value)).ok()?);
            }
        }
        let body = match &call.body {
            RequestBody::Empty => Vec::new(),
            RequestBody::Raw(bytes) => bytes.clone(),
            RequestBody::Json(json) => self.json(json, 0).to_string().into_bytes(),
            RequestBody::Template(edits) => {
                match self.templates.get(&format!("{method} {template}")) {
                    Some(Value::String(text)) => text.clone().into_bytes(),
                    Some(template) => {
                        let mut body = template.clone();
                        for edit in edits {
                            self.edit(&mut body, edit);
                        }
                        body.to_string().into_bytes()
                    }
                    None => b"{}".to_vec(),
                }
            }
        };
        let shown = format!("{method} {uri} body={}", String::from_utf8_lossy(&body));
        Some((shown, builder.body(Body::from(body)).ok()?))
    }
}

/// Everything but unreserved characters as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fuzz_target!(|calls: Vec<Call>| {
    let fixture = fixture();
    let (router, ledger) = start(fixture.events.clone());
    fixture.runtime.block_on(async {
        for call in calls.iter().take(CALLS_PER_INPUT_MAX) {
            let Some((shown, request)) = fixture.request(call) else {
                continue;
            };
            let reply = send(&router, request).await;
            assert!(
                !reply.status.is_server_error(),
                "{shown}\n  answered {} {}",
                reply.status,
                reply.body
            );
        }
    });
    drop(router);
    drop(ledger);
});
