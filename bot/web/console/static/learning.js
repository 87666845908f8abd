/* Corrections to review (/console/learning): the keyboard and "tick all" on top of a plain form.
   j/k move, x ticks the row, Shift+A ticks all (again: none), a accepts, d drops, r chooses the
   intent to relabel with (Enter in the list relabels). With nothing ticked, a, d and the relabel
   act on the highlighted row. Without JS the form works as it is. */
(function () {
  "use strict";

  var form = document.getElementById("review-form");
  var tbody = document.getElementById("corrections-body");
  if (!form || !tbody) { return; }
  var selectAll = document.getElementById("select-all");
  var relabel = document.getElementById("relabel-intent");
  var counter = document.getElementById("checked-count");
  var help = document.getElementById("help");
  var submitting = false;

  function rows() { return Array.prototype.slice.call(tbody.querySelectorAll("tr[data-id]")); }

  function box(row) { return row.querySelector('input[type="checkbox"][name="ids"]'); }

  function boxes() { return rows().map(box).filter(Boolean); }

  function current() { return tbody.querySelector("tr.selected"); }

  function isTyping(element) {
    if (!element) { return false; }
    var tag = element.tagName;
    return (tag === "INPUT" && element.type !== "checkbox") || tag === "TEXTAREA" || tag === "SELECT" ||
      element.isContentEditable;
  }

  function refresh() {
    var all = boxes();
    var ticked = all.filter(function (b) { return b.checked; }).length;
    rows().forEach(function (row) { row.classList.toggle("ticked", box(row).checked); });
    if (selectAll) {
      selectAll.checked = ticked > 0 && ticked === all.length;
      selectAll.indeterminate = ticked > 0 && ticked < all.length;
    }
    if (counter) { counter.textContent = ticked ? ticked + " ticked" : ""; }
  }

  function highlight(row) {
    rows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-current"); });
    if (!row) { return; }
    row.classList.add("selected");
    row.setAttribute("aria-current", "true");
    box(row).focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    var index = all.indexOf(current());
    var next = index === -1 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, index + step));
    highlight(all[next]);
  }

  function toggleAll() {
    var all = boxes();
    var every = all.length && all.every(function (b) { return b.checked; });
    all.forEach(function (b) { b.checked = !every; });
    refresh();
  }

  function submit(action) {
    if (submitting) { return; }
    var button = document.getElementById(action + "-button");
    if (!boxes().some(function (b) { return b.checked; })) {
      var row = current();
      if (!row) { return; }
      box(row).checked = true; // nothing ticked: the highlighted row
      refresh();
    }
    if (typeof form.requestSubmit === "function" && button) {
      form.requestSubmit(button);
      return;
    }
    var field = document.createElement("input");
    field.type = "hidden";
    field.name = "action";
    field.value = action;
    form.appendChild(field);
    submitting = true;
    form.submit();
  }

  form.addEventListener("submit", function (event) {
    if (submitting) { event.preventDefault(); return; }
    submitting = true;
  });

  if (selectAll) {
    selectAll.hidden = false;
    selectAll.addEventListener("change", function () {
      boxes().forEach(function (b) { b.checked = selectAll.checked; });
      refresh();
    });
  }

  tbody.addEventListener("change", refresh);
  tbody.addEventListener("keydown", function (event) {
    // Enter on a ticked box would submit the form with its first button (Accept): not by accident.
    if (event.key === "Enter" && event.target.type === "checkbox") { event.preventDefault(); }
  });
  tbody.addEventListener("click", function (event) {
    var row = event.target.closest("tr[data-id]");
    if (row && !row.classList.contains("selected")) {
      rows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-current"); });
      row.classList.add("selected");
      row.setAttribute("aria-current", "true");
    }
  });

  if (relabel) {
    relabel.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && relabel.value) { event.preventDefault(); submit("relabel"); }
    });
  }

  document.addEventListener("keydown", function (event) {
    if (help && help.open) { return; }
    var target = document.activeElement;
    if (event.key === "Escape" && isTyping(target)) { target.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(target)) { return; }
    var handled = true;
    if (event.key === "A" && event.shiftKey) { toggleAll(); }
    else if (event.key === "j") { move(1); }
    else if (event.key === "k") { move(-1); }
    else if (event.key === "x") {
      var row = current();
      if (row) { box(row).checked = !box(row).checked; refresh(); }
    }
    else if (event.key === "a") { submit("accept"); }
    else if (event.key === "d") { submit("drop"); }
    else if (event.key === "r") { if (relabel) { relabel.focus(); } }
    else { handled = false; }
    if (handled) { event.preventDefault(); }
  });

  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { submitting = false; } // back/forward cache: the form is usable again
  });

  var first = rows()[0];
  if (first) {
    first.classList.add("selected");
    first.setAttribute("aria-current", "true");
  }
  refresh();
}());
