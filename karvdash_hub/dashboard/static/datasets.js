// The Datasets page (list, download YAML, remove) and the form that adds one.
(function () {
  "use strict";
  const k = window.karvdash;

  function setUpList(table) {
    const config = JSON.parse(document.getElementById("datasets-config").textContent);

    function addRow(row, d) {
      row.dataset.name = d.name;
      const link = document.createElement("a");
      link.href = k.apiUrl("datasets/" + encodeURIComponent(d.name), { download: "1" });
      link.textContent = d.name;
      link.title = "Download the YAML (credentials left out)";
      link.className = "dataset-name";
      k.cell(row, link, d.name);
      k.cell(row, d.type_title, d.type);
      k.cell(row, d.endpoint);
      k.cell(row, d.bucket);
      const actions = k.cell(row, "", "");
      actions.className = "text-end";
      if (config.canWrite) {
        actions.append(k.whenConfirmed(k.button("Delete", "delete", "btn btn-sm btn-outline-danger"), {
          title: "Delete dataset",
          message: `Delete the dataset ${d.name}? Its data stays where it is.`,
          confirmLabel: "Delete",
          run: () => k.api("DELETE", "datasets/" + encodeURIComponent(d.name)),
          done: `Deleted ${d.name}.`,
          after: load,
        }));
      }
    }

    function load() {
      return k.fillTable(table, {
        items: () => k.api("GET", "datasets"),
        addRow,
        loading: "datasets-loading",
        empty: "datasets-empty",
      });
    }

    k.makeSortable(table);
    const created = new URLSearchParams(window.location.search).get("created");
    if (created) k.flash("success", `Added the dataset ${created}.`);
    load();
  }

  function setUpForm(form) {
    k.submitWith(form, document.getElementById("create-dataset"), async () => {
      const body = { type: form.dataset.type };
      for (const field of form.querySelectorAll("[name]")) {
        if (field.dataset.kind === "boolean") body[field.name] = field.checked;
        else if (field.value !== "") body[field.name] = field.value;
      }
      const dataset = await k.api("POST", "datasets", { body });
      window.location.assign(k.pageUrl("datasets", { created: dataset.name }));
    });
  }

  const table = document.getElementById("datasets-table");
  if (table) setUpList(table);
  const form = document.getElementById("new-dataset-form");
  if (form) setUpForm(form);
})();
