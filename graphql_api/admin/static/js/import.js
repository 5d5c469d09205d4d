// Import clients from a CSV file: a preview, then one all-or-nothing
// importClients call; a refusal is reported row by row (input.17.phone).
import { clientsFromCsv } from "./csv.js";
import { h, mount, toast } from "./dom.js";
import { gql } from "./graphql.js";
import { countOf, formatCount } from "./numbers.js";

const MAX_ROWS = 10000;
const PREVIEW_ROWS = 200;
const IMPORT = `mutation ImportClients($input: [ClientInput!]!) {
  importClients(input: $input) {
    __typename
    ... on ImportSummary { created }
    ... on ValidationError { message errors { field message } }
  }
}`;

export async function importView(root) {
  let parsed = { clients: [] };
  const file = h("input", { type: "file", id: "csv-file", accept: ".csv,text/csv,text/plain" });
  const paste = h("textarea", {
    id: "csv-text",
    rows: 5,
    placeholder: "phone,operatorCode,tag,timezone\n79001234567,,vip,Europe/Moscow",
  });
  const status = h("div", { class: "import-status", id: "import-status", role: "status" });
  const preview = h("div", { id: "import-preview" });
  const report = h("div", { id: "import-report" });
  const go = h("button", { type: "button", id: "import-go", disabled: true, onclick: () => run() }, "Import");

  file.addEventListener("change", async () => {
    const chosen = file.files?.[0];
    if (!chosen) return;
    paste.value = await chosen.text();
    read();
  });
  paste.addEventListener("input", () => read());

  function read() {
    parsed = clientsFromCsv(paste.value);
    mount(report);
    const count = parsed.clients.length;
    const notes = [];
    if (!count) notes.push("No rows yet.");
    else notes.push(`${countOf(count, "row")} read${parsed.header ? " (the first line is a header)" : " (no header: columns phone, operatorCode, tag, timezone)"}.`);
    if (parsed.unknown?.length) notes.push(`Ignored columns: ${parsed.unknown.join(", ")}.`);
    if (count > MAX_ROWS) notes.push(`At most ${formatCount(MAX_ROWS)} rows go in one import: split the file.`);
    mount(status, notes.map((n) => h("p", {}, n)));
    go.disabled = !count || count > MAX_ROWS;
    go.textContent = count ? `Import ${countOf(count, "client")}` : "Import";
    mount(preview, count ? previewTable(parsed.clients, new Map()) : null);
  }

  async function run() {
    go.disabled = true;
    mount(report, h("p", { class: "muted" }, "Importing…"));
    try {
      const { importClients: result } = await gql(IMPORT, { input: parsed.clients.map((c) => c.input) });
      if (result.__typename === "ImportSummary") {
        toast(`Imported ${countOf(result.created, "client")}`);
        mount(report, h("p", { class: "success", id: "import-done" }, `Imported ${countOf(result.created, "client")}. `, h("a", { href: "#/clients" }, "See them in the directory")));
        return;
      }
      const byRow = rowErrors(result.errors);
      mount(report, errorReport(result, byRow));
      mount(preview, previewTable(parsed.clients, byRow, true));
    } catch (error) {
      mount(report, h("p", { class: "error" }, error.message));
    } finally {
      go.disabled = !parsed.clients.length;
    }
  }

  // One report of every problem of every row, by the line of the file.
  function errorReport(result, byRow) {
    const lineOf = (index) => parsed.clients[index]?.line;
    // The API names rows by index ("repeats the phone of input.0"): the operator knows lines.
    const inLines = (message) => message.replace(/\binput\.(\d+)\b/g, (ref, n) => (lineOf(Number(n)) ? `line ${lineOf(Number(n))}` : ref));
    const lines = [];
    for (const [index, errors] of [...byRow].sort((a, b) => a[0] - b[0])) {
      const row = parsed.clients[index];
      for (const { field, message } of errors) {
        lines.push(h("tr", { dataset: { row: index } },
          h("td", { class: "num" }, row ? row.line : "—"),
          h("td", { class: "mono" }, row?.input.phone ?? ""),
          h("td", {}, field),
          h("td", {}, inLines(message))));
      }
    }
    const listed = result.errors.length;
    // "7 problems in 5 rows; nothing was imported (the first 100 are listed)": the API's count.
    const counted = /^(\d+) problems? in (\d+) rows?/.exec(result.message);
    const problems = counted ? Number(counted[1]) : listed;
    const rows = counted ? Number(counted[2]) : byRow.size;
    let summary = `Nothing was imported: ${countOf(problems, "problem")} in ${countOf(rows, "row")}`;
    summary += problems > listed ? `; the first ${formatCount(listed)} are listed by line below.` : ", listed by line below.";
    return h("div", { class: "import-errors", role: "alert" },
      h("p", { class: "error", id: "import-summary" }, summary),
      h("div", { class: "table-wrap" },
        h("table", { class: "data", id: "import-errors" },
          h("thead", {}, h("tr", {}, ["Line", "Phone", "Field", "Problem"].map((c) => h("th", {}, c)))),
          h("tbody", {}, lines))));
  }

  mount(
    root,
    h("div", { class: "view-head" }, h("h1", {}, "Import clients"), h("div", { class: "spacer" }), h("a", { class: "button ghost", href: "#/clients" }, "Back to clients")),
    h("section", { class: "card stack" },
      h("p", {}, "A CSV file with a header row naming its columns — ", h("code", {}, "phone"), ", ", h("code", {}, "operatorCode"), ", ", h("code", {}, "tag"), ", ", h("code", {}, "timezone"),
        " — or, without a header, those four columns in that order. Empty cells take the API's defaults. The import is all or nothing."),
      h("label", { class: "file" }, "CSV file ", file),
      h("label", { for: "csv-text" }, "or paste it here"),
      paste,
      status,
      h("div", { class: "buttons" }, go)),
    report,
    preview,
  );
}

// "input.17.phone" -> row 17, field "phone".
function rowErrors(errors) {
  const byRow = new Map();
  for (const { field, message } of errors) {
    const match = /^input\.(\d+)(?:\.(.+))?$/.exec(field);
    const index = match ? Number(match[1]) : -1;
    if (!byRow.has(index)) byRow.set(index, []);
    byRow.get(index).push({ field: match ? match[2] ?? "row" : field, message });
  }
  return byRow;
}

function previewTable(clients, byRow, onlyErrors = false) {
  let shown = clients.map((c, index) => ({ ...c, index }));
  if (onlyErrors) shown = shown.filter((c) => byRow.has(c.index));
  const more = shown.length - PREVIEW_ROWS;
  shown = shown.slice(0, PREVIEW_ROWS);
  const cell = (row, name) => {
    const problem = byRow.get(row.index)?.find((e) => e.field === name);
    return h("td", { class: problem ? "cell-invalid" : "", title: problem?.message }, row.input[name] ?? h("span", { class: "muted" }, "default"));
  };
  return h("div", {},
    h("h2", {}, onlyErrors ? "Rows to fix" : "Preview"),
    h("div", { class: "table-wrap" },
      h("table", { class: "data", id: onlyErrors ? "import-bad-rows" : "import-rows" },
        h("thead", {}, h("tr", {}, ["Line", "Phone", "Operator", "Tag", "Time zone"].map((c) => h("th", {}, c)))),
        h("tbody", {}, shown.map((row) =>
          h("tr", { class: byRow.has(row.index) ? "row-invalid" : "" },
            h("td", { class: "num" }, row.line),
            cell(row, "phone"), cell(row, "operatorCode"), cell(row, "tag"), cell(row, "timezone")))))),
    more > 0 ? h("p", { class: "muted" }, `…and ${formatCount(more)} more rows`) : null);
}
