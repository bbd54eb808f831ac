/* Focus after an htmx swap. htmx itself gives focus back to the control that had it
   when the swapped-in markup has a control with the same id (every control of the cart
   and of the ticket rows has a stable id). What is left is done here, once the swap
   has settled:
   - an answer with an error: focus goes to its message (or, on the checkout form, to
     the first field marked aria-invalid, which names the message in aria-describedby);
   - the focused control lost focus while the request ran (disabled against a double
     submit, or swapped out of band) and is there again: focus goes back to it;
   - the focused control is gone (Remove, Empty cart): focus goes to the cart's note
     of what changed, else to the cart's heading.
   Focus never falls to <body>, so the next Tab goes on from where the buyer was. */
(function () {
  "use strict";

  var pending = null;
  // The control focused when the request left: a control disabled while the request runs
  // (hx-disabled-elt, against double submits) loses focus, and gets it back here.
  var focusedAtRequest = null;

  function focusOn(el) {
    if (!el) return false;
    if (!el.hasAttribute("tabindex") && !el.matches("a[href], button, input, select, textarea")) {
      el.setAttribute("tabindex", "-1");
    }
    el.focus({ preventScroll: false });
    return document.activeElement === el;
  }

  function lost() {
    var active = document.activeElement;
    return !active || active === document.body || !active.isConnected;
  }

  document.addEventListener("htmx:beforeRequest", function () {
    var active = document.activeElement;
    focusedAtRequest = active && active !== document.body && active.id ? active.id : null;
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.id) return;
    pending = { targetId: target.id, error: event.detail.xhr.status >= 400 };
  });

  document.addEventListener("htmx:afterSettle", function () {
    var job = pending;
    pending = null;
    if (!job) return;
    var target = document.getElementById(job.targetId);
    if (!target) return;
    if (job.error) {
      if (focusOn(target.querySelector("[aria-invalid='true']"))) return;
      if (focusOn(target.querySelector("[role='alert']"))) return;
    }
    if (!lost()) return;
    var before = focusedAtRequest && document.getElementById(focusedAtRequest);
    if (before && !before.disabled && focusOn(before)) return;
    focusOn(target.querySelector(".cart-news") || target.querySelector("h1, h2") || target);
  });
})();
