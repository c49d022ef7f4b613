// The Images pages: repositories, one image's tags grouped by digest (with
// deletion for administrators), and the form that pushes an archive.
(function () {
  "use strict";
  const k = window.karvdash;

  function cell(row, content, value) {
    const td = row.insertCell();
    if (content instanceof Node) td.append(content); else td.textContent = content;
    td.dataset.value = value === undefined ? String(content) : value;
    return td;
  }

  function repositoryPath(name) {
    return name.split("/").map(encodeURIComponent).join("/");
  }

  function setUpList(table) {
    async function load() {
      let listing;
      try {
        listing = await k.api("GET", "images");
      } catch (error) {
        document.getElementById("images-loading").hidden = true;
        k.flash("danger", error.message);
        return;
      }
      const body = table.tBodies[0];
      body.replaceChildren();
      for (const image of listing.images) {
        const row = body.insertRow();
        row.dataset.name = image.name;
        const link = document.createElement("a");
        link.href = k.prefix + "images/view/" + repositoryPath(image.name);
        link.textContent = image.name;
        cell(row, link, image.name);
        cell(row, String(image.tags.length), image.tags.length);
      }
      document.getElementById("images-loading").hidden = true;
      document.getElementById("images-empty").hidden = listing.images.length > 0;
      k.sortTable(table);
    }
    k.makeSortable(table, () => k.sortTable(table));
    const pushed = new URLSearchParams(window.location.search).get("pushed");
    if (pushed) k.flash("success", `Pushed ${pushed}.`);
    load();
  }

  function setUpImage(table) {
    const config = JSON.parse(document.getElementById("image-config").textContent);

    async function load() {
      let image;
      try {
        image = await k.api("GET", "images/" + repositoryPath(config.name));
      } catch (error) {
        document.getElementById("images-loading").hidden = true;
        k.flash("danger", error.message);
        return;
      }
      const body = table.tBodies[0];
      body.replaceChildren();
      for (const group of image.digests) {
        const row = body.insertRow();
        row.dataset.digest = group.digest;
        const tags = document.createElement("div");
        tags.className = "d-flex flex-wrap gap-2";
        for (const tag of group.tags) {
          const item = document.createElement("span");
          item.className = "badge text-bg-secondary d-inline-flex align-items-center gap-1 image-tag";
          item.dataset.tag = tag;
          item.append(document.createTextNode(tag));
          if (config.canDelete) {
            const remove = document.createElement("button");
            remove.type = "button";
            remove.className = "btn-close btn-close-white";
            remove.style.fontSize = "0.6em";
            remove.setAttribute("aria-label", `Delete tag ${tag}`);
            remove.dataset.action = "delete";
            remove.addEventListener("click", async () => {
              const others = group.tags.filter((t) => t !== tag);
              const note = others.length ? ` The image stays under ${others.join(", ")}.` : "";
              if (!(await k.confirmAction("Delete tag", `Delete ${config.name}:${tag}?${note}`, "Delete"))) return;
              try {
                await k.api("DELETE", `images/${repositoryPath(config.name)}:${encodeURIComponent(tag)}`);
                k.flash("success", `Deleted ${config.name}:${tag}.`);
              } catch (error) {
                k.flash("danger", error.message);
              }
              load();
            });
            item.append(remove);
          }
          tags.append(item);
        }
        cell(row, tags, group.tags.join(","));
        const digest = document.createElement("code");
        digest.textContent = group.digest.slice(0, 19);
        digest.title = group.digest;
        cell(row, digest, group.digest);
        const size = cell(row, k.formatSize(group.size), group.size);
        size.className = "text-end";
      }
      document.getElementById("images-loading").hidden = true;
      document.getElementById("image-empty").hidden = image.digests.length > 0;
    }
    load();
  }

  function setUpPush(form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {
        domain: document.getElementById("image-domain").value,
        path: document.getElementById("image-file").value.trim(),
        name: document.getElementById("image-name").value.trim(),
        tag: document.getElementById("image-tag").value.trim(),
      };
      const button = document.getElementById("push-image");
      const progress = document.getElementById("push-progress");
      button.disabled = true;
      progress.hidden = false;
      try {
        const pushed = await k.api("POST", "images", { body });
        window.location.assign(k.prefix + "images?pushed=" + encodeURIComponent(`${pushed.name}:${pushed.tag}`));
      } catch (error) {
        k.flash("danger", error.message);
        button.disabled = false;
        progress.hidden = true;
      }
    });
  }

  const list = document.getElementById("images-table");
  if (list) setUpList(list);
  const digests = document.getElementById("digests-table");
  if (digests) setUpImage(digests);
  const form = document.getElementById("add-image-form");
  if (form) setUpPush(form);
})();
