// What an operator may do with a mailing in each status, and doing it.
import { session } from "./auth.js";
import { h, toast } from "./dom.js";
import { gql, shownId } from "./graphql.js";

export const TERMINAL = new Set(["FINISHED", "CANCELLED"]);
export const MAILING_FIELDS = `id text startAt endAt status createdAt updatedAt
  filter { operatorCodes tags } sendWindow { start end }
  stats { total pending sent failed expired cancelled }`;

const RESULT = `__typename
  ... on Mailing { ${MAILING_FIELDS} }
  ... on ValidationError { message errors { field message } }
  ... on NotFoundError { message }
  ... on ConflictError { message }`;

const CHANGE = {
  pause: `mutation Pause($id: ID!) { pauseMailing(id: $id) { ${RESULT} } }`,
  resume: `mutation Resume($id: ID!) { resumeMailing(id: $id) { ${RESULT} } }`,
  cancel: `mutation Cancel($id: ID!) { cancelMailing(id: $id) { ${RESULT} } }`,
};
const DELETE = `mutation DeleteMailing($id: ID!) {
  deleteMailing(id: $id) { __typename ... on Deleted { id } ... on NotFoundError { message } }
}`;

// The API refuses the others (a ConflictError); a viewer gets none.
export function allowedActions(status) {
  if (!session.canMutate) return [];
  const actions = [];
  if (!TERMINAL.has(status)) actions.push("edit");
  if (status === "SCHEDULED" || status === "RUNNING") actions.push("pause");
  if (status === "PAUSED") actions.push("resume");
  if (!TERMINAL.has(status)) actions.push("cancel");
  actions.push("delete");
  return actions;
}

const LABELS = { edit: "Edit", pause: "Pause", resume: "Resume", cancel: "Cancel", delete: "Delete" };

// Buttons for a mailing; `changed(mailing | null)` follows a change (null: deleted).
export function actionButtons(mailing, changed, { small = false } = {}) {
  return allowedActions(mailing.status).map((action) => {
    const cls = `${small ? "small " : ""}${action === "delete" || action === "cancel" ? "danger" : action === "edit" ? "ghost" : ""}`;
    if (action === "edit") {
      return h("a", { class: `button ${cls}`, href: `#/mailings/${mailing.id}/edit`, dataset: { action } }, LABELS[action]);
    }
    return h("button", { type: "button", class: cls, dataset: { action }, onclick: () => run(action, mailing, changed) }, LABELS[action]);
  });
}

async function run(action, mailing, changed) {
  if (action === "cancel" && !confirm(`Cancel mailing ${mailing.id}? Its pending messages will not be sent.`)) return;
  if (action === "delete" && !confirm(`Delete mailing ${mailing.id}? It is cancelled if still going, and hidden.`)) return;
  try {
    if (action === "delete") {
      const { deleteMailing } = await gql(DELETE, { id: mailing.id });
      if (deleteMailing.__typename !== "Deleted") throw new Error(deleteMailing.message);
      toast(`Mailing ${shownId(mailing.id)} deleted`);
      changed(null);
      return;
    }
    const data = await gql(CHANGE[action], { id: mailing.id });
    const result = Object.values(data)[0];
    if (result.__typename !== "Mailing") throw new Error(result.message);
    toast(`Mailing ${shownId(mailing.id)} is ${result.status}`);
    changed(result);
  } catch (error) {
    toast(error.message, "error");
  }
}
