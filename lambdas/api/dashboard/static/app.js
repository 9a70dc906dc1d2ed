/* The reports page: reads the orders API with the session's key and draws every figure it
 * gets as a chart (Chart.js, served by the API itself) and as a table. Text from the API only
 * ever reaches the page through textContent or canvas text, never as HTML. */
"use strict";

(function () {
  const KEY_STORAGE = "duffbeer.apiKey";
  const STATUS_COLOURS = { created: "#4a6fa5", delivered: "#1b6e3a", broken: "#b3261e" };
  const PALETTE = ["#4a6fa5", "#d98c1f", "#1b6e3a", "#8e44ad", "#b3261e", "#2a9d8f",
    "#7f8c8d", "#c0392b", "#16a085", "#34495e"];
  const state = {
    key: null,
    filters: { channel: "", date_from: "", date_to: "", as_of: "" },
    search: "",
    charts: {},
    batchesCursor: null,
    generation: 0,
  };

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const $ = (id) => document.getElementById(id);

  /* An element with text children only: strings become text nodes, never markup. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "className") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const money = (value) => Number(value).toFixed(2);
  const percent = (share) => (Number(share) * 100).toFixed(1) + " %";
  /* Times from the API are UTC ISO-8601; shown to the second. */
  const when = (iso) => {
    const time = new Date(iso);
    return Number.isNaN(time.getTime()) ? String(iso) : time.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  };
  const count = (value) => (value === null || value === undefined ? "–" : String(value));

  function setState(value) {
    document.body.dataset.state = value;
  }

  function showMessage(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.className = "message" + (kind ? " " + kind : "");
    box.hidden = !text;
  }

  /* Key handling: a #key=... fragment (what `make serve` prints) is moved to session storage
   * and removed from the address bar; fragments are never sent to the server. */
  function takeKeyFromFragment() {
    const fragment = window.location.hash.replace(/^#/, "");
    if (!fragment) return;
    const key = new URLSearchParams(fragment).get("key");
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  function askForKey(text) {
    state.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    $("reports").hidden = true;
    $("key-form").hidden = false;
    $("api-key").value = "";
    $("api-key").focus();
    showMessage(text, text.startsWith("Enter") ? "info" : "");
    setState("key-needed");
  }

  async function api(path, params) {
    const url = new URL(path, document.baseURI);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(name, value);
    }
    const response = await fetch(url, {
      headers: { "x-api-key": state.key, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.message === "string" ? body.message : response.statusText;
      throw new ApiError(response.status, message);
    }
    return body;
  }

  /* Tables ------------------------------------------------------------------------------ */

  function fillTable(id, headers, rows, emptyText) {
    const table = $(id);
    const head = table.tHead;
    const body = table.tBodies[0];
    head.replaceChildren(el("tr", {}, ...headers.map((h) =>
      el("th", { scope: "col", className: h.num ? "num" : "" }, h.label))));
    body.replaceChildren();
    if (!rows.length) {
      body.append(el("tr", {}, el("td", { colspan: String(headers.length), className: "empty" },
        emptyText || "No data for these filters.")));
      return;
    }
    for (const row of rows) {
      body.append(el("tr", {}, ...row.map((cell, i) => {
        const className = (headers[i].num ? "num" : "") + (headers[i].wrap ? " wrap" : "");
        return el("td", { className: className.trim() }, cell);
      })));
    }
  }

  /* Charts ------------------------------------------------------------------------------ */

  function drawChart(name, config) {
    if (state.charts[name]) state.charts[name].destroy();
    const base = {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: { legend: { position: "bottom" } },
    };
    config.options = Object.assign(base, config.options || {});
    state.charts[name] = new window.Chart($("chart-" + name), config);
  }

  function productLabel(product) {
    return product.product_description + " (#" + product.product_id + ")";
  }

  function renderProducts(report) {
    const channels = [];
    for (const product of report.products) {
      for (const line of product.by_channel) {
        if (!channels.includes(line.channel)) channels.push(line.channel);
      }
    }
    channels.sort();
    const salesIn = (product, channel) => {
      const line = product.by_channel.find((c) => c.channel === channel);
      return line ? line.sales : 0;
    };
    drawChart("products", {
      type: "bar",
      data: {
        labels: report.products.map(productLabel),
        datasets: channels.map((channel, i) => ({
          label: channel,
          data: report.products.map((p) => salesIn(p, channel)),
          backgroundColor: PALETTE[i % PALETTE.length],
        })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "sales" } } } },
    });
    fillTable(
      "table-products",
      [{ label: "Product", wrap: true }, ...channels.map((c) => ({ label: c, num: true })),
        { label: "Total sales", num: true }, { label: "Orders", num: true },
        { label: "Units", num: true }, { label: "Volume (l)", num: true }],
      report.products.map((p) => [productLabel(p),
        ...channels.map((c) => money(salesIn(p, c))), money(p.sales), count(p.orders),
        count(p.units), Number(p.volume_l).toFixed(3)]),
    );
    return channels;
  }

  function renderStatuses(report) {
    $("total-orders").textContent = "Distinct orders: " + report.total_orders;
    drawChart("statuses", {
      type: "bar",
      data: {
        labels: report.statuses.map((s) => s.status + " (" + percent(s.share_of_orders) + ")"),
        datasets: [{
          label: "orders",
          data: report.statuses.map((s) => s.orders),
          backgroundColor: report.statuses.map((s) => STATUS_COLOURS[s.status] || "#7f8c8d"),
        }],
      },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    fillTable(
      "table-statuses",
      [{ label: "Status" }, { label: "Orders", num: true }, { label: "Share of orders", num: true },
        { label: "Lines", num: true }, { label: "Sales", num: true }],
      report.statuses.map((s) => [s.status, count(s.orders), percent(s.share_of_orders),
        count(s.lines), money(s.sales)]),
    );
  }

  function renderDaily(report) {
    // Bars, not a line: days without current lines are absent, and a line would suggest
    // sales between the days shown.
    drawChart("daily", {
      type: "bar",
      data: {
        labels: report.days.map((d) => d.date),
        datasets: [{ label: "sales", data: report.days.map((d) => d.sales), backgroundColor: "#4a6fa5",
          maxBarThickness: 48 }],
      },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
    });
    fillTable(
      "table-daily",
      [{ label: "Date" }, { label: "Units", num: true }, { label: "Sales", num: true }],
      report.days.map((d) => [d.date, count(d.units), money(d.sales)]),
    );
  }

  function clientLabel(client) {
    return client.client_name + " (#" + client.client_id + ")";
  }

  function renderClients(report) {
    drawChart("clients", {
      type: "bar",
      data: {
        labels: report.clients.map(clientLabel),
        datasets: [{ label: "sales", data: report.clients.map((c) => c.sales), backgroundColor: "#d98c1f",
          maxBarThickness: 28 }],
      },
      options: { indexAxis: "y", plugins: { legend: { display: false } } },
    });
    fillTable(
      "table-clients",
      [{ label: "Client", wrap: true }, { label: "Orders", num: true }, { label: "Lines", num: true },
        { label: "Units", num: true }, { label: "Sales", num: true }, { label: "" }],
      report.clients.map((c) => {
        const button = el("button", { type: "button", "data-client-id": String(c.client_id) }, "Details");
        button.addEventListener("click", () => showClient(c.client_id, null));
        return [clientLabel(c), count(c.orders), count(c.lines), count(c.units), money(c.sales), button];
      }),
      state.search ? "No client matches this search." : "No clients for these filters.",
    );
  }

  async function showClient(clientId, cursor) {
    const box = $("client-detail");
    try {
      const report = await api("orders/" + encodeURIComponent(clientId),
        { include: "orders", limit: "50", cursor: cursor || "", as_of: state.filters.as_of });
      const figures = (f) => [count(f.orders), count(f.lines), count(f.units), money(f.sales)];
      const heads = [{ label: "Orders", num: true }, { label: "Lines", num: true },
        { label: "Units", num: true }, { label: "Sales", num: true }];
      const table = (caption, first, rows) => {
        const t = el("table", {}, el("caption", {}, caption), el("thead"), el("tbody"));
        t.id = "detail-" + caption.toLowerCase().replace(/[^a-z]+/g, "-");
        box.append(t);
        fillTable(t.id, [{ label: first }, ...heads], rows);
        return t;
      };
      if (!cursor) {
        box.replaceChildren(el("h3", {}, clientLabel(report)));
        box.append(el("p", { className: "figure" }, "Totals: " + report.totals.orders + " orders, "
          + report.totals.lines + " lines, " + report.totals.units + " units, sales "
          + money(report.totals.sales)));
        table("By status", "Status", report.by_status.map((s) => [s.status, ...figures(s)]));
        table("By channel", "Channel", report.by_channel.map((c) => [c.channel, ...figures(c)]));
        const orders = el("table", { id: "detail-orders" }, el("caption", {}, "Orders"), el("thead"), el("tbody"));
        box.append(orders);
        fillTable("detail-orders", [{ label: "Order" }, { label: "Date" }, { label: "Channel" },
          { label: "Lines", num: true }, { label: "Units", num: true }, { label: "Sales", num: true },
          { label: "Lines by status" }], []);
      }
      const body = $("detail-orders").tBodies[0];
      if (!cursor) body.replaceChildren();
      for (const o of report.orders.items) {
        const byStatus = Object.entries(o.lines_by_status).filter(([, n]) => n)
          .map(([s, n]) => s + ": " + n).join(", ");
        body.append(el("tr", {}, el("td", {}, String(o.order_id)), el("td", {}, o.order_date),
          el("td", {}, o.channel), el("td", { className: "num" }, count(o.lines)),
          el("td", { className: "num" }, count(o.units)), el("td", { className: "num" }, money(o.sales)),
          el("td", {}, byStatus)));
      }
      const old = $("detail-more");
      if (old) old.remove();
      if (report.orders.next_cursor) {
        const more = el("button", { type: "button", id: "detail-more" }, "More orders");
        more.addEventListener("click", () => showClient(clientId, report.orders.next_cursor));
        box.append(more);
      }
      box.hidden = false;
    } catch (error) {
      handleError(error, "client " + clientId);
    }
  }

  function renderBatches(page, append) {
    const rows = page.items.map((b) => {
      const reasons = Object.entries(b.rejects_by_reason || {}).map(([r, n]) => r + ": " + n).join(", ");
      const error = b.error
        ? el("span", {}, el("span", { className: "error-name" }, b.error.name), ": " + b.error.message)
        : "";
      const status = el("span", { className: "status status-" + b.status }, b.status);
      return [when(b.finished_at || b.recorded_at), b.file || b.batch_id, status, count(b.rows_read),
        count(b.rows_valid), count(b.rows_rejected), reasons, error,
        b.in_reports_since ? when(b.in_reports_since) : ""];
    });
    const headers = [{ label: "Finished" }, { label: "File", wrap: true }, { label: "Status" },
      { label: "Read", num: true }, { label: "Valid", num: true }, { label: "Rejected", num: true },
      { label: "Rejects by reason", wrap: true }, { label: "Error", wrap: true }, { label: "In reports since" }];
    updateAsOfOptions(page.items);
    if (append) {
      const body = $("table-batches").tBodies[0];
      for (const row of rows) {
        body.append(el("tr", {}, ...row.map((cell, i) =>
          el("td", { className: ((headers[i].num ? "num" : "") + (headers[i].wrap ? " wrap" : "")).trim() }, cell))));
      }
    } else {
      fillTable("table-batches", headers, rows, "No batch has been processed yet.");
    }
    state.batchesCursor = page.next_cursor;
    $("batches-more").hidden = !page.next_cursor;
  }

  /* Loading ----------------------------------------------------------------------------- */

  function handleError(error, what) {
    if (error instanceof ApiError && error.status === 403) {
      askForKey("The API key was refused (HTTP 403). Enter a valid API key.");
      return true;
    }
    const detail = error instanceof ApiError ? "HTTP " + error.status + ": " + error.message : String(error.message || error);
    showMessage("Could not load " + what + " (" + detail + ").");
    return false;
  }

  function updateChannelOptions(channels) {
    const select = $("channel");
    const chosen = select.value;
    const known = Array.from(select.options).map((o) => o.value);
    for (const channel of channels) {
      if (!known.includes(channel)) select.append(el("option", { value: channel }, channel));
    }
    select.value = chosen;
  }

  /* "Figures as of": the instants at which runs listed in the history entered the reports
   * (in_reports_since), newest first; each one, given as as_of, shows the reports as they
   * stood with that run. */
  function updateAsOfOptions(runs) {
    const select = $("as-of");
    const chosen = select.value;
    const instants = new Map(Array.from(select.options).filter((o) => o.value).map((o) => [o.value, o.textContent]));
    for (const run of runs) {
      if (run.in_reports_since && !instants.has(run.in_reports_since)) {
        const file = (run.file || run.batch_id).split("/").pop();
        instants.set(run.in_reports_since, when(run.in_reports_since) + " (" + file + ")");
      }
    }
    const newestFirst = Array.from(instants.keys()).sort().reverse();
    select.replaceChildren(el("option", { value: "" }, "Latest"),
      ...newestFirst.map((instant) => el("option", { value: instant }, instants.get(instant))));
    select.value = chosen;
  }

  async function loadClients() {
    renderClients(await api("top-clients",
      { channel: state.filters.channel, search: state.search, limit: "10", as_of: state.filters.as_of }));
  }

  async function loadAll() {
    const generation = ++state.generation;
    setState("loading");
    showMessage("");
    const f = state.filters;
    const tasks = [
      ["sales by product", api("sales-by-product", f).then((r) => {
        const channels = renderProducts(r);
        if (!f.channel) updateChannelOptions(channels);
      })],
      ["orders by status", api("order-status-report", f).then(renderStatuses)],
      ["daily sales", api("daily-sales", f).then(renderDaily)],
      ["top clients", loadClients()],
      ["batch history", api("batches", { limit: "20" }).then((p) => renderBatches(p, false))],
    ];
    const results = await Promise.allSettled(tasks.map(([, task]) => task));
    if (generation !== state.generation) return;
    let failed = false;
    for (let i = 0; i < results.length; i++) {
      if (results[i].status === "rejected") {
        failed = true;
        if (handleError(results[i].reason, tasks[i][0])) return;
      }
    }
    setState(failed ? "error" : "ready");
  }

  function readFilters() {
    const from = $("date-from").value;
    const to = $("date-to").value;
    if (from && to && from > to) {
      showMessage("The start date is after the end date.");
      return false;
    }
    state.filters = { channel: $("channel").value, date_from: from, date_to: to, as_of: $("as-of").value };
    return true;
  }

  function start() {
    $("reports").hidden = false;
    $("key-form").hidden = true;
    showMessage("");
    loadAll();
  }

  function wire() {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      state.key = key;
      start();
    });
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      if (readFilters()) loadAll();
    });
    $("reset-filters").addEventListener("click", () => {
      $("channel").value = "";
      $("date-from").value = "";
      $("date-to").value = "";
      $("as-of").value = "";
      readFilters();
      loadAll();
    });
    $("forget-key").addEventListener("click", () => askForKey("Enter the API key."));
    $("client-search").addEventListener("submit", async (event) => {
      event.preventDefault();
      state.search = $("client-search-text").value.trim();
      setState("loading");
      try {
        await loadClients();
        setState("ready");
      } catch (error) {
        handleError(error, "top clients");
        if (document.body.dataset.state === "loading") setState("error");
      }
    });
    $("batches-more").addEventListener("click", async () => {
      try {
        renderBatches(await api("batches", { limit: "20", cursor: state.batchesCursor }), true);
      } catch (error) {
        handleError(error, "batch history");
      }
    });
  }

  function main() {
    wire();
    takeKeyFromFragment();
    state.key = sessionStorage.getItem(KEY_STORAGE);
    if (typeof window.Chart !== "function") {
      showMessage("The chart library did not load.");
      setState("error");
      return;
    }
    if (state.key) start();
    else askForKey("Enter the API key to see the reports.");
  }

  main();
})();
