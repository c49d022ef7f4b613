// The Services page (the list with each service's status, refreshed; Remove)
// and the form that starts a service from a template.
(function () {
  "use strict";
  const k = window.karvdash;
  const badge = { ready: "text-bg-success", progressing: "text-bg-warning", failed: "text-bg-danger" };

  function setUpList(table) {
    const config = JSON.parse(document.getElementById("services-config").textContent);

    function addRow(row, s) {
      row.dataset.name = s.name;
      let name = document.createTextNode(s.name);
      if (s.url) {
        name = document.createElement("a");
        name.href = s.url;
        name.target = "_blank";
        name.rel = "noopener";
        name.textContent = s.name;
      }
      k.cell(row, name, s.name).title = s.url ? (s.auth ? "(login required)" : "(open to everyone)") : "";
      k.cell(row, s.template_name || s.template, s.template);
      const status = document.createElement("span");
      status.className = "badge " + (badge[s.status] || "text-bg-secondary");
      status.textContent = s.status;
      k.cell(row, status, s.status);
      k.cell(row, new Date(s.created).toLocaleString(), s.created);
      const actions = k.cell(row, "", "");
      actions.className = "text-end";
      if (config.canWrite) {
        actions.append(k.whenConfirmed(k.button("Remove", "remove", "btn btn-sm btn-outline-danger"), {
          title: "Remove service",
          message: `Remove ${s.name} and everything it runs?`,
          confirmLabel: "Remove",
          run: () => k.api("DELETE", "services/" + encodeURIComponent(s.name)),
          done: `Removed ${s.name}.`,
          after: load,
        }));
      }
    }

    function load() {
      return k.fillTable(table, {
        items: () => k.api("GET", "services"),
        addRow,
        loading: "services-loading",
        empty: "services-empty",
      });
    }

    k.makeSortable(table);
    const created = new URLSearchParams(window.location.search).get("created");
    if (created) k.flash("success", `Started ${created}.`);
    load();
    // statuses change as pods start: show them without a reload
    setInterval(load, 10000);
  }

  function setUpForm(form) {
    k.submitWith(form, document.getElementById("create-service"), async () => {
      const body = { id: form.dataset.template };
      for (const input of form.querySelectorAll("input[name]")) body[input.name] = input.value;
      const service = await k.api("POST", "services", { body });
      window.location.assign(k.pageUrl("services", { created: service.name }));
    });
  }

  const table = document.getElementById("services-table");
  if (table) setUpList(table);
  const form = document.getElementById("new-service-form");
  if (form) setUpForm(form);
})();
