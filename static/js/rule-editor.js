// The rule editor's live check: as the expression changes, ask the portal whether it parses
// (and where not), show it as it will run (with the tenant's matcher), and offer metric and label
// names from the tenant's own series that match the word being typed. Works on the form in
// templates/alerts/rule_form.html; without this script the form still checks on save.
(function () {
  "use strict";

  const DELAY_MS = 300;
  const WORD = /[A-Za-z0-9_:]*$/;

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function init() {
    const box = document.getElementById("expr-check");
    const input = document.getElementById("id_expr");
    const form = document.getElementById("rule-form");
    if (!box || !input || !form || input.disabled) return;
    const csrf = form.querySelector("input[name=csrfmiddlewaretoken]");
    const url = box.dataset.checkUrl;
    let timer = null;
    let sequence = 0;

    function currentWord() {
      const before = input.value.slice(0, input.selectionStart || 0);
      return (before.match(WORD) || [""])[0];
    }

    function insert(name) {
      const end = input.selectionStart || 0;
      const start = end - currentWord().length;
      input.value = input.value.slice(0, start) + name + input.value.slice(end);
      const caret = start + name.length;
      input.focus();
      input.setSelectionRange(caret, caret);
      schedule();
    }

    function suggestionList(title, names) {
      const wrap = element("div");
      wrap.appendChild(element("small", "muted", title));
      const list = element("ul", "suggestions");
      names.forEach(function (name) {
        const item = element("li");
        const button = element("button", "secondary outline", name);
        button.type = "button";
        button.addEventListener("click", function () {
          insert(name);
        });
        item.appendChild(button);
        list.appendChild(item);
      });
      wrap.appendChild(list);
      return wrap;
    }

    function show(answer, word) {
      box.replaceChildren();
      if (answer.ok) {
        const line = element("p");
        line.appendChild(element("span", "ok", "✓ Parses. "));
        line.appendChild(element("span", "muted", "As it will run for this tenant:"));
        box.appendChild(line);
        box.appendChild(element("pre", "no-wrap scoped", answer.scoped));
      } else if (answer.error) {
        const where =
          answer.error.position === null || answer.error.position === undefined
            ? ""
            : " (at character " + (answer.error.position + 1) + ")";
        box.appendChild(element("p", "error", "✗ " + answer.error.reason + where));
        if (answer.error.position !== null && answer.error.position !== undefined) {
          const text = input.value;
          const at = Math.min(answer.error.position, text.length);
          const pre = element("pre", "no-wrap");
          pre.appendChild(document.createTextNode(text.slice(Math.max(0, at - 60), at)));
          pre.appendChild(element("span", "caret", "▶"));
          pre.appendChild(document.createTextNode(text.slice(at, at + 60)));
          box.appendChild(pre);
        }
      }
      if (answer.suggestions && word) {
        if (answer.suggestions.metrics.length) {
          box.appendChild(suggestionList("Metrics:", answer.suggestions.metrics));
        }
        if (answer.suggestions.labels.length) {
          box.appendChild(suggestionList("Labels:", answer.suggestions.labels));
        }
      } else if (answer.suggestions_unavailable) {
        box.appendChild(element("small", "muted", "No suggestions: " + answer.suggestions_unavailable));
      }
    }

    function check() {
      const mine = ++sequence;
      const word = currentWord();
      const body = new FormData();
      body.append("expr", input.value);
      body.append("word", word);
      box.setAttribute("aria-busy", "true");
      fetch(url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf ? csrf.value : "" },
      })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (answer) {
          if (mine === sequence) show(answer, word);
        })
        .catch(function (error) {
          if (mine !== sequence) return;
          box.replaceChildren(element("small", "muted", "Could not check the expression now (" + error.message + ")."));
        })
        .finally(function () {
          if (mine === sequence) box.removeAttribute("aria-busy");
        });
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(check, DELAY_MS);
    }

    input.addEventListener("input", schedule);
    input.addEventListener("click", schedule);
    if (input.value.trim()) check();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
