// The ledger's web console: plain JavaScript, no build step. Every page reads the same HTTP
// API a client does, with the key the user signed in with (kept in sessionStorage only), so a
// page shows exactly what that key's role and scope may see.
"use strict";

const store = window.sessionStorage;

function session() {
  const tenant = store.getItem("ledger.tenant");
  const key = store.getItem("ledger.key");
  return tenant && key ? { tenant, key } : null;
}

async function api(path, payload) {
  const s = session();
  const headers = { Authorization: "Bearer " + s.key };
  const init = { headers };
  if (payload !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(payload);
  }
  const response = await fetch(path, init);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function tenantPath(rest) {
  return "/v1/tenants/" + encodeURIComponent(session().tenant) + rest;
}

// Build elements without ever interpreting text as HTML.
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function table(id, headers, rows) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) =>
      typeof c === "number" ? el("td", { class: "number" }, c) : el("td", {}, c))))));
}

// A row per type of a usage answer: contracted, allocated, free.
function usageRows(usage) {
  return Object.entries(usage.types || {}).map(([t, u]) => [t, u.owned, u.assigned, u.free]);
}

// A row per type of a group-state answer: limit, used, remaining ("—" where there is none).
function stateRows(state) {
  return Object.entries(state.types || {}).map(([t, x]) =>
    [t, x.limit === null ? "—" : x.limit, x.used, x.remaining === null ? "—" : x.remaining]);
}

function notice(text) {
  return el("p", { class: "error", role: "alert" }, text);
}

// ---- Pages ----------------------------------------------------------------------------------

async function overview() {
  const parts = [el("h2", {}, "Overview")];
  const health = await fetch("/healthz").then((r) => r.json()).catch(() => null);
  if (health) {
    parts.push(el("p", { id: "writes" }, "Writes: ",
      el("strong", { class: health.writes === "ok" ? "ok" : "blocked" },
        health.writes === "ok" ? "taken" : "stopped (" + health.writes_stopped_reason + ")")));
  }
  try {
    const usage = await api(tenantPath("/usage"));
    parts.push(el("h3", {}, "Contracted, allocated and free"));
    parts.push(table("usage", ["Type", "Contracted", "Allocated", "Free"], usageRows(usage)));
  } catch (e) {
    parts.push(notice("Usage: " + e.message));
  }
  try {
    const after = Math.max(0, (health ? health.seq : 0) - 500);
    const events = await api(tenantPath("/events?limit=500&after=" + after));
    parts.push(el("h3", {}, "Recent events"));
    parts.push(table("events", ["Seq", "Recorded", "Actor", "Kind"],
      events.items.slice(-10).reverse().map((e) => [e.seq, e.recorded_at, e.actor, e.kind])));
  } catch (e) {
    parts.push(notice("Events: " + e.message));
  }
  return parts;
}

function groupMark(group, now) {
  const r = group.restriction;
  const marks = [];
  if (r && r.enabled) {
    if (r.valid_until && Date.parse(r.valid_until) <= now) marks.push("window expired");
    for (const [t, limit] of Object.entries(r.limits || {})) {
      if ((group.used[t] || 0) >= limit) marks.push(t + " limit full");
    }
  }
  return marks;
}

async function groups() {
  const parts = [el("h2", {}, "Groups")];
  const page = await api(tenantPath("/groups?limit=1000"));
  const byId = new Map(page.items.map((g) => [g.id, g]));
  const roots = page.items.filter((g) => !g.parent_id || !byId.has(g.parent_id));
  const now = Date.now();
  const node = (g) => {
    const r = g.restriction;
    const limits = r && r.enabled ? Object.entries(r.limits || {}).map(([t, limit]) =>
      t + " " + (g.used[t] || 0) + "/" + limit + " (" + Math.max(0, limit - (g.used[t] || 0)) + " left)") : [];
    const marks = groupMark(g, now);
    return el("li", { "data-group": g.id },
      el("a", { href: "#group/" + g.id }, g.name), " ",
      limits.length ? limits.join(", ") : "no limits",
      r && r.valid_until ? " · until " + r.valid_until : "",
      marks.length ? el("span", { class: "blocked" }, " " + marks.join(", ")) : null,
      (g.children || []).length
        ? el("ul", { class: "tree" }, g.children.filter((c) => byId.has(c)).map((c) => node(byId.get(c))))
        : null);
  };
  parts.push(el("ul", { class: "tree", id: "group-tree" }, roots.map(node)));
  return parts;
}

async function groupState(id) {
  const state = await api(tenantPath("/groups/" + encodeURIComponent(id) + "/state"));
  return [
    el("h2", {}, "Group " + state.group.name),
    el("p", {}, "Effective window: " + (state.valid_from || "open") + " to " + (state.valid_until || "open")),
    table("group-state", ["Type", "Limit", "Used", "Remaining"], stateRows(state)),
    state.blocked_by.length
      ? el("p", { class: "blocked" }, "Blocked by " + state.blocked_by.map((b) => b.group_name + " (" + b.rule + ")").join(", "))
      : el("p", { class: "ok" }, "No window blocks this group."),
  ];
}

async function user(id, code) {
  const parts = [el("h2", {}, "User")];
  const form = el("form", { id: "user-form" },
    el("label", {}, "User id ", el("input", { id: "user-id", value: id || "", required: "" })),
    el("label", {}, "Why can't they use… ", el("input", { id: "user-code", value: code || "", placeholder: "call_recording" })),
    el("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const u = document.getElementById("user-id").value.trim();
    const c = document.getElementById("user-code").value.trim();
    location.hash = "user/" + encodeURIComponent(u) + (c ? "/" + encodeURIComponent(c) : "");
  });
  parts.push(form);
  if (!id) return parts;
  const u = await api(tenantPath("/users/" + encodeURIComponent(id)));
  parts.push(el("h3", { id: "user-name" }, u.name));
  // The groups the licences count against, by name (a group the key may not read: its id).
  const groupNames = new Map();
  for (const g of new Set(u.licenses.map((l) => l.group_id).filter(Boolean))) {
    try {
      groupNames.set(g, (await api(tenantPath("/groups/" + encodeURIComponent(g)))).name);
    } catch (e) {
      groupNames.set(g, g);
    }
  }
  parts.push(table("user-licenses", ["Licence", "Type", "Counts against", "Add-ons"],
    u.licenses.map((l) => [l.id, l.type, l.group_id ? groupNames.get(l.group_id) : "",
      l.addons.map((a) => a.type).join(", ")])));
  if (code) {
    const answer = await api(tenantPath("/users/" + encodeURIComponent(id) + "/entitlements/" + encodeURIComponent(code)));
    parts.push(el("h3", {}, code + ": ",
      el("span", { id: "allowed", class: answer.allowed ? "ok" : "blocked" }, answer.allowed ? "allowed" : "blocked")));
    const blocking = answer.blocked_by || {};
    parts.push(el("ol", { id: "checks" }, answer.checks.map((c) =>
      el("li", { class: c.passed ? "ok" : (c.rule === blocking.rule && c.group_id === blocking.group_id ? "blocked highlight" : "blocked") },
        c.rule + (c.group_name ? " — " + c.group_name : "") + ": " + c.detail))));
    const named = answer.checks.map((c) => c.group_id).filter(Boolean);
    parts.push(el("h3", {}, "Where in the tree"));
    parts.push(await groupPaths("user-tree", [u.group_id, ...(u.other_group_ids || []), ...named], blocking.group_id));
  }
  return parts;
}

// The paths from the roots down to `ids`, as one tree, read group by group up the parents (a
// path is a few groups, whatever the tenant's size); `mark` highlighted as the blocking group.
async function groupPaths(id, ids, mark) {
  const known = new Map();
  const fetchGroup = async (g) => {
    if (known.has(g)) return;
    known.set(g, null);
    try {
      known.set(g, await api(tenantPath("/groups/" + encodeURIComponent(g))));
    } catch (e) {
      known.delete(g);
      return;
    }
    const parent = known.get(g).parent_id;
    if (parent) await fetchGroup(parent);
  };
  for (const g of new Set(ids)) await fetchGroup(g);
  const groups = [...known.values()].filter(Boolean);
  const shown = new Set(groups.map((g) => g.id));
  const node = (g) => el("li", { "data-group": g.id, class: g.id === mark ? "blocked highlight" : null },
    el("a", { href: "#group/" + g.id }, g.name),
    g.id === mark ? " — blocks this" : null,
    el("ul", { class: "tree" }, (g.children || []).filter((c) => shown.has(c)).map((c) => node(known.get(c)))));
  return el("ul", { class: "tree", id }, groups.filter((g) => !g.parent_id || !shown.has(g.parent_id)).map(node));
}

function thisMonth() {
  const now = new Date();
  return now.getUTCFullYear() + "-" + String(now.getUTCMonth() + 1).padStart(2, "0");
}

// A line per type of its units at the end of each day of the month so far, as /usage?at=
// answers; the billed peak marked.
function chart(series, peaks) {
  const width = 640, height = 220, pad = 30;
  const days = Math.max(1, ...Object.values(series).map((points) => points.length));
  const top = Math.max(1, ...Object.values(series).flat(), ...Object.values(peaks));
  const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(1, days - 1);
  const y = (v) => height - pad - (v * (height - 2 * pad)) / top;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("id", "units-chart");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Units per type over the month");
  const colours = ["#0645ad", "#1b7f3b", "#b35900", "#6a1b9a", "#00838f"];
  Object.entries(series).forEach(([t, points], index) => {
    const line = document.createElementNS(svg.namespaceURI, "polyline");
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colours[index % colours.length]);
    line.setAttribute("stroke-width", "2");
    line.setAttribute("points", points.map((v, i) => x(i) + "," + y(v)).join(" "));
    const title = document.createElementNS(svg.namespaceURI, "title");
    title.textContent = t;
    line.append(title);
    svg.append(line);
    const peak = document.createElementNS(svg.namespaceURI, "line");
    peak.setAttribute("x1", pad);
    peak.setAttribute("x2", width - pad);
    peak.setAttribute("y1", y(peaks[t] || 0));
    peak.setAttribute("y2", y(peaks[t] || 0));
    peak.setAttribute("stroke", colours[index % colours.length]);
    peak.setAttribute("stroke-dasharray", "4 4");
    svg.append(peak);
  });
  return svg;
}

async function billing(month) {
  month = month || thisMonth();
  const parts = [el("h2", {}, "Billing " + month)];
  const form = el("form", { id: "billing-form" },
    el("label", {}, "Month ", el("input", { id: "billing-month", value: month, pattern: "\\d{4}-\\d{2}" })),
    el("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = "billing/" + document.getElementById("billing-month").value.trim();
  });
  parts.push(form);
  const figures = await api(tenantPath("/billing/" + month));
  const invoice = await api(tenantPath("/invoices/" + month));
  const types = Object.entries(figures.types);
  parts.push(table("billing-peaks", ["Type", "Billed peak", "Reached at", "By event", "Actor", "Units at end"],
    types.map(([t, f]) => [t, f.peak_units, f.peak_at, f.peak_seq, f.peak_actor, f.units_at_end])));
  // Units at the end of each day so far.
  const [year, m] = month.split("-").map(Number);
  const days = new Date(Date.UTC(year, m, 0)).getUTCDate();
  const series = {};
  for (const [t] of types) series[t] = [];
  for (let day = 1; day <= days; day++) {
    const end = new Date(Date.UTC(year, m - 1, day, 23, 59, 59));
    const now = new Date();
    // Today (and only today) is drawn as it is now.
    const at = end > now ? "" : "?at=" + encodeURIComponent(end.toISOString());
    const usage = await api(tenantPath("/usage" + at)).catch(() => ({ types: {} }));
    for (const [t] of types) series[t].push(usage.types[t] ? usage.types[t].owned : 0);
    if (end > now) break;
  }
  const peaks = Object.fromEntries(types.map(([t, f]) => [t, f.peak_units]));
  parts.push(chart(series, peaks));
  const lines = invoice.lines.map((l) => [l.type, l.peak_units, l.unit_price_minor === null ? "—" : l.unit_price_minor, l.amount_minor]);
  for (const l of invoice.metered || []) {
    lines.push([l.service + " (" + l.billable_units + " " + l.unit + " over " + l.base_allowance + ")", l.billable_units,
      l.unit_price_minor === null ? "—" : l.unit_price_minor, l.amount_minor]);
  }
  parts.push(el("h3", {}, "Invoice"));
  parts.push(table("invoice", ["Line", "Units", "Unit price (minor)", "Amount (minor)"], lines));
  parts.push(el("p", { id: "invoice-total" }, "Total " + invoice.total_minor + " " + invoice.currency + " minor units"));
  parts.push(el("p", {}, "Digest ", el("code", { id: "invoice-digest" }, invoice.digest)));
  const csv = ["line,units,unit_price_minor,amount_minor"]
    .concat(lines.map((l) => l.map((c) => '"' + String(c).replace(/"/g, '""') + '"').join(",")))
    .join("\n") + "\n";
  const link = el("a", { id: "invoice-csv", download: "invoice-" + month + ".csv",
    href: URL.createObjectURL(new Blob([csv], { type: "text/csv" })) }, "Download CSV");
  parts.push(el("p", {}, link));
  return parts;
}

const AUDIT_FILTERS = ["user_id", "license_id", "group_id", "type", "kind", "actor", "since", "until"];

// The usage, and the state of `group` when one is named, as of `at`, into `container`.
async function auditAsOf(container, at, group) {
  const parts = [];
  try {
    const usage = await api(tenantPath("/usage?at=" + encodeURIComponent(at)));
    parts.push(el("h3", {}, "Usage as of " + at));
    parts.push(table("audit-usage", ["Type", "Contracted", "Allocated", "Free"], usageRows(usage)));
    if (group) {
      const state = await api(tenantPath("/groups/" + encodeURIComponent(group) + "/state?at=" + encodeURIComponent(at)));
      parts.push(el("h3", {}, "Group " + state.group.name + " as of " + at));
      parts.push(table("audit-group", ["Type", "Limit", "Used", "Remaining"], stateRows(state)));
    }
  } catch (e) {
    parts.push(notice("As of " + at + ": " + e.message));
  }
  container.replaceChildren(...parts);
  container.setAttribute("data-at", at);
}

// An instant in milliseconds as RFC 3339 UTC, to the second unless it has milliseconds.
function instant(ms) {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

async function audit(query, at) {
  const params = new URLSearchParams(query || "");
  const parts = [el("h2", {}, "Audit")];
  const form = el("form", { id: "audit-form" },
    AUDIT_FILTERS.map((name) => el("label", {}, name + " ",
      el("input", { id: "audit-" + name, name, value: params.get(name) || "" }))),
    el("label", {}, "State as of (RFC 3339) ",
      el("input", { id: "audit-at", value: at || "", placeholder: "2026-10-14T09:00:00Z" })),
    el("button", { type: "submit" }, "Show"));
  const hashFor = (instantText) => {
    const chosen = new URLSearchParams();
    for (const name of AUDIT_FILTERS) {
      const value = document.getElementById("audit-" + name).value.trim();
      if (value) chosen.set(name, value);
    }
    return "#audit/" + encodeURIComponent(chosen.toString()) + (instantText ? "/" + encodeURIComponent(instantText) : "");
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = hashFor(document.getElementById("audit-at").value.trim());
  });
  parts.push(form);
  const asOf = el("div", { id: "audit-asof" });
  // The slider runs from the tenant's first event to now; moving it (mouse or arrow keys)
  // shows the state as of where it stops, without leaving the page.
  try {
    const first = await api(tenantPath("/events?limit=1"));
    if (first.items.length) {
      // Past the first event's microseconds: its instant is inside the tenant's history.
      const from = Date.parse(first.items[0].recorded_at) + 1;
      const to = Math.max(from, Date.now());
      // About a thousand steps over the history, however long: an arrow key moves one.
      const step = Math.max(1, Math.ceil((to - from) / 1000));
      const chosen = at && !Number.isNaN(Date.parse(at)) ? Math.min(to, Math.max(from, Date.parse(at))) : to;
      const slider = el("input", { type: "range", id: "audit-slider", min: from, max: to, step, value: chosen,
        "aria-label": "Instant to show the state as of", "aria-valuetext": instant(chosen) });
      slider.addEventListener("input", () => {
        const text = instant(Number(slider.value));
        slider.setAttribute("aria-valuetext", text);
        document.getElementById("audit-at").value = text;
      });
      slider.addEventListener("change", () => {
        const text = instant(Number(slider.value));
        document.getElementById("audit-at").value = text;
        history.replaceState(null, "", hashFor(text));
        auditAsOf(asOf, text, params.get("group_id"));
      });
      parts.push(el("label", {}, "Move through time ", slider));
    }
  } catch (e) {
    // Without the events (a role that may not read them) there is no slider; the list says why.
  }
  // The state as of the chosen instant sits under the slider, above the (long) event list.
  parts.push(asOf);
  if (at) await auditAsOf(asOf, at, params.get("group_id"));
  params.set("limit", "200");
  try {
    const page = await api(tenantPath("/events?" + params.toString()));
    parts.push(table("audit-events", ["Seq", "Recorded", "Actor", "Kind", "Data"],
      page.items.map((e) => [e.seq, e.recorded_at, e.actor, e.kind, JSON.stringify(e.data)])));
  } catch (e) {
    parts.push(notice("Events: " + e.message));
  }
  return parts;
}

// ---- What-if --------------------------------------------------------------------------------

// The builder's ops and the fields each one takes.
const WHATIF_OPS = {
  set_limit: ["group", "type", "number"],
  set_quantity: ["type", "number"],
  terminate: ["license"],
  unassign: ["license"],
  assign_type: ["user", "type"],
  move_user: ["user", "group"],
};
const WHATIF_LABELS = {
  set_limit: "Set a group's limit for a type",
  set_quantity: "Set the contracted quantity of a type",
  terminate: "Terminate a licence",
  unassign: "Unassign a licence",
  assign_type: "Assign a licence of a type to a user",
  move_user: "Move a user to a group",
};

// The command the builder's fields describe, or an error message.
function builtCommand(op, fields, groupsById) {
  const need = (name) => {
    if (!fields[name]) throw new Error("fill in " + name + " for " + op);
    return fields[name];
  };
  const count = (name) => {
    const n = Number(need(name));
    if (!Number.isInteger(n) || n < 0) throw new Error(name + " must be a whole number");
    return n;
  };
  switch (op) {
    case "set_limit": {
      // The group's restriction as it is, with one limit changed (set_restriction replaces it).
      const group = groupsById.get(need("group"));
      const r = (group && group.restriction) || {};
      const command = { op: "set_restriction", group_id: need("group"), enabled: true,
        limits: Object.assign({}, r.limits || {}, { [need("type")]: count("number") }) };
      for (const name of ["valid_from", "valid_until", "reminder"]) {
        if (r[name] !== undefined && r[name] !== null) command[name] = r[name];
      }
      return command;
    }
    case "set_quantity": return { op, type: need("type"), quantity: count("number") };
    case "terminate": return { op, license_id: need("license") };
    case "unassign": return { op, license_id: need("license") };
    case "assign_type": return { op, user_id: need("user"), type: need("type") };
    case "move_user": return { op, user_id: need("user"), group_id: need("group") };
    default: throw new Error("unknown op " + op);
  }
}

// What the preview says: each command's outcome, the rules broken, who would lose what, and
// what the month's bill would do.
async function whatIfReport(report, groupsById) {
  const groupName = (id) => (groupsById.get(id) || {}).name || id || "";
  const parts = [el("p", { id: "whatif-ok", class: report.ok ? "ok" : "blocked" },
    report.ok ? "The change is allowed." : "The change is refused: " + report.violations.length + " rule(s) broken.")];
  parts.push(el("h3", {}, "Each command"));
  parts.push(table("whatif-results", ["#", "Op", "Outcome"], report.results.map((r) =>
    [r.index, r.op, r.ok ? "ok: " + r.events.join(", ") : r.error.code + ": " + r.error.message])));
  parts.push(el("h3", {}, "Rules broken"));
  parts.push(report.violations.length
    ? table("whatif-violations", ["#", "Rule", "Group", "Type", "Limit", "Used", "Message"],
      report.violations.map((v) => [v.index, v.rule, groupName(v.group_id), v.type || "",
        v.limit === undefined ? "" : v.limit, v.used === undefined ? "" : v.used, v.message]))
    : el("p", { id: "whatif-violations" }, "None."));
  parts.push(el("h3", {}, "Who would lose what"));
  // Their names, asked together (the first 50 users; the rest are shown by id).
  const ids = [...new Set(report.would_block.map((b) => b.user_id))].slice(0, 50);
  const names = await Promise.all(ids.map((id) =>
    api(tenantPath("/users/" + encodeURIComponent(id))).then((u) => u.name).catch(() => id)));
  const users = new Map(ids.map((id, i) => [id, names[i]]));
  parts.push(report.would_block.length
    ? table("whatif-would-block", ["User", "Would lose", "Rule", "Group", "Why"],
      report.would_block.map((b) => [el("a", { href: "#user/" + b.user_id }, users.get(b.user_id) || b.user_id),
        b.type, b.rule, b.group_name || "", b.detail]))
    : el("p", { id: "whatif-would-block" }, "Nobody."));
  if (report.billing_delta) {
    parts.push(el("h3", {}, "Billing " + report.month + " (" + report.currency + " minor units)"));
    parts.push(table("whatif-billing", ["Type", "Peak before", "Peak after", "Amount before", "Amount after", "Change"],
      Object.entries(report.billing_delta).map(([t, d]) =>
        [t, d.peak_units_before, d.peak_units_after, d.amount_minor_before, d.amount_minor_after, d.amount_minor_delta])));
  }
  return parts;
}

async function whatIf() {
  const parts = [el("h2", {}, "What-if"),
    el("p", {}, "Build a change, or paste one (the commands of the what-if endpoint, as JSON), and preview it: nothing is written.")];
  const page = await api(tenantPath("/groups?limit=1000"));
  const groupsById = new Map(page.items.map((g) => [g.id, g]));
  const fields = {
    group: el("select", { id: "whatif-group" }, el("option", { value: "" }, "—"),
      page.items.map((g) => el("option", { value: g.id }, g.name))),
    type: el("input", { id: "whatif-type", placeholder: "phone_system" }),
    number: el("input", { id: "whatif-number", inputmode: "numeric" }),
    license: el("input", { id: "whatif-license", placeholder: "licence id" }),
    user: el("input", { id: "whatif-user", placeholder: "user id" }),
  };
  const fieldLabels = { group: "Group ", type: "Type ", number: "Limit or quantity ", license: "Licence id ", user: "User id " };
  const labels = Object.fromEntries(Object.entries(fields).map(([name, input]) => [name, el("label", {}, fieldLabels[name], input)]));
  const op = el("select", { id: "whatif-op" }, Object.keys(WHATIF_OPS).map((o) => el("option", { value: o }, WHATIF_LABELS[o])));
  const showFields = () => {
    for (const [name, label] of Object.entries(labels)) label.hidden = !WHATIF_OPS[op.value].includes(name);
  };
  op.addEventListener("change", showFields);
  showFields();
  const commands = el("textarea", { id: "whatif-commands", rows: 10, cols: 80, "aria-label": "Commands (JSON)", spellcheck: "false" });
  commands.value = "[]";
  const message = el("p", { id: "whatif-error", role: "alert", class: "error" });
  const results = el("div", { id: "whatif-report", "aria-live": "polite" });
  // A submit button: Enter in any field of the builder adds the command too.
  const add = el("button", { type: "submit", id: "whatif-add" }, "Add to the change");
  const addCommand = () => {
    try {
      const values = Object.fromEntries(Object.entries(fields).map(([name, input]) => [name, input.value.trim()]));
      const command = builtCommand(op.value, values, groupsById);
      const list = JSON.parse(commands.value || "[]");
      if (!Array.isArray(list)) throw new Error("the commands must be a JSON array");
      list.push(command);
      commands.value = JSON.stringify(list, null, 2);
      message.textContent = "";
    } catch (e) {
      message.textContent = e.message;
    }
  };
  const preview = el("button", { type: "button", id: "whatif-preview" }, "Preview");
  preview.addEventListener("click", async () => {
    let list;
    try {
      list = JSON.parse(commands.value);
    } catch (e) {
      message.textContent = "The commands are not JSON: " + e.message;
      return;
    }
    const body = Array.isArray(list) ? { commands: list } : list;
    try {
      message.textContent = "";
      results.replaceChildren(el("p", {}, "Previewing…"));
      results.replaceChildren(...await whatIfReport(await api(tenantPath("/what-if"), body), groupsById));
    } catch (e) {
      results.replaceChildren();
      message.textContent = e.status === 403 ? "This key may not make that change: " + e.message : e.message;
    }
  });
  const builder = el("form", { id: "whatif-builder" }, el("label", {}, "Change ", op), Object.values(labels), add);
  builder.addEventListener("submit", (event) => {
    event.preventDefault();
    addCommand();
  });
  parts.push(builder);
  parts.push(el("label", {}, "Commands (JSON) ", commands), preview, message, results);
  return parts;
}

// ---- Navigation -----------------------------------------------------------------------------

async function render() {
  const signedIn = session() !== null;
  document.getElementById("sign-in").hidden = signedIn;
  document.getElementById("nav").hidden = !signedIn;
  const page = document.getElementById("page");
  page.hidden = !signedIn;
  if (!signedIn) return;
  const [name, ...args] = (location.hash.replace(/^#/, "") || "overview").split("/").map(decodeURIComponent);
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.id === "nav-" + name);
    if (link.id === "nav-" + name) link.setAttribute("aria-current", "page");
  }
  const pages = { overview, groups, group: groupState, user, billing, audit, "what-if": whatIf };
  page.replaceChildren(el("p", {}, "Loading…"));
  try {
    page.replaceChildren(...await (pages[name] || overview)(...args));
  } catch (e) {
    page.replaceChildren(notice(e.status === 403 ? "This key may not see that: " + e.message : e.message));
  }
  page.setAttribute("data-page", name);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const tenant = document.getElementById("tenant").value.trim();
    const key = document.getElementById("key").value.trim();
    store.setItem("ledger.tenant", tenant);
    store.setItem("ledger.key", key);
    try {
      await api(tenantPath(""));
      document.getElementById("sign-in-error").textContent = "";
      document.getElementById("key").value = "";
      // A new hash renders the page (hashchange); the same one would not, so render it here:
      // once either way, not twice over each other.
      if (location.hash === "#overview") render();
      else location.hash = "overview";
    } catch (e) {
      store.removeItem("ledger.key");
      document.getElementById("sign-in-error").textContent = "Sign-in failed: " + e.message;
    }
  });
  document.getElementById("sign-out").addEventListener("click", () => {
    store.clear();
    location.hash = "";
    render();
  });
  window.addEventListener("hashchange", render);
  render();
});
