// The auditor's page: lays out what /api/overview and /api/rounds/N say, redraws on each new
// head (server-sent events from /api/events), and checks files against the recorded hashes
// (hashed here, looked up with /api/hashes/SHA256).
// Ledger text (names, endpoints) is always inserted as text, never as markup.
"use strict";

const page = { overview: null, round: null, member: null, refreshes: 0 };

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "onclick") {
      // Clickable, and by keyboard (Enter or Space) as a button is.
      node.addEventListener("click", v);
      node.setAttribute("role", "button");
      node.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          v(e);
        }
      });
    }
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);
const short = (hex) => (hex ? hex.slice(0, 12) + "…" : "");
const hash = (hex) => (hex ? el("code", { title: hex }, short(hex)) : "–");
const list = (names) => (names && names.length ? names.join(", ") : "–");
const number = (x, digits) => (Number.isFinite(x) ? x.toFixed(digits) : "–");

function bytes(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + " GB";
  if (n >= 1e6) return (n / 1e6).toFixed(2) + " MB";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + " kB";
  return n + " B";
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-cache" });
  if (!response.ok) {
    let why = response.statusText;
    try {
      why = (await response.json()).error || why;
    } catch (_) {}
    throw new Error(`${url}: ${why}`);
  }
  return response.json();
}

function banner(text) {
  $("banner").hidden = !text;
  $("banner").textContent = text || "";
}

function renderConsortium(c) {
  const dl = $("consortium");
  dl.replaceChildren();
  if (!c) {
    dl.append(el("dd", {}, "no consortium on this ledger yet"));
    return;
  }
  const rows = [
    ["model", [c.model_id, " ", hash(c.base_model_sha256)]],
    ["current round", c.current_round],
    ["aggregation rule", c.rule],
    ["anomaly methods", list(c.anomaly)],
    ["min participants", c.min_participants],
    ["commit quorum", c.commit_quorum],
    ["committee size", c.committee_size],
    ["admins", c.admins.map((k) => el("code", { title: k }, short(k)))],
  ];
  for (const [k, v] of rows) dl.append(el("dt", {}, k), el("dd", {}, v));
}

function renderMembers(members) {
  const body = $("members").tBodies[0];
  body.replaceChildren(
    ...members.map((m) =>
      el(
        "tr",
        {
          "data-key": m.key,
          class: (m.status === "ACTIVE" ? "" : "suspended ") + (page.member === m.key ? "selected" : ""),
          tabindex: 0,
          onclick: () => selectMember(m.key),
        },
        el("td", { class: "name" }, m.name || "(no name)"),
        el("td", {}, hash(m.key)),
        el("td", { class: "endpoint" }, m.endpoint),
        el("td", { title: m.suspend_reason || null }, m.status),
        el("td", {}, m.since_round),
        el("td", {}, m.commitments),
      ),
    ),
  );
}

function roundCard(r) {
  const attested = r.committee
    ? el("div", {}, `attested ${r.attestations_matching}/${r.committee}`)
    : null;
  return el(
    "li",
    {
      class: `round phase-${r.phase.toLowerCase()}` + (page.round === r.number ? " selected" : ""),
      "data-round": r.number,
      tabindex: 0,
      onclick: () => selectRound(r.number),
    },
    el("div", { class: "round-number" }, `round ${r.number}`),
    el("div", { class: "phase" }, r.phase),
    el("div", {}, `${r.mode.toLowerCase()} · ${r.sync.toLowerCase().replace("_", " ")}`),
    el("div", {}, "aggregator ", el("b", {}, r.aggregator_name)),
    el("div", {}, r.drawn === null ? `${r.commitments} committed` : `${r.commitments} of ${r.drawn} drawn committed`),
    r.excluded.length ? el("div", { class: "excluded" }, "excluded: ", r.excluded.join(", ")) : null,
    el("div", {}, "global ", hash(r.model_sha256)),
    attested,
    r.closed_unverified ? el("div", { class: "excluded" }, "closed unverified") : null,
  );
}

function renderRounds(rounds) {
  const ol = $("rounds");
  ol.replaceChildren(...rounds.map(roundCard));
  if (!rounds.length) ol.append(el("li", { class: "empty" }, "no round yet"));
}

function table(headers, rows) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))),
  );
}

function renderRound(d) {
  const box = $("round");
  $("round-title").textContent = `Round ${d.round.number}`;
  const parts = [
    el(
      "dl",
      {},
      el("dt", {}, "phase"),
      el("dd", {}, d.round.phase),
      el("dt", {}, "opened by"),
      el("dd", {}, d.opened_by),
      el("dt", {}, "parent model"),
      el("dd", {}, hash(d.parent_model_sha256)),
      el("dt", {}, "drawn"),
      el("dd", {}, d.drawn.length ? d.drawn.join(", ") : "every member"),
      ...(d.sketch_agreement === null
        ? []
        : [
            el("dt", { title: "each member's median cosine with the others' sketches, the median over the members" }, "sketch agreement"),
            el("dd", {}, number(d.sketch_agreement, 3)),
          ]),
    ),
    el("h3", {}, "Commitments"),
    table(
      ["member", "samples", "loss", "norm", "size", "base round", "staleness", "update SHA-256"],
      d.commitments.map((c) => [
        c.name,
        c.samples,
        number(c.loss, 4),
        number(c.norm, 4),
        bytes(c.size_bytes),
        c.base_round,
        c.staleness,
        hash(c.update_sha256),
      ]),
    ),
  ];
  if (d.methods.length) {
    // One row per member, one column per method: its score, in red where the method flagged it.
    parts.push(el("h3", {}, `Verdict (evaluated by ${d.evaluated_by})`));
    const members = [];
    const cells = new Map();
    for (const m of d.methods) {
      for (const s of m.scores) {
        if (!cells.has(s.name)) {
          members.push(s.name);
          cells.set(s.name, new Map());
        }
        cells.get(s.name).set(m.method, s);
      }
    }
    const rows = members.map((name) => [
      name,
      ...d.methods.map((m) => {
        const s = cells.get(name).get(m.method);
        if (!s) return "–";
        return s.flagged ? el("b", { class: "excluded", title: "flagged" }, number(s.score, 4) + " ⚑") : number(s.score, 4);
      }),
      d.excluded.includes(name) ? el("b", { class: "excluded" }, "excluded") : d.accepted.includes(name) ? "accepted" : "–",
    ]);
    parts.push(table(["member", ...d.methods.map((m) => m.method.toLowerCase()), "verdict"], rows));
  }
  if (d.disputes.length) {
    parts.push(el("h3", {}, "Disputes"));
    parts.push(table(["member", "mismatch", "reported by"], d.disputes.map((x) => [x.member, x.mismatch, x.reported_by])));
  }
  const a = d.aggregate;
  if (a) {
    parts.push(el("h3", {}, "Aggregate"));
    parts.push(
      el(
        "dl",
        {},
        el("dt", {}, "global model"),
        el("dd", {}, el("code", { class: "full" }, a.model_sha256), ` (${bytes(a.size_bytes)}, ${a.rule})`),
        el("dt", {}, "submitted by"),
        el("dd", {}, a.submitted_by),
        el("dt", {}, "contributors"),
        el("dd", {}, list(a.contributors)),
        el("dt", {}, "excluded"),
        el("dd", {}, list(a.excluded)),
        a.withdrawn.length ? [el("dt", {}, "withdrawn"), el("dd", {}, "round " + (d.round.number - 1) + "'s update of " + a.withdrawn.join(", ") + ", taken back out")] : null,
        el("dt", {}, "finality"),
        el("dd", {}, a.finality),
        a.committee.length ? [el("dt", {}, "committee"), el("dd", {}, list(a.committee))] : null,
      ),
    );
    if (a.attestations.length) {
      parts.push(
        table(
          ["attested by", "recomputed", "false disputes"],
          a.attestations.map((x) => [x.name, x.matches ? "matches" : hash(x.model_sha256), list(x.false_disputes)]),
        ),
      );
    }
  }
  box.replaceChildren(...parts);
  $("round-section").hidden = false;
}

function renderMember(d) {
  $("member-title").textContent = `Member ${d.name || short(d.key)}`;
  const links = (rows) =>
    table(
      ["peer", "bandwidth", "RTT", "round", "samples"],
      rows.map((l) => [l.peer_name, `${(l.bytes_per_sec / 1e6).toFixed(2)} MB/s`, `${(l.rtt_us / 1e3).toFixed(1)} ms`, l.epoch, l.samples]),
    );
  $("member").replaceChildren(
    el(
      "dl",
      {},
      el("dt", {}, "key"),
      el("dd", {}, el("code", { class: "full" }, d.key)),
      el("dt", {}, "endpoint"),
      el("dd", {}, d.endpoint),
      el("dt", {}, "standing"),
      el("dd", {}, d.status, d.suspend_reason ? ` (${d.suspend_reason})` : ""),
      el("dt", {}, "since round"),
      el("dd", {}, d.since_round),
      el("dt", {}, "aggregated rounds"),
      el("dd", {}, list(d.aggregated)),
    ),
    el("h3", {}, `Commitments (${d.commitments.length})`),
    table(
      ["round", "samples", "loss", "norm", "size", "verdict", "update SHA-256"],
      d.commitments.map((c) => [
        c.round,
        c.samples,
        number(c.loss, 4),
        number(c.norm, 4),
        bytes(c.size_bytes),
        c.verdict === "excluded" ? el("b", { class: "excluded" }, c.verdict) : c.verdict,
        hash(c.update_sha256),
      ]),
    ),
    el("h3", {}, `Links out (${d.links_out.length})`),
    links(d.links_out),
    el("h3", {}, `Links in (${d.links_in.length})`),
    links(d.links_in),
  );
  $("member-section").hidden = false;
}

/** Shows member `key` in detail. */
async function selectMember(key) {
  page.member = key;
  for (const tr of document.querySelectorAll("#members tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.key === key);
  }
  try {
    renderMember(await getJson(`/api/members/${encodeURIComponent(key)}`));
  } catch (e) {
    banner(String(e.message || e));
  }
}

/** Shows round `n`: its detail and its graph. */
async function selectRound(n) {
  page.round = n;
  for (const li of document.querySelectorAll("#rounds li.round")) {
    const selected = Number(li.dataset.round) === n;
    li.classList.toggle("selected", selected);
    li.setAttribute("aria-pressed", String(selected));
  }
  const head = page.overview ? page.overview.head : "";
  try {
    renderRound(await getJson(`/api/rounds/${n}`));
  } catch (e) {
    banner(String(e.message || e));
  }
  $("graph-title").textContent = `Bandwidth graph, round ${n}`;
  const graph = $("graph");
  graph.onerror = () => {
    $("graph-section").hidden = true;
  };
  graph.onload = () => {
    $("graph-section").hidden = false;
  };
  graph.src = `/api/rounds/${n}/graph.svg?head=${encodeURIComponent(head)}`;
}

function renderCharts(o) {
  $("charts-section").hidden = !o.charts || !o.rounds.length;
  if (!o.charts) return;
  const stamp = `?head=${encodeURIComponent(o.head)}&t=${Date.now()}`;
  $("chart-accuracy").src = "/api/charts/accuracy.svg" + stamp;
  $("chart-rounds").src = "/api/charts/rounds.svg" + stamp;
}

/** Reads the overview again and redraws everything. */
async function refresh() {
  let o;
  try {
    o = await getJson("/api/overview");
  } catch (e) {
    banner(String(e.message || e));
    return;
  }
  banner("");
  page.overview = o;
  page.refreshes += 1;
  document.body.dataset.head = o.head;
  document.body.dataset.refreshes = page.refreshes;
  $("ledger").textContent = `ledger ${o.ledger}`;
  $("head").replaceChildren("head block ", hash(o.head));
  renderConsortium(o.consortium);
  renderMembers(o.members);
  const numbers = o.rounds.map((r) => r.number);
  if (page.round === null || !numbers.includes(page.round)) {
    page.round = numbers.length ? numbers[numbers.length - 1] : null;
  }
  renderRounds(o.rounds);
  renderCharts(o);
  if (page.member !== null) {
    if (o.members.some((m) => m.key === page.member)) await selectMember(page.member);
    else {
      page.member = null;
      $("member-section").hidden = true;
    }
  }
  if (page.round !== null) await selectRound(page.round);
  else $("round-section").hidden = $("graph-section").hidden = true;
  // When the page first showed the ledger, and when it last redrew (ms since navigation).
  if (!document.body.dataset.ready) document.body.dataset.readyMs = Math.round(performance.now());
  document.body.dataset.refreshedMs = Math.round(performance.now());
  document.body.dataset.ready = "1";
}

/** Follows /api/events: each new head redraws the page's data (no reload). */
function follow() {
  const source = new EventSource("/api/events");
  const live = (on, text) => {
    $("live").classList.toggle("on", on);
    $("live-text").textContent = text;
  };
  source.addEventListener("open", () => live(true, "live"));
  source.addEventListener("error", () => live(false, "reconnecting"));
  source.addEventListener("head", (e) => {
    live(true, "live");
    if (e.data && (!page.overview || e.data !== page.overview.head)) refresh();
  });
  source.addEventListener("ledger-error", (e) => {
    live(false, "ledger unreachable");
    banner(`the ledger cannot be read: ${e.data} (showing the last state read)`);
  });
}

/** The verify box: hashes the chosen file here and asks which commitments and aggregates
 * record that hash (and the file's size). */
async function verify(file) {
  const out = $("verify-result");
  out.dataset.result = "";
  out.textContent = `hashing ${file.name} (${bytes(file.size)})…`;
  const { hex, by } = await bcflDigestHex(await file.arrayBuffer());
  const found = await getJson(`/api/hashes/${hex}`);
  const matches = found.matches.filter((h) => h.size_bytes === file.size);
  out.replaceChildren();
  out.dataset.sha256 = hex;
  if (matches.length) {
    out.dataset.result = "match";
    out.className = "ok";
    out.append(
      `✔ ${file.name} (SHA-256 `,
      el("code", {}, hex),
      `, by ${by}) is `,
      matches
        .map((m) =>
          m.kind === "aggregate"
            ? `the global model of round ${m.round} (submitted by ${m.member})`
            : `the update ${m.member} committed in round ${m.round}`,
        )
        .join("; and "),
      ".",
    );
  } else {
    out.dataset.result = "none";
    out.className = "bad";
    out.append(
      `✘ ${file.name} (SHA-256 `,
      el("code", {}, hex),
      `, ${bytes(file.size)}) matches no commitment and no aggregate on the ledger.`,
    );
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("verify-file").addEventListener("change", (e) => {
    const file = e.target.files && e.target.files[0];
    if (file) verify(file).catch((err) => ($("verify-result").textContent = String(err)));
  });
  refresh();
  follow();
});
