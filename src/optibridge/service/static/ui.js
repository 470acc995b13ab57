// Optional auto-refresh of the status page; the choice is remembered in this browser.
(function () {
  "use strict";
  var box = document.getElementById("auto-refresh");
  if (!box) { return; }
  var key = "optibridge-auto-refresh";
  box.checked = window.localStorage.getItem(key) === "on";
  var timer = null;
  function schedule() {
    if (timer) { window.clearTimeout(timer); timer = null; }
    if (box.checked) {
      timer = window.setTimeout(function () {
        if (document.visibilityState === "visible") { window.location.reload(); } else { schedule(); }
      }, 10000);
    }
  }
  box.addEventListener("change", function () {
    window.localStorage.setItem(key, box.checked ? "on" : "off");
    schedule();
  });
  schedule();
}());
