/* webcare agent console: ticking waiting times, live queue, keyboard shortcuts.
   Plain JS, no build step. Customer text is only ever set with textContent. */
(function () {
  "use strict";

  var body = document.body;
  var page = body.dataset.page;
  var sla = Number(body.dataset.slaSeconds || 0);
  var clockOffset = 0; // server time minus client time, in ms

  // ------------------------------------------------------------------ helpers

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + "s";
    var minutes = Math.floor(seconds / 60);
    seconds = seconds % 60;
    if (minutes < 60) return minutes + "m " + pad(seconds) + "s";
    return Math.floor(minutes / 60) + "h " + pad(minutes % 60) + "m";
  }

  function slaState(seconds) {
    if (sla && seconds >= sla) return "overdue";
    if (sla && seconds >= 0.8 * sla) return "due-soon";
    return "ok";
  }

  function percent(value) {
    return value === null || value === undefined ? "–" : Math.round(value * 100) + "%";
  }

  // The same words as the server-rendered rows (bot/web/console/display.py).
  var VISIBILITY_LABELS = { "public": "public comment", "private": "private" };

  function channelLabel(channel, visibility) {
    var shown = VISIBILITY_LABELS[visibility || "private"] || String(visibility);
    return (channel || "unknown channel") + " · " + shown;
  }

  function isTyping(element) {
    if (!element) return false;
    var tag = element.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || element.isContentEditable;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) {
          window.location.href = "/console/login?next=" + encodeURIComponent(window.location.pathname);
          throw new Error("logged out");
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        if (data && data.now) clockOffset = Date.parse(data.now) - Date.now();
        return data;
      });
  }

  // ------------------------------------------------------------------ ticking waiting times

  function tick() {
    var now = Date.now() + clockOffset;
    var waits = document.querySelectorAll(".wait[data-created]");
    for (var i = 0; i < waits.length; i++) {
      var node = waits[i];
      var seconds = (now - Date.parse(node.dataset.created)) / 1000;
      if (isNaN(seconds)) continue;
      node.textContent = duration(seconds);
      var state = slaState(seconds);
      var host = node.closest("tr") || node.closest(".sla-inline");
      if (!host) continue;
      host.classList.remove("sla-ok", "sla-due-soon", "sla-overdue");
      host.classList.add("sla-" + state);
      var label = host.querySelector(".sla-label");
      if (label) label.textContent = state === "overdue" ? "overdue" : state === "due-soon" ? "due soon" : "";
    }
  }

  // ------------------------------------------------------------------ help overlay

  var help = document.getElementById("help");

  function openHelp() {
    if (help && !help.open && typeof help.showModal === "function") help.showModal();
  }

  var helpButtons = document.querySelectorAll("[data-help-open]");
  for (var h = 0; h < helpButtons.length; h++) helpButtons[h].addEventListener("click", openHelp);

  // ------------------------------------------------------------------ queue page

  var queueBody = document.getElementById("queue-body");

  function rows() { return queueBody ? Array.prototype.slice.call(queueBody.querySelectorAll("tr[data-id]")) : []; }

  function selectedRow() { return queueBody ? queueBody.querySelector("tr.selected") : null; }

  function selectRow(row, focus) {
    rows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-current"); });
    if (!row) return;
    row.classList.add("selected");
    row.setAttribute("aria-current", "true");
    var link = row.querySelector("a.open");
    if (focus && link) link.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function moveSelection(step) {
    var all = rows();
    if (!all.length) return;
    var current = all.indexOf(selectedRow());
    var next = current === -1 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, current + step));
    selectRow(all[next], true);
  }

  function buildRow(d) {
    var tr = el("tr", "sla-ok new");
    tr.dataset.id = String(d.id);
    var wait = el("td", "col-wait");
    var span = el("span", "wait", duration(d.waiting_seconds));
    span.dataset.created = d.created_at;
    wait.appendChild(span);
    wait.appendChild(document.createTextNode(" "));
    wait.appendChild(el("span", "sla-label", ""));
    tr.appendChild(wait);
    var who = el("td");
    var link = el("a", "open", d.customer);
    link.href = "/console/drafts/" + encodeURIComponent(d.id);
    who.appendChild(link);
    tr.appendChild(who);
    var channel = el("td", "col-channel");
    channel.appendChild(el("span", d.visibility === "public" ? "conv-kind public" : "conv-kind",
                           channelLabel(d.channel, d.visibility)));
    tr.appendChild(channel);
    var intent = el("td");
    intent.appendChild(el("code", "", d.intent || "none"));
    intent.appendChild(document.createTextNode(" "));
    intent.appendChild(el("span", "conf", percent(d.confidence)));
    tr.appendChild(intent);
    tr.appendChild(el("td", "snippet", d.customer_text));
    tr.appendChild(el("td", "snippet muted", d.snippet));
    return tr;
  }

  function setStatus(text, offline) {
    var status = document.getElementById("poll-status");
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("offline", !!offline);
  }

  function reconcile(drafts) {
    var existing = {};
    rows().forEach(function (row) { existing[row.dataset.id] = row; });
    var wanted = {};
    drafts.forEach(function (d) { wanted[String(d.id)] = true; });
    var selected = selectedRow();
    var hadFocus = selected && selected.contains(document.activeElement);
    var fallback = null;
    Object.keys(existing).forEach(function (id) {
      if (wanted[id]) return;
      var row = existing[id];
      if (row === selected) {
        fallback = row.nextElementSibling || row.previousElementSibling;
        while (fallback && !wanted[fallback.dataset.id]) fallback = fallback.nextElementSibling;
      }
      row.remove();
    });
    var previous = null;
    var added = 0;
    drafts.forEach(function (d) {
      var row = existing[String(d.id)];
      if (!row) { row = buildRow(d); added++; }
      var expected = previous ? previous.nextElementSibling : queueBody.firstElementChild;
      if (row !== expected) queueBody.insertBefore(row, expected);
      previous = row;
    });
    if (fallback) selectRow(fallback, hadFocus);
    var count = drafts.length;
    var counter = document.getElementById("queue-count");
    if (counter) counter.textContent = count + " waiting";
    var empty = document.getElementById("queue-empty");
    if (empty) empty.hidden = count > 0;
    document.title = (count ? "(" + count + ") " : "") + "Draft queue · webcare";
    setStatus(added ? "live · " + added + " new" : "live", false);
    tick();
  }

  function pollQueue() {
    getJSON("/api/drafts")
      .then(function (data) { reconcile(data.drafts || []); })
      .catch(function (error) { if (error.message !== "logged out") setStatus("connection lost, retrying…", true); })
      .then(function () { window.setTimeout(pollQueue, 2000); });
  }

  function queueKeys(event) {
    switch (event.key) {
      case "j": moveSelection(1); return true;
      case "k": moveSelection(-1); return true;
      case "o":
      case "Enter": {
        var row = selectedRow();
        if (row && event.key === "o") { row.querySelector("a.open").click(); return true; }
        return false; // Enter on a focused link opens it natively
      }
    }
    return false;
  }

  // ------------------------------------------------------------------ draft page

  function submitForm(form) {
    if (!form || body.classList.contains("deciding") || body.classList.contains("decided")) return;
    if (typeof form.requestSubmit === "function") form.requestSubmit();
    else form.submit();
  }

  function draftKeys(event) {
    var key = event.key;
    if (key === "a") { submitForm(document.getElementById("approve-form")); return true; }
    if (key === "e") {
      var text = document.getElementById("reply-text");
      if (text) { text.focus(); text.setSelectionRange(text.value.length, text.value.length); }
      return true;
    }
    if (key === "1" || key === "2" || key === "3") {
      submitForm(document.querySelector('form[data-pick="' + key + '"]'));
      return true;
    }
    if (key === "r") { submitForm(document.getElementById("reject-form")); return true; }
    if (key === "j" || key === "k") {
      var link = document.getElementById(key === "j" ? "next-draft" : "prev-draft");
      if (link) link.click();
      return true;
    }
    return false;
  }

  function guardDecisionForms() {
    var forms = document.querySelectorAll("form.decision-form");
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", function (event) {
        if (body.classList.contains("deciding")) { event.preventDefault(); return; }
        body.classList.add("deciding");
        event.target.classList.add("submitting");
      });
    }
  }

  function watchDraft() {
    var layout = document.querySelector(".draft-layout");
    if (!layout || layout.dataset.status !== "pending") return;
    var id = layout.dataset.draftId;
    function check() {
      if (body.classList.contains("deciding")) return;
      getJSON("/api/drafts/" + encodeURIComponent(id))
        .then(function (data) {
          var draft = data.draft;
          if (draft.status === "pending") { window.setTimeout(check, 3000); return; }
          var stale = document.getElementById("stale");
          stale.textContent = "";
          var who = draft.decided_by && draft.decided_by.display_name ? " by " + draft.decided_by.display_name : "";
          stale.appendChild(document.createTextNode("This draft was just " + draft.status + who + ". "));
          var back = el("a", "", "Back to the queue");
          back.href = "/console/queue";
          stale.appendChild(back);
          stale.hidden = false;
          body.classList.add("decided");
          var buttons = document.querySelectorAll("form.decision-form button");
          for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
        })
        .catch(function () { window.setTimeout(check, 5000); });
    }
    window.setTimeout(check, 3000);
  }

  // ------------------------------------------------------------------ keyboard

  document.addEventListener("keydown", function (event) {
    if (help && help.open) return; // the dialog handles Esc itself
    var target = document.activeElement;
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      if (page === "draft" && target && target.id === "reply-text") {
        event.preventDefault();
        submitForm(document.getElementById("edit-form"));
      }
      return;
    }
    if (event.key === "Escape" && isTyping(target)) { target.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(target)) return;
    if (event.key === "?") { event.preventDefault(); openHelp(); return; }
    var handled = page === "queue" ? queueKeys(event) : page === "draft" ? draftKeys(event) : false;
    if (handled) event.preventDefault();
  });

  // ------------------------------------------------------------------ start

  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return; // back/forward cache: forms are usable again
    body.classList.remove("deciding");
    var busy = document.querySelectorAll("form.submitting");
    for (var i = 0; i < busy.length; i++) busy[i].classList.remove("submitting");
  });

  tick();
  window.setInterval(tick, 1000);
  if (page === "queue" && queueBody) {
    var first = rows()[0];
    if (first) selectRow(first, false);
    window.setTimeout(pollQueue, 2000);
  }
  if (page === "draft") {
    guardDecisionForms();
    watchDraft();
  }
})();
