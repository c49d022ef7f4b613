// The Files page: browse a domain without page reloads, a page of rows at a
// time (the next as one scrolls), sorted and filtered by name on the server; select many (checkboxes, shift-click ranges, Space) to delete, move
// or download them as one zip; create folders and empty files; rename,
// move, delete (after confirmation), download and preview; and upload files
// and whole folders (buttons or drag and drop) in resumable chunks, a few at
// a time, each with its progress, speed, time left and a Cancel.
(function () {
  "use strict";

  const { api, apiUrl, pageUrl: dashboardUrl, encodePath, flash, confirmAction, promptText, dialog, makeSortable, cell } =
    window.karvdash;
  const { formatSize, formatDate } = window.karvdash;
  const config = JSON.parse(document.getElementById("files-config").textContent);
  const CHUNK_SIZE = 16 * 1024 * 1024;
  const RETRIES = 5;
  // uploads running at once; the rest wait, shown as queued
  const CONCURRENT_UPLOADS = 3;
  // how much of a file a text or CSV preview reads, and how many CSV rows it shows
  const PREVIEW_BYTES = 256 * 1024;
  const PREVIEW_ROWS = 200;
  // longer zip addresses than this go as a form POST (proxies limit an address's length)
  const MAX_ZIP_URL = 6000;
  const IMAGE_TYPES = /\.(png|jpe?g|gif|webp|bmp|avif)$/i;
  const PDF_TYPE = /\.pdf$/i;
  const TABLE_TYPES = /\.(csv|tsv)$/i;

  const state = { domain: config.domain, path: config.path, selected: new Set(), anchor: null };
  const table = document.getElementById("files-table");
  const tbody = table.tBodies[0];
  const join = (...parts) => parts.filter(Boolean).join("/");
  const byId = (id) => document.getElementById(id);

  function pageUrl(domain, path) {
    return dashboardUrl(`files/${domain}/` + (path ? encodePath(path) + "/" : ""));
  }

  function downloadUrl(path, query) {
    return apiUrl(`download/${state.domain}/${encodePath(path)}`, query);
  }

  function clickLink(href, name) {
    const a = document.createElement("a");
    a.href = href;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  // A name with a line-break opportunity after each _ - . / : long names
  // wrap between their parts on narrow screens, never inside a word.
  function nameNodes(name) {
    const nodes = [];
    name.split(/(?<=[_\-./])/).forEach((part, index) => {
      if (index) nodes.push(document.createElement("wbr"));
      nodes.push(document.createTextNode(part));
    });
    return nodes;
  }

  // --- listing ---------------------------------------------------------------------

  // A folder comes a page at a time, in the order and with the filter the
  // server applies (folders first, then by the column chosen); the next page
  // loads when the end of the table scrolls into view, or with "Show more".
  const PAGE_SIZE = 200;
  const listing = { sort: "name", order: "asc", filter: "", next: null, request: 0, busy: false };

  function listingQuery(cursor) {
    const query = { limit: PAGE_SIZE, sort: listing.sort, order: listing.order };
    if (listing.filter) query.filter = listing.filter;
    if (cursor) query.cursor = cursor;
    return query;
  }

  async function load(path, { push = false } = {}) {
    // a newer request (another folder, sort or filter) wins over an older one still on its way
    const request = ++listing.request;
    byId("files-loading").hidden = false;
    try {
      const answer = await api("GET", `files/${state.domain}/${encodePath(path)}`, { query: listingQuery() });
      if (request !== listing.request) return;
      if (answer.path !== state.path) {
        state.selected.clear();
        state.anchor = null;
      }
      state.path = answer.path;
      listing.next = answer.next || null;
      render(answer.entries);
      if (push) history.pushState({ path: state.path }, "", pageUrl(state.domain, state.path));
    } catch (error) {
      if (request === listing.request) flash("danger", error.message);
    } finally {
      if (request === listing.request) byId("files-loading").hidden = true;
    }
  }

  async function loadMore() {
    if (!listing.next || listing.busy) return;
    const request = listing.request;
    listing.busy = true;
    byId("files-more-button").disabled = true;
    try {
      const answer = await api("GET", `files/${state.domain}/${encodePath(state.path)}`, {
        query: listingQuery(listing.next),
      });
      if (request !== listing.request) return;
      listing.next = answer.next || null;
      for (const entry of answer.entries) tbody.appendChild(row(entry));
      showMore();
      updateSelection();
    } catch (error) {
      flash("danger", error.message);
    } finally {
      listing.busy = false;
      byId("files-more-button").disabled = false;
    }
  }

  function showMore() {
    byId("files-more").hidden = !listing.next;
    byId("files-shown").textContent = `${tbody.rows.length} shown`;
  }

  function renderBreadcrumb() {
    const crumbs = byId("breadcrumb");
    crumbs.replaceChildren();
    const parts = state.path ? state.path.split("/") : [];
    const title = config.domains.find((d) => d.name === state.domain).title;
    const levels = [[title, ""]].concat(parts.map((part, i) => [part, parts.slice(0, i + 1).join("/")]));
    levels.forEach(([label, path], index) => {
      const item = document.createElement("li");
      item.className = "breadcrumb-item file-name";
      if (index === levels.length - 1) {
        item.classList.add("active");
        item.setAttribute("aria-current", "page");
        item.append(...nameNodes(label));
      } else {
        const link = document.createElement("a");
        link.href = pageUrl(state.domain, path);
        link.append(...nameNodes(label));
        link.addEventListener("click", (event) => {
          event.preventDefault();
          load(path, { push: true });
        });
        item.appendChild(link);
      }
      crumbs.appendChild(item);
    });
  }

  function render(entries) {
    renderBreadcrumb();
    tbody.replaceChildren();
    const names = new Set(entries.map((entry) => entry.name));
    for (const name of Array.from(state.selected)) if (!names.has(name)) state.selected.delete(name);
    for (const entry of entries) tbody.appendChild(row(entry));
    byId("files-empty").hidden = entries.length > 0 || Boolean(listing.filter);
    byId("files-no-match").hidden = entries.length > 0 || !listing.filter;
    showMore();
    updateSelection();
  }

  function row(entry) {
    const tr = document.createElement("tr");
    const path = join(state.path, entry.name);
    tr.dataset.name = entry.name;
    tr.dataset.type = entry.type;
    tr.dataset.group = entry.type === "folder" ? "0" : "1";
    // Enter opens, Space selects (when the row itself has the focus)
    tr.tabIndex = 0;
    tr.setAttribute("aria-label", entry.name);

    const check = document.createElement("input");
    check.type = "checkbox";
    check.className = "form-check-input row-select";
    check.checked = state.selected.has(entry.name);
    check.tabIndex = -1;
    check.setAttribute("aria-label", `Select ${entry.name}`);
    check.addEventListener("click", (event) => selectFromClick(tr, check.checked, event.shiftKey));
    const selectCell = cell(tr, check, "");
    selectCell.className = "file-select";
    tr.classList.toggle("table-active", check.checked);

    const nameCell = cell(tr, "", entry.name);
    nameCell.className = "file-name";
    const icon = document.createElement("i");
    icon.className = "file-icon fa " + (entry.type === "folder" ? "fa-folder" : entry.type === "link" ? "fa-link" : "fa-file");
    icon.setAttribute("aria-hidden", "true");
    nameCell.appendChild(icon);
    if (entry.type === "link") {
      const span = document.createElement("span");
      span.append(...nameNodes(entry.name));
      span.title = "A link that leads outside this domain or nowhere";
      nameCell.appendChild(span);
    } else {
      const link = document.createElement("a");
      link.append(...nameNodes(entry.name));
      link.className = "file-link";
      link.tabIndex = -1; // the row takes the focus; Enter opens
      if (entry.type === "folder") {
        link.href = pageUrl(state.domain, path);
        link.addEventListener("click", (event) => {
          event.preventDefault();
          load(path, { push: true });
        });
      } else {
        link.href = downloadUrl(path);
        link.setAttribute("download", entry.name);
      }
      nameCell.appendChild(link);
    }
    cell(tr, formatDate(entry.modified), entry.modified).className = "file-modified";
    cell(tr, entry.type === "folder" ? "" : formatSize(entry.size), entry.size).className = "text-end";
    actionsCell(cell(tr, "", ""), entry, path);

    tr.addEventListener("keydown", (event) => {
      if (event.target !== tr) return;
      if (event.key === "Enter") {
        event.preventDefault();
        if (entry.type === "folder") load(path, { push: true });
        else if (entry.type === "file") preview(entry, path);
      } else if (event.key === " ") {
        event.preventDefault();
        check.checked = !check.checked;
        selectFromClick(tr, check.checked, event.shiftKey);
      }
    });
    return tr;
  }

  function actionsCell(td, entry, path) {
    td.className = "text-end";
    const menu = document.createElement("div");
    menu.className = "dropdown";
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "btn btn-sm btn-outline-secondary dropdown-toggle row-actions";
    toggle.setAttribute("data-bs-toggle", "dropdown");
    toggle.setAttribute("aria-expanded", "false");
    toggle.setAttribute("aria-label", `Actions for ${entry.name}`);
    toggle.textContent = "Actions";
    const list = document.createElement("ul");
    list.className = "dropdown-menu dropdown-menu-end";
    // a menu entry: a button running `action`, or a link when it is an address
    const item = (label, name, action, danger) => {
      const li = document.createElement("li");
      const element = document.createElement(typeof action === "string" ? "a" : "button");
      if (typeof action === "string") element.href = action;
      else {
        element.type = "button";
        element.addEventListener("click", action);
      }
      element.className = "dropdown-item" + (danger ? " text-danger" : "");
      element.textContent = label;
      element.dataset.action = name;
      li.appendChild(element);
      list.appendChild(li);
    };
    if (entry.type !== "link") {
      item(entry.type === "folder" ? "Download as zip" : "Download", "download", () =>
        clickLink(downloadUrl(path), entry.type === "folder" ? `${entry.name}.zip` : entry.name)
      );
    }
    if (entry.type === "file" && config.canAddImage && entry.name.endsWith(config.imageSuffix)) {
      // the Images page's form, with this archive chosen and its name and tag read from it
      item("Add image", "add-image", dashboardUrl("images/add", { file: `${state.domain}/${path}` }));
    }
    if (entry.type === "file" && config.canAddTemplate && entry.name.endsWith(config.templateSuffix)) {
      item("Add template", "add-template", () => addTemplate(entry, path));
    }
    if (config.canWrite) {
      item("Rename", "rename", () => rename(entry, path));
      item("Move", "move", () => move(entry, path));
      item("Delete", "delete", () => remove(entry, path), true);
    }
    menu.append(toggle, list);
    const actions = document.createElement("div");
    actions.className = "d-inline-flex gap-1 justify-content-end";
    if (entry.type === "file") {
      const show = document.createElement("button");
      show.type = "button";
      show.className = "btn btn-sm btn-outline-secondary row-preview";
      show.setAttribute("aria-label", `Preview ${entry.name}`);
      show.title = "Preview";
      show.innerHTML = '<i class="fa fa-eye" aria-hidden="true"></i>';
      show.addEventListener("click", () => preview(entry, path));
      actions.appendChild(show);
    }
    actions.appendChild(menu);
    td.appendChild(actions);
  }

  // --- filter ----------------------------------------------------------------------

  // The server filters (a folder may hold more names than one page): the
  // listing asks again once typing pauses.
  const filterInput = byId("files-filter");
  let filterTimer = null;

  function filterChanged() {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      const wanted = filterInput.value.trim();
      if (wanted === listing.filter) return;
      listing.filter = wanted;
      load(state.path);
    }, 250);
  }

  function sortChanged(column, ascending) {
    listing.sort = column;
    listing.order = ascending ? "asc" : "desc";
    load(state.path);
  }

  // --- selection -------------------------------------------------------------------

  const visibleRows = () => Array.from(tbody.rows);

  function setSelected(tr, selected) {
    tr.querySelector(".row-select").checked = selected;
    tr.classList.toggle("table-active", selected);
    if (selected) state.selected.add(tr.dataset.name);
    else state.selected.delete(tr.dataset.name);
  }

  // A click (or Space) on one row; with shift, every shown row from the
  // last one clicked to this one takes its state.
  function selectFromClick(tr, selected, range) {
    const rows = visibleRows();
    const from = state.anchor ? rows.findIndex((r) => r.dataset.name === state.anchor) : -1;
    const to = rows.indexOf(tr);
    if (range && from >= 0 && to >= 0) {
      const [low, high] = from < to ? [from, to] : [to, from];
      rows.slice(low, high + 1).forEach((r) => setSelected(r, selected));
    } else {
      setSelected(tr, selected);
    }
    state.anchor = tr.dataset.name;
    updateSelection();
  }

  // Only rows shown count: those the filter leaves out, or not loaded yet, are not in the table.
  function selectedEntries() {
    return visibleRows()
      .filter((tr) => state.selected.has(tr.dataset.name))
      .map((tr) => ({ name: tr.dataset.name, type: tr.dataset.type, path: join(state.path, tr.dataset.name) }));
  }

  function updateSelection() {
    const rows = visibleRows();
    const chosen = rows.filter((tr) => state.selected.has(tr.dataset.name)).length;
    const all = byId("select-all");
    all.checked = rows.length > 0 && chosen === rows.length;
    all.indeterminate = chosen > 0 && chosen < rows.length;
    byId("selection-bar").hidden = chosen === 0;
    byId("selection-count").textContent = `${chosen} selected`;
  }

  function clearSelection() {
    for (const tr of tbody.rows) setSelected(tr, false);
    state.anchor = null;
    updateSelection();
  }

  // --- changes ---------------------------------------------------------------------

  // Ask before replacing: a 409 turns into a confirmation, then the same call with overwrite.
  async function withOverwrite(what, call) {
    try {
      return await call(false);
    } catch (error) {
      if (error.status !== 409) throw error;
      const replace = await confirmAction("Replace?", `${error.message}. Replace it with ${what}?`, "Replace");
      if (!replace) return null;
      return call(true);
    }
  }

  async function create(kind, title) {
    const name = await promptText(title, "Name", "", "Create");
    if (!name) return;
    try {
      await api("POST", `files/${state.domain}/${encodePath(join(state.path, name))}`, { body: { type: kind } });
      flash("success", `${kind === "folder" ? "Folder" : "File"} ${name} created.`);
      await load(state.path);
    } catch (error) {
      flash("danger", error.message);
    }
  }

  async function rename(entry, path) {
    const name = await promptText(`Rename ${entry.name}`, "New name", entry.name, "Rename");
    if (!name || name === entry.name) return;
    await moveTo(entry, path, state.domain, join(state.path, name));
  }

  // The domain and folder to move to, or null when the dialog is dismissed.
  async function askTarget(title) {
    const body = document.createElement("div");
    const label = document.createElement("label");
    label.className = "form-label";
    label.htmlFor = "move-domain";
    label.textContent = "Domain";
    const select = document.createElement("select");
    select.className = "form-select mb-3";
    select.id = "move-domain";
    for (const domain of config.domains) {
      select.appendChild(new Option(domain.title, domain.name, false, domain.name === state.domain));
    }
    body.append(label, select);
    const folder = await dialog({
      title,
      body,
      confirmLabel: "Move",
      input: { label: "To folder (empty for the top folder)", value: state.path },
    });
    if (folder === null) return null;
    return { domain: select.value, folder: folder.split("/").filter(Boolean).join("/") };
  }

  async function move(entry, path) {
    const target = await askTarget(`Move ${entry.name}`);
    if (!target) return;
    await moveTo(entry, path, target.domain, join(target.folder, entry.name));
  }

  function moveRequest(entry, path, domain, target) {
    return withOverwrite(entry.name, (overwrite) =>
      api("PATCH", `files/${state.domain}/${encodePath(path)}`, { body: { domain, path: target, overwrite } })
    );
  }

  async function moveTo(entry, path, domain, target) {
    try {
      const moved = await moveRequest(entry, path, domain, target);
      if (!moved) return;
      flash("success", `${entry.name} is now ${domain}/${moved.path}.`);
      await load(state.path);
    } catch (error) {
      flash("danger", error.message);
    }
  }

  async function remove(entry, path) {
    const what = entry.type === "folder" ? `the folder ${entry.name} and everything in it` : entry.name;
    if (!(await confirmAction(`Delete ${entry.name}?`, `This deletes ${what}. It cannot be undone.`, "Delete"))) return;
    try {
      await api("DELETE", `files/${state.domain}/${encodePath(path)}`);
      flash("success", `${entry.name} deleted.`);
      await load(state.path);
    } catch (error) {
      flash("danger", error.message);
    }
  }

  async function addTemplate(entry, path) {
    try {
      const template = await api("POST", "templates", { body: { domain: state.domain, path } });
      flash("success", `Added the template ${template.name}: start services from it on the Templates page.`);
    } catch (error) {
      flash("danger", `${entry.name}: ${error.message}`);
    }
  }

  // --- bulk actions ----------------------------------------------------------------

  const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;

  // Runs `action` on each entry; one message for what worked, one per failure.
  async function eachEntry(entries, action, done) {
    let count = 0;
    for (const entry of entries) {
      try {
        if (await action(entry)) count += 1;
      } catch (error) {
        flash("danger", `${entry.name}: ${error.message}`);
      }
    }
    if (count) flash("success", done(count));
    await load(state.path);
  }

  async function bulkDelete() {
    const entries = selectedEntries();
    if (!entries.length) return;
    const folders = entries.filter((entry) => entry.type === "folder").length;
    const names = entries.map((entry) => entry.name).join(", ");
    const message =
      `This deletes ${names}` + (folders ? ` (${plural(folders, "folder")} with everything in them)` : "") + ". It cannot be undone.";
    if (!(await confirmAction(`Delete ${plural(entries.length, "item")}?`, message, "Delete"))) return;
    await eachEntry(
      entries,
      async (entry) => {
        await api("DELETE", `files/${state.domain}/${encodePath(entry.path)}`);
        return true;
      },
      (count) => `${plural(count, "item")} deleted.`
    );
  }

  async function bulkMove() {
    const entries = selectedEntries();
    if (!entries.length) return;
    const target = await askTarget(`Move ${plural(entries.length, "item")}`);
    if (!target) return;
    await eachEntry(
      entries,
      async (entry) => Boolean(await moveRequest(entry, entry.path, target.domain, join(target.folder, entry.name))),
      (count) => `${plural(count, "item")} moved to ${target.domain}/${target.folder}.`
    );
  }

  function bulkDownload() {
    const paths = selectedEntries().map((entry) => entry.path);
    if (!paths.length) return;
    const base = `download-zip/${state.domain}`;
    const query = new URLSearchParams(paths.map((path) => ["path", path])).toString();
    const url = apiUrl(base) + (apiUrl(base).includes("?") ? "&" : "?") + query;
    if (url.length <= MAX_ZIP_URL) {
      clickLink(url, "");
      return;
    }
    // too long for an address: the same paths as a form (the answer is a download, the page stays)
    const form = document.createElement("form");
    form.method = "POST";
    form.action = apiUrl(base);
    form.hidden = true;
    for (const [name, value] of [["_xsrf", window.jhdata.xsrf_token], ...paths.map((path) => ["path", path])]) {
      const field = document.createElement("input");
      field.type = "hidden";
      field.name = name;
      field.value = value;
      form.appendChild(field);
    }
    document.body.appendChild(form);
    form.submit();
    form.remove();
  }

  // --- preview ---------------------------------------------------------------------

  const previewDialog = byId("preview-dialog");
  let previewAbort = null;

  function splitCsvLine(text, separator) {
    // RFC 4180: fields in quotes may hold separators, "" and line breaks
    const rows = [];
    let row = [];
    let field = "";
    let quoted = false;
    for (let i = 0; i < text.length; i += 1) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') {
          field += '"';
          i += 1;
        } else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"' && field === "") quoted = true;
      else if (c === separator) {
        row.push(field);
        field = "";
      } else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i += 1;
        row.push(field);
        rows.push(row);
        if (rows.length > PREVIEW_ROWS) return rows;
        row = [];
        field = "";
      } else field += c;
    }
    if (field || row.length) rows.push(row.concat(field));
    return rows;
  }

  function csvTable(text, separator, complete) {
    const rows = splitCsvLine(text, separator);
    // a row cut by the end of what was read is left out
    if (!complete && rows.length <= PREVIEW_ROWS) rows.pop();
    const shown = rows.slice(0, PREVIEW_ROWS + 1);
    const wrapper = document.createElement("div");
    wrapper.className = "table-responsive";
    const element = document.createElement("table");
    element.className = "table table-sm table-striped karvdash-preview-table";
    shown.forEach((cells, index) => {
      const tr = index === 0 ? element.createTHead().insertRow() : (element.tBodies[0] || element.createTBody()).insertRow();
      for (const value of cells) {
        const td = document.createElement(index === 0 ? "th" : "td");
        td.textContent = value;
        tr.appendChild(td);
      }
    });
    wrapper.appendChild(element);
    return { element: wrapper, rows: Math.max(shown.length - 1, 0), more: rows.length > PREVIEW_ROWS || !complete };
  }

  async function readStart(path, signal) {
    const response = await fetch(downloadUrl(path), {
      headers: { Range: `bytes=0-${PREVIEW_BYTES - 1}`, "X-XSRFToken": window.jhdata.xsrf_token },
      credentials: "same-origin",
      signal,
    });
    if (!response.ok) {
      let message = response.statusText;
      try {
        message = (await response.json()).message || message;
      } catch (error) {
        // not JSON: keep the status text
      }
      throw new window.karvdash.ApiError(response.status, message);
    }
    const data = new Uint8Array(await response.arrayBuffer());
    const range = response.headers.get("Content-Range");
    const total = range ? Number(range.split("/")[1]) : data.length;
    return { data, complete: data.length >= total };
  }

  async function preview(entry, path) {
    const body = byId("preview-body");
    const note = byId("preview-note");
    body.replaceChildren();
    note.textContent = "";
    byId("preview-title").replaceChildren(...nameNodes(entry.name));
    const download = byId("preview-download");
    download.href = downloadUrl(path);
    download.setAttribute("download", entry.name);
    previewDialog.dataset.name = entry.name;
    bootstrap.Modal.getOrCreateInstance(previewDialog).show();
    if (IMAGE_TYPES.test(entry.name)) {
      const img = document.createElement("img");
      img.className = "img-fluid karvdash-preview-image";
      img.alt = entry.name;
      img.src = downloadUrl(path, { inline: "1" });
      body.appendChild(img);
      return;
    }
    if (PDF_TYPE.test(entry.name)) {
      const frame = document.createElement("iframe");
      frame.className = "karvdash-preview-frame";
      frame.title = entry.name;
      frame.src = downloadUrl(path, { inline: "1" });
      body.appendChild(frame);
      return;
    }
    previewAbort = new AbortController();
    const loading = document.createElement("p");
    loading.className = "text-body-secondary";
    loading.textContent = "Loading…";
    body.appendChild(loading);
    try {
      const { data, complete } = await readStart(path, previewAbort.signal);
      // a NUL byte in the start of a file: not text
      if (data.includes(0)) {
        loading.textContent = "This file is not text: there is no preview. Download it to open it.";
        return;
      }
      const text = new TextDecoder("utf-8").decode(data, { stream: !complete });
      if (TABLE_TYPES.test(entry.name)) {
        const shown = csvTable(text, /\.tsv$/i.test(entry.name) ? "\t" : ",", complete);
        body.replaceChildren(shown.element);
        note.textContent = shown.more ? `The first ${plural(shown.rows, "row")}.` : plural(shown.rows, "row");
      } else {
        const pre = document.createElement("pre");
        pre.className = "karvdash-preview-text";
        pre.textContent = text;
        body.replaceChildren(pre);
        note.textContent = complete ? "" : `The first ${formatSize(PREVIEW_BYTES)}.`;
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      loading.textContent = error.message;
    }
  }

  // Bootstrap ignores Escape while the dialog fades in (the focus is still
  // on the page): remember it and close once it is shown.
  let previewOpening = false;
  let closeWhenShown = false;
  previewDialog.addEventListener("show.bs.modal", () => {
    previewOpening = true;
    closeWhenShown = false;
  });
  previewDialog.addEventListener("shown.bs.modal", () => {
    previewOpening = false;
    if (closeWhenShown) bootstrap.Modal.getOrCreateInstance(previewDialog).hide();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && previewOpening) closeWhenShown = true;
  });
  previewDialog.addEventListener("hidden.bs.modal", () => {
    if (previewAbort) previewAbort.abort();
    previewAbort = null;
    // an iframe or image stops loading once it is gone
    byId("preview-body").replaceChildren();
    delete previewDialog.dataset.name;
  });

  // --- uploads ---------------------------------------------------------------------

  const uploads = { queue: [], running: 0, items: new Set() };

  function formatDuration(seconds) {
    if (!Number.isFinite(seconds)) return "";
    if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
  }

  // "2.0 MiB/s, 12 s left": how fast and how long, from the bytes sent since the start
  function rate(item) {
    const seconds = (performance.now() - item.startedAt) / 1000;
    const sent = item.done - item.startOffset;
    return seconds > 0 && sent > 0 ? sent / seconds : 0;
  }

  class Cancelled extends Error {}

  // One file to upload, with its row in the uploads panel.
  class UploadItem {
    constructor(file, domain, path, batch) {
      Object.assign(this, { file, domain, path, batch });
      this.state = "queued";
      this.done = 0;
      this.startOffset = 0;
      this.startedAt = 0;
      this.upload = null;
      this.xhr = null;
      this.view();
    }

    view() {
      const box = document.createElement("div");
      box.className = "karvdash-upload mb-2";
      box.dataset.name = this.path;
      const head = document.createElement("div");
      head.className = "d-flex flex-wrap align-items-center gap-2";
      const label = document.createElement("div");
      label.className = "small file-name me-auto";
      label.append(...nameNodes(this.path), ` (${formatSize(this.file.size)})`);
      this.status = document.createElement("span");
      this.status.className = "small text-body-secondary karvdash-upload-status";
      this.button = document.createElement("button");
      this.button.type = "button";
      this.button.className = "btn btn-sm btn-link p-0 karvdash-upload-cancel";
      this.button.textContent = "Cancel";
      this.button.setAttribute("aria-label", `Cancel the upload of ${this.path}`);
      this.button.addEventListener("click", () => (this.finished ? this.dismiss() : this.cancel()));
      head.append(label, this.status, this.button);
      this.bar = document.createElement("div");
      this.bar.className = "progress";
      this.bar.setAttribute("role", "progressbar");
      this.bar.setAttribute("aria-label", `Upload of ${this.path}`);
      this.bar.setAttribute("aria-valuemin", "0");
      this.bar.setAttribute("aria-valuemax", "100");
      this.fill = document.createElement("div");
      this.fill.className = "progress-bar";
      this.bar.appendChild(this.fill);
      box.append(head, this.bar);
      this.box = box;
      this.label = label;
      byId("uploads").appendChild(box);
      this.setState("queued", "queued");
      this.set(0);
    }

    get finished() {
      return ["done", "failed", "skipped", "cancelled"].includes(this.state);
    }

    setState(name, text) {
      this.state = name;
      // a skipped upload counts as not done for the page's scripts and tests: "failed"
      this.box.dataset.state = name === "skipped" ? "failed" : name;
      this.box.dataset.outcome = name;
      this.status.textContent = text;
      this.fill.classList.toggle("progress-bar-striped", name === "running");
      this.fill.classList.toggle("progress-bar-animated", name === "running");
    }

    set(done) {
      this.done = done;
      const percent = this.file.size ? Math.floor((done * 100) / this.file.size) : 100;
      this.bar.setAttribute("aria-valuenow", String(percent));
      this.fill.style.width = `${percent}%`;
      this.fill.textContent = `${percent}%`;
      if (this.state === "running") {
        const speed = rate(this);
        this.status.textContent = speed
          ? `${formatSize(speed)}/s, ${formatDuration((this.file.size - done) / speed)} left`
          : "starting";
      }
      showTotal();
    }

    finish(name, message) {
      this.setState(name, message);
      this.xhr = null;
      this.fill.classList.add(name === "done" ? "bg-success" : name === "failed" ? "bg-danger" : "bg-secondary");
      this.button.textContent = name === "failed" ? "Dismiss" : "";
      this.button.hidden = name !== "failed";
      this.button.setAttribute("aria-label", `Dismiss the upload of ${this.path}`);
      // done, skipped and cancelled rows go by themselves; a failure stays until dismissed
      if (name !== "failed") setTimeout(() => this.dismiss(), 4000);
      showTotal();
    }

    dismiss() {
      this.box.remove();
      uploads.items.delete(this);
      showTotal();
    }

    check() {
      if (this.state === "cancelled") throw new Cancelled();
    }

    async cancel() {
      if (this.finished) return;
      const wasQueued = this.state === "queued";
      const xhr = this.xhr;
      this.finish("cancelled", "cancelled");
      if (wasQueued) {
        uploads.queue.splice(uploads.queue.indexOf(this), 1);
        settle(this, false);
        return;
      }
      // the upload's own loop stops on this and removes what the server staged
      if (xhr) xhr.abort();
    }

    // Remove what the server staged; it may still be closing the aborted request (409).
    async forget() {
      localStorage.removeItem(resumeKey(this.domain, this.path, this.file));
      if (!this.upload) return;
      for (let attempt = 0; attempt < 10; attempt += 1) {
        try {
          await api("DELETE", `uploads/${this.upload.id}`);
          return;
        } catch (error) {
          if (error.status === 404) return;
          if (error.status !== 409) {
            flash("danger", `${this.path}: ${error.message}`);
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, 200 * (attempt + 1)));
        }
      }
    }
  }

  function showTotal() {
    const items = Array.from(uploads.items).filter((item) => !["skipped", "cancelled"].includes(item.state));
    byId("uploads-panel").hidden = uploads.items.size === 0;
    const size = items.reduce((sum, item) => sum + item.file.size, 0);
    const done = items.reduce((sum, item) => sum + item.done, 0);
    const running = items.filter((item) => item.state === "running");
    const queued = items.filter((item) => item.state === "queued").length;
    const speed = running.reduce((sum, item) => sum + rate(item), 0);
    const percent = size ? Math.floor((done * 100) / size) : items.length ? 100 : 0;
    const bar = byId("uploads-total");
    bar.setAttribute("aria-valuenow", String(percent));
    bar.firstElementChild.style.width = `${percent}%`;
    const parts = [`${formatSize(done)} of ${formatSize(size)} (${percent}%)`];
    if (running.length) parts.push(`${running.length} uploading`);
    if (queued) parts.push(`${queued} queued`);
    if (speed) parts.push(`${formatSize(speed)}/s, ${formatDuration((size - done) / speed)} left`);
    byId("uploads-total-text").textContent = parts.join(" · ");
    byId("cancel-all-uploads").hidden = !running.length && !queued;
  }

  function sendChunk(item, offset, blob) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      item.xhr = xhr;
      xhr.open("PUT", apiUrl(`uploads/${item.upload.id}`));
      xhr.setRequestHeader("X-XSRFToken", window.jhdata.xsrf_token);
      xhr.setRequestHeader("Upload-Offset", String(offset));
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = (event) => item.set(offset + event.loaded);
      xhr.onload = () => {
        let body = {};
        try {
          body = JSON.parse(xhr.responseText);
        } catch (error) {
          body = { message: xhr.statusText };
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else reject(new window.karvdash.ApiError(xhr.status, body.message || xhr.statusText, body));
      };
      xhr.onerror = () => reject(new window.karvdash.ApiError(0, "the connection broke"));
      xhr.onabort = () => reject(new Cancelled());
      xhr.send(blob);
    });
  }

  // Remember unfinished uploads, so adding the same file again resumes it.
  const resumeKey = (domain, path, file) => `karvdash-upload:${domain}:${path}:${file.size}:${file.lastModified}`;

  async function startUpload(item) {
    const { domain, path, file } = item;
    const key = resumeKey(domain, path, file);
    const known = localStorage.getItem(key);
    if (known) {
      try {
        return await api("GET", `uploads/${known}`);
      } catch (error) {
        localStorage.removeItem(key);
      }
    }
    const upload = await withOverwrite(`the uploaded ${file.name}`, (overwrite) =>
      api("POST", "uploads", { body: { domain, path, size: file.size, overwrite } })
    );
    if (upload) localStorage.setItem(key, upload.id);
    return upload;
  }

  // Sends one file; true once it is in place.
  async function uploadFile(item) {
    const { file } = item;
    try {
      item.setState("running", "starting");
      const upload = await startUpload(item);
      item.upload = upload;
      item.check();
      if (!upload) {
        item.finish("skipped", "skipped");
        return false;
      }
      let offset = upload.offset;
      item.startOffset = offset;
      item.startedAt = performance.now();
      item.set(offset);
      let failures = 0;
      for (;;) {
        item.check();
        const end = Math.min(offset + CHUNK_SIZE, file.size);
        try {
          const result = await sendChunk(item, offset, file.slice(offset, end));
          offset = result.offset;
          item.set(offset);
          failures = 0;
          if (result.complete) break;
        } catch (error) {
          item.check();
          if (error.status === 409 && offset >= file.size && error.body.offset === undefined) {
            // the name was taken while the bytes were on their way
            if (!(await confirmAction("Replace?", `${error.message}. Replace it?`, "Replace"))) {
              await item.forget();
              item.finish("skipped", "skipped");
              return false;
            }
            await api("PATCH", `uploads/${upload.id}`, { body: { overwrite: true } });
            continue;
          }
          if (error.status && error.status !== 409 && error.status < 500) throw error;
          failures += 1;
          if (failures > RETRIES) throw error;
          // ask where the server is and go on from there
          await new Promise((resolve) => setTimeout(resolve, 500 * failures));
          item.check();
          offset = (await api("GET", `uploads/${upload.id}`)).offset;
        }
      }
      localStorage.removeItem(resumeKey(item.domain, item.path, file));
      item.finish("done", "done");
      return true;
    } catch (error) {
      if (error instanceof Cancelled || item.state === "cancelled") {
        if (item.upload) await item.forget();
        return false;
      }
      item.finish("failed", error.message);
      flash("danger", `${item.path}: ${error.message}`);
      return false;
    }
  }

  function pump() {
    while (uploads.running < CONCURRENT_UPLOADS && uploads.queue.length) {
      const item = uploads.queue.shift();
      uploads.running += 1;
      uploadFile(item).then((ok) => {
        uploads.running -= 1;
        settle(item, ok);
        pump();
      });
    }
  }

  // A batch (what one choice or drop added) says how it went once all of it has.
  function settle(item, ok) {
    const batch = item.batch;
    if (ok) batch.uploaded += 1;
    batch.left -= 1;
    if (batch.left === 0) {
      if (batch.uploaded) flash("success", `${plural(batch.uploaded, "file")} uploaded.`);
      load(state.path);
    }
  }

  // files: [{file, path}] with paths relative to the folder shown;
  // folders: relative paths to create first (parents before children).
  async function uploadAll(files, folders = []) {
    const domain = state.domain;
    const here = state.path;
    for (const folder of folders) {
      try {
        await api("POST", `files/${domain}/${encodePath(join(here, folder))}`, { body: { type: "folder" } });
      } catch (error) {
        // a folder that is there already takes the files too
        if (error.status !== 409) {
          flash("danger", `${folder}: ${error.message}`);
          return;
        }
      }
    }
    if (!files.length) {
      if (folders.length) flash("success", `${plural(folders.length, "folder")} created.`);
      await load(state.path);
      return;
    }
    const batch = { left: files.length, uploaded: 0 };
    for (const { file, path } of files) {
      const item = new UploadItem(file, domain, join(here, path), batch);
      uploads.items.add(item);
      uploads.queue.push(item);
    }
    showTotal();
    pump();
  }

  // Folders that hold the files of a folder upload, each before what is in it.
  function foldersOf(paths) {
    const folders = new Set();
    for (const path of paths) {
      const parts = path.split("/").slice(0, -1);
      parts.forEach((part, index) => folders.add(parts.slice(0, index + 1).join("/")));
    }
    return Array.from(folders).sort((a, b) => a.split("/").length - b.split("/").length);
  }

  // --- drag and drop ---------------------------------------------------------------

  const readEntries = (reader) => new Promise((resolve, reject) => reader.readEntries(resolve, reject));
  const entryFile = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));

  // Every file below a dropped entry, and every folder (empty ones too).
  async function walkEntry(entry, prefix, found) {
    const path = join(prefix, entry.name);
    if (entry.isFile) {
      found.files.push({ file: await entryFile(entry), path });
    } else if (entry.isDirectory) {
      found.folders.push(path);
      const reader = entry.createReader();
      // readEntries answers in batches (about 100 at a time) until an empty one
      for (let batch = await readEntries(reader); batch.length; batch = await readEntries(reader)) {
        for (const child of batch) await walkEntry(child, path, found);
      }
    }
  }

  async function dropped(transfer) {
    // the entries must be taken while the drop event runs: later they are gone
    const items = Array.from(transfer.items || []).filter((item) => item.kind === "file");
    const entries = items.map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
    const plainFiles = Array.from(transfer.files || []);
    const found = { files: [], folders: [] };
    try {
      if (entries.length && entries.every(Boolean)) {
        for (const entry of entries) await walkEntry(entry, "", found);
      } else {
        found.files = plainFiles.map((file) => ({ file, path: file.name }));
      }
    } catch (error) {
      flash("danger", `The dropped files cannot be read: ${error.message}`);
      return;
    }
    if (found.files.length || found.folders.length) await uploadAll(found.files, found.folders);
  }

  function wireDrop() {
    const zone = byId("files-drop-zone");
    const carriesFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
    let depth = 0;
    document.addEventListener("dragenter", (event) => {
      if (!carriesFiles(event)) return;
      depth += 1;
      zone.classList.add("karvdash-drop-active");
    });
    document.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) zone.classList.remove("karvdash-drop-active");
    });
    document.addEventListener("dragover", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    document.addEventListener("drop", (event) => {
      depth = 0;
      zone.classList.remove("karvdash-drop-active");
      if (!event.dataTransfer || !(event.dataTransfer.files.length || (event.dataTransfer.items || []).length)) return;
      event.preventDefault();
      dropped(event.dataTransfer);
    });
  }

  // --- wiring ----------------------------------------------------------------------

  makeSortable(table, sortChanged);
  filterInput.addEventListener("input", filterChanged);
  byId("files-more-button").addEventListener("click", loadMore);
  // the next page comes when the end of the table is about to show
  new IntersectionObserver((seen) => {
    if (seen.some((entry) => entry.isIntersecting)) loadMore();
  }, { rootMargin: "200px" }).observe(byId("files-more"));
  byId("select-all").addEventListener("change", (event) => {
    for (const tr of visibleRows()) setSelected(tr, event.target.checked);
    updateSelection();
  });
  byId("clear-selection").addEventListener("click", clearSelection);
  byId("bulk-download").addEventListener("click", bulkDownload);
  if (config.canWrite) {
    byId("new-folder-button").addEventListener("click", () => create("folder", "New folder"));
    byId("new-file-button").addEventListener("click", () => create("file", "New file"));
    byId("bulk-move").addEventListener("click", bulkMove);
    byId("bulk-delete").addEventListener("click", bulkDelete);
    byId("cancel-all-uploads").addEventListener("click", () => {
      for (const item of Array.from(uploads.items).reverse()) item.cancel();
    });
    const input = byId("upload-input");
    input.addEventListener("change", () => {
      const files = Array.from(input.files);
      input.value = "";
      if (files.length) uploadAll(files.map((file) => ({ file, path: file.name })));
    });
    const folderInput = byId("folder-input");
    folderInput.addEventListener("change", () => {
      const files = Array.from(folderInput.files).map((file) => ({ file, path: file.webkitRelativePath || file.name }));
      folderInput.value = "";
      if (files.length) uploadAll(files, foldersOf(files.map((f) => f.path)));
    });
    for (const [id, target] of [["upload-button", input], ["folder-upload-button", folderInput]]) {
      byId(id).addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          target.click();
        }
      });
    }
    wireDrop();
  }
  window.addEventListener("popstate", (event) => load(event.state ? event.state.path : config.path));
  history.replaceState({ path: state.path }, "", window.location.href);
  load(state.path);
})();
