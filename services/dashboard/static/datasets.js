// The Datasets page (list, download YAML, remove) and the form that adds one.
(function () {
  "use strict";
  const k = window.karvdash;

  function cell(row, content, value) {
    const td = row.insertCell();
    if (content instanceof Node) td.append(content); else td.textContent = content;
    td.dataset.value = value === undefined ? String(content) : value;
    return td;
  }

  function setUpList(table) {
    const config = JSON.parse(document.getElementById("datasets-config").textContent);
    const query = { as: config.as };

    async function load() {
      let datasets;
      try {
        datasets = await k.api("GET", "datasets", { query });
      } catch (error) {
        document.getElementById("datasets-loading").hidden = true;
        k.flash("danger", error.message);
        return;
      }
      const body = table.tBodies[0];
      body.replaceChildren();
      for (const d of datasets) {
        const row = body.insertRow();
        row.dataset.name = d.name;
        const link = document.createElement("a");
        link.href = k.apiUrl("datasets/" + encodeURIComponent(d.name), { download: "1", as: config.as });
        link.textContent = d.name;
        link.title = "Download the YAML (credentials left out)";
        link.className = "dataset-name";
        cell(row, link, d.name);
        cell(row, d.type_title, d.type);
        cell(row, d.endpoint);
        cell(row, d.bucket);
        const actions = cell(row, "", "");
        actions.className = "text-end";
        if (config.canWrite) {
          const remove = document.createElement("button");
          remove.type = "button";
          remove.className = "btn btn-sm btn-outline-danger";
          remove.textContent = "Delete";
          remove.dataset.action = "delete";
          remove.addEventListener("click", async () => {
            if (!(await k.confirmAction("Delete dataset", `Delete the dataset ${d.name}? Its data stays where it is.`, "Delete"))) return;
            try {
              await k.api("DELETE", "datasets/" + encodeURIComponent(d.name), { query });
              k.flash("success", `Deleted ${d.name}.`);
            } catch (error) {
              k.flash("danger", error.message);
            }
            load();
          });
          actions.append(remove);
        }
      }
      document.getElementById("datasets-loading").hidden = true;
      document.getElementById("datasets-empty").hidden = datasets.length > 0;
      k.sortTable(table);
    }

    k.makeSortable(table, () => k.sortTable(table));
    const created = new URLSearchParams(window.location.search).get("created");
    if (created) k.flash("success", `Added the dataset ${created}.`);
    load();
  }

  function setUpForm(form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { type: form.dataset.type };
      for (const field of form.querySelectorAll("[name]")) {
        if (field.dataset.kind === "boolean") body[field.name] = field.checked;
        else if (field.value !== "") body[field.name] = field.value;
      }
      const button = document.getElementById("create-dataset");
      button.disabled = true;
      const as = form.dataset.as;
      try {
        const dataset = await k.api("POST", "datasets", { body, query: { as } });
        const back = new URLSearchParams({ created: dataset.name });
        if (as) back.set("as", as);
        window.location.assign(k.prefix + "datasets?" + back.toString());
      } catch (error) {
        k.flash("danger", error.message);
        button.disabled = false;
      }
    });
  }

  const table = document.getElementById("datasets-table");
  if (table) setUpList(table);
  const form = document.getElementById("new-dataset-form");
  if (form) setUpForm(form);
})();
