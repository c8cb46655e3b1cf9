// nsdb: small enhancements of server-rendered pages. Everything works without this file.
//
// On the sheet editor, the section menu becomes tabs: one section shows at a time, the tab is
// kept across saves of the same sheet, Alt+←/→ moves between tabs, and a field the URL points
// at (after チェック) opens its tab and takes the focus.
//
// Leaving the editor with unsaved changes (a link, 閲覧, 差異, a menu item, closing the tab)
// asks first, and a save that never reached the server gives the typing back when the editor
// is opened again in the same tab.
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
  // What a save changes is kept in this tab until a page shows that it arrived: when the
  // server cannot be reached (a dead network, the node restarting) the browser shows its error
  // page, and the editor, opened again (or shown again by Back), puts the typing back and says
  // so. The copy holds only the items this user changed and the version the page was made
  // from; put back on a newer page (someone saved meanwhile), the save states that older
  // version, so the server keeps the others' changes and shows a conflict where both changed
  // the same item. A page that answers the post, or whose items already hold the copied values,
  // drops it.
  var versionInput = form.querySelector("input[name='_version']");
  var version = versionInput ? versionInput.value : "";
  var keep = "nsdb-unsaved:" + location.pathname.replace(/\/edit$/, "");
  function values() {
    var byName = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.name && el.name !== "csrf" && el.name !== "action" && el.name.charAt(0) !== "_") byName[el.name] = [];
    });
    new FormData(form).forEach(function (v, k) {
      if (typeof v === "string" && byName[k]) byName[k].push(v);
    });
    return byName;
  }
  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
  var shown = values();
  function drop() { try { sessionStorage.removeItem(keep); } catch (err) { /* private mode */ } }
  function note(text) {
    var old = document.getElementById("restored");
    if (old) old.remove();
    var p = document.createElement("p");
    p.className = "warning";
    p.id = "restored";
    p.setAttribute("role", "alert");
    p.textContent = text;
    form.parentNode.insertBefore(p, form);
  }
  form.addEventListener("submit", function (e) {
    // 一次判定表示 posts the screen's values to its own window; the editor stays.
    var other = e.submitter && e.submitter.getAttribute("formtarget");
    if (other) return;
    leaving = true;
    var now = values();
    var changes = {};
    Object.keys(now).forEach(function (k) { if (!same(now[k], shown[k])) changes[k] = now[k]; });
    if (!Object.keys(changes).length) return;
    try { sessionStorage.setItem(keep, JSON.stringify({ version: versionInput ? versionInput.value : version, changes: changes })); } catch (err) { /* full or private */ }
  });
  var copy = null;
  try { copy = JSON.parse(sessionStorage.getItem(keep) || "null"); } catch (e) { copy = null; }
  // The post arrived when this page is the server's answer to it: a refused save shown again
  // (data-answered), or the page a save redirected to (its navigation went through a redirect,
  // which only the server gives). Values cannot tell, since the server normalises them
  // (ｼｹﾝ is stored as シケン).
  var nav = window.performance && performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
  // After a sign-in that did not save the held form (typed by another user), the redirect
  // is no answer: the address says #held.
  var answered = form.hasAttribute("data-answered") ||
    (location.hash !== "#held" && location.hash !== "#held-other" &&
      !!(nav && nav.type === "navigate" && nav.redirectCount > 0));
  var missing = {};
  // Typed by another user before a sign-in: listed (below), never put into these fields.
  var othersTyping = location.hash === "#held-other";
  if (copy && copy.changes && !answered && !othersTyping) {
    Object.keys(copy.changes).forEach(function (k) {
      if (k in shown && !same(shown[k], copy.changes[k])) missing[k] = copy.changes[k];
    });
  }
  if (Object.keys(missing).length) {
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || !(el.name in missing) || el.type === "hidden") return;
      if (el.type === "radio" || el.type === "checkbox") {
        el.checked = missing[el.name].indexOf(el.value) >= 0;
      } else {
        el.value = missing[el.name][0] || "";
      }
    });
    if (versionInput && copy.version !== version) versionInput.value = copy.version;
    dirty = true;
    note(copy.version === version
      ? "前回の保存は反映されていません。入力した内容を戻しました。確かめて、もう一度保存してください。"
      : "前回の保存は反映されていません。入力した内容を戻しました（その後に他の人が保存した内容はそのままです）。確かめて、もう一度保存してください。");
  } else if (copy && !othersTyping) {
    drop();
  }
  // Back from the browser's error page: the page comes back from the cache as it was, with the
  // typing; leaving asks again, and the page says the save did not go through.
  window.addEventListener("pageshow", function (e) {
    leaving = false;
    var held = null;
    try { held = sessionStorage.getItem(keep); } catch (err) { held = null; }
    if (e.persisted && held) {
      dirty = true;
      note("前回の保存はサーバーに届かなかった可能性があります。入力した内容はこの画面に残っています。もう一度保存してください。");
    }
  });
  document.addEventListener("click", function (e) {
    var a = e.target && e.target.closest ? e.target.closest("a[href]") : null;
    if (!a || !dirty || leaving) return;
    var href = a.getAttribute("href");
    if (href.charAt(0) === "#") return;
    // 帳票出力 opens the saved sheet in another tab: what is typed and not saved is not on it.
    if (/\/print(\?|$)/.test(href)) {
      if (!window.confirm("保存していない入力は帳票に出ません（帳票は保存済みの内容です）。先に一時保存してください。このまま帳票を開きますか？")) e.preventDefault();
      return;
    }
    if (a.target && a.target !== "_self") return;
    if (window.confirm(ask)) {
      leaving = true;
      drop();
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

// A sheet's view (it can no longer be edited: registered while a save was failing) with typing
// this tab still holds from the editor: listed with the items' labels, so that it can be
// copied, until the user lets it go. Never after the server answered a post from the editor
// (a redirect brought the page).
(function () {
  "use strict";
  var others = location.hash === "#held-other";
  var editor = document.getElementById("sheet");
  // Only on the sheet's view (its items as terms), or in the editor after another user's
  // sign-in: never on another page at the sheet's address (the sign-in page that holds a save).
  if (editor ? !others : !document.querySelector("dt[data-item]")) return;
  var m = location.pathname.match(/^\/sheets\/([^/]+)(\/edit)?$/);
  if (!m) return;
  var keep = "nsdb-unsaved:/sheets/" + m[1];
  var nav = window.performance && performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
  var copy = null;
  try { copy = JSON.parse(sessionStorage.getItem(keep) || "null"); } catch (e) { copy = null; }
  if (!copy || !copy.changes) return;
  if (location.hash !== "#held" && !others && nav && nav.type === "navigate" && nav.redirectCount > 0) {
    try { sessionStorage.removeItem(keep); } catch (e) { /* private mode */ }
    return;
  }
  var box = document.createElement("section");
  box.className = "warning";
  box.id = "unsaved";
  box.setAttribute("role", "alert");
  var h = document.createElement("h2");
  h.textContent = "保存されなかった入力があります";
  box.appendChild(h);
  var p = document.createElement("p");
  p.textContent = others
    ? "ログインが切れる前にこのタブで別の利用者が入力した内容です。保存していません。必要ならその利用者に伝えてください。"
    : "この画面で前に入力した内容は、保存がサーバーに届かないうちにこの様式が編集できなくなったため、保存されていません。必要なら控えてください。";
  box.appendChild(p);
  var ul = document.createElement("ul");
  Object.keys(copy.changes).forEach(function (name) {
    // The item's label: the view's term, or the editor's field label (its own words only).
    var safe = name.replace(/[^A-Za-z0-9_.-]/g, "");
    var dt = document.querySelector("dt[data-item='" + safe + "']");
    var label = document.querySelector("label[for='f-" + safe.replace(/\./g, "-") + "']");
    var shown = dt ? dt.textContent : label && label.firstChild ? label.firstChild.textContent.trim() : name;
    var li = document.createElement("li");
    var values = copy.changes[name].filter(function (v) { return v !== ""; });
    li.textContent = "「" + shown + "」: " + (values.length ? values.join("、") : "（空欄）");
    ul.appendChild(li);
  });
  box.appendChild(ul);
  var drop = document.createElement("button");
  drop.type = "button";
  drop.textContent = "控えたので消す";
  drop.addEventListener("click", function () {
    try { sessionStorage.removeItem(keep); } catch (e) { /* private mode */ }
    box.remove();
  });
  box.appendChild(drop);
  var main = document.querySelector("main") || document.body;
  var toolbar = main.querySelector(".toolbar");
  if (toolbar) {
    toolbar.parentNode.insertBefore(box, toolbar.nextSibling);
  } else {
    main.insertBefore(box, main.firstChild);
  }
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
  // The first data field takes the first keystroke, as the page was opened to type into it;
  // a field the address points at (after a save or チェック) takes it instead.
  show(Math.max(start, 0), !target);
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
