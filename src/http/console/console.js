// The console's only script, served as a file (the pages' CSP allows no inline script): copy
// buttons, and metadata files read into the box they would be pasted in. Without it every value
// is still on the page to select and copy by hand, and the metadata is pasted.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const target = document.getElementById(button.dataset.copy);
    if (!target || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(target.textContent.trim());
        button.textContent = "Copied";
      } catch (_) {
        button.textContent = "Select and copy by hand";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }
  for (const input of document.querySelectorAll("input[type=file][data-into]")) {
    const target = document.getElementById(input.dataset.into);
    if (!target || !window.File || !File.prototype.text) continue;
    const field = input.closest("[data-needs-script]");
    if (field) field.hidden = false;
    input.addEventListener("change", async () => {
      const file = input.files[0];
      if (file) target.value = await file.text();
    });
  }
});
