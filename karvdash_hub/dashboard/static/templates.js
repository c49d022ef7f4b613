// The Templates page: sort, delete your own templates (after confirmation)
// and add one from a YAML file of this computer.
(function () {
  "use strict";
  const k = window.karvdash;
  const table = document.getElementById("templates-table");
  k.makeSortable(table);

  const said = new URLSearchParams(window.location.search);
  if (said.get("added")) k.flash("success", `Added the template ${said.get("added")}.`);
  if (said.get("deleted")) k.flash("success", `Deleted the template ${said.get("deleted")}.`);

  for (const button of table.querySelectorAll("[data-action=delete]")) {
    k.whenConfirmed(button, {
      title: "Delete template",
      message: `Delete ${button.dataset.name}? Services started from it keep running.`,
      confirmLabel: "Delete",
      run: async () => {
        await k.api("DELETE", "templates/" + encodeURIComponent(button.dataset.id));
        window.location.assign(k.pageUrl("templates", { deleted: button.dataset.name }));
      },
    });
  }

  const upload = document.getElementById("template-upload");
  if (upload) {
    upload.addEventListener("change", async () => {
      const file = upload.files[0];
      upload.value = "";
      if (!file) return;
      try {
        const template = await k.api("POST", "templates", { body: { data: await file.text() } });
        window.location.assign(k.pageUrl("templates", { added: template.name }));
      } catch (error) {
        k.flash("danger", `${file.name}: ${error.message}`);
      }
    });
    document.getElementById("add-template-button").addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        upload.click();
      }
    });
  }
})();
