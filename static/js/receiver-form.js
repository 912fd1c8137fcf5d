// The receiver form shows the fields of the chosen kind only, and names its secret for it
// (webhook URL, routing key, phone number...). Without this script every field is shown.
(function () {
  "use strict";

  function init() {
    const kind = document.getElementById("id_kind");
    const secret = document.getElementById("secret-field");
    const label = document.getElementById("secret-label");
    if (!kind || !secret || !label) return;

    function update() {
      const chosen = kind.value;
      document.querySelectorAll("#receiver-form [data-kinds]").forEach(function (part) {
        part.hidden = part.dataset.kinds.split(" ").indexOf(chosen) < 0;
      });
      label.textContent = secret.getAttribute("data-label-" + chosen) || "Secret";
    }

    kind.addEventListener("change", update);
    update();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
