// A mailing's page: its counts by status as a chart that follows the
// mailingProgress subscription, its messages, filterable by status, and (for
// operators, who may read the audit trail) its history.
import { session } from "./auth.js";
import { h, mount, statusBadge, throttle, toast } from "./dom.js";
import { progressBar, progressLine, statusBars } from "./chart.js";
import { gql, latestOnly, openExport, subscribe, shownId } from "./graphql.js";
import { actionButtons, MAILING_FIELDS, TERMINAL } from "./mailing_actions.js";
import { PROGRESS } from "./mailings.js";
import { formatCount, rangeOf } from "./numbers.js";
import { doneOf, progressSummary } from "./outcome.js";
import { formatInstant, formatWallTime, operatorZone, timeElement } from "./time.js";
import { paceText, TIMELINE_FIELDS, timelinePoints, withLive } from "./timeline.js";

const PAGE_SIZE = 50;
// While a mailing runs, its timeline (rate, estimated end) is read again as
// its counts move, at most about once a second (less often for a big one:
// reading it scans the mailing's index), and every 5 s while nothing moves,
// so a rate that fell to nothing says so.
const refreshEvery = (total) => Math.min(30000, 5000 + total / 50);
const refreshAtMost = (total) => Math.min(10000, 1000 + total / 200);
const GET = `query Mailing($id: ID!) { mailing(id: $id) { ${MAILING_FIELDS} optedOutClients ${TIMELINE_FIELDS} } }`;
const HISTORY = `query MailingHistory($id: ID!) {
  auditLog(objectId: $id, objectType: "mailing", first: 50) {
    totalCount
    edges { node { id at actor actorName operation changes { field before after } } }
  }
}`;
const CSV_LINK = "query MessagesCsv($id: ID!) { mailing(id: $id) { messagesCsvLink { url expiresAt } } }";
const TIMELINE = `query Timeline($id: ID!) { mailing(id: $id) { status stats { total pending sent failed expired cancelled } ${TIMELINE_FIELDS} } }`;
const MESSAGES = `query Messages($id: ID!, $status: MessageStatus, $first: Int, $after: String) {
  mailing(id: $id) {
    messages(status: $status, first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { id phone status attempts lastError createdAt finishedAt client { id } } }
    }
  }
}`;

export async function mailingView(root, { id }) {
  let mailing = (await gql(GET, { id })).mailing;
  if (!mailing) {
    mount(root, h("p", { class: "error" }, `Mailing ${shownId(id)} not found (or deleted).`), h("a", { href: "#/mailings" }, "Back to mailings"));
    return undefined;
  }
  let timeline = mailing.timeline;
  let timelineReadAt = Date.now();
  let live = []; // the live events since the timeline was read, as points of the line
  const messageState = { status: "", cursors: [null] };
  const head = h("div", { class: "view-head" });
  const details = h("dl", { class: "details" });
  const bars = h("div", { class: "chart", id: "status-chart" });
  const line = h("div", { class: "chart", id: "timeline-chart" });
  const pace = h("p", { class: "pace", id: "pace" });
  const liveBadge = h("span", { class: "live", id: "live" });
  const overall = h("div", { class: "overall" });
  const messages = h("div", { class: "table-wrap" });
  const messagesSummary = h("span", { class: "muted" });
  const pager = h("div", { class: "pager" });
  const statusFilter = h(
    "select",
    { id: "message-status", onchange: () => { messageState.status = statusFilter.value; messageState.cursors = [null]; loadMessages(); } },
    h("option", { value: "" }, "Every status"),
    ["PENDING", "SENT", "FAILED", "EXPIRED", "CANCELLED"].map((s) => h("option", { value: s }, s)),
  );

  function render() {
    mount(head,
      h("h1", {}, `Mailing ${shownId(mailing.id)}`),
      statusBadge(mailing.status),
      liveBadge,
      h("div", { class: "spacer" }),
      actionButtons(mailing, (changed) => {
        if (!changed) location.hash = "#/mailings";
        else {
          mailing = { ...mailing, ...changed };
          render();
          loadHistory();
          if (!stop && !TERMINAL.has(mailing.status)) follow();
          keepRefreshing();
          refreshTimeline();
        }
      }));
    const f = mailing.filter;
    const zone = operatorZone();
    mount(details,
      h("dt", {}, "Text"), h("dd", { class: "message-text" }, mailing.text),
      h("dt", {}, "Start"), h("dd", { id: "start-at" }, timeElement(mailing.startAt, zone)),
      h("dt", {}, "End"), h("dd", { id: "end-at" }, timeElement(mailing.endAt, zone)),
      h("dt", {}, "Audience"), h("dd", {},
        f.operatorCodes.length ? `operator codes ${f.operatorCodes.join(", ")}` : "any operator code",
        "; ",
        f.tags.length ? `tags ${f.tags.join(", ")}` : "any tag"),
      h("dt", {}, "Send window"), h("dd", {}, mailing.sendWindow ? `${mailing.sendWindow.start}–${mailing.sendWindow.end}, each client's local time` : "any time of day"),
      h("dt", {}, "Opted out"), h("dd", { id: "opted-out-clients" }, mailing.optedOutClients
        ? `${formatCount(mailing.optedOutClients)} matching clients left out: they opted out`
        : "none left out"),
      h("dt", {}, "Updated"), h("dd", {}, timeElement(mailing.updatedAt, zone)));
    renderStats();
  }

  function renderStats() {
    const s = mailing.stats;
    mount(bars, statusBars(s));
    const points = withLive(timelinePoints(timeline, s.total, timelineReadAt), live);
    let startLabel = "";
    let endLabel = "";
    if (points.length) {
      const first = new Date(points[0].t).toISOString();
      const last = new Date(points[points.length - 1].t).toISOString();
      // Seconds while the line spans minutes, so its two ends read apart.
      const seconds = points[points.length - 1].t - points[0].t < 10 * 60000;
      startLabel = formatInstant(first, operatorZone(), { seconds });
      endLabel = formatWallTime(last, { seconds, sameDayAs: first });
    }
    mount(line, progressLine(points, { startLabel, endLabel }));
    pace.textContent = paceText(mailing.status, timeline);
    const summary = progressSummary(mailing.status, s);
    mount(overall, progressBar(s, summary), h("span", { class: "progress-text", id: "done-count" }, summary));
  }

  function record(stats) {
    live.push({ t: Date.now(), ...stats });
  }

  // The timeline again, for the rate and the estimate, and outcomes that
  // now have their bucket.
  let refreshing = null;
  const timelineOf = latestOnly();
  let lastAsked = 0;
  let soon = null;
  function refreshAsCountsMove() {
    if (soon) return;
    const wait = Math.max(lastAsked + refreshAtMost(mailing.stats.total) - Date.now(), 0);
    soon = setTimeout(() => { soon = null; refreshTimeline(); }, wait);
  }
  async function refreshTimeline() {
    try {
      const asked = Date.now();
      lastAsked = asked;
      const data = await timelineOf(TIMELINE, { id });
      if (!data.mailing) return;
      timeline = data.mailing.timeline;
      timelineReadAt = asked;
      // Events that came while it was read are newer than its buckets.
      live = live.filter((point) => point.t >= asked);
      if (TERMINAL.has(data.mailing.status)) {
        clearInterval(refreshing);
        refreshing = null;
      }
      renderStats();
    } catch (error) {
      pace.textContent = `Timeline not refreshed: ${error.message}`;
    }
  }
  function keepRefreshing() {
    if (!refreshing && !TERMINAL.has(mailing.status)) refreshing = setInterval(refreshTimeline, refreshEvery(mailing.stats.total));
  }

  // Who did what to this mailing, newest first (the audit trail is operators' only).
  const history = h("div", { class: "table-wrap", id: "mailing-history" });
  const historyOf = latestOnly();
  async function loadHistory() {
    if (!session.canMutate) return;
    let data;
    try {
      data = await historyOf(HISTORY, { id });
    } catch (error) {
      mount(history, h("p", { class: "error" }, error.message));
      return;
    }
    const entries = data.auditLog.edges.map((e) => e.node);
    const change = (c) => h("div", {}, h("span", { class: "mono" }, c.field), `: ${c.before} → ${c.after}`);
    mount(history, entries.length
      ? h("table", { class: "data", id: "history-table" },
          h("thead", {}, h("tr", {}, ["When", "Who", "What", "Changes"].map((c) => h("th", {}, c)))),
          h("tbody", {}, entries.map((entry) => h("tr", { dataset: { id: entry.id } },
            h("td", { class: "muted nowrap" }, timeElement(entry.at)),
            h("td", { title: entry.actor }, entry.actorName || entry.actor),
            h("td", { class: "mono" }, entry.operation),
            h("td", {}, entry.changes.map(change))))))
      : h("p", { class: "empty" }, "No changes recorded."));
  }

  const messagesOf = latestOnly();
  async function loadMessages() {
    const page = messageState.cursors.length - 1;
    let data;
    try {
      data = await messagesOf(MESSAGES, { id, status: messageState.status || null, first: PAGE_SIZE, after: messageState.cursors[page] });
    } catch (error) {
      mount(messages, h("p", { class: "error" }, error.message));
      return;
    }
    if (!data.mailing) return;
    const { totalCount, pageInfo, edges } = data.mailing.messages;
    messagesSummary.textContent = totalCount ? rangeOf(page * PAGE_SIZE + 1, page * PAGE_SIZE + edges.length, totalCount) : "";
    mount(messages, edges.length
      ? h("table", { class: "data", id: "messages-table" },
          h("thead", {}, h("tr", {}, ["ID", "Phone", "Status", "Attempts", "Last error"].map((c) => h("th", {}, c)),
            h("th", { title: "When it was sent, failed, expired or cancelled" }, "Finished"))),
          h("tbody", {}, edges.map(({ node: m }) => h("tr", { dataset: { id: m.id, status: m.status } },
            h("td", { class: "num" }, m.id),
            h("td", { class: "mono" }, m.phone, m.client ? null : h("span", { class: "muted", title: "client deleted since" }, " (deleted)")),
            h("td", {}, statusBadge(m.status)),
            h("td", { class: "num" }, formatCount(m.attempts)),
            h("td", { class: "error-cell" }, m.lastError ?? ""),
            h("td", { class: "muted nowrap" }, timeElement(m.finishedAt))))))
      : h("p", { class: "empty" }, messageState.status ? `No ${messageState.status} messages.` : "No messages yet: they are made when the mailing starts."));
    mount(pager,
      h("button", { type: "button", disabled: page === 0, onclick: () => { messageState.cursors.pop(); loadMessages(); } }, "← Previous"),
      h("button", { type: "button", disabled: !pageInfo.hasNextPage, onclick: () => { messageState.cursors.push(pageInfo.endCursor); loadMessages(); } }, "Next →"));
  }

  // Messages on the first page change as the mailing goes; keep them current
  // without asking more than once a second and a half.
  const refreshMessages = throttle(() => {
    if (messageState.cursors.length === 1) loadMessages();
  }, 1500);

  let stop = null;
  function follow() {
    liveBadge.textContent = "connecting…";
    liveBadge.className = "live";
    stop = subscribe(PROGRESS, { id }, {
      next: ({ mailingProgress: event }) => {
        liveBadge.textContent = "● live";
        liveBadge.className = "live on";
        const statusChanged = event.status !== mailing.status;
        mailing = { ...mailing, status: event.status, stats: event.stats };
        record(event.stats);
        if (statusChanged) render();
        else renderStats();
        // The last change deserves no wait: the table shows the final outcome.
        if (TERMINAL.has(event.status)) loadMessages();
        else refreshMessages();
        if (statusChanged) refreshTimeline();
        else refreshAsCountsMove();
      },
      reconnecting: () => {
        liveBadge.textContent = "reconnecting…";
        liveBadge.className = "live";
      },
      error: (error) => {
        stop = null;
        liveBadge.textContent = `live updates stopped: ${error.message}`;
        liveBadge.className = "live";
      },
      complete: () => {
        stop = null;
        liveBadge.textContent = "";
        liveBadge.className = "live";
        clearInterval(refreshing);
        refreshing = null;
        refreshTimeline();
      },
    });
  }

  mount(root,
    head,
    h("div", { class: "grid" },
      h("section", { class: "card" }, details),
      h("section", { class: "card" },
        h("h2", {}, "Messages by status"),
        overall,
        bars,
        h("h3", {}, "Progress over time"),
        pace,
        line)),
    h("section", {},
      h("div", { class: "view-head" },
        h("h2", {}, "Messages"),
        messagesSummary,
        h("div", { class: "spacer" }),
        h("label", { class: "filter inline" }, h("span", {}, "Status"), statusFilter),
        h("button", { type: "button", class: "ghost", id: "messages-csv", onclick: () => openExport(CSV_LINK, { id }, (data) => data.mailing.messagesCsvLink).catch((e) => toast(e.message, "error")) }, "Download CSV")),
      messages,
      pager),
    session.canMutate ? h("section", {}, h("h2", {}, "History"), history) : null);
  render();
  loadHistory();
  await loadMessages();
  if (!TERMINAL.has(mailing.status)) {
    follow();
    keepRefreshing();
  }
  return () => {
    stop?.();
    clearInterval(refreshing);
    clearTimeout(soon);
  };
}
