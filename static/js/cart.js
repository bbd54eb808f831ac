/* Cart countdown: ticks every element with data-countdown="<seconds left>", and at
   zero fires the "lapsed" event on it, which htmx turns into a POST that releases
   the hold and swaps in the cart (or the checkout page) saying so. The deadline is taken from the server's
   count of seconds, so a wrong clock on the buyer's machine does not matter. */
(function () {
  "use strict";

  function format(seconds) {
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      if (!el.dataset.deadline) {
        el.dataset.deadline = String(now + parseInt(el.dataset.countdown, 10) * 1000);
      }
      var left = Math.max(0, Math.ceil((Number(el.dataset.deadline) - now) / 1000));
      var clock = el.querySelector(".countdown-clock");
      if (clock) clock.textContent = format(left);
      el.classList.toggle("countdown-urgent", left <= 60);
      // The last minute and the end, said once each in the polite status (never the clock).
      var announce = el.querySelector(".countdown-announce");
      var say = left === 0 ? "ended" : left <= 60 ? "lastMinute" : null;
      if (announce && say && el.dataset.said !== say) {
        el.dataset.said = say;
        announce.textContent = announce.dataset[say] || "";
      }
      if (left === 0 && !el.dataset.fired && window.htmx) {
        el.dataset.fired = "1";
        window.htmx.trigger(el, "lapsed");
        // On the checkout page the form can no longer be sent (the answer says why).
        var checkout = el.closest("#checkout");
        var pay = checkout && checkout.querySelector("button.pay");
        if (pay) pay.disabled = true;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", tick);
  // After htmx has finished setting up the swapped-in elements, so "lapsed" reaches a listener.
  document.addEventListener("htmx:load", function () { setTimeout(tick, 0); });
  setInterval(tick, 1000);
})();
