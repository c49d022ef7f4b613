// What every dashboard page shares: API calls with the hub's XSRF token,
// flash messages, confirmation and text dialogs, sortable tables filled
// from the API, buttons that ask first, and the active entry of the
// navigation bar.
(function () {
  "use strict";

  const page = JSON.parse((document.getElementById("karvdash-page") || {}).textContent || "{}");
  const prefix = page.prefix || "/services/karvdash/";

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body || {};
    }
  }

  // A dashboard address; on a page where an administrator acts as another
  // user, it keeps acting as them (?as=).
  function pageUrl(path, query) {
    const url = new URL(prefix + path, window.location.origin);
    for (const [key, value] of Object.entries({ as: page.as, ...query })) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    return url.pathname + url.search;
  }

  function apiUrl(path, query) {
    return pageUrl("api/" + path, query);
  }

  // Paths inside a domain, with every part encoded (names may hold # ? % and spaces).
  function encodePath(path) {
    return path.split("/").filter(Boolean).map(encodeURIComponent).join("/");
  }

  async function api(method, path, { body, query } = {}) {
    const headers = { "X-XSRFToken": window.jhdata.xsrf_token };
    const options = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(apiUrl(path, query), options);
    } catch (error) {
      throw new ApiError(0, "The dashboard cannot be reached: " + error.message);
    }
    if (response.status === 401) {
      // logged out (in another tab, or the login expired): this page's own
      // address sends an anonymous visitor to the login page, and back here
      window.location.reload();
      return new Promise(() => {});
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = { message: response.statusText };
    }
    if (!response.ok) throw new ApiError(response.status, data.message || response.statusText, data);
    return data;
  }

  // One message per kind on screen: a new one replaces the last of its kind
  // at once, messages of other kinds fade out, and a success fades by itself.
  function flash(kind, message) {
    const area = document.getElementById("karvdash-flash");
    for (const old of area.querySelectorAll(".karvdash-flash-message")) {
      if (old.dataset.kind === kind) old.remove();
      else fadeOut(old);
    }
    const alert = document.createElement("div");
    alert.className = `alert alert-${kind} alert-dismissible fade show karvdash-flash-message`;
    alert.dataset.kind = kind;
    alert.setAttribute("role", kind === "danger" ? "alert" : "status");
    alert.textContent = message;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close";
    close.setAttribute("data-bs-dismiss", "alert");
    close.setAttribute("aria-label", "Close");
    alert.appendChild(close);
    area.appendChild(alert);
    if (kind === "success") setTimeout(() => fadeOut(alert), 6000);
  }

  function fadeOut(alert) {
    if (alert.classList.contains("karvdash-fading")) return;
    alert.classList.add("karvdash-fading");
    alert.classList.remove("show");
    // Bootstrap's .fade transition; removed even when transitions are off
    setTimeout(() => alert.remove(), 400);
  }

  // The dialog on screen (or fading out): the next one waits until it is gone.
  let previousDialog = Promise.resolve();

  // A modal built on the fly; resolves with the button's value (or null when
  // dismissed) as soon as a button is clicked, even during the fade-in, when
  // Bootstrap would ignore hide(): the modal then closes once it is shown.
  function dialog({ title, body, confirmLabel, danger, input }) {
    let gone;
    const waitForPrevious = previousDialog;
    previousDialog = new Promise((resolve) => (gone = resolve));
    return waitForPrevious.then(() => new Promise((resolve) => {
      const modal = document.createElement("div");
      modal.className = "modal fade karvdash-dialog";
      modal.tabIndex = -1;
      modal.setAttribute("aria-labelledby", "karvdash-dialog-title");
      modal.innerHTML = `
        <div class="modal-dialog"><form class="modal-content">
          <div class="modal-header">
            <h2 class="modal-title fs-5" id="karvdash-dialog-title"></h2>
            <button type="button" class="btn-close karvdash-dialog-cancel" aria-label="Close"></button>
          </div>
          <div class="modal-body"></div>
          <div class="modal-footer">
            <button type="button" class="btn btn-secondary karvdash-dialog-cancel">Cancel</button>
            <button type="submit" class="btn karvdash-dialog-confirm"></button>
          </div>
        </form></div>`;
      modal.querySelector(".modal-title").textContent = title;
      const bodyArea = modal.querySelector(".modal-body");
      if (typeof body === "string") {
        const p = document.createElement("p");
        p.textContent = body;
        bodyArea.appendChild(p);
      } else if (body) {
        bodyArea.appendChild(body);
      }
      let field = null;
      if (input) {
        const label = document.createElement("label");
        label.className = "form-label";
        label.textContent = input.label;
        label.htmlFor = "karvdash-dialog-input";
        field = document.createElement("input");
        field.className = "form-control";
        field.id = "karvdash-dialog-input";
        field.value = input.value || "";
        field.required = true;
        bodyArea.append(label, field);
      }
      const confirm = modal.querySelector(".karvdash-dialog-confirm");
      confirm.textContent = confirmLabel;
      confirm.classList.add(danger ? "btn-danger" : "btn-primary");

      let shown = false;
      let closing = false;
      const close = (value) => {
        if (closing) return;
        closing = true;
        resolve(value);
        if (shown) instance.hide();
      };
      modal.querySelector("form").addEventListener("submit", (event) => {
        event.preventDefault();
        close(field ? field.value : true);
      });
      modal.querySelectorAll(".karvdash-dialog-cancel").forEach((button) => button.addEventListener("click", () => close(null)));
      // Escape and a click beside the dialog: Bootstrap hides it itself
      modal.addEventListener("hide.bs.modal", () => close(null));
      modal.addEventListener("shown.bs.modal", () => {
        shown = true;
        modal.dataset.state = "shown";
        if (closing) instance.hide();
        else (field || confirm).focus();
      });
      modal.addEventListener("hidden.bs.modal", () => {
        instance.dispose();
        modal.remove();
        gone();
      });
      document.body.appendChild(modal);
      const instance = new bootstrap.Modal(modal);
      instance.show();
    }));
  }

  function confirmAction(title, message, confirmLabel, danger = true) {
    return dialog({ title, body: message, confirmLabel, danger }).then((value) => value === true);
  }

  function promptText(title, label, value, confirmLabel, body) {
    return dialog({ title, body, confirmLabel, input: { label, value } });
  }

  // Tables with <th data-sort="key"> sort by each row's <td data-value>;
  // rows keep their data-group order (folders before files).
  function makeSortable(table, onSort) {
    const headers = table.querySelectorAll("th[data-sort]");
    headers.forEach((th, index) => {
      th.classList.add("karvdash-sortable");
      th.tabIndex = 0;
      const sortBy = () => {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach((other) => other.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        // with onSort the page orders its rows itself (e.g. asks the server)
        if (onSort) onSort(th.dataset.sort, ascending);
        else sortTable(table);
      };
      th.addEventListener("click", sortBy);
      th.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortBy();
        }
      });
    });
  }

  function sortTable(table) {
    const th = table.querySelector("th[aria-sort]");
    if (!th) return;
    const column = Array.from(th.parentNode.children).indexOf(th);
    const direction = th.getAttribute("aria-sort") === "ascending" ? 1 : -1;
    const numeric = th.dataset.type === "number";
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const group = (a.dataset.group || "").localeCompare(b.dataset.group || "");
      if (group) return group;
      const x = a.cells[column].dataset.value;
      const y = b.cells[column].dataset.value;
      const order = numeric ? Number(x) - Number(y) : x.localeCompare(y, undefined, { numeric: true });
      return order * direction;
    });
    rows.forEach((row) => body.appendChild(row));
  }

  // One cell of a table row: text or an element, with the value it sorts by.
  function cell(row, content, value) {
    const td = row.insertCell();
    if (content instanceof Node) td.append(content);
    else td.textContent = content;
    td.dataset.value = value === undefined ? String(content) : value;
    return td;
  }

  // Fills a table's body with a row per item of an API answer: the loading
  // note goes, the empty note shows when there is nothing, the chosen order
  // stays. Resolves with the items, or null when the call failed (said in a
  // flash message).
  async function fillTable(table, { items, addRow, loading, empty }) {
    let list;
    try {
      list = await items();
    } catch (error) {
      flash("danger", error.message);
      return null;
    } finally {
      document.getElementById(loading).hidden = true;
    }
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const item of list) addRow(body.insertRow(), item);
    document.getElementById(empty).hidden = list.length > 0;
    sortTable(table);
    return list;
  }

  function button(label, action, className) {
    const element = document.createElement("button");
    element.type = "button";
    element.className = className;
    element.textContent = label;
    element.dataset.action = action;
    return element;
  }

  // A button that asks first, then makes the change and says how it went.
  function whenConfirmed(element, { title, message, confirmLabel, run, done, after }) {
    element.addEventListener("click", async () => {
      if (!(await confirmAction(title, message, confirmLabel))) return;
      try {
        await run();
        if (done) flash("success", done);
      } catch (error) {
        flash("danger", error.message);
      }
      if (after) after();
    });
    return element;
  }

  // A form that sends itself with `send()`: its button is disabled while the
  // request runs, and a refusal shows as a message (the form keeps its values).
  function submitWith(form, button, send) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      try {
        await send();
      } catch (error) {
        flash("danger", error.message);
        button.disabled = false;
      }
    });
  }

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let value = bytes;
    let unit = -1;
    do {
      value /= 1024;
      unit += 1;
    } while (value >= 1024 && unit < units.length - 1);
    return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  function formatDate(seconds) {
    return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function markActiveNav() {
    const active = page.active;
    const link = active && document.getElementById(`nav-${active}`);
    if (link) {
      link.classList.add("active");
      link.setAttribute("aria-current", "page");
    }
  }

  markActiveNav();

  window.karvdash = {
    ApiError,
    api,
    apiUrl,
    pageUrl,
    encodePath,
    flash,
    dialog,
    confirmAction,
    promptText,
    makeSortable,
    sortTable,
    cell,
    fillTable,
    button,
    whenConfirmed,
    submitWith,
    formatSize,
    formatDate,
    prefix,
  };
})();
