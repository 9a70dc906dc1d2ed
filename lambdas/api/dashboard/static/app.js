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
    // The currency of every amount, as /status reports it.
    currency: "EUR",
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

  /* Numbers as people read them: the browser's locale, thousands separators, money in the
   * API's currency. A table cell keeps the plain figure too (data-value), which sorting and
   * the CSV export use. */
  const formats = {};
  function numberFormat(kind) {
    const key = kind + ":" + state.currency;
    if (!formats[key]) {
      formats[key] = new Intl.NumberFormat(undefined, {
        money: { style: "currency", currency: state.currency, minimumFractionDigits: 2, maximumFractionDigits: 2 },
        count: { maximumFractionDigits: 0 },
        litres: { minimumFractionDigits: 3, maximumFractionDigits: 3 },
      }[kind]);
    }
    return formats[key];
  }
  const money = (value) => numberFormat("money").format(Number(value));
  const litres = (value) => numberFormat("litres").format(Number(value)) + " l";
  const moneyCell = (value) => ({ text: money(value), value: Number(value).toFixed(2) });
  const countCell = (value) => (value === null || value === undefined ? "–"
    : { text: numberFormat("count").format(Number(value)), value: String(value) });
  const litresCell = (value) => ({ text: numberFormat("litres").format(Number(value)), value: Number(value).toFixed(3) });
  /* Sums of amounts the API rounds to the cent (and litres to the millilitre), exact. */
  const sumMoney = (values) => values.reduce((total, v) => total + Math.round(Number(v) * 100), 0) / 100;
  const sumLitres = (values) => values.reduce((total, v) => total + Math.round(Number(v) * 1000), 0) / 1000;
  const sum = (values) => values.reduce((total, v) => total + Number(v), 0);
  const inCurrency = (what) => what + " (" + state.currency + ")";
  const percent = (share) => (Number(share) * 100).toFixed(1) + " %";
  /* Times from the API are UTC ISO-8601; shown to the second. */
  const when = (iso) => {
    const time = new Date(iso);
    return Number.isNaN(time.getTime()) ? String(iso) : time.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  };
  const count = (value) => (value === null || value === undefined ? "–" : numberFormat("count").format(Number(value)));

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
   * and removed from the address bar; fragments are never sent to the server. The rest of
   * the fragment is the view (below) and stays. */
  function takeKeyFromFragment() {
    const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    const key = params.get("key");
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    params.delete("key");
    history.replaceState(null, "", addressOf(params));
  }

  /* The view (filters, as-of instant, client search) lives in the address's fragment, so a
   * view can be bookmarked or sent, and back and forward move between views. The key never
   * does. */
  const VIEW_PARAMS = ["channel", "date_from", "date_to", "as_of", "search"];

  function addressOf(params) {
    const fragment = params.toString();
    return window.location.pathname + window.location.search + (fragment ? "#" + fragment : "");
  }

  function viewFromAddress() {
    const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    const view = {};
    for (const name of VIEW_PARAMS) view[name] = params.get(name) || "";
    return view;
  }

  function saveView() {
    const params = new URLSearchParams();
    const view = { ...state.filters, search: state.search };
    for (const name of VIEW_PARAMS) if (view[name]) params.set(name, view[name]);
    const address = addressOf(params);
    if (address !== window.location.pathname + window.location.search + window.location.hash) {
      history.pushState(null, "", address);
    }
  }

  /* Puts a view in the form (an option the lists do not have yet is added) and the state. */
  function showView(view) {
    if (view.channel) updateChannelOptions([view.channel]);
    $("channel").value = view.channel;
    $("date-from").value = view.date_from;
    $("date-to").value = view.date_to;
    if (view.as_of && !Array.from($("as-of").options).some((o) => o.value === view.as_of)) {
      $("as-of").append(el("option", { value: view.as_of }, when(view.as_of)));
    }
    $("as-of").value = view.as_of;
    $("client-search-text").value = view.search;
    $("preset").value = "";
    state.search = view.search;
    // The date inputs drop what is not a date: the view keeps what they show.
    state.filters = { channel: view.channel, date_from: $("date-from").value, date_to: $("date-to").value,
      as_of: view.as_of };
  }

  /* Date presets, in the browser's calendar: [from, to] as YYYY-MM-DD ("" for no bound). */
  function presetRange(name, today) {
    const iso = (d) => [d.getFullYear(), String(d.getMonth() + 1).padStart(2, "0"),
      String(d.getDate()).padStart(2, "0")].join("-");
    const y = today.getFullYear();
    const m = today.getMonth();
    switch (name) {
      case "this-month": return [iso(new Date(y, m, 1)), iso(today)];
      case "last-month": return [iso(new Date(y, m - 1, 1)), iso(new Date(y, m, 0))];
      case "last-30-days": return [iso(new Date(y, m, today.getDate() - 29)), iso(today)];
      case "year-to-date": return [iso(new Date(y, 0, 1)), iso(today)];
      default: return ["", ""];
    }
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

  /* A table whose column headers sort its rows (numbers by value, text in the browser's
   * collation); a chosen order (by the column's name) is kept when the table is filled
   * again. */
  function fillTable(id, headers, rows, emptyText, totals) {
    const table = $(id);
    const head = table.tHead;
    const body = table.tBodies[0];
    head.replaceChildren(el("tr", {}, ...headers.map((h) => {
      if (!h.label) return el("th", { scope: "col" });
      const button = el("button", { type: "button", className: "sort" }, h.label);
      button.addEventListener("click", () => {
        const descending = table.dataset.sortLabel === h.label && table.dataset.sortOrder !== "descending";
        table.dataset.sortLabel = h.label;
        table.dataset.sortOrder = descending ? "descending" : "ascending";
        sortRows(table, headers);
      });
      return el("th", { scope: "col", className: h.num ? "num" : "", "aria-sort": "none" }, button);
    })));
    body.replaceChildren();
    addExport(table);
    const foot = table.tFoot || table.createTFoot();
    foot.replaceChildren();
    if (!rows.length) {
      body.append(el("tr", {}, el("td", { colspan: String(headers.length), className: "empty" },
        emptyText || "No data for these filters.")));
      return;
    }
    const cellOf = (cell, i) => {
      const attrs = { className: ((headers[i].num ? "num" : "") + (headers[i].wrap ? " wrap" : "")).trim() };
      if (cell && typeof cell === "object" && !(cell instanceof Node)) {
        attrs["data-value"] = cell.value;
        return el("td", attrs, cell.text);
      }
      return el("td", attrs, cell);
    };
    for (const row of rows) body.append(el("tr", {}, ...row.map(cellOf)));
    if (totals) foot.append(el("tr", { className: "totals" }, ...totals.map(cellOf)));
    sortRows(table, headers);
  }

  /* CSV export ---------------------------------------------------------------------------- */

  /* One field of RFC 4180: quoted when it holds a comma, a quote or a line break. */
  function csvField(text) {
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  /* The table's rows (plain figures, to the cent, without separators or currency), under its
   * column names; columns without a name (buttons) are left out. Text that a spreadsheet would run as a
   * formula (names come from uploaded files) gets a leading apostrophe. */
  function tableCsv(table) {
    const heads = Array.from(table.tHead.rows[0].cells);
    const kept = heads.map((th, i) => (th.textContent.trim() ? i : -1)).filter((i) => i >= 0);
    const cell = (i, text) => (!heads[i].classList.contains("num") && /^[=+\-@\t\r]/.test(text) ? "'" + text : text);
    const lines = [kept.map((i) => csvField(heads[i].textContent.trim()))];
    for (const row of table.tBodies[0].rows) {
      if (row.cells.length !== heads.length) continue; // the "no data" row
      const figure = (i) => row.cells[i].dataset.value ?? cell(i, row.cells[i].textContent.trim());
      lines.push(kept.map((i) => csvField(figure(i))));
    }
    return lines.map((fields) => fields.join(",")).join("\r\n") + "\r\n";
  }

  /* The file's name says which table and which filters: sales-by-product_channel-Online_2026-11-17_to_2026-11-19.csv */
  function csvName(table) {
    const f = state.filters;
    const parts = [table.id.replace(/^(table|detail)-/, "")];
    if (f.channel) parts.push("channel-" + f.channel);
    if (f.date_from || f.date_to) parts.push((f.date_from || "start") + "_to_" + (f.date_to || "end"));
    if (f.as_of) parts.push("as-of-" + f.as_of);
    return parts.join("_").replace(/[^A-Za-z0-9._-]+/g, "-") + ".csv";
  }

  function addExport(table) {
    const id = table.id + "-csv";
    if ($(id)) return;
    const button = el("button", { type: "button", id, className: "export" }, "Export CSV");
    button.addEventListener("click", () => {
      const link = el("a", { href: URL.createObjectURL(new Blob([tableCsv(table)], { type: "text/csv;charset=utf-8" })),
        download: csvName(table) });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 0);
    });
    table.after(button);
  }

  function sortRows(table, headers) {
    const column = headers.findIndex((h) => h.label && h.label === table.dataset.sortLabel);
    if (column < 0) return;
    const descending = table.dataset.sortOrder === "descending";
    const heads = Array.from(table.tHead.rows[0].cells);
    const numeric = heads[column].classList.contains("num");
    const value = (row) => {
      const cell = row.cells[column];
      if (!numeric) return cell.textContent.trim();
      const number = Number(cell.dataset.value === undefined ? cell.textContent.trim() : cell.dataset.value);
      return Number.isNaN(number) ? -Infinity : number;
    };
    const body = table.tBodies[0];
    const rows = Array.from(body.rows).filter((row) => row.cells.length === heads.length);
    // A stable sort: rows with equal values keep the API's order.
    rows.sort((a, b) => {
      const x = value(a);
      const y = value(b);
      const order = numeric ? (x === y ? 0 : x < y ? -1 : 1) : x.localeCompare(y);
      return descending ? -order : order;
    });
    body.append(...rows);
    heads.forEach((th, i) => {
      if (th.hasAttribute("aria-sort")) {
        th.setAttribute("aria-sort", i === column ? (descending ? "descending" : "ascending") : "none");
      }
    });
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

  /* An axis keeps long names short, their id kept (the table and the tooltip show them whole). */
  const AXIS_LABEL_CHARS = 30;
  function axisLabel(value) {
    const label = this.getLabelForValue(value);
    if (label.length <= AXIS_LABEL_CHARS) return label;
    const [, name, id] = /^(.*?)( \(#\d+\))?$/.exec(label);
    return name.slice(0, AXIS_LABEL_CHARS - (id || "").length - 1).trimEnd() + "…" + (id || "");
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
      options: { scales: { x: { stacked: true, ticks: { callback: axisLabel } }, y: { stacked: true, title: { display: true, text: inCurrency("Sales") },
        ticks: { callback: money } } } },
    });
    const products = report.products;
    fillTable(
      "table-products",
      [{ label: "Product", wrap: true }, ...channels.map((c) => ({ label: inCurrency(c), num: true })),
        { label: inCurrency("Total sales"), num: true }, { label: "Orders", num: true },
        { label: "Units", num: true }, { label: "Volume (l)", num: true }],
      products.map((p) => [productLabel(p),
        ...channels.map((c) => moneyCell(salesIn(p, c))), moneyCell(p.sales), countCell(p.orders),
        countCell(p.units), litresCell(p.volume_l)]),
      undefined,
      // An order with several products counts under each: its orders do not add up.
      ["Total", ...channels.map((c) => moneyCell(sumMoney(products.map((p) => salesIn(p, c))))),
        moneyCell(sumMoney(products.map((p) => p.sales))), "",
        countCell(sum(products.map((p) => p.units))), litresCell(sumLitres(products.map((p) => p.volume_l)))],
    );
    $("kpi-sales").textContent = money(sumMoney(products.map((p) => p.sales)));
    $("kpi-litres").textContent = litres(sumLitres(products.map((p) => p.volume_l)));
    return channels;
  }

  function renderStatuses(report) {
    $("total-orders").textContent = "Distinct orders: " + count(report.total_orders);
    $("kpi-orders").textContent = count(report.total_orders);
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
      options: { plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "Orders" } } } },
    });
    fillTable(
      "table-statuses",
      [{ label: "Status" }, { label: "Orders", num: true }, { label: "Share of orders", num: true },
        { label: "Lines", num: true }, { label: inCurrency("Sales"), num: true }],
      report.statuses.map((s) => [s.status, countCell(s.orders), percent(s.share_of_orders),
        countCell(s.lines), moneyCell(s.sales)]),
      undefined,
      // An order with lines in several statuses counts under each: the total is the distinct one.
      ["All statuses", countCell(report.total_orders), "", countCell(sum(report.statuses.map((s) => s.lines))),
        moneyCell(sumMoney(report.statuses.map((s) => s.sales)))],
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
      options: { plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, title: { display: true, text: inCurrency("Sales") }, ticks: { callback: money } } } },
    });
    fillTable(
      "table-daily",
      [{ label: "Date" }, { label: "Units", num: true }, { label: inCurrency("Sales"), num: true }],
      report.days.map((d) => [d.date, countCell(d.units), moneyCell(d.sales)]),
      undefined,
      ["Total", countCell(sum(report.days.map((d) => d.units))), moneyCell(sumMoney(report.days.map((d) => d.sales)))],
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
      options: { indexAxis: "y", plugins: { legend: { display: false } },
        scales: { x: { title: { display: true, text: inCurrency("Sales") }, ticks: { callback: money } },
          y: { ticks: { callback: axisLabel } } } },
    });
    const clients = report.clients;
    fillTable(
      "table-clients",
      [{ label: "Client", wrap: true }, { label: "Orders", num: true }, { label: "Lines", num: true },
        { label: "Units", num: true }, { label: inCurrency("Sales"), num: true }, { label: "" }],
      clients.map((c) => {
        const button = el("button", { type: "button", "data-client-id": String(c.client_id) }, "Details");
        button.addEventListener("click", () => showClient(c.client_id, null));
        return [clientLabel(c), countCell(c.orders), countCell(c.lines), countCell(c.units), moneyCell(c.sales), button];
      }),
      state.search ? "No client matches this search." : "No clients for these filters.",
      // A client's orders are its own: the clients shown add up.
      ["The " + clients.length + " shown of " + count(report.matching_clients), countCell(sum(clients.map((c) => c.orders))),
        countCell(sum(clients.map((c) => c.lines))), countCell(sum(clients.map((c) => c.units))),
        moneyCell(sumMoney(clients.map((c) => c.sales))), ""],
    );
  }

  async function showClient(clientId, cursor) {
    const box = $("client-detail");
    try {
      const report = await api("orders/" + encodeURIComponent(clientId),
        { include: "orders", limit: "50", cursor: cursor || "", as_of: state.filters.as_of });
      const figures = (f) => [countCell(f.orders), countCell(f.lines), countCell(f.units), moneyCell(f.sales)];
      const heads = [{ label: "Orders", num: true }, { label: "Lines", num: true },
        { label: "Units", num: true }, { label: inCurrency("Sales"), num: true }];
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
    if (!append) describeFreshness(page.items);
  }

  /* Which batches the figures include, and a warning when the newest upload is not in them. */
  function describeFreshness(runs) {
    const fileOf = (run) => (run.file || run.batch_id).split("/").pop();
    const included = runs.filter((r) => r.in_reports_since)
      .sort((a, b) => (a.in_reports_since < b.in_reports_since ? 1 : -1));
    const note = $("data-as-of");
    if (state.filters.as_of) {
      note.textContent = "Figures as of " + when(state.filters.as_of) + ".";
    } else if (included.length) {
      note.textContent = "Figures include every batch published up to " + when(included[0].in_reports_since)
        + " (the latest: " + fileOf(included[0]) + ").";
    } else {
      note.textContent = runs.length ? "No batch is in the figures yet." : "No batch has been uploaded yet.";
    }
    const warning = $("freshness-warning");
    const newest = runs[0];
    warning.hidden = true;
    if (!newest) return;
    if (newest.status === "FAILED") {
      warning.textContent = "The newest upload, " + fileOf(newest) + ", failed"
        + (newest.error ? " (" + newest.error.name + ")" : "") + ": its figures are not included.";
      warning.hidden = false;
    } else if (newest.status === "PENDING" || (newest.status === "PUBLISHED" && !newest.in_reports_since)) {
      warning.textContent = "The newest upload, " + fileOf(newest)
        + ", is still being processed: its figures are not included yet.";
      warning.hidden = false;
    }
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

  /* The top clients follow every filter; without a search, their count of matching clients is
   * the headline's (with one, the headline asks for the count over the filters alone). */
  async function loadClients() {
    const report = await api("top-clients", { ...state.filters, search: state.search, limit: "10" });
    renderClients(report);
    if (!state.search) $("kpi-clients").textContent = count(report.matching_clients);
  }

  async function loadClientCount() {
    const report = await api("top-clients", { ...state.filters, limit: "1" });
    $("kpi-clients").textContent = count(report.matching_clients);
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
      ...(state.search ? [["clients", loadClientCount()]] : []),
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

  async function start() {
    $("reports").hidden = false;
    $("key-form").hidden = true;
    showMessage("");
    showView(viewFromAddress());
    try {
      const status = await api("status");
      if (status && /^[A-Z]{3}$/.test(status.currency || "")) state.currency = status.currency;
    } catch (error) {
      if (handleError(error, "the API's settings")) return;
    }
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
      if (!readFilters()) return;
      saveView();
      loadAll();
    });
    $("preset").addEventListener("change", () => {
      if (!$("preset").value) return;
      const [from, to] = presetRange($("preset").value, new Date());
      $("date-from").value = from;
      $("date-to").value = to;
      if (!readFilters()) return;
      saveView();
      loadAll();
    });
    $("date-from").addEventListener("input", () => { $("preset").value = ""; });
    $("date-to").addEventListener("input", () => { $("preset").value = ""; });
    $("reset-filters").addEventListener("click", () => {
      $("channel").value = "";
      $("date-from").value = "";
      $("date-to").value = "";
      $("as-of").value = "";
      $("preset").value = "";
      readFilters();
      saveView();
      loadAll();
    });
    window.addEventListener("popstate", () => {
      if (!state.key) return;
      showView(viewFromAddress());
      loadAll();
    });
    $("forget-key").addEventListener("click", () => askForKey("Enter the API key."));
    $("client-search").addEventListener("submit", async (event) => {
      event.preventDefault();
      state.search = $("client-search-text").value.trim();
      saveView();
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
