// The live on-sale view polls its fragment with htmx (hx-trigger="every 5s"). While the
// page is hidden (another tab, a locked phone) nobody reads it, so its polls are dropped;
// when it shows again it asks at once. Without this script it simply polls all the time.
(function () {
  "use strict";

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (document.hidden && event.target.closest("[data-live-sales]")) {
      event.preventDefault();
    }
  });

  document.addEventListener("visibilitychange", function () {
    var live = document.querySelector("[data-live-sales]");
    if (!document.hidden && live && window.htmx) {
      window.htmx.trigger(live, "live-refresh");
    }
  });
})();
