// Site menu that collapses behind a "Menu" button on narrow screens.
// Loaded in <head> without defer so the `js` class is set before the first paint: without
// JavaScript the menu simply stays open.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  document.addEventListener("DOMContentLoaded", function () {
    const button = document.querySelector(".nav-toggle");
    if (!button) return;

    function setOpen(open) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
    }

    button.addEventListener("click", function () {
      setOpen(button.getAttribute("aria-expanded") !== "true");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
        setOpen(false);
        button.focus();
      }
    });
  });
})();
