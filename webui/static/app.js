// clusterducks dashboard: confirmations, the refresh icon, and live progress (server-sent events).
(function () {
  "use strict";

  document.addEventListener("submit", function (e) {
    // A button may ask on its own (the Devices list's Delete), else the form does.
    var msg = (e.submitter && e.submitter.getAttribute("data-confirm")) || (e.target.getAttribute && e.target.getAttribute("data-confirm"));
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  // Copy buttons beside secrets shown once (API tokens, server and tunnel keys). The
  // clipboard API needs a secure context; elsewhere the text is selected for Ctrl-C.
  document.querySelectorAll("[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var el = document.getElementById(btn.getAttribute("data-copy"));
      if (!el) return;
      var text = el.textContent.trim();
      var done = function () { btn.setAttribute("data-copied", "true"); btn.lastChild.textContent = " Copied"; };
      var select = function () {
        var r = document.createRange(); r.selectNodeContents(el);
        var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
        btn.setAttribute("data-copied", "selected"); btn.lastChild.textContent = " Selected: press Ctrl-C";
      };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, select);
      else select();
    });
  });

  // A list's selection: the "select all shown" box ticks every row's box, the count says
  // how many are ticked, and the actions wait for at least one. Delegated, so a table the
  // refresh icon reloads keeps working.
  var syncSelection = function (id) {
    var form = document.getElementById(id);
    if (!form) return;
    var all = form.querySelector("[data-select-all]"), n = 0, total = 0;
    document.querySelectorAll('[data-select="' + id + '"]').forEach(function (b) { total++; if (b.checked) n++; });
    if (all) { all.checked = total > 0 && n === total; all.indeterminate = n > 0 && n < total; }
    var count = form.querySelector("#bulk-count");
    if (count) count.textContent = n + " selected";
    form.querySelectorAll("button[name=action]").forEach(function (b) { b.disabled = n === 0; });
  };
  var syncSelections = function () {
    document.querySelectorAll("[data-select-all]").forEach(function (a) { syncSelection(a.getAttribute("data-select-all")); });
  };
  document.addEventListener("change", function (e) {
    var t = e.target, id = t.getAttribute && t.getAttribute("data-select-all");
    if (id) {
      document.querySelectorAll('[data-select="' + id + '"]').forEach(function (b) { b.checked = t.checked; });
      syncSelection(id);
      return;
    }
    id = t.getAttribute && t.getAttribute("data-select");
    if (id) syncSelection(id);
  });
  syncSelections();

  // Lazy Locks is a companion of Strict Versioning: usable only while it is checked (the
  // disabled checkbox leaves its hidden "false" to be sent).
  document.querySelectorAll("form").forEach(function (f) {
    var strict = f.querySelector("[name=strict_versioning][type=checkbox]");
    var lazy = f.querySelector("[name=lazy_locks][type=checkbox]");
    if (!strict || !lazy) return;
    var sync = function () { if (!strict.checked) lazy.checked = false; lazy.disabled = !strict.checked; };
    strict.addEventListener("change", sync);
    sync();
  });

  document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });

  // The refresh icon reloads the table in place (a plain link reloads the page without JS).
  document.querySelectorAll("[data-refresh]").forEach(function (a) {
    a.addEventListener("click", function (e) {
      e.preventDefault();
      var sel = a.getAttribute("data-refresh");
      fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").querySelector(sel);
          var cur = document.querySelector(sel);
          if (fresh && cur) { cur.replaceWith(fresh); syncSelections(); }
        })
        .catch(function () { location.reload(); });
    });
  });

  // Live progress: one stream for every unfinished operation on the page.
  var rows = document.querySelectorAll("[data-op-id][data-done=false]");
  if (!rows.length || !window.EventSource) return;
  var ids = [];
  rows.forEach(function (r) {
    var id = r.getAttribute("data-op-id");
    if (ids.indexOf(id) < 0) ids.push(id);
  });
  var es = new EventSource("/events/operations?" + ids.map(function (i) { return "id=" + encodeURIComponent(i); }).join("&"));
  es.addEventListener("op", function (ev) {
    var d = JSON.parse(ev.data);
    document.querySelectorAll('[data-op-id="' + d.id + '"]').forEach(function (row) {
      var st = row.querySelector("[data-op-state]");
      if (st) { st.textContent = d.state; st.className = "badge b-" + d.state; }
      var step = row.querySelector("[data-op-step]");
      if (step) step.textContent = d.step;
      var bar = row.querySelector("[data-op-progress]");
      if (bar) { bar.value = d.percent; bar.textContent = d.percent + "%"; }
      var pct = row.querySelector("[data-op-percent]");
      if (pct) pct.textContent = d.percent + "%";
      var msg = row.querySelector("[data-op-message]");
      if (msg) msg.textContent = d.error || d.message;
      var wf = row.querySelector("[data-op-workflow]");
      if (wf && d.workflow_url && !wf.querySelector("a")) {
        var a = document.createElement("a");
        a.href = d.workflow_url; a.target = "_blank"; a.rel = "noopener"; a.textContent = "Temporal";
        wf.replaceChildren(a);
      }
      row.setAttribute("data-done", d.finished ? "true" : "false");
    });
  });
  es.addEventListener("end", function () {
    es.close();
    document.body.setAttribute("data-ops-done", "true");
    // The object's own state changed with its operation: show it (once; finished operations open no stream).
    if (document.querySelector("[data-reload-on-end]")) setTimeout(function () { location.reload(); }, 1500);
  });
})();
