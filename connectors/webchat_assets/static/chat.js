/* webcare web chat. Vanilla JS, no build step, no dependencies.
 *
 * Flow: load the transcript (GET history), then open the event stream (SSE) after its cursor;
 * the browser reconnects on its own with Last-Event-ID. Sending is POST messages with a UUID
 * per message, retried with the same UUID (the service stores it once).
 * Security: message text is only ever put in the page with textContent / text nodes.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("webchat-config").textContent);
  var API = config.api;
  var TEXTS = config.texts;
  var MAX_CHARS = config.maxChars;
  var LANG_KEY = "webcare_chat_lang";
  var WAITING_AFTER_MS = 15000; // "typing…" becomes "we're working on it" (e.g. an agent reviews)
  var OFFLINE_GRACE_MS = 1200; // a reconnect quicker than this shows no notice

  var el = {
    scroller: document.getElementById("scroller"),
    transcript: document.getElementById("transcript"),
    typing: document.getElementById("typing"),
    typingText: document.getElementById("typing-text"),
    notice: document.getElementById("notice"),
    form: document.getElementById("composer"),
    input: document.getElementById("message"),
    error: document.getElementById("error"),
    counter: document.getElementById("counter"),
    langButtons: document.querySelectorAll("[data-lang]")
  };

  var state = {
    lang: initialLanguage(),
    cursor: 0, // id of the last outbound message received: where the event stream resumes
    seen: Object.create(null),
    source: null,
    reconnectDelay: 1000,
    offline: false,
    offlineTimer: null,
    noticeTimer: null,
    waitingTimer: null,
    waiting: null, // null | "typing" | "waiting"
    errorKey: null
  };

  // ------------------------------------------------------------------ language

  function initialLanguage() {
    var stored = null;
    try { stored = window.localStorage.getItem(LANG_KEY); } catch (e) { /* private mode */ }
    if (stored && TEXTS[stored]) { return stored; }
    var preferred = navigator.languages || [navigator.language || ""];
    for (var i = 0; i < preferred.length; i++) {
      var primary = String(preferred[i] || "").toLowerCase().split("-")[0];
      if (TEXTS[primary]) { return primary; }
    }
    return config.lang;
  }

  function t(key, values) {
    var text = (TEXTS[state.lang] && TEXTS[state.lang][key]) || TEXTS[config.lang][key] || key;
    return text.replace(/\{(\w+)\}/g, function (match, name) {
      return values && values[name] !== undefined ? String(values[name]) : match;
    });
  }

  function applyLanguage() {
    document.documentElement.lang = state.lang;
    document.title = t("title");
    document.querySelectorAll("[data-i18n]").forEach(function (node) {
      node.textContent = t(node.getAttribute("data-i18n"));
    });
    document.querySelectorAll("[data-i18n-aria-label]").forEach(function (node) {
      node.setAttribute("aria-label", t(node.getAttribute("data-i18n-aria-label")));
    });
    el.langButtons.forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.getAttribute("data-lang") === state.lang));
    });
    document.querySelectorAll("[data-i18n-key]").forEach(function (node) {
      node.textContent = t(node.getAttribute("data-i18n-key"));
    });
    if (state.waiting) { showWaiting(state.waiting); }
    if (state.errorKey) { showError(state.errorKey.key, state.errorKey.values); }
    updateCounter();
  }

  function setLanguage(lang) {
    if (!TEXTS[lang] || lang === state.lang) { return; }
    state.lang = lang;
    try { window.localStorage.setItem(LANG_KEY, lang); } catch (e) { /* private mode */ }
    applyLanguage();
  }

  // ------------------------------------------------------------------ rendering

  function node(tag, className, text) {
    var element = document.createElement(tag);
    if (className) { element.className = className; }
    if (text !== undefined && text !== null) { element.textContent = String(text); }
    return element;
  }

  function localized(tag, className, key) {
    var element = node(tag, className, t(key));
    element.setAttribute("data-i18n-key", key);
    return element;
  }

  var URL_PATTERN = /(https?:\/\/[^\s<>"']+)/g;

  /** Text with its web links clickable, built from text nodes and anchors only. */
  function linkify(container, text) {
    var parts = String(text).split(URL_PATTERN);
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i];
      if (!part) { continue; }
      if (i % 2 === 1) {
        var trailing = part.match(/[.,;:!?)]+$/);
        var url = trailing ? part.slice(0, -trailing[0].length) : part;
        var link = node("a", null, url);
        link.href = url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        container.appendChild(link);
        if (trailing) { container.appendChild(document.createTextNode(trailing[0])); }
      } else {
        container.appendChild(document.createTextNode(part));
      }
    }
  }

  function timeLabel(iso) {
    var date = iso ? new Date(iso) : new Date();
    if (isNaN(date.getTime())) { return null; }
    var time = node("time", "msg__time", date.toLocaleTimeString(state.lang === "nl" ? "nl-NL" : "en-GB",
      { hour: "2-digit", minute: "2-digit" }));
    time.dateTime = date.toISOString();
    return time;
  }

  /** One transcript entry. ``message``: {id, direction, from, text, buttons, image, created_at}. */
  function renderMessage(message) {
    var outbound = message.direction === "out";
    var who = outbound ? (message.from === "agent" ? "agent" : "bot") : "you";
    var item = node("li", "msg msg--" + (outbound ? "out" : "in") + (who === "agent" ? " msg--agent" : ""));
    if (message.id) { item.setAttribute("data-id", String(message.id)); }
    var meta = node("p", "msg__meta");
    var sender = localized("span", outbound ? "msg__who" : "msg__who visually-hidden", who);
    meta.appendChild(sender);
    var time = timeLabel(message.created_at);
    if (time) {
      meta.appendChild(node("span", "visually-hidden", ", "));
      meta.appendChild(time);
    }
    var bubble = node("div", "msg__bubble");
    if (message.text) {
      var text = node("p", "msg__text");
      if (outbound) { linkify(text, message.text); } else { text.textContent = message.text; }
      bubble.appendChild(text);
    }
    if (outbound && typeof message.image === "string" && /^https?:\/\//.test(message.image)) {
      var image = localized("a", "msg__image", "image");
      image.href = message.image;
      image.target = "_blank";
      image.rel = "noopener noreferrer";
      bubble.appendChild(image);
    }
    item.appendChild(meta);
    if (bubble.firstChild) { item.appendChild(bubble); }
    if (outbound && message.buttons && message.buttons.length) {
      item.appendChild(renderButtons(message.buttons));
    }
    return item;
  }

  function renderButtons(buttons) {
    var group = node("div", "choices");
    group.setAttribute("role", "group");
    group.setAttribute("data-i18n-aria-label", "choices");
    group.setAttribute("aria-label", t("choices"));
    buttons.forEach(function (choice) {
      if (!choice || typeof choice.title !== "string" || typeof choice.payload !== "string") { return; }
      var button = node("button", "choice", choice.title);
      button.type = "button";
      button.addEventListener("click", function () {
        closeChoices(group, button);
        el.input.focus();
        send(choice.title, choice.payload, group);
      });
      group.appendChild(button);
    });
    return group;
  }

  function closeChoices(group, chosen) {
    group.querySelectorAll("button").forEach(function (button) {
      button.disabled = true;
      if (button === chosen) { button.classList.add("choice--chosen"); }
    });
  }

  function reopenChoices(group) {
    group.querySelectorAll("button").forEach(function (button) {
      button.disabled = false;
      button.classList.remove("choice--chosen");
    });
  }

  function nearBottom() {
    var s = el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  function scrollToEnd() {
    el.scroller.scrollTop = el.scroller.scrollHeight;
  }

  function append(item, force) {
    var follow = force || nearBottom();
    el.transcript.appendChild(item);
    if (follow) { scrollToEnd(); }
  }

  /** A message from the service (history or stream); each id is shown once. */
  function receive(message, fromHistory) {
    if (!message || !message.id || state.seen[message.id]) { return; }
    state.seen[message.id] = true;
    if (message.direction === "out") {
      state.cursor = Math.max(state.cursor, message.id);
      if (!fromHistory) { stopWaiting(); }
    }
    append(renderMessage(message), fromHistory);
  }

  // ------------------------------------------------------------------ waiting / notices / errors

  function showWaiting(mode) {
    state.waiting = mode;
    el.typing.hidden = false;
    el.typing.classList.toggle("typing--long", mode === "waiting");
    el.typingText.textContent = t(mode === "waiting" ? "waiting" : "typing");
  }

  function startWaiting() {
    clearTimeout(state.waitingTimer);
    showWaiting("typing");
    state.waitingTimer = setTimeout(function () { showWaiting("waiting"); }, WAITING_AFTER_MS);
    if (nearBottom()) { scrollToEnd(); }
  }

  function stopWaiting() {
    clearTimeout(state.waitingTimer);
    state.waiting = null;
    el.typing.hidden = true;
  }

  function showNotice(key, hideAfter) {
    clearTimeout(state.noticeTimer);
    el.notice.textContent = t(key);
    el.notice.className = "notice notice--" + key;
    el.notice.hidden = false;
    if (hideAfter) {
      state.noticeTimer = setTimeout(function () { el.notice.hidden = true; }, hideAfter);
    }
  }

  function showError(key, values) {
    state.errorKey = { key: key, values: values };
    el.error.textContent = t(key, values);
    el.error.hidden = false;
  }

  function clearError() {
    state.errorKey = null;
    el.error.hidden = true;
    el.error.textContent = "";
  }

  // ------------------------------------------------------------------ sending

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID(); // secure contexts only (https, localhost)
    }
    var bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function setStatus(item, key, retry) {
    var status = item.querySelector(".msg__status");
    if (!key) {
      if (status) { status.remove(); }
      item.classList.remove("msg--pending", "msg--failed");
      return;
    }
    if (!status) {
      status = node("p", "msg__status");
      item.appendChild(status);
    }
    status.textContent = "";
    status.appendChild(localized("span", null, key));
    item.classList.toggle("msg--pending", key === "sending");
    item.classList.toggle("msg--failed", key === "failed");
    if (retry) {
      var again = localized("button", "msg__retry", "retry");
      again.type = "button";
      again.addEventListener("click", retry);
      status.appendChild(document.createTextNode(" "));
      status.appendChild(again);
    }
  }

  /** Send a typed text, or a button (``payload``; its title is what the transcript shows). */
  function send(text, payload, group) {
    var body = { text: text, client_message_id: uuid(), language: state.lang };
    if (payload) { body.payload = payload; }
    var item = renderMessage({ direction: "in", from: "customer", text: text });
    append(item, true);
    deliver(body, item, group);
  }

  async function deliver(body, item, group) {
    setStatus(item, "sending");
    for (var attempt = 0; attempt < 4; attempt++) {
      var response = null;
      try {
        response = await fetch(API + "/messages", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "Accept": "application/json" },
          body: JSON.stringify(body)
        });
      } catch (e) {
        response = null; // offline: retry with the same client_message_id
      }
      if (response && response.ok) {
        var data = await response.json().catch(function () { return {}; });
        if (data.id) { item.setAttribute("data-id", String(data.id)); }
        setStatus(item, null);
        clearError();
        startWaiting();
        return;
      }
      if (response && response.status >= 400 && response.status < 500 && response.status !== 408) {
        await refused(response, body, item, group);
        return;
      }
      await sleep(1000 * Math.pow(2, attempt));
    }
    setStatus(item, "failed", function () { deliver(body, item, group); });
  }

  /** The service said no: explain why; a typed text goes back into the box to fix and resend. */
  async function refused(response, body, item, group) {
    var error = await response.json().catch(function () { return {}; });
    var details = error.details || {};
    item.remove();
    if (group) {
      reopenChoices(group);
    } else if (!el.input.value) {
      el.input.value = body.text;
      updateCounter();
      autoGrow();
    }
    if (response.status === 413) {
      showError("too_long", { length: details.length || body.text.length, max: details.max || MAX_CHARS });
    } else if (response.status === 429) {
      showError("too_many", { seconds: details.retry_after || 60 });
    } else if (response.status === 403 && /session/.test(error.reason || "")) {
      showError("session");
    } else {
      showError("error", { reason: error.reason || response.statusText || response.status });
    }
    el.input.focus();
  }

  function submit(event) {
    if (event) { event.preventDefault(); }
    var text = el.input.value.trim();
    if (!text) {
      showError("empty");
      el.input.focus();
      return;
    }
    if (text.length > MAX_CHARS) {
      showError("too_long", { length: text.length, max: MAX_CHARS });
      el.input.focus();
      return;
    }
    clearError();
    el.input.value = "";
    updateCounter();
    autoGrow();
    send(text, null, null);
    el.input.focus();
  }

  function updateCounter() {
    var length = el.input.value.length;
    var over = length > MAX_CHARS;
    el.counter.hidden = length < MAX_CHARS * 0.8;
    el.counter.textContent = t("counter", { count: length, max: MAX_CHARS });
    el.counter.classList.toggle("composer__counter--over", over);
    if (over) { el.input.setAttribute("aria-invalid", "true"); } else { el.input.removeAttribute("aria-invalid"); }
  }

  function autoGrow() {
    el.input.style.height = "auto";
    el.input.style.height = Math.min(el.input.scrollHeight + 2, 180) + "px";
  }

  // ------------------------------------------------------------------ receiving

  async function loadHistory() {
    try {
      var response = await fetch(API + "/history", {
        credentials: "same-origin",
        headers: { "Accept": "application/json" }
      });
      if (response.status === 403) {
        showError("session");
        return false;
      }
      if (!response.ok) { throw new Error("history " + response.status); }
      var data = await response.json();
      var messages = data.messages || [];
      messages.forEach(function (message) { receive(message, true); });
      state.cursor = Math.max(state.cursor, data.cursor || 0);
      // Choices answered already are closed, the one picked (if it was a button) marked.
      var open = [];
      Array.prototype.forEach.call(el.transcript.children, function (item) {
        var group = item.querySelector(".choices");
        if (group) { open.push(group); return; }
        if (!item.classList.contains("msg--in") || !open.length) { return; }
        var said = (item.querySelector(".msg__text") || {}).textContent;
        open.forEach(function (choices) {
          var picked = Array.prototype.filter.call(choices.querySelectorAll("button"), function (button) {
            return button.textContent === said;
          })[0];
          closeChoices(choices, picked || null);
        });
        open = [];
      });
      var last = messages[messages.length - 1];
      if (last && last.direction === "in") { showWaiting("waiting"); }
    } catch (e) {
      showError("history_error");
    } finally {
      el.transcript.setAttribute("aria-busy", "false");
      scrollToEnd();
    }
    return true;
  }

  function wentOffline() {
    if (state.offline || state.offlineTimer) { return; }
    state.offlineTimer = setTimeout(function () {
      state.offlineTimer = null;
      state.offline = true;
      showNotice("offline");
    }, OFFLINE_GRACE_MS);
  }

  function backOnline() {
    clearTimeout(state.offlineTimer);
    state.offlineTimer = null;
    state.reconnectDelay = 1000;
    if (state.offline) {
      state.offline = false;
      showNotice("online", 4000);
    }
  }

  function connect() {
    if (state.source) { state.source.close(); }
    var source = new EventSource(API + "/events?after=" + encodeURIComponent(String(state.cursor)));
    state.source = source;
    source.onopen = backOnline;
    source.onmessage = function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      receive(message, false);
    };
    source.onerror = function () {
      wentOffline();
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. the service answered an error): try again ourselves.
        source.close();
        setTimeout(function () { if (state.source === source) { connect(); } }, state.reconnectDelay);
        state.reconnectDelay = Math.min(30000, state.reconnectDelay * 2);
      }
    };
  }

  // ------------------------------------------------------------------ start

  el.form.addEventListener("submit", submit);
  el.input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.altKey && !event.metaKey &&
        !event.isComposing) {
      submit(event);
    }
  });
  el.input.addEventListener("input", function () {
    updateCounter();
    autoGrow();
    var key = state.errorKey && state.errorKey.key;
    if (key === "empty" || (key === "too_long" && el.input.value.trim().length <= MAX_CHARS)) { clearError(); }
  });
  el.langButtons.forEach(function (button) {
    button.addEventListener("click", function () { setLanguage(button.getAttribute("data-lang")); });
  });
  window.addEventListener("pagehide", function () {
    if (state.source) { state.source.close(); }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && state.source && state.source.readyState === EventSource.CLOSED) {
      connect();
    }
  });

  applyLanguage();
  loadHistory().then(function (ok) { if (ok) { connect(); } });
})();
