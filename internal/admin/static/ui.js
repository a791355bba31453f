// The console reads and acts without this script. It only adds comforts:
// "select all" for the dead letters, and a confirmation before a form
// marked data-confirm (replaying every dead letter of a sink).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("select-all");
  if (all) {
    var boxes = document.querySelectorAll('input[type="checkbox"][name="delivery"]');
    all.hidden = false;
    all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
    });
    boxes.forEach(function (b) {
      b.addEventListener("change", function () {
        var n = 0;
        boxes.forEach(function (x) { if (x.checked) { n++; } });
        all.checked = n === boxes.length;
        all.indeterminate = n > 0 && n < boxes.length;
      });
    });
  }
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
});
