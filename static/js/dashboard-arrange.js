// Arrange mode of the dashboard page (editors): move panels by dragging their "Move" handle
// (mouse, pen or touch: pointer events), by arrow keys on that handle, or by the Earlier /
// Later buttons; size them by the corner handle or the Narrower / Wider / Shorter / Taller
// buttons. Panels flow through the 12-column grid in their order, each keeping its column where
// the row leaves room. "Save layout" posts every panel's {panel, x, y, w, h} as JSON; nothing
// is saved before that, and Cancel puts everything back.
(function () {
  "use strict";
  const COLUMNS = 12;
  const MAX_HEIGHT = 24;
  // One unit of height is 4rem of panel body (see dashboard.css: .h-N .panel-body).
  const HEIGHT_UNIT_REM = 4;

  function ready(callback) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", callback);
    } else {
      callback();
    }
  }

  function clamp(value, low, high) {
    return Math.max(low, Math.min(high, value));
  }

  ready(function () {
    const grid = document.getElementById("panel-grid");
    const start = document.getElementById("arrange-start");
    const form = document.getElementById("arrange-form");
    const field = document.getElementById("arrange-layout");
    const status = document.getElementById("arrange-status");
    const cancel = document.getElementById("arrange-cancel");
    const help = document.getElementById("arrange-help");
    if (!grid || !start || !form || !field) return;

    function cards() {
      return Array.prototype.slice.call(grid.querySelectorAll(":scope > .panel[data-panel]"));
    }
    if (!cards().length) return; // nothing to arrange: the button stays hidden
    start.hidden = false;

    let snapshot = null;
    let dirty = false;
    let submitting = false;

    function cellOf(card) {
      return {
        x: Number(card.dataset.x),
        y: Number(card.dataset.y),
        w: Number(card.dataset.w),
        h: Number(card.dataset.h),
      };
    }

    function setCell(card, cell) {
      for (const name of ["x", "y", "w", "h"]) card.dataset[name] = String(cell[name]);
      const kept = card.className.split(/\s+/).filter(function (name) {
        return name && !/^[xwh]-\d+$/.test(name);
      });
      kept.push("x-" + cell.x, "w-" + cell.w, "h-" + cell.h);
      card.className = kept.join(" ");
      const size = card.querySelector("[data-size]");
      if (size) size.textContent = cell.w + " × " + cell.h;
    }

    // Rows fill left to right in the panels' order; a panel keeps its column if the row still
    // has room there, else it starts the next row. `packed` (the panel just moved) takes the
    // first free column instead. y counts height units down the page, as the grid stores it.
    function flow(packed) {
      let column = 0;
      let top = 0;
      let rowHeight = 0;
      for (const card of cards()) {
        const cell = cellOf(card);
        const keep = card !== packed;
        let x = keep ? Math.max(column, cell.x) : column;
        if (x + cell.w > COLUMNS) {
          top += rowHeight;
          rowHeight = 0;
          x = keep ? Math.min(cell.x, COLUMNS - cell.w) : 0;
        }
        cell.x = x;
        cell.y = top;
        column = x + cell.w;
        rowHeight = Math.max(rowHeight, cell.h);
        setCell(card, cell);
      }
    }

    let resizeTimer = null;
    function changed(card, message) {
      dirty = true;
      if (card) card.classList.add("moved");
      if (message && status) status.textContent = message;
      // dashboard.js redraws the plots on resize: let them follow their new sizes.
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        window.dispatchEvent(new Event("resize"));
      }, 150);
    }

    function describe(card) {
      const all = cards();
      const cell = cellOf(card);
      return (
        card.dataset.title + ": position " + (all.indexOf(card) + 1) + " of " + all.length +
        ", " + cell.w + (cell.w === 1 ? " column" : " columns") + " wide, " + cell.h + " high."
      );
    }

    function refocus(card, action) {
      const button = card.querySelector('[data-arrange="' + action + '"]');
      if (button) button.focus();
    }

    function moveBy(card, step, action) {
      const all = cards();
      const index = all.indexOf(card);
      const target = all[index + step];
      if (!target) {
        if (status) status.textContent = card.dataset.title + " is already " + (step < 0 ? "first." : "last.");
        return;
      }
      grid.insertBefore(card, step < 0 ? target : target.nextSibling);
      flow(card);
      changed(card, describe(card));
      refocus(card, action);
    }

    function resizeBy(card, dw, dh) {
      const cell = cellOf(card);
      cell.w = clamp(cell.w + dw, 1, COLUMNS);
      cell.h = clamp(cell.h + dh, 1, MAX_HEIGHT);
      cell.x = Math.min(cell.x, COLUMNS - cell.w);
      setCell(card, cell);
      flow(null);
      changed(card, describe(card));
    }

    function setArranging(on) {
      grid.classList.toggle("arranging", on);
      form.hidden = !on;
      if (help) help.hidden = !on;
      start.hidden = on;
      for (const card of cards()) {
        const tools = card.querySelector(".panel-arrange");
        const handle = card.querySelector(".resize-handle");
        if (tools) tools.hidden = !on;
        if (handle) handle.hidden = !on;
        if (!on) card.classList.remove("moved", "dragging");
      }
    }

    start.addEventListener("click", function () {
      snapshot = cards().map(function (card) {
        return { card: card, cell: cellOf(card) };
      });
      dirty = false;
      if (status) status.textContent = "";
      setArranging(true);
      const first = grid.querySelector('[data-arrange="drag"]');
      if (first) first.focus();
    });

    if (cancel) {
      cancel.addEventListener("click", function () {
        if (snapshot) {
          for (const item of snapshot) {
            grid.appendChild(item.card);
            setCell(item.card, item.cell);
          }
        }
        dirty = false;
        setArranging(false);
        window.dispatchEvent(new Event("resize"));
        start.focus();
      });
    }

    form.addEventListener("submit", function () {
      field.value = JSON.stringify(
        cards().map(function (card) {
          const cell = cellOf(card);
          return { panel: card.dataset.panel, x: cell.x, y: cell.y, w: cell.w, h: cell.h };
        })
      );
      submitting = true;
    });

    window.addEventListener("beforeunload", function (event) {
      if (dirty && !submitting) {
        event.preventDefault();
        event.returnValue = "";
      }
    });

    grid.addEventListener("click", function (event) {
      const button = event.target.closest("[data-arrange]");
      if (!button || !grid.classList.contains("arranging")) return;
      const card = button.closest(".panel[data-panel]");
      const action = button.dataset.arrange;
      if (action === "earlier") moveBy(card, -1, action);
      else if (action === "later") moveBy(card, 1, action);
      else if (action === "narrower") resizeBy(card, -1, 0);
      else if (action === "wider") resizeBy(card, 1, 0);
      else if (action === "shorter") resizeBy(card, 0, -1);
      else if (action === "taller") resizeBy(card, 0, 1);
    });

    grid.addEventListener("keydown", function (event) {
      const handle = event.target.closest('[data-arrange="drag"]');
      if (!handle || !grid.classList.contains("arranging")) return;
      const card = handle.closest(".panel[data-panel]");
      if (event.key === "ArrowUp" || event.key === "ArrowLeft") moveBy(card, -1, "drag");
      else if (event.key === "ArrowDown" || event.key === "ArrowRight") moveBy(card, 1, "drag");
      else return;
      event.preventDefault();
    });

    // --- dragging with a pointer ---------------------------------------------------------

    function oneColumn() {
      return getComputedStyle(grid).gridTemplateColumns.split(" ").length < 2;
    }

    function dropTarget(card, x, y) {
      const under = document.elementFromPoint(x, y);
      const target = under && under.closest(".panel[data-panel]");
      if (!target || target === card || target.parentNode !== grid) return null;
      const box = target.getBoundingClientRect();
      const before = oneColumn() ? y < box.top + box.height / 2 : x < box.left + box.width / 2;
      return { target: target, before: before };
    }

    function autoScroll(y) {
      const edge = 48;
      if (y < edge) window.scrollBy(0, -16);
      else if (y > window.innerHeight - edge) window.scrollBy(0, 16);
    }

    grid.addEventListener("pointerdown", function (event) {
      const handle = event.target.closest('[data-arrange="drag"], [data-arrange="resize"]');
      if (!handle || !grid.classList.contains("arranging") || event.button !== 0) return;
      const card = handle.closest(".panel[data-panel]");
      event.preventDefault();
      const resizing = handle.dataset.arrange === "resize";
      const origin = { x: event.clientX, y: event.clientY, cell: cellOf(card) };
      const gap = parseFloat(getComputedStyle(grid).columnGap) || 0;
      const columnWidth = (grid.clientWidth + gap) / COLUMNS;
      const rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
      let moved = false;
      card.classList.add("dragging");

      function onMove(move) {
        if (move.pointerId !== event.pointerId) return;
        autoScroll(move.clientY);
        if (resizing) {
          const cell = cellOf(card);
          const w = clamp(
            origin.cell.w + Math.round((move.clientX - origin.x) / columnWidth), 1, COLUMNS - cell.x
          );
          const h = clamp(
            origin.cell.h + Math.round((move.clientY - origin.y) / (HEIGHT_UNIT_REM * rem)),
            1,
            MAX_HEIGHT
          );
          if (w !== cell.w || h !== cell.h) {
            cell.w = w;
            cell.h = h;
            setCell(card, cell);
            flow(null);
            moved = true;
          }
          return;
        }
        const drop = dropTarget(card, move.clientX, move.clientY);
        if (!drop) return;
        const next = drop.before ? drop.target : drop.target.nextSibling;
        if (next === card || card.nextSibling === next) return;
        grid.insertBefore(card, next);
        flow(card);
        moved = true;
      }

      function onEnd(end) {
        if (end.pointerId !== event.pointerId) return;
        document.removeEventListener("pointermove", onMove);
        document.removeEventListener("pointerup", onEnd);
        document.removeEventListener("pointercancel", onEnd);
        card.classList.remove("dragging");
        if (moved) changed(card, describe(card));
        if (!resizing) handle.focus();
      }

      // On the document, not the handle: moving the panel in the page drops a pointer capture.
      document.addEventListener("pointermove", onMove);
      document.addEventListener("pointerup", onEnd);
      document.addEventListener("pointercancel", onEnd);
    });
  });
})();
