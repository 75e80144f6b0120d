// SuperKart web page: the form is generated from GET /v1/schema, so it never restates a column,
// a category or a bound; the API validates and this page shows its messages as they come.
"use strict";

const $ = (id) => document.getElementById(id);
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
let schema = null;
let scoredFile = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function fetchJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = { detail: `unexpected ${response.status} answer from ${url}`, errors: [] };
  }
  return { status: response.status, body };
}

function boundsText(column) {
  const parts = [];
  if (column.minimum !== undefined) parts.push(`${column.exclusive_minimum ? ">" : ">="} ${column.minimum}`);
  if (column.maximum !== undefined) parts.push(`<= ${column.maximum}`);
  return parts.join(" and ");
}

// --- the generated form -------------------------------------------------------------

function storeColumns() {
  return new Set(Object.keys(schema.store_attributes));
}

function inputFor(column, locked) {
  const id = `field-${column.name}`;
  if (column.kind === "category") {
    const aliases = (schema.aliases || {})[column.name] || {};
    const select = el("select", { id, name: column.name, disabled: locked });
    for (const value of column.categories) {
      const label = aliases[value] ? `${value} (= ${aliases[value]})` : value;
      select.append(el("option", { value }, label));
    }
    return select;
  }
  if (column.kind === "id") {
    return el("input", { id, name: column.name, type: "text", placeholder: "optional, e.g. FD1234", autocomplete: "off" });
  }
  const integer = column.kind === "integer";
  return el("input", {
    id,
    name: column.name,
    type: "number",
    step: integer ? "1" : "any",
    min: column.exclusive_minimum ? undefined : column.minimum,
    max: column.maximum,
    placeholder: boundsText(column),
    disabled: locked,
    inputmode: integer ? "numeric" : "decimal",
  });
}

function buildForm() {
  const fields = $("fields");
  const locked = storeColumns();
  fields.replaceChildren();
  for (const column of schema.columns) {
    if (!schema.input_columns.includes(column.name)) continue;
    const help = [column.description, column.unit && `unit: ${column.unit}`, boundsText(column)]
      .filter(Boolean)
      .join("; ");
    const wrapper = el(
      "div",
      { class: "field", "data-column": column.name },
      el("label", { for: `field-${column.name}` }, column.name, column.required ? "" : " (optional)"),
      el("span", { class: "help" }, help + (locked.has(column.name) ? " (set by the store)" : "")),
      inputFor(column, locked.has(column.name)),
      el("span", { class: "field-error", id: `error-${column.name}`, "aria-live": "polite" }),
    );
    fields.append(wrapper);
  }
  $("field-Store_Id").addEventListener("change", fillStore);
  fillStore();
}

function fillStore() {
  const store = schema.stores[$("field-Store_Id").value];
  for (const [column, attribute] of Object.entries(schema.store_attributes)) {
    $(`field-${column}`).value = String(store[attribute]);
  }
}

function readRecord() {
  const record = {};
  for (const column of schema.columns) {
    if (!schema.input_columns.includes(column.name)) continue;
    const raw = $(`field-${column.name}`).value.trim();
    if (raw === "") continue; // left out: the API names a missing required field
    record[column.name] = column.kind === "number" || column.kind === "integer" ? Number(raw) : raw;
  }
  return record;
}

function clearFieldErrors() {
  for (const node of document.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of document.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

function showErrors(target, body, listId) {
  const list = el("ul", { class: "errors", id: listId });
  const errors = body.errors && body.errors.length ? body.errors : [{ message: body.detail }];
  for (const error of errors) {
    list.append(el("li", {}, error.message));
    const input = error.field && $(`field-${error.field}`);
    if (input && target === $("record-result")) {
      input.setAttribute("aria-invalid", "true");
      $(`error-${error.field}`).textContent = error.message;
    }
  }
  target.replaceChildren(el("p", {}, "The API refused the input:"), list);
}

async function submitRecord(event) {
  event.preventDefault();
  clearFieldErrors();
  const result = $("record-result");
  result.textContent = "Predicting…";
  const { status, body } = await fetchJSON("/v1/predict", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(readRecord()),
  });
  if (status !== 200) return showErrors(result, body, "record-errors");
  result.replaceChildren(
    el("p", {}, "Predicted sales: ", el("span", { class: "prediction", id: "prediction" }, money.format(body.prediction))),
    el("p", { class: "version" }, "model version ", el("span", { id: "model-version" }, body.model_version)),
  );
}

// --- CSV upload ----------------------------------------------------------------------

function uploadForm(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  return form;
}

async function submitCsv(event) {
  event.preventDefault();
  const file = $("csv-file").files[0];
  const result = $("csv-result");
  $("csv-download").disabled = true;
  if (!file) {
    result.replaceChildren(el("ul", { class: "errors", id: "csv-errors" }, el("li", {}, "Choose a CSV file first.")));
    return;
  }
  result.textContent = "Scoring…";
  const { status, body } = await fetchJSON("/v1/predict/csv", { method: "POST", body: uploadForm(file) });
  if (status !== 200) return showErrors(result, body, "csv-errors");
  scoredFile = file;
  $("csv-download").disabled = false;
  const shown = body.predictions.slice(0, 50);
  const table = el("table", { id: "csv-predictions" }, el("tr", {}, el("th", {}, "row"), el("th", {}, "prediction")));
  shown.forEach((p, i) => table.append(el("tr", {}, el("td", { class: "num" }, String(i + 1)), el("td", { class: "num" }, money.format(p)))));
  const more = body.predictions.length > shown.length ? ` (first ${shown.length} shown)` : "";
  result.replaceChildren(
    el("p", {}, `${body.predictions.length} predictions${more}`),
    table,
    el("p", { class: "version" }, "model version ", el("span", { id: "csv-model-version" }, body.model_version)),
  );
}

async function downloadCsv() {
  const response = await fetch("/v1/predict/csv", {
    method: "POST",
    headers: { Accept: "text/csv" },
    body: uploadForm(scoredFile),
  });
  if (!response.ok) return;
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: "predictions.csv" });
  document.body.append(link);
  link.click();
  link.remove();
}

// --- start-up ------------------------------------------------------------------------

async function showModel() {
  const status = $("model-status");
  const { status: code, body } = await fetchJSON("/v1/model");
  if (code !== 200) {
    status.textContent = body.detail || "The model is not ready.";
    status.classList.add("bad");
    setTimeout(showModel, 1000);
    return;
  }
  const m = body.metrics || {};
  const family = (body.model && (body.model.family || body.model.estimator)) || "model";
  status.classList.remove("bad");
  status.textContent =
    `Model ${body.package_version} (${family}); test R² ${Number(m.r2).toFixed(3)}, ` +
    `RMSE ${money.format(m.rmse)}, MAPE ${(100 * m.mape).toFixed(1)}%`;
}

async function start() {
  const { status, body } = await fetchJSON("/v1/schema");
  if (status !== 200) {
    $("model-status").textContent = "Could not load the schema from /v1/schema.";
    return;
  }
  schema = body;
  const limits = schema.limits;
  $("csv-limits").textContent =
    `${(limits.max_csv_bytes / 1048576).toFixed(0)} MiB, ${limits.max_csv_rows.toLocaleString("en-US")} rows`;
  buildForm();
  $("record-form").addEventListener("submit", submitRecord);
  $("csv-form").addEventListener("submit", submitCsv);
  $("csv-download").addEventListener("click", downloadCsv);
  $("fields").dataset.ready = "true";
  showModel();
}

start();
