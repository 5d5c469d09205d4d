// Form fields that show the API's field errors next to themselves.
import { h, mount } from "./dom.js";

let nextId = 1;

// A labelled field; `path` is the API's field path ("input.phone").
export function field(label, control, { path, hint, extra } = {}) {
  const id = control.id || `f${nextId++}`;
  control.id = id;
  const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert", hidden: true });
  control.setAttribute("aria-describedby", `${id}-error`);
  return h(
    "div",
    { class: "field", dataset: path ? { field: path } : {} },
    h("label", { for: id }, label),
    control,
    extra,
    hint ? h("p", { class: "hint" }, hint) : null,
    error,
  );
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) {
    el.hidden = true;
    el.textContent = "";
  }
  for (const el of form.querySelectorAll(".field.invalid")) el.classList.remove("invalid");
  const banner = form.querySelector(".form-error");
  if (banner) {
    banner.hidden = true;
    banner.replaceChildren();
  }
}

// Each error goes to the field whose path is the longest prefix of its own
// ("input.filter.tags.2" -> the tags field, as "item 3: ..."); the rest to
// the form's banner.
export function showErrors(form, errors, { strip = "" } = {}) {
  clearErrors(form);
  const fields = [...form.querySelectorAll(".field[data-field]")];
  const unplaced = [];
  for (const { field: rawPath, message } of errors) {
    const path = strip && rawPath.startsWith(strip) ? rawPath.slice(strip.length) : rawPath;
    const owner = fields
      .filter((el) => path === el.dataset.field || path.startsWith(`${el.dataset.field}.`))
      .sort((a, b) => b.dataset.field.length - a.dataset.field.length)[0];
    if (!owner) {
      unplaced.push(`${rawPath}: ${message}`);
      continue;
    }
    const rest = path.slice(owner.dataset.field.length + 1);
    const text = /^\d+$/.test(rest) ? `item ${Number(rest) + 1}: ${message}` : rest ? `${rest}: ${message}` : message;
    const box = owner.querySelector(":scope > .field-error");
    box.textContent = box.textContent ? `${box.textContent} ${text}` : text;
    box.hidden = false;
    owner.classList.add("invalid");
  }
  if (unplaced.length) banner(form, unplaced);
  form.querySelector(".field.invalid input, .field.invalid textarea, .field.invalid select")?.focus();
}

export function banner(form, lines) {
  const box = form.querySelector(".form-error");
  mount(box, lines.map((line) => h("div", {}, line)));
  box.hidden = false;
}

export function formBanner() {
  return h("div", { class: "form-error", role: "alert", hidden: true });
}
