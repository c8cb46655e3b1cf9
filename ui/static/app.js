// nsdb: small enhancements of server-rendered pages. Everything works without this file.
//
// On the sheet editor, the section menu becomes tabs: one section shows at a time, the tab is
// kept across saves of the same sheet, Alt+←/→ moves between tabs, and a field the URL points
// at (after チェック) opens its tab and takes the focus.
//
// Leaving the editor with unsaved changes (a link, 閲覧, 差異, a menu item, closing the tab)
// asks first.
//
// A save posts which field the user was in (_focus), and the editor comes back to it; a link to
// a field (the message summary, the skip link, 照会 marks) opens the field's tab and focuses it.
(function () {
  "use strict";
  var form = document.getElementById("sheet");
  if (!form) return;
  var dirty = false;
  var leaving = false;
  var ask = "保存していない入力があります。このまま移動すると入力した内容は失われます。移動しますか？";
  function changed() { dirty = true; }
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  // Fields outside the form that belong to it (form="sheet") count too.
  document.addEventListener("change", function (e) {
    if (e.target && e.target.form === form) dirty = true;
  });
  // The field the user was last in: its label's target (the first radio of a group).
  var focusInput = form.querySelector("input[name='_focus']");
  document.addEventListener("focusin", function (e) {
    var t = e.target;
    if (!focusInput || !t || !t.closest || t.form !== form) return;
    var field = t.closest(".field");
    var label = field ? field.querySelector("label[for^='f-']") : null;
    if (label) focusInput.value = label.getAttribute("for");
  });
  form.addEventListener("submit", function (e) {
    // 一次判定表示 posts the screen's values to its own window; the editor stays.
    var other = e.submitter && e.submitter.getAttribute("formtarget");
    if (!other) leaving = true;
  });
  document.addEventListener("click", function (e) {
    var a = e.target && e.target.closest ? e.target.closest("a[href]") : null;
    if (!a || !dirty || leaving) return;
    var href = a.getAttribute("href");
    if (href.charAt(0) === "#" || (a.target && a.target !== "_self")) return;
    if (window.confirm(ask)) {
      leaving = true;
    } else {
      e.preventDefault();
    }
  }, true);
  window.addEventListener("beforeunload", function (e) {
    if (!dirty || leaving) return;
    e.preventDefault();
    e.returnValue = ask;
    return ask;
  });
})();

(function () {
  "use strict";
  var form = document.getElementById("sheet");
  var nav = document.querySelector(".editbar nav.sections");
  if (!form || !nav) return;
  var links = Array.prototype.slice.call(nav.querySelectorAll("a[href^='#s-']"));
  var sections = links.map(function (a) { return document.getElementById(a.getAttribute("href").slice(1)); });
  var key = "nsdb-tab:" + location.pathname;
  nav.setAttribute("role", "tablist");

  function show(i, focus) {
    sections.forEach(function (s, j) { if (s) s.hidden = j !== i; });
    links.forEach(function (a, j) {
      a.setAttribute("role", "tab");
      a.setAttribute("aria-selected", j === i ? "true" : "false");
      a.classList.toggle("current", j === i);
    });
    try { sessionStorage.setItem(key, String(i)); } catch (e) { /* private mode */ }
    if (focus && sections[i]) {
      var first = sections[i].querySelector("input:not([type=hidden]), select, textarea");
      if (first) first.focus();
    }
  }

  links.forEach(function (a, i) {
    a.addEventListener("click", function (e) { e.preventDefault(); show(i, true); });
  });
  // A "次へ" button at the end of each section keeps keyboard-only entry flowing.
  sections.forEach(function (s, i) {
    if (!s || i === sections.length - 1) return;
    var next = document.createElement("button");
    next.type = "button";
    next.className = "next-tab";
    next.textContent = "次へ（" + links[i + 1].textContent + "）";
    next.addEventListener("click", function () { show(i + 1, true); });
    s.appendChild(next);
  });
  document.addEventListener("keydown", function (e) {
    if (!e.altKey || (e.key !== "ArrowRight" && e.key !== "ArrowLeft")) return;
    var cur = links.findIndex(function (a) { return a.getAttribute("aria-selected") === "true"; });
    var to = e.key === "ArrowRight" ? Math.min(cur + 1, links.length - 1) : Math.max(cur - 1, 0);
    e.preventDefault();
    show(to, true);
  });

  var target = location.hash ? document.getElementById(location.hash.slice(1)) : null;
  var start = 0;
  if (target) {
    start = sections.findIndex(function (s) { return s && s.contains(target); });
  } else {
    var kept = null;
    try { kept = sessionStorage.getItem(key); } catch (e) { /* private mode */ }
    if (kept !== null && +kept < sections.length) start = +kept;
  }
  show(Math.max(start, 0), false);
  if (target && target.focus) target.focus();

  // A link to a field or a section on this page opens its tab and puts the focus there.
  function reveal(id) {
    var el = document.getElementById(id);
    if (!el) return false;
    var i = sections.findIndex(function (s) { return s && s.contains(el); });
    if (i < 0) return false;
    show(i, el === sections[i]);
    if (el !== sections[i] && el.focus) el.focus();
    el.scrollIntoView({ block: "center" });
    return true;
  }
  document.addEventListener("click", function (e) {
    var a = e.target && e.target.closest ? e.target.closest("a[href^='#f-']") : null;
    if (!a) return;
    if (reveal(a.getAttribute("href").slice(1))) {
      e.preventDefault();
      try { history.replaceState(null, "", a.getAttribute("href")); } catch (err) { /* file: */ }
    }
  });
  window.addEventListener("hashchange", function () {
    if (location.hash.indexOf("#f-") === 0) reveal(location.hash.slice(1));
  });
})();
