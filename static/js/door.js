// The door page: reads QR codes with the camera and sends each as a scan, without
// reloading the page. The browser's BarcodeDetector reads them where it can; elsewhere
// the vendored jsQR (static/vendor/, loaded only then). Everything else on the page is
// plain forms and htmx, and works without this script (typed codes, search).
(function () {
  "use strict";

  // Printing the door list (a button, as the CSP allows no inline handler).
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-print]")) {
      window.print();
    }
  });

  var root = document.querySelector("[data-door]");
  if (!root) {
    return;
  }
  var form = document.getElementById("door-scan-form");
  var answer = document.getElementById("door-answer");
  var secretInput = document.getElementById("door-secret");
  var codeInput = document.getElementById("door-code");
  var camera = root.querySelector("[data-camera]");
  var frame = root.querySelector("[data-camera-frame]");
  var video = root.querySelector("[data-camera-video]");
  var status = root.querySelector("[data-camera-status]");
  var startButton = root.querySelector("[data-camera-start]");
  var stopButton = root.querySelector("[data-camera-stop]");

  // The same code held in front of the camera is sent once, not every frame.
  var REPEAT_AFTER_MS = 4000;
  // A scan whose request failed (no network) is sent again with the same nonce, so the
  // server counts it once however often it arrives.
  var RETRIES = 3;
  var RETRY_MS = 1500;
  var lastValue = null;
  var lastAt = 0;
  var sending = false;
  var retries = 0;
  var stream = null;
  var detect = null;
  var timer = null;
  var wakeLock = null;

  function showing() {
    return answer.querySelector(".door-verdict") !== null;
  }

  function clearAnswer() {
    answer.replaceChildren();
    if (!stream) {
      codeInput.focus();
    }
  }

  // "Scan next" is a link to the page (for no JavaScript); here it just clears the answer.
  answer.addEventListener("click", function (event) {
    if (event.target.closest("[data-door-next]")) {
      event.preventDefault();
      clearAnswer();
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && showing()) {
      clearAnswer();
    }
  });

  function send(value) {
    secretInput.value = value;
    codeInput.value = "";
    sending = true;
    retries = 0;
    form.requestSubmit();
  }

  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt !== form) {
      return;
    }
    if (event.detail.failed && !event.detail.xhr.status) {
      return; // no answer at all: htmx:sendError retries
    }
    sending = false;
    secretInput.value = "";
    if (event.detail.successful) {
      codeInput.value = "";
    }
  });

  document.body.addEventListener("htmx:sendError", function (event) {
    if (event.detail.elt !== form) {
      return;
    }
    if (retries < RETRIES) {
      retries += 1;
      setStatus(status.dataset.retrying);
      window.setTimeout(function () {
        form.requestSubmit();
      }, RETRY_MS * retries);
      return;
    }
    sending = false;
    secretInput.value = "";
    setStatus(status.dataset.offline);
  });

  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target === answer) {
      var next = answer.querySelector("[data-door-next]");
      if (next) {
        next.focus();
      }
    }
  });

  function setStatus(text) {
    status.textContent = text;
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  async function makeDetector() {
    if ("BarcodeDetector" in window) {
      try {
        var formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.indexOf("qr_code") !== -1) {
          var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
          root.dataset.decoderUsed = "BarcodeDetector";
          return async function () {
            var codes = await detector.detect(video);
            return codes.length ? codes[0].rawValue : null;
          };
        }
      } catch (error) {
        // fall through to jsQR
      }
    }
    await loadScript(root.dataset.decoder);
    root.dataset.decoderUsed = "jsQR";
    var canvas = document.createElement("canvas");
    var context = canvas.getContext("2d", { willReadFrequently: true });
    return async function () {
      var scale = Math.min(1, 640 / Math.max(video.videoWidth, video.videoHeight));
      var width = Math.round(video.videoWidth * scale);
      var height = Math.round(video.videoHeight * scale);
      if (!width || !height) {
        return null;
      }
      canvas.width = width;
      canvas.height = height;
      context.drawImage(video, 0, 0, width, height);
      var image = context.getImageData(0, 0, width, height);
      var found = window.jsQR(image.data, width, height, { inversionAttempts: "dontInvert" });
      return found ? found.data : null;
    };
  }

  async function tick() {
    timer = null;
    if (!stream) {
      return;
    }
    if (!sending && !showing() && video.readyState >= 2) {
      try {
        var value = await detect();
        var now = Date.now();
        if (value && (value !== lastValue || now - lastAt > REPEAT_AFTER_MS)) {
          lastValue = value;
          lastAt = now;
          send(value);
        } else if (value) {
          lastAt = now;
        }
      } catch (error) {
        // one unreadable frame; the next may do
      }
    }
    timer = window.setTimeout(tick, 150);
  }

  async function start() {
    startButton.disabled = true;
    setStatus(status.dataset.starting);
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
      video.srcObject = stream;
      frame.hidden = false;
      await video.play();
      detect = detect || (await makeDetector());
      startButton.hidden = true;
      stopButton.hidden = false;
      setStatus(status.dataset.ready);
      root.dataset.cameraState = "on";
      keepScreenOn();
      tick();
    } catch (error) {
      stop();
      setStatus(status.dataset.failed);
    } finally {
      startButton.disabled = false;
    }
  }

  // A phone at the door should not dim while it scans (where the browser can).
  async function keepScreenOn() {
    try {
      if (navigator.wakeLock) {
        wakeLock = await navigator.wakeLock.request("screen");
      }
    } catch (error) {
      wakeLock = null;
    }
  }

  function stop() {
    if (wakeLock) {
      wakeLock.release().catch(function () {});
      wakeLock = null;
    }
    if (timer) {
      window.clearTimeout(timer);
      timer = null;
    }
    if (stream) {
      stream.getTracks().forEach(function (track) {
        track.stop();
      });
      stream = null;
    }
    video.srcObject = null;
    frame.hidden = true;
    startButton.hidden = false;
    stopButton.hidden = true;
    root.dataset.cameraState = "off";
  }

  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    camera.hidden = false;
    startButton.addEventListener("click", start);
    stopButton.addEventListener("click", function () {
      stop();
      setStatus("");
    });
  }
})();
