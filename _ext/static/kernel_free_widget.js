// Kernel-free widgets (see _ext/kernel_free_widgets.py): each control picks one value of one
// parameter; the figure precomputed for the chosen values replaces the image. No library.
(function () {
  "use strict";
  function wire(widget) {
    const data = JSON.parse(widget.querySelector("script.kfw-data").textContent);
    const controls = Array.from(widget.querySelectorAll("[data-kfw-param]"));
    const img = widget.querySelector("img.kfw-frame");
    const error = widget.querySelector(".kfw-error");
    const caption = widget.querySelector(".kfw-caption");
    function update() {
      const index = controls.map(c => c.value);
      controls.forEach((c, i) => {
        const shown = widget.querySelector(`output[for="${c.id}"]`);
        if (shown) shown.textContent = data.labels[i][c.value];
      });
      const frame = data.frames[index.join(",")];
      if (!frame) return;
      if (frame.src) {
        img.src = frame.src;
        img.hidden = false;
      } else {
        img.hidden = true;
      }
      error.textContent = frame.error;
      error.hidden = !frame.error;
      caption.textContent = frame.caption;
      if (frame.caption) img.alt = frame.caption;
    }
    controls.forEach(c => c.addEventListener("input", update));
    controls.forEach(c => c.addEventListener("change", update));
    widget.classList.add("kfw-ready");
  }
  function init() {
    document.querySelectorAll(".kernel-free-widget").forEach(wire);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
