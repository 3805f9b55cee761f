//! The harness: a real ledger on a temporary sled directory behind the real router, driven
//! without a socket (`app(state).oneshot(request)`, as in axum's `examples/testing`).
//!
//! Every test owns its [`Server`] (its own directory), so tests run in parallel without sharing
//! state. Setup helpers assert their own success, so a broken setup fails loudly where it broke.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use ledger::http::auth::token_hash;
use ledger::http::{app, App};
use ledger::ledger::Ledger;
use ledger::store::sled_store::SledStore;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use tempfile::TempDir;
use tower::ServiceExt;

/// The root token every test server is started with.
pub const ROOT_TOKEN: &str = "it-root-token-0123456789";

/// How often a restart tries to reopen the store while the previous writer thread lets go of
/// sled's directory lock.
const REOPEN_ATTEMPTS_MAX: u32 = 2_000;

/// What the router answered.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as JSON; a body that is not JSON is kept as a JSON string so an assertion on
    /// its shape fails with the text in the message.
    pub body: Value,
}

impl Reply {
    /// The `ETag` header, if any.
    pub fn etag(&self) -> Option<&str> {
        self.headers.get(header::ETAG).and_then(|v| v.to_str().ok())
    }
}

/// One ledger on its own directory, behind the real router.
pub struct Server {
    dir: TempDir,
    router: Router,
    ledger: Ledger,
}

/// A tenant made by [`Server::tenant`], with a key of every role.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: String,
    pub admin: String,
    pub operator: String,
    pub viewer: String,
    pub auditor: String,
    pub billing: String,
}

impl Tenant {
    /// `/v1/tenants/{id}` followed by `rest`.
    pub fn path(&self, rest: &str) -> String {
        format!("/v1/tenants/{}{rest}", self.id)
    }
}

fn open_router(dir: &Path) -> Result<(Router, Ledger), String> {
    let store = SledStore::open(dir).map_err(|e| e.to_string())?;
    let ledger = Ledger::start(Arc::new(store)).map_err(|e| e.to_string())?;
    let router = app(App {
        ledger: ledger.clone(),
        root_token_hash: token_hash(ROOT_TOKEN),
    });
    Ok((router, ledger))
}

/// Assert the error envelope of API.md: `{"error": {"code", "message", "details"?}}` and nothing
/// else at the top level.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "status; body: {body}");
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    assert_eq!(object.len(), 1, "only `error` at the top level: {body}");
    let error = &body["error"];
    assert_eq!(error["code"], code, "error code; body: {body}");
    let message = error["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "a human message: {body}");
    let keys: Vec<&String> = error.as_object().expect("error object").keys().collect();
    for key in keys {
        assert!(
            ["code", "message", "details"].contains(&key.as_str()),
            "unexpected field `{key}` in {body}"
        );
    }
}

/// The rules named in `details.violations` of a 422, in order.
pub fn violation_rules(body: &Value) -> Vec<String> {
    body["error"]["details"]["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("no details.violations in {body}"))
        .iter()
        .map(|v| v["rule"].as_str().expect("rule").to_string())
        .collect()
}

/// The `id` field of a creation answer.
#[track_caller]
pub fn id_of(body: &Value) -> String {
    body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {body}"))
        .to_string()
}

impl Server {
    /// A fresh ledger on a new temporary directory.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (router, ledger) = open_router(dir.path()).expect("open a new ledger");
        Server {
            dir,
            router,
            ledger,
        }
    }

    /// Drop the running ledger and start a new one on the same directory: the state is rebuilt
    /// by replaying the log from scratch.
    pub async fn restart(self) -> Server {
        let Server {
            dir,
            router,
            ledger,
        } = self;
        drop(router);
        drop(ledger);
        // The writer thread holds the store until it sees its queue closed; sled refuses a second
        // open of the directory until then.
        let mut last_error = String::new();
        for _ in 0..REOPEN_ATTEMPTS_MAX {
            match open_router(dir.path()) {
                Ok((router, ledger)) => {
                    return Server {
                        dir,
                        router,
                        ledger,
                    }
                }
                Err(e) => last_error = e,
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("cannot reopen the store after a restart: {last_error}");
    }

    /// The ledger behind the router, for background tasks driven by a test.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The router, to clone into concurrent tasks.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Send a fully built request.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        send(self.router.clone(), request).await
    }

    /// A request with an optional bearer token, optional JSON body and extra headers.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.send(build(method, path, token, json, headers)).await
    }

    /// `call(method, path, token, json) -> (status, body)`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: Option<Value>,
    ) -> (StatusCode, Value) {
        let reply = self.request(method, path, token, json, &[]).await;
        (reply.status, reply.body)
    }

    /// A request whose body is raw bytes (malformed JSON, oversized bodies).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let reply = self
            .send(builder.body(Body::from(body)).expect("request"))
            .await;
        (reply.status, reply.body)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, json: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(json)).await
    }

    pub async fn put(&self, path: &str, token: &str, json: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(token), Some(json)).await
    }

    pub async fn patch(&self, path: &str, token: &str, json: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(json))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// The global sequence of the last event, read from `GET /healthz`.
    pub async fn event_count(&self) -> u64 {
        let (status, body) = self.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("no seq in {body}"))
    }

    /// A new tenant (default catalogue) with one key of every role.
    pub async fn tenant(&self) -> Tenant {
        let (status, body) = self
            .post("/v1/tenants", ROOT_TOKEN, json!({"name": "Acme"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = id_of(&body);
        let mut tenant = Tenant {
            id,
            admin: String::new(),
            operator: String::new(),
            viewer: String::new(),
            auditor: String::new(),
            billing: String::new(),
        };
        tenant.admin = self.key(&tenant, "admin").await;
        tenant.operator = self.key(&tenant, "operator").await;
        tenant.viewer = self.key(&tenant, "viewer").await;
        tenant.auditor = self.key(&tenant, "auditor").await;
        tenant.billing = self.key(&tenant, "billing").await;
        tenant
    }

    /// Issue a key of `role` with the root token; returns its token.
    pub async fn key(&self, tenant: &Tenant, role: &str) -> String {
        let (status, body) = self
            .post(
                &tenant.path("/keys"),
                ROOT_TOKEN,
                json!({"role": role, "name": format!("{role} key")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// A group named `name` under `parent` (a root group for `None`).
    pub async fn group(&self, tenant: &Tenant, name: &str, parent: Option<&str>) -> String {
        let (status, body) = self
            .post(
                &tenant.path("/groups"),
                ROOT_TOKEN,
                json!({"name": name, "parent_id": parent}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        id_of(&body)
    }

    /// A user named `name` in `group`.
    pub async fn user(&self, tenant: &Tenant, group: &str, name: &str) -> String {
        self.user_with(tenant, json!({"name": name, "group_id": group}))
            .await
    }

    /// A user from a full creation body.
    pub async fn user_with(&self, tenant: &Tenant, body: Value) -> String {
        let (status, body) = self.post(&tenant.path("/users"), ROOT_TOKEN, body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        id_of(&body)
    }

    /// Provision `quantity` licences of `license_type`; returns their ids.
    pub async fn provision(
        &self,
        tenant: &Tenant,
        license_type: &str,
        quantity: u32,
    ) -> Vec<String> {
        let (status, body) = self
            .post(
                &tenant.path("/licenses"),
                ROOT_TOKEN,
                json!({"type": license_type, "quantity": quantity}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|id| id.as_str().expect("id").to_string())
            .collect()
    }

    /// Enable a restriction with `limits` (`{"type": n}`) on `group`.
    pub async fn restrict(&self, tenant: &Tenant, group: &str, limits: Value) {
        let (status, body) = self
            .put(
                &tenant.path(&format!("/groups/{group}/restriction")),
                ROOT_TOKEN,
                json!({"enabled": true, "limits": limits}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Assign `license` to `user` with `token`.
    pub async fn assign_as(
        &self,
        tenant: &Tenant,
        token: &str,
        license: &str,
        user: &str,
    ) -> (StatusCode, Value) {
        self.post(
            &tenant.path(&format!("/licenses/{license}/assign")),
            token,
            json!({"user_id": user}),
        )
        .await
    }

    /// Assign `license` to `user` with the root token, asserting success.
    pub async fn assign(&self, tenant: &Tenant, license: &str, user: &str) {
        let (status, body) = self.assign_as(tenant, ROOT_TOKEN, license, user).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Attach `addon` to `base` with the root token, asserting success.
    pub async fn attach(&self, tenant: &Tenant, base: &str, addon: &str) {
        let (status, body) = self
            .post(
                &tenant.path(&format!("/licenses/{base}/addons")),
                ROOT_TOKEN,
                json!({"addon_id": addon}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// `types` of the current usage.
    pub async fn usage(&self, tenant: &Tenant) -> Value {
        let (status, body) = self.get(&tenant.path("/usage"), ROOT_TOKEN).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["types"].clone()
    }

    /// The current state of a group, without the `at` it was evaluated at.
    pub async fn group_state(&self, tenant: &Tenant, group: &str) -> Value {
        let (status, mut body) = self
            .get(&tenant.path(&format!("/groups/{group}/state")), ROOT_TOKEN)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_object_mut().expect("object").remove("at");
        body
    }

    /// One licence as `token` sees it.
    pub async fn license(&self, tenant: &Tenant, token: &str, license: &str) -> Value {
        let (status, body) = self
            .get(&tenant.path(&format!("/licenses/{license}")), token)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// Build a request: bearer token, JSON body and extra headers.
pub fn build(
    method: Method,
    path: &str,
    token: Option<&str>,
    json: Option<Value>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = match json {
        Some(json) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::to_vec(&json).expect("serialise"))
        }
        None => Body::empty(),
    };
    builder.body(body).expect("request")
}

/// Send `request` through `router` without a socket and read the whole answer.
pub async fn send(router: Router, request: Request<Body>) -> Reply {
    let response = router.oneshot(request).await.expect("infallible router");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("read the body")
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Reply {
        status,
        headers,
        body,
    }
}
