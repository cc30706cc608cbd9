// Wharf console: small progressive enhancements. Every page works without
// this file; it adds copy buttons, confirmation prompts for destructive
// forms, and the theme switch.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="text"> or data-copy-from="#id".
  function copyText(text, button) {
    function done() {
      var label = button.textContent;
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () {
        button.textContent = label;
        button.classList.remove("copied");
      }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else {
      fallback(text);
      done();
    }
  }

  // Plain http has no clipboard API: select a hidden textarea and copy it.
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing else to try */ }
    document.body.removeChild(area);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy], [data-copy-from]");
    if (!button) { return; }
    event.preventDefault();
    var text = button.getAttribute("data-copy");
    if (text === null) {
      var source = document.querySelector(button.getAttribute("data-copy-from"));
      text = source ? (source.value !== undefined ? source.value : source.textContent) : "";
    }
    copyText(text.trim(), button);
  });

  // Destructive forms carry data-confirm="question". Without JavaScript the
  // server answers such a post with a confirmation page of its own.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (!question) { return; }
    if (!window.confirm(question)) {
      event.preventDefault();
      return;
    }
    // Agreed here, so the server need not ask again on a page of its own.
    var field = form.querySelector("input[name=confirm]");
    if (!field) {
      field = document.createElement("input");
      field.type = "hidden";
      field.name = "confirm";
      form.appendChild(field);
    }
    field.value = "yes";
  });

  // Theme: follows the system unless the user picked one.
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("wharf-theme"); } catch (e) { saved = null; }
  if (saved === "dark" || saved === "light") { root.setAttribute("data-theme", saved); }
  // The switch needs this script, so it is shown only when it runs.
  Array.prototype.forEach.call(document.querySelectorAll("[data-theme-toggle]"), function (b) {
    b.hidden = false;
  });
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-theme-toggle]");
    if (!toggle) { return; }
    var dark = root.getAttribute("data-theme") === "dark" ||
      (!root.getAttribute("data-theme") && window.matchMedia("(prefers-color-scheme: dark)").matches);
    var next = dark ? "light" : "dark";
    root.setAttribute("data-theme", next);
    try { localStorage.setItem("wharf-theme", next); } catch (e) { /* private mode */ }
  });
})();
