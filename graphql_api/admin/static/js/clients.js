// The client directory: a paged, filterable table; create, edit, delete.
import { session } from "./auth.js";
import { debounce, h, mount, splitList, toast } from "./dom.js";
import { banner, clearErrors, field, formBanner, showErrors } from "./forms.js";
import { gql, latestOnly, shownId } from "./graphql.js";
import { rangeOf } from "./numbers.js";
import { browserZone, timeElement, zoneNames } from "./time.js";

const PAGE_SIZE = 25;
const CLIENT_FIELDS = "id phone operatorCode tag timezone createdAt updatedAt optedOutAt";
const RESULT = `__typename
  ... on Client { ${CLIENT_FIELDS} }
  ... on ValidationError { message errors { field message } }
  ... on NotFoundError { message }`;

const LIST = `query Clients($filter: ClientFilterInput, $timezone: String, $optedOut: Boolean, $first: Int, $after: String) {
  clients(filter: $filter, timezone: $timezone, optedOut: $optedOut, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { ${CLIENT_FIELDS} } }
  }
}`;
const CREATE = `mutation CreateClient($input: ClientInput!) { createClient(input: $input) { ${RESULT} } }`;
const UPDATE = `mutation UpdateClient($id: ID!, $input: ClientPatch!) { updateClient(id: $id, input: $input) { ${RESULT} } }`;
const OPT_OUT = `mutation OptOutClients($phones: [String!]!) {
  optOutClients(phones: $phones) {
    __typename
    ... on OptOutSummary { cancelledMessages }
    ... on ValidationError { message }
  }
}`;
const OPT_IN = `mutation OptInClient($id: ID!) {
  optInClient(id: $id) { __typename ... on Client { id } ... on Error { message } }
}`;
const DELETE = `mutation DeleteClient($id: ID!) {
  deleteClient(id: $id) { __typename ... on Deleted { id } ... on NotFoundError { message } }
}`;

// Kept across visits, so coming back from an edit shows the same page.
const state = { codes: "", tags: "", timezone: "", optedOut: "", cursors: [null] };

// Suggestions: the browser's zone names at once, then the API's own list, since
// browsers still list old names (Asia/Calcutta) that the API refuses.
export function zoneDatalist() {
  let list = document.getElementById("zones");
  if (!list) {
    list = h("datalist", { id: "zones" }, zoneNames().map((zone) => h("option", { value: zone })));
    document.body.append(list);
    gql("query TimeZones { timeZones }").then(
      ({ timeZones }) => {
        const names = timeZones.includes(browserZone) ? [browserZone, ...timeZones] : timeZones;
        list.replaceChildren(...[...new Set(names)].map((zone) => h("option", { value: zone })));
      },
      () => {}, // only suggestions: the browser's names stay
    );
  }
  return "zones";
}

export async function clientsView(root) {
  const table = h("div", { class: "table-wrap" });
  const summary = h("span", { class: "muted", id: "clients-count" });
  const pager = h("div", { class: "pager" });

  // One request a pause in typing, whichever fields changed, and the last
  // one asked is the one shown.
  const list = latestOnly();
  const filters = h(
    "form",
    {
      class: "filters",
      id: "client-filters",
      onsubmit: (e) => e.preventDefault(),
      oninput: debounce(() => {
        for (const input of filters.querySelectorAll("input, select")) state[input.name] = input.value;
        state.cursors = [null];
        load();
      }, 250),
    },
    filterInput("Operator codes", "codes", "e.g. 900, 916"),
    filterInput("Tags", "tags", "e.g. vip, new"),
    filterInput("Time zone", "timezone", "any", { list: zoneDatalist() }),
    h(
      "label",
      { class: "filter" },
      h("span", {}, "Opted out"),
      h(
        "select",
        { name: "optedOut", id: "client-opted-out-filter" },
        [["", "any"], ["yes", "opted out"], ["no", "accepting"]].map(([value, label]) =>
          h("option", { value, selected: state.optedOut === value }, label),
        ),
      ),
    ),
    h("button", { type: "button", class: "ghost", onclick: () => resetFilters() }, "Clear"),
  );

  function filterInput(label, key, placeholder, extra = {}) {
    const input = h("input", { name: key, value: state[key], placeholder, autocomplete: "off", ...extra });
    return h("label", { class: "filter" }, h("span", {}, label), input);
  }

  function resetFilters() {
    Object.assign(state, { codes: "", tags: "", timezone: "", optedOut: "", cursors: [null] });
    for (const input of filters.querySelectorAll("input, select")) input.value = "";
    load();
  }

  async function load() {
    const page = state.cursors.length - 1;
    const variables = {
      filter: { operatorCodes: splitList(state.codes), tags: splitList(state.tags) },
      timezone: state.timezone.trim() || null,
      optedOut: state.optedOut === "" ? null : state.optedOut === "yes",
      first: PAGE_SIZE,
      after: state.cursors[page],
    };
    let data;
    try {
      data = await list(LIST, variables);
    } catch (error) {
      mount(table, h("p", { class: "error" }, error.message));
      return;
    }
    const { totalCount, pageInfo, edges } = data.clients;
    const from = page * PAGE_SIZE;
    summary.textContent = totalCount
      ? rangeOf(from + 1, from + edges.length, totalCount)
      : "No clients match";
    mount(table, renderTable(edges.map((e) => e.node)));
    mount(
      pager,
      h("button", { type: "button", disabled: page === 0, onclick: () => { state.cursors.pop(); load(); } }, "← Previous"),
      h("button", {
        type: "button",
        disabled: !pageInfo.hasNextPage,
        onclick: () => { state.cursors.push(pageInfo.endCursor); load(); },
      }, "Next →"),
    );
  }

  function renderTable(clients) {
    return h(
      "table",
      { class: "data", id: "clients-table" },
      h("thead", {}, h("tr", {}, ["ID", "Phone", "Operator", "Tag", "Time zone", "Created", "Opted out", session.canMutate ? "" : null]
        .filter((c) => c !== null).map((c) => h("th", {}, c)))),
      h(
        "tbody",
        {},
        clients.map((client) =>
          h(
            "tr",
            { dataset: { id: client.id } },
            h("td", { class: "num" }, shownId(client.id)),
            h("td", { class: "mono" }, client.phone),
            h("td", { class: "mono" }, client.operatorCode),
            h("td", {}, client.tag ? h("span", { class: "tag" }, client.tag) : h("span", { class: "muted" }, "—")),
            h("td", {}, client.timezone),
            h("td", { class: "muted nowrap" }, timeElement(client.createdAt)),
            h("td", { class: "nowrap opted-out" }, client.optedOutAt ? timeElement(client.optedOutAt) : h("span", { class: "muted" }, "—")),
            session.canMutate
              ? h(
                  "td",
                  { class: "actions" },
                  h("button", { type: "button", class: "small ghost", onclick: () => openClientForm(client, load) }, "Edit"),
                  client.optedOutAt
                    ? h("button", { type: "button", class: "small ghost", onclick: () => optIn(client) }, "Opt in")
                    : h("button", { type: "button", class: "small ghost", onclick: () => optOut(client) }, "Opt out"),
                  h("button", { type: "button", class: "small danger", onclick: () => remove(client) }, "Delete"),
                )
              : null,
          ),
        ),
      ),
    );
  }

  async function optOut(client) {
    if (!confirm(`Opt ${client.phone} out? It gets no more messages; its waiting ones are cancelled.`)) return;
    try {
      const { optOutClients } = await gql(OPT_OUT, { phones: [client.phone] });
      if (optOutClients.__typename === "OptOutSummary") {
        toast(`${client.phone} opted out; ${optOutClients.cancelledMessages} waiting messages cancelled`);
      } else toast(optOutClients.message, "error");
    } catch (error) {
      toast(error.message, "error");
    }
    load();
  }

  async function optIn(client) {
    if (!confirm(`Opt ${client.phone} back in? It matches mailings again from now on.`)) return;
    try {
      const { optInClient } = await gql(OPT_IN, { id: client.id });
      if (optInClient.__typename === "Client") toast(`${client.phone} opted in`);
      else toast(optInClient.message, "error");
    } catch (error) {
      toast(error.message, "error");
    }
    load();
  }

  async function remove(client) {
    if (!confirm(`Delete client ${client.phone}? Its pending messages are cancelled.`)) return;
    try {
      const { deleteClient } = await gql(DELETE, { id: client.id });
      if (deleteClient.__typename === "Deleted") toast(`Client ${client.phone} deleted`);
      else toast(deleteClient.message, "error");
    } catch (error) {
      toast(error.message, "error");
    }
    load();
  }

  mount(
    root,
    h(
      "div",
      { class: "view-head" },
      h("h1", {}, "Clients"),
      summary,
      h("div", { class: "spacer" }),
      session.canMutate
        ? [
            h("a", { class: "button ghost", href: "#/clients/import" }, "Import CSV"),
            h("button", { type: "button", id: "new-client", onclick: () => openClientForm(null, load) }, "New client"),
          ]
        : null,
    ),
    filters,
    table,
    pager,
  );
  await load();
}

// A dialog to create (client = null) or edit a client.
function openClientForm(client, saved) {
  const phone = h("input", { name: "phone", value: client?.phone ?? "", required: true, inputmode: "numeric", placeholder: "7XXXXXXXXXX", autocomplete: "off" });
  const code = h("input", { name: "operatorCode", value: client?.operatorCode ?? "", placeholder: "from the phone", inputmode: "numeric", autocomplete: "off" });
  const tag = h("input", { name: "tag", value: client?.tag ?? "", maxlength: 200, autocomplete: "off" });
  const zone = h("input", { name: "timezone", value: client?.timezone ?? "UTC", list: zoneDatalist(), autocomplete: "off" });
  const submit = h("button", { type: "submit" }, client ? "Save" : "Create");
  const form = h(
    "form",
    { class: "stack", id: "client-form", novalidate: true },
    h("h2", {}, client ? `Client ${shownId(client.id)}` : "New client"),
    formBanner(),
    field("Phone", phone, { path: "input.phone", hint: "11 digits starting with 7" }),
    field("Operator code", code, { path: "input.operatorCode", hint: "3 digits; left empty, the phone's digits 2–4" }),
    field("Tag", tag, { path: "input.tag", hint: "Any label up to 64 characters; may be empty" }),
    field("Time zone", zone, { path: "input.timezone", hint: "An IANA name such as Europe/Moscow" }),
    h("div", { class: "buttons" },
      h("button", { type: "button", class: "ghost", onclick: () => dialog.close() }, "Cancel"),
      submit),
  );
  const dialog = h("dialog", { class: "modal" }, form);
  dialog.addEventListener("close", () => dialog.remove());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const input = {
      phone: phone.value.trim(),
      operatorCode: code.value.trim() || null,
      tag: tag.value.trim(),
      timezone: zone.value.trim() || null,
    };
    submit.disabled = true;
    try {
      const data = client
        ? (await gql(UPDATE, { id: client.id, input })).updateClient
        : (await gql(CREATE, { input })).createClient;
      if (data.__typename === "Client") {
        dialog.close();
        toast(client ? `Client ${data.phone} saved` : `Client ${data.phone} created`);
        saved();
      } else if (data.__typename === "ValidationError") showErrors(form, data.errors);
      else banner(form, [data.message]);
    } catch (error) {
      banner(form, [error.message]);
    } finally {
      submit.disabled = false;
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  phone.focus();
}
