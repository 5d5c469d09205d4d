// Mailings: a list with status and a live progress bar for each, newest first.
import { session } from "./auth.js";
import { h, mount, statusBadge, throttle, toast } from "./dom.js";
import { progressBar, STATUSES } from "./chart.js";
import { gql, latestOnly, openExport, subscribe, shownId } from "./graphql.js";
import { actionButtons, MAILING_FIELDS, TERMINAL } from "./mailing_actions.js";
import { formatCount, rangeOf } from "./numbers.js";
import { breakdown, doneOf, progressSummary } from "./outcome.js";
import { timeElement } from "./time.js";

const PAGE_SIZE = 20;
const TOTALS = "statistics { totals { total pending sent failed expired cancelled } }";
const CSV_LINK = "query StatisticsCsv($status: MailingStatus) { statistics { csvLink(status: $status) { url expiresAt } } }";
const LIST = `query Mailings($status: MailingStatus, $first: Int, $after: String) {
  mailings(status: $status, first: $first, after: $after, orderBy: NEWEST_FIRST) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { ${MAILING_FIELDS} } }
  }
  ${TOTALS}
}`;
export const PROGRESS = `subscription Progress($id: ID!) {
  mailingProgress(id: $id) { status stats { total pending sent failed expired cancelled } }
}`;

const state = { status: "", cursors: [null] };

export async function mailingsView(root) {
  const subscriptions = new Map();
  // The mailings of the status shown, or every one.
  const csvButton = h("button", {
    type: "button",
    class: "ghost",
    id: "statistics-csv",
    onclick: () => openExport(CSV_LINK, { status: state.status || null }, (data) => data.statistics.csvLink)
      .catch((e) => toast(e.message, "error")),
  }, "Statistics CSV");
  const table = h("div", { class: "table-wrap" });
  const totals = h("div", { class: "totals", id: "totals" });
  const summary = h("span", { class: "muted" });
  const pager = h("div", { class: "pager" });
  const statusFilter = h(
    "select",
    { id: "status-filter", onchange: () => { state.status = statusFilter.value; state.cursors = [null]; load(); } },
    h("option", { value: "" }, "Every status"),
    ["SCHEDULED", "RUNNING", "PAUSED", "FINISHED", "CANCELLED"].map((s) => h("option", { value: s, selected: state.status === s }, s)),
  );

  function unsubscribeAll() {
    for (const stop of subscriptions.values()) stop();
    subscriptions.clear();
  }

  const list = latestOnly();
  async function load() {
    unsubscribeAll();
    const page = state.cursors.length - 1;
    let data;
    try {
      data = await list(LIST, { status: state.status || null, first: PAGE_SIZE, after: state.cursors[page] });
    } catch (error) {
      mount(table, h("p", { class: "error" }, error.message));
      return;
    }
    const { totalCount, pageInfo, edges } = data.mailings;
    showTotals(data.statistics.totals);
    summary.textContent = totalCount ? rangeOf(page * PAGE_SIZE + 1, page * PAGE_SIZE + edges.length, totalCount) : "";
    const rows = edges.map((e) => row(e.node));
    mount(
      table,
      edges.length
        ? h("table", { class: "data", id: "mailings-table" },
            h("thead", {}, h("tr", {}, ["ID", "Text", "Status", "Start", "End", "Progress", ""].map((c) => h("th", {}, c)))),
            h("tbody", {}, rows))
        : h("div", { class: "empty" },
            h("p", {}, state.status ? `No ${state.status} mailings.` : "No mailings yet."),
            session.canMutate ? h("a", { class: "button", href: "#/mailings/new" }, "Create the first one") : null),
    );
    mount(
      pager,
      h("button", { type: "button", disabled: page === 0, onclick: () => { state.cursors.pop(); load(); } }, "← Previous"),
      h("button", { type: "button", disabled: !pageInfo.hasNextPage, onclick: () => { state.cursors.push(pageInfo.endCursor); load(); } }, "Next →"),
    );
    for (const { node } of edges) if (!TERMINAL.has(node.status)) watch(node);
  }

  function showTotals(t) {
    mount(totals, STATUSES.map((key) => h("div", { class: `total total-${key}` }, h("strong", {}, formatCount(t[key])), h("span", {}, key))));
  }

  // The totals cover every mailing; re-read them as the watched ones move.
  const refreshTotals = throttle(async () => {
    try {
      showTotals((await gql(`query Totals { ${TOTALS} }`)).statistics.totals);
    } catch {
      // The next event tries again.
    }
  }, 2000);

  function row(mailing) {
    const tr = h("tr", { dataset: { id: mailing.id, status: mailing.status } });
    fill(tr, mailing);
    return tr;
  }

  function fill(tr, mailing) {
    tr.dataset.status = mailing.status;
    mount(
      tr,
      h("td", { class: "num" }, h("a", { href: `#/mailings/${mailing.id}` }, shownId(mailing.id))),
      h("td", { class: "text-cell" }, h("a", { href: `#/mailings/${mailing.id}` }, mailing.text.length > 70 ? `${mailing.text.slice(0, 70)}…` : mailing.text)),
      h("td", {}, statusBadge(mailing.status)),
      h("td", { class: "muted nowrap" }, timeElement(mailing.startAt)),
      h("td", { class: "muted nowrap" }, timeElement(mailing.endAt)),
      h("td", { class: "progress-cell" }, progressBar(mailing.stats, progressSummary(mailing.status, mailing.stats)),
        h("span", { class: "progress-text" }, `${formatCount(doneOf(mailing.stats))} / ${formatCount(mailing.stats.total)}`),
        h("span", { class: "progress-breakdown" }, breakdown(mailing.stats))),
      h("td", { class: "actions" }, h("div", { class: "row-actions" }, actionButtons(mailing, () => load(), { small: true }))),
    );
  }

  function watch(mailing) {
    const current = { ...mailing };
    const stop = subscribe(PROGRESS, { id: mailing.id }, {
      next: ({ mailingProgress: event }) => {
        current.status = event.status;
        current.stats = event.stats;
        const tr = table.querySelector(`tr[data-id="${mailing.id}"]`);
        if (tr) fill(tr, current);
        refreshTotals();
      },
      error: () => subscriptions.delete(mailing.id),
      complete: () => subscriptions.delete(mailing.id),
    });
    subscriptions.set(mailing.id, stop);
  }

  mount(
    root,
    h("div", { class: "view-head" },
      h("h1", {}, "Mailings"),
      summary,
      h("div", { class: "spacer" }),
      h("label", { class: "filter inline" }, h("span", {}, "Status"), statusFilter),
      csvButton,
      session.canMutate ? h("a", { class: "button", id: "new-mailing", href: "#/mailings/new" }, "New mailing") : null),
    totals,
    table,
    pager,
  );
  await load();
  return unsubscribeAll;
}
