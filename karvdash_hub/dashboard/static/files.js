// The Files page: browse a domain without page reloads, create folders,
// rename, move, delete (after confirmation), download, and upload many or
// large files in resumable chunks with a progress bar.
(function () {
  "use strict";

  const { api, apiUrl, pageUrl: dashboardUrl, encodePath, flash, confirmAction, promptText, dialog, makeSortable, sortTable, cell } =
    window.karvdash;
  const config = JSON.parse(document.getElementById("files-config").textContent);
  const CHUNK_SIZE = 16 * 1024 * 1024;
  const RETRIES = 5;

  const state = { domain: config.domain, path: config.path };
  const table = document.getElementById("files-table");
  const tbody = table.tBodies[0];
  const join = (...parts) => parts.filter(Boolean).join("/");

  function pageUrl(domain, path) {
    return dashboardUrl(`files/${domain}/` + (path ? encodePath(path) + "/" : ""));
  }

  function downloadUrl(path) {
    return apiUrl(`download/${state.domain}/${encodePath(path)}`);
  }

  // --- listing ---------------------------------------------------------------------

  async function load(path, { push = false } = {}) {
    document.getElementById("files-loading").hidden = false;
    try {
      const listing = await api("GET", `files/${state.domain}/${encodePath(path)}`);
      state.path = listing.path;
      render(listing.entries);
      if (push) history.pushState({ path: state.path }, "", pageUrl(state.domain, state.path));
    } catch (error) {
      flash("danger", error.message);
    } finally {
      document.getElementById("files-loading").hidden = true;
    }
  }

  function renderBreadcrumb() {
    const crumbs = document.getElementById("breadcrumb");
    crumbs.replaceChildren();
    const parts = state.path ? state.path.split("/") : [];
    const title = config.domains.find((d) => d.name === state.domain).title;
    const levels = [[title, ""]].concat(parts.map((part, i) => [part, parts.slice(0, i + 1).join("/")]));
    levels.forEach(([label, path], index) => {
      const item = document.createElement("li");
      item.className = "breadcrumb-item";
      if (index === levels.length - 1) {
        item.classList.add("active");
        item.setAttribute("aria-current", "page");
        item.textContent = label;
      } else {
        const link = document.createElement("a");
        link.href = pageUrl(state.domain, path);
        link.textContent = label;
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
    for (const entry of entries) tbody.appendChild(row(entry));
    document.getElementById("files-empty").hidden = entries.length > 0;
    sortTable(table);
  }

  function row(entry) {
    const tr = document.createElement("tr");
    const path = join(state.path, entry.name);
    tr.dataset.name = entry.name;
    tr.dataset.type = entry.type;
    tr.dataset.group = entry.type === "folder" ? "0" : "1";

    const nameCell = cell(tr, "", entry.name);
    nameCell.className = "file-name";
    const icon = document.createElement("i");
    icon.className = "file-icon fa " + (entry.type === "folder" ? "fa-folder" : entry.type === "link" ? "fa-link" : "fa-file");
    icon.setAttribute("aria-hidden", "true");
    nameCell.appendChild(icon);
    if (entry.type === "link") {
      const span = document.createElement("span");
      span.textContent = entry.name;
      span.title = "A link that leads outside this domain or nowhere";
      nameCell.appendChild(span);
    } else {
      const link = document.createElement("a");
      link.textContent = entry.name;
      link.className = "file-link";
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
    cell(tr, window.karvdash.formatDate(entry.modified), entry.modified);
    cell(tr, entry.type === "folder" ? "" : window.karvdash.formatSize(entry.size), entry.size).className = "text-end";
    actionsCell(cell(tr, "", ""), entry, path);
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
      item(entry.type === "folder" ? "Download as zip" : "Download", "download", () => {
        const a = document.createElement("a");
        a.href = downloadUrl(path);
        a.download = entry.type === "folder" ? `${entry.name}.zip` : entry.name;
        document.body.appendChild(a);
        a.click();
        a.remove();
      });
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
    td.appendChild(menu);
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

  async function newFolder() {
    const name = await promptText("New folder", "Name", "", "Create");
    if (!name) return;
    try {
      await api("POST", `files/${state.domain}/${encodePath(join(state.path, name))}`, { body: { type: "folder" } });
      flash("success", `Folder ${name} created.`);
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

  async function move(entry, path) {
    const body = document.createElement("div");
    const label = document.createElement("label");
    label.className = "form-label";
    label.htmlFor = "move-domain";
    label.textContent = "Domain";
    const select = document.createElement("select");
    select.className = "form-select mb-3";
    select.id = "move-domain";
    for (const domain of config.domains) {
      const option = new Option(domain.title, domain.name, false, domain.name === state.domain);
      select.appendChild(option);
    }
    body.append(label, select);
    const folder = await dialog({
      title: `Move ${entry.name}`,
      body,
      confirmLabel: "Move",
      input: { label: "To folder (empty for the top folder)", value: state.path },
    });
    if (folder === null) return;
    await moveTo(entry, path, select.value, join(...folder.split("/").filter(Boolean), entry.name));
  }

  async function moveTo(entry, path, domain, target) {
    try {
      const moved = await withOverwrite(entry.name, (overwrite) =>
        api("PATCH", `files/${state.domain}/${encodePath(path)}`, { body: { domain, path: target, overwrite } })
      );
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

  // --- uploads ---------------------------------------------------------------------

  function progressRow(file) {
    const box = document.createElement("div");
    box.className = "karvdash-upload mb-2";
    box.dataset.name = file.name;
    const label = document.createElement("div");
    label.className = "small";
    label.textContent = `${file.name} (${window.karvdash.formatSize(file.size)})`;
    const bar = document.createElement("div");
    bar.className = "progress";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-label", `Upload of ${file.name}`);
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    const fill = document.createElement("div");
    fill.className = "progress-bar progress-bar-striped progress-bar-animated";
    bar.appendChild(fill);
    box.append(label, bar);
    document.getElementById("uploads").appendChild(box);
    const set = (done) => {
      const percent = file.size ? Math.floor((done * 100) / file.size) : 100;
      bar.setAttribute("aria-valuenow", String(percent));
      fill.style.width = `${percent}%`;
      fill.textContent = `${percent}%`;
    };
    set(0);
    return {
      set,
      finish(ok, message) {
        fill.classList.remove("progress-bar-animated", "progress-bar-striped");
        fill.classList.add(ok ? "bg-success" : "bg-danger");
        box.dataset.state = ok ? "done" : "failed";
        if (message) label.textContent += ` - ${message}`;
        if (ok) setTimeout(() => box.remove(), 4000);
      },
    };
  }

  function sendChunk(id, offset, blob, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", apiUrl(`uploads/${id}`));
      xhr.setRequestHeader("X-XSRFToken", window.jhdata.xsrf_token);
      xhr.setRequestHeader("Upload-Offset", String(offset));
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = (event) => onProgress(event.loaded);
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
      xhr.send(blob);
    });
  }

  // Remember unfinished uploads, so adding the same file again resumes it.
  const resumeKey = (domain, path, file) => `karvdash-upload:${domain}:${path}:${file.size}:${file.lastModified}`;

  async function startUpload(domain, path, file) {
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

  async function uploadFile(file) {
    const domain = state.domain;
    const path = join(state.path, file.name);
    const progress = progressRow(file);
    try {
      const upload = await startUpload(domain, path, file);
      if (!upload) {
        progress.finish(false, "skipped");
        return false;
      }
      let offset = upload.offset;
      let failures = 0;
      for (;;) {
        const end = Math.min(offset + CHUNK_SIZE, file.size);
        try {
          const result = await sendChunk(upload.id, offset, file.slice(offset, end), (sent) => progress.set(offset + sent));
          offset = result.offset;
          progress.set(offset);
          failures = 0;
          if (result.complete) break;
        } catch (error) {
          if (error.status === 409 && offset >= file.size && error.body.offset === undefined) {
            // the name was taken while the bytes were on their way
            if (!(await confirmAction("Replace?", `${error.message}. Replace it?`, "Replace"))) {
              await api("DELETE", `uploads/${upload.id}`);
              localStorage.removeItem(resumeKey(domain, path, file));
              progress.finish(false, "skipped");
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
          offset = (await api("GET", `uploads/${upload.id}`)).offset;
        }
      }
      localStorage.removeItem(resumeKey(domain, path, file));
      progress.finish(true);
      return true;
    } catch (error) {
      progress.finish(false, error.message);
      flash("danger", `${file.name}: ${error.message}`);
      return false;
    }
  }

  async function uploadFiles(files) {
    let done = 0;
    for (const file of files) {
      if (await uploadFile(file)) done += 1;
    }
    if (done) flash("success", `${done} file${done === 1 ? "" : "s"} uploaded.`);
    await load(state.path);
  }

  // --- wiring ----------------------------------------------------------------------

  makeSortable(table);
  const newFolderButton = document.getElementById("new-folder-button");
  if (newFolderButton) newFolderButton.addEventListener("click", newFolder);
  const input = document.getElementById("upload-input");
  if (input) {
    input.addEventListener("change", () => {
      const files = Array.from(input.files);
      input.value = "";
      if (files.length) uploadFiles(files);
    });
    document.getElementById("upload-button").addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        input.click();
      }
    });
  }
  window.addEventListener("popstate", (event) => load(event.state ? event.state.path : config.path));
  history.replaceState({ path: state.path }, "", window.location.href);
  load(state.path);
})();
