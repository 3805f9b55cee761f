//! `GET /v1/openapi.json`: the OpenAPI 3.1 document generated from the code. It documents every
//! route `app()` serves (read from `src/http/mod.rs`, and each documented one answered by the
//! router), every path of API.md, the errors and security of each operation, and real answers of
//! every operation conform to the schemas it documents.

use crate::support::{id_of, Server, ROOT_TOKEN};
use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Every operation of API.md (sections "Tenants and keys" to "Operations", the document itself
/// and the batch of "Precise answers"), copied from the contract with its own placeholder names.
const CONTRACT: &[(&str, &str)] = &[
    // Tenants and keys
    ("POST", "/v1/tenants"),
    ("POST", "/v1/tenants/{t}/keys"),
    ("DELETE", "/v1/tenants/{t}/keys/{key_id}"),
    // Catalogue
    ("GET", "/v1/tenants/{t}/catalog"),
    ("PUT", "/v1/tenants/{t}/catalog/{code}"),
    // Licences
    ("POST", "/v1/tenants/{t}/licenses"),
    ("PUT", "/v1/tenants/{t}/subscription/{type}"),
    ("DELETE", "/v1/tenants/{t}/licenses/{id}"),
    ("POST", "/v1/tenants/{t}/licenses/{id}/assign"),
    ("POST", "/v1/tenants/{t}/licenses/{id}/unassign"),
    ("POST", "/v1/tenants/{t}/licenses/{id}/reassign"),
    ("POST", "/v1/tenants/{t}/licenses/{id}/addons"),
    ("DELETE", "/v1/tenants/{t}/licenses/{id}/addons/{addon_id}"),
    ("POST", "/v1/tenants/{t}/assignments"),
    ("GET", "/v1/tenants/{t}/licenses"),
    ("GET", "/v1/tenants/{t}/licenses/{id}"),
    // Groups and users
    ("POST", "/v1/tenants/{t}/groups"),
    ("PATCH", "/v1/tenants/{t}/groups/{g}"),
    ("PUT", "/v1/tenants/{t}/groups/{g}/restriction"),
    ("GET", "/v1/tenants/{t}/groups/{g}/state"),
    ("POST", "/v1/tenants/{t}/users"),
    ("PATCH", "/v1/tenants/{t}/users/{u}"),
    ("DELETE", "/v1/tenants/{t}/users/{u}"),
    ("GET", "/v1/tenants/{t}/users"),
    ("GET", "/v1/tenants/{t}/users/{u}"),
    // Settings and prices
    ("PUT", "/v1/tenants/{t}/settings/recording-retention"),
    ("PUT", "/v1/tenants/{t}/prices/{type}"),
    ("PUT", "/v1/tenants/{t}/webhook"),
    // Queries for support, billing and audit
    ("GET", "/v1/tenants/{t}/usage"),
    ("GET", "/v1/tenants/{t}/users/{u}/entitlements/{type}"),
    ("GET", "/v1/tenants/{t}/billing/{YYYY-MM}"),
    ("GET", "/v1/tenants/{t}/invoices/{YYYY-MM}"),
    ("GET", "/v1/tenants/{t}/events"),
    ("GET", "/v1/tenants/{t}/reminders"),
    ("POST", "/v1/tenants/{t}/what-if"),
    ("POST", "/v1/tenants/{t}/imports"),
    ("GET", "/v1/tenants/{t}/imports/sample.csv"),
    // Operations
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    // The document itself, and the batch of "Precise answers"
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/tenants/{t}/users/batch"),
];

/// Paths answered without a token.
const PUBLIC: [&str; 6] = [
    "/healthz",
    "/metrics",
    "/v1/openapi.json",
    "/console",
    "/console/app.js",
    "/console/app.css",
];

/// `/a/{x}/b` → `/a/{}/b`: placeholder names differ between API.md and the code.
fn normalise(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_placeholder = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_placeholder = true;
                out.push_str("{}");
            }
            '}' => in_placeholder = false,
            _ if in_placeholder => {}
            _ => out.push(c),
        }
    }
    out
}

async fn served_document(server: &Server) -> Value {
    let reply = server
        .request(Method::GET, "/v1/openapi.json", None, None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let content_type = reply
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("application/json"));
    assert!(
        reply.body.is_object(),
        "the document is not a JSON object: {}",
        reply.body
    );
    reply.body
}

/// Every documented operation: `(METHOD, path)` → the operation object.
fn operations(document: &Value) -> BTreeMap<(String, String), &Value> {
    let paths = document["paths"].as_object().expect("paths");
    let mut out = BTreeMap::new();
    for (path, item) in paths {
        for (key, operation) in item.as_object().expect("path item") {
            let methods = [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ];
            if methods.contains(&key.as_str()) {
                out.insert((key.to_uppercase(), path.clone()), operation);
            }
        }
    }
    out
}

/// The text between the parenthesis at `open` and its match.
fn parenthesised(text: &str, open: usize) -> &str {
    let mut depth = 0usize;
    let mut in_string = false;
    for (offset, c) in text[open..].char_indices() {
        match c {
            '"' => in_string = !in_string,
            '(' if !in_string => depth += 1,
            ')' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..open + offset];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in `{}`", &text[open..]);
}

/// The first string literal of `text`.
fn first_literal(text: &str) -> String {
    let start = text.find('"').expect("a string literal") + 1;
    let end = start + text[start..].find('"').expect("closing quote");
    text[start..end].to_string()
}

/// The HTTP methods a route's method router names: `get(h).post(h)`, `axum::routing::delete(h)`.
fn methods_of(method_router: &str) -> Vec<String> {
    let mut found = Vec::new();
    for method in ["get", "post", "put", "patch", "delete"] {
        let call = format!("{method}(");
        for (at, _) in method_router.match_indices(&call) {
            let before = method_router[..at].chars().next_back();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                found.push(method.to_uppercase());
            }
        }
    }
    found
}

/// Every `(METHOD, path)` routed by `app()`, read from its source: each `let NAME =
/// Router::new()…;` and the top-level router, their `.route(…)` calls and the `.nest(…)` that
/// mounts each named router. Anything this reader does not understand fails the test, so a new
/// way of routing cannot slip past it.
fn routes_in_app() -> BTreeSet<(String, String)> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs");
    let source = std::fs::read_to_string(file).expect("read src/http/mod.rs");
    let start = source
        .find("pub fn app(")
        .expect("app() in src/http/mod.rs");
    let end = start + source[start..].find("\n}\n").expect("the end of app()");
    let body = &source[start..end];
    assert!(
        !body.contains(".merge(") && !body.contains(".route_service("),
        "app() merges routers or routes services: teach routes_in_app about it"
    );
    let mut prefixes: BTreeMap<String, String> = BTreeMap::new();
    let mut routes: Vec<(String, String, String)> = Vec::new();
    let mut route_calls = 0;
    for statement in body.split(';') {
        let statement = statement.trim();
        let router = if let Some(rest) = statement.strip_prefix("let ") {
            let (name, value) = rest.split_once('=').expect("let NAME = …");
            if !value.trim_start().starts_with("Router::new()") {
                assert!(!statement.contains(".route("), "routes outside a router");
                continue;
            }
            name.trim().to_string()
        } else if statement.contains("Router::new()") {
            String::new()
        } else {
            assert!(!statement.contains(".route("), "routes outside a router");
            continue;
        };
        for (at, _) in statement.match_indices(".route(") {
            route_calls += 1;
            let arguments = parenthesised(statement, at + ".route".len());
            let path = first_literal(arguments);
            let methods = methods_of(&arguments[arguments.find(',').expect("a method router")..]);
            assert!(
                !methods.is_empty(),
                "cannot read the methods of route {path}"
            );
            for method in methods {
                routes.push((router.clone(), method, path.clone()));
            }
        }
        for (at, _) in statement.match_indices(".nest(") {
            let arguments = parenthesised(statement, at + ".nest".len());
            let prefix = first_literal(arguments);
            let nested = arguments.rsplit(',').next().expect("a router").trim();
            prefixes.insert(nested.to_string(), prefix);
        }
    }
    assert_eq!(
        route_calls,
        body.matches(".route(").count(),
        "every .route( of app() was read"
    );
    routes
        .into_iter()
        .map(|(router, method, path)| {
            if router.is_empty() {
                return (method, path);
            }
            let prefix = prefixes
                .get(&router)
                .unwrap_or_else(|| panic!("router {router} is never nested"));
            let full = if path == "/" {
                prefix.clone()
            } else {
                format!("{prefix}{path}")
            };
            (method, full)
        })
        .collect()
}

/// A concrete path for a documented template.
fn concrete(template: &str) -> String {
    template
        .replace("{month}", "2024-01")
        .replace("{code}", "phone_system")
        .replace("{type}", "phone_system")
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                uuid::Uuid::new_v4().to_string()
            } else {
                segment.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_documents_every_route_of_the_app() {
    let server = Server::start();
    let document = served_document(&server).await;
    let version = document["openapi"].as_str().unwrap_or("");
    assert!(version.starts_with("3.1."), "openapi is `{version}`");
    assert!(
        document["info"]["title"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "info.title"
    );
    let documented: BTreeSet<(String, String)> = operations(&document).into_keys().collect();
    let routed = routes_in_app();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routed, not documented: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&routed).collect();
    assert!(phantom.is_empty(), "documented, not routed: {phantom:?}");
    // The router itself agrees: without a token, every documented operation answers 401 (or
    // 200 for a public one), never the fallback's 404 or a 405.
    for (method, template) in &documented {
        let path = concrete(template);
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let (status, body) = server.call(method.clone(), &path, None, None).await;
        let expected = if PUBLIC.contains(&template.as_str()) {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, expected, "{method} {path}: {body}");
    }
}

#[tokio::test]
async fn every_path_of_the_contract_is_in_the_document() {
    let server = Server::start();
    let document = served_document(&server).await;
    let documented: BTreeSet<(String, String)> = operations(&document)
        .into_keys()
        .map(|(method, path)| (method, normalise(&path)))
        .collect();
    let missing: Vec<_> = CONTRACT
        .iter()
        .map(|(method, path)| (method.to_string(), normalise(path)))
        .filter(|operation| !documented.contains(operation))
        .collect();
    assert!(
        missing.is_empty(),
        "API.md operations missing from the document: {missing:?}"
    );
}

/// Follow a `$ref` inside the document.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"))
        }
        None => value,
    }
}

/// Every `$ref` under `value`.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                match (key.as_str(), field) {
                    ("$ref", Value::String(reference)) => out.push(reference.clone()),
                    _ => references(field, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_operation_documents_its_parameters_bodies_errors_and_security() {
    let server = Server::start();
    let document = served_document(&server).await;
    let mut all = Vec::new();
    references(&document, &mut all);
    assert!(!all.is_empty(), "a document without $ref");
    for reference in all {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("remote {reference}"));
        assert!(
            document.pointer(pointer).is_some(),
            "dangling $ref {reference}"
        );
    }
    let scheme = &document["components"]["securitySchemes"]["bearer_auth"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    assert_eq!(document["security"], json!([{"bearer_auth": []}]));
    let mut operation_ids = BTreeSet::new();
    for ((method, path), operation) in operations(&document) {
        let what = format!("{method} {path}");
        let id = operation["operationId"].as_str().expect("operationId");
        assert!(
            operation_ids.insert(id.to_string()),
            "{what}: operationId {id} is used twice"
        );
        // Path parameters: exactly the placeholders of the path, required.
        let placeholders: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(String::from)
            .collect();
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let in_path: BTreeSet<String> = parameters
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{what}: {p}");
                p["name"].as_str().expect("name").to_string()
            })
            .collect();
        assert_eq!(in_path, placeholders, "{what}: path parameters");
        // Security: public paths say so; everything else inherits the bearer requirement.
        if PUBLIC.contains(&path.as_str()) {
            assert_eq!(operation["security"], json!([{}]), "{what}: public");
        } else {
            assert!(
                operation.get("security").is_none(),
                "{what}: must require the bearer token"
            );
        }
        // Bodies: every write with a body documents it.
        if ["POST", "PUT", "PATCH"].contains(&method.as_str()) {
            let content = operation["requestBody"]["content"].as_object();
            assert!(
                content.is_some_and(|c| !c.is_empty()),
                "{what}: no request body"
            );
        }
        // Answers: 200 or 201 on success, and every error in the envelope.
        let responses = operation["responses"].as_object().expect("responses");
        let statuses: BTreeSet<&str> = responses.keys().map(String::as_str).collect();
        let successes: Vec<&&str> = statuses.iter().filter(|s| s.starts_with('2')).collect();
        assert!(!successes.is_empty(), "{what}: no success answer");
        assert!(
            successes.iter().all(|s| ["200", "201"].contains(s)),
            "{what}: {successes:?}"
        );
        for (status, response) in responses {
            let response = resolve(&document, response);
            let schema = &response["content"]["application/json"]["schema"];
            if status.starts_with('4') {
                assert_eq!(
                    schema["$ref"], "#/components/schemas/ErrorBody",
                    "{what} {status}"
                );
            } else if path == "/v1/log" {
                let binary = &response["content"]["application/octet-stream"];
                assert!(binary.is_object(), "{what} {status}: no binary answer");
            } else if path.ends_with(".csv") {
                let text = &response["content"]["text/csv"];
                assert!(text.is_object(), "{what} {status}: no CSV answer");
            } else if path.starts_with("/console") {
                let types = response["content"].as_object().expect("content");
                assert!(
                    types.keys().any(|t| t.starts_with("text/")),
                    "{what} {status}: no text answer"
                );
            } else if path != "/metrics" {
                assert!(schema.is_object(), "{what} {status}: no JSON schema");
            }
        }
        let mut expected: Vec<&str> = Vec::new();
        if !PUBLIC.contains(&path.as_str()) {
            expected.extend(["400", "401", "403"]);
        }
        if path.starts_with("/v1/tenants/") {
            expected.push("404");
        }
        if operation["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "If-Match"))
        {
            expected.push("409");
        }
        if operation.get("requestBody").is_some() {
            expected.push("413");
        }
        for status in expected {
            assert!(
                statuses.contains(status),
                "{what}: does not document {status}"
            );
        }
    }
    // Writes carry the write headers; reads and the preview do not.
    let documented = operations(&document);
    for ((method, path), operation) in &documented {
        let headers: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter(|p| p["in"] == "header")
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let writes = method != "GET" && !path.ends_with("/what-if");
        let expected: BTreeSet<&str> = if writes {
            ["If-Match", "Idempotency-Key", "X-Reason"].into()
        } else {
            BTreeSet::new()
        };
        assert_eq!(headers, expected, "{method} {path}: header parameters");
    }
}

/// Checks answers against the document: the status is one the operation documents, and the body
/// validates against that answer's schema (JSON Schema 2020-12, formats included).
struct Contract {
    document: Value,
    /// Operations whose success answer was checked.
    answered: BTreeSet<(String, String)>,
}

impl Contract {
    /// The documented template a concrete path matches, literal segments first
    /// (`/users/batch` before `/users/{u}`).
    fn template(&self, path: &str) -> String {
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        self.document["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .filter(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(part, segment)| part.starts_with('{') || part == segment)
            })
            .max_by_key(|template| template.split('/').filter(|p| !p.starts_with('{')).count())
            .unwrap_or_else(|| panic!("no documented path matches {path}"))
            .clone()
    }

    #[track_caller]
    fn check(&mut self, method: &Method, path: &str, status: StatusCode, body: &Value) {
        let template = self.template(path);
        let what = format!("{method} {template} ({path})");
        let operation = &self.document["paths"][&template][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{what} is not documented");
        let response = operation["responses"]
            .get(status.as_str())
            .unwrap_or_else(|| {
                panic!("{what} answered {status}, which it does not document: {body}")
            });
        let response = resolve(&self.document, response);
        let schema = response["content"]["application/json"]["schema"].clone();
        assert!(schema.is_object(), "{what} {status}: no JSON schema");
        let mut schema = schema;
        schema["components"] = self.document["components"].clone();
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{what} {status}: the schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at `{}`", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} {status}: the answer breaks its documented schema:\n  {}\nanswer: {body}",
            errors.join("\n  ")
        );
        if status.is_success() {
            self.answered
                .insert((method.as_str().to_string(), template.clone()));
        }
    }
}

/// A server whose answers are all checked against its own document.
struct Checked {
    server: Server,
    contract: Contract,
}

impl Checked {
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Value {
        let (status, answer) = self.server.call(method.clone(), path, token, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        self.contract.check(&method, path, status, &answer);
        answer
    }

    async fn ok(&mut self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, Some(ROOT_TOKEN), body, StatusCode::OK)
            .await
    }

    async fn created(&mut self, path: &str, body: Value) -> Value {
        self.created_by(Method::POST, path, body).await
    }

    async fn created_by(&mut self, method: Method, path: &str, body: Value) -> Value {
        self.call(
            method,
            path,
            Some(ROOT_TOKEN),
            Some(body),
            StatusCode::CREATED,
        )
        .await
    }
}

#[tokio::test]
async fn real_answers_of_every_operation_conform_to_the_document() {
    let server = Server::start();
    let document = served_document(&server).await;
    let mut api = Checked {
        server,
        contract: Contract {
            document,
            answered: BTreeSet::new(),
        },
    };
    let body = api.ok(Method::GET, "/healthz", None).await;
    assert_eq!(body["status"], "ok");
    let reply = api
        .server
        .request(Method::GET, "/metrics", None, None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let content_type = reply.headers[header::CONTENT_TYPE].to_str().expect("ascii");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let documented = &api.contract.document["paths"]["/metrics"]["get"]["responses"]["200"];
    assert!(
        documented["content"]["text/plain"].is_object(),
        "{documented}"
    );
    api.contract
        .answered
        .insert(("GET".into(), "/metrics".into()));
    // The console's page, script and style: the content types they are documented with.
    for (path, content) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let reply = api.server.request(Method::GET, path, None, None, &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        let content_type = reply.headers[header::CONTENT_TYPE].to_str().expect("ascii");
        assert!(content_type.starts_with(content), "{path}: {content_type}");
        let documented = &api.contract.document["paths"][path]["get"]["responses"]["200"];
        assert!(documented["content"][content].is_object(), "{documented}");
        api.contract.answered.insert(("GET".into(), path.into()));
    }
    let document = api.ok(Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(document["openapi"], api.contract.document["openapi"]);
    // The log: one record, in the stores' format, as documented.
    let reply = api
        .server
        .request(Method::GET, "/v1/log?limit=5", Some(ROOT_TOKEN), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let content_type = reply.headers[header::CONTENT_TYPE].to_str().expect("ascii");
    assert_eq!(content_type, "application/octet-stream");
    assert!(reply.headers.contains_key("x-ledger-head"));
    api.contract
        .answered
        .insert(("GET".into(), "/v1/log".into()));

    // Tenants, keys, catalogue, settings, prices.
    let tenant = api
        .created("/v1/tenants", json!({"name": "Acme", "currency": "EUR"}))
        .await;
    let t = format!("/v1/tenants/{}", id_of(&tenant));
    let key = api
        .created(
            &format!("{t}/keys"),
            json!({"role": "auditor", "name": "audit"}),
        )
        .await;
    let auditor = key["token"].as_str().expect("token").to_string();
    let key = api
        .created(
            &format!("{t}/keys"),
            json!({"role": "viewer", "name": "gone"}),
        )
        .await;
    api.ok(Method::DELETE, &format!("{t}/keys/{}", id_of(&key)), None)
        .await;
    api.ok(Method::GET, &t, None).await;
    api.ok(Method::GET, &format!("{t}/catalog"), None).await;
    let definition = json!({"kind": "addon", "attaches_to": ["phone_system"]});
    api.created_by(Method::PUT, &format!("{t}/catalog/fax"), definition.clone())
        .await;
    api.ok(Method::PUT, &format!("{t}/catalog/fax"), Some(definition))
        .await;
    let feature = json!({"kind": "feature", "name": "UKEY2", "enabled_by_default": false});
    api.created_by(Method::PUT, &format!("{t}/catalog/ukey2"), feature)
        .await;
    api.ok(Method::GET, &format!("{t}/catalog"), None).await;
    api.ok(
        Method::PUT,
        &format!("{t}/settings/recording-retention"),
        Some(json!({"days": 14})),
    )
    .await;
    api.ok(
        Method::PUT,
        &format!("{t}/prices/phone_system"),
        Some(json!({"unit_price_minor": 1500, "effective_from": "2020-01-01T00:00:00Z"})),
    )
    .await;
    api.ok(
        Method::PUT,
        &format!("{t}/webhook"),
        Some(json!({"url": "http://127.0.0.1:9/hook"})),
    )
    .await;
    api.ok(Method::GET, &format!("{t}/notification-template"), None)
        .await;
    api.ok(
        Method::PUT,
        &format!("{t}/notification-template"),
        Some(json!({"subject": "{{ group_name }}", "body": "{{ expiry_date }}"})),
    )
    .await;

    // Licences, groups, users.
    let provisioned = api
        .created(
            &format!("{t}/licenses"),
            json!({"type": "phone_system", "quantity": 3}),
        )
        .await;
    let bases: Vec<String> = provisioned["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().expect("id").to_string())
        .collect();
    let set = api
        .ok(
            Method::PUT,
            &format!("{t}/subscription/device_ip_phone"),
            Some(json!({"quantity": 3})),
        )
        .await;
    let addon = set["provisioned"][0].as_str().expect("addon").to_string();
    let group = api
        .created(&format!("{t}/groups"), json!({"name": "HQ"}))
        .await;
    let g = id_of(&group);
    let child = api
        .created(
            &format!("{t}/groups"),
            json!({"name": "Sales", "parent_id": g}),
        )
        .await;
    api.ok(
        Method::PATCH,
        &format!("{t}/groups/{}", id_of(&child)),
        Some(json!({"name": "Sales EU"})),
    )
    .await;
    let user = api
        .created(
            &format!("{t}/users"),
            json!({"name": "John", "group_id": g, "extension": "101"}),
        )
        .await;
    let u = id_of(&user);
    api.created(
        &format!("{t}/users/batch"),
        json!({"users": [{"name": "Alice", "group_id": g}, {"name": "Lucie", "group_id": g}]}),
    )
    .await;
    let other = api
        .created(
            &format!("{t}/users"),
            json!({"name": "Hallie", "group_id": g}),
        )
        .await;
    let other = id_of(&other);
    api.ok(
        Method::PATCH,
        &format!("{t}/users/{other}"),
        Some(json!({"name": "Hallie B."})),
    )
    .await;
    let sales = id_of(&child);
    api.created(
        &format!("{t}/users/{other}/groups"),
        json!({"group_id": sales}),
    )
    .await;
    api.created_by(
        Method::PUT,
        &format!("{t}/services/speech_to_text"),
        json!({"name": "Speech-to-Text", "unit": "minute", "enabled": true,
               "base_allowance": 5000, "monthly_cap": 2000}),
    )
    .await;
    api.ok(
        Method::PUT,
        &format!("{t}/services/speech_to_text"),
        Some(json!({"unit": "minute", "enabled": true, "base_allowance": 5000})),
    )
    .await;
    api.ok(
        Method::POST,
        &format!("{t}/usage-records"),
        Some(json!({"records": [
            {"id": "r1", "service": "speech_to_text", "quantity": 3, "user_id": u,
             "queue": "support", "occurred_at": chrono::Utc::now().to_rfc3339()},
            {"id": "r1", "service": "speech_to_text", "quantity": 3,
             "occurred_at": chrono::Utc::now().to_rfc3339()},
        ]})),
    )
    .await;
    api.ok(Method::GET, &format!("{t}/services"), None).await;
    let cart = api
        .created(
            &format!("{t}/carts"),
            json!({"commands": [{"op": "provision", "type": "phone_system", "quantity": 1}]}),
        )
        .await;
    let cart = id_of(&cart);
    api.ok(Method::GET, &format!("{t}/carts/{cart}"), None)
        .await;
    api.ok(
        Method::POST,
        &format!("{t}/carts/{cart}/confirm"),
        Some(json!({})),
    )
    .await;
    api.ok(Method::GET, &format!("{t}/services/speech_to_text"), None)
        .await;
    api.ok(
        Method::GET,
        &format!("{t}/users/{u}/entitlements/speech_to_text"),
        None,
    )
    .await;
    let before_assignments = chrono::Utc::now().to_rfc3339();
    api.ok(
        Method::POST,
        &format!("{t}/licenses/{}/assign", bases[0]),
        Some(json!({"user_id": u})),
    )
    .await;
    api.ok(
        Method::POST,
        &format!("{t}/licenses/{}/addons", bases[0]),
        Some(json!({"addon_id": addon})),
    )
    .await;
    api.ok(
        Method::POST,
        &format!("{t}/licenses/{}/reassign", bases[0]),
        Some(json!({"user_id": other})),
    )
    .await;
    api.ok(
        Method::DELETE,
        &format!("{t}/licenses/{}/addons/{addon}", bases[0]),
        None,
    )
    .await;
    api.ok(
        Method::POST,
        &format!("{t}/licenses/{}/unassign", bases[0]),
        Some(json!({})),
    )
    .await;
    api.ok(
        Method::POST,
        &format!("{t}/assignments"),
        Some(json!({"user_id": u, "type": "phone_system", "addons": ["device_ip_phone"]})),
    )
    .await;
    api.ok(
        Method::PUT,
        &format!("{t}/groups/{g}/restriction"),
        Some(json!({
            "enabled": true, "limits": {"phone_system": 2},
            "valid_until": "2999-01-01T00:00:00Z",
            "reminder": {"days_before": 30, "frequency": "weekly"},
            "features": {"ukey2": true},
        })),
    )
    .await;
    api.ok(
        Method::PUT,
        &format!("{t}/users/{u}/restriction"),
        Some(json!({"limits": {"phone_system": 1}, "valid_until": "2998-01-01T00:00:00Z"})),
    )
    .await;

    // Reads.
    api.ok(Method::GET, &format!("{t}/licenses?limit=1"), None)
        .await;
    api.ok(
        Method::GET,
        &format!("{t}/licenses?user_id={u}&status=assigned"),
        None,
    )
    .await;
    let free = api
        .ok(
            Method::GET,
            &format!("{t}/licenses?type=phone_system&status=free"),
            None,
        )
        .await;
    let free = free["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no free phone_system licence in {free}"))
        .to_string();
    let one = api
        .ok(Method::GET, &format!("{t}/licenses/{}", bases[0]), None)
        .await;
    assert!(
        one["events"].as_array().is_some_and(|e| !e.is_empty()),
        "{one}"
    );
    api.ok(Method::GET, &format!("{t}/licenses/{addon}"), None)
        .await;
    api.ok(Method::GET, &format!("{t}/groups?limit=1"), None)
        .await;
    api.ok(Method::GET, &format!("{t}/groups/{g}"), None).await;
    api.ok(Method::GET, &format!("{t}/groups/{g}/state"), None)
        .await;
    let past = format!("{t}/groups/{g}/state?at={}", urlencode(&before_assignments));
    api.call(Method::GET, &past, Some(&auditor), None, StatusCode::OK)
        .await;
    api.ok(Method::GET, &format!("{t}/users?limit=2&q=a"), None)
        .await;
    api.ok(Method::GET, &format!("{t}/users/{u}"), None).await;
    let past_user = format!("{t}/users/{u}?at={}", urlencode(&before_assignments));
    api.call(
        Method::GET,
        &past_user,
        Some(&auditor),
        None,
        StatusCode::OK,
    )
    .await;
    api.ok(Method::GET, &format!("{t}/usage"), None).await;
    let at = urlencode(&before_assignments);
    api.ok(Method::GET, &format!("{t}/usage?at={at}"), None)
        .await;
    let entitled = format!("{t}/users/{u}/entitlements/phone_system");
    api.ok(Method::GET, &entitled, None).await;
    let blocked = format!("{t}/users/{other}/entitlements/device_ip_phone");
    let answer = api.ok(Method::GET, &blocked, None).await;
    assert_eq!(answer["allowed"], false, "{answer}");
    let feature = api
        .ok(
            Method::GET,
            &format!("{t}/users/{u}/entitlements/ukey2"),
            None,
        )
        .await;
    assert_eq!(feature["kind"], "feature", "{feature}");
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    api.ok(Method::GET, &format!("{t}/billing/{month}"), None)
        .await;
    api.ok(Method::GET, &format!("{t}/invoices/{month}"), None)
        .await;
    let page = api
        .ok(Method::GET, &format!("{t}/events?limit=2"), None)
        .await;
    assert!(page["next"].is_string(), "{page}");
    api.ok(
        Method::GET,
        &format!("{t}/reminders?due_before=2998-12-31T00:00:00Z"),
        None,
    )
    .await;
    let preview = api
        .ok(
            Method::POST,
            &format!("{t}/what-if"),
            Some(json!({"commands": [
                {"op": "set_restriction", "group_id": g, "enabled": true, "limits": {"phone_system": 0}},
                {"op": "unassign", "license_id": free},
                {"op": "provision", "type": "phone_system", "quantity": 1},
            ]})),
        )
        .await;
    assert_eq!(preview["ok"], false, "{preview}");

    // Import: a dry run of the vendor's sample shape, then the file applied.
    let csv = "Ext Key,Number,User,Addon license 1\n201,6567891299,Alice,device_ip_phone\n";
    let imports = format!("{t}/imports");
    for query in ["?dry_run=true", ""] {
        let reply = api
            .server
            .send(
                axum::http::Request::builder()
                    .method(Method::POST)
                    .uri(format!("{imports}{query}"))
                    .header(header::AUTHORIZATION, format!("Bearer {ROOT_TOKEN}"))
                    .header(header::CONTENT_TYPE, "text/csv")
                    .body(axum::body::Body::from(csv))
                    .expect("request"),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{imports}{query}: {}",
            reply.body
        );
        api.contract
            .check(&Method::POST, &imports, reply.status, &reply.body);
    }
    // The sample file: CSV, as documented.
    let sample = format!("{imports}/sample.csv");
    let reply = api
        .server
        .request(Method::GET, &sample, Some(ROOT_TOKEN), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{sample}: {}", reply.body);
    let content_type = reply.headers[header::CONTENT_TYPE].to_str().expect("ascii");
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let documented = &api.contract.document["paths"]["/v1/tenants/{t}/imports/sample.csv"]["get"]
        ["responses"]["200"];
    assert!(
        documented["content"]["text/csv"].is_object(),
        "{documented}"
    );
    api.contract
        .answered
        .insert(("GET".into(), "/v1/tenants/{t}/imports/sample.csv".into()));

    // Errors, each in the envelope its operation documents. The import took licences: look
    // for one still free.
    let free = api
        .ok(
            Method::GET,
            &format!("{t}/licenses?type=phone_system&status=free"),
            None,
        )
        .await;
    let free = free["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no free phone_system licence in {free}"))
        .to_string();
    api.call(Method::GET, &t, None, None, StatusCode::UNAUTHORIZED)
        .await;
    api.call(
        Method::POST,
        "/v1/tenants",
        Some(&auditor),
        Some(json!({"name": "x"})),
        StatusCode::FORBIDDEN,
    )
    .await;
    api.call(
        Method::GET,
        &format!("{t}/licenses/not-a-uuid"),
        Some(ROOT_TOKEN),
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    api.call(
        Method::GET,
        &format!("/v1/tenants/{}/usage", uuid::Uuid::new_v4()),
        Some(ROOT_TOKEN),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    api.call(
        Method::POST,
        &format!("{t}/licenses/{free}/unassign"),
        Some(ROOT_TOKEN),
        Some(json!({})),
        StatusCode::CONFLICT,
    )
    .await;
    let refused = api
        .call(
            Method::PUT,
            &format!("{t}/groups/{g}/restriction"),
            Some(ROOT_TOKEN),
            Some(json!({"enabled": true, "limits": {"phone_system": 0}})),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert!(
        refused["error"]["details"]["violations"].is_array(),
        "{refused}"
    );
    let (status, answer) = api
        .server
        .raw(
            Method::POST,
            &format!("{t}/users"),
            Some(ROOT_TOKEN),
            vec![b' '; ledger::http::REQUEST_BODY_BYTES_MAX + 1],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    api.contract
        .check(&Method::POST, &format!("{t}/users"), status, &answer);

    // Deletions last.
    api.ok(
        Method::DELETE,
        &format!("{t}/users/{other}/groups/{sales}"),
        None,
    )
    .await;
    api.ok(Method::DELETE, &format!("{t}/users/{u}/restriction"), None)
        .await;
    api.ok(Method::DELETE, &format!("{t}/groups/{g}/restriction"), None)
        .await;
    api.ok(Method::DELETE, &format!("{t}/licenses/{free}"), None)
        .await;
    let spare = api
        .created(
            &format!("{t}/users"),
            json!({"name": "Temp", "group_id": g}),
        )
        .await;
    api.ok(
        Method::DELETE,
        &format!("{t}/users/{}", id_of(&spare)),
        None,
    )
    .await;

    let unchecked: Vec<_> = operations(&api.contract.document)
        .into_keys()
        .filter(|operation| !api.contract.answered.contains(operation))
        .collect();
    assert!(
        unchecked.is_empty(),
        "no success answer of these operations was checked against the document; add one \
         here: {unchecked:?}"
    );
}

/// Percent-encode the `+` and `:` of an RFC 3339 instant for a query string.
fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

/// Every `` `METHOD /path` `` in `docs/API.md`, normalised.
fn operations_in_api_md() -> BTreeSet<(String, String)> {
    let text = include_str!("../../docs/API.md");
    let mut out = BTreeSet::new();
    for quoted in text.split('`').skip(1).step_by(2) {
        let Some((method, rest)) = quoted.split_once(' ') else {
            continue;
        };
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method) || !rest.starts_with('/') {
            continue;
        }
        let path = rest.split(['?', ' ']).next().unwrap_or(rest);
        out.insert((method.to_string(), normalise(path)));
    }
    out
}

#[tokio::test]
async fn docs_api_md_lists_exactly_the_operations_the_server_documents() {
    let server = Server::start();
    let document = served_document(&server).await;
    let served: BTreeSet<(String, String)> = operations(&document)
        .keys()
        .map(|(method, path)| (method.clone(), normalise(path)))
        .collect();
    let written = operations_in_api_md();
    let undocumented: Vec<_> = served.difference(&written).collect();
    let unserved: Vec<_> = written.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in docs/API.md: {undocumented:?}; in docs/API.md but not served: {unserved:?}"
    );
}
