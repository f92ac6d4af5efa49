// Manager pages: the RRULE builder shows the fields of the chosen preset; copy the feed URL.
(function () {
  "use strict";

  function setupRuleBuilder(box) {
    var radios = box.querySelectorAll('input[name="preset"]');
    var parts = box.querySelectorAll("[data-preset]");
    function update() {
      var chosen = box.querySelector('input[name="preset"]:checked');
      var value = chosen ? chosen.value : "weekly";
      parts.forEach(function (part) {
        part.hidden = part.getAttribute("data-preset") !== value;
      });
    }
    box.classList.add("enhanced");
    radios.forEach(function (radio) { radio.addEventListener("change", update); });
    update();
  }

  function setupCopy(button) {
    button.addEventListener("click", function () {
      var field = document.querySelector(button.getAttribute("data-copy"));
      if (!field) { return; }
      field.select();
      var done = function () { window.welfare.status(button.getAttribute("data-copied"), true); };
      var failed = function () { window.welfare.status(button.getAttribute("data-copy-failed"), false); };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(field.value).then(done, failed);
      } else {
        try { if (document.execCommand("copy")) { done(); } else { failed(); } } catch (e) { failed(); }
      }
    });
  }

  document.querySelectorAll("[data-rule-builder]").forEach(setupRuleBuilder);
  document.querySelectorAll("[data-copy]").forEach(setupCopy);
})();
