// Review app: progressive enhancement only (every action also works as a plain form).
// Audio: click a turn to play it, the playing turn is highlighted, speed control, keyboard
// shortcuts; select text in a turn to mark a missed piece of personal data; split at cursor.
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    // The list's filters stay open on a wide screen, folded on a phone.
    var more = document.querySelector(".more-filters");
    if (more && window.matchMedia("(min-width: 700px)").matches) more.open = true;

    var player = document.getElementById("player");
    var turns = Array.prototype.slice.call(document.querySelectorAll(".turn[data-start]"));
    var follow = document.getElementById("follow");
    var current = null;

    function seekTo(turn) {
      if (!player || !turn) return;
      player.currentTime = parseFloat(turn.dataset.start);
      var p = player.play();
      if (p && p.catch) p.catch(function () {});
      highlight(turn);
    }

    function turnAt(t) {
      var found = null;
      for (var i = 0; i < turns.length; i++) {
        var start = parseFloat(turns[i].dataset.start);
        if (start <= t + 0.05) found = turns[i]; else break;
      }
      return found;
    }

    function highlight(turn) {
      if (turn === current) return;
      if (current) { current.classList.remove("playing"); current.removeAttribute("aria-current"); }
      current = turn;
      if (turn) {
        turn.classList.add("playing");
        turn.setAttribute("aria-current", "true");
        if (follow && follow.checked && !player.paused) {
          turn.scrollIntoView({ block: "nearest", behavior: "smooth" });
        }
      }
    }

    if (player) {
      player.addEventListener("timeupdate", function () { highlight(turnAt(player.currentTime)); });
      var speed = document.getElementById("speed");
      if (speed) speed.addEventListener("change", function () { player.playbackRate = parseFloat(speed.value); });
      document.querySelectorAll(".turn .play").forEach(function (btn) {
        btn.addEventListener("click", function (ev) { ev.preventDefault(); seekTo(btn.closest(".turn")); });
      });
      // A click on a turn's text (not a selection, not a control) plays it too.
      document.querySelectorAll(".turn[data-start] .turn-text").forEach(function (el) {
        el.addEventListener("click", function () {
          var sel = window.getSelection();
          if (sel && !sel.isCollapsed) return;
          seekTo(el.closest(".turn"));
        });
      });
    }

    function typing(target) {
      var tag = target && target.tagName;
      return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
    }

    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
      var key = ev.key;
      if (player && (key === " " || key === "k")) {
        ev.preventDefault();
        if (player.paused) { var p = player.play(); if (p && p.catch) p.catch(function () {}); } else player.pause();
      } else if (player && (key === "j" || key === "n" || key === "p")) {
        ev.preventDefault();
        var idx = current ? turns.indexOf(current) : -1;
        var next = key === "p" ? turns[Math.max(0, idx - 1)] : turns[Math.min(turns.length - 1, idx + 1)];
        seekTo(next);
      } else if (key === "a") {
        var approve = document.getElementById("approve-form");
        if (approve) { ev.preventDefault(); approve.submit(); }
      }
    });

    // "Couper au curseur": send the caret position in the text area.
    document.querySelectorAll(".turn-form").forEach(function (form) {
      var area = form.querySelector("textarea[name=text]");
      var at = form.querySelector("input[name=at]");
      var split = form.querySelector(".split-btn");
      if (!area || !at || !split) return;
      split.addEventListener("click", function () { at.value = String(area.selectionStart || 0); });
    });

    // Mark a missed piece of personal data by selecting it in a turn's text.
    var popup = document.getElementById("missed-popup");
    if (popup) {
      var close = popup.querySelector(".popup-close");
      close.addEventListener("click", function () { popup.hidden = true; });
      document.querySelectorAll(".turn-text").forEach(function (el) {
        el.addEventListener("mouseup", function () { setTimeout(function () { offerSelection(el); }, 0); });
        el.addEventListener("touchend", function () { setTimeout(function () { offerSelection(el); }, 300); });
      });
    }

    function segmentOf(node) {
      var el = node.nodeType === 3 ? node.parentElement : node;
      return el && el.closest ? el.closest(".seg") : null;
    }

    function offerSelection(el) {
      var sel = window.getSelection();
      if (!sel || sel.isCollapsed || sel.rangeCount === 0) return;
      var range = sel.getRangeAt(0);
      var a = segmentOf(range.startContainer), b = segmentOf(range.endContainer);
      if (!a || a !== b || !el.contains(a)) return; // only inside one stretch of plain text
      var base = parseInt(a.dataset.offset, 10);
      var start = base + range.startOffset, end = base + range.endOffset;
      var raw = a.textContent.slice(range.startOffset, range.endOffset);
      var lead = raw.length - raw.replace(/^\s+/, "").length;
      var trail = raw.length - raw.replace(/\s+$/, "").length;
      start += lead; end -= trail;
      if (end <= start) return;
      popup.querySelector("input[name=turn_id]").value = el.dataset.turnId;
      popup.querySelector("input[name=start]").value = String(start);
      popup.querySelector("input[name=end]").value = String(end);
      popup.querySelector(".sel-preview").textContent = "« " + raw.trim() + " »";
      var rect = range.getBoundingClientRect();
      popup.style.top = (window.scrollY + rect.bottom + 6) + "px";
      popup.style.left = Math.max(8, Math.min(window.scrollX + rect.left, window.innerWidth - 320)) + "px";
      popup.hidden = false;
    }
  });
})();
