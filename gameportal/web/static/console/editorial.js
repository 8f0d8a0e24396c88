// The content and media pages' script (an ES module; pages have no inline script, see
// the CSP). All of it is an enhancement: without it, uploads are plain form posts, the
// editor has a Preview button, and media are attached by ticking them.

document.documentElement.classList.add("js");

const token = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

// --- uploads: drag and drop, a progress bar per file ------------------------------------

function insertFragment(list, html) {
  if (!list) return;
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  const element = template.content.firstElementChild;
  if (!element) return;
  list.querySelector(".empty-row")?.remove();
  list.prepend(element);
  window.htmx?.process(element); // its status polling
  element.querySelector('input[type="checkbox"]')?.dispatchEvent(
    new Event("change", { bubbles: true }),
  );
}

function upload(form, file, progressList, list) {
  const row = document.createElement("li");
  row.className = "upload";
  const name = document.createElement("span");
  name.className = "upload-name";
  name.textContent = file.name;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute("aria-label", `Upload of ${file.name}`);
  const note = document.createElement("span");
  note.className = "upload-note";
  note.textContent = "Uploading…";
  row.append(name, bar, note);
  progressList?.prepend(row);

  const data = new FormData();
  for (const field of form.querySelectorAll('input[type="hidden"]')) {
    data.append(field.name, field.value);
  }
  data.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", form.action);
  // The console answers a script's request with the new item's fragment, not a page.
  xhr.setRequestHeader("HX-Request", "true");
  xhr.setRequestHeader("X-CSRF-Token", token);
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) bar.value = Math.round((event.loaded / event.total) * 100);
  });
  const failed = (message) => {
    row.classList.add("upload-failed");
    bar.remove();
    note.textContent = message;
    note.setAttribute("role", "alert");
  };
  xhr.addEventListener("load", () => {
    const redirect = xhr.getResponseHeader("HX-Redirect");
    if (redirect) {
      window.location.assign(redirect); // signed out meanwhile
      return;
    }
    if (xhr.status === 201) {
      bar.value = 100;
      note.textContent = "Uploaded";
      row.classList.add("upload-done");
      insertFragment(list, xhr.responseText);
      window.setTimeout(() => row.remove(), 5000);
      return;
    }
    const plain = (xhr.getResponseHeader("Content-Type") ?? "").startsWith("text/plain");
    failed(plain && xhr.responseText
      ? xhr.responseText
      : `The upload failed (${xhr.status}). Reload the page and try again.`);
  });
  xhr.addEventListener("error", () => failed("The connection failed. Try again."));
  xhr.send(data);
}

for (const form of document.querySelectorAll("form[data-upload]")) {
  const input = form.querySelector('input[type="file"]');
  const zone = form.querySelector("[data-dropzone]");
  const progressList = form.querySelector("[data-upload-progress]");
  const list = document.querySelector(form.dataset.uploadList);
  const send = (files) => {
    for (const file of files) upload(form, file, progressList, list);
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!input.files.length) {
      input.focus();
      return;
    }
    send([...input.files]);
    input.value = "";
  });
  // Choosing files is enough: no second click on Upload.
  input.addEventListener("change", () => {
    if (input.files.length) form.requestSubmit();
  });
  if (zone) {
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (event) => {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    }
    zone.addEventListener("dragleave", (event) => {
      if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      send([...(event.dataTransfer?.files ?? [])]);
    });
  }
}

// --- the editor -----------------------------------------------------------------------------

const editor = document.querySelector("form[data-editor]");
const text = document.getElementById("content-body");

if (editor) {
  let unsaved = false;
  const mark = (event) => {
    if (event.target?.form === editor) unsaved = true; // picker boxes too (form="content-form")
  };
  document.addEventListener("input", mark);
  document.addEventListener("change", mark);
  editor.addEventListener("submit", () => {
    unsaved = false;
  });
  window.addEventListener("beforeunload", (event) => {
    if (unsaved) event.preventDefault();
  });
  // Publish, schedule, archive act on the saved version, not on what is in the editor.
  document.addEventListener(
    "submit",
    (event) => {
      const form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-guard-unsaved")) return;
      if (!unsaved) return;
      const ok = window.confirm(
        "Your changes in the editor are not saved. Go on with the last saved version?",
      );
      if (ok) {
        unsaved = false;
      } else {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true,
  );
}

// "Insert": the media's Markdown at the cursor, the file ticked (attached) as well.
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element
    ? event.target.closest("[data-insert-markdown]")
    : null;
  if (!button || !text) return;
  const snippet = button.dataset.insertMarkdown;
  const start = text.selectionStart ?? text.value.length;
  const end = text.selectionEnd ?? start;
  const before = text.value.slice(0, start);
  const gap = before && !before.endsWith("\n\n") ? (before.endsWith("\n") ? "\n" : "\n\n") : "";
  text.setRangeText(`${gap}${snippet}\n`, start, end, "end");
  text.dispatchEvent(new Event("input", { bubbles: true })); // the preview follows
  const box = document.getElementById(button.dataset.attach);
  if (box && !box.checked) {
    box.checked = true;
    box.dispatchEvent(new Event("change", { bubbles: true }));
  }
  text.focus();
});
