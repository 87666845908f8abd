/* Known issue page: polls the fix announcement's progress until it is done, then reloads for the report. */
(function () {
  "use strict";
  var section = document.getElementById("broadcast");
  if (!section || section.dataset.status === "done") { return; }
  var bar = document.getElementById("broadcast-progress");
  function update(data) {
    bar.max = data.total || 1;
    bar.value = data.sent + data.failed + data.skipped;
    bar.textContent = Math.round(data.done_fraction * 100) + "%";
    ["total", "sent", "queued", "pending", "failed", "skipped", "rate", "status"].forEach(function (key) {
      var el = section.querySelector('[data-count="' + key + '"]');
      if (el) { el.textContent = data[key]; }
    });
  }
  function poll() {
    fetch(section.dataset.progressUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { setTimeout(poll, 5000); return; }
        update(data);
        if (data.status === "done") { window.location.reload(); return; }
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1000);
}());
