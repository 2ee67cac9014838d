// Click a figure to see it full-screen; click again or press Escape to close (issue 25). No library.
(function () {
  "use strict";
  function open(src, alt) {
    const overlay = document.createElement("div");
    overlay.className = "course-zoom-overlay";
    overlay.setAttribute("role", "dialog");
    const img = document.createElement("img");
    img.src = src;
    img.alt = alt || "";
    overlay.appendChild(img);
    function close() { overlay.remove(); document.removeEventListener("keydown", onKey); }
    function onKey(e) { if (e.key === "Escape") close(); }
    overlay.addEventListener("click", close);
    document.addEventListener("keydown", onKey);
    document.body.appendChild(overlay);
  }
  document.addEventListener("click", function (e) {
    const img = e.target.closest("div.cell_output img, figure img");
    if (!img || img.closest("a")) return;
    open(img.currentSrc || img.src, img.alt);
  });
})();
