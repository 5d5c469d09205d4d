// Create or edit a mailing: text with a character count, start and end in
// the operator's time zone, the filter with a live count of its audience,
// and the send window.
import { debounce, h, mount, splitList, toast } from "./dom.js";
import { banner, clearErrors, field, formBanner, showErrors } from "./forms.js";
import { gql, latestOnly, shownId } from "./graphql.js";
import { zoneDatalist } from "./clients.js";
import { MAILING_FIELDS } from "./mailing_actions.js";
import { countOf } from "./numbers.js";
import { clockTime, isZone, isoToLocal, localToIso, nowLocal, operatorZone, setOperatorZone } from "./time.js";

const MAX_TEXT = 1000;
// Times are typed as every time on the page reads, 24-hour ISO, whatever the
// browser's locale (its native pickers would show 12-hour times in en-US).
const INSTANT_FORMAT = "YYYY-MM-DD HH:MM";
const BAD_INSTANT = `must be a date and a 24-hour time, ${INSTANT_FORMAT}`;
const BAD_CLOCK = "must be a 24-hour time, HH:MM";
const instantInput = (name) => h("input", { name, required: true, placeholder: INSTANT_FORMAT, autocomplete: "off", spellcheck: false, class: "instant" });
const clockInput = (name, value) => h("input", { name, value, placeholder: "HH:MM", autocomplete: "off", spellcheck: false, class: "clock" });
const GET = `query Mailing($id: ID!) { mailing(id: $id) { ${MAILING_FIELDS} } }`;
const COUNT = `query Audience($filter: ClientFilterInput) { clients(filter: $filter, first: 0) { totalCount } }`;
const RESULT = `__typename
  ... on Mailing { id status }
  ... on ValidationError { message errors { field message } }
  ... on NotFoundError { message }
  ... on ConflictError { message }`;
const CREATE = `mutation CreateMailing($input: MailingInput!) { createMailing(input: $input) { ${RESULT} } }`;
const UPDATE = `mutation UpdateMailing($id: ID!, $input: MailingPatch!) { updateMailing(id: $id, input: $input) { ${RESULT} } }`;

export async function mailingFormView(root, { id } = {}) {
  let mailing = null;
  if (id) {
    mailing = (await gql(GET, { id })).mailing;
    if (!mailing) {
      mount(root, h("p", { class: "error" }, `Mailing ${shownId(id)} not found.`), h("a", { href: "#/mailings" }, "Back to mailings"));
      return;
    }
  }
  let zone = operatorZone();

  const text = h("textarea", { name: "text", rows: 5, required: true }, mailing?.text ?? "");
  const counter = h("span", { class: "counter", id: "text-count" });
  const zoneInput = h("input", { name: "zone", value: zone, list: zoneDatalist(), autocomplete: "off" });
  const start = instantInput("startAt");
  const end = instantInput("endAt");
  const codes = h("input", { name: "operatorCodes", value: mailing?.filter.operatorCodes.join(", ") ?? "", placeholder: "any", autocomplete: "off" });
  const tags = h("input", { name: "tags", value: mailing?.filter.tags.join(", ") ?? "", placeholder: "any", autocomplete: "off" });
  const audience = h("p", { class: "audience", id: "audience", role: "status" });
  const windowOn = h("input", { type: "checkbox", name: "windowOn", checked: Boolean(mailing?.sendWindow) });
  const windowStart = clockInput("windowStart", mailing?.sendWindow?.start ?? "09:00");
  const windowEnd = clockInput("windowEnd", mailing?.sendWindow?.end ?? "21:00");
  const submit = h("button", { type: "submit", id: "save-mailing" }, mailing ? "Save changes" : "Create mailing");

  start.value = mailing ? isoToLocal(mailing.startAt, zone) : nowLocal(zone);
  end.value = mailing ? isoToLocal(mailing.endAt, zone) : nowLocal(zone, 24 * 60);
  // What the form started with, so an edit sends only what changed.
  const initial = () => snapshot();
  let original = null;

  // Empty is only a mistake once the operator has typed, or tried to save.
  let touched = false;
  function updateCounter() {
    const n = text.value.length;
    counter.textContent = `${n} / ${MAX_TEXT}`;
    counter.classList.toggle("over", n > MAX_TEXT || (touched && n === 0));
  }

  const count = latestOnly();
  const countAudience = debounce(async () => {
    const filter = { operatorCodes: splitList(codes.value), tags: splitList(tags.value) };
    try {
      const { clients } = await count(COUNT, { filter });
      audience.textContent = `Matches ${countOf(clients.totalCount, "client")} now`;
      audience.classList.toggle("warn", clients.totalCount === 0);
    } catch (error) {
      audience.textContent = error.message;
    }
  }, 250);

  function syncWindow() {
    windowStart.disabled = windowEnd.disabled = !windowOn.checked;
  }

  zoneInput.addEventListener("change", () => {
    const next = zoneInput.value.trim();
    if (!isZone(next)) {
      zoneInput.setCustomValidity("not a known time zone");
      zoneInput.reportValidity();
      return;
    }
    zoneInput.setCustomValidity("");
    // Keep the same instants, shown in the new zone.
    const startIso = localToIso(start.value, zone);
    const endIso = localToIso(end.value, zone);
    zone = next;
    setOperatorZone(zone);
    if (startIso) start.value = isoToLocal(startIso, zone);
    if (endIso) end.value = isoToLocal(endIso, zone);
  });
  text.addEventListener("input", () => { touched = true; updateCounter(); });
  codes.addEventListener("input", countAudience);
  tags.addEventListener("input", countAudience);
  windowOn.addEventListener("change", syncWindow);

  function snapshot() {
    return {
      text: text.value,
      startAt: localToIso(start.value, zone) ?? start.value,
      endAt: localToIso(end.value, zone) ?? end.value,
      filter: { operatorCodes: splitList(codes.value), tags: splitList(tags.value) },
      sendWindow: windowOn.checked
        ? { start: clockTime(windowStart.value) ?? windowStart.value, end: clockTime(windowEnd.value) ?? windowEnd.value }
        : null,
    };
  }

  function patch(values) {
    const changes = {};
    for (const [key, value] of Object.entries(values)) {
      const before = original[key];
      const same = key === "startAt" || key === "endAt"
        ? Date.parse(before) === Date.parse(value)
        : JSON.stringify(before) === JSON.stringify(value);
      if (!same) changes[key] = value;
    }
    return changes;
  }

  const form = h(
    "form",
    { class: "stack card", id: "mailing-form", novalidate: true },
    formBanner(),
    field("Text", text, { path: "input.text", extra: counter, hint: `1 to ${MAX_TEXT} characters` }),
    h("div", { class: "row" },
      field("Start", start, { path: "input.startAt" }),
      field("End", end, { path: "input.endAt" }),
      field("Time zone of these times", zoneInput, { hint: "Yours by default; sent to the API as an offset" })),
    h("fieldset", {},
      h("legend", {}, "Who gets it"),
      h("div", { class: "row" },
        field("Operator codes", codes, { path: "input.filter.operatorCodes", hint: "Comma-separated; empty means any" }),
        field("Tags", tags, { path: "input.filter.tags", hint: "Comma-separated; empty means any" })),
      audience),
    h("fieldset", { class: "field", dataset: { field: "input.sendWindow" } },
      h("legend", {}, "Send window"),
      h("label", { class: "check" }, windowOn, " Only send between these times of day, in each client's own time zone"),
      h("div", { class: "row" },
        field("From", windowStart, { path: "input.sendWindow.start" }),
        field("Until", windowEnd, { path: "input.sendWindow.end", hint: "Before “From” wraps past midnight" })),
      h("p", { class: "field-error", role: "alert", hidden: true })),
    h("div", { class: "buttons" },
      h("a", { class: "button ghost", href: mailing ? `#/mailings/${mailing.id}` : "#/mailings" }, "Cancel"),
      submit),
  );

  // What the page knows the API cannot read (a time typed wrong), said in the
  // form's own terms, beside whatever else the API finds: all at once.
  function typedWrong() {
    const found = [];
    if (!localToIso(start.value, zone)) found.push({ field: "input.startAt", message: BAD_INSTANT });
    if (!localToIso(end.value, zone)) found.push({ field: "input.endAt", message: BAD_INSTANT });
    if (windowOn.checked) {
      if (!clockTime(windowStart.value)) found.push({ field: "input.sendWindow.start", message: BAD_CLOCK });
      if (!clockTime(windowEnd.value)) found.push({ field: "input.sendWindow.end", message: BAD_CLOCK });
    }
    return found;
  }
  function withTypedWrong(errors, wrong) {
    const ours = new Set(wrong.map((e) => e.field));
    return [...wrong, ...errors.filter((e) => !ours.has(e.field))];
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    touched = true;
    updateCounter();
    const values = snapshot();
    const wrong = typedWrong();
    submit.disabled = true;
    try {
      let result;
      if (mailing) {
        const changes = patch(values);
        if (!Object.keys(changes).length) {
          location.hash = `#/mailings/${mailing.id}`;
          return;
        }
        result = (await gql(UPDATE, { id: mailing.id, input: changes })).updateMailing;
      } else {
        result = (await gql(CREATE, { input: values })).createMailing;
      }
      if (result.__typename === "Mailing") {
        toast(mailing ? `Mailing ${shownId(result.id)} saved` : `Mailing ${shownId(result.id)} created: ${result.status}`);
        location.hash = `#/mailings/${result.id}`;
      } else if (result.__typename === "ValidationError") showErrors(form, withTypedWrong(result.errors, wrong));
      else banner(form, [result.message]);
    } catch (error) {
      banner(form, [error.message]);
    } finally {
      submit.disabled = false;
    }
  });

  mount(
    root,
    h("div", { class: "view-head" },
      h("h1", {}, mailing ? `Edit mailing ${mailing.id}` : "New mailing")),
    form,
  );
  updateCounter();
  syncWindow();
  original = initial();
  countAudience();
  text.focus();
}
