// harness report: the task table and each trial's details, from the data embedded in this page.
// Every string from the record is put in the page as a text node (never parsed as HTML); the
// page's Content-Security-Policy lets no request out and no other script run.
(() => {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  // Fields of a trial in the index (reports/_html.py, _index).
  const ID = 0, TASK = 1, IDX = 2, OUTCOME = 3, KIND = 4, REWARD = 5, SECS = 6, STEPS = 7,
    TOKENS = 8, ERROR = 9, COUNTED = 10, COST = 11;
  const KINDS = ["passed", "failed", "timeouts", "errors"];

  // -- building the page ----------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function sv(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.setAttribute("class", value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  // -- numbers as people read them --------------------------------------------------------------

  function ms(v) {
    if (v === null || v === undefined) return "-";
    if (v < 10) return v.toFixed(1) + " ms";
    if (v < 1000) return Math.round(v) + " ms";
    if (v < 60000) return (v / 1000).toFixed(1) + " s";
    const m = Math.floor(v / 60000);
    return m + " min " + Math.round((v % 60000) / 1000) + " s";
  }
  const secs = (v) => (v === null || v === undefined ? "-" : ms(v * 1000));
  function bytes(n) {
    if (n === null || n === undefined) return "-";
    if (n < 1024) return n + " B";
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let v = n, i = -1;
    do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
    return v.toFixed(1) + " " + units[i];
  }
  const int = (n) => (n === null || n === undefined ? "-" : n.toLocaleString("en-US"));
  const pct = (x) => (x === null || x === undefined ? "-" : (x * 100).toFixed(1) + "%");
  const num = (x) => (x === null || x === undefined ? "-" : String(Math.round(x * 1000) / 1000));
  const plural = (n, word) => n + " " + word + (n === 1 ? "" : "s");
  const usd = (x) => (x === null || x === undefined ? "n/a" : "$" + x.toFixed(4));

  // -- the embedded data ----------------------------------------------------------------------

  function b64bytes(text) {
    if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function unpack(text) {
    const stream = new Blob([b64bytes(text)]).stream()
      .pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  let chunks = null;
  function chunk(i) {
    if (chunks === null) chunks = JSON.parse(document.getElementById("harness-trials").textContent);
    return unpack(chunks[i]);
  }

  // -- the task table ---------------------------------------------------------------------------

  let index = null;
  const groups = []; // one per task: {row, body, tbody, open: Map(trial -> tr)}
  let sortKey = "rate", sortDir = 1;

  const COLUMNS = [
    { key: "task", label: "task" },
    { key: "trials", label: "trials", sort: false },
    { key: "rate", label: "pass rate" },
    { key: "reward", label: "mean reward" },
    { key: "outcomes", label: "outcomes", sort: false },
    { key: "time", label: "mean time" },
    { key: "tokens", label: "tokens" },
    { key: "cost", label: "cost" },
  ];
  const COMPARE_COLUMNS = [
    { key: "base", label: "baseline" },
    { key: "delta", label: "Δ pass rate" },
    { key: "p", label: "p" },
    { key: "verdict", label: "verdict" },
  ];
  const VERDICT_ORDER = { "regression": 0, "improvement": 1, "not comparable": 2, "no change": 3 };

  function columns() {
    return index.compare ? COLUMNS.concat(COMPARE_COLUMNS) : COLUMNS;
  }

  function failing(g) {
    // Failing first: the lowest pass rate, then the most errors and timeouts, then by name.
    const t = g.task;
    const rate = t.rate === null ? 2 : t.rate;
    const bad = (t.kinds.errors || 0) + (t.kinds.timeouts || 0);
    return [rate, -bad];
  }

  function sortValue(g, key) {
    const t = g.task, c = t.cmp || {};
    switch (key) {
      case "task": return t.task;
      case "rate": return failing(g);
      case "reward": return t.reward;
      case "time": return t.mean_s;
      case "tokens": return t.tokens;
      case "cost": return t.cost;
      case "base": return c.base_rate;
      case "delta": return c.delta;
      case "p": return c.p;
      case "verdict": return c.verdict === undefined ? 9 : VERDICT_ORDER[c.verdict];
      default: return null;
    }
  }

  function compareValues(a, b) {
    if (Array.isArray(a)) {
      for (let i = 0; i < a.length; i++) {
        const d = compareValues(a[i], b[i]);
        if (d) return d;
      }
      return 0;
    }
    const an = a === null || a === undefined, bn = b === null || b === undefined;
    if (an || bn) return an === bn ? 0 : an ? 1 : -1; // missing values last, either way
    if (typeof a === "string") return a < b ? -1 : a > b ? 1 : 0;
    return a - b;
  }

  function sortRows() {
    const tbodyParent = document.getElementById("task-table");
    const sorted = groups.slice().sort((x, y) => {
      const a = sortValue(x, sortKey), b = sortValue(y, sortKey);
      const missing = (v) => v === null || v === undefined;
      let d = missing(a) || missing(b) ? compareValues(a, b) : sortDir * compareValues(a, b);
      if (!d) d = compareValues(x.task.task, y.task.task);
      return d;
    });
    for (const g of sorted) tbodyParent.append(g.tbody);
    for (const th of tbodyParent.tHead.rows[0].cells) {
      const on = th.dataset.key === sortKey;
      th.setAttribute("aria-sort", on ? (sortDir > 0 ? "ascending" : "descending") : "none");
    }
  }

  function headRow() {
    const tr = el("tr");
    for (const col of columns()) {
      const th = el("th", { scope: "col", "data-key": col.key }, col.label);
      if (col.sort !== false) {
        th.classList.add("sortable");
        th.tabIndex = 0;
        const go = () => {
          if (sortKey === col.key) sortDir = -sortDir;
          else { sortKey = col.key; sortDir = 1; }
          sortRows();
        };
        th.addEventListener("click", go);
        th.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
      }
      tr.append(th);
    }
    return tr;
  }

  const ONE = { timeouts: "timeout", errors: "error" };
  function kindChips(kinds) {
    return KINDS.filter((k) => kinds[k]).map((k) =>
      el("span", { class: "chip o-" + k }, kinds[k] + " " + (kinds[k] === 1 ? ONE[k] || k : k)));
  }

  function pill(g, i) {
    const tr = index.trials[i];
    const label = "#" + (tr[IDX] === null ? "?" : tr[IDX]) + " " + (tr[OUTCOME] || "interrupted");
    const title = [tr[OUTCOME] || "interrupted (no outcome)", "reward " + num(tr[REWARD]),
      secs(tr[SECS]), plural(tr[STEPS] || 0, "step")];
    if (!tr[COUNTED]) title.push("not counted: interrupted or run again");
    if (tr[ERROR]) title.push(tr[ERROR]);
    const button = el("button", {
      class: "pill o-" + tr[KIND] + (tr[COUNTED] ? "" : " superseded"),
      type: "button", "aria-expanded": "false", "data-trial": tr[ID], title: title.join(" · "),
    }, label);
    button.addEventListener("click", () => toggleTrial(g, i, button));
    return button;
  }

  function taskRow(t) {
    const g = { task: t, open: new Map() };
    const cells = [
      el("td", { class: "task" }, t.task),
      el("td", { class: "pills" }, t.trials.map((i) => pill(g, i))),
      el("td", { class: "num" }, t.n ? t.passed + "/" + t.n + " (" + pct(t.rate) + ")" : "-"),
      el("td", { class: "num" }, num(t.reward)),
      el("td", null, kindChips(t.kinds)),
      el("td", { class: "num" }, secs(t.mean_s)),
      el("td", { class: "num" }, int(t.tokens)),
      el("td", { class: "num" }, t.cost === null ? "n/a" : usd(t.cost)),
    ];
    if (index.compare) {
      const c = t.cmp || {};
      cells.push(
        el("td", { class: "num" }, c.base_n ? c.base_passed + "/" + c.base_n + " (" + pct(c.base_rate) + ")" : "-"),
        el("td", { class: "num" }, c.delta === null || c.delta === undefined ? "-" : (c.delta >= 0 ? "+" : "") + (c.delta * 100).toFixed(1) + " pp"),
        el("td", { class: "num" }, c.p === null || c.p === undefined ? "-" : c.p.toFixed(4)),
        el("td", { class: "verdict v-" + String(c.verdict || "").replace(/ /g, "-"), title: c.reason || null },
          c.verdict || "-", c.reason ? el("span", { class: "note" }, " (" + c.reason + ")") : null),
      );
    }
    g.row = el("tr", { class: "task-row", "data-task": t.task }, cells);
    g.tbody = el("tbody", null, g.row);
    g.kinds = new Set(t.trials.map((i) => index.trials[i][KIND]));
    g.outcomes = new Set(t.trials.map((i) => String(index.trials[i][OUTCOME])));
    g.name = t.task.toLowerCase();
    return g;
  }

  function filterOptions() {
    const select = document.getElementById("filter-outcome");
    const outcomes = new Set(index.trials.map((t) => t[OUTCOME]).filter((o) => o));
    const options = [["", "all outcomes"], ["failing", "failing (a trial did not pass)"]]
      .concat(KINDS.map((k) => ["kind:" + k, k]))
      .concat([...outcomes].sort().filter((o) => o !== "passed" && o !== "failed").map((o) => ["outcome:" + o, o]));
    if (index.compare) {
      for (const v of Object.keys(VERDICT_ORDER)) options.push(["verdict:" + v, "verdict: " + v]);
    }
    for (const [value, label] of options) select.append(el("option", { value }, label));
  }

  function applyFilter() {
    const text = document.getElementById("filter-task").value.trim().toLowerCase();
    const what = document.getElementById("filter-outcome").value;
    let shown = 0;
    for (const g of groups) {
      let ok = !text || g.name.includes(text);
      if (ok && what) {
        const [kind, value] = what.includes(":") ? what.split(/:(.*)/s) : [what, ""];
        if (kind === "failing") ok = g.task.n > g.task.passed || [...g.kinds].some((k) => k !== "passed");
        else if (kind === "kind") ok = g.kinds.has(value);
        else if (kind === "outcome") ok = g.outcomes.has(value);
        else if (kind === "verdict") ok = (g.task.cmp || {}).verdict === value;
      }
      g.tbody.hidden = !ok;
      if (ok) shown++;
    }
    document.getElementById("shown").textContent = "showing " + shown + " of " + plural(groups.length, "task");
  }

  // -- a trial, expanded in place -------------------------------------------------------------

  function toggleTrial(g, i, button) {
    const open = g.open.get(i);
    if (open) {
      open.remove();
      g.open.delete(i);
      button.setAttribute("aria-expanded", "false");
      return null;
    }
    const holder = el("div", { class: "trial o-" + index.trials[i][KIND], id: "trial-" + index.trials[i][ID], "data-trial": index.trials[i][ID] },
      el("p", { class: "note" }, "loading…"));
    const tr = el("tr", { class: "detail" }, el("td", { colspan: columns().length }, holder));
    // Open trials sit under their task's row in the order of its pills.
    const pos = (k) => g.task.trials.indexOf(k);
    const after = [...g.open.keys()].filter((k) => pos(k) < pos(i)).sort((a, b) => pos(a) - pos(b)).pop();
    (after === undefined ? g.row : g.open.get(after)).after(tr);
    g.open.set(i, tr);
    button.setAttribute("aria-expanded", "true");
    chunk(i).then((d) => {
      holder.replaceChildren(...renderTrial(d));
      holder.dataset.rendered = "1";
    }).catch((e) => {
      holder.replaceChildren(el("p", { class: "error" }, "cannot show this trial: " + e));
      holder.dataset.rendered = "error";
    });
    return tr;
  }

  function badge(kind, text) {
    return el("span", { class: "badge o-" + kind }, text);
  }

  function facts(parts) {
    return el("div", { class: "facts" }, parts.filter((p) => p !== null && p !== "").map((p, i) => [i ? " · " : "", p]));
  }

  function renderTrial(d) {
    const t = d.trial;
    const tokens = t.input_tokens === null && t.output_tokens === null ? "-"
      : int(t.input_tokens || 0) + " in" + (t.cached_tokens ? " (" + int(t.cached_tokens) + " cached)" : "")
        + ", " + int(t.output_tokens || 0) + " out" + (t.reasoning_tokens ? " (" + int(t.reasoning_tokens) + " reasoning)" : "");
    const out = [
      el("div", { class: "thead" },
        badge(t.kind, t.outcome || "interrupted"),
        el("b", null, " " + t.task + " #" + (t.index === null ? "?" : t.index)),
        facts(["reward " + num(t.reward), secs(t.duration_s), plural(d.steps.length, "step"),
          plural(d.turns.length, "model call"), "tokens " + tokens,
          "cpu " + (t.cpu_s === null ? "-" : t.cpu_s.toFixed(2) + " s"), "peak memory " + bytes(t.peak_memory_bytes)]),
        facts(["agent " + (t.agent || "-"), "model " + (t.model || "-"), "image " + (t.image || "-"),
          "trial " + t.id, "started " + t.started_at.slice(0, 19).replace("T", " ") + " UTC"]),
      ),
    ];
    if (t.superseded) out.push(el("p", { class: "note" }, "not counted: interrupted, or run again by a resume"));
    if (t.error) out.push(el("pre", { class: "error" }, t.error));
    out.push(el("h4", null, "timeline"), timeline(d));
    out.push(el("h4", null, "resources"), resources(d));
    out.push(el("h4", null, "steps"));
    const told = new Set();
    const turns = new Map(d.turns.map((x) => [x.i, x]));
    if (!d.steps.length) out.push(el("p", { class: "note" }, "the agent took no steps"));
    for (const s of d.steps) {
      let said = null;
      if (s.turn !== null && !told.has(s.turn)) {
        told.add(s.turn);
        said = turns.get(s.turn);
      }
      out.push(step(t.id, s, said));
    }
    const last = d.turns[d.turns.length - 1];
    if (last && !last.steps.length && last.msg) {
      out.push(el("div", { class: "said" }, el("div", { class: "who" }, "model (its last word)"), textBlock(null, last.msg, { head: 20, tail: 10, part: "message" })));
    }
    if (d.turns.length) out.push(modelTurns(d.turns));
    out.push(el("h4", null, "verifier"));
    if (!d.verifier.length) out.push(el("p", { class: "note" }, "the verifier did not run"));
    for (const v of d.verifier) out.push(verifierRun(v));
    out.push(el("p", { class: "result" }, "result ", badge(t.kind, t.outcome || "interrupted"), " reward ", el("b", null, num(t.reward))));
    return out;
  }

  function status(x) {
    const parts = [];
    if (x.exit !== undefined && x.exit !== null) parts.push(el("span", { class: x.exit === 0 ? "ok" : "bad" }, "exit " + x.exit));
    else if (x.exit === null) parts.push("exit -");
    parts.push(ms(x.ms));
    if (x.timeout) parts.push(el("span", { class: "bad" }, "timed out"));
    if (x.oom) parts.push(el("span", { class: "bad" }, "OOM killed"));
    return parts;
  }

  function step(trialId, s, said) {
    const kind = s.kind === "write" ? "write" : s.timeout ? "timeout" : s.exit === 0 ? "ok" : "fail";
    const card = el("div", { class: "step k-" + kind, id: "step-" + trialId + "-" + s.n, "data-step": s.n });
    if (said && said.msg) {
      card.append(el("div", { class: "said" }, el("div", { class: "who" }, "model (turn " + said.i + ")"), textBlock(null, said.msg, { head: 12, tail: 4, part: "message" })));
    }
    card.append(el("div", { class: "shead" }, el("span", { class: "sn" }, "step " + s.n),
      s.stage && s.stage !== "main" ? el("span", { class: "note" }, " stage " + s.stage) : null));
    card.append(textBlock(null, { t: (s.kind === "command" ? "$ " : "") + s.action }, { head: 6, tail: 0, cls: "action" }));
    const f = s.kind === "command" ? status(s) : [ms(s.ms)];
    if (s.cpu !== null && s.cpu !== undefined) f.push("cpu " + s.cpu.toFixed(2) + " s");
    if (s.mem !== null && s.mem !== undefined) f.push("peak memory " + bytes(s.mem));
    card.append(facts(f));
    if (s.out) card.append(textBlock("stdout", s.out, { head: 10, tail: 10 }));
    if (s.err) card.append(textBlock("stderr", s.err, { head: 10, tail: 10, cls: "stderr" }));
    if (s.files.length) card.append(files(s.files));
    return card;
  }

  function files(changes) {
    const box = el("div", { class: "files" }, el("div", { class: "label" }, "files · " + plural(changes.length, "change")));
    for (const ch of changes) {
      let what = ch.path;
      if (ch.old) what = ch.old + " → " + ch.path;
      if (ch.link) what += " → " + ch.link;
      const item = el("div", { class: "change op-" + ch.op },
        el("span", { class: "op" }, ch.op), " ", el("code", { class: "path" }, what),
        ch.type && ch.type !== "file" ? el("span", { class: "note" }, " (" + ch.type + ")") : null,
        ch.size !== null && ch.size !== undefined && ch.type === "file" ? el("span", { class: "note" }, " " + bytes(ch.size)) : null,
        ch.binary ? el("span", { class: "tag binary" }, "binary") : null,
        ch.note ? el("span", { class: "note" }, " (" + ch.note + ")") : null);
      box.append(item);
      if (ch.diff) box.append(textBlock(null, ch.diff, { head: 40, tail: 0, diff: true, part: "diff" }));
    }
    return box;
  }

  function verifierRun(v) {
    const box = el("div", { class: "step verifier k-" + (v.timeout ? "timeout" : v.exit === 0 ? "ok" : "fail") });
    box.append(textBlock(null, { t: "$ " + v.cmd }, { head: 6, tail: 0, cls: "action" }));
    box.append(facts(status(v)));
    if (v.out) box.append(textBlock("stdout", v.out, { head: 0, tail: 20 }));
    if (v.err) box.append(textBlock("stderr", v.err, { head: 0, tail: 20, cls: "stderr" }));
    if (!v.out && !v.err) box.append(el("p", { class: "note" }, "(no output)"));
    return box;
  }

  function modelTurns(turns) {
    const box = el("details", { class: "turns" }, el("summary", null, "model messages · " + plural(turns.length, "turn")));
    for (const x of turns) {
      box.append(el("div", { class: "turn" + (x.failed ? " failed" : "") },
        facts([el("b", null, "turn " + x.i), x.model || "-", int(x.in || 0) + " in / " + int(x.out || 0) + " out",
          ms(x.ms), x.steps.length ? "caused step" + (x.steps.length > 1 ? "s " : " ") + x.steps.join(", ") : "no step",
          x.failed ? el("span", { class: "bad" }, "failed") : null]),
        x.msg ? textBlock(null, x.msg, { head: 20, tail: 5 }) : el("p", { class: "note" }, "(no text)"),
        x.why ? el("details", null, el("summary", null, "reasoning"), textBlock(null, x.why, { head: 20, tail: 5 })) : null));
    }
    return box;
  }

  // A recorded text: its head and tail, with a button that shows all of it.
  function textBlock(label, tx, opts) {
    const { head = 10, tail = 10, cls = "", diff = false, part = null } = opts || {};
    let lines = tx.t.split("\n");
    if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
    const box = el("div", { class: "tb " + cls, "data-part": part || label || cls || null });
    if (label) {
      const n = tx.n === undefined ? lines.length : tx.n;
      box.append(el("div", { class: "label" }, label + " · " + plural(n, "line") + ", " + bytes(tx.b === undefined ? tx.t.length : tx.b)));
    }
    const pre = el("pre", { class: diff ? "diff" : null });
    box.append(pre);
    const line = (text) => {
      if (!diff) return text + "\n";
      const c = text.startsWith("+++") || text.startsWith("---") ? "dm" : text[0] === "+" ? "da" : text[0] === "-" ? "dd" : text[0] === "@" ? "dh" : null;
      return c ? el("span", { class: c }, text + "\n") : text + "\n";
    };
    const gapLine = () => el("span", { class: "gap" }, "… " + plural(tx.gap.lines, "line") + " (" + bytes(tx.gap.bytes) + ") are not in this report: `harness show` or SQL on the store has them\n");
    const all = () => {
      const parts = [];
      lines.forEach((text, k) => {
        if (tx.gap && k === tx.gap.at) parts.push(gapLine());
        parts.push(line(text));
      });
      pre.replaceChildren(...parts);
    };
    if (lines.length <= head + tail + 4 && !tx.gap) {
      all();
    } else {
      const hidden = lines.length - head - tail + (tx.gap ? tx.gap.lines : 0);
      const more = el("button", { class: "more", type: "button" }, "… " + plural(hidden, "line") + " hidden · show all");
      more.addEventListener("click", all);
      pre.replaceChildren(...lines.slice(0, head).map(line), more, "\n", ...lines.slice(lines.length - tail).map(line));
      if (!tail) pre.lastChild.remove();
    }
    if (tx.more) box.append(el("div", { class: "note" }, bytes(tx.more) + " more were written than the record kept"));
    return box;
  }

  // -- charts -----------------------------------------------------------------------------------

  const LANES = [["phase", "phases"], ["model", "model"], ["agent", "agent"], ["verifier", "verifier"], ["harness", "harness"]];

  function niceStep(total, ticks) {
    const raw = total / ticks;
    const mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    for (const m of [1, 2, 5, 10]) if (raw <= m * mag) return m * mag;
    return 10 * mag;
  }

  function axis(total, x0, x1, y, h) {
    const g = sv("g", { class: "axis" });
    const step = niceStep(total, 8);
    g.append(sv("line", { x1: x0, x2: x1, y1: y, y2: y }));
    for (let v = 0; v <= total + 1e-9; v += step) {
      const x = x0 + (v / total) * (x1 - x0);
      g.append(sv("line", { class: "grid", x1: x, x2: x, y1: y - h, y2: y }));
      g.append(sv("text", { x, y: y + 12, "text-anchor": "middle" }, ms(v)));
    }
    return g;
  }

  function timeline(d) {
    const total = Math.max(d.duration_ms, ...d.bars.map((b) => b[1] + b[2]), 1);
    const lanes = LANES.filter(([k]) => d.bars.some((b) => b[0] === k));
    const W = 1000, X0 = 70, X1 = 990, LH = 20;
    const H = lanes.length * LH + 22;
    const root = sv("svg", { class: "timeline", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "timeline of the trial" });
    lanes.forEach(([key, label], row) => {
      const y = row * LH;
      root.append(sv("text", { class: "lane", x: 0, y: y + 14 }, label));
      for (const b of d.bars.filter((x) => x[0] === key)) {
        const x = X0 + (b[1] / total) * (X1 - X0);
        const w = Math.max(1.5, (b[2] / total) * (X1 - X0));
        const rect = sv("rect", { class: "bar b-" + key + " k-" + b[3], x, y: y + 3, width: w, height: LH - 6, rx: 2 },
          sv("title", null, b[4] + " · at " + ms(b[1]) + " for " + ms(b[2])));
        if (b[5] !== null) {
          rect.classList.add("link");
          rect.dataset.step = b[5];
          rect.addEventListener("click", () => {
            const card = document.getElementById("step-" + d.trial.id + "-" + b[5]);
            if (card) {
              card.scrollIntoView({ block: "center" });
              card.classList.remove("flash");
              void card.offsetWidth;
              card.classList.add("flash");
            }
          });
        }
        root.append(rect);
      }
    });
    root.append(axis(total, X0, X1, lanes.length * LH + 2, lanes.length * LH));
    const legend = el("div", { class: "legend" },
      [["ok", "exit 0"], ["fail", "failed"], ["timeout", "timed out"], ["write", "file write"], ["model", "model call"]]
        .map(([k, text]) => el("span", null, el("i", { class: "sw k-" + k }), text)));
    return el("div", { class: "chart" }, root, legend);
  }

  function lineChart(title, points, total, limit, fmt, cls) {
    const W = 490, H = 150, X0 = 56, X1 = 480, Y0 = 10, Y1 = 120;
    const values = points.filter((p) => p[1] !== null && p[1] !== undefined);
    const top = Math.max(limit || 0, ...values.map((p) => p[1]), 1e-9) * 1.1;
    const svg = sv("svg", { class: "res " + cls, viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
    const yOf = (v) => Y1 - (v / top) * (Y1 - Y0);
    for (const f of [0, 0.5, 1]) {
      const v = top / 1.1 * f;
      svg.append(sv("line", { class: "grid", x1: X0, x2: X1, y1: yOf(v), y2: yOf(v) }));
      svg.append(sv("text", { class: "tick", x: X0 - 4, y: yOf(v) + 4, "text-anchor": "end" }, fmt(v)));
    }
    if (values.length) {
      const pts = values.map((p) => (X0 + (p[0] / total) * (X1 - X0)).toFixed(1) + "," + yOf(p[1]).toFixed(1)).join(" ");
      svg.append(sv("polyline", { class: "series", points: pts }, sv("title", null, title)));
      for (const p of values.length <= 60 ? values : []) {
        svg.append(sv("circle", { class: "dot", cx: X0 + (p[0] / total) * (X1 - X0), cy: yOf(p[1]), r: 2 },
          sv("title", null, fmt(p[1]) + " at " + ms(p[0]))));
      }
    } else {
      svg.append(sv("text", { class: "tick", x: (X0 + X1) / 2, y: (Y0 + Y1) / 2, "text-anchor": "middle" }, "no samples"));
    }
    if (limit) {
      svg.append(sv("line", { class: "limit", x1: X0, x2: X1, y1: yOf(limit), y2: yOf(limit) }));
      svg.append(sv("text", { class: "limit-label", x: X1, y: yOf(limit) - 3, "text-anchor": "end" }, "limit " + fmt(limit)));
    }
    svg.append(axis(total, X0, X1, Y1 + 2, Y1 - Y0));
    return el("figure", null, el("figcaption", null, title), svg);
  }

  function resources(d) {
    const r = d.resources;
    if (!r.points.length) return el("p", { class: "note" }, "no resource samples recorded");
    const total = Math.max(d.duration_ms, ...r.points.map((p) => p[0]), 1);
    const cores = (v) => v.toFixed(2);
    const mem = r.points.map((p) => [p[0], p[2]]);
    return el("div", { class: "charts" },
      lineChart("CPU (cores in use)", r.points.map((p) => [p[0], p[1]]), total, r.cpu_limit, cores, "cpu"),
      lineChart("memory", mem, total, r.memory_limit, bytes, "mem"));
  }

  // -- start ------------------------------------------------------------------------------------

  async function start() {
    const loading = document.getElementById("loading");
    try {
      if (typeof DecompressionStream !== "function") {
        throw new Error("this browser has no DecompressionStream; open the report in a current Chrome, Edge, Firefox or Safari");
      }
      index = await unpack(document.getElementById("harness-index").textContent);
    } catch (e) {
      loading.textContent = "cannot read the report's data: " + e.message;
      loading.className = "error";
      return;
    }
    const table = document.getElementById("task-table");
    table.tHead.append(headRow());
    for (const t of index.tasks) groups.push(taskRow(t));
    filterOptions();
    sortRows();
    applyFilter();
    loading.remove();
    document.getElementById("filter-task").addEventListener("input", applyFilter);
    document.getElementById("filter-outcome").addEventListener("change", applyFilter);
    // #trial=ID opens that trial (a link to one trial of a report).
    const wanted = new URLSearchParams(location.hash.slice(1)).get("trial");
    if (wanted) {
      const button = table.querySelector('button.pill[data-trial="' + CSS.escape(wanted) + '"]');
      if (button) button.click();
    }
    // Ready on the first frame that shows the table (a hidden tab draws no frame: then soon).
    const ready = () => {
      window.__harnessReady = true;
      document.documentElement.dataset.ready = "1";
    };
    requestAnimationFrame(ready);
    setTimeout(ready, 250);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
