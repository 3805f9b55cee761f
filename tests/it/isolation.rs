//! The isolation matrix (issue 6, item 5): every operation of the served OpenAPI document is
//! called by every role of a tenant, by the root token, without a token and with another
//! tenant's admin key, and each answer is checked against the role table of SPEC "Access" and
//! API.md "Precise answers" on roles, written out below per (method, path template).
//!
//! The operations come from `GET /v1/openapi.json`, so a new endpoint is called automatically —
//! and fails the test until it has an entry in [`matrix`] saying who may call it.
//!
//! "Allowed" means the call went through: every input is built to be valid against a fresh
//! [`Fixture`], so an allowed call must answer 2xx. "Denied" means exactly 403 `forbidden`
//! (401 `unauthorized` without a token, and also 403 for another tenant's key, whether or not the
//! tenant in the path exists), and a denied call never moves the global event sequence.

use crate::support::{build, id_of, Reply, Server, Tenant, ROOT_TOKEN};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Who may make a call, as SPEC "Access" and API.md "Precise answers" put it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// No token needed (health, metrics, the document): everyone, with or without a token.
    Public,
    /// Only the root token: creating tenants.
    RootOnly,
    /// Current state: every role of the tenant.
    Read,
    /// Assign, unassign, reassign, add-ons, assignments, users, imports: operator and admin.
    Operate,
    /// Quotas, quantities, terminations, prices, keys, catalogue, settings, groups: admin.
    Administer,
    /// History and every past `at=`: auditor and admin.
    Audit,
    /// Peaks and invoices: billing and admin.
    Bill,
    /// `usage?at=` in the past: auditor, billing and admin.
    AuditOrBill,
}

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Principal {
    NoToken,
    OtherTenantAdmin,
    Viewer,
    Auditor,
    Billing,
    Operator,
    Admin,
    Root,
}

/// Denied principals first, so a refused call runs against the same fixture as the allowed
/// ones that follow it.
const PRINCIPALS: [Principal; 8] = [
    Principal::NoToken,
    Principal::OtherTenantAdmin,
    Principal::Viewer,
    Principal::Auditor,
    Principal::Billing,
    Principal::Operator,
    Principal::Admin,
    Principal::Root,
];

/// The roles of the tenant each access class lets in, spelled out (the root token acts as an
/// admin inside every tenant and is handled with it).
fn roles_allowed(access: Access) -> &'static [Principal] {
    use Principal::*;
    match access {
        Access::Public => &[Viewer, Auditor, Billing, Operator, Admin],
        Access::RootOnly => &[],
        Access::Read => &[Viewer, Auditor, Billing, Operator, Admin],
        Access::Operate => &[Operator, Admin],
        Access::Administer => &[Admin],
        Access::Audit => &[Auditor, Admin],
        Access::Bill => &[Billing, Admin],
        Access::AuditOrBill => &[Auditor, Billing, Admin],
    }
}

/// What a principal must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The call goes through: 2xx.
    Allowed,
    /// 403 `forbidden`.
    Forbidden,
    /// 401 `unauthorized`.
    Unauthorized,
    /// A key of another tenant: 403, never 2xx, and never 404 (which would tell whether the
    /// tenant exists).
    Foreign,
}

fn expect(access: Access, principal: Principal) -> Expect {
    match (access, principal) {
        (Access::Public, _) => Expect::Allowed,
        (_, Principal::NoToken) => Expect::Unauthorized,
        (_, Principal::Root) => Expect::Allowed,
        (Access::RootOnly, _) => Expect::Forbidden,
        (_, Principal::OtherTenantAdmin) => Expect::Foreign,
        (access, role) if roles_allowed(access).contains(&role) => Expect::Allowed,
        _ => Expect::Forbidden,
    }
}

/// Whether a principal reads licence history (`events` in `GET /licenses/{id}`).
fn reads_history(principal: Principal) -> bool {
    matches!(
        principal,
        Principal::Auditor | Principal::Admin | Principal::Root
    )
}

/// A body.
enum Payload {
    None,
    Json(Value),
    Csv(String),
}

/// One concrete request: a path (with its query) and a body.
struct Call {
    path: String,
    payload: Payload,
}

impl Call {
    fn get(path: String) -> Call {
        Call {
            path,
            payload: Payload::None,
        }
    }

    fn json(path: String, body: Value) -> Call {
        Call {
            path,
            payload: Payload::Json(body),
        }
    }
}

/// One way to call an operation: its access class and how to build the request.
struct Case {
    /// What tells this case from the operation's others (its query), for messages.
    variant: &'static str,
    access: Access,
    call: fn(&Fixture) -> Call,
    /// The answer carries `events` (licence history) exactly for roles that read history.
    history: bool,
}

fn case(variant: &'static str, access: Access, call: fn(&Fixture) -> Call) -> Case {
    Case {
        variant,
        access,
        call,
        history: false,
    }
}

/// An operation of the document and every way it is called.
struct Entry {
    method: &'static str,
    template: &'static str,
    cases: Vec<Case>,
}

fn entry(method: &'static str, template: &'static str, cases: Vec<Case>) -> Entry {
    Entry {
        method,
        template,
        cases,
    }
}

/// The expected-access table: one entry per documented operation.
fn matrix() -> Vec<Entry> {
    use Access::*;
    vec![
        // Operations: no token.
        entry(
            "GET",
            "/healthz",
            vec![case("", Public, |_| Call::get("/healthz".into()))],
        ),
        entry(
            "GET",
            "/metrics",
            vec![case("", Public, |_| Call::get("/metrics".into()))],
        ),
        entry(
            "GET",
            "/console",
            vec![case("", Public, |_| Call::get("/console".into()))],
        ),
        entry(
            "GET",
            "/console/app.js",
            vec![case("", Public, |_| Call::get("/console/app.js".into()))],
        ),
        entry(
            "GET",
            "/console/app.css",
            vec![case("", Public, |_| Call::get("/console/app.css".into()))],
        ),
        entry(
            "GET",
            "/v1/openapi.json",
            vec![case("", Public, |_| Call::get("/v1/openapi.json".into()))],
        ),
        entry(
            "GET",
            "/v1/log",
            vec![case("", RootOnly, |_| Call::get("/v1/log?limit=10".into()))],
        ),
        // Tenants and keys.
        entry(
            "POST",
            "/v1/tenants",
            vec![case("", RootOnly, |_| {
                Call::json("/v1/tenants".into(), json!({"name": "Isolated"}))
            })],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}",
            vec![case("", Read, |f| Call::get(f.path("")))],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/keys",
            vec![case("", Administer, |f| {
                Call::json(f.path("/keys"), json!({"role": "viewer", "name": "probe"}))
            })],
        ),
        entry(
            "DELETE",
            "/v1/tenants/{t}/keys/{key}",
            vec![case("", Administer, |f| {
                Call::get(f.path(&format!("/keys/{}", f.spare_key)))
            })],
        ),
        // Catalogue, settings, prices, webhook.
        entry(
            "GET",
            "/v1/tenants/{t}/catalog",
            vec![case("", Read, |f| Call::get(f.path("/catalog")))],
        ),
        entry(
            "PUT",
            "/v1/tenants/{t}/catalog/{code}",
            vec![case("", Administer, |f| {
                Call::json(f.path("/catalog/isolation_probe"), json!({"kind": "base"}))
            })],
        ),
        entry(
            "PUT",
            "/v1/tenants/{t}/settings/recording-retention",
            vec![case("", Administer, |f| {
                Call::json(
                    f.path("/settings/recording-retention"),
                    json!({"months": 3}),
                )
            })],
        ),
        entry(
            "PUT",
            "/v1/tenants/{t}/prices/{type}",
            vec![case("", Administer, |f| {
                Call::json(
                    f.path("/prices/phone_system"),
                    json!({"unit_price_minor": 1500}),
                )
            })],
        ),
        entry(
            "PUT",
            "/v1/tenants/{t}/webhook",
            vec![case("", Administer, |f| {
                Call::json(
                    f.path("/webhook"),
                    json!({"url": "https://example.com/ledger-reminders"}),
                )
            })],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/notification-template",
            vec![case("", Read, |f| {
                Call::get(f.path("/notification-template"))
            })],
        ),
        entry(
            "PUT",
            "/v1/tenants/{t}/notification-template",
            vec![case("", Administer, |f| {
                Call::json(
                    f.path("/notification-template"),
                    json!({"subject": "{{ group_name }}", "body": "{{ days_left }} days left"}),
                )
            })],
        ),
        // Licences.
        entry(
            "GET",
            "/v1/tenants/{t}/licenses",
            vec![case("", Read, |f| Call::get(f.path("/licenses")))],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/licenses",
            vec![case("", Administer, |f| {
                Call::json(
                    f.path("/licenses"),
                    json!({"type": "phone_system", "quantity": 1}),
                )
            })],
        ),
        entry(
            "PUT",
            "/v1/tenants/{t}/subscription/{type}",
            vec![case("", Administer, |f| {
                Call::json(
                    f.path("/subscription/developer"),
                    json!({"quantity": f.developer_owned + 1}),
                )
            })],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/licenses/{id}",
            vec![Case {
                history: true,
                ..case("", Read, |f| {
                    Call::get(f.path(&format!("/licenses/{}", f.held)))
                })
            }],
        ),
        entry(
            "DELETE",
            "/v1/tenants/{t}/licenses/{id}",
            vec![case("", Administer, |f| {
                Call::get(f.path(&format!("/licenses/{}", f.free)))
            })],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/licenses/{id}/assign",
            vec![case("", Operate, |f| {
                Call::json(
                    f.path(&format!("/licenses/{}/assign", f.free)),
                    json!({"user_id": f.spare_user}),
                )
            })],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/licenses/{id}/unassign",
            vec![case("", Operate, |f| {
                Call::json(f.path(&format!("/licenses/{}/unassign", f.held)), json!({}))
            })],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/licenses/{id}/reassign",
            vec![case("", Operate, |f| {
                Call::json(
                    f.path(&format!("/licenses/{}/reassign", f.held)),
                    json!({"user_id": f.spare_user}),
                )
            })],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/licenses/{id}/addons",
            vec![case("", Operate, |f| {
                Call::json(
                    f.path(&format!("/licenses/{}/addons", f.held)),
                    json!({"addon_id": f.free_addon}),
                )
            })],
        ),
        entry(
            "DELETE",
            "/v1/tenants/{t}/licenses/{id}/addons/{addon}",
            vec![case("", Operate, |f| {
                Call::get(f.path(&format!("/licenses/{}/addons/{}", f.held, f.held_addon)))
            })],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/assignments",
            vec![case("", Operate, |f| {
                Call::json(
                    f.path("/assignments"),
                    json!({"user_id": f.spare_user, "type": "phone_system"}),
                )
            })],
        ),
        // Groups.
        entry(
            "GET",
            "/v1/tenants/{t}/groups",
            vec![case("", Read, |f| Call::get(f.path("/groups")))],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/groups",
            vec![case("", Administer, |f| {
                Call::json(
                    f.path("/groups"),
                    json!({"name": "Probe", "parent_id": f.group}),
                )
            })],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/groups/{g}",
            vec![case("", Read, |f| {
                Call::get(f.path(&format!("/groups/{}", f.group)))
            })],
        ),
        entry(
            "PATCH",
            "/v1/tenants/{t}/groups/{g}",
            vec![case("", Administer, |f| {
                Call::json(
                    f.path(&format!("/groups/{}", f.group)),
                    json!({"name": format!("Renamed {}", f.serial)}),
                )
            })],
        ),
        entry(
            "PUT",
            "/v1/tenants/{t}/groups/{g}/restriction",
            vec![case("", Administer, |f| {
                Call::json(
                    f.path(&format!("/groups/{}/restriction", f.group)),
                    json!({"enabled": true, "limits": {"phone_system": 10}}),
                )
            })],
        ),
        entry(
            "DELETE",
            "/v1/tenants/{t}/groups/{g}/restriction",
            vec![case("", Administer, |f| {
                Call::get(f.path(&format!("/groups/{}/restriction", f.group)))
            })],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/groups/{g}/state",
            vec![
                case("", Read, |f| {
                    Call::get(f.path(&format!("/groups/{}/state", f.group)))
                }),
                case("?at=<past>", Audit, |f| {
                    Call::get(f.path(&format!("/groups/{}/state?at={}", f.group, f.past())))
                }),
                case("?at=<future>", Read, |f| {
                    Call::get(f.path(&format!("/groups/{}/state?at={}", f.group, f.future())))
                }),
            ],
        ),
        // Users.
        entry(
            "GET",
            "/v1/tenants/{t}/users",
            vec![case("", Read, |f| Call::get(f.path("/users")))],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/users",
            vec![case("", Operate, |f| {
                Call::json(
                    f.path("/users"),
                    json!({"name": "Probe", "group_id": f.group}),
                )
            })],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/users/batch",
            vec![case("", Operate, |f| {
                Call::json(
                    f.path("/users/batch"),
                    json!({"users": [{"name": "Probe", "group_id": f.group}]}),
                )
            })],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/users/{u}",
            vec![
                case("", Read, |f| {
                    Call::get(f.path(&format!("/users/{}", f.user)))
                }),
                case("?at=<past>", Audit, |f| {
                    Call::get(f.path(&format!("/users/{}?at={}", f.user, f.past())))
                }),
            ],
        ),
        entry(
            "PUT",
            "/v1/tenants/{t}/users/{u}/restriction",
            vec![case("", Administer, |f| {
                Call::json(
                    f.path(&format!("/users/{}/restriction", f.user)),
                    json!({"limits": {}}),
                )
            })],
        ),
        entry(
            "DELETE",
            "/v1/tenants/{t}/users/{u}/restriction",
            vec![case("", Administer, |f| {
                Call::get(f.path(&format!("/users/{}/restriction", f.user)))
            })],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/users/{u}/groups",
            vec![case("", Operate, |f| {
                Call::json(
                    f.path(&format!("/users/{}/groups", f.user)),
                    json!({"group_id": f.team}),
                )
            })],
        ),
        entry(
            "DELETE",
            "/v1/tenants/{t}/users/{u}/groups/{g}",
            vec![case("", Operate, |f| {
                Call::get(f.path(&format!("/users/{}/groups/{}", f.spare_user, f.team)))
            })],
        ),
        entry(
            "PATCH",
            "/v1/tenants/{t}/users/{u}",
            vec![case("", Operate, |f| {
                Call::json(
                    f.path(&format!("/users/{}", f.user)),
                    json!({"name": format!("Renamed {}", f.serial)}),
                )
            })],
        ),
        entry(
            "DELETE",
            "/v1/tenants/{t}/users/{u}",
            vec![case("", Operate, |f| {
                Call::get(f.path(&format!("/users/{}", f.spare_user)))
            })],
        ),
        // Carts.
        entry(
            "POST",
            "/v1/tenants/{t}/carts",
            vec![case("", Operate, |f| {
                Call::json(
                    f.path("/carts"),
                    json!({"commands": [{"op": "unassign", "license_id": f.held}]}),
                )
            })],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/carts/{id}",
            vec![case("", Read, |f| {
                Call::get(f.path(&format!("/carts/{}", f.cart)))
            })],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/carts/{id}/confirm",
            vec![case("", Operate, |f| {
                Call::json(f.path(&format!("/carts/{}/confirm", f.cart)), json!({}))
            })],
        ),
        // Metered services.
        entry(
            "PUT",
            "/v1/tenants/{t}/services/{code}",
            vec![case("", Administer, |f| {
                Call::json(
                    f.path(&format!("/services/{}", f.service)),
                    json!({"enabled": false}),
                )
            })],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/services",
            vec![case("", Read, |f| Call::get(f.path("/services")))],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/services/{code}",
            vec![case("", Read, |f| {
                Call::get(f.path(&format!("/services/{}", f.service)))
            })],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/usage-records",
            vec![case("", Operate, |f| {
                Call::json(
                    f.path("/usage-records"),
                    json!({"records": [{"id": format!("r{}", f.serial), "service": f.service,
                                        "quantity": 1, "occurred_at": Utc::now().to_rfc3339()}]}),
                )
            })],
        ),
        // Queries for support, billing and audit.
        entry(
            "GET",
            "/v1/tenants/{t}/usage",
            vec![
                case("", Read, |f| Call::get(f.path("/usage"))),
                case("?at=<past>", AuditOrBill, |f| {
                    Call::get(f.path(&format!("/usage?at={}", f.past())))
                }),
                case("?at=<future>", Read, |f| {
                    Call::get(f.path(&format!("/usage?at={}", f.future())))
                }),
            ],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/users/{u}/entitlements/{type}",
            vec![
                case("", Read, |f| {
                    Call::get(f.path(&format!("/users/{}/entitlements/phone_system", f.user)))
                }),
                case("?at=<past>", Audit, |f| {
                    Call::get(f.path(&format!(
                        "/users/{}/entitlements/phone_system?at={}",
                        f.user,
                        f.past()
                    )))
                }),
                case("?at=<future>", Read, |f| {
                    Call::get(f.path(&format!(
                        "/users/{}/entitlements/phone_system?at={}",
                        f.user,
                        f.future()
                    )))
                }),
            ],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/billing/{month}",
            vec![case("", Bill, |f| {
                Call::get(f.path(&format!("/billing/{}", f.month())))
            })],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/invoices/{month}",
            vec![case("", Bill, |f| {
                Call::get(f.path(&format!("/invoices/{}", f.month())))
            })],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/events",
            vec![case("", Audit, |f| Call::get(f.path("/events")))],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/reminders",
            vec![case("", Read, |f| Call::get(f.path("/reminders")))],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/what-if",
            vec![
                case("operator commands", Operate, |f| {
                    Call::json(
                        f.path("/what-if"),
                        json!({"commands": [
                            {"op": "assign", "license_id": f.free, "user_id": f.spare_user},
                            {"op": "detach_addon", "license_id": f.held, "addon_id": f.held_addon},
                        ]}),
                    )
                }),
                case("an admin command", Administer, |f| {
                    Call::json(
                        f.path("/what-if"),
                        json!({"commands": [
                            {"op": "assign", "license_id": f.free, "user_id": f.spare_user},
                            {"op": "set_quantity", "type": "phone_system", "quantity": 20},
                        ]}),
                    )
                }),
            ],
        ),
        entry(
            "GET",
            "/v1/tenants/{t}/imports/sample.csv",
            vec![case("", Read, |f| Call::get(f.path("/imports/sample.csv")))],
        ),
        entry(
            "POST",
            "/v1/tenants/{t}/imports",
            vec![
                case("?dry_run=true", Operate, |f| Call {
                    path: f.path("/imports?dry_run=true"),
                    payload: Payload::Csv(f.import_csv()),
                }),
                case("", Operate, |f| Call {
                    path: f.path("/imports"),
                    payload: Payload::Csv(f.import_csv()),
                }),
            ],
        ),
    ]
}

/// Fresh things to act on inside the tenant: rebuilt after every call that appended events,
/// so each allowed call finds what it needs (a free licence, a user holding nothing, a key to
/// revoke) whatever an earlier call did.
#[derive(Clone)]
struct Fixture {
    tenant: String,
    /// Tells fixtures apart (names, extensions).
    serial: u32,
    group: String,
    /// Holds `held` (phone_system) with `held_addon` (team_chat) attached.
    user: String,
    /// Holds nothing; also a member of `team`.
    spare_user: String,
    /// A child group of `group`: `user` may join it, `spare_user` belongs to it.
    team: String,
    /// A metered service of the fixture's own (`svc_<serial>`).
    service: String,
    /// A cart (assigning `free` to `spare_user`) stored last, so it can be confirmed.
    cart: String,
    held: String,
    held_addon: String,
    /// A free phone_system licence.
    free: String,
    /// A free device_desktop_app add-on.
    free_addon: String,
    /// A viewer key nobody uses, to revoke.
    spare_key: String,
    developer_owned: u64,
    /// An instant after the fixture was built: a past `at` that shows it.
    settled: DateTime<Utc>,
}

impl Fixture {
    async fn build(server: &Server, tenant: &Tenant, serial: u32) -> Fixture {
        Fixture::build_in(server, tenant, serial, None).await
    }

    /// A fixture whose group is a child of `parent` (a root group for `None`); under a parent
    /// its spare key is scoped to the fixture's group.
    async fn build_in(
        server: &Server,
        tenant: &Tenant,
        serial: u32,
        parent: Option<&str>,
    ) -> Fixture {
        let group = server
            .group(tenant, &format!("Isolation {serial}"), parent)
            .await;
        let user = server
            .user(tenant, &group, &format!("Holder {serial}"))
            .await;
        let spare_user = server
            .user(tenant, &group, &format!("Spare {serial}"))
            .await;
        let team = server
            .group(tenant, &format!("Isolation {serial} team"), Some(&group))
            .await;
        let (status, body) = server
            .post(
                &tenant.path(&format!("/users/{spare_user}/groups")),
                ROOT_TOKEN,
                json!({"group_id": team}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let service = format!("svc_{serial}");
        let (status, body) = server
            .put(
                &tenant.path(&format!("/services/{service}")),
                ROOT_TOKEN,
                json!({"enabled": true, "monthly_cap": 1000000}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let mut phones = server.provision(tenant, "phone_system", 2).await;
        let (held, free) = (phones.remove(0), phones.remove(0));
        let held_addon = server.provision(tenant, "team_chat", 1).await.remove(0);
        let free_addon = server
            .provision(tenant, "device_desktop_app", 1)
            .await
            .remove(0);
        server.assign(tenant, &held, &user).await;
        server.attach(tenant, &held, &held_addon).await;
        let (status, body) = server
            .post(
                &tenant.path("/keys"),
                ROOT_TOKEN,
                json!({
                    "role": "viewer", "name": format!("spare {serial}"),
                    "group_id": parent.map(|_| group.clone()),
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let spare_key = id_of(&body);
        let (status, body) = server
            .post(
                &tenant.path("/carts"),
                ROOT_TOKEN,
                json!({"commands": [{"op": "assign", "license_id": free, "user_id": spare_user}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let cart = id_of(&body);
        let developer_owned = server.usage(tenant).await["developer"]["owned"]
            .as_u64()
            .unwrap_or(0);
        let settled = Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        Fixture {
            tenant: tenant.id.clone(),
            serial,
            group,
            user,
            spare_user,
            team,
            service,
            cart,
            held,
            held_addon,
            free,
            free_addon,
            spare_key,
            developer_owned,
            settled,
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/v1/tenants/{}{rest}", self.tenant)
    }

    fn past(&self) -> String {
        self.settled.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    fn future(&self) -> String {
        (Utc::now() + Duration::days(1)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    fn month(&self) -> String {
        Utc::now().format("%Y-%m").to_string()
    }

    /// One row giving the spare user the free phone_system licence.
    fn import_csv(&self) -> String {
        format!(
            "Ext Key,Number,User\n{},+4206{:06},{}\n",
            7000 + self.serial,
            self.serial,
            self.spare_user
        )
    }
}

/// Whether `path` (query stripped) is an instance of `template`.
fn fits(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

/// Every `(METHOD, path template)` of the served document.
async fn documented_operations(server: &Server) -> BTreeSet<(String, String)> {
    let (status, document) = server
        .call(Method::GET, "/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{document}");
    let mut out = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn token(principal: Principal, tenant: &Tenant, other: &Tenant) -> Option<String> {
    Some(match principal {
        Principal::NoToken => return None,
        Principal::OtherTenantAdmin => other.admin.clone(),
        Principal::Viewer => tenant.viewer.clone(),
        Principal::Auditor => tenant.auditor.clone(),
        Principal::Billing => tenant.billing.clone(),
        Principal::Operator => tenant.operator.clone(),
        Principal::Admin => tenant.admin.clone(),
        Principal::Root => ROOT_TOKEN.to_string(),
    })
}

fn request(method: &str, call: &Call, token: Option<&str>) -> Request<Body> {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    match &call.payload {
        Payload::None => build(method, &call.path, token, None, &[]),
        Payload::Json(body) => build(method, &call.path, token, Some(body.clone()), &[]),
        Payload::Csv(text) => {
            let mut builder = Request::builder()
                .method(method)
                .uri(call.path.as_str())
                .header(header::CONTENT_TYPE, "text/csv");
            if let Some(token) = token {
                builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            builder.body(Body::from(text.clone())).expect("request")
        }
    }
}

/// The error envelope with `status` and `code`, or what is wrong with the answer.
fn envelope(reply: &Reply, status: StatusCode, code: &str) -> Result<(), String> {
    let body = &reply.body;
    let message = body["error"]["message"].as_str().unwrap_or("");
    if reply.status == status && body["error"]["code"] == code && !message.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "wanted {} `{code}` in the error envelope, got {}: {body}",
            status.as_u16(),
            reply.status.as_u16()
        ))
    }
}

/// Judge one answer.
fn judge(
    case: &Case,
    principal: Principal,
    method: &str,
    template: &str,
    reply: &Reply,
    moved: bool,
) -> Result<(), String> {
    let expected = expect(case.access, principal);
    match expected {
        Expect::Allowed => {
            if !reply.status.is_success() {
                return Err(format!(
                    "allowed, but answered {}: {}",
                    reply.status.as_u16(),
                    reply.body
                ));
            }
            let writes_nothing = method == "GET"
                || template.ends_with("/what-if")
                || case.variant.contains("dry_run=true");
            if writes_nothing && moved {
                return Err("a call that writes nothing appended events".into());
            }
            if case.history {
                let shown = reply.body.get("events").is_some();
                if shown != reads_history(principal) {
                    return Err(format!(
                        "licence history shown: {shown}, but this principal {} read history",
                        if reads_history(principal) {
                            "may"
                        } else {
                            "may not"
                        }
                    ));
                }
            }
            Ok(())
        }
        Expect::Forbidden | Expect::Unauthorized | Expect::Foreign => {
            if moved {
                return Err(format!(
                    "denied ({}), but the event sequence moved",
                    reply.status.as_u16()
                ));
            }
            match expected {
                Expect::Unauthorized => envelope(reply, StatusCode::UNAUTHORIZED, "unauthorized"),
                _ => envelope(reply, StatusCode::FORBIDDEN, "forbidden"),
            }
        }
    }
}

#[tokio::test]
async fn every_operation_answers_every_principal_as_the_role_table_says() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let other = server.tenant().await;
    let table = matrix();

    // Every documented operation has an entry, and every entry is documented.
    let documented = documented_operations(&server).await;
    let listed: BTreeSet<(String, String)> = table
        .iter()
        .map(|e| (e.method.to_string(), e.template.to_string()))
        .collect();
    assert_eq!(listed.len(), table.len(), "an operation is listed twice");
    let missing: Vec<_> = documented.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "documented operations without an entry in the isolation matrix: {missing:?}"
    );
    let stale: Vec<_> = listed.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "isolation matrix entries the document does not have: {stale:?}"
    );

    let mut serial = 0;
    let mut fixture = Fixture::build(&server, &tenant, serial).await;
    let mut failures = Vec::new();
    let mut calls = 0usize;
    let mut allowed = 0usize;
    for entry in &table {
        for case in &entry.cases {
            for principal in PRINCIPALS {
                let call = (case.call)(&fixture);
                assert!(
                    fits(entry.template, &call.path),
                    "{} {}: the call {} is not an instance of the template",
                    entry.method,
                    entry.template,
                    call.path
                );
                let token = token(principal, &tenant, &other);
                let before = server.event_count().await;
                let reply = server
                    .send(request(entry.method, &call, token.as_deref()))
                    .await;
                let after = server.event_count().await;
                calls += 1;
                if expect(case.access, principal) == Expect::Allowed {
                    allowed += 1;
                }
                if let Err(why) = judge(
                    case,
                    principal,
                    entry.method,
                    entry.template,
                    &reply,
                    after != before,
                ) {
                    failures.push(format!(
                        "{} {}{} as {principal:?} (expected {:?}): {why}",
                        entry.method,
                        entry.template,
                        case.variant,
                        expect(case.access, principal)
                    ));
                }
                if after != before {
                    serial += 1;
                    fixture = Fixture::build(&server, &tenant, serial).await;
                }
            }
        }
    }
    let cases: usize = table.iter().map(|e| e.cases.len()).sum();
    assert_eq!(calls, cases * PRINCIPALS.len());
    eprintln!(
        "isolation matrix: {} operations × {} principals = {} pairs; {cases} cases with query \
         and body variants, {calls} calls ({allowed} allowed, {} denied)",
        table.len(),
        PRINCIPALS.len(),
        table.len() * PRINCIPALS.len(),
        calls - allowed
    );
    assert!(
        failures.is_empty(),
        "{} of {calls} answers differ from the role table:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// Regression: a key of another tenant got 404 for an unknown tenant id and 403 for an existing
// one, so any key could probe which tenant ids exist.
#[tokio::test]
async fn a_key_cannot_tell_whether_another_tenant_exists() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let fixture = Fixture::build(&server, &tenant, 0).await;
    let unknown = Fixture {
        tenant: "5d1c7b5e-0000-4000-8000-00000000dead".to_string(),
        ..fixture.clone()
    };
    let before = server.event_count().await;
    let mut checked = 0;
    for entry in matrix() {
        if !entry.template.starts_with("/v1/tenants/{t}") {
            continue;
        }
        for case in &entry.cases {
            let call = (case.call)(&unknown);
            for token in [&tenant.admin, &tenant.viewer] {
                let reply = server.send(request(entry.method, &call, Some(token))).await;
                if let Err(why) = envelope(&reply, StatusCode::FORBIDDEN, "forbidden") {
                    panic!("{} {}{}: {why}", entry.method, entry.template, case.variant);
                }
                checked += 1;
            }
            let reply = server
                .send(request(entry.method, &call, Some(ROOT_TOKEN)))
                .await;
            if let Err(why) = envelope(&reply, StatusCode::NOT_FOUND, "not_found") {
                panic!(
                    "root: {} {}{}: {why}",
                    entry.method, entry.template, case.variant
                );
            }
        }
    }
    assert!(checked > 80, "only {checked} calls checked");
    assert_eq!(server.event_count().await, before);
}

/// Operations of the whole tenant: a key scoped to a group is refused them (403) whatever its
/// role, inside its subtree or not.
fn whole_tenant(method: &str, template: &str) -> bool {
    matches!(
        (method, template),
        ("GET", "/v1/log")
            | ("POST", "/v1/tenants")
            | ("POST", "/v1/tenants/{t}/keys")
            | ("PUT", "/v1/tenants/{t}/catalog/{code}")
            | ("PUT", "/v1/tenants/{t}/settings/recording-retention")
            | ("PUT", "/v1/tenants/{t}/prices/{type}")
            | ("PUT", "/v1/tenants/{t}/webhook")
            | ("PUT", "/v1/tenants/{t}/notification-template")
            | ("POST", "/v1/tenants/{t}/licenses")
            | ("PUT", "/v1/tenants/{t}/subscription/{type}")
            | ("DELETE", "/v1/tenants/{t}/licenses/{id}")
            | ("GET", "/v1/tenants/{t}/usage")
            | ("PUT", "/v1/tenants/{t}/services/{code}")
            | ("GET", "/v1/tenants/{t}/services")
            | ("GET", "/v1/tenants/{t}/services/{code}")
            | ("POST", "/v1/tenants/{t}/usage-records")
            | ("POST", "/v1/tenants/{t}/carts")
            | ("GET", "/v1/tenants/{t}/carts/{id}")
            | ("POST", "/v1/tenants/{t}/carts/{id}/confirm")
            | ("GET", "/v1/tenants/{t}/billing/{month}")
            | ("GET", "/v1/tenants/{t}/invoices/{month}")
    )
}

/// The ids of a fixture a scoped key outside it must never see in an answer, unless the
/// request itself named them.
fn hidden_ids(f: &Fixture, call: &Call) -> Vec<String> {
    let named = match &call.payload {
        Payload::None => call.path.clone(),
        Payload::Json(body) => format!("{} {body}", call.path),
        Payload::Csv(text) => format!("{} {text}", call.path),
    };
    [
        &f.group,
        &f.user,
        &f.spare_user,
        &f.held,
        &f.held_addon,
        &f.spare_key,
    ]
    .into_iter()
    .filter(|id| !named.contains(id.as_str()))
    .cloned()
    .collect()
}

#[tokio::test]
async fn keys_scoped_to_a_group_of_every_role_reach_their_subtree_and_nothing_outside() {
    use Principal::*;
    let server = Server::start();
    let tenant = server.tenant().await;
    let dealer = server.group(&tenant, "Dealer", None).await;
    let mut keys = Vec::new();
    for (principal, role) in [
        (Viewer, "viewer"),
        (Auditor, "auditor"),
        (Billing, "billing"),
        (Operator, "operator"),
        (Admin, "admin"),
    ] {
        let (status, body) = server
            .post(
                &tenant.path("/keys"),
                ROOT_TOKEN,
                json!({"role": role, "name": format!("dealer {role}"), "group_id": dealer}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        keys.push((
            principal,
            body["token"].as_str().expect("token").to_string(),
        ));
    }
    let table = matrix();
    let mut serial = 1000;
    let mut inside = Fixture::build_in(&server, &tenant, serial, Some(&dealer)).await;
    let mut outside = Fixture::build(&server, &tenant, serial + 1).await;
    let mut failures = Vec::new();
    let mut calls = 0usize;
    for entry in &table {
        if matches!(
            entry.template,
            "/healthz"
                | "/metrics"
                | "/v1/openapi.json"
                | "/console"
                | "/console/app.js"
                | "/console/app.css"
        ) {
            continue;
        }
        for case in &entry.cases {
            for (principal, token) in &keys {
                for within in [true, false] {
                    let f = if within { &inside } else { &outside };
                    let call = (case.call)(f);
                    let before = server.event_count().await;
                    let reply = server.send(request(entry.method, &call, Some(token))).await;
                    let moved = server.event_count().await != before;
                    calls += 1;
                    let by_role = expect(case.access, *principal) == Expect::Allowed;
                    let verdict = if !by_role || whole_tenant(entry.method, entry.template) {
                        if moved {
                            Err("denied, but the event sequence moved".to_string())
                        } else {
                            envelope(&reply, StatusCode::FORBIDDEN, "forbidden")
                        }
                    } else if within {
                        judge(
                            case,
                            *principal,
                            entry.method,
                            entry.template,
                            &reply,
                            moved,
                        )
                    } else if moved {
                        Err("a call outside the subtree appended events".to_string())
                    } else {
                        let text = reply.body.to_string();
                        let seen: Vec<String> = hidden_ids(f, &call)
                            .into_iter()
                            .filter(|id| text.contains(id.as_str()))
                            .collect();
                        let status_ok = reply.status.is_success()
                            || [StatusCode::NOT_FOUND, StatusCode::UNPROCESSABLE_ENTITY]
                                .contains(&reply.status);
                        if !seen.is_empty() {
                            Err(format!(
                                "the answer shows ids outside the subtree {seen:?}: {text}"
                            ))
                        } else if !status_ok {
                            Err(format!("answered {}: {text}", reply.status.as_u16()))
                        } else {
                            Ok(())
                        }
                    };
                    if let Err(why) = verdict {
                        failures.push(format!(
                            "{} {}{} as scoped {principal:?} {}: {why}",
                            entry.method,
                            entry.template,
                            case.variant,
                            if within { "inside" } else { "outside" },
                        ));
                    }
                    if moved {
                        serial += 2;
                        inside = Fixture::build_in(&server, &tenant, serial, Some(&dealer)).await;
                        outside = Fixture::build(&server, &tenant, serial + 1).await;
                    }
                }
            }
        }
    }
    eprintln!("scoped isolation: {calls} calls by keys scoped to a group");
    assert!(
        failures.is_empty(),
        "{} of {calls} scoped answers are wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
