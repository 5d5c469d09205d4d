// CSV as RFC 4180 writes it (quotes, doubled quotes, newlines in quotes),
// with the delimiter guessed from the first line (comma, semicolon or tab).

export function parseCsv(text) {
  text = text.replace(/^\uFEFF/, "");
  const firstLine = text.split(/\r?\n/, 1)[0] ?? "";
  const delimiter = [",", ";", "\t"].reduce((best, d) =>
    firstLine.split(d).length > firstLine.split(best).length ? d : best,
  );
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else {
        if (c === "\n") line++;
        field += c;
      }
    } else if (c === '"' && field === "") quoted = true;
    else if (c === delimiter) {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push({ line: rowLine, cells: row });
      row = [];
      field = "";
      line++;
      rowLine = line;
    } else field += c;
  }
  if (field !== "" || row.length) {
    row.push(field);
    rows.push({ line: rowLine, cells: row });
  }
  return rows.filter((r) => r.cells.some((cell) => cell.trim() !== ""));
}

const COLUMNS = {
  phone: "phone",
  operatorcode: "operatorCode",
  operator_code: "operatorCode",
  "operator code": "operatorCode",
  operator: "operatorCode",
  code: "operatorCode",
  tag: "tag",
  timezone: "timezone",
  time_zone: "timezone",
  "time zone": "timezone",
  tz: "timezone",
  optedout: "optedOut",
  opted_out: "optedOut",
  "opted out": "optedOut",
  "opted-out": "optedOut",
  stop: "optedOut",
};

// An opted-out cell: yes/true/1/x (or any date) puts the phone on the stop list.
const NO = new Set(["", "0", "no", "false", "n", "f"]);

const DEFAULT_ORDER = ["phone", "operatorCode", "tag", "timezone"];

// Rows of ClientInput, each with the CSV line it came from. A header row is
// recognised by a "phone" column; without one the columns are
// phone, operatorCode, tag, timezone.
export function clientsFromCsv(text) {
  const rows = parseCsv(text);
  if (!rows.length) return { clients: [], header: false, unknown: [] };
  const names = rows[0].cells.map((cell) => COLUMNS[cell.trim().toLowerCase()]);
  const header = names.includes("phone");
  const order = header ? names : DEFAULT_ORDER;
  const unknown = header
    ? rows[0].cells.filter((_, i) => names[i] === undefined).map((cell) => cell.trim())
    : [];
  const clients = rows.slice(header ? 1 : 0).map(({ line, cells }) => {
    const input = { phone: "" };
    order.forEach((name, i) => {
      const value = (cells[i] ?? "").trim();
      if (name === "phone") input.phone = value;
      else if (name === "optedOut") input.optedOut = !NO.has(value.toLowerCase());
      // Left out, not empty: the API then applies its defaults.
      else if (name && value !== "") input[name] = value;
    });
    return { line, input };
  });
  return { clients, header, unknown };
}
