//! The writes of a trial's load, what became of each, and how the restarted server's state
//! shows them.

use super::process::Api;
use super::Problem;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One write of the load; every licence and user is named by exactly one of them.
#[derive(Clone, Debug)]
pub(crate) enum Write {
    Assign {
        license: String,
        user: String,
    },
    Unassign {
        license: String,
        user: String,
    },
    Attach {
        base: String,
        user: String,
        addon: String,
    },
    CreateUser {
        user: String,
        group: String,
        extension: String,
    },
}

impl Write {
    /// The path, body and expected status of the write's POST.
    pub(crate) fn request(&self, tenant: &str) -> (String, Value, u16) {
        let licenses = format!("/v1/tenants/{tenant}/licenses");
        match self {
            Write::Assign { license, user } => (
                format!("{licenses}/{license}/assign"),
                json!({"user_id": user}),
                200,
            ),
            Write::Unassign { license, .. } => {
                (format!("{licenses}/{license}/unassign"), json!({}), 200)
            }
            Write::Attach { base, addon, .. } => (
                format!("{licenses}/{base}/addons"),
                json!({"addon_id": addon}),
                200,
            ),
            Write::CreateUser {
                user,
                group,
                extension,
            } => (
                format!("/v1/tenants/{tenant}/users"),
                json!({"id": user, "name": format!("load user {extension}"), "group_id": group,
                       "extension": extension}),
                201,
            ),
        }
    }

    /// The kind of the event the write appends.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Write::Assign { .. } => "license_assigned",
            Write::Unassign { .. } => "license_unassigned",
            Write::Attach { .. } => "addon_attached",
            Write::CreateUser { .. } => "user_created",
        }
    }

    /// The licence whose history records this write.
    pub(crate) fn history(&self) -> Option<&str> {
        match self {
            Write::Assign { license, .. } | Write::Unassign { license, .. } => Some(license),
            Write::Attach { addon, .. } => Some(addon),
            Write::CreateUser { .. } => None,
        }
    }
}

/// What became of one write of the load.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    NotSent,
    /// The connection was refused (the server was dead): the write never reached it.
    Refused(String),
    InFlight,
    /// A 2xx answer with this `seq`.
    Acked(u64),
    /// No complete answer (the server died): the write may or may not have happened.
    Lost(String),
    /// Any other answer; the workload is built so that none is expected.
    Unexpected(String),
}

/// Whether the state shows a write as not done, done, or neither.
#[derive(Debug, PartialEq)]
pub(crate) enum Observed {
    Before,
    After,
    Neither(String),
}

/// The state a server serves, keyed for lookups.
pub(crate) struct State {
    pub(crate) licenses: BTreeMap<String, Value>,
    pub(crate) users: BTreeMap<String, Value>,
}

/// The `id` of a listed item.
fn key(item: &Value) -> Result<String, Problem> {
    item["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Problem::new(format!("an item without id: {item}")))
}

fn keyed(items: Vec<Value>) -> Result<BTreeMap<String, Value>, Problem> {
    items
        .into_iter()
        .map(|item| Ok((key(&item)?, item)))
        .collect()
}

impl State {
    /// Every licence and user of `tenant`.
    pub(crate) fn read(api: &Api, tenant: &str) -> Result<State, Problem> {
        Ok(State {
            licenses: keyed(api.list_all(&format!("/v1/tenants/{tenant}/licenses"))?)?,
            users: keyed(api.list_all(&format!("/v1/tenants/{tenant}/users"))?)?,
        })
    }

    /// One licence, which must exist.
    pub(crate) fn license(&self, id: &str) -> Result<&Value, Problem> {
        self.licenses
            .get(id)
            .ok_or_else(|| Problem::new(format!("licence {id} is missing")))
    }

    /// How the state shows `write`.
    pub(crate) fn observe(&self, write: &Write) -> Result<Observed, Problem> {
        Ok(match write {
            Write::Assign { license, user } => {
                let l = self.license(license)?;
                if is_free(l) {
                    Observed::Before
                } else if holds(l, user) {
                    Observed::After
                } else {
                    Observed::Neither(l.to_string())
                }
            }
            Write::Unassign { license, user } => {
                let l = self.license(license)?;
                if holds(l, user) {
                    Observed::Before
                } else if is_free(l) {
                    Observed::After
                } else {
                    Observed::Neither(l.to_string())
                }
            }
            Write::Attach { base, user, addon } => {
                let (b, a) = (self.license(base)?, self.license(addon)?);
                let attached = b["addons"].as_array().map_or(&[][..], Vec::as_slice);
                if !holds_base(b, user) {
                    Observed::Neither(format!("base {b}"))
                } else if attached.is_empty() && is_free(a) {
                    Observed::Before
                } else if attached.len() == 1
                    && attached[0]["id"] == json!(addon)
                    && attached[0]["type"] == "call_recording"
                    && a["status"] == "assigned"
                    && a["base_id"] == json!(base)
                    && a["user_id"] == json!(user)
                {
                    Observed::After
                } else {
                    Observed::Neither(format!("base {b}, add-on {a}"))
                }
            }
            Write::CreateUser {
                user,
                group,
                extension,
            } => match self.users.get(user) {
                None => Observed::Before,
                Some(u)
                    if u["group_id"] == json!(group)
                        && u["extension"] == json!(extension)
                        && u["licenses"] == json!([]) =>
                {
                    Observed::After
                }
                Some(u) => Observed::Neither(u.to_string()),
            },
        })
    }
}

/// A free licence: no holder, no base, no add-ons.
pub(crate) fn is_free(license: &Value) -> bool {
    license["status"] == "free"
        && license.get("user_id").is_none()
        && license.get("base_id").is_none()
        && license["addons"] == json!([])
}

/// A base licence assigned to `user`, whatever its add-ons.
fn holds_base(license: &Value, user: &str) -> bool {
    license["status"] == "assigned" && license["user_id"] == json!(user)
}

/// A base licence assigned to `user` without add-ons.
pub(crate) fn holds(license: &Value, user: &str) -> bool {
    holds_base(license, user) && license["addons"] == json!([])
}

/// Everything compared between the restarted server and a fresh replay (`at` dropped: it is
/// the instant of the request).
pub(crate) fn snapshot(
    api: &Api,
    tenant: &str,
    groups: &[&str],
) -> Result<BTreeMap<String, Value>, Problem> {
    let without_at = |mut v: Value| {
        if let Some(object) = v.as_object_mut() {
            object.remove("at");
        }
        v
    };
    let t = format!("/v1/tenants/{tenant}");
    let mut out = BTreeMap::new();
    out.insert("healthz.seq".into(), json!(api.health_seq()?));
    out.insert("usage".into(), without_at(api.get(&format!("{t}/usage"))?));
    for group in groups {
        out.insert(
            format!("group {group} state"),
            without_at(api.get(&format!("{t}/groups/{group}/state"))?),
        );
    }
    out.insert("tenant".into(), api.get(&t)?);
    for list in ["licenses", "users", "events"] {
        out.insert(
            list.into(),
            Value::Array(api.list_all(&format!("{t}/{list}"))?),
        );
    }
    Ok(out)
}

/// The first difference between two snapshots, not two pages of JSON.
pub(crate) fn first_difference(
    live: &BTreeMap<String, Value>,
    replayed: &BTreeMap<String, Value>,
) -> Option<String> {
    if live.keys().ne(replayed.keys()) {
        return Some(format!(
            "the snapshots hold different parts: {:?} vs {:?}",
            live.keys().collect::<Vec<_>>(),
            replayed.keys().collect::<Vec<_>>()
        ));
    }
    live.iter().find_map(|(part, a)| {
        let b = &replayed[part];
        if a == b {
            return None;
        }
        Some(match (a.as_array(), b.as_array()) {
            (Some(a), Some(b)) => {
                let first = a.iter().zip(b).position(|(x, y)| x != y);
                format!(
                    "{part} differs after the replay: {} vs {} items; first difference at \
                     {first:?}: restarted {:?} vs replayed {:?}",
                    a.len(),
                    b.len(),
                    first.map(|i| &a[i]),
                    first.map(|i| &b[i]),
                )
            }
            _ => format!("{part} differs after the replay:\nrestarted {a}\nreplayed  {b}"),
        })
    })
}
