// The Images pages: repositories, one image's tags grouped by digest (with
// deletion for administrators), and the form that pushes an archive.
(function () {
  "use strict";
  const k = window.karvdash;

  function repositoryPath(name) {
    return name.split("/").map(encodeURIComponent).join("/");
  }

  function setUpList(table) {
    function addRow(row, image) {
      row.dataset.name = image.name;
      const link = document.createElement("a");
      link.href = k.prefix + "images/view/" + repositoryPath(image.name);
      link.textContent = image.name;
      k.cell(row, link, image.name);
      k.cell(row, String(image.tags.length), image.tags.length);
    }
    k.makeSortable(table);
    const pushed = new URLSearchParams(window.location.search).get("pushed");
    if (pushed) k.flash("success", `Pushed ${pushed}.`);
    k.fillTable(table, {
      items: async () => (await k.api("GET", "images")).images,
      addRow,
      loading: "images-loading",
      empty: "images-empty",
    });
  }

  function setUpImage(table) {
    const config = JSON.parse(document.getElementById("image-config").textContent);

    function tagBadge(group, tag) {
      const item = document.createElement("span");
      item.className = "badge text-bg-secondary d-inline-flex align-items-center gap-1 image-tag";
      item.dataset.tag = tag;
      item.append(document.createTextNode(tag));
      if (config.canDelete) {
        const remove = k.button("", "delete", "btn-close btn-close-white");
        remove.style.fontSize = "0.6em";
        remove.setAttribute("aria-label", `Delete tag ${tag}`);
        const others = group.tags.filter((t) => t !== tag);
        const note = others.length ? ` The image stays under ${others.join(", ")}.` : "";
        item.append(k.whenConfirmed(remove, {
          title: "Delete tag",
          message: `Delete ${config.name}:${tag}?${note}`,
          confirmLabel: "Delete",
          run: () => k.api("DELETE", `images/${repositoryPath(config.name)}:${encodeURIComponent(tag)}`),
          done: `Deleted ${config.name}:${tag}.`,
          after: load,
        }));
      }
      return item;
    }

    function addRow(row, group) {
      row.dataset.digest = group.digest;
      const tags = document.createElement("div");
      tags.className = "d-flex flex-wrap gap-2";
      for (const tag of group.tags) tags.append(tagBadge(group, tag));
      k.cell(row, tags, group.tags.join(","));
      const digest = document.createElement("code");
      digest.textContent = group.digest.slice(0, 19);
      digest.title = group.digest;
      k.cell(row, digest, group.digest);
      k.cell(row, k.formatSize(group.size), group.size).className = "text-end";
    }

    function load() {
      return k.fillTable(table, {
        items: async () => (await k.api("GET", "images/" + repositoryPath(config.name))).digests,
        addRow,
        loading: "images-loading",
        empty: "image-empty",
      });
    }
    load();
  }

  function setUpPush(form) {
    const progress = document.getElementById("push-progress");
    k.submitWith(form, document.getElementById("push-image"), async () => {
      const body = {
        domain: document.getElementById("image-domain").value,
        path: document.getElementById("image-file").value.trim(),
        name: document.getElementById("image-name").value.trim(),
        tag: document.getElementById("image-tag").value.trim(),
      };
      progress.hidden = false;
      try {
        const pushed = await k.api("POST", "images", { body });
        window.location.assign(k.pageUrl("images", { pushed: `${pushed.name}:${pushed.tag}` }));
      } catch (error) {
        progress.hidden = true;
        throw error;
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
