// Warden console: the little behaviour the pages need. No inline script anywhere (the CSP
// forbids it); everything is wired here from data- attributes.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Forms whose effect cannot be undone ask first: <form data-confirm="…">.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  // The navigation folds away on narrow screens.
  var toggle = document.getElementById("nav-toggle");
  var nav = document.getElementById("nav-links");
  if (toggle && nav) {
    toggle.addEventListener("click", function () {
      var open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  // Selects marked data-autosubmit send their form when changed (tabs, filters).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      if (select.form) select.form.submit();
    });
  });
});
