// Peer review: a click on a line number starts a comment on that line; a shift-click sets the
// last line of the range.  The pages work without this script (type the line numbers).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var start = document.getElementById("start");
  var end = document.getElementById("end");
  var text = document.getElementById("comment-text");
  if (!start || !end || !text) { return; }
  document.querySelectorAll("td.ln a[data-line]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var line = link.getAttribute("data-line");
      if (event.shiftKey && start.value && Number(line) >= Number(start.value)) {
        end.value = line;
      } else {
        start.value = line;
        end.value = line;
      }
      document.getElementById("comment-box").scrollIntoView({ block: "nearest" });
      text.focus();
    });
  });
});
